"""The in-memory dataset every source converts into.

Layout (time-major over the whole dataset, episodes stored back to back):

    obs          [T, N, obs_dim]  float32   observation where actions[t] was taken
    actions      [T, N, act_dim]  float32   (continuous)  or  [T, N] int64 (discrete)
    rewards      [T, N]           float32   reward received after actions[t]
    terminals    [T]              bool      the episode ended in a terminal state at t (no bootstrap)
    truncations  [T]              bool      the episode was cut (time limit) at t
    legals       [T, N, n_actions] bool     optional, discrete only: legal actions at obs[t]
    state        [T, S]           float32   optional global state at t

An episode ends at t where ``terminals[t] or truncations[t]``. The next observation of step t is obs[t+1] unless t
ends its episode; the observation after a time-limit end is not stored, so next values are never duplicated.
Treat the arrays as immutable: boundaries and the checksum are derived from them.
"""
from __future__ import annotations

import hashlib
import json
from functools import cached_property
from typing import Any

import numpy as np

from marlbench.errors import DatasetError
from marlbench.spec import TaskSpec

# Fixed order for the checksum and for file formats.
FIELDS = ("obs", "actions", "rewards", "terminals", "truncations", "legals", "state")


def _describe(x: np.ndarray) -> str:
    return f"shape {tuple(x.shape)} dtype {x.dtype}"


def _float_array(name: str, x: Any, expected: str) -> np.ndarray:
    """Coerce to contiguous float32 (any real dtype is accepted), rejecting NaN/inf."""
    x = np.asarray(x)
    if x.dtype.kind not in "fiub":
        raise DatasetError(f"{name}: expected {expected} float32, found {_describe(x)}")
    x = np.ascontiguousarray(x, dtype=np.float32)
    finite = np.isfinite(x)
    n_bad = x.size - int(np.count_nonzero(finite))
    if n_bad:  # the caller names the file and the fix that fits it (a cached dataset or the user's own file)
        first = tuple(int(i) for i in np.argwhere(~finite)[0])
        raise DatasetError(f"{name}: {n_bad} of {x.size} values are NaN or inf, the first at "
                           f"{name}[{', '.join(map(str, first))}]")
    return x


def _bool_array(name: str, x: Any, expected: str) -> np.ndarray:
    """Coerce to contiguous bool; integer/float arrays are accepted only if they hold 0/1."""
    x = np.asarray(x)
    if x.dtype.kind != "b":
        if x.dtype.kind not in "fiu" or not np.isin(x, (0, 1)).all():
            raise DatasetError(f"{name}: expected {expected} bool (or 0/1 values), found {_describe(x)}")
    return np.ascontiguousarray(x, dtype=bool)


def _check_shape(name: str, x: np.ndarray, expected: tuple, expected_text: str) -> None:
    """``expected`` holds ints or None (free); mismatch names field, expected and found."""
    if x.ndim != len(expected) or any(e is not None and e != s for e, s in zip(expected, x.shape)):
        shown = ", ".join("?" if e is None else str(e) for e in expected)
        shown = f"({shown},)" if len(expected) == 1 else f"({shown})"
        raise DatasetError(f"{name}: expected shape {expected_text} = {shown}, found {_describe(x)}")


class Dataset:
    """Time-major multi-agent offline dataset with episode boundaries, sampling and statistics.

    Arrays are validated and coerced to the canonical dtypes; any problem raises DatasetError naming the field,
    the expected shape/dtype and the one found.
    """

    def __init__(self, obs, actions, rewards, terminals, truncations, legals=None, state=None,
                 metadata: dict | None = None):
        obs = _float_array("obs", obs, "[T, N, obs_dim]")
        if obs.ndim != 3:
            raise DatasetError(f"obs: expected shape [T, N, obs_dim] float32, found {_describe(obs)}")
        T, N, _ = obs.shape
        if T == 0 or N == 0:
            raise DatasetError(f"obs: expected at least one step and one agent, found {_describe(obs)}")

        actions = np.asarray(actions)
        if actions.ndim == 2:  # discrete: one action index per agent
            if actions.dtype.kind not in "iu":
                raise DatasetError(f"actions: discrete actions [T, N] must be int64 (cast with .astype(np.int64)), "
                                   f"found {_describe(actions)}; continuous actions need shape [T, N, act_dim]")
            actions = np.ascontiguousarray(actions, dtype=np.int64)
            _check_shape("actions", actions, (T, N), "[T, N]")
            if actions.min() < 0:
                raise DatasetError(f"actions: discrete actions must be >= 0, found minimum {actions.min()}")
        else:
            actions = _float_array("actions", actions, "[T, N, act_dim]")
            _check_shape("actions", actions, (T, N, None), "[T, N, act_dim]")
        discrete = actions.ndim == 2

        rewards = _float_array("rewards", rewards, "[T, N]")
        _check_shape("rewards", rewards, (T, N), "[T, N]")
        terminals = _bool_array("terminals", terminals, "[T]")
        _check_shape("terminals", terminals, (T,), "[T]")
        truncations = _bool_array("truncations", truncations, "[T]")
        _check_shape("truncations", truncations, (T,), "[T]")

        if legals is not None:
            if not discrete:
                raise DatasetError("legals: legal-action masks are only meaningful for discrete actions [T, N]")
            legals = _bool_array("legals", legals, "[T, N, n_actions]")
            _check_shape("legals", legals, (T, N, None), "[T, N, n_actions]")
            none_legal = ~legals.any(axis=-1)
            if none_legal.any():
                t, n = np.argwhere(none_legal)[0]
                raise DatasetError(f"legals: {int(none_legal.sum())} (step, agent) pairs have no legal action, "
                                   f"first at step {t}, agent {n}; every agent needs at least one legal action")
            if actions.max() >= legals.shape[-1]:
                raise DatasetError(f"actions: expected indices < n_actions = {legals.shape[-1]} (from legals), "
                                   f"found maximum {actions.max()}")
        if state is not None:
            state = _float_array("state", state, "[T, S]")
            _check_shape("state", state, (T, None), "[T, S]")

        metadata = dict(metadata or {})
        try:
            json.dumps(metadata)
        except (TypeError, ValueError) as e:
            raise DatasetError(f"metadata: expected a dict of JSON-serialisable values ({e})") from None

        is_end = terminals | truncations
        if not is_end[-1]:
            ends = np.flatnonzero(is_end)
            start = int(ends[-1]) + 1 if ends.size else 0
            raise DatasetError(
                f"terminals/truncations: the last step (t={T - 1}) ends no episode, so the final episode "
                f"(steps {start}..{T - 1}, {T - start} steps) is incomplete. Fix: set truncations[-1] = True if it "
                f"was cut by a time limit, or drop it by keeping only the first {start} steps of every array")

        self.obs, self.actions, self.rewards = obs, actions, rewards
        self.terminals, self.truncations, self.legals, self.state = terminals, truncations, legals, state
        self.metadata = metadata
        self._is_end = is_end
        self.episode_ends = np.flatnonzero(is_end)
        self.episode_starts = np.concatenate(([0], self.episode_ends[:-1] + 1))
        # Index of the next observation: t+1 inside an episode, t itself at an episode end. At a terminal the
        # value is only a placeholder (dones=1 removes it from the target); pointing at t keeps it inside the
        # episode and keeps next_legals with at least one legal action, so max over legal actions stays finite.
        self._next_index = np.arange(T) + ~is_end

    # ------------------------------------------------------------------ shapes
    @property
    def n_transitions(self) -> int:
        return self.obs.shape[0]

    @property
    def n_agents(self) -> int:
        return self.obs.shape[1]

    @property
    def obs_dim(self) -> int:
        return self.obs.shape[2]

    @property
    def discrete(self) -> bool:
        return self.actions.ndim == 2

    @property
    def state_dim(self) -> int | None:
        return None if self.state is None else self.state.shape[1]

    @property
    def action_dim(self) -> int:
        """Per-agent action length (continuous) or number of actions (discrete: from legals, else
        ``metadata["n_actions"]``, else the largest action seen + 1)."""
        if not self.discrete:
            return self.actions.shape[2]
        return self._known_n_actions or int(self.actions.max()) + 1

    @property
    def _known_n_actions(self) -> int | None:
        if self.legals is not None:
            return self.legals.shape[2]
        n = self.metadata.get("n_actions")
        return int(n) if n is not None else None

    # ---------------------------------------------------------------- episodes
    @property
    def n_episodes(self) -> int:
        return len(self.episode_ends)

    @property
    def episode_lengths(self) -> np.ndarray:
        return self.episode_ends - self.episode_starts + 1

    @cached_property
    def _step_episode_end(self) -> np.ndarray:
        """For every step, the index of its episode's last step."""
        return np.repeat(self.episode_ends, self.episode_lengths)

    @cached_property
    def _step_episode_start(self) -> np.ndarray:
        return np.repeat(self.episode_starts, self.episode_lengths)

    def episode_returns(self) -> np.ndarray:
        """Per episode: sum over steps of the mean over agents of the reward (float64, [n_episodes])."""
        per_step = self.rewards.mean(axis=1, dtype=np.float64)
        return np.add.reduceat(per_step, self.episode_starts)

    def td_indices(self) -> np.ndarray:
        """Steps usable for one-step TD targets.

        A step qualifies if its next observation is stored (t+1 is in the same episode) or if it is terminal (the
        target does not bootstrap). The last step of a truncated episode is excluded: the observation after the
        time limit is not stored, and treating it as terminal would bias values toward zero.
        """
        return np.flatnonzero(self.terminals | ~self._is_end)

    def statistics(self) -> dict:
        """Dataset card numbers as JSON-ready Python scalars."""
        returns, lengths = self.episode_returns(), self.episode_lengths
        q25, q50, q75 = np.quantile(returns, (0.25, 0.5, 0.75))
        return {
            "episodes": self.n_episodes,
            "transitions": self.n_transitions,
            "terminal_episodes": int(self.terminals[self.episode_ends].sum()),
            "return_mean": float(returns.mean()),
            "return_std": float(returns.std()),
            "return_min": float(returns.min()),
            "return_q25": float(q25),
            "return_median": float(q50),
            "return_q75": float(q75),
            "return_max": float(returns.max()),
            "episode_length_min": int(lengths.min()),
            "episode_length_mean": float(lengths.mean()),
            "episode_length_max": int(lengths.max()),
            "n_agents": self.n_agents,
            "obs_dim": self.obs_dim,
            "action_kind": "discrete" if self.discrete else "continuous",
            "action_dim": self.action_dim,
            "state_dim": self.state_dim,
        }

    def checksum(self) -> str:
        """sha256 hex over every field's name, dtype, shape and bytes in a fixed order (metadata excluded)."""
        h = hashlib.sha256()
        for name in FIELDS:
            x = getattr(self, name)
            h.update(name.encode())
            if x is None:
                h.update(b"<absent>")
                continue
            h.update(f"{x.dtype.str}{x.shape}".encode())
            h.update(memoryview(np.ascontiguousarray(x)).cast("B"))
        return h.hexdigest()

    def validate_against(self, spec: TaskSpec) -> None:
        """Raise DatasetError if the data cannot belong to ``spec`` (agents, dims, action kind).

        A dataset without state is accepted for a task that defines one: algorithms that need a global state must
        then build it from the observations.
        """
        fix = (f"regenerate the data with `marlbench data generate {spec.name}`, or choose the task this dataset "
               f"was made for" + (f" (metadata says {self.metadata['task']!r})" if "task" in self.metadata else ""))

        def mismatch(field: str, expected, found) -> DatasetError:
            return DatasetError(f"dataset does not match task {spec.name!r}: {field} expected {expected}, "
                                f"found {found}. Fix: {fix}")

        kind = "discrete" if self.discrete else "continuous"
        if self.n_agents != spec.n_agents:
            raise mismatch("n_agents", spec.n_agents, self.n_agents)
        if self.obs_dim != spec.obs_dim:
            raise mismatch("obs_dim", spec.obs_dim, self.obs_dim)
        if kind != spec.action_kind:
            raise mismatch("action kind", spec.action_kind, kind)
        if self.discrete:
            known = self._known_n_actions
            if known is not None and known != spec.action_dim:
                raise mismatch("number of discrete actions", spec.action_dim, known)
            if self.actions.max() >= spec.action_dim:
                raise mismatch("action indices", f"< {spec.action_dim}", f"maximum {self.actions.max()}")
        elif self.action_dim != spec.action_dim:
            raise mismatch("action_dim", spec.action_dim, self.action_dim)
        if self.state is not None and self.state_dim != spec.state_dim:
            raise mismatch("state_dim", spec.state_dim, self.state_dim)

    # ---------------------------------------------------------------- sampling
    def _gather(self, t: np.ndarray, nt: np.ndarray) -> dict[str, np.ndarray]:
        out = {
            "obs": self.obs[t], "actions": self.actions[t], "rewards": self.rewards[t],
            "next_obs": self.obs[nt], "dones": self.terminals[t].astype(np.float32),
        }
        if self.state is not None:
            out["state"], out["next_state"] = self.state[t], self.state[nt]
        if self.legals is not None:
            out["legals"], out["next_legals"] = self.legals[t], self.legals[nt]
        return out

    def sample_transitions(self, batch_size: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """Uniform one-step transitions over ``td_indices()``.

        Keys: obs, actions, rewards, next_obs, dones (float32, 1 at terminals), and state/next_state,
        legals/next_legals when present. At a terminal, next_* are a placeholder copy of step t.
        """
        idx = self.td_indices()
        if len(idx) == 0:
            raise DatasetError("dataset has no usable transitions (every episode is one truncated step)")
        t = idx[rng.integers(0, len(idx), size=batch_size)]
        return self._gather(t, self._next_index[t])

    def sample_sequences(self, batch_size: int, length: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """Windows [B, L, ...] starting at uniformly drawn steps, never crossing an episode end.

        Positions past the episode end are padding, marked 0 in ``mask`` [B, L] (float32): they hold zeros,
        except ``legals``, which repeat the episode's last mask so every position keeps a legal action.
        Also returns ``timesteps`` [B, L] (int64, step within the episode) and ``terminals`` [B, L] (float32).
        """
        start = rng.integers(0, self.n_transitions, size=batch_size)
        idx = start[:, None] + np.arange(length)
        end = self._step_episode_end[start][:, None]
        valid = idx <= end
        idx = np.minimum(idx, end)

        def padded(x: np.ndarray) -> np.ndarray:
            y = x[idx]
            y[~valid] = 0
            return y

        out = {
            "obs": padded(self.obs), "actions": padded(self.actions), "rewards": padded(self.rewards),
            "terminals": padded(self.terminals).astype(np.float32),
            "timesteps": np.where(valid, idx - self._step_episode_start[start][:, None], 0),
            "mask": valid.astype(np.float32),
        }
        if self.state is not None:
            out["state"] = padded(self.state)
        if self.legals is not None:
            out["legals"] = self.legals[idx]
        return out

    def __repr__(self) -> str:
        kind = "discrete" if self.discrete else "continuous"
        return (f"Dataset(transitions={self.n_transitions}, episodes={self.n_episodes}, agents={self.n_agents}, "
                f"obs_dim={self.obs_dim}, {kind} action_dim={self.action_dim}, state_dim={self.state_dim})")

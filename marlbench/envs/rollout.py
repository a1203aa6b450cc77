"""Build datasets by rolling behaviour policies through batched environments (the generators of every task
family call these)."""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
from tqdm import tqdm

from marlbench.data.dataset import Dataset
from marlbench.envs.base import BatchedMultiAgentEnv, EnvStep
from marlbench.seeding import derive_seed

Policy = Callable[[EnvStep], np.ndarray]


def rollout(env: BatchedMultiAgentEnv, policy: Policy, episodes: int, seed: int) -> Dataset:
    """Roll ``policy`` for ``episodes`` episodes through ``env``, ``env.num_envs`` episodes at a time.

    ``policy(step)`` maps the latest ``EnvStep`` to actions for every episode; if it has ``reset(num_envs)`` that
    is called at the start of every batch. Batch ``c`` resets the env with a seed derived from ``(seed, c)``; the
    last batch is run in full and its surplus episodes dropped. Episodes are stored one after another.
    """
    if episodes < 1:
        raise ValueError(f"episodes must be at least 1, got {episodes}")
    spec, b = env.spec, env.num_envs
    n_chunks = -(-episodes // b)
    parts: list[dict[str, np.ndarray]] = []
    for c in range(n_chunks):
        keep = min(b, episodes - c * b)
        parts.append(_rollout_batch(env, policy, derive_seed(seed, 0, c), spec.episode_limit, keep))
    won = _pop_wins(parts)
    return _with_wins(Dataset(**_merge(parts)), won)


def rollout_transitions(env: BatchedMultiAgentEnv, policy: Policy, transitions: int, seed: int) -> Dataset:
    """Like ``rollout`` but sized in transitions: batches of ``env.num_envs`` episodes (seeded as in ``rollout``)
    until at least ``transitions`` are collected, then the first whole episodes whose lengths reach that total."""
    if transitions < 1:
        raise ValueError(f"transitions must be at least 1, got {transitions}")
    parts: list[dict[str, np.ndarray]] = []
    total, c = 0, 0
    with tqdm(total=transitions, unit="transitions", desc=env.spec.name, disable=None, leave=False) as bar:
        while total < transitions:
            parts.append(_rollout_batch(env, policy, derive_seed(seed, 0, c), env.spec.episode_limit,
                                        env.num_envs))
            total += len(parts[-1]["rewards"])
            bar.update(min(len(parts[-1]["rewards"]), transitions - bar.n))
            c += 1
    won = _pop_wins(parts)
    data = _merge(parts)
    ends = np.flatnonzero(data["terminals"] | data["truncations"]) + 1
    last = int(np.searchsorted(ends, transitions))  # the episode that reaches the target
    cut = int(ends[last])
    return _with_wins(Dataset(**{k: None if v is None else v[:cut] for k, v in data.items()}),
                      None if won is None else won[:last + 1])


def _merge(parts: list[dict]) -> dict:
    return {k: np.concatenate([p[k] for p in parts]) if parts[0][k] is not None else None for k in parts[0]}


def _pop_wins(parts: list[dict]) -> np.ndarray | None:
    """The per-episode win flags of environments that report battles (``env.won``), taken out of the parts."""
    won = [p.pop("won") for p in parts]
    return None if won[0] is None else np.concatenate(won)


def _with_wins(data: Dataset, won: np.ndarray | None) -> Dataset:
    """Record the win rate of the episodes in the dataset's metadata (its card), where the environment reports
    battles."""
    if won is not None:
        data.metadata.update({"episodes_won": int(won.sum()), "win_rate": float(won.mean())})
    return data


def _rollout_batch(env: BatchedMultiAgentEnv, policy: Policy, seed: int, limit: int, keep: int) -> dict:
    """One batch of episodes as episode-contiguous arrays, keeping the first ``keep`` episodes."""
    if hasattr(policy, "reset"):
        policy.reset(env.num_envs)
    step = env.reset(seed)
    cols: dict[str, list] = {k: [] for k in ("obs", "actions", "rewards", "terminals", "truncations", "state",
                                             "legals", "alive")}
    done = np.zeros(env.num_envs, dtype=bool)
    for _ in range(limit):
        actions = policy(step)
        nxt = env.step(actions)
        cols["obs"].append(step.obs)
        cols["state"].append(step.state)
        cols["legals"].append(step.legals)
        cols["actions"].append(np.asarray(actions))
        cols["rewards"].append(nxt.rewards)
        cols["terminals"].append(nxt.terminated & ~done)
        cols["truncations"].append(nxt.truncated & ~nxt.terminated & ~done)
        cols["alive"].append(~done)
        done = done | nxt.terminated | nxt.truncated
        step = nxt
        if done.all():
            break
    # [T, B, ...] -> [B, T, ...]; boolean masking then lays each episode's live steps out contiguously
    alive = np.stack(cols.pop("alive"), axis=1)[:keep]
    out = {}
    for k, seq in cols.items():
        if seq[0] is None:
            out[k] = None
            continue
        arr = np.stack(seq, axis=0)
        out[k] = np.swapaxes(arr, 0, 1)[:keep][alive]
    # an episode still running at the time limit is cut there
    ends = np.cumsum(alive.sum(axis=1)) - 1
    out["truncations"][ends] |= ~out["terminals"][ends]
    won = getattr(env, "won", None)  # per episode, where the environment reports battles (SMAX, SMAC)
    out["won"] = None if won is None else np.asarray(won, dtype=bool)[:keep].copy()
    return out

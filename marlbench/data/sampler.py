"""Torch-side sampling for the training loop (runs every gradient step, so it stays lean).

TransitionSampler draws one-step transitions (``Batch``), what value-based and policy algorithms train on.
SegmentSampler draws windows of consecutive steps (``SegmentBatch``), what trajectory diffusion models (MADiff,
DoF) train on. An algorithm chooses its sampler with ``Algorithm.make_sampler``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from marlbench.data.dataset import Dataset
from marlbench.errors import DatasetError


@dataclass
class Batch:
    """One batch of transitions; tensors live on the sampler's device.

    obs/next_obs [B, N, obs_dim]; actions [B, N, act_dim] float or [B, N] int64; rewards [B, N];
    dones [B] float (1 at a terminal: do not bootstrap). state/next_state [B, S] and legals/next_legals
    [B, N, n_actions] bool are None when the dataset has none.
    """

    obs: torch.Tensor
    actions: torch.Tensor
    rewards: torch.Tensor
    next_obs: torch.Tensor
    dones: torch.Tensor
    state: torch.Tensor | None = None
    next_state: torch.Tensor | None = None
    legals: torch.Tensor | None = None
    next_legals: torch.Tensor | None = None
    # the dataset's action at the next step (SARSA-style in-sample targets, e.g. ICQ); a placeholder at terminals
    next_actions: torch.Tensor | None = None


def _tensor(x: np.ndarray | None, device: torch.device) -> torch.Tensor | None:
    # from_numpy shares memory on CPU (no copy of a possibly large dataset); .to copies once for other devices.
    return None if x is None else torch.from_numpy(x).to(device)


class _ResumableSampler:
    """The generator state of a sampler, with the count of what it draws from (``_population``, named
    ``_population_name``) to refuse resuming on a different dataset."""

    generator: torch.Generator
    _population_name = "items"

    def _population(self) -> int:
        raise NotImplementedError

    def state_dict(self) -> dict:
        return {"generator": self.generator.get_state(), "n_indices": self._population()}

    def load_state_dict(self, state: dict) -> None:
        """Restore the generator so the following batches match the interrupted run."""
        if state["n_indices"] != self._population():
            raise DatasetError(f"sampler checkpoint was made on a dataset with {state['n_indices']} "
                               f"{self._population_name}, this one has {self._population()}; resume with the same "
                               f"dataset")
        self.generator.set_state(state["generator"])


class TransitionSampler(_ResumableSampler):
    """Uniform sampling over ``dataset.td_indices()`` with its own seeded ``torch.Generator``.

    The dataset arrays move to ``device`` once. ``state_dict()``/``load_state_dict()`` capture the generator so a
    resumed run draws exactly the batches an uninterrupted run would have drawn.
    """

    _population_name = "usable transitions"

    def __init__(self, dataset: Dataset, batch_size: int, device: torch.device | str = "cpu", seed: int = 0):
        self.batch_size = int(batch_size)
        self.device = torch.device(device)
        self.obs = _tensor(dataset.obs, self.device)
        self.actions = _tensor(dataset.actions, self.device)
        self.rewards = _tensor(dataset.rewards, self.device)
        self.dones = _tensor(dataset.terminals.astype(np.float32), self.device)
        self.state = _tensor(dataset.state, self.device)
        self.legals = _tensor(dataset.legals, self.device)
        self.td_indices = _tensor(dataset.td_indices(), self.device)
        self.next_index = _tensor(dataset._next_index, self.device)
        if len(self.td_indices) == 0:
            raise DatasetError("dataset has no usable transitions (every episode is one truncated step)")
        # A CPU generator gives the same stream on every device, so results do not depend on the accelerator.
        self.generator = torch.Generator().manual_seed(int(seed))

    def _population(self) -> int:
        return len(self.td_indices)

    def sample(self) -> Batch:
        """Draw one batch of ``batch_size`` transitions."""
        i = torch.randint(len(self.td_indices), (self.batch_size,), generator=self.generator)
        t = self.td_indices[i.to(self.device)]
        nt = self.next_index[t]
        has_state, has_legals = self.state is not None, self.legals is not None
        return Batch(
            obs=self.obs[t], actions=self.actions[t], rewards=self.rewards[t], next_obs=self.obs[nt],
            dones=self.dones[t],
            state=self.state[t] if has_state else None, next_state=self.state[nt] if has_state else None,
            legals=self.legals[t] if has_legals else None, next_legals=self.legals[nt] if has_legals else None,
            next_actions=self.actions[nt],
        )



@dataclass
class SegmentBatch:
    """Windows of ``history`` steps before a step t and ``horizon`` steps from t on: L = history + horizon positions,
    with t at position ``history``.

    obs [B, L, N, obs_dim]; actions [B, L, N, act_dim] float or [B, L, N] int64; mask [B, L] float, 1 where the
    position lies inside t's episode (padding repeats the episode's first or last step, so it is a valid input but
    carries no new information); returns [B] float, the discounted return-to-go from t (sum over k >= t of
    discount^(k - t) times the mean agent reward), scaled to [0, 1] by the dataset's range of that quantity;
    legals [B, L, N, n_actions] bool or None.
    """

    obs: torch.Tensor
    actions: torch.Tensor
    mask: torch.Tensor
    returns: torch.Tensor
    legals: torch.Tensor | None = None


def returns_to_go(rewards: np.ndarray, episode_starts: np.ndarray, episode_lengths: np.ndarray,
                  discount: float) -> np.ndarray:
    """Per step t: sum over the rest of t's episode of discount^(k - t) r_k ([T] float64; rewards [T]).

    Vectorised with weights w_k = discount^(k - start): RTG_t = (sum over k >= t of w_k r_k) / w_t, in float64
    (exact enough while discount^length stays far above the float64 minimum; longer episodes fall back to a scan).
    """
    rewards = np.asarray(rewards, dtype=np.float64)
    starts = np.repeat(episode_starts, episode_lengths)
    offset = np.arange(len(rewards)) - starts
    if discount < 1.0 and episode_lengths.max() * -np.log(discount) > 600:
        out = np.empty_like(rewards)
        for s, n in zip(episode_starts, episode_lengths):
            acc = 0.0
            for k in range(s + n - 1, s - 1, -1):
                acc = rewards[k] + discount * acc
                out[k] = acc
        return out
    weights = discount ** offset.astype(np.float64)
    weighted = weights * rewards
    # suffix sums within each episode: total of the episode minus the prefix before t
    prefix = np.cumsum(weighted) - weighted
    episode_total = np.add.reduceat(weighted, episode_starts)
    before = prefix - np.repeat(prefix[episode_starts], episode_lengths)
    return (np.repeat(episode_total, episode_lengths) - before) / weights


class SegmentSampler(_ResumableSampler):
    """Uniform sampling of windows (see ``SegmentBatch``) around every stored step, with its own seeded generator.

    Windows never cross an episode boundary: positions before the episode's first step repeat it, positions after
    its last step repeat that one, and ``mask`` marks them 0. ``state_dict()``/``load_state_dict()`` capture the
    generator, as TransitionSampler's do, so a resumed run draws the batches an uninterrupted run would have drawn.
    """

    def __init__(self, dataset: Dataset, batch_size: int, history: int, horizon: int, discount: float,
                 device: torch.device | str = "cpu", seed: int = 0):
        if history < 0 or horizon < 1:
            raise DatasetError(f"segments need history >= 0 and horizon >= 1, got history={history}, "
                               f"horizon={horizon}")
        self.batch_size, self.history, self.horizon = int(batch_size), int(history), int(horizon)
        self.device = torch.device(device)
        self.obs = _tensor(dataset.obs, self.device)
        self.actions = _tensor(dataset.actions, self.device)
        self.legals = _tensor(dataset.legals, self.device)
        lengths = dataset.episode_lengths
        self.first = _tensor(np.repeat(dataset.episode_starts, lengths), self.device)
        self.last = _tensor(np.repeat(dataset.episode_ends, lengths), self.device)
        rtg = returns_to_go(dataset.rewards.mean(axis=1, dtype=np.float64), dataset.episode_starts, lengths,
                            discount)
        low, high = float(rtg.min()), float(rtg.max())
        scaled = (rtg - low) / (high - low) if high > low else np.zeros_like(rtg)
        self.returns = _tensor(scaled.astype(np.float32), self.device)
        self.offsets = torch.arange(-self.history, self.horizon, device=self.device)
        self.generator = torch.Generator().manual_seed(int(seed))

    _population_name = "steps"

    def _population(self) -> int:
        return len(self.obs)

    def sample(self) -> SegmentBatch:
        """Draw ``batch_size`` windows centred (at position ``history``) on uniformly drawn steps."""
        t = torch.randint(len(self.obs), (self.batch_size,), generator=self.generator).to(self.device)
        raw = t[:, None] + self.offsets  # [B, L]
        first, last = self.first[t][:, None], self.last[t][:, None]
        idx = torch.minimum(torch.maximum(raw, first), last)
        return SegmentBatch(
            obs=self.obs[idx], actions=self.actions[idx], mask=((raw >= first) & (raw <= last)).float(),
            returns=self.returns[t], legals=self.legals[idx] if self.legals is not None else None,
        )

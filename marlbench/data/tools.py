"""Dataset tools in the spirit of OG-MARL's vault utilities: select episodes, subsample (uniformly or matching a
return distribution), combine. Whole episodes are always kept together, so boundaries and next observations stay
valid.
"""
from __future__ import annotations

import numpy as np

from marlbench.data.dataset import FIELDS, Dataset
from marlbench.errors import DatasetError


def select_episodes(dataset: Dataset, episodes: np.ndarray, metadata: dict | None = None) -> Dataset:
    """A new dataset of the given episode indices, in the given order."""
    episodes = np.asarray(episodes, dtype=np.int64)
    if episodes.size == 0:
        raise DatasetError("the selection holds no episode")
    starts, lengths = dataset.episode_starts[episodes], dataset.episode_lengths[episodes]
    offsets = np.repeat(starts - np.concatenate(([0], np.cumsum(lengths)[:-1])), lengths)
    rows = np.arange(int(lengths.sum())) + offsets
    arrays = {name: None if getattr(dataset, name) is None else getattr(dataset, name)[rows] for name in FIELDS}
    return Dataset(**arrays, metadata={**dataset.metadata, **(metadata or {})})


def _take_until(order: np.ndarray, lengths: np.ndarray, transitions: int) -> np.ndarray:
    """The prefix of ``order`` whose episode lengths sum to at most ``transitions`` (at least one episode)."""
    total = np.cumsum(lengths[order])
    return order[:max(1, int(np.searchsorted(total, transitions, side="right")))]


def subsample(dataset: Dataset, episodes: int | None = None, transitions: int | None = None, seed: int = 0,
              match_returns: np.ndarray | None = None, bins: int = 20) -> Dataset:
    """Keep a random subset of whole episodes: ``episodes`` of them, or as many as fit in ``transitions`` steps.

    ``match_returns`` (episode returns of another dataset) makes the kept episodes follow that return
    distribution: returns are cut into ``bins`` equal-width bins over the union range, every bin gets episodes in
    proportion to the target's histogram, drawn without replacement from this dataset's episodes in the bin (a bin
    this dataset cannot fill keeps all it has). Episode order stays the dataset's.
    """
    if (episodes is None) == (transitions is None):
        raise DatasetError("subsample needs exactly one of episodes or transitions")
    if (episodes or transitions) < 1:
        raise DatasetError(f"subsample size must be at least 1, got {episodes or transitions}")
    rng = np.random.default_rng(seed)
    lengths = dataset.episode_lengths
    if match_returns is None:
        order = rng.permutation(dataset.n_episodes)
    else:
        order = _matching_order(dataset.episode_returns(), np.asarray(match_returns, float), bins, rng)
    chosen = order[:episodes] if episodes is not None else _take_until(order, lengths, transitions)
    how = {"episodes": episodes, "transitions": transitions, "seed": seed,
           "matched_returns": match_returns is not None}
    return select_episodes(dataset, np.sort(chosen), {"subsampled": how})


def _matching_order(returns: np.ndarray, target: np.ndarray, bins: int, rng: np.random.Generator) -> np.ndarray:
    """Episode indices in an order whose every prefix follows the target histogram as closely as possible."""
    lo, hi = min(returns.min(), target.min()), max(returns.max(), target.max())
    edges = np.linspace(lo, hi, bins + 1)
    have = np.clip(np.searchsorted(edges, returns, side="right") - 1, 0, bins - 1)
    want = np.histogram(target, bins=edges)[0] / len(target)
    pools = [list(rng.permutation(np.flatnonzero(have == b))) for b in range(bins)]
    taken = np.zeros(bins)
    order = []
    # greedy: next episode from the bin furthest below its target share (bins with no target mass come last)
    while len(order) < len(returns):
        deficit = want * (len(order) + 1) - taken
        deficit[want == 0] = -1e18  # only once every bin the target covers is exhausted
        deficit[[not p for p in pools]] = -np.inf
        b = int(np.argmax(deficit))
        order.append(pools[b].pop())
        taken[b] += 1
    return np.asarray(order, dtype=np.int64)


def combine(datasets: list[Dataset], metadata: dict | None = None) -> Dataset:
    """Concatenate datasets episode-wise; dimensions, action kind and optional fields must agree."""
    if not datasets:
        raise DatasetError("combine needs at least one dataset")
    first = datasets[0]
    for i, d in enumerate(datasets[1:], 1):
        for what, a, b in (("n_agents", first.n_agents, d.n_agents), ("obs_dim", first.obs_dim, d.obs_dim),
                           ("action kind", first.discrete, d.discrete), ("action_dim", first.action_dim, d.action_dim),
                           ("has legals", first.legals is not None, d.legals is not None),
                           ("state_dim", first.state_dim, d.state_dim)):
            if a != b:
                raise DatasetError(f"cannot combine: dataset {i} has {what} {b}, dataset 0 has {a}")
    arrays = {name: None if getattr(first, name) is None else
              np.concatenate([getattr(d, name) for d in datasets]) for name in FIELDS}
    parts = [{k: d.metadata.get(k) for k in ("task", "source", "quality")} | {"transitions": d.n_transitions}
             for d in datasets]
    meta = {**first.metadata, "combined_from": parts, **(metadata or {})}
    return Dataset(**arrays, metadata=meta)

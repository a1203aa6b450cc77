"""rliable aggregates with stratified-bootstrap confidence intervals and a fixed random state.

Scores enter as normalised scores on the 0-100 scale (analysis/references.py) and are divided by 100 before
rliable sees them, so the optimality gap uses rliable's default threshold gamma = 1 (= the expert reference);
every result is reported back on the 0-100 scale.

Reproducibility: rliable 1.2's StratifiedBootstrap draws its resampling indices from NumPy's *global* generator
(``np.random.choice`` in ``update_indices``), not from the ``random_state`` it accepts. Every bootstrap here
therefore runs inside ``fixed_global_seed(seed)``, which seeds the global generator and restores its previous state
afterwards. Each algorithm (and each pair) is bootstrapped under the same seed, so its interval does not depend on
which other algorithms are in the table.
"""
from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from marlbench.errors import require

AGGREGATES = ("iqm", "mean", "median", "optimality_gap")
AGGREGATE_LABELS = {"iqm": "IQM", "mean": "Mean", "median": "Median", "optimality_gap": "Optimality gap"}
DEFAULT_REPS = 2000
DEFAULT_SEED = 0
CONFIDENCE = 0.95
METHOD = "percentile"


def _rliable():
    require("pandas", "analysis")
    library = require("rliable.library", "analysis")
    metrics = require("rliable.metrics", "analysis")
    return library, metrics


@contextlib.contextmanager
def fixed_global_seed(seed: int):
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        yield
    finally:
        np.random.set_state(state)


@dataclass(frozen=True)
class Interval:
    point: float
    low: float
    high: float

    def fmt(self, decimals: int = 1) -> str:
        return f"{self.point:.{decimals}f} [{self.low:.{decimals}f}, {self.high:.{decimals}f}]"


def _aggregate_func(metrics):
    def func(x: np.ndarray) -> np.ndarray:
        return np.array([metrics.aggregate_iqm(x), metrics.aggregate_mean(x), metrics.aggregate_median(x),
                         metrics.aggregate_optimality_gap(x)])
    return func


def aggregate_intervals(scores: Mapping[str, np.ndarray], reps: int = DEFAULT_REPS, seed: int = DEFAULT_SEED,
                        confidence: float = CONFIDENCE) -> dict[str, dict[str, Interval]]:
    """IQM, mean, median and optimality gap of each algorithm's ``[runs, tasks]`` normalised scores (0-100), with
    ``confidence`` stratified-bootstrap intervals (percentile method, ``reps`` resamples, seed ``seed``)."""
    library, metrics = _rliable()
    func = _aggregate_func(metrics)
    out = {}
    for algo, x in scores.items():
        with fixed_global_seed(seed):
            point, ci = library.get_interval_estimates({algo: np.asarray(x, float) / 100.0}, func, method=METHOD,
                                                       reps=reps, confidence_interval_size=confidence)
        p, c = point[algo] * 100.0, ci[algo] * 100.0
        out[algo] = {name: Interval(float(p[i]), float(c[0, i]), float(c[1, i])) for i, name in enumerate(AGGREGATES)}
    return out


def mean_intervals(values: Mapping[str, np.ndarray], reps: int = DEFAULT_REPS, seed: int = DEFAULT_SEED,
                   confidence: float = CONFIDENCE) -> dict[str, Interval]:
    """Mean over runs and tasks of any ``[runs, tasks]`` quantity (inference ms, training seconds) with a
    stratified-bootstrap interval; no rescaling."""
    library, metrics = _rliable()
    out = {}
    for algo, x in values.items():
        with fixed_global_seed(seed):
            point, ci = library.get_interval_estimates({algo: np.asarray(x, float)},
                                                       lambda s: np.array([metrics.aggregate_mean(s)]),
                                                       method=METHOD, reps=reps, confidence_interval_size=confidence)
        out[algo] = Interval(float(point[algo][0]), float(ci[algo][0, 0]), float(ci[algo][1, 0]))
    return out


def average_probability_of_improvement(scores_x: np.ndarray, scores_y: np.ndarray) -> float:
    """rliable.metrics.probability_of_improvement, vectorised: per task the Mann-Whitney U statistic
    P(X > Y) + P(X = Y) / 2 over all run pairs, averaged over tasks. rliable computes the same number with one
    scipy.stats.mannwhitneyu call per task (about 2 ms each with scipy 1.17), which makes 2,000 bootstrap
    resamples over 34 tasks and 11 baselines take half an hour; tests/test_analysis_tables.py checks that both
    agree."""
    x, y = scores_x[:, None, :], scores_y[None, :, :]
    per_task = (x > y).mean(axis=(0, 1)) + 0.5 * (x == y).mean(axis=(0, 1))
    return float(per_task.mean())


def probability_of_improvement(scores: Mapping[str, np.ndarray], target: str, reps: int = DEFAULT_REPS,
                               seed: int = DEFAULT_SEED, confidence: float = CONFIDENCE) -> dict[str, Interval]:
    """P(target > baseline) averaged over tasks (rliable's estimator), for every other algorithm, with intervals
    from rliable's StratifiedIndependentBootstrap (each algorithm's runs resampled independently within tasks)."""
    library, _ = _rliable()
    out = {}
    for algo in scores:
        if algo == target:
            continue
        pair = [np.asarray(scores[target], float), np.asarray(scores[algo], float)]
        with fixed_global_seed(seed):
            point, ci = library.get_interval_estimates({algo: pair}, average_probability_of_improvement,
                                                       method=METHOD, reps=reps,
                                                       confidence_interval_size=confidence)
        out[algo] = Interval(float(np.squeeze(point[algo])), float(np.squeeze(ci[algo][0])),
                             float(np.squeeze(ci[algo][1])))
    return out


def performance_profiles(scores: Mapping[str, np.ndarray], taus: Sequence[float], reps: int = DEFAULT_REPS,
                         seed: int = DEFAULT_SEED, confidence: float = CONFIDENCE):
    """rliable score distributions: fraction of runs with normalised score > tau, with bootstrap bands.
    Returns ({algo: profile[len(taus)]}, {algo: ci[2, len(taus)]})."""
    library, _ = _rliable()
    taus = np.asarray(taus, float)
    profiles, cis = {}, {}
    for algo, x in scores.items():
        with fixed_global_seed(seed):
            p, c = library.create_performance_profile({algo: np.asarray(x, float)}, taus, reps=reps,
                                                      confidence_interval_size=confidence)
        profiles[algo], cis[algo] = p[algo], c[algo]
    return profiles, cis


def curve_iqm(curves: Mapping[str, np.ndarray], reps: int = DEFAULT_REPS, seed: int = DEFAULT_SEED,
              confidence: float = CONFIDENCE):
    """IQM over runs x tasks at every step of ``[runs, tasks, steps]`` arrays (normalised, 0-100), with
    stratified-bootstrap bands. Returns ({algo: iqm[steps]}, {algo: ci[2, steps]})."""
    library, _ = _rliable()
    from scipy.stats import trim_mean

    def func(x: np.ndarray) -> np.ndarray:
        return trim_mean(x.reshape(-1, x.shape[-1]), proportiontocut=0.25, axis=0)

    points, cis = {}, {}
    for algo, x in curves.items():
        with fixed_global_seed(seed):
            p, c = library.get_interval_estimates({algo: np.asarray(x, float)}, func, method=METHOD, reps=reps,
                                                  confidence_interval_size=confidence)
        points[algo], cis[algo] = p[algo], c[algo]
    return points, cis

"""Had a run converged? The plateau test of a learning curve.

A table compares final policies; a cell whose runs were still improving at the budget compares a snapshot, not a
result. The test reads each seed's learning curve (the ``"curve"`` lines of metrics.jsonl: the mean return of
the curve evaluations and of the final evaluation, with the std of their episode returns and the episode count):

1. **Per seed.** The points in the last quarter of the budget (step >= 3/4 of the final step, the final
   evaluation included). Least-squares slope b of the mean return on the step, and the change it implies over the
   quarter, ``delta = b * budget / 4``. Its standard error from evaluation noise alone: with
   ``se_j = std_j / sqrt(episodes_j)`` and least-squares weights ``w_j = (s_j - mean s) / sum (s - mean s)^2``,
   ``se(b)^2 = sum w_j^2 se_j^2``.
2. **Per cell** (algorithm, task): the mean delta over seeds. Its noise is the larger of the evaluation noise,
   ``sqrt(sum se_i^2) / n``, and the seed-to-seed spread, ``std(delta_i, ddof=1) / sqrt(n)`` (with 2+ seeds).
3. Verdicts, in normalised points where the task has references (else in return units, the tolerance then being
   ``relative_tolerance`` of the mean final |return|):

   - **rising** / **falling**: ``|mean delta| > 2 noise``, a trend the evaluations can see;
   - **plateau**: no visible trend, and the curve is precise enough to have seen one larger than ``tolerance``
     (``2 noise <= tolerance``, default 5 normalised points);
   - **undetermined**: no visible trend, but the evaluations are too noisy to rule out one larger than the
     tolerance (more curve-evaluation episodes or more points in the last quarter would decide it);
   - **unknown**: fewer than two points in the last quarter (``eval_every`` above a quarter of the budget), or
     records without the std of their curve evaluations (written before it was recorded).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from marlbench.analysis import references as refs

PLATEAU, RISING, FALLING, UNDETERMINED, UNKNOWN = "plateau", "rising", "falling", "undetermined", "unknown"
Z = 2.0  # the change must exceed twice its noise to count as a trend
TOLERANCE = 5.0  # normalised points: the largest change over the last quarter still called a plateau
RELATIVE_TOLERANCE = 0.05  # the same for tasks without references, as a fraction of the mean final |return|


@dataclass(frozen=True)
class SeedTrend:
    delta: float  # fitted change of the mean return over the last quarter of the budget
    se: float  # its standard error from evaluation noise
    points: int  # curve points in the last quarter


@dataclass(frozen=True)
class Convergence:
    verdict: str  # plateau, rising, falling, undetermined or unknown
    delta: float | None  # mean over seeds of the fitted change over the last quarter
    noise: float | None  # the standard error it was compared with
    seeds: int
    units: str = "return"  # "normalised" (points) or "return"
    tolerance: float | None = None

    @property
    def converged(self) -> bool:
        return self.verdict == PLATEAU

    def describe(self) -> str:
        if self.verdict == UNKNOWN:
            return "unknown (fewer than two evaluations with a recorded std in the last quarter of the budget)"
        unit = " points" if self.units == "normalised" else f" ({self.units})"
        return (f"{self.verdict}: {self.delta:+.3g}{unit} over the last quarter of the budget (noise "
                f"{self.noise:.2g}, tolerance {self.tolerance:.2g}, {self.seeds} seeds)")


def seed_trend(steps, means, stds, episodes) -> SeedTrend | None:
    """The last-quarter trend of one seed's curve (arrays over its curve points); None with fewer than two points."""
    steps = np.asarray(steps, dtype=np.float64)
    means, stds = np.asarray(means, dtype=np.float64), np.asarray(stds, dtype=np.float64)
    episodes = np.asarray(episodes, dtype=np.float64)
    budget = steps.max()
    last = steps >= 0.75 * budget
    if last.sum() < 2:
        return None
    s, m = steps[last], means[last]
    se = stds[last] / np.sqrt(np.maximum(episodes[last], 1.0))
    centred = s - s.mean()
    weights = centred / np.square(centred).sum()
    slope = float(weights @ m)
    slope_se = float(np.sqrt(np.square(weights * se).sum()))
    quarter = budget / 4
    return SeedTrend(slope * quarter, slope_se * quarter, int(last.sum()))


def cell_convergence(trends: list[SeedTrend | None], scale: float | None = None, tolerance: float = TOLERANCE,
                     final_return: float | None = None) -> Convergence:
    """Combine the seeds of one (algorithm, task) cell. ``scale``: normalised points per return unit (the task's
    100 / (expert - random)); without it the tolerance is RELATIVE_TOLERANCE x |final_return| in return units."""
    known = [t for t in trends if t is not None]
    if not known:
        return Convergence(UNKNOWN, None, None, len(trends))
    if scale is not None:
        known = [SeedTrend(t.delta * scale, t.se * abs(scale), t.points) for t in known]
        units = "normalised"
    else:
        units = "return"
        tolerance = RELATIVE_TOLERANCE * abs(final_return) if final_return else float("inf")
    deltas = np.array([t.delta for t in known])
    n = len(known)
    evaluation = math.sqrt(sum(t.se ** 2 for t in known)) / n
    spread = float(deltas.std(ddof=1)) / math.sqrt(n) if n > 1 else 0.0
    noise = max(evaluation, spread)
    mean = float(deltas.mean())
    if abs(mean) > Z * noise:
        verdict = RISING if mean > 0 else FALLING
    else:
        verdict = PLATEAU if Z * noise <= tolerance else UNDETERMINED
    return Convergence(verdict, mean, noise, n, units, tolerance)


def convergence_by_cell(curves, tolerance: float = TOLERANCE) -> dict[tuple[str, str], Convergence]:
    """{(algorithm, task): Convergence} from a curves frame (analysis/reader.py CURVE_COLUMNS: algorithm, task,
    seed, step, return, return_std, episodes, final). Curve points without a std or an episode count are skipped;
    a cell without any usable seed is ``unknown``."""
    out: dict[tuple[str, str], Convergence] = {}
    for (algo, task), cell in curves.groupby(["algorithm", "task"], sort=False):
        trends = []
        for _, run in cell.groupby(["run_id", "seed"], sort=False):
            run = run.dropna(subset=["return", "return_std", "episodes"]).sort_values("step")
            trends.append(seed_trend(run["step"], run["return"], run["return_std"], run["episodes"])
                          if len(run) else None)
        ref = refs.reference(task)
        scale = 100.0 / (ref.expert - ref.random) if ref is not None else None
        final_return = cell.loc[cell["final"].astype(bool), "return"].mean()
        out[(algo, task)] = cell_convergence(trends, scale, tolerance, final_return)
    return out

"""The plateau test of learning curves (analysis/convergence.py)."""
import numpy as np
import pandas as pd
import pytest

from marlbench.analysis.convergence import (
    FALLING,
    PLATEAU,
    RISING,
    UNDETERMINED,
    UNKNOWN,
    cell_convergence,
    convergence_by_cell,
    seed_trend,
)


def test_seed_trend_is_the_least_squares_change_over_the_last_quarter():
    steps = [2000, 4000, 6000, 7000, 8000]
    means = [0.0, 10.0, 20.0, 23.0, 26.0]  # slope 3 per 1000 steps over the last quarter
    trend = seed_trend(steps, means, [10.0] * 5, [10, 10, 10, 10, 32])
    assert trend.points == 3
    assert trend.delta == pytest.approx(3e-3 * 2000)
    # se(b)^2 = sum w_j^2 se_j^2 with w = (s - mean s) / sum (s - mean s)^2
    se = np.array([10 / np.sqrt(10), 10 / np.sqrt(10), 10 / np.sqrt(32)])
    w = np.array([-1000.0, 0.0, 1000.0]) / 2e6
    assert trend.se == pytest.approx(np.sqrt(np.sum((w * se) ** 2)) * 2000)
    assert seed_trend([2000, 4000, 8000], [0, 1, 2], [1, 1, 1], [10, 10, 10]) is None  # one point in the quarter


def test_cells_are_rising_falling_plateau_or_unknown():
    def trend(delta, se=1.0):
        return seed_trend([6000, 8000], [0.0, delta], [se * np.sqrt(10)] * 2, [10, 10])

    assert cell_convergence([trend(20.0), trend(25.0), trend(22.0)]).verdict == RISING
    assert cell_convergence([trend(-20.0), trend(-25.0), trend(-22.0)]).verdict == FALLING
    assert cell_convergence([trend(1.0), trend(-1.5), trend(0.5)]).verdict == PLATEAU
    # seeds that disagree wildly: the seed-to-seed spread is the noise, so no trend is claimed
    assert cell_convergence([trend(40.0), trend(-35.0), trend(5.0)]).verdict == PLATEAU
    assert cell_convergence([None, None]).verdict == UNKNOWN
    # in normalised points (scale = 100 / (expert - random)): a flat but noisy curve cannot rule out a trend
    # larger than the tolerance, a flat precise one can
    noisy = [trend(0.5, se=20.0) for _ in range(3)]
    assert cell_convergence(noisy, scale=1.0, tolerance=5.0).verdict == UNDETERMINED
    assert cell_convergence(noisy, scale=1.0, tolerance=50.0).verdict == PLATEAU
    precise = cell_convergence([trend(0.5, se=0.5) for _ in range(3)], scale=2.0, tolerance=5.0)
    assert precise.verdict == PLATEAU and precise.units == "normalised" and precise.delta == pytest.approx(1.0)
    # without references the tolerance is 5% of the mean final |return|
    assert cell_convergence(noisy, final_return=-300.0).verdict == UNDETERMINED  # 2 noise = 33 > 15
    assert cell_convergence(noisy, final_return=-100000.0).verdict == PLATEAU
    assert "unknown" in cell_convergence([None]).describe()


def test_cells_from_a_curves_frame():
    rows = []
    for seed in range(3):
        for step, ret in ((2000, 0.0), (4000, 10.0), (6000, 20.0), (8000, 30.0 + seed)):
            rows.append(dict(algorithm="slow", task="t", run_id="r", seed=seed, step=step, **{"return": ret},
                             return_std=5.0, episodes=32 if step == 8000 else 10, final=step == 8000))
            rows.append(dict(algorithm="flat", task="t", run_id="r", seed=seed, step=step,
                             **{"return": 1000.0 + seed}, return_std=5.0, episodes=10, final=step == 8000))
            rows.append(dict(algorithm="old", task="t", run_id="r", seed=seed, step=step, **{"return": ret},
                             return_std=None, episodes=10, final=step == 8000))
    cells = convergence_by_cell(pd.DataFrame(rows))
    assert cells[("slow", "t")].verdict == RISING and not cells[("slow", "t")].converged
    assert cells[("flat", "t")].converged, cells[("flat", "t")].describe()  # 2 noise < 5% of |1000|
    assert cells[("old", "t")].verdict == UNKNOWN  # records without the std of their evaluations


def test_standard_profile_is_quick_networks_at_the_converged_budget():
    """The `standard` profile (issue 18): every algorithm's config equals the quick profile's except the budget and
    the evaluation cadence (32k steps, 32-episode curve points every 2k on MPE and SMAX, so the plateau test can
    decide)."""
    from dataclasses import asdict

    from marlbench import catalog
    from marlbench.config import resolve
    from marlbench.registry import ALGORITHMS

    catalog.load()
    for name in ALGORITHMS.names():
        for benchmark in ("mpe", "mamujoco", "smax"):
            quick, standard = (resolve(ALGORITHMS.get(name), benchmark, p) for p in ("quick", "standard"))
            assert asdict(standard.algorithm) == asdict(quick.algorithm), (name, benchmark)
            assert standard.protocol.steps == 32_000 and standard.protocol.eval_every == 2_000
            # MA-MuJoCo keeps quick's evaluation sizes (1,000-step episodes)
            assert standard.protocol.curve_eval_episodes == (32 if benchmark != "mamujoco" else 5)

"""The discrete Spread task: action mapping, determinism, reference scores, and discrete BC learning on it."""
import numpy as np
import pytest
from learning import train_and_score

from marlbench.envs.mpe import SpreadEnv
from marlbench.envs.spread_discrete import (
    MEASURED_SCORES,
    MOVES,
    DiscreteSpreadEnv,
    discretise,
    generate_discrete_spread,
    measure_scores,
)


def test_moves_are_the_continuous_unit_actions():
    discrete, continuous = DiscreteSpreadEnv(4), SpreadEnv(4)
    discrete.reset(3), continuous.reset(3)
    moves = np.random.default_rng(0).integers(0, 5, (4, 3))
    a, b = discrete.step(moves), continuous.step(MOVES[moves])
    assert np.array_equal(a.obs, b.obs) and np.array_equal(a.rewards, b.rewards)
    with pytest.raises(ValueError, match="integers"):
        discrete.step(MOVES[moves])
    with pytest.raises(ValueError, match="moves must be in"):
        discrete.step(np.full((4, 3), 5))


def test_discretise_picks_the_closest_move():
    assert discretise(np.array([[0.9, 0.2], [-0.1, -0.8], [0.1, 0.1], [-0.5, 0.45]])).tolist() == [1, 4, 0, 2]


def test_generation_is_deterministic_and_reference_scores_hold():
    a, b = generate_discrete_spread(40, seed=3), generate_discrete_spread(40, seed=3)
    assert a.checksum() == b.checksum() and a.actions.dtype.kind == "i" and a.actions.max() < 5
    assert measure_scores(1000, 0) == pytest.approx(MEASURED_SCORES, abs=1e-3)


@pytest.mark.slow
def test_discrete_bc_beats_random_by_margin(tmp_path):
    score, random = train_and_score("bc", "mpe/spread-discrete-scripted", tmp_path)
    assert score >= random + 30

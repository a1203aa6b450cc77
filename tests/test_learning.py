"""Learning tests (quick profile, fixed seeds): each algorithm must end well above the random policy."""
import pytest
from learning import train_and_score

MARGIN = 30.0  # normalised points above the uniform-random policy


@pytest.mark.slow
@pytest.mark.parametrize("algorithm", ["macflow", "bc"])
def test_beats_random_policy_by_margin(algorithm, tmp_path, spread_dataset):
    score, random = train_and_score(algorithm, "mpe/spread-scripted", tmp_path)
    assert score >= random + MARGIN

"""Learning tests (quick profile, fixed seeds): each algorithm must end well above the random policy."""
import numpy as np
import pytest
import torch

import marlbench.catalog  # noqa: F401
from marlbench.config import resolve
from marlbench.executors import run_local
from marlbench.protocol import EVAL_SEED_OFFSET, evaluate
from marlbench.registry import ALGORITHMS
from marlbench.tasks import get_task

TASK = "mpe/spread-scripted"
MARGIN = 30.0  # normalised points above the uniform-random policy (issue #2)


class UniformRandom:
    device = torch.device("cpu")

    def __init__(self, spec):
        self.spec = spec

    def act(self, obs, legals=None):
        return torch.rand(*obs.shape[:-1], self.spec.action_dim) * 2 - 1


@pytest.mark.parametrize("algorithm", ["macflow", "bc"])
def test_beats_random_policy_by_margin(algorithm, tmp_path, spread_dataset):
    task = get_task(TASK)
    resolved = resolve(ALGORITHMS.get(algorithm), task.benchmark, "quick")
    (record,) = run_local(algorithm, TASK, [0], resolved, tmp_path, show_progress=False)
    # the random policy on the very same evaluation episodes
    random_returns = evaluate(UniformRandom(task.spec), task, resolved.protocol.eval_episodes, EVAL_SEED_OFFSET)
    random_score = task.spec.normalise(float(np.mean(random_returns)))
    print(f"{algorithm}: {record['normalised_score']:.1f} vs random {random_score:.1f} "
          f"(dataset mean {task.spec.normalise(record['dataset']['return_mean']):.1f})")
    assert record["normalised_score"] >= random_score + MARGIN

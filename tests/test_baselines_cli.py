"""Every registered algorithm trains and evaluates through `marlbench run` on mpe/spread-medium (continuous) and,
where it supports discrete actions, on games/coordination (smoke budget: records, not claims)."""
import json

import pytest

from marlbench.cli import main
from marlbench.data.formats.native import save_native
from marlbench.registry import ALGORITHMS
from marlbench.tasks import get_task

BUILT_IN = ["bc", "icq", "mabcq", "macflow", "macql", "matd3bc", "omar", "omiga"]
SMOKE = ["--seeds", "1", "--profile", "quick", "--steps", "20", "--set", "eval_episodes=4",
         "--set", "latency_calls=5", "--set", "latency_warmup=1", "--workers", "1"]


@pytest.fixture(scope="module")
def small_spread_medium(data_dir):
    """A 100-episode mpe/spread-medium in the test cache (the default is the public 40,000 episodes)."""
    task = get_task("mpe/spread-medium")
    if not task.dataset_path.exists():
        save_native(task.generate(100, 0), task.dataset_path)
    return task


def test_every_built_in_algorithm_is_registered():
    assert set(BUILT_IN) <= set(ALGORITHMS.names())


@pytest.mark.parametrize("algorithm", BUILT_IN)
def test_runs_on_spread_medium_and_coordination(algorithm, tmp_path, small_spread_medium, capsys):
    tasks = ["mpe/spread-medium"] + (["games/coordination"] if ALGORITHMS.get(algorithm).discrete else [])
    for task in tasks:
        assert main(["run", "--algo", algorithm, "--task", task, *SMOKE, "--results", str(tmp_path)]) == 0
        (record,) = (tmp_path / task).rglob("final.json")
        final = json.loads(record.read_text())
        assert final["algorithm"] == algorithm and final["steps"] == 20
        assert final["normalised_score"] == final["normalised_score"]  # finite, not NaN

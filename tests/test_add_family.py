"""Adding a task family takes one module and one registration call: a toy family written to a temporary module
runs through `marlbench run`, and `marlbench table` and the result figures show it with its own label, its place in
the order and its action kind. Nothing in the package is edited."""
import json
import pickle
import sys
import textwrap

import pytest

from marlbench import cli
from marlbench.analysis import figures, tables
from marlbench.analysis.reader import read_results
from marlbench.registry import FAMILIES, TASKS
from marlbench.tasks import get_task, register_family

TOY_MODULE = '''
"""A toy task family: two agents pick 0 or 1 and score 1 when they agree; the data agrees half the time."""
from functools import partial

import numpy as np

from marlbench.envs.rollout import rollout
from marlbench.envs.base import BatchedMultiAgentEnv, EnvStep
from marlbench.spec import TaskSpec
from marlbench.tasks import Family, Task

SPEC = TaskSpec(name="toy/match-mixed", n_agents=2, obs_dim=1, action_kind="discrete", action_dim=2,
                episode_limit=1, random_score=0.5, expert_score=1.0, normalisation_source="analytic")


class MatchEnv(BatchedMultiAgentEnv):
    def __init__(self, num_envs, spec=SPEC):
        self.spec, self.num_envs = spec, num_envs

    def _step(self, rewards, done):
        return EnvStep(np.zeros((self.num_envs, 2, 1), np.float32), rewards.astype(np.float32),
                       np.full(self.num_envs, done), np.zeros(self.num_envs, bool))

    def reset(self, seed):
        return self._step(np.zeros((self.num_envs, 2)), False)

    def step(self, actions):
        agree = (np.asarray(actions)[:, 0] == np.asarray(actions)[:, 1]).astype(np.float32)
        return self._step(np.repeat(agree[:, None], 2, 1), True)


def uniform(rng, step):
    return rng.integers(0, 2, (step.obs.shape[0], 2))


def generate(episodes, seed):
    data = rollout(MatchEnv(100), partial(uniform, np.random.default_rng(seed)), episodes, seed)
    data.metadata.update({"task": SPEC.name, "source": "generated", "quality": "mixed"})
    return data


def tasks():
    return [(Task(SPEC.name, "toy", "match", "mixed", spec=SPEC, make_env=MatchEnv, generate=generate,
                  default_episodes=400, description="two agents agree or not"), ("match-mixed",))]


FAMILY = Family("toy", "Toy Match", order=45, tasks=tasks)
'''


@pytest.fixture
def toy_family(tmp_path, monkeypatch):
    """The toy module on sys.path, and registries restored afterwards."""
    (tmp_path / "toy_family.py").write_text(textwrap.dedent(TOY_MODULE))
    monkeypatch.syspath_prepend(str(tmp_path))
    for registry in (TASKS, FAMILIES):
        monkeypatch.setattr(registry, "_items", dict(registry._items))
        monkeypatch.setattr(registry, "_aliases", dict(registry._aliases))
    import toy_family

    yield toy_family
    sys.modules.pop("toy_family", None)


def test_a_toy_family_runs_and_shows_in_tables_and_figures(toy_family, tmp_path, spread_dataset, capsys):
    register_family(toy_family.FAMILY)  # the one registration call
    task = get_task("match-mixed")
    assert task.name == "toy/match-mixed" and pickle.loads(pickle.dumps(task)).name == task.name
    results = tmp_path / "results"
    for task_name in ("toy/match-mixed", "mpe/spread-scripted"):  # MPE (order 50) to be ordered against
        code = cli.main(["run", "--algo", "bc", "--task", task_name, "--steps", "40", "--seeds", "1",
                         "--workers", "1", "--results", str(results), "--no-progress", "--json"])
        assert code == 0
    capsys.readouterr()

    assert cli.main(["table", "--results", str(results), "--no-bootstrap"]) == 0
    table = capsys.readouterr().out
    assert "Toy Match" in table and "MPE" in table
    assert table.index("Toy Match") < table.index("MPE")  # order 45 before 50, though "toy" > "mpe" by name

    read = read_results(results)
    assert read.action_kinds() == {"mpe/spread-scripted": "continuous", "toy/match-mixed": "discrete"}
    assert [label for label, _ in figures.panels(read)] == ["Toy Match", "MPE", "All tasks"]
    assert figures.action_groups(read) == {"Discrete control": ["toy/match-mixed"],
                                           "Continuous control": ["mpe/spread-scripted"]}
    assert cli.main(["plot", "training", "--results", str(results), "--out", str(tmp_path / "fig"),
                     "--reps", "20"]) == 0
    assert (tmp_path / "fig").glob("training*")
    config = json.loads(next(results.rglob("toy/match-mixed/bc/*/seed_0/config.json")).read_text())
    assert config["spec"]["action_kind"] == "discrete"
    assert [s for s in tables.build_table(read, "auto", bootstrap=False).sections][0].label == "Toy Match"


def test_registering_a_family_twice_is_a_no_op_and_tasks_must_carry_its_name(toy_family):
    first = register_family(toy_family.FAMILY)
    assert register_family(toy_family.FAMILY) is first
    from marlbench.tasks import Family

    wrong = Family("other", "Other", order=1, tasks=toy_family.tasks)
    with pytest.raises(ValueError, match="benchmark 'toy', not its family's 'other'"):
        register_family(wrong)


def test_an_installed_package_adds_a_family_through_an_entry_point(toy_family, monkeypatch):
    """`marlbench.catalog.load()` registers families declared under the entry-point group `marlbench.families`."""
    from importlib import metadata

    from marlbench import catalog

    point = metadata.EntryPoint(name="toy", value="toy_family:FAMILY", group=catalog.FAMILY_ENTRY_POINT_GROUP)
    monkeypatch.setattr(catalog.metadata, "entry_points",
                        lambda group: [point] if group == catalog.FAMILY_ENTRY_POINT_GROUP else [])
    assert "toy" not in FAMILIES
    catalog.load()
    assert FAMILIES.get("toy").label == "Toy Match" and get_task("match-mixed").name == "toy/match-mixed"


def test_a_task_bound_to_a_file_reaches_spawned_workers(tmp_path, capsys, isolated_tasks):
    """`run --dataset` binds the task to a user's file; seed workers receive that task object pickled (no registry
    or environment variable carries it), so two workers train on the file."""
    data = tmp_path / "mine.h5"
    assert cli.main(["data", "generate", "mpe/spread-scripted", "--episodes", "20", "--out", str(data)]) == 0
    code = cli.main(["run", "--algo", "bc", "--task", "mpe/spread-scripted", "--dataset", str(data), "--steps", "20",
                     "--seeds", "2", "--workers", "2", "--set", "eval_episodes=2", "--set", "latency_calls=2",
                     "--results", str(tmp_path / "res"), "--json"])
    out, err = capsys.readouterr()
    assert code == 0
    assert "bc mpe/spread-scripted@mine 2 seeds x 2 workers" in err and "Task(" not in err  # the progress bar
    records = json.loads(out[out.index("["):])
    assert [r["task"] for r in records] == ["mpe/spread-scripted@mine"] * 2
    assert {r["dataset"]["path"] for r in records} == {str(data)}

"""SMACv1/SMACv2 tasks (marlbench/families/smac.py): the headline command's message without StarCraft II or the
dataset, and the binding to the SMAC adapter when both are present (StarCraft II simulated by patching the check)."""
from functools import partial

import pytest

from marlbench.cli import main
from marlbench.envs.smac_adapter import make_starcraft_env
from marlbench.families import smac


def test_headline_command_says_what_is_missing_and_how_to_get_it(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("MARLBENCH_DATA_DIR", str(tmp_path))  # no dataset here
    monkeypatch.delenv("SC2PATH", raising=False)
    assert main(["run", "--algo", "macflow", "--task", "3m-good", "--seeds", "6"]) == 2
    err = capsys.readouterr().err
    assert "smacv1/3m-good" in err and "needs StarCraft II" in err
    assert "pip install git+https://github.com/oxwhirl/smac.git" in err and "SC2PATH" in err  # how to get SC2
    assert "marlbench data download og_marl/3m-good" in err  # how to get the data
    assert "smax/3m-good" in err  # the analogue without SC2


@pytest.mark.parametrize("sc2, data, expected", [
    (False, False, ["needs StarCraft II", "and the dataset og_marl/3m-good (missing"]),
    (False, True, ["needs StarCraft II", "the dataset og_marl/3m-good is downloaded"]),
    (True, False, ["StarCraft II is installed; needs the dataset og_marl/3m-good"]),
])
def test_the_message_names_which_of_the_two_is_missing(sc2, data, expected, tmp_path, monkeypatch):
    monkeypatch.setenv("MARLBENCH_DATA_DIR", str(tmp_path))
    monkeypatch.setattr(smac, "starcraft_missing", lambda version: None if sc2 else "needs the 'smac' package (x)")
    if data:
        (tmp_path / "datasets" / "og_marl").mkdir(parents=True)
        (tmp_path / "datasets" / "og_marl" / "3m-good.h5").write_bytes(b"")
    reason = smac.headline_reason("og_marl/3m-good", "v1", "smax/3m-good")
    for text in expected:
        assert text in reason
    assert ("smax/3m-good" in reason) == (not sc2)


def test_with_starcraft_and_data_the_task_binds_the_adapter_with_the_vault_layout(tmp_path, monkeypatch):
    monkeypatch.setenv("MARLBENCH_DATA_DIR", str(tmp_path))
    monkeypatch.setattr(smac, "starcraft_missing", lambda version: None)
    (tmp_path / "datasets" / "og_marl").mkdir(parents=True)
    (tmp_path / "datasets" / "og_marl" / "3m-good.h5").write_bytes(b"")
    tasks = {task.name: task for task, _ in smac.smacv1_tasks()}
    task = tasks["smacv1/3m-good"]
    assert task.blocked_reason is None
    assert (task.spec.n_agents, task.spec.obs_dim, task.spec.action_dim) == (3, 30, 9)  # OG-MARL's 3m vault
    assert task.spec.action_kind == "discrete" and task.spec.episode_limit == 60
    assert isinstance(task.make_env, partial) and task.make_env.func is make_starcraft_env
    assert task.make_env.args == ("3m", "v1")
    assert tasks["smacv1/8m-poor"].blocked_reason.startswith("StarCraft II is installed; needs the dataset")
    v2 = {task.name: task for task, _ in smac.smacv2_tasks()}["smacv2/terran_5_vs_5-replay"]
    assert v2.make_env is not None and v2.make_env.args == ("terran_5_vs_5", "v2")

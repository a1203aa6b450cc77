"""Behaviour policies: MATD3 math, the online trainer (end to end, resume), tier selection, shipped tiers."""
import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from marlbench.behaviour.history import load_replay, read_curve
from marlbench.behaviour.matd3 import MATD3, MATD3Config
from marlbench.behaviour.tiers import export_weights, generate_tier, load_manifest, select_tiers
from marlbench.behaviour.trainer import Trainer, config_with_overrides
from marlbench.envs.mpe import spread_spec
from marlbench.errors import MarlbenchError

TINY = {"env_steps": 5000, "num_envs": 10, "warmup_steps": 1000, "eval_every": 1000, "eval_episodes": 16,
        "batch_size": 32, "hidden_dims": [16, 16]}


def test_actors_are_decentralised_and_update_runs():
    spec = spread_spec()
    torch.manual_seed(0)
    agent = MATD3(spec, MATD3Config(hidden_dims=(16, 16), batch_size=8))
    obs = torch.randn(8, 3, 18)
    a = agent.act(obs)
    obs2 = obs.clone()
    obs2[:, 1:] += 1.0  # other agents' observations change
    assert torch.equal(agent.act(obs2)[:, 0], a[:, 0]) and not torch.equal(agent.act(obs2)[:, 1], a[:, 1])
    assert a.abs().max() <= 1.0
    before = [p.clone() for p in agent.actor.parameters()]
    for _ in range(2):  # policy_delay = 2: the second step updates the actor
        out = agent.update(obs, a, torch.randn(8, 3), obs2, torch.zeros(8))
    assert {"critic_loss", "actor_loss"} <= set(out)
    assert all(not torch.equal(p, q) for p, q in zip(before, agent.actor.parameters()))


def test_select_tiers_follows_the_rules():
    curve = [{"env_steps": s, "return_mean": r, "normalised": None, "snapshot": f"s{s}"}
             for s, r in ((0, 150), (10, 250), (20, 330), (30, 350), (40, 500))]
    t = select_tiers(curve, random_return=160.0)
    assert t["expert"]["env_steps"] == 40
    assert t["medium_target_return"] == 330.0 and t["medium"]["env_steps"] == 20
    assert t["medium_replay"]["env_steps"] == 20


class Interrupted(Exception):
    pass


@pytest.mark.slow
def test_trainer_end_to_end_resume_is_bit_identical(tmp_path):
    cfg = config_with_overrides(TINY)
    clean = Trainer(cfg, tmp_path / "clean", log=lambda m: None).run()

    class Killed(Trainer):  # dies in the middle of the third collection round after a checkpoint
        calls = 0

        def _collect(self, *a, **kw):
            Killed.calls += 1
            if Killed.calls == 11:
                raise Interrupted
            return super()._collect(*a, **kw)

    with pytest.raises(Interrupted):
        Killed(cfg, tmp_path / "killed", log=lambda m: None).run()
    assert not (tmp_path / "killed" / "final.json").exists()
    resumed = Trainer(cfg, tmp_path / "killed", log=lambda m: None).run()
    assert resumed["resumed_at_env_steps"] == [2000]  # rounds of 250 steps; checkpoints every 4 rounds
    strip = lambda c: [{k: v for k, v in r.items() if k != "train_seconds"} for r in c]
    assert strip(read_curve(tmp_path / "clean" / "curve.jsonl")) == strip(read_curve(tmp_path / "killed" /
                                                                                     "curve.jsonl"))
    assert len(read_curve(tmp_path / "clean" / "curve.jsonl")) == 6  # step 0 + every 1000 env steps
    a = torch.load(tmp_path / "clean" / "checkpoint.pt", weights_only=True)["agent"]
    b = torch.load(tmp_path / "killed" / "checkpoint.pt", weights_only=True)["agent"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert clean["tiers"] == resumed["tiers"]
    # the replay history holds every episode once, in order

    ra, rb = load_replay(tmp_path / "clean"), load_replay(tmp_path / "killed")
    assert ra["obs"].shape[0] == 5000 // 25 and all(np.array_equal(ra[k], rb[k]) for k in ra)
    # a different config refuses to resume into the same directory
    with pytest.raises(MarlbenchError):
        Trainer(config_with_overrides({**TINY, "seed": 1}), tmp_path / "clean", log=lambda m: None).run()

    # export: weights + manifest, then deterministic generation from them
    manifest = export_weights(tmp_path / "clean", tmp_path / "w", command="test")
    assert manifest["seed"] == 0 and manifest["command"] == "test" and manifest["tiers"] == clean["tiers"]
    for q in ("expert", "medium", "random"):
        d1 = generate_tier("mpe/spread", q, 30, seed=3, weights=tmp_path / "w")
        d2 = generate_tier("mpe/spread", q, 30, seed=3, weights=tmp_path / "w")
        assert d1.n_episodes == 30 and d1.n_transitions == 750 and d1.checksum() == d2.checksum()


@pytest.mark.slow
def test_cli_behaviour_train_end_to_end(tmp_path):
    args = ["behaviour", "train", "mpe/spread", "--out", str(tmp_path / "run"), "--env-steps", "2000",
            "--export", str(tmp_path / "w")] + [x for k, v in TINY.items() if k != "env_steps"
                                                 for x in ("--set", f"{k}={v}")]
    proc = subprocess.run([sys.executable, "-m", "marlbench.cli", *args], capture_output=True, text=True,
                          cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "expert" in proc.stdout and (tmp_path / "w" / "manifest.json").exists()
    final = json.loads((tmp_path / "run" / "final.json").read_text())
    assert final["env_steps"] == 2000
    bad = subprocess.run([sys.executable, "-m", "marlbench.cli", "behaviour", "train", "mpe/spread", "--set",
                          "actr_lr=1"], capture_output=True, text=True, cwd=tmp_path)
    assert bad.returncode == 2 and "actor_lr" in bad.stderr


# ------------------------------------------------------------------------------------------- shipped Spread tiers
@pytest.fixture(scope="module")
def shipped():
    manifest = load_manifest("mpe/spread")
    assert manifest is not None, "the Spread behaviour weights must ship with the package"
    return manifest


def test_shipped_tiers_mean_normalised_returns(shipped):
    spec = spread_spec()
    score = {}
    for q in ("random", "medium-replay", "medium", "expert"):
        returns = generate_tier("mpe/spread", q, 200, seed=0).episode_returns()
        score[q] = spec.normalise(float(returns.mean()))
    assert abs(score["random"]) <= 3, score
    assert score["medium-replay"] < score["medium"], score
    assert 20 <= score["medium"] <= 60, score
    assert score["expert"] >= 90, score


def test_generation_is_bit_reproducible_and_prefix_stable(shipped):
    a = generate_tier("mpe/spread", "expert", 60, seed=0)
    b = generate_tier("mpe/spread", "expert", 60, seed=0)
    assert a.checksum() == b.checksum()
    assert generate_tier("mpe/spread", "expert", 60, seed=1).checksum() != a.checksum()
    mr = generate_tier("mpe/spread", "medium-replay", 80, seed=0)
    assert mr.checksum() == generate_tier("mpe/spread", "medium-replay", 80, seed=0).checksum()
    me = generate_tier("mpe/spread", "medium-expert", 40, seed=0)
    assert np.array_equal(me.obs[:500], generate_tier("mpe/spread", "medium", 20, seed=0).obs)


def test_spread_tier_tasks_run_on_generated_data(shipped, tmp_path):
    from marlbench.tasks import get_task

    for q in ("expert", "medium", "medium-replay", "random"):
        task = get_task(f"spread-{q}")
        assert task.name == f"mpe/spread-{q}" and task.status()[0]
        assert task.default_episodes == shipped["default_episodes"][q]
    assert shipped["default_episodes"]["expert"] * 25 == 1_000_000
    out = tmp_path / "e.h5"
    cmd = [sys.executable, "-m", "marlbench.cli", "data", "generate", "mpe/spread-medium", "--episodes", "40",
           "--out", str(out)]
    first = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, check=True).stdout
    second = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, check=True).stdout
    assert "sha256" in first and first.split("sha256")[1] == second.split("sha256")[1]

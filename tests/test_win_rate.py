"""Run records carry the win rate of environments that report battles (an env's ``won`` flags, as SMAX and the
StarCraft II adapter expose them), and `marlbench table --metric win-rate` shows it; everything else is unchanged.

A tiny deterministic discrete task stands in for SMAX: every episode shows both agents a cue bit, lasts three
steps and is won iff agent 0 plays action 1 on the last step (reward 1 to every agent then). Its twin without a
``won`` attribute stands in for every other environment."""
from __future__ import annotations

import json
from functools import partial

import numpy as np
import pytest
import torch

from marlbench import cli
from marlbench.envs.base import BatchedMultiAgentEnv, EnvStep
from marlbench.envs.rollout import rollout
from marlbench.protocol import evaluate, evaluate_episodes
from marlbench.spec import TaskSpec
from marlbench.tasks import Task, register_task

LIMIT = 3


def spec(name: str) -> TaskSpec:
    return TaskSpec(name=name, n_agents=2, obs_dim=2, action_kind="discrete", action_dim=2, episode_limit=LIMIT,
                    random_score=0.5, expert_score=1.0, normalisation_source="analytic")


class CueEnv(BatchedMultiAgentEnv):
    """obs [B, 2, (cue, t / limit)]; the cue of episode b is drawn from the reset seed. No ``won`` attribute."""

    def __init__(self, num_envs: int, name: str = "wintest/cue-nowin"):
        self.spec, self.num_envs = spec(name), num_envs

    def _obs(self) -> np.ndarray:
        obs = np.stack([self.cue, np.full(self.num_envs, self.t / LIMIT)], -1).astype(np.float32)
        return np.repeat(obs[:, None], 2, 1)

    def reset(self, seed: int) -> EnvStep:
        self.cue, self.t = np.random.default_rng(seed).integers(0, 2, self.num_envs).astype(np.float32), 0
        zeros = np.zeros(self.num_envs, bool)
        return EnvStep(self._obs(), np.zeros((self.num_envs, 2), np.float32), zeros, zeros)

    def step(self, actions: np.ndarray) -> EnvStep:
        actions = self.check_discrete_actions(actions)
        self.t += 1
        last = self.t >= LIMIT
        win = last & (actions[:, 0] == 1)
        self.on_end(win if last else None)
        rewards = np.repeat(win.astype(np.float32)[:, None], 2, 1)
        return EnvStep(self._obs(), rewards, np.full(self.num_envs, last), np.zeros(self.num_envs, bool))

    def on_end(self, win: np.ndarray | None) -> None:
        pass


class BattleEnv(CueEnv):
    """The same episodes, reporting ``won`` [B] as SmaxEnv does (False until an episode ends won)."""

    def __init__(self, num_envs: int, name: str = "wintest/cue-battle"):
        super().__init__(num_envs, name)
        self.won = np.zeros(num_envs, bool)

    def reset(self, seed: int) -> EnvStep:
        self.won = np.zeros(self.num_envs, bool)
        return super().reset(seed)

    def on_end(self, win: np.ndarray | None) -> None:
        if win is not None:
            self.won = win.copy()


def cue_policy(rng: np.random.Generator, step: EnvStep) -> np.ndarray:
    """The behaviour data: agent 0 follows the cue 70% of the time, agent 1 plays uniformly."""
    follow = rng.random(step.obs.shape[0]) < 0.7
    a0 = np.where(follow, step.obs[:, 0, 0].astype(int), rng.integers(0, 2, step.obs.shape[0]))
    return np.stack([a0, rng.integers(0, 2, step.obs.shape[0])], -1)


def generate(env_cls, episodes: int, seed: int):
    env = env_cls(50)
    data = rollout(env, partial(cue_policy, np.random.default_rng(seed)), episodes, seed)
    data.metadata.update({"task": env.spec.name, "source": "generated", "quality": "mixed"})
    return data


def make_task(env_cls, name: str) -> Task:
    benchmark, _, rest = name.partition("/")
    scenario, _, quality = rest.rpartition("-")
    return Task(name, benchmark, scenario, quality, spec=spec(name), make_env=env_cls,
                generate=partial(generate, env_cls), default_episodes=200, description="win-rate test task")


@pytest.fixture
def tasks(isolated_tasks):
    return {"battle": register_task(make_task(BattleEnv, "wintest/cue-battle")),
            "nowin": register_task(make_task(CueEnv, "wintest/cue-nowin"))}


class FollowCue:
    """Scripted: agent 0 plays the cue (so exactly the episodes with cue 1 are won), agent 1 plays 0."""

    device = torch.device("cpu")

    def act(self, obs: torch.Tensor, legals: torch.Tensor | None) -> torch.Tensor:
        return torch.stack([obs[:, 0, 0].long(), torch.zeros(obs.shape[0], dtype=torch.long)], -1)


def test_evaluate_episodes_reads_the_win_flags(tasks):
    cue = np.random.default_rng(7).integers(0, 2, 16).astype(bool)  # the cues CueEnv.reset(7) draws
    assert 0 < cue.sum() < 16
    returns, won = evaluate_episodes(FollowCue(), tasks["battle"], 16, seed=7)
    assert won.dtype == bool and won.shape == (16,)
    assert np.array_equal(won, cue) and np.array_equal(returns, cue.astype(float))
    assert np.array_equal(evaluate(FollowCue(), tasks["battle"], 16, seed=7), returns)  # returns only, as before
    returns, won = evaluate_episodes(FollowCue(), tasks["nowin"], 16, seed=7)
    assert won is None and np.array_equal(returns, cue.astype(float))


def run(task: str, results) -> dict:
    code = cli.main(["run", "--algo", "bc", "--task", task, "--profile", "quick", "--steps", "40", "--seeds", "1",
                     "--workers", "1", "--results", str(results), "--no-progress", "--json",
                     "--set", "eval_every=20", "--set", "log_every=20", "--set", "checkpoint_every=40",
                     "--set", "curve_eval_episodes=8", "--set", "eval_episodes=16", "--set", "latency_calls=2",
                     "--set", "latency_warmup=1", "--set", "diagnostic_batch=0"])
    assert code == 0
    (final,) = results.rglob(f"{task}/bc/*/seed_0/final.json")
    curve = [json.loads(line) for line in (final.parent / "metrics.jsonl").read_text().splitlines()]
    return {"final": json.loads(final.read_text()), "curve": [c for c in curve if c.get("curve")]}


@pytest.fixture
def results(tasks, tmp_path, one_thread):
    root = tmp_path / "results"
    records = {key: run(task.name, root) for key, task in tasks.items()}
    return root, records


def test_runs_record_win_rate_only_where_the_env_reports_wins(results):
    _, records = results
    battle, nowin = records["battle"], records["nowin"]
    final = battle["final"]
    assert isinstance(final["win_rate"], float) and 0.0 <= final["win_rate"] <= 1.0
    # won iff the reward came: the win rate is the share of episodes with return 1
    assert final["win_rate"] == pytest.approx(np.mean(np.asarray(final["returns"]) == 1.0))
    assert final["schema_version"] == 1
    assert [c["step"] for c in battle["curve"]] == [20, 40]
    assert all(isinstance(c["win_rate"], float) for c in battle["curve"])
    assert battle["curve"][-1]["win_rate"] == final["win_rate"]  # the final evaluation's curve line

    assert "win_rate" in nowin["final"] and nowin["final"]["win_rate"] is None
    assert [c["step"] for c in nowin["curve"]] == [20, 40]
    assert all("win_rate" not in c for c in nowin["curve"])  # curve lines of other envs read as before

    pytest.importorskip("pandas")
    from marlbench.analysis.reader import read_results

    read = read_results(results[0])
    runs = read.runs.set_index("task")
    assert runs.loc["wintest/cue-battle", "win_rate"] == final["win_rate"]
    assert np.isnan(runs.loc["wintest/cue-nowin", "win_rate"])  # None in the record
    curves = read.curves[read.curves["task"] == "wintest/cue-battle"]
    assert list(curves["win_rate"]) == [c["win_rate"] for c in battle["curve"]]


def test_marl_eval_export_carries_win_rates(results, tmp_path):
    pytest.importorskip("pandas")
    from marlbench.analysis.reader import read_results

    root, records = results
    path = tmp_path / "marl_eval.json"
    assert cli.main(["export", "marl-eval", "--results", str(root), "--out", str(path)]) == 0
    doc = json.loads(path.read_text())
    battle, nowin = doc["wintest"]["cue-battle"]["bc"]["seed_0"], doc["wintest"]["cue-nowin"]["bc"]["seed_0"]
    curve = records["battle"]["curve"][:-1]  # the final evaluation is absolute_metrics, not a step entry
    assert [battle[f"step_{i}"]["win_rate"] for i in range(len(curve))] == [[c["win_rate"]] for c in curve]
    assert battle["absolute_metrics"]["win_rate"] == [records["battle"]["final"]["win_rate"]]
    assert "win_rate" not in nowin["absolute_metrics"] and "win_rate" not in nowin["step_0"]
    back = read_results(path)
    runs = back.runs.set_index("task")
    assert runs.loc["wintest/cue-battle", "win_rate"] == records["battle"]["final"]["win_rate"]
    points = back.curves[(back.curves["task"] == "wintest/cue-battle") & ~back.curves["final"]]
    assert list(points["win_rate"]) == [c["win_rate"] for c in curve]


def test_table_offers_win_rate_and_the_default_is_unchanged(results, capsys, tmp_path):
    pytest.importorskip("pandas")
    pytest.importorskip("rliable")
    root, records = results
    capsys.readouterr()
    base = ["table", "--results", str(root), "--no-bootstrap"]
    assert cli.main(base) == 0
    default = capsys.readouterr().out
    assert cli.main(base + ["--metric", "auto"]) == 0
    assert capsys.readouterr().out == default
    assert "win rate" not in default and "n/a" not in default
    normalised = {k: r["final"]["normalised_score"] for k, r in records.items()}
    assert f"{normalised['battle']:.1f} ± 0.0" in default and f"{normalised['nowin']:.1f} ± 0.0" in default

    assert cli.main(base + ["--metric", "win-rate"]) == 0
    table = capsys.readouterr().out
    lines = [line.split("|") for line in table.splitlines() if line.startswith("| ") and "| cue |" in line]
    cells = {p[3].strip(): p[4].strip().strip("*") for p in lines}  # Dataset (quality) -> BC cell (bold: best)
    assert cells == {"Battle": f"{100 * records['battle']['final']['win_rate']:.1f} ± 0.0", "Nowin": "n/a"}
    assert "win rate (% of evaluation episodes won)" in table
    assert "only recorded for environments that report battles (SMAX, SMAC)" in table

    assert cli.main(base + ["--metric", "win-rate", "--format", "csv"]) == 0
    csv_rows = [line.split(",") for line in capsys.readouterr().out.splitlines()[1:] if ",cell," in line]
    by_task = {r[3]: r for r in csv_rows}
    assert by_task["wintest/cue-nowin"][7] == "win-rate" and by_task["wintest/cue-nowin"][10] == ""
    assert float(by_task["wintest/cue-battle"][10]) == pytest.approx(100 * records["battle"]["final"]["win_rate"])

    # --out keeps the default table and the win-rate table apart; the aggregates note names the normalised score
    out = tmp_path / "tables"
    assert cli.main(["table", "--results", str(root), "--metric", "win-rate", "--reps", "20", "--out", str(out)]) == 0
    assert (out / "results_win_rate.md").exists() and not (out / "results.md").exists()
    assert "aggregates below use normalised scores" in (out / "results_win_rate.md").read_text()

    from marlbench.analysis import tables
    from marlbench.analysis.reader import read_results
    from marlbench.errors import UnknownNameError

    with pytest.raises(UnknownNameError):
        tables.build_table(read_results(root), metric="wins", bootstrap=False)

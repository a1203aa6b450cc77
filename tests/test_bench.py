"""Smoke test of `marlbench bench train`: report structure, and FlopCounterMode against the analytic count."""
import json

import pytest
import torch

from marlbench import bench
from marlbench.bench import train
from marlbench.cli import build_parser

SMALL = dict(agents=2, obs_dim=3, action_dim=2, hidden=(32, 16), batch_size=8, steps=2, warmup=1,
             calib_min_seconds=0.002, case=None)


@pytest.fixture(scope="module")
def small_result():
    threads = torch.get_num_threads()
    result = train.run(train.BenchConfig(**SMALL))
    assert torch.get_num_threads() == threads  # the benchmark restores the thread count
    return result


def test_report_structure(small_result):
    r = small_result
    assert set(r) >= {"config", "machine", "timing", "flops", "throughput", "calibration"}
    assert r["config"]["agents"] == 2 and r["config"]["hidden"] == [32, 16]
    assert r["machine"]["threads"] == 1 and r["machine"]["torch"] == torch.__version__ and r["machine"]["cpu"]
    t = r["timing"]
    assert t["timed_steps"] == 2 and t["median_ms"] > 0 and t["steps_per_s"] > 0
    th = r["throughput"]
    for key in ("achieved_gflops", "calibration_gflops", "ratio"):
        assert th[key] > 0, key
    assert th["ratio"] == pytest.approx(th["achieved_gflops"] / th["calibration_gflops"])
    shapes = r["calibration"]["shapes"]
    assert {s["kind"] for s in shapes} == {"fwd", "grad_input", "grad_weight"}
    # The calibration covers exactly the analytic FLOPs.
    assert sum(s["gflop_per_step"] for s in shapes) == pytest.approx(r["flops"]["analytic_gflop"])
    json.dumps(r)  # --json must be serialisable
    text = train.format_report(r)
    for label in ("steps/s", "GFLOP/step", "achieved GFLOP/s", "calibration GFLOP/s", "ratio", "machine:"):
        assert label in text


def test_flop_counter_matches_analytic(small_result):
    """FlopCounterMode over one real update (forward + backward) equals the hand count of the matmuls.

    Fails when MAC-Flow's update gains, loses or reshapes a network pass (e.g. the two Euler chains no longer
    batched, a missing backward) or when FlopCounterMode stops seeing baddbmm/bmm or the backward pass.
    """
    f = small_result["flops"]
    assert f["measured_gflop"] == pytest.approx(f["analytic_gflop"], rel=1e-3)
    matmuls = {"aten.baddbmm", "aten.bmm", "aten.mm", "aten.addmm", "mkldnn._linear_pointwise"}
    assert set(f["measured_by_op"]) <= matmuls
    # The comparison is sensitive: one Euler step more or no backward would be far outside the tolerance.
    c = small_result["config"]
    args = (c["agents"], c["obs_dim"], c["action_dim"], tuple(c["hidden"]), c["batch_size"])
    more_euler = sum(op.flops for op in train.analytic_matmuls(*args, flow_steps=c["flow_steps"] + 1)) / 1e9
    fwd_only = f["analytic_by_pass"]["fwd"]
    for wrong in (more_euler, fwd_only):
        assert abs(wrong - f["measured_gflop"]) / f["measured_gflop"] > 1e-2


@pytest.mark.parametrize("case, gflop", [("A", 11.7), ("B", 7.2)])
def test_analytic_paper_sizes(case, gflop):
    """docs/SPEED.md: a paper-size step costs 11.7 (case A) and 7.2 (case B) GFLOP."""
    total = sum(op.flops for op in train.analytic_matmuls(**train.CASES[case])) / 1e9
    assert total == pytest.approx(gflop, rel=0.01)


def test_cli_arguments():
    args = build_parser().parse_args(["bench", "train", "--case", "b", "--hidden", "2x64", "--steps", "3"])
    cfg = train.config_from_args(args)
    assert (cfg.agents, cfg.obs_dim, cfg.action_dim, cfg.case) == (3, 30, 9, "B")
    assert cfg.hidden == (64, 64) and cfg.steps == 3 and cfg.warmup == 5 and cfg.threads == 1
    cfg = train.config_from_args(build_parser().parse_args(["bench", "train", "--agents", "4"]))
    assert (cfg.agents, cfg.obs_dim, cfg.case) == (4, 17, None)  # a custom size is no longer "case A"
    assert train.parse_hidden("512,256") == (512, 256)


def test_main_json(capsys):
    args = build_parser().parse_args(["bench", "train", "--agents", "2", "--obs-dim", "3", "--action-dim", "1",
                                      "--hidden", "1x16", "--batch-size", "4", "--steps", "1", "--warmup", "0",
                                      "--json"])
    assert bench.main(args) == 0  # the `marlbench bench` dispatcher runs marlbench.bench.train
    r = json.loads(capsys.readouterr().out)
    assert r["config"]["batch_size"] == 4 and r["flops"]["measured_gflop"] > 0


def test_batching_reports_the_population_ceiling_for_each_member_count():
    """`marlbench bench batching`: one row per member count, the ceiling relative to one member, a linear fit."""
    from marlbench.bench import batching

    result = batching.run(["bc"], ["quick"], (1, 2), steps=1, warmup=0, threads=1, shape=dict(batching.SPREAD))
    rows = result["rows"]
    assert [(r["members"], r["batch"]) for r in rows] == [(1, 64), (2, 128)]
    assert rows[0]["ceiling"] == 1.0 and rows[1]["seed_steps_per_s"] == 2e3 / rows[1]["median_ms"]
    assert {"fit_fixed_ms", "fit_per_sample_ms", "limit", "drift"} <= set(rows[-1])
    assert "ceiling = S x t(B) / t(S x B)" in batching.format_report(result)
    assert result["machine"]["usable_cores"] >= 1


def _quick_inference(algorithms, **kw):
    from marlbench.bench import inference

    kw = {"envs": 4, "warmup": 0, "repeats": 5, "budget_seconds": 1e-4, "agents": (2, 4), **kw}
    return inference.run(algorithms, size="quick", **kw)


def test_inference_json_structure_and_ratio_to_macflow(tmp_path, capsys, monkeypatch):
    """`marlbench bench inference`: one row per algorithm, MAC-Flow first as the reference (added when --algos
    omits it), batch-1 and batched timings, FLOPs, ratios, and the N-scaling fit with its check."""
    from marlbench.bench import inference

    r = _quick_inference(["bc"])
    assert r["benchmark"] == "inference" and r["reference"] == "macflow" and r["machine"]["cpu"]
    assert r["task"] == {"name": "bench/inference", "source": "spread-shapes", "n_agents": 3, "obs_dim": 18,
                         "action_dim": 2, "action_kind": "continuous"}
    assert r["hidden_dims"] == [128, 128, 128] and r["agents_scaling"] == [2, 4] and r["tolerance"] == 0.25
    assert [row["name"] for row in r["algorithms"]] == ["macflow", "bc"]
    for row in r["algorithms"]:
        assert {"inference_complexity", "expected_exponent", "parameters", "batch1", "batch",
                "flops_per_joint_action", "ratio_to_reference", "scaling"} <= set(row)
        b1, b = row["batch1"], row["batch"]
        assert b1["envs"] == 1 and b["envs"] == 4 and b1["calls"] == 5
        assert b1["iqr_ms"][0] <= b1["median_ms"] <= b1["iqr_ms"][1]
        assert b["ms_per_joint_action"] == pytest.approx(b["median_ms"] / 4)
        assert row["flops_per_joint_action"] > 0
        sc = row["scaling"]
        assert [p["agents"] for p in sc["points"]] == [2, 4] and sc["check"] == "matches"
        assert {"flops_exponent", "ms_batch1_exponent", "ms_batch_exponent"} <= set(sc)
    ref = r["algorithms"][0]["ratio_to_reference"]
    assert ref == {"ms_batch1": 1.0, "ms_per_joint_action_batch": 1.0, "flops": 1.0}
    bc = r["algorithms"][1]
    assert bc["ratio_to_reference"]["flops"] == bc["flops_per_joint_action"] / r["algorithms"][0][
        "flops_per_joint_action"]
    assert json.loads(json.dumps(r)) == r
    text = inference.format_report(r)
    assert r["machine"]["cpu"] in text and "macflow" in text and "scaling with the number of agents" in text

    # the command line: --out writes the same JSON as --json prints (timings stubbed: _time_calls' gc.collect()
    # takes ~0.2 s per measurement in a test process, and the timed path was exercised above)
    monkeypatch.setattr(inference, "_time_calls", lambda fn, steps, warmup: ([1e-3] * steps,
                                                                              {"other_processes_cores": None}))
    monkeypatch.setattr(inference, "AGENTS", (2, 4))
    out = tmp_path / "inference.json"
    args = build_parser().parse_args(["bench", "inference", "--algos", "bc", "--envs", "2", "--repeats", "5",
                                      "--warmup", "0", "--json", "--out", str(out)])
    assert bench.main(args) == 0
    printed, written = json.loads(capsys.readouterr().out), json.loads(out.read_text())
    assert printed["envs"] == written["envs"] == 2 and [a["name"] for a in written["algorithms"]] == ["macflow", "bc"]


def test_inference_flops_of_one_step_policies_grow_linearly_in_agents():
    """MAC-Flow's one-step per-agent policies run batched: total FLOPs per joint action ~ N^1 (class "O(1)")."""
    from marlbench.bench import inference

    sc = inference.scaling("macflow", inference.spread_spec(), inference.SIZES["quick"], inference.AGENTS, envs=1,
                           warmup=0, repeats=1, budget_seconds=0, timed=False)
    flops = [p["flops_per_joint_action"] for p in sc["points"]]
    assert all(f > 0 for f in flops) and flops == sorted(flops)
    assert sc["flops_exponent"] == pytest.approx(1.0, abs=0.1) and sc["check"] == "matches"
    assert sc["ms_batch1_exponent"] is None  # not timed


def test_inference_flags_a_wrong_stated_complexity(monkeypatch):
    """An algorithm claiming "O(N^2 K)" whose act is one per-agent linear layer measures exponent ~1: flagged."""
    from torch import nn

    from marlbench.algorithm import Algorithm
    from marlbench.bench import inference
    from marlbench.registry import ALGORITHMS

    # subclassing registers globally: register into a copy that monkeypatch swaps back afterwards
    monkeypatch.setattr(ALGORITHMS, "_items", dict(ALGORITHMS._items))

    class FakeLinear(Algorithm, name="test-bench-fake-linear", continuous=True, discrete=False):
        """A per-agent linear layer that claims a joint chain per agent."""

        inference_complexity = "O(N^2 K)"

        def __init__(self, spec, cfg, device="cpu"):
            super().__init__(spec, cfg, device)
            self.linear = nn.Linear(spec.obs_dim, spec.action_dim)

        def update(self, batch):
            return {}

        def act(self, obs, legals=None):
            return self.linear(obs)

    args = ("test-bench-fake-linear", inference.spread_spec(), (8,), inference.AGENTS)
    kw = {"envs": 1, "warmup": 0, "repeats": 1, "budget_seconds": 0, "timed": False}
    sc = inference.scaling(*args, **kw)
    assert sc["flops_exponent"] == pytest.approx(1.0, abs=0.01) and sc["check"] == "does not match"
    monkeypatch.setattr(FakeLinear, "inference_complexity", "O(K)")
    assert inference.scaling(*args, **kw)["check"] == "matches"
    monkeypatch.setattr(FakeLinear, "inference_complexity", "O(2^N)")
    assert inference.scaling(*args, **kw)["check"] == "unknown class"


def test_inference_exponent_classes():
    from marlbench.bench import inference

    assert [inference.expected_exponent(c) for c in ("O(1)", "O(K)", "O(N K)", "O(N^2 K)", "O(N^2K)", "O(N!)")] == [
        1.0, 1.0, 1.0, 2.0, 2.0, None]
    assert inference.check_exponent(1.2, 1.0) == "matches" and inference.check_exponent(1.3, 1.0) == "does not match"
    assert inference.check_exponent(1.6, 2.0) == "matches" and inference.check_exponent(None, 1.0) == "not countable"
    assert inference.fit_exponent((2, 4, 8), (3.0, 12.0, 48.0)) == pytest.approx(2.0)
    assert inference.fit_exponent((2, 4), (1.0, None)) is None

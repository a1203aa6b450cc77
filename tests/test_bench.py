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

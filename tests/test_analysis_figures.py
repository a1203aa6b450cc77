"""Analysis layer: `marlbench plot` result figures and the marl-eval export, on the synthetic tree."""
from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("pandas")
pytest.importorskip("rliable")
pytest.importorskip("matplotlib")

from test_analysis_tables import synthetic_tree


def test_every_result_figure_is_written_as_png_and_pdf(tmp_path):
    from marlbench.cli import main

    out = tmp_path / "figures"
    assert main(["plot", "results", "--results", str(synthetic_tree()), "--out", str(out), "--reps", "50"]) == 0
    for kind in ("inference", "training", "curves", "profiles", "improvement", "aggregates"):
        for ext in ("png", "pdf"):
            path = out / f"{kind}.{ext}"
            assert path.exists() and path.stat().st_size > 5000, path
    assert (out / "inference.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (out / "inference.pdf").read_bytes()[:5] == b"%PDF-"


def test_curves_of_chosen_algorithms_on_one_task(tmp_path, capsys):
    """`--algos`/`--tasks` narrow a figure (e.g. MAC-Flow and BC on Medium-Replay); an unknown name is one line."""
    from marlbench.cli import main

    tree, out = str(synthetic_tree()), tmp_path / "figures"
    assert main(["plot", "curves", "--results", tree, "--out", str(out), "--reps", "20", "--algos", "macflow,bc",
                 "--tasks", "mpe/spread-medium-replay"]) == 0
    assert (out / "curves.png").stat().st_size > 5000
    capsys.readouterr()
    assert main(["plot", "curves", "--results", tree, "--out", str(out), "--algos", "macflw"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "macflow" in err[0]


def test_plot_games_still_parses():
    from marlbench.cli import build_parser

    args = build_parser().parse_args(["plot", "games", "--steps", "10"])
    assert args.what == "games" and args.out is None and args.steps == 10


def test_marl_eval_export_round_trips_through_the_reader(tmp_path):
    from marlbench.analysis.reader import read_results
    from marlbench.cli import main

    tree = synthetic_tree()
    path = tmp_path / "marl_eval.json"
    assert main(["export", "marl-eval", "--results", str(tree), "--out", str(path)]) == 0
    doc = json.loads(path.read_text())
    run = doc["smacv1"]["3m-good"]["macflow"]["seed_0"]  # marl-eval's env / task / algorithm / run layout
    assert run["step_0"]["step_count"] == 50_000 and isinstance(run["step_0"]["return"], list)
    assert set(run["absolute_metrics"]) == {"return", "normalised_score", "inference_ms", "train_seconds"}
    assert len(run["absolute_metrics"]["return"]) == 4  # every evaluation episode

    original, back = read_results(tree), read_results(path)
    key = ["task", "algorithm", "seed"]
    a, b = original.runs.sort_values(key).reset_index(drop=True), back.runs.sort_values(key).reset_index(drop=True)
    assert len(a) == len(b) == 2448
    for col in ("task", "algorithm", "seed", "benchmark", "dataset", "scenario", "quality", "profile", "run_id",
                "source", "checksum", "step"):
        assert a[col].tolist() == b[col].tolist(), col
    for col in ("return", "normalised_score", "inference_ms", "train_seconds", "return_std"):
        assert np.allclose(a[col].to_numpy(float), b[col].to_numpy(float)), col
    ca = original.curves.sort_values(key + ["step"]).reset_index(drop=True)
    cb = back.curves.sort_values(key + ["step"]).reset_index(drop=True)
    assert ca[key + ["step", "final"]].equals(cb[key + ["step", "final"]])
    assert np.allclose(ca["normalised_score"].to_numpy(float), cb["normalised_score"].to_numpy(float))
    # and the exported file gives the same table
    from marlbench.analysis.tables import build_table, render_csv

    assert render_csv(build_table(original, "table2", bootstrap=False)) == \
        render_csv(build_table(back, "table2", bootstrap=False))


def test_vectorised_probability_of_improvement_equals_rliable():
    from rliable import metrics

    from marlbench.analysis.stats import average_probability_of_improvement

    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(6, 5)).round(1), rng.normal(size=(4, 5)).round(1)  # rounding makes ties
    y[:, 0] = x[:4, 0]
    assert np.isclose(average_probability_of_improvement(x, y), metrics.probability_of_improvement(x, y))
    assert average_probability_of_improvement(x, x) == 0.5


def _bench_row(name: str, median: float, q1: float, q3: float) -> dict:
    """One algorithm entry of `marlbench bench inference --json` (marlbench/bench/inference.py's schema)."""
    timing = {"envs": 1, "median_ms": median, "iqr_ms": [q1, q3], "ms_per_joint_action": median, "calls": 50,
              "warmup": 5, "other_processes_cores": 0.0}
    return {"name": name, "inference_complexity": "O(1)", "expected_exponent": 1.0, "parameters": 1000,
            "batch1": timing, "batch": {**timing, "envs": 32, "ms_per_joint_action": median / 32},
            "flops_per_joint_action": 1e5, "ratio_to_reference": None,
            "scaling": {"points": [], "flops_exponent": 1.0, "ms_batch1_exponent": 0.1, "ms_batch_exponent": 0.9,
                        "check": "matches"}}


def test_plot_inference_takes_x_from_a_bench_json(tmp_path, capsys):
    """--bench: x = the bench's batch-1 median (IQR error bars) for algorithms it measured, the recorded
    inference_ms (labelled) for the others; algorithms without runs are skipped; title and sidecar name the source
    and the machine."""
    from test_analysis_tables import INFERENCE_MS, write_tree

    from marlbench.cli import main

    results = write_tree(tmp_path / "results", tasks=["mpe/spread-expert", "mpe/spread-medium"],
                         algos=("macflow", "bc", "flow-bc"), seeds=(0, 1, 2))
    bench = {"benchmark": "inference", "schema_version": 1,
             "machine": {"cpu": "Test CPU 9000", "cores": 2, "usable_cores": 2, "isa": ["avx2"], "torch": "2.13.0"},
             "task": {"name": "bench/inference", "source": "spread-shapes", "n_agents": 3, "obs_dim": 18,
                      "action_dim": 2, "action_kind": "continuous"},
             "size": "quick", "hidden_dims": [128, 128, 128], "envs": 32, "threads": 1, "warmup": 5, "repeats": 200,
             "budget_seconds": 1.0, "reference": "macflow", "agents_scaling": [2, 4, 8, 16], "tolerance": 0.25,
             "expected_exponents": {"O(1)": 1.0},
             "algorithms": [_bench_row("macflow", 0.25, 0.24, 0.27), _bench_row("bc", 0.11, 0.1, 0.125),
                            _bench_row("dof", 30.0, 29.0, 31.0)],  # dof: measured, but no runs
             "skipped": [], "other_processes_cores_max": 0.0}
    path = tmp_path / "inference_bench.json"
    path.write_text(json.dumps(bench))
    out = tmp_path / "figures"
    assert main(["plot", "inference", "--results", str(results), "--bench", str(path), "--out", str(out),
                 "--reps", "50"]) == 0
    assert (out / "inference.png").stat().st_size > 5000 and (out / "inference.pdf").exists()
    doc = json.loads((out / "inference.json").read_text())
    assert doc["x_source"] == "bench" and doc["machine"]["cpu"] == "Test CPU 9000"
    assert "Test CPU 9000" in doc["caption"] and "batch 1" in doc["caption"]
    (panel,) = doc["panels"]  # one benchmark: no "All tasks" panel
    points = {p["algorithm"]: p for p in panel["points"]}
    assert set(points) == {"macflow", "bc", "flow-bc"}  # dof has no runs
    assert (points["macflow"]["x"], points["macflow"]["x_low"], points["macflow"]["x_high"]) == (0.25, 0.24, 0.27)
    assert (points["bc"]["x"], points["bc"]["x_source"]) == (0.11, "bench")
    fallback = points["flow-bc"]
    assert fallback["x_source"] == "recorded" and fallback["label"].endswith("(recorded ms)")
    recorded = INFERENCE_MS["flow-bc"] * np.mean([1 + 0.1 * (sum(map(ord, t)) % 3)
                                                  for t in ("mpe/spread-expert", "mpe/spread-medium")])
    assert np.isclose(fallback["x"], recorded)  # write_run's inference_ms, averaged over the tasks
    assert 0 < points["macflow"]["y"] < 100 and points["macflow"]["y_low"] <= points["macflow"]["y"]
    # without --bench every x is the recorded inference_ms and the caption says so
    assert main(["plot", "inference", "--results", str(results), "--out", str(out), "--reps", "50"]) == 0
    doc = json.loads((out / "inference.json").read_text())
    assert doc["x_source"] == "recorded" and doc["machine"] is None and "recorded inference_ms" in doc["caption"]
    assert {p["x_source"] for p in doc["panels"][0]["points"]} == {"recorded"}
    # a file that is not the benchmark's JSON, or --bench on another figure: one line, exit code 2
    capsys.readouterr()
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"benchmark": "train"}))
    assert main(["plot", "inference", "--results", str(results), "--bench", str(bad), "--out", str(out)]) == 2
    assert "not the JSON of `marlbench bench inference" in capsys.readouterr().err
    assert main(["plot", "training", "--results", str(results), "--bench", str(path), "--out", str(out)]) == 2
    assert "--bench sets the x-axis" in capsys.readouterr().err

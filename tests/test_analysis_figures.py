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

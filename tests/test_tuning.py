"""`marlbench tune`: equal grids, tuning seeds disjoint from report seeds, selection by score, tuned sweeps whose
records and tables say so (marlbench/tuning.py)."""
import json

import pytest
import yaml

from marlbench import catalog
from marlbench.cli import main
from marlbench.errors import ConfigError
from marlbench.registry import ALGORITHMS
from marlbench.sweep import Suite, expand
from marlbench.tuning import check_equal_budget, grid_points, load_tuned, tuning_suite, write_selection

TINY = {"eval_episodes": 4, "latency_calls": 5, "latency_warmup": 1, "log_every": 20, "eval_every": 20,
        "checkpoint_every": 20, "curve_eval_episodes": 2, "diagnostic_batch": 64}


def write_suite(path, **kw):
    data = {"name": "tiny", "profile": "quick", "steps": 40, "seeds": 2, "set": TINY, "algorithms": ["bc", "matd3bc"],
            "tasks": ["mpe/spread-scripted"], "tuning": {"seeds": [100]}, **kw}
    path.write_text(json.dumps(data))
    return path


def test_every_grid_has_the_same_size():
    catalog.load()
    names = list(ALGORITHMS.names())
    size = check_equal_budget(names)
    assert size == 4
    tuned = {n for n in names if grid_points(n)}
    assert {"macflow", "matd3bc", "macql", "omar", "icq", "omiga", "mabcq", "ma-fql"} <= tuned
    assert "bc" not in tuned  # nothing to trade off: its budget goes to seeds
    for name in tuned:
        grid = ALGORITHMS.get(name).Config.tuning_grid  # the key trade-off coefficient (MABCQ: one per action space)
        assert len(grid) == (2 if name == "mabcq" else 1)
        assert all(hasattr(ALGORITHMS.get(name).Config(), key) for key in grid)
    # zipped, not crossed: MABCQ's point k sets threshold and phi together, and each value is used once
    points = grid_points("mabcq")
    assert len(points) == 4 and points[0] == {"threshold": 0.1, "phi": 0.2}
    assert len({p["threshold"] for p in points}) == len({p["phi"] for p in points}) == 4


def test_a_grid_that_changes_nothing_on_a_task_is_caught_by_its_diagnostics():
    """MABCQ's old grid (threshold alone) trained one model four times on continuous actions: the knob is unused
    there. Its zipped grid's points differ on both action spaces, in what the diagnostics measure."""
    import torch
    from test_baseline_mechanism import full_batch, make
    from test_macflow import CONTINUOUS, DISCRETE

    # weights scaled so that tanh's perturbation is not saturated (continuous) and the generator's probabilities
    # spread over the actions (discrete)
    for spec, key, scale in ((CONTINUOUS, "perturbation", 0.1), (DISCRETE, "allowed_fraction", 4.0)):
        b = full_batch(spec)
        values = []
        for point in grid_points("mabcq"):
            algo = make("mabcq", spec, **point)
            with torch.no_grad():
                for p in algo.parameters():
                    p.mul_(scale)
            values.append(algo.diagnostics(b)[key])
        assert len({round(v, 6) for v in values}) == 4, (key, values)


def test_tuning_seeds_never_overlap_report_seeds(tmp_path):
    with pytest.raises(ConfigError, match="also report seeds"):
        tuning_suite(Suite.load(write_suite(tmp_path / "a.yaml", seeds=[0, 100])))
    grid = tuning_suite(Suite.load(write_suite(tmp_path / "b.yaml")))
    assert grid.seeds == (100,) and len(grid.algorithms) == 4  # matd3bc's four alphas; BC has no grid
    for name in ("mpe-reference", "smoke"):  # the bundled suites' default tuning seeds are disjoint too
        suite = Suite.load(name)
        assert not set(tuning_suite(suite).seeds) & set(suite.seeds)


def test_tune_selects_by_score_and_tuned_runs_say_so(tmp_path, spread_dataset, capsys):
    suite = write_suite(tmp_path / "s.yaml")
    out, grid_results, results = tmp_path / "tuned.yaml", tmp_path / "grid", tmp_path / "report"
    assert main(["tune", str(suite), "--out", str(out), "--results", str(grid_results), "--workers", "2",
                 "--no-progress"]) == 0
    selection = yaml.safe_load(out.read_text())
    assert selection["trials_per_task"] == 4 and selection["tuning_seeds"] == [100]
    chosen = [json.dumps(p, sort_keys=True) for p in grid_points("matd3bc")].index(
        json.dumps(selection["values"]["matd3bc"]["mpe/spread-scripted"], sort_keys=True))
    assert (selection["at_grid_edge"] == {"matd3bc": ["mpe/spread-scripted"]}) == (chosen in (0, 3))
    assert selection["untuned"] == ["bc"] and set(selection["values"]) == {"matd3bc"}
    scores = selection["scores"]["matd3bc"]["mpe/spread-scripted"]
    best = max(scores, key=scores.get)
    assert selection["values"]["matd3bc"]["mpe/spread-scripted"] == json.loads(best)
    # every grid run used a tuning seed, none a report seed
    assert {json.loads(p.read_text())["seed"] for p in grid_results.rglob("final.json")} == {100}

    assert main(["sweep", str(suite), "--tuned", str(out), "--results", str(results), "--workers", "2",
                 "--no-progress"]) == 0
    configs = {json.loads(p.read_text())["algorithm"]: json.loads(p.read_text())["config"]
               for p in results.rglob("final.json")}
    assert configs["matd3bc"]["tuning"]["trials"] == 4
    assert configs["matd3bc"]["algorithm"]["alpha"] == json.loads(best)["alpha"]
    assert "tuning" not in configs["bc"]
    plan = expand(Suite.load(suite))
    assert all(u.resolved.tuning is None for u in plan.units)  # without --tuned: the defaults' run ids
    capsys.readouterr()
    assert main(["table", "--results", str(results), "--reps", "50"]) == 0
    assert "BC defaults; MATD3BC tuned (4 trials per task)" in capsys.readouterr().out


def test_published_values_cover_the_tuned_coefficients_where_the_paper_gives_them():
    catalog.load()
    values, record = load_tuned("paper")
    assert record["source"] == "published" and record["file"] == "published.yaml"
    assert set(values) == {"macflow", "matd3bc", "mabcq", "macql", "omar", "omiga"}  # App. E, F.1; none for ICQ
    for algo, per_task in values.items():
        assert set(per_task["*"]) & set(ALGORITHMS.get(algo).Config.tuning_grid)  # a coefficient `tune` searches
        ALGORITHMS.get(algo).Config(**per_task["*"]).validate()
    assert values["macflow"]["*"] == {"alpha": 3.0} and values["matd3bc"]["*"] == {"alpha": 2.5}


def test_run_with_published_values_records_and_tables_say_so(tmp_path, spread_dataset, capsys):
    tiny = [x for k, v in TINY.items() for x in ("--set", f"{k}={v}")]
    args = ["run", "--algo", "matd3bc", "--task", "mpe/spread-scripted", "--steps", "20", "--seeds", "1",
            "--results", str(tmp_path), "--no-progress", *tiny]
    assert main([*args, "--tuned", "paper", "--set", "alpha=1.0"]) == 2
    assert "both set alpha" in capsys.readouterr().err
    assert main([*args, "--tuned", "paper"]) == 0
    (final,) = tmp_path.rglob("final.json")
    config = json.loads(final.read_text())["config"]
    assert config["algorithm"]["alpha"] == 2.5
    assert config["tuning"]["source"] == "published" and config["tuning"]["values"] == {"alpha": 2.5}
    capsys.readouterr()
    assert main(["table", "--results", str(tmp_path), "--reps", "50"]) == 0
    assert "MATD3BC published values (paper App. E/F.1)" in capsys.readouterr().out


def test_a_selection_file_reads_without_yaml_aliases(tmp_path):
    shared = {"alpha": 10.0}  # one value selected for two tasks is one object in memory
    selection = {"values": {"matd3bc": {"mpe/spread-expert": shared}, "omiga": {"mpe/spread-expert": shared}}}
    write_selection(tmp_path / "tuned.yaml", selection)
    text = (tmp_path / "tuned.yaml").read_text()
    assert "&id" not in text and "*id" not in text and text.count("alpha: 10.0") == 2
    assert yaml.safe_load(text) == selection


def test_a_suite_tuned_part_by_part_accumulates_in_one_file(tmp_path, spread_dataset, capsys):
    """`--algorithms` (and `--tasks`) tune part of a suite; a second part adds its values to the same file, and a
    file written under other tuning seeds is refused rather than mixed."""
    suite = write_suite(tmp_path / "s.yaml", algorithms=["bc", "matd3bc", "omiga"])
    out, grid = tmp_path / "tuned.yaml", tmp_path / "grid"
    common = ["--out", str(out), "--results", str(grid), "--workers", "2", "--no-progress"]
    assert main(["tune", str(suite), "--algorithms", "matd3bc", *common]) == 0
    assert set(yaml.safe_load(out.read_text())["values"]) == {"matd3bc"}
    first = yaml.safe_load(out.read_text())["values"]["matd3bc"]
    assert main(["tune", str(suite), "--algorithms", "omiga", *common]) == 0
    selection = yaml.safe_load(out.read_text())
    assert set(selection["values"]) == {"matd3bc", "omiga"} and selection["values"]["matd3bc"] == first
    assert selection["tasks"] == ["mpe/spread-scripted"]
    assert len({p.parent.parent for p in grid.rglob("final.json")}) == 8  # 4 values each, trained once

    capsys.readouterr()
    assert main(["tune", str(suite), "--algorithms", "omgia", "--dry-run", *common]) == 2
    assert "omiga" in capsys.readouterr().err  # the closest name
    assert main(["sweep", str(suite), "--tasks", "mpe/spread-expert", "--dry-run"]) == 2
    other = write_suite(tmp_path / "o.yaml", algorithms=["bc", "omiga"], tuning={"seeds": [101]})
    assert main(["tune", str(other), *common]) == 2
    assert "tuning_seeds" in capsys.readouterr().err
    assert not list(grid.rglob("seed_101"))  # refused before anything trained

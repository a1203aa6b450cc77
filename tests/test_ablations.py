"""Ablation variants: suite labels, distinct run ids, the reader keeping variants apart, `marlbench run --variant`
and `marlbench plot ablations` (marlbench/sweep.py, analysis/reader.py, analysis/ablations.py)."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from marlbench.cli import main
from marlbench.errors import ConfigError
from marlbench.sweep import Suite, describe_plan, expand

pytest.importorskip("pandas")

TINY = {"eval_episodes": 4, "latency_calls": 5, "latency_warmup": 1, "log_every": 10, "eval_every": 20,
        "checkpoint_every": 20, "curve_eval_episodes": 2, "diagnostic_batch": 32}
TASK = "mpe/spread-medium-replay"


def write_suite(path: Path, **kw) -> Path:
    data = {"name": "tiny", "profile": "quick", "steps": 40, "seeds": 2, "set": TINY,
            "algorithms": ["bc"], "tasks": ["mpe/spread-scripted"], **kw}
    path.write_text(json.dumps(data))  # JSON is YAML
    return path


# ------------------------------------------------------------------------------------------------ suite labels
def test_suite_labels_are_parsed_and_checked(tmp_path):
    suite = Suite.load(write_suite(tmp_path / "ok.yaml", algorithms=[
        "macflow", {"name": "macflow", "label": "no-q-max", "set": {"q_guidance": False}},
        {"name": "macflow", "label": "no-distill", "set": {"deploy": "flow"}}]))
    assert [(e.name, e.label, e.display) for e in suite.algorithms] == [
        ("macflow", None, "macflow"), ("macflow", "no-q-max", "macflow:no-q-max"),
        ("macflow", "no-distill", "macflow:no-distill")]
    bad = {"No Q": "lowercase", "": "lowercase", "a_b": "lowercase", "-x": "lowercase", 3: "lowercase"}
    for i, (label, match) in enumerate(bad.items()):
        with pytest.raises(ConfigError, match=match):
            Suite.load(write_suite(tmp_path / f"bad{i}.yaml", algorithms=[{"name": "macflow", "label": label}]))
    with pytest.raises(ConfigError, match="label 'x'.*distinct `label:`"):
        Suite.load(write_suite(tmp_path / "dup.yaml", algorithms=[{"name": "bc", "label": "x"},
                                                                   {"name": "bc", "label": "x"}]))
    with pytest.raises(ConfigError, match="twice with no label"):
        Suite.load(write_suite(tmp_path / "dup2.yaml", algorithms=["bc", {"name": "bc", "set": {"lr": 1e-3}}]))
    with pytest.raises(ConfigError, match="each algorithm is a name"):
        Suite.load(write_suite(tmp_path / "key.yaml", algorithms=[{"name": "bc", "lable": "x"}]))
    ablations = Suite.load("ablations")  # the bundled ablation suite
    assert [e.display for e in ablations.algorithms] == [
        "macflow", "macflow:no-q-max", "macflow:no-distill", "macflow:centralised-critic",
        "macflow:individual-flow", "ma-fql"]
    assert ablations.profile == "quick" and len(ablations.seeds) == 3 and len(ablations.tasks) == 2
    plan = expand(ablations)  # every variant resolves (critic=centralised with td_target=mixed, ...)
    assert {u.name for u in plan.units} == {e.display for e in ablations.algorithms} or plan.skipped


def test_variants_get_their_own_run_dirs_and_old_run_ids_stay(tmp_path, spread_dataset):
    from marlbench.config import resolve
    from marlbench.protocol import seed_paths
    from marlbench.registry import ALGORITHMS
    from marlbench.tasks import get_task
    from marlbench.tuning import tuning_suite

    suite = Suite.load(write_suite(tmp_path / "s.yaml", algorithms=[
        "macflow", {"name": "macflow", "label": "same-config"},
        {"name": "macflow", "label": "no-q-max", "set": {"q_guidance": False}}]))
    plan = expand(suite, results_root=tmp_path / "r")
    assert len(plan.units) == 6 and len({u.label for u in plan.units}) == 6
    dirs = {u.name: u.paths.dir.parent for u in plan.units}
    assert len(set(dirs.values())) == 3  # a label alone is a new run, even with the same config
    assert all(d.parent.name == "macflow" for d in dirs.values())  # records stay under the registered name
    base = next(u for u in plan.units if u.name == "macflow")
    assert "variant" not in base.resolved.to_dict()
    labelled = next(u for u in plan.units if u.name == "macflow:same-config")
    assert labelled.resolved.to_dict()["variant"] == "same-config"
    assert dataclasses.replace(labelled.resolved, variant=None).to_dict() == base.resolved.to_dict()
    # an unlabelled entry's run id is the one `marlbench run` always gave (no variant key in the hashed config)
    direct = resolve(ALGORITHMS.get("macflow"), "mpe", "quick", 40, dict(TINY), task="mpe/spread-scripted")
    assert set(direct.to_dict()) == {"profile", "algorithm", "protocol"}
    rid, _ = seed_paths(ALGORITHMS.get("macflow"), get_task("mpe/spread-scripted"), direct, tmp_path, 0)
    assert base.run_id == rid
    lines = "\n".join(describe_plan(suite, plan))
    assert "macflow:no-q-max" in lines and "3 algorithm/task pairs" in lines
    grid = tuning_suite(dataclasses.replace(suite, seeds=(0,), tuning={"seeds": [5]}))
    assert {e.label for e in grid.algorithms} == {None} and len(grid.algorithms) == 4  # tuned once, not per variant


# ------------------------------------------------------------------------------------------------ reader
def write_record(root: Path, algo: str, seed: int, ret: float, variant: str | None = None, task: str = TASK,
                 q: float | None = None) -> Path:
    """A synthetic record in the documented layout (tests/test_analysis_tables.py), with a variant label and the
    critic's Q value in the training lines when given."""
    from test_analysis_tables import write_run

    rid = f"{algo}-{variant or 'base'}"[:12].ljust(12, "0")
    d = write_run(root, task, algo, seed, ret, profile="quick", run_id=rid)
    if variant:
        for name in ("final.json", "config.json"):
            doc = json.loads((d / name).read_text())
            doc.setdefault("config", {})["variant"] = variant
            (d / name).write_text(json.dumps(doc))
    if q is not None:
        lines = [json.loads(x) for x in (d / "metrics.jsonl").read_text().splitlines()]
        for line in lines:
            if not line.get("curve"):
                line["q_mean"] = q * line["step"] / 1000
        (d / "metrics.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    return d


def test_reader_keeps_variants_apart(tmp_path):
    from marlbench.analysis import references as refs
    from marlbench.analysis.reader import read_results
    from marlbench.analysis.tables import build_table, render_csv, render_markdown

    root = tmp_path / "results"
    for seed in range(3):
        write_record(root, "macflow", seed, 300.0 + seed)  # an old-style record: no variant anywhere
        write_record(root, "macflow", seed, 250.0 + seed, variant="no-q-max")
    res = read_results(root)  # same task x algorithm x seed, different runs: not duplicates
    assert res.algorithms == ["macflow", "macflow:no-q-max"]
    base = res.runs[res.runs["algorithm"] == "macflow"]
    assert base["variant"].isna().all() and (base["base_algorithm"] == "macflow").all()
    assert base["run_id"].iloc[0] == "macflow-base"  # the stored run id is read as it was
    variant = res.runs[res.runs["algorithm"] == "macflow:no-q-max"]
    assert (variant["variant"] == "no-q-max").all() and (variant["base_algorithm"] == "macflow").all()
    assert sorted(res.curves["algorithm"].unique()) == ["macflow", "macflow:no-q-max"]
    assert refs.algorithm_label("macflow:no-q-max") == "MAC-Flow (no-q-max)"
    table = build_table(res, bootstrap=False)
    assert table.algorithms == ["macflow", "macflow:no-q-max"]
    assert "MAC-Flow (no-q-max)" in render_markdown(table) and "macflow:no-q-max" in render_csv(table)


# ------------------------------------------------------------------------------------------------ plot ablations
def test_plot_ablations_draws_the_figures_and_notes_what_is_missing(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    root = tmp_path / "results"
    levels = {None: 300.0, "no-q-max": 240.0, "no-distill": 260.0, "centralised-critic": 200.0,
              "individual-flow": 290.0}
    for variant, level in levels.items():  # every member but MA-FQL (Fig. 10 is skipped with a note)
        for seed in range(3):
            write_record(root, "macflow", seed, level + 3 * seed, variant=variant,
                         q=-5.0 if variant == "centralised-critic" else 20.0)
    suite = write_suite(tmp_path / "abl.yaml", tasks=[TASK])
    out = tmp_path / "figs"
    assert main(["plot", "ablations", "--results", str(root), "--suite", str(suite), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "Fig. 10: MAC-Flow vs MA-FQL skipped" in printed and "missing: ma-fql" in printed
    for stem in ("fig6-distillation", "fig7-igm", "fig8-critic", "fig9-flow"):
        assert (out / f"{stem}.png").stat().st_size > 0 and (out / f"{stem}.pdf").exists(), stem
    assert not (out / "fig10-ma-fql.png").exists()
    summary = json.loads((out / "ablations.json").read_text())
    fig6 = summary["figures"]["fig6-distillation"]["final"][TASK]
    assert set(fig6) == {"macflow", "macflow:no-q-max", "macflow:no-distill"}
    assert fig6["macflow"]["seeds"] == [0, 1, 2] and fig6["macflow"]["metric"] == "normalised_score"
    assert fig6["macflow"]["mean"] > fig6["macflow:no-q-max"]["mean"]
    assert any("MA-FQL" in n for n in summary["notes"])

    from marlbench.analysis.ablations import training_metric
    from marlbench.analysis.reader import read_results

    key, steps, mean, _ = training_metric(read_results(root), "macflow:centralised-critic", TASK)
    assert key == "q_mean" and mean[-1] == pytest.approx(-5.0 * steps[-1] / 1000)


def test_plot_ablations_without_records_names_the_sweep(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main(["plot", "ablations", "--results", str(tmp_path / "empty")]) == 2
    err = capsys.readouterr().err
    assert "no ablation records" in err and "marlbench sweep ablations --results" in err
    other = tmp_path / "other"
    write_record(other, "bc", 0, 300.0)
    assert main(["plot", "ablations", "--results", str(other)]) == 2
    assert "found algorithms bc" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------------ run --variant
def test_run_variant_is_its_own_table_column(tmp_path, spread_dataset, capsys):
    results = tmp_path / "r"
    common = ["run", "--algo", "bc", "--task", "mpe/spread-scripted", "--profile", "quick", "--steps", "20",
              "--no-progress", "--workers", "1", "--results", str(results)]
    common += [x for k, v in TINY.items() for x in ("--set", f"{k}={v}")]
    assert main(common) == 0
    assert main(common + ["--variant", "small-lr", "--set", "lr=1e-4"]) == 0
    assert "bc:small-lr on mpe/spread-scripted" in capsys.readouterr().out
    assert main(common + ["--variant", "Small LR"]) == 2
    assert "lowercase letters" in capsys.readouterr().err
    assert len(list((results / "mpe/spread-scripted" / "bc").iterdir())) == 2
    assert main(["table", "--results", str(results), "--no-bootstrap", "--format", "csv"]) == 0
    out = capsys.readouterr().out
    assert "bc:small-lr" in out and ",bc," in out

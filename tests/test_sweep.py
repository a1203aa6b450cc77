"""`marlbench sweep`: suite files, local and Ray executors with identical records, resume after a kill, retries and
failure records (marlbench/sweep.py)."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from marlbench.cli import main
from marlbench.errors import ConfigError, UnknownNameError
from marlbench.sweep import Suite, expand, run_sweep

TINY = {"eval_episodes": 4, "latency_calls": 5, "latency_warmup": 1, "log_every": 20, "eval_every": 40,
        "checkpoint_every": 20, "curve_eval_episodes": 2, "diagnostic_batch": 64}


def write_suite(path: Path, **kw) -> Path:
    data = {"name": "tiny", "profile": "quick", "steps": 60, "seeds": 2, "set": TINY,
            "algorithms": ["bc"], "tasks": ["mpe/spread-scripted"], **kw}
    path.write_text(json.dumps(data))  # JSON is YAML
    return path


def records(root: Path) -> dict:
    """Per seed: everything of final.json that does not depend on the clock or the process."""
    out = {}
    for final in sorted(root.rglob("final.json")):
        r = json.loads(final.read_text())
        metrics = [json.loads(line) for line in (final.parent / "metrics.jsonl").read_text().splitlines()]
        for m in metrics:
            m.pop("train_seconds", None), m.pop("eval_seconds", None)
        out[str(final.parent.relative_to(root))] = (r["returns"], r["run_id"], r["config"], metrics)
    return out


def test_suite_files_are_checked(tmp_path):
    with pytest.raises(UnknownNameError, match="algorithms"):
        Suite.load(write_suite(tmp_path / "a.yaml", algoritms=["bc"]))
    with pytest.raises(ConfigError, match="seeds"):
        Suite.load(write_suite(tmp_path / "b.yaml", seeds=[1, 1]))
    with pytest.raises(ConfigError, match="not one of the suite's tasks"):
        Suite.load(write_suite(tmp_path / "c.yaml", overrides={"mpe/spread-expert": {"steps": 5}}))
    with pytest.raises(ConfigError, match="does not exist"):
        Suite.load(tmp_path / "missing.yaml")
    with pytest.raises(UnknownNameError, match="macflow"):
        expand(Suite.load(write_suite(tmp_path / "d.yaml", algorithms=["macflwo"])))
    for name in ("smoke", "mpe-reference", "table1", "table2"):  # the bundled suites load and expand
        suite = Suite.load(name)
        plan = expand(suite)
        assert plan.units or plan.skipped, name
    table1 = expand(Suite.load("table1"))
    assert not table1.units and len(table1.skipped) == 18  # StarCraft II is not installed here


@pytest.mark.slow
def test_local_sweep_skips_complete_seeds_and_resumes_after_a_kill(tmp_path, spread_dataset, capsys):
    suite = write_suite(tmp_path / "s.yaml", algorithms=["bc", "macflow"], steps=120)
    results = tmp_path / "r"
    # the sweep must still be running when it is killed (asserted below): a command that exits at once (as `-m
    # marlbench` did before the package had a __main__) would otherwise leave only an uninterrupted sweep to check
    cmd = [sys.executable, "-m", "marlbench.cli", "sweep", str(suite), "--results", str(results), "--workers", "2",
           "--no-progress"]
    # cwd outside the checkout: from its root, `-m` would import the source tree's marlbench, which lacks the
    # installed package's algorithms/ and baselines/ subpackages (setup.cfg maps them in)
    proc = subprocess.Popen(cmd, env=os.environ.copy(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True, cwd=tmp_path)
    deadline = time.time() + 240
    while time.time() < deadline and not list(results.rglob("checkpoint.pt")):
        time.sleep(0.2)
    assert proc.poll() is None, proc.stdout.read().decode(errors="replace")  # killed mid-sweep, not after it
    os.killpg(proc.pid, signal.SIGKILL)  # the whole sweep, workers included, mid-training
    proc.wait()
    finished = {p.parent: p.stat().st_mtime_ns for p in results.rglob("final.json")}
    assert len(finished) < 4
    assert main(["sweep", str(suite), "--results", str(results), "--workers", "2", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "4 seeds complete, 0 failed" in out
    assert len(list(results.rglob("final.json"))) == 4
    for seed_dir, mtime in finished.items():  # seeds complete before the kill were not trained again
        assert (seed_dir / "final.json").stat().st_mtime_ns == mtime
    assert main(["sweep", str(suite), "--results", str(results), "--dry-run"]) == 0
    assert "totals: complete 4" in capsys.readouterr().out


def test_failures_are_retried_then_recorded(tmp_path, spread_dataset):
    import flaky_plugin  # noqa: F401  (tests/plugins: an algorithm that fails its first attempts)

    marker = tmp_path / "attempts.log"
    suite = Suite.load(write_suite(tmp_path / "s.yaml", imports=["flaky_plugin"], seeds=1,
                                   algorithms=[{"name": "tiny-flaky", "set": {"fail_first": 1,
                                                                               "marker": str(marker)}}]))
    summary = run_sweep(suite, tmp_path / "r", workers=1, retries=1, show_progress=False)
    assert summary.ok and list(summary.retried.values()) == [1]
    assert len(marker.read_text().splitlines()) == 2 and not list((tmp_path / "r").rglob("failure.json"))

    marker.unlink()
    suite = Suite.load(write_suite(tmp_path / "t.yaml", imports=["flaky_plugin"], seeds=1,
                                   algorithms=[{"name": "tiny-flaky", "set": {"fail_first": 9,
                                                                               "marker": str(marker)}}]))
    summary = run_sweep(suite, tmp_path / "r", workers=1, retries=2, show_progress=False)
    assert not summary.ok and len(marker.read_text().splitlines()) == 3  # the first try and two retries
    (failure,) = (tmp_path / "r").rglob("failure.json")
    record = json.loads(failure.read_text())
    assert record["attempts"] == 3 and "injected failure" in record["error"] and record["error_type"] == \
        "RuntimeError" and "Traceback" in record["traceback"]
    assert not (failure.parent / "final.json").exists()


@pytest.mark.slow
def test_ray_executor_gives_the_local_records_and_retries(tmp_path, spread_dataset):
    pytest.importorskip("ray")
    import flaky_plugin  # noqa: F401

    suite = Suite.load(write_suite(tmp_path / "s.yaml", algorithms=["bc", "macflow"]))
    local = run_sweep(suite, tmp_path / "local", workers=2, show_progress=False)
    remote = run_sweep(suite, tmp_path / "ray", executor="ray", workers=2, show_progress=False)
    assert local.ok and remote.ok and len(remote.complete) == 4
    assert records(tmp_path / "local") == records(tmp_path / "ray")

    marker = tmp_path / "attempts.log"
    flaky = Suite.load(write_suite(tmp_path / "f.yaml", imports=["flaky_plugin"], seeds=1,
                                   algorithms=[{"name": "tiny-flaky", "set": {"fail_first": 1,
                                                                               "marker": str(marker)}}]))
    summary = run_sweep(flaky, tmp_path / "ray", executor="ray", workers=1, retries=1, show_progress=False)
    assert summary.ok and list(summary.retried.values()) == [1]
    marker.unlink()
    failing = Suite.load(write_suite(tmp_path / "g.yaml", imports=["flaky_plugin"], seeds=1,
                                     algorithms=[{"name": "tiny-flaky", "set": {"fail_first": 9,
                                                                                 "marker": str(marker)}}]))
    summary = run_sweep(failing, tmp_path / "ray", executor="ray", workers=1, retries=1, show_progress=False)
    assert not summary.ok
    (failure,) = (tmp_path / "ray").rglob("failure.json")
    assert json.loads(failure.read_text())["attempts"] == 2


def test_dry_run_names_grid_values_and_prices_what_is_left(tmp_path, spread_dataset):
    """The tuning grid's configurations get a line each (``macflow alpha=0.3``), and the cost line prices each seed
    left at the median train + final-evaluation time of completed records of the same algorithm and task."""
    from marlbench.sweep import describe_plan, estimate_seconds
    from marlbench.tuning import tuning_suite

    suite = Suite.load(write_suite(tmp_path / "s.yaml", algorithms=["bc", "macflow"], seeds=[0],
                                   tuning={"seeds": [7, 8]}))
    grid = tuning_suite(suite)
    results = tmp_path / "r"
    plan = expand(grid, results_root=results)
    assert len(plan.units) == 8  # macflow only (bc has no grid): 4 values x 2 tuning seeds
    lines = describe_plan(grid, plan, results)
    assert [line.split()[:2] for line in lines[1:5]] == [["macflow", f"alpha={a}"] for a in (0.3, 1.0, 3.0, 10.0)]
    assert lines[-1].startswith("cost: unknown: none of the 8 seeds left has a completed record")

    for unit, seconds in zip(plan.units[:3], (10.0, 20.0, 90.0)):  # three complete seeds, of different values
        unit.paths.dir.mkdir(parents=True)
        unit.paths.final.write_text(json.dumps({"algorithm": "macflow", "task": unit.task.name, "steps": 60,
                                                "benchmark": "mpe", "config": {}, "train_seconds": seconds - 1,
                                                "eval_seconds": 1.0}))
    total, known, unknown = estimate_seconds(expand(grid, results_root=results), results)
    assert (total, known, unknown) == (5 * 20.0, 5, 0)  # the 5 seeds left, each at the median 20 s
    assert "totals: complete 3, pending 5" in "\n".join(describe_plan(grid, expand(grid, results_root=results),
                                                                       results))


def test_a_seed_another_process_trains_is_deferred_not_waited_for(tmp_path, spread_dataset, capsys):
    """Two sweeps over one results directory cooperate: a seed whose lock another process holds is put back, the
    sweep trains its other seeds meanwhile, and it returns to the busy one (then waiting for it) at the end. Here
    the test holds seed 0's lock until seed 1 is complete: a sweep that waited for seed 0 first would never get
    there (the holder gives up after 120 s and the test fails)."""
    import threading

    from marlbench.results import seed_lock

    suite = Suite.load(write_suite(tmp_path / "s.yaml", seeds=2))
    results = tmp_path / "r"
    busy, other = (u.paths for u in expand(suite, results_root=results).units)
    seen = {}

    def hold() -> None:
        with seed_lock(busy.dir):
            deadline = time.time() + 120
            while time.time() < deadline and not other.final.exists():
                time.sleep(0.1)
            seen["other complete while held"] = other.final.exists()

    holder = threading.Thread(target=hold)
    holder.start()
    while not (busy.dir / ".lock").exists():
        time.sleep(0.01)
    summary = run_sweep(suite, results, workers=1, show_progress=False)
    holder.join()
    assert seen["other complete while held"] and summary.ok
    assert busy.final.exists() and other.final.exists()
    assert "coming back to it later" in capsys.readouterr().err

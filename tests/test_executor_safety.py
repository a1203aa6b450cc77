"""A run is safe to kill and to share: workers die with their parent (SIGKILL included), a re-run resumes to the
records of an uninterrupted run, two identical commands train each seed once, result files follow the umask, and
skips and resumes are said in one line each."""
import json
import os
import signal
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from marlbench.results import atomic_write_json, seed_lock

TIMING_FIELDS = {"inference_ms", "inference_ms_iqr", "train_seconds", "eval_seconds", "finished_at", "pid",
                 "resumed_at_steps", "skipped", "versions"}


# 1,000 steps (was 3,000): the kill tests stop the run at the seeds' first checkpoints (step 100), so the seeds
# still have 900 steps (seconds) to go when killed, and a resumed run still crosses checkpoints, the evaluations
# at 500 and 1,000 and the final record; MAC-Flow trains ~13 ms a step here, so each run is ~3x shorter.
def command(results: Path, seeds: int = 2, workers: int = 2, steps: int = 1000) -> list[str]:
    return [sys.executable, "-m", "marlbench.cli", "run", "--algo", "macflow", "--task", "mpe/spread-scripted",
            "--seeds", str(seeds), "--profile", "quick", "--steps", str(steps), "--results", str(results),
            "--workers", str(workers), "--no-progress", "--set", "hidden_dims=[32,32]", "--set",
            "checkpoint_every=100", "--set", "eval_every=500", "--set", "log_every=100", "--set", "eval_episodes=8",
            "--set", "latency_calls=10"]


def alive(pid: int) -> bool:
    """Running (a zombie waiting for a reaper counts as gone)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


def descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for stat_file in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat_file.read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        children.setdefault(int(fields[1]), []).append(int(stat_file.parent.name))
    out, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def records(results: Path) -> dict[int, dict]:
    return {json.loads(p.read_text())["seed"]: {k: v for k, v in json.loads(p.read_text()).items()
                                                if k not in TIMING_FIELDS}
            for p in results.rglob("final.json")}


def metric_lines(results: Path) -> dict[str, list[dict]]:
    """Every metrics.jsonl by its path under ``results``, without the wall-clock fields."""
    return {str(p.relative_to(results)): [{k: v for k, v in json.loads(line).items()
                                           if k not in ("train_seconds", "eval_seconds")}
                                          for line in p.read_text().splitlines()]
            for p in results.rglob("metrics.jsonl")}


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_sigkill_to_the_parent_kills_its_workers_and_a_rerun_resumes_exactly(tmp_path, spread_dataset):
    killed, clean = tmp_path / "killed", tmp_path / "clean"
    parent = subprocess.Popen(command(killed), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              start_new_session=True, cwd=tmp_path)
    deadline = time.time() + 180
    while time.time() < deadline and len(list(killed.rglob("checkpoint.pt"))) < 2:
        time.sleep(0.05)
    assert parent.poll() is None, "the run finished before it could be killed; make it longer"
    family = descendants(parent.pid)
    assert len(family) >= 2  # the two seed workers (and spawn's resource tracker)
    os.kill(parent.pid, signal.SIGKILL)
    parent.wait()
    deadline = time.time() + 5
    while time.time() < deadline and any(alive(p) for p in family):
        time.sleep(0.05)
    assert [p for p in family if alive(p)] == []
    assert not list(killed.rglob("final.json"))

    rerun = subprocess.run(command(killed), capture_output=True, text=True, cwd=tmp_path, check=True)
    assert rerun.stderr.count("resuming at step") == 2, rerun.stderr
    subprocess.run(command(clean), capture_output=True, cwd=tmp_path, check=True)
    assert records(killed) == records(clean) and len(records(clean)) == 2
    assert metric_lines(killed) == metric_lines(clean)


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_sigterm_to_the_parent_stops_the_workers_and_says_how_to_resume(tmp_path, spread_dataset):
    results = tmp_path / "r"
    parent = subprocess.Popen(command(results), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                              start_new_session=True, cwd=tmp_path)
    deadline = time.time() + 180
    while time.time() < deadline and len(list(results.rglob("checkpoint.pt"))) < 2:
        time.sleep(0.05)
    family = descendants(parent.pid)
    parent.send_signal(signal.SIGTERM)
    err = parent.communicate(timeout=60)[1]
    assert parent.returncode == 130 and "re-run the same command to resume" in err
    deadline = time.time() + 5
    while time.time() < deadline and any(alive(p) for p in family):
        time.sleep(0.05)
    assert [p for p in family if alive(p)] == []


@pytest.mark.slow
def test_two_identical_commands_train_each_seed_once(tmp_path, spread_dataset):
    results = tmp_path / "shared"
    # 500 steps (was 1,500) a seed, several seconds: both commands start together, so the second still finds seed 0
    # locked or complete; the lock and the one-line-per-step checks below do not depend on the run length
    first, second = (subprocess.Popen(command(results, workers=1, steps=500), stdout=subprocess.DEVNULL,
                                      stderr=subprocess.PIPE, text=True, cwd=tmp_path) for _ in range(2))
    errs = [p.communicate(timeout=600)[1] for p in (first, second)]
    assert first.returncode == 0 and second.returncode == 0, errs
    said = "".join(errs)
    assert "waiting for it" in said or "complete, skipped" in said
    for name, lines in metric_lines(results).items():
        steps = [(x["step"], "curve" in x) for x in lines]
        assert len(steps) == len(set(steps)), f"{name} holds lines twice"
    assert sorted(records(results)) == [0, 1]
    assert all(r["resumed_at_steps"] == [] for r in map(json.loads, (p.read_text() for p in results.rglob(
        "final.json"))))


def test_a_complete_rerun_says_skipped_in_one_line_per_seed(tmp_path, spread_dataset, capsys):
    from marlbench import cli

    argv = ["run", "--algo", "bc", "--task", "mpe/spread-scripted", "--seeds", "2", "--steps", "20", "--workers",
            "1", "--set", "eval_episodes=2", "--set", "latency_calls=2", "--results", str(tmp_path / "r"),
            "--no-progress"]
    assert cli.main(argv) == 0
    capsys.readouterr()
    assert cli.main(argv) == 0
    err = capsys.readouterr().err
    assert "seed 0: complete, skipped" in err and "seed 1: complete, skipped" in err


def test_result_files_follow_the_umask(tmp_path, monkeypatch):
    import marlbench.results as results

    old = os.umask(0o027)
    try:
        assert results._read_umask() == 0o027
    finally:
        os.umask(old)
    assert results.FILE_MODE == 0o666 & ~old  # read at import, from the umask this process runs under
    atomic_write_json(tmp_path / "a.json", {"x": 1})
    assert stat.S_IMODE((tmp_path / "a.json").stat().st_mode) == 0o666 & ~old
    monkeypatch.setattr(results, "FILE_MODE", 0o644)  # what a umask of 022 gives, as users usually have
    results.atomic_torch_save({"step": 1}, tmp_path / "checkpoint.pt")
    assert stat.S_IMODE((tmp_path / "checkpoint.pt").stat().st_mode) == 0o644


@pytest.mark.skipif(sys.platform == "win32", reason="no fcntl")
def test_the_seed_lock_makes_a_second_holder_wait(tmp_path):
    events, waited = [], []
    entered = threading.Event()

    def first():
        with seed_lock(tmp_path / "seed_0"):
            entered.set()
            time.sleep(0.3)
            events.append("first done")

    t = threading.Thread(target=first)
    t.start()
    entered.wait(5)
    with seed_lock(tmp_path / "seed_0", on_wait=waited.append):
        events.append("second in")
    t.join()
    assert events == ["first done", "second in"] and waited == [os.getpid()]


def test_zero_workers_is_refused(capsys):
    from marlbench import cli

    assert cli.main(["run", "--algo", "bc", "--task", "spread-scripted", "--workers", "0"]) == 2
    assert "--workers must be at least 1" in capsys.readouterr().err


def test_records_say_whether_the_code_differed_from_the_recorded_commit(tmp_path, monkeypatch):
    """versions(): git_commit alone does not reproduce a record made from edited files, so git_dirty says so (and is
    None outside a git checkout, e.g. an installed wheel)."""
    import marlbench
    from marlbench.results import versions

    package = tmp_path / "repo" / "marlbench"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("x = 1\n")
    monkeypatch.setattr(marlbench, "__file__", str(package / "__init__.py"))
    assert versions()["git_commit"] is None and versions()["git_dirty"] is None
    git = ["git", "-C", str(package.parent), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-qm", "c"], check=True)
    clean = versions()
    assert len(clean["git_commit"]) == 40 and clean["git_dirty"] is False
    (package / "untracked.py").write_text("")  # untracked files (results, scratch) are not code changes
    records = package.parent / "results" / "final.json"
    records.parent.mkdir()
    records.write_text("{}")
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-qm", "records"], check=True)
    clean = versions()
    records.unlink()  # neither are committed records being replaced
    assert versions()["git_dirty"] is False
    (package / "__init__.py").write_text("x = 2\n")
    assert versions() == {**clean, "git_dirty": True}


def test_records_name_the_checkout_as_the_code_was_loaded(tmp_path, monkeypatch):
    """A long-lived worker runs the code it loaded: a checkout edited (or updated) mid-run must not change the
    commit and state its records name. loaded_versions() is read once per process (marlbench.results does it on
    import); versions() reads the checkout now."""
    import marlbench
    from marlbench.results import loaded_versions, versions

    package = tmp_path / "repo" / "marlbench"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("x = 1\n")
    git = ["git", "-C", str(package.parent), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-qm", "c"], check=True)
    monkeypatch.setattr(marlbench, "__file__", str(package / "__init__.py"))
    loaded_versions.cache_clear()
    try:
        at_load = loaded_versions()
        assert at_load["git_dirty"] is False
        (package / "__init__.py").write_text("x = 2\n")  # the checkout changes while the process runs
        assert loaded_versions() == at_load and versions()["git_dirty"] is True
    finally:
        loaded_versions.cache_clear()

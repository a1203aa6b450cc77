"""A run killed with SIGKILL resumes from its checkpoint and ends with the same record as an uninterrupted run."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # each test trains MAC-Flow for 1,000 steps in subprocesses, two or three times

# 1,000 steps (was 2,400): the run is killed at its first checkpoint (step 100), so 900 steps remain to kill it in
# (seconds at ~100 steps/s), and the resumed part still crosses checkpoints, evaluations (400, 800) and the final one.
STEPS = 1000

TIMING_FIELDS = {"inference_ms", "inference_ms_iqr", "train_seconds", "eval_seconds", "finished_at", "pid",
                 "resumed_at_steps", "skipped"}


def command(results: Path) -> list[str]:
    return [sys.executable, "-m", "marlbench.cli", "run", "--algo", "macflow", "--task", "mpe/spread-scripted",
            "--seeds", "1", "--profile", "quick", "--steps", str(STEPS), "--results", str(results), "--workers", "1",
            "--no-progress", "--set", "hidden_dims=[32,32]", "--set", "checkpoint_every=100",
            "--set", "eval_every=400", "--set", "log_every=100", "--set", "eval_episodes=8",
            "--set", "latency_calls=10"]


def final_record(results: Path) -> dict:
    (path,) = results.rglob("final.json")
    return json.loads(path.read_text())


def curve_and_losses(results: Path) -> list[dict]:
    (path,) = results.rglob("metrics.jsonl")
    return [{k: v for k, v in json.loads(line).items() if k not in ("train_seconds", "eval_seconds")}
            for line in path.read_text().splitlines()]


def test_sigkill_then_resume_matches_uninterrupted(tmp_path, spread_dataset):
    env = dict(os.environ)
    killed, clean = tmp_path / "killed", tmp_path / "clean"

    proc = subprocess.Popen(command(killed), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True, cwd=tmp_path)
    deadline = time.time() + 120
    while time.time() < deadline and not list(killed.rglob("checkpoint.pt")):
        time.sleep(0.05)
    # kill at once: the run is mid-way (900 more steps at ~100 steps/s leave seconds of margin on a loaded machine)
    assert proc.poll() is None, "the run finished before it could be killed; make it longer"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not list(killed.rglob("final.json"))
    ckpt_step = __import__("torch").load(next(killed.rglob("checkpoint.pt")), weights_only=True)["step"]
    assert 0 < ckpt_step < STEPS

    subprocess.run(command(killed), env=env, check=True, capture_output=True, cwd=tmp_path)
    subprocess.run(command(clean), env=env, check=True, capture_output=True, cwd=tmp_path)

    resumed, reference = final_record(killed), final_record(clean)
    assert resumed["resumed_at_steps"] == [ckpt_step]
    assert {k: v for k, v in resumed.items() if k not in TIMING_FIELDS} == \
        {k: v for k, v in reference.items() if k not in TIMING_FIELDS}
    assert curve_and_losses(killed) == curve_and_losses(clean)


def test_completed_run_is_skipped(tmp_path, spread_dataset):
    results = tmp_path / "r"
    subprocess.run(command(results), check=True, capture_output=True, cwd=tmp_path)
    first = final_record(results)
    out = subprocess.run(command(results), check=True, capture_output=True, text=True, cwd=tmp_path).stdout
    assert "already complete" in out
    assert final_record(results) == first

"""Run records on disk: one directory per (task, algorithm, config, seed), written atomically.

    <results>/<benchmark>/<task>/<algorithm>/<run_id>/seed_<k>/
        config.json      resolved config, task spec, dataset identity, versions (written at start)
        metrics.jsonl    one JSON object per line: training losses every log_every steps, learning-curve points
        checkpoint.pt    latest training state (algorithm, optimizers, sampler and RNG states)
        final.json       the final record (fields documented in docs/RESULTS.md); its presence means "complete"

``run_id`` hashes the algorithm, task, resolved config, dataset checksum and marlbench version, so changing any of
them starts a new run while re-running the same command resumes or skips the old one.
"""
from __future__ import annotations

import hashlib
import json
import os
import platform
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

import marlbench

FINAL_SCHEMA_VERSION = 1


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write to a temporary file beside ``path``, fsync, then rename: readers never see a partial file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode())


def atomic_torch_save(obj: Any, path: Path) -> None:
    import io

    buf = io.BytesIO()
    torch.save(obj, buf)
    atomic_write_bytes(path, buf.getvalue())


def run_id(algorithm: str, task: str, config: dict, dataset_checksum: str) -> str:
    payload = json.dumps({"algorithm": algorithm, "task": task, "config": config, "dataset": dataset_checksum,
                          "version": marlbench.__version__}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:12]


@dataclass(frozen=True)
class RunPaths:
    dir: Path

    @classmethod
    def make(cls, root: Path, task: str, algorithm: str, rid: str, seed: int) -> "RunPaths":
        return cls(Path(root) / task / algorithm / rid / f"seed_{seed}")

    config = property(lambda self: self.dir / "config.json")
    metrics = property(lambda self: self.dir / "metrics.jsonl")
    checkpoint = property(lambda self: self.dir / "checkpoint.pt")
    final = property(lambda self: self.dir / "final.json")


def append_metrics(path: Path, record: dict) -> None:
    with open(path, "a") as f:
        f.write(json.dumps(record, sort_keys=True) + "\n")


def truncate_jsonl(path: Path, last: int, key: str = "step") -> None:
    """On resume, drop the lines of a JSONL log whose ``key`` is past ``last`` (and a line cut by the kill), so the
    log matches an uninterrupted run's."""
    if not path.exists():
        return
    keep = []
    for line in path.read_text().splitlines():
        try:
            if json.loads(line)[key] <= last:
                keep.append(line)
        except (ValueError, KeyError):  # a line cut by the kill
            continue
    atomic_write_bytes(path, ("\n".join(keep) + ("\n" if keep else "")).encode())


def read_metrics(path: Path) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def _git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(marlbench.__file__).parent,
                             capture_output=True, text=True, timeout=5)
        return out.stdout.strip() or None if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


def versions() -> dict[str, Any]:
    return {
        "marlbench": marlbench.__version__,
        "git_commit": _git_commit(),
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "numpy": np.__version__,
    }


def machine() -> dict[str, Any]:
    cpu = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "platform": platform.platform()}

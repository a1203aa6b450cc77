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

import functools
import hashlib
import json
import os
import platform
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: runs are not locked
    fcntl = None

import numpy as np
import torch

import marlbench

FINAL_SCHEMA_VERSION = 1


def _read_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


FILE_MODE = 0o666 & ~_read_umask()  # what open() would give; mkstemp's private 0600 is not meant for results


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write to a temporary file beside ``path``, fsync, then rename: readers never see a partial file. The file
    gets the mode a plain ``open`` would give (the umask's), not the temporary file's 0600."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, FILE_MODE)
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


class SeedBusy(Exception):
    """The seed is being trained by another process (``pid``, when it wrote its id) and the caller chose not to
    wait: a sweep then comes back to it after its other seeds."""

    def __init__(self, seed_dir: Path, pid: int | None):
        super().__init__(f"{seed_dir} is being trained by another process{f' (pid {pid})' if pid else ''}")
        self.seed_dir, self.pid = seed_dir, pid

    def __reduce__(self):  # raised in a worker process, re-raised in the sweep's
        return SeedBusy, (self.seed_dir, self.pid)


@contextmanager
def seed_lock(seed_dir: Path, on_wait: Callable[[int | None], None] | None = None,
              wait: bool = True) -> Iterator[None]:
    """Hold the run directory of one seed exclusively while it trains, so two identical commands never train the
    same seed twice: the second waits (``on_wait(pid of the holder)`` is called once) and then finds the seed
    complete, or resumes it if the holder was killed (the kernel releases the lock of a dead process). With
    ``wait=False`` it raises ``SeedBusy`` instead of waiting. A no-op where ``fcntl`` is missing (Windows)."""
    seed_dir.mkdir(parents=True, exist_ok=True)
    if fcntl is None:  # pragma: no cover - Windows
        yield
        return
    lock_path = seed_dir / ".lock"
    with open(lock_path, "a+") as f:
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            holder = f.read().strip()
            pid = int(holder) if holder.isdigit() else None
            if not wait:
                raise SeedBusy(seed_dir, pid) from None
            if on_wait is not None:
                on_wait(pid)
            fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        f.seek(0)
        f.truncate()
        f.write(str(os.getpid()))
        f.flush()
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


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


def _git(*args: str) -> str | None:
    """stdout of a git command in the package's checkout, or None outside one (an installed wheel)."""
    try:
        out = subprocess.run(["git", *args], cwd=Path(marlbench.__file__).parent,
                             capture_output=True, text=True, timeout=5)
        return out.stdout.strip() if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


@functools.cache
def loaded_versions() -> dict[str, Any]:
    """``versions()`` as they were when this process first asked, which this module does on import: the
    code a long-lived worker runs is what it loaded then, not what the checkout holds when a record is written
    (a checkout updated mid-run would otherwise be named by records trained with the old code)."""
    return versions()


def versions() -> dict[str, Any]:
    """Code versions for a record. ``git_dirty``: tracked files outside the top-level ``results/`` (records, not code)
    differed from ``git_commit`` when the record was made (the commit alone then does not reproduce it); None outside
    a git checkout."""
    status = _git("status", "--porcelain", "--untracked-files=no", "--", ":/", ":(top,exclude)results")
    return {
        "marlbench": marlbench.__version__,
        "git_commit": _git("rev-parse", "HEAD") or None,
        "git_dirty": None if status is None else bool(status),
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "numpy": np.__version__,
    }


loaded_versions()  # the checkout as this process loads marlbench: records name it, not a later state


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

"""Where datasets live and whether they can be written: the bottom layer that data formats, tasks and commands
share (it imports only the registry and the errors)."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from marlbench.errors import StorageError
from marlbench.registry import TASKS

DATA_DIR_ENV = "MARLBENCH_DATA_DIR"


def data_dir() -> Path:
    """Where datasets are cached: $MARLBENCH_DATA_DIR, else $XDG_DATA_HOME/marlbench, else ~/.local/share/marlbench."""
    if os.environ.get(DATA_DIR_ENV):
        return Path(os.environ[DATA_DIR_ENV]).expanduser()
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "marlbench"


def require_writable(directory: Path) -> Path:
    """Create ``directory`` and check a file can be made in it, else fail with one line naming it and the fix.

    Called before slow work (generation, download, conversion), so a cache that cannot be written costs nothing.
    """
    directory = Path(directory)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=directory):
            pass
    except OSError as e:
        raise StorageError(unwritable_message(directory, e)) from None
    return directory


def unwritable_message(path: Path, err: OSError) -> str:
    """One line: the directory that cannot be written, why, and the fix (MARLBENCH_DATA_DIR for the cache)."""
    reason = err.strerror or str(err)
    existing = next((p for p in (Path(path), *Path(path).parents) if p.exists()), None)
    if existing is not None and not existing.is_dir():  # mkdir says "File exists" or "Not a directory"
        reason = f"{existing} is a file, not a directory"
    root = data_dir()
    if Path(path).resolve().is_relative_to(root.resolve()):
        where = f"{DATA_DIR_ENV}={root}" if os.environ.get(DATA_DIR_ENV) else f"the default data directory {root}"
        return (f"cannot write the dataset cache {path} ({reason}; {where}). Fix: set {DATA_DIR_ENV} to a writable "
                f"directory, e.g. export {DATA_DIR_ENV}=$HOME/marlbench-data")
    return f"cannot write {path} ({reason}). Fix: choose a writable location (--out FILE)"


def cached_dataset_task(path: str | os.PathLike) -> Any:
    """The registered task whose cached dataset file is ``path`` (a ``marlbench.tasks.Task``); None for any other
    file (a user's own)."""
    path = Path(path).resolve()
    if not path.is_relative_to((data_dir() / "datasets").resolve()):
        return None
    for name in TASKS.names():
        task = TASKS.get(name)
        if not getattr(task, "file", "") and task.dataset_path.resolve() == path:  # not a task bound to a file
            return task
    return None

"""marlbench's native on-disk dataset format: one HDF5 file (h5py).

Datasets ``obs``, ``actions``, ``rewards``, ``terminals``, ``truncations`` and optional ``legals``, ``state`` hold the
in-memory arrays unchanged. Root attributes: ``format`` ("marlbench-native"), ``schema_version`` (1), ``metadata``
(JSON; key "statistics" is reserved for ``Dataset.statistics()``, recomputed on every save) and ``checksum``
(``Dataset.checksum()``, verified on load).
"""
from __future__ import annotations

import json
import os
from contextlib import contextmanager
from pathlib import Path

import h5py

from marlbench.data.dataset import FIELDS, Dataset
from marlbench.errors import DatasetError
from marlbench.spec import TaskSpec

FORMAT = "marlbench-native"
SCHEMA_VERSION = 1
REQUIRED = ("obs", "actions", "rewards", "terminals", "truncations")
# What h5py raises on unreadable, truncated or corrupt files and on damaged datasets.
_READ_ERRORS = (OSError, KeyError, ValueError, RuntimeError, TypeError)


def save_native(dataset: Dataset, path: str | os.PathLike, compression: str | None = None) -> Path:
    """Write ``dataset`` to ``path`` atomically (temporary file in the same directory, then ``os.replace``).

    ``compression`` ("gzip", "lzf" or None) trades write/read speed for size; off by default.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    metadata = {**dataset.metadata, "statistics": dataset.statistics()}
    try:
        with h5py.File(tmp, "w") as f:
            for name in FIELDS:
                x = getattr(dataset, name)
                if x is not None:
                    f.create_dataset(name, data=x, compression=compression)
            f.attrs["format"] = FORMAT
            f.attrs["schema_version"] = SCHEMA_VERSION
            f.attrs["metadata"] = json.dumps(metadata)
            f.attrs["checksum"] = dataset.checksum()
        os.replace(tmp, path)  # same filesystem, so the switch is atomic
    finally:
        tmp.unlink(missing_ok=True)
    return path


def _fix(path: Path, task: str | None) -> str:
    task = task or "<task>"
    return f"delete {path} and run `marlbench data generate {task}`"


@contextmanager
def _open(path: Path, task: str | None):
    """Open a native file and check its format attributes; yields (file, metadata).

    Every read error inside the block (including array reads by the caller) becomes a DatasetError.
    """
    if not path.is_file():
        raise DatasetError(f"dataset file {path} does not exist. Fix: {_fix(path, task)}.")
    try:
        with h5py.File(path, "r") as f:
            fmt = f.attrs.get("format")
            if fmt != FORMAT:
                raise DatasetError(f"{path} is an HDF5 file but not a marlbench native dataset (format attribute "
                                   f"{fmt!r}, expected {FORMAT!r}). Fix: convert the source with `marlbench data "
                                   f"convert`, or {_fix(path, task)}.")
            metadata = json.loads(f.attrs["metadata"])
            task = metadata.get("task", task)
            version = f.attrs.get("schema_version")
            if version != SCHEMA_VERSION:
                raise DatasetError(f"{path} has schema_version {version}; this marlbench reads version "
                                   f"{SCHEMA_VERSION}. Fix: upgrade marlbench, or {_fix(path, task)}.")
            yield f, metadata
    except DatasetError:
        raise
    except _READ_ERRORS as e:
        raise DatasetError(f"{path} is corrupt or truncated (not a readable marlbench HDF5 file: {e}). "
                           f"Fix: {_fix(path, task)}.") from e


def read_native_metadata(path: str | os.PathLike, task: str | None = None) -> dict:
    """The file's metadata (task, source, statistics, ...) plus ``format``, ``schema_version`` and ``checksum``,
    read from attributes only, without loading arrays. ``task`` names the task in error messages."""
    with _open(Path(path), task) as (f, metadata):
        return {**metadata, "format": FORMAT, "schema_version": SCHEMA_VERSION, "checksum": str(f.attrs["checksum"])}


def load_native(path: str | os.PathLike, spec: TaskSpec | None = None, verify: bool = True) -> Dataset:
    """Load a native file; with ``spec``, also check that the data fits the task.

    ``verify`` recomputes the content checksum (a full pass over the data) and compares it with the stored one.
    """
    path = Path(path)
    task = spec.name if spec is not None else None
    with _open(path, task) as (f, metadata):
        task = metadata.get("task", task)
        missing = [name for name in REQUIRED if name not in f]
        if missing:
            raise DatasetError(f"{path} lacks required field(s) {', '.join(missing)}. Fix: {_fix(path, task)}.")
        arrays = {name: f[name][()] for name in FIELDS if name in f}
        stored = str(f.attrs["checksum"])
    metadata.pop("statistics", None)  # derived data: recomputed from the arrays, not part of the dataset
    try:
        dataset = Dataset(**arrays, metadata=metadata)
    except DatasetError as e:
        raise DatasetError(f"{path}: {e} Fix: {_fix(path, task)}.") from e
    if verify and (computed := dataset.checksum()) != stored:
        raise DatasetError(f"{path}: checksum mismatch, its content changed after it was written (stored "
                           f"{stored[:12]}..., computed {computed[:12]}...). Fix: {_fix(path, task)}.")
    if spec is not None:
        try:
            dataset.validate_against(spec)
        except DatasetError as e:
            raise DatasetError(f"{path}: {e}") from e
    return dataset

"""marlbench's native on-disk dataset format: one HDF5 file (h5py).

Datasets ``obs``, ``actions``, ``rewards``, ``terminals``, ``truncations`` and optional ``legals``, ``state`` hold the
in-memory arrays unchanged. Root attributes: ``format`` ("marlbench-native"), ``schema_version`` (1), ``metadata``
(JSON; key "statistics" is reserved for ``Dataset.statistics()``, recomputed on every save) and ``checksum``
(``Dataset.checksum()``, verified on load).
"""
from __future__ import annotations

import json
import os
import re
from contextlib import contextmanager
from pathlib import Path

import h5py

from marlbench.data.dataset import FIELDS, Dataset
from marlbench.errors import DatasetError
from marlbench.paths import cached_dataset_task, require_writable
from marlbench.spec import TaskSpec

FORMAT = "marlbench-native"
SCHEMA_VERSION = 1
REQUIRED = ("obs", "actions", "rewards", "terminals", "truncations")
# What h5py raises on unreadable, truncated or corrupt files and on damaged datasets.
READ_ERRORS = (OSError, KeyError, ValueError, RuntimeError, TypeError)


def save_native(dataset: Dataset, path: str | os.PathLike, compression: str | None = None) -> Path:
    """Write ``dataset`` to ``path`` atomically (temporary file in the same directory, then ``os.replace``).

    ``compression`` ("gzip", "lzf" or None) trades write/read speed for size; off by default.
    """
    path = Path(path)
    require_writable(path.parent)  # one line naming the directory (and MARLBENCH_DATA_DIR for the cache)
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


_TRUNCATED = re.compile(r"truncated file: eof = (\d+).*stored_eof = (\d+)")


def hdf5_error_reason(err: Exception) -> str:
    """What is wrong, in a few words from an h5py exception: "truncated (4096 bytes, its header says 15680)" or
    "corrupt (<h5py's cause>, e.g. bad object header version number)"."""
    text = " ".join(str(err).split())
    if m := _TRUNCATED.search(text):  # a flipped header byte can claim any size, so both numbers are shown
        return f"truncated ({m[1]} bytes, its header says {m[2]})"
    m = re.search(r"\(([^()]*)\)'?$", text)  # h5py: "Unable to synchronously open object (<cause>)"
    return f"corrupt ({(m[1] if m else text).strip() or type(err).__name__})"


def fix_for(path: Path, task: str | None, problem: str = "damaged") -> str:
    """How to get a good file again: rebuild a task's cached dataset; a user's own file is theirs to re-export.

    ``problem``: "missing", "damaged" (unreadable; `data generate` rebuilds it without --force) or "content" (the
    file reads but its data is wrong, so only --force replaces it).
    """
    owner = cached_dataset_task(path)
    if owner is not None and getattr(owner, "vault_id", ""):
        return f"`marlbench data download {owner.name}{' --force' if problem == 'content' else ''}` rebuilds it"
    if owner is not None and owner.generate is not None:
        return f"`marlbench data generate {owner.name}{' --force' if problem == 'content' else ''}` rebuilds it"
    if problem == "missing":
        return f"check the path, or run `marlbench data generate {task or '<task>'}`"
    if problem == "content":
        return (f"fix the data, or re-export {path.name} from its source (`marlbench data convert SOURCE --out "
                f"FILE`)")
    return (f"regenerate or re-export {path.name} (`marlbench data generate TASK --out FILE`, `marlbench data "
            f"convert SOURCE --out FILE`), or copy it again from where it came from")


def damaged_hdf5(path: Path, err: Exception, fix: str | None = None) -> DatasetError:
    """One line for an HDF5 file h5py cannot read: the file, why, and how to get a good copy (``fix``; by default
    rebuild a cached dataset, or regenerate / re-export a user's file)."""
    return DatasetError(f"{path} cannot be read as HDF5: it is {hdf5_error_reason(err)}. "
                        f"Fix: {fix or fix_for(path, None)}.")


def with_fix(message: str, fix: str) -> str:
    """``message`` plus ``fix``; a message that carries its own fix (how to repair the arrays) keeps it first."""
    message = message.rstrip(". ")
    return f"{message}; or {fix}." if "Fix:" in message else f"{message}. Fix: {fix}."


@contextmanager
def _open(path: Path, task: str | None):
    """Open a native file and check its format attributes; yields (file, metadata).

    Every read error inside the block (including array reads by the caller) becomes a DatasetError.
    """
    if not path.is_file():
        raise DatasetError(f"dataset file {path} does not exist. Fix: {fix_for(path, task, 'missing')}.")
    try:
        with h5py.File(path, "r") as f:
            fmt = f.attrs.get("format")
            if fmt != FORMAT:
                raise DatasetError(f"{path} is an HDF5 file but not a marlbench native dataset (format attribute "
                                   f"{fmt!r}, expected {FORMAT!r}). Fix: convert the source with `marlbench data "
                                   f"convert`, or {fix_for(path, task)}.")
            metadata = json.loads(f.attrs["metadata"])
            task = metadata.get("task", task)
            version = f.attrs.get("schema_version")
            if version != SCHEMA_VERSION:
                raise DatasetError(f"{path} has schema_version {version}; this marlbench reads version "
                                   f"{SCHEMA_VERSION}. Fix: upgrade marlbench, or {fix_for(path, task)}.")
            yield f, metadata
    except DatasetError:
        raise
    except READ_ERRORS as e:
        raise DatasetError(f"{path} is {hdf5_error_reason(e)}. Fix: {fix_for(path, task)}.") from e


def native_damage(path: str | os.PathLike) -> str | None:
    """Why the native file at ``path`` cannot be used (unreadable, truncated, not native, arrays missing or cut),
    or None. Cheap enough for `marlbench list`: attributes, shapes and the last row of each array, no checksum."""
    try:
        with _open(Path(path), None) as (f, _metadata):
            str(f.attrs["checksum"])
            missing = [name for name in REQUIRED if name not in f]
            if missing:
                return f"lacks required array(s) {', '.join(missing)}"
            arrays = {name: f[name] for name in FIELDS if name in f}
            broken = [name for name, ds in arrays.items() if not isinstance(ds, h5py.Dataset) or not ds.shape]
            if broken:
                return f"array(s) {', '.join(broken)} damaged"
            if len({ds.shape[0] for ds in arrays.values()}) != 1:
                return "arrays of different lengths"
            for ds in arrays.values():
                ds[-1]  # the end of every array: data cut off inside the file fails here
    except DatasetError as e:
        cause = e.__cause__
        return hdf5_error_reason(cause) if cause is not None else str(e).split(". Fix:")[0]
    return None


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
            raise DatasetError(f"{path} lacks required field(s) {', '.join(missing)}. Fix: {fix_for(path, task)}.")
        arrays = {name: f[name][()] for name in FIELDS if name in f}
        stored = str(f.attrs["checksum"])
    metadata.pop("statistics", None)  # derived data: recomputed from the arrays, not part of the dataset
    try:
        dataset = Dataset(**arrays, metadata=metadata)
    except DatasetError as e:
        raise DatasetError(with_fix(f"{path}: {e}", fix_for(path, task, "content"))) from e
    if verify and (computed := dataset.checksum()) != stored:
        raise DatasetError(f"{path}: checksum mismatch, its content changed after it was written (stored "
                           f"{stored[:12]}..., computed {computed[:12]}...). Fix: {fix_for(path, task, 'content')}.")
    if spec is not None:
        try:
            dataset.validate_against(spec)
        except DatasetError as e:
            raise DatasetError(f"{path}: {e}") from e
    return dataset

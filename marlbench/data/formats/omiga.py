"""OMIGA's HDF5 files (``{Scenario}-v2-{conf}-{quality}.hdf5``, e.g. ``HalfCheetah-v2-6x1-medium-replay.hdf5``).

Keys: ``o`` [R, N, obs] observations, ``s`` states ([R, N, S] per agent as OMIGA stores them, or [R, S]), ``a``
[R, N, act], ``r`` [R, 1] team reward, ``d`` [R, 1]. Every episode ends with one extra row whose ``d`` is 1: it only
carries the observation after the episode's last step. OMIGA keeps the rows with d = 0, takes the next
observation from row t+1 and masks the bootstrap with ``1 - d[t+1]``. In the ``Dataset`` that is: keep rows with
d = 0; step t ends its episode as a terminal where d[t+1] = 1 (OMIGA bootstraps from none of them, time-limit ends
included); rows after the last d = 1 row (an unfinished episode) are dropped and counted in
``metadata["dropped_tail_steps"]``. The reward is the team reward, copied to every agent. A per-agent ``s`` becomes
the global state through agent 0's row (``metadata["state_from"]``).

Reads go block by block over the file, so memory holds the kept rows once, never the whole file twice.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

import h5py
import numpy as np

from marlbench.data.dataset import Dataset
from marlbench.data.formats.native import READ_ERRORS, damaged_hdf5, with_fix
from marlbench.errors import DatasetError

KEYS = ("o", "a", "r", "d")
BLOCK_ROWS = 262_144
NAME = re.compile(r"(?P<scenario>[A-Za-z]+)-v\d+-(?P<conf>\d+x\d+)-(?P<quality>[a-z-]+)\.hdf5$")


def parse_name(path: str | os.PathLike) -> dict:
    """Scenario, agent configuration and quality from an OMIGA file name ({} if it does not follow the pattern)."""
    m = NAME.search(Path(path).name)
    return m.groupdict() if m else {}


OBTAIN_AGAIN = "again from where it came from"


def obtain_again(path: Path) -> str:
    """The fix for a damaged OMIGA original: fetch it again (the public-data layer adds the published copy's
    download command where the manifest knows the file, ``marlbench.families.public.with_published_copy``)."""
    return f"download or copy {path.name} {OBTAIN_AGAIN}"


def is_omiga_file(path: Path, f: h5py.File | None = None) -> bool:
    """OMIGA's keys in an .hdf5/.h5 file. With ``f`` (the open file) h5py's errors on a damaged file propagate,
    so the caller can report the damage; without it they mean "no"."""
    if not path.is_file() or path.suffix not in (".hdf5", ".h5"):
        return False
    if f is not None:
        return all(k in f for k in KEYS) and "format" not in f.attrs
    try:
        with h5py.File(path, "r") as opened:
            return is_omiga_file(path, opened)
    except READ_ERRORS:
        return False


def _rows(ds: h5py.Dataset, keep: np.ndarray) -> np.ndarray:
    """ds[keep] for a sorted index array, read in blocks (h5py fancy indexing over 1M rows is slow)."""
    out = np.empty((len(keep), *ds.shape[1:]), dtype=ds.dtype)
    pos = 0
    for start in range(0, ds.shape[0], BLOCK_ROWS):
        stop = min(start + BLOCK_ROWS, ds.shape[0])
        lo, hi = np.searchsorted(keep, (start, stop))
        if hi > lo:
            block = ds[start:stop]
            out[pos:pos + hi - lo] = block[keep[lo:hi] - start]
            pos += hi - lo
    return out


def read_omiga(path: str | os.PathLike, metadata: dict | None = None, with_state: bool = True) -> Dataset:
    """Load an OMIGA HDF5 file into a ``Dataset`` (rules in the module docstring)."""
    path = Path(path)
    try:
        with h5py.File(path, "r") as f:
            missing = [k for k in KEYS if k not in f]
            if missing:
                found = ", ".join(sorted(f)) or "none"
                if parse_name(path):  # OMIGA's published name: its keys were there when it was published
                    raise DatasetError(f"{path} is corrupt or not OMIGA's file: missing key(s) {', '.join(missing)} "
                                       f"(expected s, o, a, r, d; found {found}). Fix: {obtain_again(path)}.")
                raise DatasetError(f"{path} is not an OMIGA file: missing key(s) {', '.join(missing)} (expected "
                                   f"s, o, a, r, d; found {found})")
            o, a, r, d = (f[k] for k in KEYS)
            not_arrays = [k for k, ds in zip(KEYS, (o, a, r, d)) if not isinstance(ds, h5py.Dataset)]
            if not_arrays:  # a flipped object type turns a dataset into a group or named datatype
                raise KeyError(f"{', '.join(not_arrays)} is not an array")
            rows = o.shape[0]
            for key, ds, ndim in (("o", o, 3), ("a", a, 3)):
                if ds.ndim != ndim or ds.shape[0] != rows:
                    raise DatasetError(f"{path}: {key} expected shape [{rows}, n_agents, dim], found {ds.shape}")
            for key, ds in (("r", r), ("d", d)):
                if ds.shape not in ((rows, 1), (rows,)):
                    raise DatasetError(f"{path}: {key} expected shape [{rows}, 1], found {ds.shape}")
            if a.shape[1] != o.shape[1]:
                raise DatasetError(f"{path}: a has {a.shape[1]} agents but o has {o.shape[1]}")
            done = np.asarray(d[()]).reshape(-1) != 0
            last_end = np.flatnonzero(done)
            if last_end.size == 0:
                raise DatasetError(f"{path}: no row has d = 1, so no episode ends; not OMIGA's layout")
            valid = np.arange(rows) < last_end[-1]
            keep = np.flatnonzero(~done & valid)
            if keep.size == 0:
                raise DatasetError(f"{path}: no step with d = 0 before the last episode end")
            terminals = done[keep + 1]
            n = o.shape[1]
            reward = _rows(r, keep).reshape(-1, 1).astype(np.float32)
            arrays = {"obs": _rows(o, keep), "actions": _rows(a, keep), "rewards": np.repeat(reward, n, axis=1)}
            meta = {"format": "omiga-hdf5", "file": str(path), "source": "omiga", **parse_name(path),
                    "dropped_tail_steps": int(rows - last_end[-1] - 1)}
            if with_state and "s" in f:
                s = f["s"]
                if not isinstance(s, h5py.Dataset):
                    raise KeyError("s is not an array")
                if s.shape[0] != rows or s.ndim not in (2, 3):
                    raise DatasetError(f"{path}: s expected shape [{rows}, S] or [{rows}, n_agents, S], "
                                       f"found {s.shape}")
                state = _rows(s, keep)
                if state.ndim == 3:
                    state, meta["state_from"] = state[:, 0], "s[:, 0] (agent 0's row of OMIGA's per-agent s)"
                arrays["state"] = state
    except DatasetError:
        raise
    except READ_ERRORS as e:  # h5py on a damaged file: OSError, KeyError, RuntimeError, ValueError, ...
        raise damaged_hdf5(path, e, obtain_again(path)) from e
    meta.update(metadata or {})
    try:
        return Dataset(terminals=terminals, truncations=np.zeros_like(terminals), metadata=meta, **arrays)
    except DatasetError as e:  # NaN, bad flags, ...: the file's content, which the user fixes or re-exports
        raise DatasetError(with_fix(f"{path}: {e}", f"fix the data of {path.name} or obtain the file again")) from e

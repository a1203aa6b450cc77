"""OG-MARL vaults (flashbax), read and written with tensorstore alone (no JAX, no flashbax).

Layout of one dataset (one ``uid`` of a vault)::

    {root}/{source}/{env}/{scenario}.vlt/{uid}/
        metadata.json     {"version": 1.x, "structure_shape": {...}, "structure_dtype": {...}, ...}
        manifest.ocdbt    the OCDBT key-value store holding every array
        d/                its data files

Every leaf of the experience tree is a zarr array inside that OCDBT store, at the leaf's dotted path with a
trailing dot (``observations.``, ``infos.legals.``); a separate int32 array ``vault_index`` of shape (1,) holds the
valid length T along the time axis, which is allocated far longer than T. Leaves are [1, T, ...] (batch 1):
``observations.`` [1,T,N,obs], ``actions.`` [1,T,N] int (discrete) or [1,T,N,A] float, ``rewards.``,
``terminals.``, ``truncations.`` [1,T,N] (or [1,T]), ``infos.legals.`` [1,T,N,nA], ``infos.state.`` [1,T,S].

Conversion to the in-memory ``Dataset``: an episode ends at t where terminals (or truncations) are set for all
agents; a trailing unfinished episode (a vault written mid-episode) is dropped and counted in
``metadata["dropped_tail_steps"]``. Rewards stay per agent (OG-MARL copies the team reward to every agent).
"""
from __future__ import annotations

import ast
import json
import os
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from marlbench.data.dataset import Dataset
from marlbench.errors import DatasetError, require

METADATA_FILE = "metadata.json"
VAULT_INDEX = "vault_index"
WRITE_VERSION = 1.2  # the flashbax vault version these files follow
TIME_AXIS_CAPACITY = 10**13  # flashbax allocates the time axis this long and records the valid length separately
COMPRESSION = {"id": "gzip", "level": 5}
# Dataset field -> leaf path in the vault (the dotted path plus the trailing dot).
LEAVES = {
    "obs": "observations.", "actions": "actions.", "rewards": "rewards.", "terminals": "terminals.",
    "truncations": "truncations.", "legals": "infos.legals.", "state": "infos.state.",
}
REQUIRED = ("obs", "actions", "rewards", "terminals")


def _ts():
    return require("tensorstore", "vault")


@contextmanager
def _readable(path: Path):
    """tensorstore reports missing or corrupt keys as ValueError/RuntimeError: name the vault and the fix."""
    try:
        yield
    except (ValueError, RuntimeError, OSError) as e:
        raise DatasetError(f"vault {path} is corrupt or incomplete ({str(e).splitlines()[0]}); re-download it") \
            from e


def _spec(uid_dir: Path, leaf: str) -> dict:
    return {"driver": "zarr", "kvstore": {"driver": "ocdbt", "base": f"file://{uid_dir.resolve()}", "path": leaf}}


def _flatten(tree: dict, prefix: str = "") -> dict[str, str]:
    """{"infos": {"state": x}} -> {"infos.state.": x}: the vault's leaf naming."""
    out = {}
    for key, value in tree.items():
        path = f"{prefix}{key}."
        out.update(_flatten(value, path) if isinstance(value, dict) else {path: value})
    return out


def _shape(value) -> tuple | None:
    """A leaf's recorded shape ("(1, 1000, 3, 30)" in flashbax's metadata); None if unreadable (only keys matter)."""
    try:
        return tuple(ast.literal_eval(value) if isinstance(value, str) else value)
    except (ValueError, SyntaxError, TypeError):
        return None


def is_vault_dataset(path: Path) -> bool:
    return (path / METADATA_FILE).is_file() and (path / "manifest.ocdbt").exists()


def vault_uids(vault_dir: str | os.PathLike) -> list[str]:
    """The dataset uids (sub-directories holding a metadata.json) of a ``<scenario>.vlt`` directory."""
    vault_dir = Path(vault_dir)
    return sorted(p.name for p in vault_dir.iterdir() if p.is_dir() and is_vault_dataset(p)) \
        if vault_dir.is_dir() else []


def resolve_uid_dir(path: str | os.PathLike, uid: str | None = None) -> Path:
    """Accept a uid directory, or a ``.vlt`` directory plus ``uid`` (or a single-uid vault)."""
    path = Path(path)
    if is_vault_dataset(path):
        return path
    uids = vault_uids(path)
    if not uids:
        raise DatasetError(f"{path} is not an OG-MARL vault: expected {METADATA_FILE} and manifest.ocdbt in it or "
                           f"in one of its sub-directories (<scenario>.vlt/<uid>/)")
    if uid is None:
        if len(uids) > 1:
            raise DatasetError(f"{path} holds several datasets ({', '.join(uids)}); choose one with --uid")
        uid = uids[0]
    matches = [u for u in uids if u.lower() == uid.lower()]
    if not matches:
        raise DatasetError(f"{path} has no dataset {uid!r}; it holds: {', '.join(uids)}")
    return path / matches[0]


class VaultReader:
    """Lazy view of one vault dataset: shapes without reading data; ``read(field, start, stop)`` for windows."""

    def __init__(self, path: str | os.PathLike, uid: str | None = None):
        self.path = resolve_uid_dir(path, uid)
        try:
            self.metadata = json.loads((self.path / METADATA_FILE).read_text())
        except (OSError, ValueError) as e:
            raise DatasetError(f"{self.path / METADATA_FILE} is unreadable ({e}); re-download the vault") from e
        shapes = self.metadata.get("structure_shape")
        if not isinstance(shapes, dict):
            raise DatasetError(f"{self.path / METADATA_FILE} lacks 'structure_shape'; not a flashbax vault")
        self.leaf_shapes = {k: _shape(v) for k, v in _flatten(shapes).items()}
        missing = [LEAVES[f] for f in REQUIRED if LEAVES[f] not in self.leaf_shapes]
        if missing:
            raise DatasetError(f"vault {self.path} lacks leaf/leaves {', '.join(missing)} (it has "
                               f"{', '.join(sorted(self.leaf_shapes))})")
        ts = _ts()
        with _readable(self.path):
            index = ts.open(_spec(self.path, VAULT_INDEX)).result()
            self.length = int(index.read().result()[0])
            self._stores = {field: ts.open(_spec(self.path, leaf)).result()
                            for field, leaf in LEAVES.items() if leaf in self.leaf_shapes}
        for field, store in self._stores.items():
            if store.shape[0] != 1 or store.shape[1] < self.length:
                raise DatasetError(f"vault {self.path}: leaf {LEAVES[field]!r} expected shape [1, >= {self.length}, "
                                   f"...] (batch 1, vault_index {self.length}), found {tuple(store.shape)}")

    @property
    def fields(self) -> list[str]:
        return list(self._stores)

    def shape(self, field: str) -> tuple[int, ...]:
        """Shape of ``field`` over the valid length, without the batch axis: (T, ...)."""
        return (self.length, *self._stores[field].shape[2:])

    def read(self, field: str, start: int = 0, stop: int | None = None) -> np.ndarray:
        stop = self.length if stop is None else min(stop, self.length)
        with _readable(self.path):
            return np.asarray(self._stores[field][0, start:stop].read().result())

    def read_all(self) -> dict[str, np.ndarray]:
        """Every present field over [0, T), read concurrently."""
        with _readable(self.path):
            futures = {f: s[0, :self.length].read() for f, s in self._stores.items()}
            return {f: np.asarray(fut.result()) for f, fut in futures.items()}


def _episode_flags(arrays: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    def all_agents(x: np.ndarray) -> np.ndarray:
        x = x.astype(bool)
        return x.reshape(len(x), -1).all(axis=1)

    terminals = all_agents(arrays.pop("terminals"))
    trunc = arrays.pop("truncations", None)
    truncations = all_agents(trunc) & ~terminals if trunc is not None else np.zeros_like(terminals)
    return terminals, truncations


def read_vault(path: str | os.PathLike, uid: str | None = None, metadata: dict | None = None) -> Dataset:
    """Load one vault dataset into a ``Dataset`` (see the module docstring for the conversion rules)."""
    reader = VaultReader(path, uid)
    if reader.length == 0:
        raise DatasetError(f"vault {reader.path} is empty (vault_index 0)")
    arrays = reader.read_all()
    terminals, truncations = _episode_flags(arrays)
    ends = np.flatnonzero(terminals | truncations)
    if ends.size == 0:
        raise DatasetError(f"vault {reader.path}: no step ends an episode (terminals/truncations never set for all "
                           f"agents over {reader.length} steps)")
    keep = int(ends[-1]) + 1
    actions = arrays.pop("actions")
    if actions.ndim == 3 and actions.shape[-1] == 1 and "legals" in arrays:  # [T, N, 1] discrete indices
        actions = actions[..., 0]
    if actions.ndim == 2:
        actions = actions.astype(np.int64)
    meta = {
        "format": "og-marl-vault", "vault": str(reader.path), "source": "og-marl vault", "uid": reader.path.name,
        "vault_version": reader.metadata.get("version"), "dropped_tail_steps": reader.length - keep,
        **(metadata or {}),
    }
    fields = {k: v[:keep] for k, v in arrays.items()}
    return Dataset(actions=actions[:keep], terminals=terminals[:keep], truncations=truncations[:keep],
                   metadata=meta, **fields)


def write_vault(dataset: Dataset, vault_dir: str | os.PathLike, uid: str, extra_metadata: dict | None = None) -> Path:
    """Write ``dataset`` as a flashbax vault dataset ``vault_dir/uid`` (the layout OG-MARL publishes).

    Per-step flags become per-agent [1, T, N] arrays; every leaf is gzip-compressed zarr in an OCDBT store.
    The directory is built beside its final place and renamed into it, so a reader never sees a partial vault.
    """
    ts = _ts()
    vault_dir = Path(vault_dir)
    final = vault_dir / uid
    if final.exists():
        raise DatasetError(f"{final} already exists; choose another uid or remove it")
    tmp = vault_dir / f".{uid}.tmp-{os.getpid()}"
    tmp.mkdir(parents=True)
    n = dataset.n_agents
    arrays = {
        "obs": dataset.obs, "actions": dataset.actions, "rewards": dataset.rewards,
        "terminals": np.repeat(dataset.terminals[:, None], n, 1),
        "truncations": np.repeat(dataset.truncations[:, None], n, 1),
        "legals": dataset.legals, "state": dataset.state,
    }
    arrays = {k: v for k, v in arrays.items() if v is not None}
    shapes, dtypes = {}, {}
    for field, x in arrays.items():
        *parents, name = LEAVES[field].rstrip(".").split(".")
        shape_node, dtype_node = shapes, dtypes
        for p in parents:
            shape_node, dtype_node = shape_node.setdefault(p, {}), dtype_node.setdefault(p, {})
        shape_node[name], dtype_node[name] = str((1, *x.shape)), x.dtype.name
    try:
        meta = {"version": WRITE_VERSION, "structure_shape": shapes, "structure_dtype": dtypes,
                **(extra_metadata or {})}
        (tmp / METADATA_FILE).write_text(json.dumps(meta))
        writes = []
        for field, x in arrays.items():
            spec = {**_spec(tmp, LEAVES[field]), "metadata": {"compressor": COMPRESSION}}
            store = ts.open(spec, shape=(1, TIME_AXIS_CAPACITY, *x.shape[1:]), dtype=x.dtype.name,
                            create=True).result()
            writes.append(store[0, :len(x)].write(x))
        for w in writes:
            w.result()
        index = ts.open({**_spec(tmp, VAULT_INDEX), "metadata": {}}, shape=(1,), dtype="int32", create=True).result()
        index.write(np.array([dataset.n_transitions], np.int32)).result()
        os.replace(tmp, final)
    except BaseException:
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final

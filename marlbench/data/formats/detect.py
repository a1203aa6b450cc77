"""Recognise a dataset's layout from its path and load any supported layout into a ``Dataset``.

Layouts: ``native`` (marlbench HDF5), ``vault`` (OG-MARL, a ``.vlt`` or uid directory), ``omiga`` (OMIGA HDF5),
``omar`` (OMAR per-agent .npy directory, or a quality directory of ``seed_<s>_data``).
"""
from __future__ import annotations

import os
from pathlib import Path

import h5py

from marlbench.data.dataset import Dataset
from marlbench.errors import DatasetError

FORMATS = ("native", "vault", "omiga", "omar")


def detect_format(path: str | os.PathLike) -> str:
    from marlbench.data.formats.native import FORMAT
    from marlbench.data.formats.omar import SEED_DIR, is_omar_dir
    from marlbench.data.formats.omiga import is_omiga_file
    from marlbench.data.formats.vault import is_vault_dataset, vault_uids

    path = Path(path)
    if not path.exists():
        raise DatasetError(f"{path} does not exist")
    if path.is_file():
        try:
            with h5py.File(path, "r") as f:
                if f.attrs.get("format") == FORMAT:
                    return "native"
        except OSError:
            raise DatasetError(f"{path} is neither an HDF5 file (native, OMIGA) nor a directory (vault, OMAR); "
                               f"for a downloaded archive use `marlbench data download TASK --archive FILE`") from None
        if is_omiga_file(path):
            return "omiga"
        raise DatasetError(f"{path} is an HDF5 file but neither a marlbench native dataset nor OMIGA's layout "
                           f"(keys s, o, a, r, d)")
    if is_vault_dataset(path) or vault_uids(path):
        return "vault"
    if is_omar_dir(path) or any(SEED_DIR.search(p.name) and is_omar_dir(p) for p in path.iterdir()):
        return "omar"
    raise DatasetError(f"{path}: unknown dataset layout. Supported: a marlbench .h5 file, an OMIGA .hdf5 file, an "
                       f"OG-MARL vault directory (<scenario>.vlt or its <uid>), an OMAR directory (obs_0.npy, ...)")


def load_any(path: str | os.PathLike, fmt: str = "auto", uid: str | None = None, seed: int | None = None,
             metadata: dict | None = None) -> Dataset:
    """Load ``path`` in layout ``fmt`` (``auto``: detect). ``uid`` picks a vault dataset, ``seed`` an OMAR seed."""
    fmt = detect_format(path) if fmt == "auto" else fmt
    if fmt == "native":
        from marlbench.data.formats.native import load_native

        dataset = load_native(path)
        dataset.metadata.update(metadata or {})
        return dataset
    if fmt == "vault":
        from marlbench.data.formats.vault import read_vault

        return read_vault(path, uid, metadata)
    if fmt == "omiga":
        from marlbench.data.formats.omiga import read_omiga

        return read_omiga(path, metadata)
    if fmt == "omar":
        from marlbench.data.formats.omar import read_omar

        return read_omar(path, seed, metadata)
    raise DatasetError(f"unknown dataset format {fmt!r}; choose one of auto, {', '.join(FORMATS)}")

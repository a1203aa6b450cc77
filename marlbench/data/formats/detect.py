"""Recognise a dataset's layout from its path and load any supported layout into a ``Dataset``.

Layouts: ``native`` (marlbench HDF5), ``vault`` (OG-MARL, a ``.vlt`` or uid directory), ``omiga`` (OMIGA HDF5),
``omar`` (OMAR per-agent .npy directory, or a quality directory of ``seed_<s>_data``).
"""
from __future__ import annotations

import os
from pathlib import Path

import h5py

from marlbench.data.dataset import Dataset
from marlbench.data.formats.native import FORMAT, READ_ERRORS, damaged_hdf5, load_native
from marlbench.data.formats.omar import SEED_DIR, is_omar_dir, read_omar
from marlbench.data.formats.omiga import is_omiga_file, obtain_again, parse_name, read_omiga
from marlbench.data.formats.vault import is_vault_dataset, read_vault, vault_uids
from marlbench.errors import DatasetError

FORMATS = ("native", "vault", "omiga", "omar")


def detect_format(path: str | os.PathLike) -> str:
    path = Path(path)
    if not path.exists():
        raise DatasetError(f"{path} does not exist")
    if path.is_file():
        try:
            with h5py.File(path, "r") as f:
                if f.attrs.get("format") == FORMAT:
                    return "native"
                omiga = is_omiga_file(path, f)
        except READ_ERRORS as e:
            if looks_like_hdf5(path):
                raise damaged_hdf5(path, e, obtain_again(path) if parse_name(path) else None) from e
            raise DatasetError(f"{path} is neither an HDF5 file (native, OMIGA) nor a directory (vault, OMAR); "
                               f"for a downloaded archive use `marlbench data download TASK --archive FILE`") from None
        if omiga:
            return "omiga"
        if parse_name(path):  # OMIGA's published name without OMIGA's keys: a flipped byte in a key's name
            return "omiga"  # read_omiga names the missing keys and the fix
        raise DatasetError(f"{path} is an HDF5 file but neither a marlbench native dataset nor OMIGA's layout "
                           f"(keys s, o, a, r, d)")
    if is_vault_dataset(path) or vault_uids(path):
        return "vault"
    if is_omar_dir(path) or any(SEED_DIR.search(p.name) and is_omar_dir(p) for p in path.iterdir()):
        return "omar"
    raise DatasetError(f"{path}: unknown dataset layout. Supported: a marlbench .h5 file, an OMIGA .hdf5 file, an "
                       f"OG-MARL vault directory (<scenario>.vlt or its <uid>), an OMAR directory (obs_0.npy, ...)")


SIGNATURE = b"\x89HDF\r\n\x1a\n"
SUFFIXES = (".h5", ".hdf5", ".hdf", ".he5")


def looks_like_hdf5(path: Path) -> bool:
    """An HDF5 signature where HDF5 looks for one (byte 0, 512, 1024, 2048, ...), or an HDF5 file name: a file
    that fails to open is then damaged rather than of another kind."""
    if path.suffix.lower() in SUFFIXES:
        return True
    with open(path, "rb") as f:
        size, offset = os.fstat(f.fileno()).st_size, 0
        while offset + len(SIGNATURE) <= size:
            f.seek(offset)
            if f.read(len(SIGNATURE)) == SIGNATURE:
                return True
            offset = 512 if offset == 0 else offset * 2
    return False


def load_any(path: str | os.PathLike, fmt: str = "auto", uid: str | None = None, seed: int | None = None,
             metadata: dict | None = None) -> Dataset:
    """Load ``path`` in layout ``fmt`` (``auto``: detect). ``uid`` picks a vault dataset, ``seed`` an OMAR seed."""
    fmt = detect_format(path) if fmt == "auto" else fmt
    if fmt == "native":
        dataset = load_native(path)
        dataset.metadata.update(metadata or {})
        return dataset
    if fmt == "vault":
        return read_vault(path, uid, metadata)
    if fmt == "omiga":
        return read_omiga(path, metadata)
    if fmt == "omar":
        return read_omar(path, seed, metadata)
    raise DatasetError(f"unknown dataset format {fmt!r}; choose one of auto, {', '.join(FORMATS)}")

"""Load time of 1M-transition public datasets into memory (target: at most 10 s).

    python benchmarks/load_public.py [--transitions 1000000] [--dir DIR] [--keep] [--json]

Writes, once, into DIR (default: a temporary directory):
- an OG-MARL vault shaped like og_marl/smac_v1/3m (3 agents, obs 30, 9 discrete actions with legals, state 48;
  gzip-compressed zarr in OCDBT, as flashbax writes it), 25-step episodes;
- an OMIGA HDF5 file shaped like HalfCheetah-v2-6x1 (6 agents, obs 23, action 1, per-agent s, 1000-step episodes
  plus OMIGA's extra terminal row);
- the native file converted from the vault.
Then times, each in a fresh process-free call: ``read_vault`` (vault -> Dataset), ``read_omiga`` (OMIGA -> Dataset)
and ``load_native`` (with checksum verification). Writing is not timed. Speed claims in the docs come from here.
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np


def smac_like(transitions: int, rng: np.random.Generator):
    from marlbench.data.dataset import Dataset

    n, na = 3, 9
    legals = rng.random((transitions, n, na)) < 0.7
    legals[..., 1] = True
    ends = np.zeros(transitions, bool)
    ends[24::25] = True
    ends[-1] = True
    return Dataset(obs=rng.normal(size=(transitions, n, 30)).astype(np.float32),
                   actions=np.ones((transitions, n), np.int64), rewards=np.zeros((transitions, n), np.float32),
                   terminals=ends, truncations=np.zeros(transitions, bool), legals=legals,
                   state=rng.normal(size=(transitions, 48)).astype(np.float32))


def write_omiga_like(path: Path, transitions: int, rng: np.random.Generator) -> None:
    n, obs, episode = 6, 23, 1000
    rows = transitions + transitions // episode  # OMIGA's extra row per episode
    d = np.zeros((rows, 1), np.float32)
    d[episode::episode + 1] = 1
    d[-1] = 1
    with h5py.File(path, "w") as f:
        for key, shape in (("o", (rows, n, obs)), ("s", (rows, n, obs)), ("a", (rows, n, 1))):
            ds = f.create_dataset(key, shape, np.float32)
            for start in range(0, rows, 200_000):
                stop = min(rows, start + 200_000)
                ds[start:stop] = rng.normal(size=(stop - start, *shape[1:])).astype(np.float32)
        f["r"] = rng.normal(size=(rows, 1)).astype(np.float32)
        f["d"] = d


def timed(fn, *args):
    t0 = time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - t0


def main() -> None:
    from marlbench.data.formats.native import load_native, save_native
    from marlbench.data.formats.omiga import read_omiga
    from marlbench.data.formats.vault import read_vault, vault_uids, write_vault

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--transitions", type=int, default=1_000_000)
    p.add_argument("--dir", help="where the files are written (reused if present)")
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    root = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="marlbench-load-"))
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    vault = root / "og_marl" / "smac_v1" / "3m.vlt"
    if "Good" not in vault_uids(vault):
        write_vault(smac_like(args.transitions, rng), vault, "Good")
    omiga = root / "HalfCheetah-v2-6x1-expert.hdf5"
    if not omiga.exists():
        write_omiga_like(omiga, args.transitions, rng)
    native = root / "3m-good.h5"
    results = {"transitions": args.transitions, "dir": str(root)}
    data, results["vault_seconds"] = timed(read_vault, vault, "Good")
    results["vault_transitions"] = data.n_transitions
    if not native.exists():
        save_native(data, native)
    del data
    data, results["omiga_seconds"] = timed(read_omiga, omiga)
    results["omiga_transitions"] = data.n_transitions
    del data
    data, results["native_seconds"] = timed(load_native, native)
    results["native_transitions"] = data.n_transitions
    results["bytes"] = {p.name: sum(f.stat().st_size for f in p.rglob("*") if f.is_file()) if p.is_dir()
                        else p.stat().st_size for p in (vault, omiga, native)}
    if args.json:
        print(json.dumps(results, indent=2))
        return
    for kind in ("vault", "omiga", "native"):
        print(f"{kind:<7} {results[f'{kind}_transitions']:>9} transitions loaded in {results[f'{kind}_seconds']:.2f} s")
    print(f"files in {root}: " + ", ".join(f"{k} {v / 2**20:.0f} MiB" for k, v in results["bytes"].items()))


if __name__ == "__main__":
    main()

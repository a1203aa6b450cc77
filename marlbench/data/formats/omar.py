"""OMAR's per-agent numpy directories: ``{root}/{env}/{quality}/seed_{s}_data/`` holding, for every agent i,
``obs_i.npy`` [R, obs], ``acs_i.npy`` [R, act], ``rews_i.npy`` [R], ``next_obs_i.npy`` [R, obs], ``dones_i.npy``
[R] (MA-MuJoCo data adds ``states_i.npy``/``next_states_i.npy``).

The rows are consecutive steps of consecutive episodes. OMAR stores no episode boundary (MPE never terminates;
every episode is cut at 25 steps), so an episode ends at t where every agent's ``dones`` is set (a terminal) or
where the stored next observation is not the following row's observation (a new episode started: a time-limit
end, recorded as a truncation). The last row ends an episode. Since the ``Dataset`` never duplicates next
observations, the next observation after a time-limit end is not kept; those steps are excluded from TD sampling
like every truncated last step. Arrays are memory-mapped while the file is read.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

from marlbench.data.dataset import Dataset
from marlbench.errors import DatasetError

PER_AGENT = ("obs", "acs", "rews", "next_obs", "dones")
SEED_DIR = re.compile(r"seed_(\d+)_data$")


def is_omar_dir(path: Path) -> bool:
    return path.is_dir() and (path / "obs_0.npy").is_file()


def resolve_seed_dir(path: str | os.PathLike, seed: int | None = None) -> Path:
    """A ``seed_{s}_data`` directory, or a quality directory holding them (``seed`` picks one, default the lowest)."""
    path = Path(path)
    if is_omar_dir(path):
        return path
    seeds = sorted((int(m.group(1)), p) for p in (path.iterdir() if path.is_dir() else [])
                   if (m := SEED_DIR.search(p.name)) and is_omar_dir(p))
    if not seeds:
        raise DatasetError(f"{path} is not an OMAR dataset directory: expected obs_0.npy, acs_0.npy, ... in it or in "
                           f"seed_<s>_data/ sub-directories")
    if seed is None:
        return seeds[0][1]
    for s, p in seeds:
        if s == seed:
            return p
    raise DatasetError(f"{path} has no seed_{seed}_data; seeds present: {', '.join(str(s) for s, _ in seeds)}")


def _load(path: Path) -> np.ndarray:
    try:
        return np.load(path, mmap_mode="r")
    except (OSError, ValueError) as e:
        raise DatasetError(f"{path} is not a readable .npy file ({e})") from e


def read_omar(path: str | os.PathLike, seed: int | None = None, metadata: dict | None = None,
              atol: float = 1e-6) -> Dataset:
    """Load an OMAR directory into a ``Dataset`` (boundary rules in the module docstring)."""
    d = resolve_seed_dir(path, seed)
    n = 0
    while (d / f"obs_{n}.npy").is_file():
        n += 1
    per_agent = {}
    for key in PER_AGENT:
        missing = [f"{key}_{i}.npy" for i in range(n) if not (d / f"{key}_{i}.npy").is_file()]
        if missing:
            raise DatasetError(f"{d}: missing {', '.join(missing)} (OMAR stores obs, acs, rews, next_obs, dones per "
                               f"agent)")
        per_agent[key] = [_load(d / f"{key}_{i}.npy") for i in range(n)]
    rows = per_agent["obs"][0].shape[0]
    expect = {"obs": 2, "acs": 2, "rews": 1, "next_obs": 2, "dones": 1}
    for key, arrays in per_agent.items():
        for i, x in enumerate(arrays):
            ok = x.ndim == expect[key] or (expect[key] == 1 and x.ndim == 2 and x.shape[1] == 1)
            if not ok or x.shape[0] != rows or (key == "next_obs" and x.shape != per_agent["obs"][i].shape):
                want = f"[{rows}]" if expect[key] == 1 else f"[{rows}, dim]"
                raise DatasetError(f"{d / f'{key}_{i}.npy'}: expected shape {want}, found {x.shape}")
    obs = np.stack(per_agent["obs"], axis=1).astype(np.float32)
    next_obs = np.stack(per_agent["next_obs"], axis=1).astype(np.float32)
    dones = np.stack([x.reshape(rows) for x in per_agent["dones"]], axis=1) != 0
    terminals = dones.all(axis=1)
    continues = np.zeros(rows, dtype=bool)
    continues[:-1] = np.isclose(next_obs[:-1], obs[1:], atol=atol, rtol=0).all(axis=(1, 2))
    truncations = ~continues & ~terminals
    meta = {"format": "omar-npy", "dir": str(d), "source": "omar", "quality": d.parent.name,
            "env": d.parent.parent.name}
    meta.update(metadata or {})
    return Dataset(obs=obs, actions=np.stack(per_agent["acs"], axis=1),
                   rewards=np.stack([x.reshape(rows) for x in per_agent["rews"]], axis=1),
                   terminals=terminals, truncations=truncations, metadata=meta)


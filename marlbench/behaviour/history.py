"""The on-disk record of a behaviour-training run that tier selection and export read back: the learning curve
(``curve.jsonl``) and the replay history (``replay/part_<k>.npz``, one part per checkpoint interval)."""
from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import torch

from marlbench.results import atomic_write_bytes


def save_part(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write one replay part atomically."""
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    atomic_write_bytes(path, buf.getvalue())


def read_curve(path: Path) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def load_replay(run_dir: Path, upto_env_steps: int | None = None) -> dict[str, np.ndarray]:
    """The replay history of a run (episode-major arrays), optionally only the episodes collected up to
    ``upto_env_steps`` env steps (a count reached at a round boundary)."""
    run_dir = Path(run_dir)
    ckpt = torch.load(run_dir / "checkpoint.pt", weights_only=True)
    parts = [dict(np.load(run_dir / "replay" / f"part_{k:05d}.npz")) for k in range(ckpt["parts"])]
    data = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    if upto_env_steps is not None:
        keep = int(np.searchsorted(np.cumsum(data["lengths"]), upto_env_steps, side="right"))
        data = {k: v[:keep] for k, v in data.items()}
    return data

"""The on-disk record of a behaviour-training run that tier selection and export read back: the learning curve
(``curve.jsonl``) and the replay history (``replay/part_<k>.npz``, one part per checkpoint interval)."""
from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import torch

from marlbench.errors import MarlbenchError
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


class RunFiles:
    """A behaviour-training run in ``self.out``, as both trainers (MATD3, QMIX) lay it out and start it.
    ``snapshot_name`` names the policy weights a snapshot holds (``actor`` for MATD3, ``agent`` for QMIX);
    subclasses set ``algorithm``, ``cfg`` (with ``to_dict()`` and ``threads``), ``log`` and ``_run(final_path)``."""

    out: Path
    algorithm: str
    snapshot_name = "actor"

    def saved_trainer_config(self, saved: dict) -> dict:
        """The trainer config a run directory's config.json holds, as ``cfg.to_dict()`` would give it."""
        return saved["trainer"]

    def run(self) -> dict:
        """Train (resuming from the checkpoint), or return the record of a complete run; a directory that holds a
        run with a different config is refused."""
        final_path, config_path = self.out / "final.json", self.out / "config.json"
        if config_path.exists():
            saved = json.loads(config_path.read_text())
            trainer = self.saved_trainer_config(saved)
            if saved.get("algorithm", self.algorithm) != self.algorithm or trainer != self.cfg.to_dict():
                raise MarlbenchError(f"{self.out} holds a run with a different config; use another --out or the "
                                     f"same options (saved: {json.dumps(trainer)})")
        if final_path.exists():
            self.log(f"{self.out} is complete (final.json exists)")
            return json.loads(final_path.read_text())
        threads = torch.get_num_threads()
        torch.set_num_threads(self.cfg.threads)
        try:
            return self._run(final_path)
        finally:
            torch.set_num_threads(threads)

    @property
    def checkpoint_path(self) -> Path:
        return self.out / "checkpoint.pt"

    def part_path(self, k: int) -> Path:
        return self.out / "replay" / f"part_{k:05d}.npz"

    def snapshot_path(self, env_steps: int) -> Path:
        return self.out / "snapshots" / f"{self.snapshot_name}_{env_steps:09d}.pt"

"""Shared by the learning tests: train one seed through the real protocol, score it against uniform random."""
from __future__ import annotations

import numpy as np
import torch

from marlbench.config import resolve
from marlbench.executors import run_local
from marlbench.protocol import EVAL_SEED_OFFSET, ensure_dataset, evaluate
from marlbench.registry import ALGORITHMS
from marlbench.tasks import get_task


class UniformRandom:
    """Uniform over the action box, or over each agent's legal actions."""

    device = torch.device("cpu")

    def __init__(self, spec):
        self.spec = spec

    def act(self, obs, legals=None):
        if self.spec.continuous:
            low, high = self.spec.action_low, self.spec.action_high
            return low + torch.rand(*obs.shape[:-1], self.spec.action_dim) * (high - low)
        scores = torch.rand(*obs.shape[:-1], self.spec.action_dim)
        return (scores if legals is None else scores.masked_fill(~legals, -1.0)).argmax(-1)


def random_score(task_name: str, episodes: int = 32, seed: int = 0) -> float:
    """Normalised score of the uniform-random policy on the protocol's evaluation episodes."""
    task = get_task(task_name)
    return task.spec.normalise(float(np.mean(evaluate(UniformRandom(task.spec), task, episodes,
                                                      EVAL_SEED_OFFSET + seed))))


def train_and_score(algorithm: str, task_name: str, results_dir, seed: int = 0, steps: int | None = None,
                    overrides: dict | None = None) -> tuple[float, float]:
    """(normalised score of the final policy, uniform-random score on the same evaluation episodes), quick profile."""
    task = get_task(task_name)
    ensure_dataset(task, log=lambda msg: None)
    resolved = resolve(ALGORITHMS.get(algorithm), task.benchmark, "quick", steps=steps, overrides=overrides or {})
    (record,) = run_local(algorithm, task_name, [seed], resolved, results_dir, show_progress=False)
    baseline = random_score(task_name, resolved.protocol.eval_episodes, seed)
    print(f"{algorithm} on {task_name}: {record['normalised_score']:.1f} vs random {baseline:.1f} "
          f"(dataset mean {task.spec.normalise(record['dataset']['return_mean']):.1f})")
    return record["normalised_score"], baseline

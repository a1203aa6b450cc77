"""The batched multi-agent environment interface every environment implements.

All arrays are batched over ``num_envs`` episodes that step together, so evaluation and data generation run one
policy call per time step for all episodes (no Python loop over episodes or agents).
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import NamedTuple

import numpy as np

from marlbench.spec import TaskSpec


class EnvStep(NamedTuple):
    obs: np.ndarray  # [B, N, obs_dim] float32
    rewards: np.ndarray  # [B, N] float32; 0 for episodes that had already ended
    terminated: np.ndarray  # [B] bool: the episode ended in a terminal state (no bootstrap)
    truncated: np.ndarray  # [B] bool: the episode hit the time limit
    state: np.ndarray | None = None  # [B, S] float32, global state where the environment has one
    legals: np.ndarray | None = None  # [B, N, n_actions] bool, discrete tasks only


class BatchedMultiAgentEnv(ABC):
    """``num_envs`` independent episodes stepped in lock-step.

    Contract: ``reset(seed)`` starts every episode and returns an ``EnvStep`` whose rewards are zero and whose
    done flags are False. ``step(actions)`` takes ``[B, N, action_dim]`` floats (continuous) or ``[B, N]`` ints
    (discrete). An episode that has ended stays ended (zero reward, done flags stay True) until the next reset.
    """

    spec: TaskSpec
    num_envs: int

    @abstractmethod
    def reset(self, seed: int) -> EnvStep: ...

    @abstractmethod
    def step(self, actions: np.ndarray) -> EnvStep: ...

    def check_discrete_actions(self, actions: np.ndarray) -> np.ndarray:
        """``actions`` as an integer array of shape [B, N] with every index in [0, n_actions); a ValueError naming
        what was given otherwise."""
        actions = np.asarray(actions)
        expected = (self.num_envs, self.spec.n_agents)
        if actions.shape != expected or not np.issubdtype(actions.dtype, np.integer):
            raise ValueError(f"actions must be integers of shape {expected} (episodes, agents), got {actions.dtype} "
                             f"{actions.shape}")
        if actions.min() < 0 or actions.max() >= self.spec.action_dim:
            raise ValueError(f"actions must be in [0, {self.spec.action_dim}), got {actions.min()}..{actions.max()}")
        return actions

    def random_actions(self, rng: np.random.Generator, legals: np.ndarray | None = None) -> np.ndarray:
        """Uniform-random joint actions for every episode (the normalisation's random policy)."""
        b, n = self.num_envs, self.spec.n_agents
        if self.spec.continuous:
            return rng.uniform(self.spec.action_low, self.spec.action_high, (b, n, self.spec.action_dim)).astype(
                np.float32
            )
        if legals is None:
            return rng.integers(0, self.spec.action_dim, (b, n))
        # sample uniformly among legal actions: random keys, illegal ones pushed below every legal one
        keys = rng.random(legals.shape) + legals.astype(np.float64)
        return keys.argmax(-1)

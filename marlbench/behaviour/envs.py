"""Environments behaviour policies are trained in: the adapter type task families register, and what a behaviour
actor observes.

A family lists its ``BehaviourEnv``s (``Family.behaviour_envs``); the catalogue registers them in
``marlbench.registry.ENVIRONMENTS``, where the trainer and the tier generator look them up by name.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np

from marlbench.envs.base import BatchedMultiAgentEnv, EnvStep
from marlbench.errors import ConfigError
from marlbench.registry import ENVIRONMENTS
from marlbench.spec import TaskSpec

ACTOR_OBSERVATIONS = ("env", "state")


@dataclass(frozen=True)
class BehaviourEnv:
    """An environment behaviour policies can be trained in: its spec and a factory ``num_envs -> env``."""

    name: str
    spec: TaskSpec
    make: Callable[[int], BatchedMultiAgentEnv]
    defaults: dict = field(default_factory=dict)  # TrainerConfig/MATD3Config defaults for this environment
    chunk: int = 1000  # episodes stepped together when generating datasets
    # default tier size (Expert, Medium, Random; Medium-Expert is twice it): in transitions, rolled in whole
    # episodes until reached (for episodes that can end early), else in episodes
    default_transitions: int | None = None
    default_episodes: int = 1000
    aliases: tuple[str, ...] = ()


def get_env(name: str) -> BehaviourEnv:
    return ENVIRONMENTS.get(name)


def actor_observations(step: EnvStep, how: str) -> np.ndarray:
    """What a behaviour actor sees: the task's own observations (``"env"``), or the raw global state with the
    agent's one-hot id (``"state"``, a centralised behaviour policy; the datasets still record the task's
    observations)."""
    if how == "env":
        return step.obs
    if step.state is None:
        raise ConfigError("actor_observation=state needs an environment that exposes a global state")
    b, n = step.obs.shape[:2]
    state = np.broadcast_to(step.state[:, None, :], (b, n, step.state.shape[-1]))
    return np.concatenate([state, np.broadcast_to(np.eye(n, dtype=np.float32), (b, n, n))], -1).astype(np.float32)


def actor_spec(spec: TaskSpec, how: str) -> TaskSpec:
    """The spec the behaviour networks are built for (observation size per ``actor_observations``)."""
    return spec if how == "env" else replace(spec, obs_dim=spec.state_dim + spec.n_agents)

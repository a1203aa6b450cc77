"""Spread with MPE's original discrete movement actions: a multi-step discrete task that runs anywhere.

The discrete algorithms need a task with real dynamics before SMAC/SMAX are available; this is OMAR's Spread
(physics, observations and rewards of ``marlbench/envs/mpe.py``) with MPE's five discrete moves per agent:
0 no-op, 1 +x, 2 -x, 3 +y, 4 -y, each a unit action in that direction. Every action is always legal.

Dataset ``mpe/spread-discrete-scripted``: the Spread PD controller (agent i -> landmark i) discretised to the move
closest in direction to its action (no-op when the action is shorter than NOOP_BELOW), and at four noise levels
an agent's move is replaced by a uniform random one with probability 0, 0.2, 0.4, 0.7.
Normalisation: 0 = uniform random moves, 100 = the noise-free discretised controller, measured with
``measure_scores(episodes=1000, seed=0)`` on the same start states and hard-coded (a test re-measures them).
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np

from marlbench.data.dataset import Dataset
from marlbench.envs.base import EnvStep
from marlbench.envs.mpe import ScriptedSpreadPolicy, SpreadEnv, spread_spec
from marlbench.envs.rollout import rollout
from marlbench.seeding import derive_seed
from marlbench.spec import TaskSpec

MOVES = np.array([[0.0, 0.0], [1.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [0.0, -1.0]])
NOOP_BELOW = 0.25
RANDOM_MOVE_PROBS = (0.0, 0.2, 0.4, 0.7)
TASK_NAME = "mpe/spread-discrete-scripted"
GENERATE_CHUNK = 1000
# measure_scores(episodes=1000, seed=0): (uniform random moves, noise-free discretised controller)
MEASURED_SCORES = (155.7842, 437.7122)


def discrete_spread_spec(name: str = TASK_NAME, scores: tuple[float, float] | None = MEASURED_SCORES) -> TaskSpec:
    random_score, expert_score = scores if scores is not None else (None, None)
    return replace(spread_spec(name), action_kind="discrete", action_dim=len(MOVES),
                   random_score=random_score, expert_score=expert_score,
                   normalisation_source="random: uniform discrete moves; expert: noise-free discretised PD "
                                        "controller; measure_scores(episodes=1000, seed=0), hard-coded")


class DiscreteSpreadEnv(SpreadEnv):
    """SpreadEnv taking [B, N] integer moves."""

    def __init__(self, num_envs: int, spec: TaskSpec | None = None):
        super().__init__(num_envs)
        self.spec = spec or discrete_spread_spec()

    def step(self, actions: np.ndarray) -> EnvStep:
        actions = np.asarray(actions)
        if actions.shape != (self.num_envs, self.n_agents) or not np.issubdtype(actions.dtype, np.integer):
            raise ValueError(f"actions must be integers of shape {(self.num_envs, self.n_agents)}, "
                             f"got {actions.dtype} {actions.shape}")
        if actions.min() < 0 or actions.max() >= len(MOVES):
            raise ValueError(f"moves must be in [0, {len(MOVES)}), got {actions.min()}..{actions.max()}")
        return super().step(MOVES[actions])

    def random_actions(self, rng: np.random.Generator) -> np.ndarray:
        return rng.integers(0, len(MOVES), (self.num_envs, self.n_agents))


def discretise(actions: np.ndarray) -> np.ndarray:
    """[..., 2] continuous actions -> [...] the move of largest dot product (no-op when short)."""
    moves = (actions @ MOVES[1:].T).argmax(-1) + 1
    return np.where(np.linalg.norm(actions, axis=-1) < NOOP_BELOW, 0, moves)


class ScriptedDiscreteSpreadPolicy:
    """Discretised Spread PD controller; episode e uses ``random_move_probs[e % levels]``."""

    def __init__(self, random_move_probs=RANDOM_MOVE_PROBS, seed: int = 0):
        self.controller = ScriptedSpreadPolicy((0.0,), seed=seed, assignment="index")
        self.random_move_probs = tuple(float(p) for p in random_move_probs)
        self.seed, self._rng = seed, np.random.default_rng(seed)
        self._started = 0
        self.level = np.zeros(0, dtype=np.int64)

    def reset(self, num_envs: int) -> None:
        self.level = (self._started + np.arange(num_envs)) % len(self.random_move_probs)
        self._started += num_envs

    def __call__(self, step: EnvStep) -> np.ndarray:
        moves = discretise(self.controller.clean_actions(step.obs))
        b, n = moves.shape
        prob = np.asarray(self.random_move_probs)[self.level][:, None]
        replace_move = self._rng.random((b, n)) < prob  # both streams drawn in full every step
        return np.where(replace_move, self._rng.integers(0, len(MOVES), (b, n)), moves)

    def describe(self) -> dict:
        return {"name": "scripted-spread-pd-discretised", "assignment": "index", "noop_below": NOOP_BELOW,
                "random_move_probs": list(self.random_move_probs), "seed": self.seed}


def generate_discrete_spread(episodes: int = 4000, seed: int = 0) -> Dataset:
    """The mpe/spread-discrete-scripted dataset, identical for identical arguments."""
    policy = ScriptedDiscreteSpreadPolicy(seed=derive_seed(seed, 1))
    data = rollout(DiscreteSpreadEnv(GENERATE_CHUNK), policy, episodes, seed)
    data.metadata.update({"task": TASK_NAME, "source": "generated", "quality": "scripted",
                          "behaviour_policy": policy.describe(), "generator_seed": seed, "episodes": episodes,
                          "return_definition": spread_spec().return_definition})
    return data


def measure_scores(episodes: int = 1000, seed: int = 0) -> tuple[float, float]:
    """(mean return of uniform random moves, of the noise-free discretised controller), same start states."""
    env = DiscreteSpreadEnv(min(episodes, GENERATE_CHUNK), spec=discrete_spread_spec(scores=None))
    rng = np.random.default_rng(derive_seed(seed, 2))
    random = rollout(env, lambda step: env.random_actions(rng), episodes, seed)
    expert = rollout(env, ScriptedDiscreteSpreadPolicy((0.0,)), episodes, seed)
    return float(random.episode_returns().mean()), float(expert.episode_returns().mean())

"""Scripted behaviour policies used to generate datasets.

``ScriptedSpreadPolicy`` solves MPE Spread with a landmark assignment and a PD controller, then corrupts its
actions with a per-episode noise level so one dataset mixes expert-like and random-like episodes.
"""
from __future__ import annotations

import itertools
from collections.abc import Sequence
from functools import lru_cache

import numpy as np

from marlbench.envs.base import EnvStep
from marlbench.errors import ConfigError

# (Gaussian action std, probability of a uniform random action), one level per episode, cycling over episodes.
# With the default gains the levels score about 524 / 429 / 324 / 228 / 160 (normalised about 102 / 75 / 46 / 19 / 0),
# from expert-like down to uniform random; the mix averages about 333 (48 normalised).
DEFAULT_NOISE_LEVELS: tuple[tuple[float, float], ...] = (
    (0.0, 0.0),
    (0.7, 0.0),
    (1.25, 0.0),
    (2.5, 0.0),
    (0.0, 1.0),
)
# kd = kp / 2 is strongly damped: agents arrive a little later but settle without overshoot. Stiffer gains
# (kp=5, kd=0.5) score about 638, far above OMAR's expert reference of 516.8; these put the noise-free level near it.
# Collisions remain on about 9% of noise-free steps, mostly where two landmarks lie closer than two agent sizes.
DEFAULT_KP = 2.0
DEFAULT_KD = 1.0
# "optimal": re-solve the min-total-distance agent->landmark assignment every step (coordinated, but a hard
# combinatorial function for a learner); "index": agent i steers to landmark i (decentralised and easy to learn).
ASSIGNMENTS = ("optimal", "index")
MAX_BRUTE_FORCE_AGENTS = 7  # 7! = 5040 permutations per episode is still cheap; beyond that it is not


@lru_cache(maxsize=None)
def _permutations(n: int) -> np.ndarray:
    """[n!, n] table: row p assigns agent i to landmark ``table[p, i]``."""
    return np.array(list(itertools.permutations(range(n))), dtype=np.int64)


def optimal_assignment(dist: np.ndarray) -> np.ndarray:
    """Per episode, the agent->landmark permutation with the least total distance.

    ``dist`` is [B, N, N] (agent, landmark); returns [B, N] landmark indices. Brute force over all N! permutations.
    """
    n = dist.shape[-1]
    if n > MAX_BRUTE_FORCE_AGENTS:
        raise ConfigError(f"brute-force assignment supports at most {MAX_BRUTE_FORCE_AGENTS} agents, got {n}")
    perms = _permutations(n)
    cost = dist[:, np.arange(n)[None, :], perms].sum(-1)  # [B, n!]
    return perms[cost.argmin(axis=1)]


class ScriptedSpreadPolicy:
    """Noisy landmark-assignment PD controller for Spread, reading everything it needs from the observations.

    Every step each episode re-solves the optimal agent->landmark assignment (so agents pushed off course re-plan),
    and agent i takes ``clip(kp * (landmark - pos) - kd * vel, -1, 1)``. Episode ``e`` (counted across ``reset``
    calls) uses ``noise_levels[e % len(noise_levels)]``: a Gaussian action std and a probability that an agent's
    action is replaced by a uniform random one; noisy actions are clipped to [-1, 1] again.
    """

    name = "scripted-spread-pd"

    def __init__(self, noise_levels: Sequence[tuple[float, float] | float] = DEFAULT_NOISE_LEVELS,
                 seed: int = 0, kp: float = DEFAULT_KP, kd: float = DEFAULT_KD, assignment: str = "optimal"):
        levels = [(float(lv), 0.0) if np.isscalar(lv) else tuple(map(float, lv)) for lv in noise_levels]
        if not levels or any(len(lv) != 2 or lv[0] < 0 or not 0 <= lv[1] <= 1 for lv in levels):
            raise ConfigError(f"noise_levels must be a non-empty list of (std >= 0, 0 <= random_prob <= 1), "
                              f"got {noise_levels!r}")
        if assignment not in ASSIGNMENTS:
            raise ConfigError(f"assignment must be one of {ASSIGNMENTS}, got {assignment!r}")
        self.noise_levels = levels
        self.kp, self.kd, self.seed, self.assignment = float(kp), float(kd), seed, assignment
        self._rng = np.random.default_rng(seed)
        self._episodes_started = 0
        self.level = np.zeros(0, dtype=np.int64)  # noise-level index of each episode in the current batch

    def reset(self, num_envs: int) -> np.ndarray:
        """Start ``num_envs`` new episodes; returns (and keeps) their noise-level indices."""
        episode = self._episodes_started + np.arange(num_envs)
        self._episodes_started += num_envs
        self.level = episode % len(self.noise_levels)
        return self.level

    def clean_actions(self, obs: np.ndarray) -> np.ndarray:
        """Noise-free PD actions [B, N, 2] from Spread observations [B, N, obs_dim]."""
        obs = np.asarray(obs, dtype=np.float64)
        b, n, _ = obs.shape
        vel = obs[..., 0:2]
        rel_land = obs[..., 4:4 + 2 * n].reshape(b, n, n, 2)  # landmark - own position
        if self.assignment == "optimal":
            target = optimal_assignment(np.linalg.norm(rel_land, axis=-1))
        else:  # agent i always steers to landmark i
            target = np.broadcast_to(np.arange(n), (b, n))
        rel = np.take_along_axis(rel_land, target[:, :, None, None], axis=2)[:, :, 0]
        return np.clip(self.kp * rel - self.kd * vel, -1.0, 1.0)

    def __call__(self, step: EnvStep) -> np.ndarray:
        """Noisy actions [B, N, 2] (float32) for the batch started by the last ``reset``."""
        actions = self.clean_actions(step.obs)
        b, n, _ = actions.shape
        if self.level.shape != (b,):
            raise RuntimeError(f"call reset({b}) before acting on a batch of {b} episodes")
        std, prob = np.asarray(self.noise_levels).T[:, self.level][:, :, None, None]  # each [B, 1, 1]
        # draw every stream in full each step so the random sequence does not depend on the noise levels
        gauss = self._rng.standard_normal((b, n, 2))
        replace = self._rng.random((b, n, 1)) < prob
        uniform = self._rng.uniform(-1.0, 1.0, (b, n, 2))
        actions = np.clip(actions + std * gauss, -1.0, 1.0)
        return np.where(replace, uniform, actions).astype(np.float32)

    def describe(self) -> dict:
        """JSON-ready description for dataset metadata."""
        return {
            "name": self.name,
            "noise_levels": [{"action_std": s, "random_prob": p} for s, p in self.noise_levels],
            "level_of_episode": "episode index modulo len(noise_levels)",
            "assignment": self.assignment,
            "kp": self.kp,
            "kd": self.kd,
            "seed": self.seed,
        }

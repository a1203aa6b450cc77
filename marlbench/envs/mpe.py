"""MPE Spread (cooperative navigation) as used by OMAR, batched over episodes.

Re-implements the particle physics of the original multiagent-particle-envs with the simple_spread scenario as
modified for OMAR (continuous 2-d actions, reward ``sum_l min(1/d_l, 10)`` minus 5 per collision), so that the
uniform-random policy scores about 159.8, the reference OMAR's normalisation uses. Every array is batched as
``[B, N, 2]``; no Python loop runs over episodes or agents.

Conventions that the original leaves implicit:
- actions are clipped to ``[-1, 1]`` before scaling (OMAR's action space is ``Box(-1, 1, (2,))``);
- two agents at exactly the same position exert no contact force on each other (the original divides by zero);
- once an episode has ended, ``step`` returns its final observation again with zero reward and done flags kept.
"""
from __future__ import annotations

import numpy as np

from marlbench.envs.base import BatchedMultiAgentEnv, EnvStep
from marlbench.errors import ConfigError
from marlbench.spec import TaskSpec

# physics constants of the original particle world and the spread scenario
AGENT_SIZE = 0.15
SENSITIVITY = 5.0  # action force multiplier ("accel" defaults to 5.0)
MASS = 1.0
DAMPING = 0.25
DT = 0.1
CONTACT_FORCE = 100.0
CONTACT_MARGIN = 1e-3
DIM_C = 2  # communication channel width; agents are silent, so it is always zeros
REWARD_CAP = 10.0
COLLISION_PENALTY = 5.0
MAX_AGENTS = 10

RANDOM_SCORE = 159.8
EXPERT_SCORE = 516.8


def obs_dim_for(n_agents: int) -> int:
    """Per-agent observation length: vel, pos, landmarks, other agents, other agents' comm."""
    return 4 + 2 * n_agents + 2 * (n_agents - 1) + DIM_C * (n_agents - 1)


def spread_spec(name: str = "mpe/spread", n_agents: int = 3) -> TaskSpec:
    """The TaskSpec of OMAR's Spread with ``n_agents`` agents and as many landmarks."""
    _check_n_agents(n_agents)
    return TaskSpec(
        name=name,
        n_agents=n_agents,
        obs_dim=obs_dim_for(n_agents),
        action_kind="continuous",
        action_dim=2,
        episode_limit=25,
        state_dim=None,
        action_low=-1.0,
        action_high=1.0,
        return_definition="sum over 25 steps of the mean over agents of the per-agent reward",
        random_score=RANDOM_SCORE,
        expert_score=EXPERT_SCORE,
        normalisation_source="MAC-Flow paper App. G.3 / OMAR",
    )


def _check_n_agents(n_agents: int) -> None:
    if not 2 <= n_agents <= MAX_AGENTS:
        raise ConfigError(f"mpe/spread supports 2 to {MAX_AGENTS} agents, got n_agents={n_agents}")


def pairwise_delta(pos: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``delta[..., i, j] = pos_i - pos_j`` ([B, N, N, 2]) and its length ([B, N, N])."""
    delta = pos[:, :, None, :] - pos[:, None, :, :]
    return delta, np.sqrt(np.sum(delta * delta, axis=-1))


class SpreadEnv(BatchedMultiAgentEnv):
    """``num_envs`` Spread episodes of ``episode_limit`` steps, each truncated (never terminated) at the limit."""

    def __init__(self, num_envs: int, n_agents: int = 3, episode_limit: int = 25):
        _check_n_agents(n_agents)
        if num_envs < 1:
            raise ConfigError(f"num_envs must be at least 1, got {num_envs}")
        if episode_limit < 1:
            raise ConfigError(f"episode_limit must be at least 1, got {episode_limit}")
        spec = spread_spec(n_agents=n_agents)
        if episode_limit != spec.episode_limit:
            # keep the spec truthful; normalisation references only hold for 25 steps
            from dataclasses import replace

            spec = replace(spec, episode_limit=episode_limit, random_score=None, expert_score=None)
        self.spec = spec
        self.num_envs = num_envs
        self.n_agents = n_agents
        self.n_landmarks = n_agents
        self.episode_limit = episode_limit
        # the original scenario spawns in [-1, 1]^2; larger teams get a wider arena
        self.boundary = 1.0 if n_agents <= 3 else 2.0
        self._rng: np.random.Generator | None = None
        self._t = 0
        self.pos = np.zeros((num_envs, n_agents, 2))
        self.vel = np.zeros((num_envs, n_agents, 2))
        self.landmarks = np.zeros((num_envs, self.n_landmarks, 2))
        # j-indices of the other agents of agent i, in agent order skipping i: [N, N-1]
        n = n_agents
        self._others = np.array([[j for j in range(n) if j != i] for i in range(n)], dtype=np.int64).reshape(n, n - 1)

    # ------------------------------------------------------------------ interface
    def reset(self, seed: int) -> EnvStep:
        """Start every episode: agents and landmarks uniform in the arena, zero velocity."""
        self._rng = np.random.default_rng(seed)
        b, n, lim = self.num_envs, self.n_agents, self.boundary
        self.pos = self._rng.uniform(-lim, lim, (b, n, 2))
        self.landmarks = self._rng.uniform(-lim, lim, (b, self.n_landmarks, 2))
        self.vel = np.zeros((b, n, 2))
        self._t = 0
        done = np.zeros(b, dtype=bool)
        return EnvStep(self._observe(), np.zeros((b, n), dtype=np.float32), done, done.copy())

    def step(self, actions: np.ndarray) -> EnvStep:
        """Advance every episode one step; after the limit, return zero rewards and keep the done flags."""
        if self._rng is None:
            raise RuntimeError("SpreadEnv.step called before reset")
        b, n = self.num_envs, self.n_agents
        actions = np.asarray(actions, dtype=np.float64)
        if actions.shape != (b, n, 2):
            raise ValueError(f"actions must have shape {(b, n, 2)}, got {actions.shape}")
        if not np.all(np.isfinite(actions)):
            raise ValueError("actions contain NaN or infinite values")
        terminated = np.zeros(b, dtype=bool)
        if self._t >= self.episode_limit:
            return EnvStep(self._observe(), np.zeros((b, n), dtype=np.float32), terminated, np.ones(b, dtype=bool))
        self._physics(np.clip(actions, -1.0, 1.0))
        self._t += 1
        truncated = np.full(b, self._t >= self.episode_limit)
        return EnvStep(self._observe(), self._rewards().astype(np.float32), terminated, truncated)

    # ------------------------------------------------------------------ dynamics
    def _physics(self, actions: np.ndarray) -> None:
        force = SENSITIVITY * actions
        delta, dist = pairwise_delta(self.pos)
        dist_min = 2 * AGENT_SIZE
        k = CONTACT_MARGIN
        penetration = np.logaddexp(0.0, -(dist - dist_min) / k) * k
        # the diagonal (i == i) and coincident agents have delta = 0; a safe divisor makes their force zero
        safe = np.where(dist > 0.0, dist, 1.0)
        pair_force = (CONTACT_FORCE * penetration / safe)[..., None] * delta
        # force on i from every j: +f(i, j); for i < j that is the original's +force on a, and -f(j, i) on b
        force = force + pair_force.sum(axis=2)
        self.vel = self.vel * (1.0 - DAMPING) + force / MASS * DT
        self.pos = self.pos + self.vel * DT

    def _rewards(self) -> np.ndarray:
        """[B, N] per-agent rewards of the current positions."""
        # agent-landmark distances [B, N, L]; the coverage term is shared by all agents
        d = np.sqrt(np.sum((self.pos[:, :, None, :] - self.landmarks[:, None, :, :]) ** 2, axis=-1))
        nearest = d.min(axis=1)
        with np.errstate(divide="ignore"):
            coverage = np.minimum(1.0 / nearest, REWARD_CAP).sum(axis=-1)  # 1/0 = inf is capped to 10
        _, dist = pairwise_delta(self.pos)
        collide = dist < 2 * AGENT_SIZE
        collide &= ~np.eye(self.n_agents, dtype=bool)  # an agent does not collide with itself
        return coverage[:, None] - COLLISION_PENALTY * collide.sum(axis=-1)

    def _observe(self) -> np.ndarray:
        b, n = self.num_envs, self.n_agents
        rel_land = (self.landmarks[:, None, :, :] - self.pos[:, :, None, :]).reshape(b, n, -1)
        rel_other = self.pos[:, self._others, :] - self.pos[:, :, None, :]  # [B, N, N-1, 2]
        comm = np.zeros((b, n, DIM_C * (n - 1)))
        obs = np.concatenate([self.vel, self.pos, rel_land, rel_other.reshape(b, n, -1), comm], axis=-1)
        return obs.astype(np.float32)

    @property
    def t(self) -> int:
        """Steps taken since the last reset."""
        return self._t

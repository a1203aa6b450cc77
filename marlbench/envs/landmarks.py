"""Landmark covering game of the MAC-Flow paper (Sec. 4.3, App. H.4), batched over episodes, with its dataset.

``N`` agents (3 to 40) move in the plane to cover ``N`` fixed landmarks.

- Landmarks: fixed per task, evenly spaced on the unit circle (``landmark_positions``), landmark k at angle
  2 pi k / N. Agents start uniformly in the box [-START_BOX, START_BOX]^2.
- Actions: a_i in [-1, 1]^2 (clipped), a movement vector: ``pos_i += STEP_SIZE * a_i``.
- Observation of agent i: its own position (2) followed by all landmark positions (2N), absolute coordinates.
  Agents do not observe each other (Sec. 4.3), so coordinating on a partition needs a joint policy.
- Reward: after every step, the min-total-distance assignment of agents to landmarks is solved anew and the team
  reward ``-mean_i |pos_i - landmark_{sigma(i)}|`` is copied to every agent. No terminal state; every episode is
  truncated after EPISODE_LIMIT steps. Return = sum over steps of the mean over agents (the team reward).

Assignment: for N <= MAX_BRUTE_FORCE_AGENTS all N! permutations are scored at once for every episode (vectorised,
in chunks of episodes to bound memory); above that, ``scipy.optimize.linear_sum_assignment`` runs once per episode
(a Python loop over the B episodes, ~20 us per call at N = 40, so keep B in the thousands at most).

Dataset (App. H.4, 50 trajectories): a scripted policy solves the optimal assignment once, at the episode start,
and steers each agent straight to its landmark (plus N(0, BEHAVIOUR_NOISE_STD^2) action noise). Start positions
differ per episode, so the partitions differ too: the data is coordinated within an episode and multimodal across.
"""
from __future__ import annotations

import itertools
from functools import lru_cache

import numpy as np
from scipy.optimize import linear_sum_assignment

from marlbench.data.dataset import Dataset
from marlbench.envs.base import BatchedMultiAgentEnv, EnvStep
from marlbench.envs.rollout import rollout
from marlbench.errors import ConfigError
from marlbench.seeding import derive_seed
from marlbench.spec import TaskSpec

MIN_AGENTS, MAX_AGENTS = 3, 40
STEP_SIZE = 0.1
EPISODE_LIMIT = 20
START_BOX = 1.0
LANDMARK_RADIUS = 1.0
BEHAVIOUR_NOISE_STD = 0.1
DEFAULT_EPISODES = 50  # App. H.4
GENERATE_CHUNK = 100  # episodes stepped together; fixed, so fewer episodes give a prefix of more episodes
MAX_BRUTE_FORCE_AGENTS = 7
_BRUTE_FORCE_BUDGET = 2_000_000  # max (episodes x permutations x agents) entries per vectorised chunk
REGISTERED_SIZES = (3, 10, 40)
RETURN_DEFINITION = "sum over steps of the team reward -mean_i dist(agent i, its optimally assigned landmark)"

# Reference returns, measured with ``measure_scores(n, episodes=1000, seed=0)`` (uniform-random actions and the
# noise-free scripted policy). Hard-coded so registering the tasks costs nothing; tests re-measure them.
MEASURED_SCORES = {  # n_agents: (random_score, expert_score)
    3: (-15.6764, -2.9811),
    10: (-10.0695, -1.2694),
    40: (-7.2968, -0.6997),
}


# ----------------------------------------------------------------------------------------------- geometry
def _check_n_agents(n_agents: int) -> int:
    if not MIN_AGENTS <= n_agents <= MAX_AGENTS:
        raise ConfigError(f"n_agents must be in [{MIN_AGENTS}, {MAX_AGENTS}], got {n_agents}")
    return int(n_agents)


def landmark_positions(n_agents: int) -> np.ndarray:
    """[N, 2] fixed landmarks, evenly spaced on the circle of radius LANDMARK_RADIUS (landmark 0 at (R, 0))."""
    angles = 2.0 * np.pi * np.arange(_check_n_agents(n_agents)) / n_agents
    return LANDMARK_RADIUS * np.stack([np.cos(angles), np.sin(angles)], axis=1)


@lru_cache(maxsize=None)
def _permutations(n: int) -> np.ndarray:
    """[n!, n]: row p assigns agent i to landmark ``table[p, i]``."""
    return np.array(list(itertools.permutations(range(n))), dtype=np.int64)


def optimal_assignment(dist: np.ndarray) -> np.ndarray:
    """Per episode, the agent->landmark permutation of least total distance: ``dist`` [B, N, N] -> [B, N] indices.

    Brute force over all permutations for N <= MAX_BRUTE_FORCE_AGENTS, ``linear_sum_assignment`` per episode above.
    """
    b, n, _ = dist.shape
    if n > MAX_BRUTE_FORCE_AGENTS:
        return np.stack([linear_sum_assignment(d)[1] for d in dist]) if b else np.zeros((0, n), dtype=np.int64)
    perms = _permutations(n)
    chunk = max(1, _BRUTE_FORCE_BUDGET // (len(perms) * n))
    out = np.empty((b, n), dtype=np.int64)
    for s in range(0, b, chunk):
        cost = dist[s:s + chunk][:, np.arange(n)[None, :], perms].sum(-1)  # [chunk, n!]
        out[s:s + chunk] = perms[cost.argmin(axis=1)]
    return out


def _distances(pos: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """[B, N, L] distances between agents ``pos`` [B, N, 2] and ``landmarks`` [L, 2]."""
    return np.linalg.norm(pos[:, :, None, :] - landmarks[None, None, :, :], axis=-1)


def team_reward(pos: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """[B] minus the mean agent->landmark distance under the optimal assignment of each episode."""
    dist = _distances(pos, landmarks)
    assign = optimal_assignment(dist)
    return -np.take_along_axis(dist, assign[:, :, None], axis=2)[:, :, 0].mean(axis=1)


# -------------------------------------------------------------------------------------------- environment
def landmarks_name(n_agents: int) -> str:
    return f"games/landmarks-{n_agents}"


def landmarks_spec(n_agents: int, name: str | None = None) -> TaskSpec:
    """TaskSpec of the N-agent game; reference scores from MEASURED_SCORES, else measured now (<= ~1.5 s)."""
    n = _check_n_agents(n_agents)
    if n in MEASURED_SCORES:
        random_score, expert_score = MEASURED_SCORES[n]
        source = "measured once with measure_scores(n, episodes=1000, seed=0) and hard-coded"
    else:
        random_score, expert_score = measure_scores(n, episodes=200, seed=0)
        source = "measured at construction with measure_scores(n, episodes=200, seed=0)"
    return TaskSpec(name=name or landmarks_name(n), n_agents=n, obs_dim=2 + 2 * n, action_kind="continuous",
                    action_dim=2, episode_limit=EPISODE_LIMIT, return_definition=RETURN_DEFINITION,
                    random_score=random_score, expert_score=expert_score,
                    normalisation_source=f"random: uniform actions in [-1, 1]^2; expert: noise-free scripted "
                                         f"start-of-episode assignment policy; {source}")


class LandmarkCoveringEnv(BatchedMultiAgentEnv):
    """``num_envs`` episodes of the N-agent landmark covering game (see the module docstring)."""

    def __init__(self, num_envs: int, n_agents: int = 3, spec: TaskSpec | None = None):
        if num_envs < 1:
            raise ConfigError(f"num_envs must be at least 1, got {num_envs}")
        self.n_agents = _check_n_agents(n_agents)
        self.spec = spec or landmarks_spec(self.n_agents)
        self.num_envs = num_envs
        self.landmarks = landmark_positions(self.n_agents)
        self.pos = np.zeros((num_envs, self.n_agents, 2))
        self.t: int | None = None  # None before the first reset

    def _obs(self) -> np.ndarray:
        lm = np.broadcast_to(self.landmarks.reshape(1, 1, -1), (self.num_envs, self.n_agents, 2 * self.n_agents))
        return np.concatenate([self.pos, lm], axis=2).astype(np.float32)

    def reset(self, seed: int) -> EnvStep:
        """Start every episode with agents uniform in [-START_BOX, START_BOX]^2."""
        self.pos = np.random.default_rng(seed).uniform(-START_BOX, START_BOX, (self.num_envs, self.n_agents, 2))
        self.t = 0
        flags = np.zeros(self.num_envs, dtype=bool)
        return EnvStep(self._obs(), np.zeros((self.num_envs, self.n_agents), dtype=np.float32), flags, flags.copy())

    def step(self, actions: np.ndarray) -> EnvStep:
        """Move every agent, reward the team; at EPISODE_LIMIT every episode is truncated. Later steps give zero."""
        if self.t is None:
            raise RuntimeError("LandmarkCoveringEnv.step called before reset")
        actions = np.asarray(actions, dtype=np.float64)
        if actions.shape != (self.num_envs, self.n_agents, 2):
            raise ValueError(f"actions must have shape {(self.num_envs, self.n_agents, 2)}, got {actions.shape}")
        if not np.all(np.isfinite(actions)):
            raise ValueError("actions contain NaN or infinite values")
        if self.t >= self.spec.episode_limit:  # already ended: state frozen, zero reward
            reward = np.zeros(self.num_envs)
        else:
            self.pos = self.pos + STEP_SIZE * np.clip(actions, -1.0, 1.0)
            self.t += 1
            reward = team_reward(self.pos, self.landmarks)
        rewards = np.repeat(reward[:, None], self.n_agents, axis=1).astype(np.float32)
        truncated = np.full(self.num_envs, self.t >= self.spec.episode_limit)
        return EnvStep(self._obs(), rewards, np.zeros(self.num_envs, dtype=bool), truncated)


# ---------------------------------------------------------------------------------------- behaviour policy
class ScriptedLandmarkPolicy:
    """Solve the optimal assignment on the first step after ``reset`` and steer straight to it, plus noise.

    Reads only observations: agent i's target is fixed for the episode, its action is
    ``clip((target - pos) / STEP_SIZE + N(0, noise_std^2), -1, 1)`` (arrives exactly when within one step).
    """

    def __init__(self, noise_std: float = BEHAVIOUR_NOISE_STD, seed: int = 0):
        self.noise_std = float(noise_std)
        self.seed = seed
        self._rng = np.random.default_rng(seed)
        self._targets: np.ndarray | None = None

    def reset(self, num_envs: int) -> None:
        self._targets = None

    def __call__(self, step: EnvStep) -> np.ndarray:
        obs = step.obs.astype(np.float64)
        pos = obs[:, :, :2]
        if self._targets is None:
            landmarks = obs[0, 0, 2:].reshape(-1, 2)
            assign = optimal_assignment(_distances(pos, landmarks))
            self._targets = landmarks[assign]  # [B, N, 2]
        actions = (self._targets - pos) / STEP_SIZE
        if self.noise_std > 0:
            actions = actions + self._rng.normal(0.0, self.noise_std, actions.shape)
        return np.clip(actions, -1.0, 1.0).astype(np.float32)

    def describe(self) -> dict:
        return {"name": "scripted-landmark-assignment", "assignment": "optimal at episode start",
                "noise_std": self.noise_std, "seed": self.seed}


class _UniformRandomPolicy:
    def __init__(self, env: BatchedMultiAgentEnv, seed: int):
        self.env, self.rng = env, np.random.default_rng(seed)

    def __call__(self, step: EnvStep) -> np.ndarray:
        return self.env.random_actions(self.rng)


def measure_scores(n_agents: int, episodes: int = 1000, seed: int = 0) -> tuple[float, float]:
    """(mean return of uniform-random actions, mean return of the noise-free scripted policy), same start states."""
    env = LandmarkCoveringEnv(min(episodes, 1000), n_agents, spec=_unscored_spec(n_agents))
    random_return = rollout(env, _UniformRandomPolicy(env, derive_seed(seed, 2)), episodes, seed)
    expert_return = rollout(env, ScriptedLandmarkPolicy(noise_std=0.0), episodes, seed)
    return float(random_return.episode_returns().mean()), float(expert_return.episode_returns().mean())


def _unscored_spec(n_agents: int) -> TaskSpec:
    return TaskSpec(name=landmarks_name(n_agents), n_agents=n_agents, obs_dim=2 + 2 * n_agents,
                    action_kind="continuous", action_dim=2, episode_limit=EPISODE_LIMIT)


# ------------------------------------------------------------------------------------------------- dataset
def generate_landmarks(n_agents: int, episodes: int = DEFAULT_EPISODES, seed: int = 0) -> Dataset:
    """Scripted-assignment dataset of the N-agent game, identical for identical arguments."""
    n = _check_n_agents(n_agents)
    policy = ScriptedLandmarkPolicy(seed=derive_seed(seed, 1))
    env = LandmarkCoveringEnv(GENERATE_CHUNK, n, spec=landmarks_spec(n))
    data = rollout(env, policy, episodes, seed)
    data.metadata.update({
        "task": landmarks_name(n), "source": "generated", "quality": "scripted",
        "behaviour_policy": policy.describe(), "generator_seed": seed, "episodes": episodes,
        "landmarks": landmark_positions(n).tolist(), "step_size": STEP_SIZE, "start_box": START_BOX,
        "return_definition": RETURN_DEFINITION,
    })
    return data

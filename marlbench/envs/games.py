"""Single-step two-agent games of the MAC-Flow paper (App. H.5-H.7), batched over episodes, with their datasets.

Every game is stateless: each agent observes the constant observation ``[0.0]``, the episode lasts one step, and
``step`` returns the team reward copied to both agents with ``terminated=True`` (a terminal state, no bootstrap).

- ``games/coordination`` (H.5): binary actions, team reward (0,0)=0, (0,1)=(1,0)=1, (1,1)=2. The dataset is biased
  towards the two off-diagonal modes (``COORDINATION_FREQUENCIES``), so behaviour cloning misses the optimum (1,1).
- ``games/payoff-z{0,25,50,75,100}`` (H.7): the same game; the dataset mixes the diagonal joint actions
  {(0,0), (1,1)} with weight zeta and the off-diagonal ones {(0,1), (1,0)} with weight 1 - zeta.
- ``games/xor`` (H.6): continuous actions in [-1, 1]; team reward ``|a1 - a2| / 2`` (actions clipped to the box).
  It depends only on the relative action and is maximal (1) exactly at the anti-aligned joint actions (-1, +1) and
  (+1, -1), which are the two dataset modes; no per-agent value can pick the right sign on its own.

Normalisation is analytic: the uniform-random policy scores 1.0 on the matrix games (mean of 0, 1, 1, 2) and
E|a1 - a2| / 2 = (2/3) / 2 = 1/3 on xor; the optimum scores 2.0 and 1.0.
"""
from __future__ import annotations

import numpy as np

from marlbench.data.dataset import Dataset
from marlbench.envs.base import BatchedMultiAgentEnv, EnvStep
from marlbench.errors import ConfigError
from marlbench.spec import TaskSpec

N_AGENTS = 2
OBS_DIM = 1
DEFAULT_EPISODES = 10000
RETURN_DEFINITION = "team reward of the single step"

# team reward of the joint action (row = agent 0's action, column = agent 1's)
COORDINATION_PAYOFF = np.array([[0.0, 1.0], [1.0, 2.0]])
# joint-action frequencies of the coordination dataset: mostly the two off-diagonal modes
COORDINATION_FREQUENCIES = np.array([[0.05, 0.45], [0.45, 0.05]])
PAYOFF_ZETAS = (0.0, 0.25, 0.5, 0.75, 1.0)
XOR_MODES = np.array([[-1.0, 1.0], [1.0, -1.0]])  # the two anti-aligned joint actions, drawn with equal probability
XOR_NOISE_STD = 0.1


# ---------------------------------------------------------------------------------------------------- specs
def coordination_spec(name: str = "games/coordination") -> TaskSpec:
    """TaskSpec of the binary coordination game (also used by the payoff-game tasks)."""
    return TaskSpec(name=name, n_agents=N_AGENTS, obs_dim=OBS_DIM, action_kind="discrete", action_dim=2,
                    episode_limit=1, return_definition=RETURN_DEFINITION,
                    random_score=float(COORDINATION_PAYOFF.mean()), expert_score=float(COORDINATION_PAYOFF.max()),
                    normalisation_source="analytic")


def xor_spec(name: str = "games/xor") -> TaskSpec:
    """TaskSpec of the continuous XOR game; random score E|a1 - a2| / 2 = 1/3 for uniform actions on [-1, 1]."""
    return TaskSpec(name=name, n_agents=N_AGENTS, obs_dim=OBS_DIM, action_kind="continuous", action_dim=1,
                    episode_limit=1, action_low=-1.0, action_high=1.0, return_definition=RETURN_DEFINITION,
                    random_score=1.0 / 3.0, expert_score=1.0, normalisation_source="analytic")


def payoff_frequencies(zeta: float) -> np.ndarray:
    """2x2 joint-action distribution of D^zeta: zeta on uniform{(0,0),(1,1)}, 1 - zeta on uniform{(0,1),(1,0)}."""
    if not 0.0 <= zeta <= 1.0:
        raise ConfigError(f"zeta must be in [0, 1], got {zeta}")
    return np.array([[zeta / 2, (1 - zeta) / 2], [(1 - zeta) / 2, zeta / 2]])


def joint_action_frequencies(actions: np.ndarray) -> np.ndarray:
    """2x2 frequency matrix of binary joint actions ``[K, 2]`` (row = agent 0's action, column = agent 1's)."""
    actions = np.asarray(actions)
    if actions.ndim != 2 or actions.shape[1] != 2 or len(actions) == 0:
        raise ValueError(f"expected binary joint actions of shape [K, 2] with K >= 1, got {actions.shape}")
    if not np.isin(actions, (0, 1)).all():
        raise ValueError("joint actions must be 0 or 1")
    joint = 2 * actions[:, 0].astype(np.int64) + actions[:, 1].astype(np.int64)
    return np.bincount(joint, minlength=4).reshape(2, 2) / len(actions)


# ---------------------------------------------------------------------------------------------- environments
class SingleStepGameEnv(BatchedMultiAgentEnv):
    """``num_envs`` one-step episodes of a stateless team game; subclasses define ``team_reward``."""

    def __init__(self, num_envs: int, spec: TaskSpec):
        if num_envs < 1:
            raise ConfigError(f"num_envs must be at least 1, got {num_envs}")
        self.spec = spec
        self.num_envs = num_envs
        self._done: bool | None = None  # None before the first reset

    def team_reward(self, actions: np.ndarray) -> np.ndarray:
        """[B] team reward of validated joint actions."""
        raise NotImplementedError

    def check_actions(self, actions: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _obs(self) -> np.ndarray:
        return np.zeros((self.num_envs, N_AGENTS, OBS_DIM), dtype=np.float32)

    def reset(self, seed: int) -> EnvStep:
        """Start every episode (the game has no state, so ``seed`` changes nothing)."""
        self._done = False
        flags = np.zeros(self.num_envs, dtype=bool)
        return EnvStep(self._obs(), np.zeros((self.num_envs, N_AGENTS), dtype=np.float32), flags, flags.copy())

    def step(self, actions: np.ndarray) -> EnvStep:
        """Play the single step: team reward to both agents, every episode terminated. Later steps give zero."""
        if self._done is None:
            raise RuntimeError(f"{type(self).__name__}.step called before reset")
        actions = self.check_actions(actions)
        reward = np.zeros(self.num_envs) if self._done else self.team_reward(actions)
        self._done = True
        rewards = np.repeat(reward[:, None], N_AGENTS, axis=1).astype(np.float32)
        return EnvStep(self._obs(), rewards, np.ones(self.num_envs, dtype=bool), np.zeros(self.num_envs, dtype=bool))


class CoordinationGameEnv(SingleStepGameEnv):
    """Binary-action coordination game: actions ``[B, 2]`` ints in {0, 1}, reward ``COORDINATION_PAYOFF[a0, a1]``."""

    def __init__(self, num_envs: int, name: str = "games/coordination"):
        super().__init__(num_envs, coordination_spec(name))

    def check_actions(self, actions: np.ndarray) -> np.ndarray:
        actions = np.asarray(actions)
        if actions.shape != (self.num_envs, N_AGENTS):
            raise ValueError(f"actions must have shape {(self.num_envs, N_AGENTS)}, got {actions.shape}")
        if not np.isin(actions, (0, 1)).all():
            raise ValueError("discrete actions must be 0 or 1")
        return actions.astype(np.int64)

    def team_reward(self, actions: np.ndarray) -> np.ndarray:
        return COORDINATION_PAYOFF[actions[:, 0], actions[:, 1]]


class XorGameEnv(SingleStepGameEnv):
    """Continuous XOR game: actions ``[B, 2, 1]`` clipped to [-1, 1], reward ``|a1 - a2| / 2``."""

    def __init__(self, num_envs: int, name: str = "games/xor"):
        super().__init__(num_envs, xor_spec(name))

    def check_actions(self, actions: np.ndarray) -> np.ndarray:
        actions = np.asarray(actions, dtype=np.float64)
        if actions.shape != (self.num_envs, N_AGENTS, 1):
            raise ValueError(f"actions must have shape {(self.num_envs, N_AGENTS, 1)}, got {actions.shape}")
        if not np.all(np.isfinite(actions)):
            raise ValueError("actions contain NaN or infinite values")
        return np.clip(actions, -1.0, 1.0)

    def team_reward(self, actions: np.ndarray) -> np.ndarray:
        return np.abs(actions[:, 0, 0] - actions[:, 1, 0]) / 2.0


# ------------------------------------------------------------------------------------------------- datasets
def _game_dataset(actions: np.ndarray, team_reward: np.ndarray, metadata: dict) -> Dataset:
    t = len(actions)
    return Dataset(obs=np.zeros((t, N_AGENTS, OBS_DIM), dtype=np.float32), actions=actions,
                   rewards=np.repeat(team_reward[:, None], N_AGENTS, axis=1).astype(np.float32),
                   terminals=np.ones(t, dtype=bool), truncations=np.zeros(t, dtype=bool), metadata=metadata)


def _matrix_dataset(task: str, quality: str, frequencies: np.ndarray, episodes: int, seed: int) -> Dataset:
    """``episodes`` i.i.d. joint actions of the coordination game drawn from the 2x2 ``frequencies``."""
    if episodes < 1:
        raise ValueError(f"episodes must be at least 1, got {episodes}")
    joint = np.random.default_rng(seed).choice(4, size=episodes, p=frequencies.ravel())
    actions = np.stack([joint // 2, joint % 2], axis=1).astype(np.int64)
    return _game_dataset(actions, COORDINATION_PAYOFF[actions[:, 0], actions[:, 1]], {
        "task": task, "source": "generated", "quality": quality, "n_actions": 2,
        "joint_action_frequencies": frequencies.tolist(),
        "empirical_joint_action_frequencies": joint_action_frequencies(actions).tolist(),
        "generator_seed": seed, "episodes": episodes, "return_definition": RETURN_DEFINITION,
    })


def generate_coordination(episodes: int = DEFAULT_EPISODES, seed: int = 0) -> Dataset:
    """Biased coordination dataset (``COORDINATION_FREQUENCIES``), identical for identical arguments."""
    return _matrix_dataset("games/coordination", "biased", COORDINATION_FREQUENCIES, episodes, seed)


def payoff_name(zeta: float) -> str:
    return f"games/payoff-z{round(100 * zeta)}"


def generate_payoff(episodes: int = DEFAULT_EPISODES, seed: int = 0, zeta: float = 0.5) -> Dataset:
    """Payoff-game dataset D^zeta (diagonal mass ``zeta``), identical for identical arguments."""
    name = payoff_name(zeta)
    return _matrix_dataset(name, name.split("-")[-1], payoff_frequencies(zeta), episodes, seed)


def generate_xor(episodes: int = DEFAULT_EPISODES, seed: int = 0) -> Dataset:
    """XOR dataset: the modes (-1, +1) and (+1, -1) with equal probability, plus N(0, 0.1^2) noise, clipped."""
    if episodes < 1:
        raise ValueError(f"episodes must be at least 1, got {episodes}")
    rng = np.random.default_rng(seed)
    modes = XOR_MODES[rng.integers(0, 2, size=episodes)]
    actions = np.clip(modes + rng.normal(0.0, XOR_NOISE_STD, size=modes.shape), -1.0, 1.0)
    return _game_dataset(actions[:, :, None].astype(np.float32), np.abs(actions[:, 0] - actions[:, 1]) / 2.0, {
        "task": "games/xor", "source": "generated", "quality": "two-mode",
        # joint frequencies of the action signs (row = agent 0 negative/positive, column = agent 1's)
        "joint_action_frequencies": [[0.0, 0.5], [0.5, 0.0]],
        "empirical_joint_action_frequencies": joint_action_frequencies(actions > 0).tolist(),
        "noise_std": XOR_NOISE_STD, "generator_seed": seed, "episodes": episodes,
        "return_definition": RETURN_DEFINITION,
    })

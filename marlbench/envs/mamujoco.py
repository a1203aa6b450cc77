"""MA-MuJoCo (6-agent HalfCheetah 6x1, 3-agent Hopper 3x1, 2-agent Ant 2x4) over Gymnasium-Robotics'
``mamujoco_v1``, batched over episodes.

The maintained wrapper supplies the factorisation: which joint each agent drives and, for local observations, which
bodies each agent sees. Stepping goes to the wrapper's underlying Gymnasium environment with the joint action
assembled through the wrapper's own action partition (a fixed index map read from
``map_local_actions_to_global_action`` once). Two reasons: the wrapper's ``step`` builds every agent's local
observation even when they are unused (2.5x slower for HalfCheetah), and after an episode ends the wrapper empties
``agents``, which would break dict-based action building; here actions are arrays by agent index.

Observations (``observation=``):

- ``"omiga"`` (default; OMIGA's datasets): agent i sees ``concat(state, one_hot(i))`` z-scored across that
  vector's own entries, ``state`` being the single-agent Gymnasium observation. Exact for HalfCheetah (23 dims) and
  Hopper (14); Ant-v5's state has 105 dims against OMIGA's Ant-v2 111, so 2ant observations have 107 dims, not 113.
- ``"local"``: the wrapper's own k-nearest-joint observations (``agent_obsk=1``), zero-padded to the longest agent's.

The team reward is copied to every agent; the raw global state is ``EnvStep.state``. Episodes end on the
Gymnasium termination (Hopper and Ant fall over) or at ``episode_limit`` steps (1000).
"""
from __future__ import annotations

import numpy as np

from marlbench.envs.base import BatchedMultiAgentEnv, EnvStep
from marlbench.errors import ConfigError, UnknownNameError, require
from marlbench.spec import TaskSpec

# suite scenario name -> (Gymnasium scenario, agent_conf, state dims, OMIGA's state dims)
SCENARIOS = {
    "6halfcheetah": ("HalfCheetah", "6x1", 17, 17),
    "3hopper": ("Hopper", "3x1", 11, 11),
    "2ant": ("Ant", "2x4", 105, 111),
}
EPISODE_LIMIT = 1000
OBSERVATIONS = ("omiga", "local")
ZSCORE_EPS = 1e-8  # keeps a constant vector finite; never reached by these states


def _scenario(scenario: str) -> tuple[str, str, int, int]:
    if scenario not in SCENARIOS:
        raise UnknownNameError("MA-MuJoCo scenario", scenario, list(SCENARIOS))
    return SCENARIOS[scenario]


def _make_wrapper(scenario: str):
    import contextlib
    import io

    # gymnasium-robotics prints a notice about its Adroit environments' rewards on import; it does not concern us
    with contextlib.redirect_stderr(io.StringIO()):
        require("gymnasium_robotics", "mujoco")
    from gymnasium_robotics import mamujoco_v1

    gym_name, conf, _, _ = _scenario(scenario)
    return mamujoco_v1.parallel_env(gym_name, conf, agent_obsk=1)


def _local_obs_dims(wrapper) -> list[int]:
    return [int(wrapper.observation_space(a).shape[0]) for a in wrapper.possible_agents]


def mamujoco_spec(name: str, scenario: str, observation: str = "omiga", random_score: float | None = None,
                  expert_score: float | None = None, normalisation_source: str = "") -> TaskSpec:
    """The TaskSpec of ``scenario`` (``6halfcheetah``, ``3hopper``, ``2ant``) without building the simulator for
    the default observations."""
    gym_name, conf, state_dim, _ = _scenario(scenario)
    if observation not in OBSERVATIONS:
        raise UnknownNameError("MA-MuJoCo observation", observation, list(OBSERVATIONS))
    n_agents, per_agent = (int(x) for x in conf.split("x"))
    obs_dim = state_dim + n_agents if observation == "omiga" else max(_local_obs_dims(_make_wrapper(scenario)))
    return TaskSpec(
        name=name, n_agents=n_agents, obs_dim=obs_dim, action_kind="continuous", action_dim=per_agent,
        episode_limit=EPISODE_LIMIT, state_dim=state_dim, action_low=-1.0, action_high=1.0,
        return_definition=f"sum of the team reward ({gym_name}-v5) over up to {EPISODE_LIMIT} steps",
        random_score=random_score, expert_score=expert_score, normalisation_source=normalisation_source,
    )


def omiga_observations(state: np.ndarray, n_agents: int) -> np.ndarray:
    """OMIGA's per-agent observations from global states [B, S]: [B, N, S + N], each row z-scored over itself."""
    b = state.shape[0]
    ids = np.broadcast_to(np.eye(n_agents, dtype=np.float64), (b, n_agents, n_agents))
    raw = np.concatenate([np.broadcast_to(state[:, None, :], (b, n_agents, state.shape[1])), ids], axis=-1)
    mean = raw.mean(-1, keepdims=True)
    std = raw.std(-1, keepdims=True)
    return ((raw - mean) / (std + ZSCORE_EPS)).astype(np.float32)


class MaMuJoCoEnv(BatchedMultiAgentEnv):
    """``num_envs`` MA-MuJoCo episodes stepped together; one wrapper (and simulator) per episode."""

    def __init__(self, num_envs: int, scenario: str, observation: str = "omiga", episode_limit: int = EPISODE_LIMIT,
                 spec: TaskSpec | None = None):
        if num_envs < 1:
            raise ConfigError(f"num_envs must be at least 1, got {num_envs}")
        if not 1 <= episode_limit <= EPISODE_LIMIT:
            raise ConfigError(f"episode_limit must be in [1, {EPISODE_LIMIT}], got {episode_limit}")
        self.scenario, self.observation, self.num_envs = scenario, observation, num_envs
        self.spec = spec or mamujoco_spec(f"mamujoco/{scenario}", scenario, observation)
        self.limit = min(episode_limit, self.spec.episode_limit)
        self.wrappers = [_make_wrapper(scenario) for _ in range(num_envs)]
        self.sims = [w.single_agent_env for w in self.wrappers]
        self.n = len(self.wrappers[0].possible_agents)
        if self.n != self.spec.n_agents:
            raise ConfigError(f"{scenario}: the wrapper has {self.n} agents, the spec {self.spec.n_agents}")
        self.joint_index = self._joint_index(self.wrappers[0])
        self.local_dims = _local_obs_dims(self.wrappers[0])
        self.t = 0
        self.last = EnvStep(*(None,) * 4)

    def _joint_index(self, wrapper) -> np.ndarray:
        """``joint[k] = flat_agent_actions[index[k]]``, read from the wrapper's own partition."""
        da = self.spec.action_dim
        probe = {a: np.arange(i * da, (i + 1) * da, dtype=np.float64) for i, a in enumerate(wrapper.possible_agents)}
        index = wrapper.map_local_actions_to_global_action(probe)
        if np.isnan(index).any() or sorted(index.astype(int)) != list(range(self.n * da)):
            raise ConfigError(f"{self.scenario}: the wrapper's action partition does not cover every joint once")
        return index.astype(np.int64)

    # ------------------------------------------------------------------ observations
    def _states(self) -> np.ndarray:
        return np.stack([s.unwrapped._get_obs() for s in self.sims]).astype(np.float64)

    def _observe(self, states: np.ndarray) -> np.ndarray:
        if self.observation == "omiga":
            return omiga_observations(states, self.n)
        obs = np.zeros((self.num_envs, self.n, self.spec.obs_dim), np.float32)
        for b, w in enumerate(self.wrappers):  # the wrapper builds local observations one agent at a time
            for i in range(self.n):
                obs[b, i, :self.local_dims[i]] = w._get_obs_agent(i)
        return obs

    # ------------------------------------------------------------------ stepping
    def reset(self, seed: int) -> EnvStep:
        seeds = np.random.SeedSequence(seed).generate_state(self.num_envs)
        for sim, s in zip(self.sims, seeds):
            sim.reset(seed=int(s))
        self.t = 0
        states = self._states()
        self.last = EnvStep(obs=self._observe(states), rewards=np.zeros((self.num_envs, self.n), np.float32),
                            terminated=np.zeros(self.num_envs, bool), truncated=np.zeros(self.num_envs, bool),
                            state=states.astype(np.float32))
        return self.last

    def step(self, actions: np.ndarray) -> EnvStep:
        if self.last.obs is None:
            raise ConfigError("MaMuJoCoEnv.step() called before reset(seed)")
        actions = np.asarray(actions, dtype=np.float64)
        expected = (self.num_envs, self.n, self.spec.action_dim)
        if actions.shape != expected:
            raise ConfigError(f"actions have shape {actions.shape}, expected {expected} (episodes, agents, dims)")
        joint = np.clip(actions.reshape(self.num_envs, -1), -1.0, 1.0)[:, self.joint_index]
        self.t += 1
        reward = np.zeros(self.num_envs, np.float32)
        terminated, truncated = self.last.terminated.copy(), self.last.truncated.copy()
        live = ~(terminated | truncated)  # episodes still running before this step
        for b in np.flatnonzero(live):
            _, r, term, trunc, _ = self.sims[b].step(joint[b])
            reward[b] = r
            terminated[b] = term
            truncated[b] = (trunc or self.t >= self.limit) and not term
        states = self._states()
        # an ended episode keeps its last observation (the simulator is not stepped again)
        obs = np.where(live[:, None, None], self._observe(states), self.last.obs)
        state = np.where(live[:, None], states.astype(np.float32), self.last.state)
        self.last = EnvStep(obs=obs, rewards=np.repeat(reward[:, None], self.n, 1), terminated=terminated,
                            truncated=truncated, state=state)
        return self.last

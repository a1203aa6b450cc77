"""``SmaxSmacShim``: a TEST SHIM, not StarCraft II. It exposes SMAC's Python interface (``reset``, ``step``,
``get_obs``, ``get_state``, ``get_avail_actions``, ``get_env_info``, ``close``) on top of one SMAX episode, so the
StarCraft II adapter's code path (``envs/smac_adapter.py``: episode loop, legal masks, win detection, time limits,
seeding) runs on a real simulator on machines without StarCraft II.

What it shares with SMAC's ``StarCraft2Env`` is the interface and its conventions, never the game: observations,
state, actions and rewards are SMAX's (``envs/smax.py``), so a shimmed ``3m`` has 75-dim observations, a 72-dim
state and 8 actions where SC2's 3m has 30, 48 and 9. Like SMAC it is seeded at construction and each ``reset()``
starts the next episode of that seed's sequence; ``step`` asserts that every action is available (SMAC does the
same), returns ``(reward, terminated, info)`` with ``info["battle_won"]``, and at the time limit ends the episode
with ``info["episode_limit"] = True`` only when built with ``continuing_episode=True`` (SMAC's default is False).
"""
from __future__ import annotations

import numpy as np

from marlbench.envs.smax import SmaxEnv
from marlbench.seeding import derive_seed


class SmaxSmacShim:
    """SMAC's ``StarCraft2Env`` interface over one SMAX episode (a test shim; see the module docstring)."""

    def __init__(self, map_name: str = "3m", seed: int = 0, continuing_episode: bool = False,
                 fast_compile: bool = False):
        self.map_name, self.seed, self.continuing_episode = map_name, int(seed), continuing_episode
        self._env = SmaxEnv(1, map_name, fast_compile=fast_compile)
        spec = self._env.spec
        self.n_agents, self.n_actions, self.episode_limit = spec.n_agents, spec.action_dim, spec.episode_limit
        self._episode_count = 0
        self._step = None
        self.closed = False

    # ------------------------------------------------------------------ SMAC's interface
    def reset(self):
        self._step = self._env.reset(derive_seed(self.seed, self._episode_count))
        self._episode_count += 1
        return self.get_obs(), self.get_state()

    def step(self, actions):
        if self._step is None:
            raise RuntimeError("SmaxSmacShim.step() called before reset()")
        if self._step.terminated[0] or self._step.truncated[0]:
            raise RuntimeError("SmaxSmacShim.step() called after the episode ended; call reset()")
        actions = [int(a) for a in actions]
        for agent, action in enumerate(actions):
            assert self._step.legals[0, agent, action], f"Agent {agent} cannot perform action {action}"
        self._step = self._env.step(np.asarray(actions, dtype=np.int64)[None])
        terminated = bool(self._step.terminated[0] or self._step.truncated[0])
        info = {"battle_won": bool(self._env.won[0])}
        if self._step.truncated[0] and self.continuing_episode:
            info["episode_limit"] = True
        return float(self._step.rewards[0, 0]), terminated, info

    def get_obs(self):
        return list(self._step.obs[0])

    def get_obs_agent(self, agent_id: int):
        return self._step.obs[0, agent_id]

    def get_state(self):
        return self._step.state[0]

    def get_avail_actions(self):
        return [list(row) for row in self._step.legals[0].astype(int)]

    def get_avail_agent_actions(self, agent_id: int):
        return list(self._step.legals[0, agent_id].astype(int))

    def get_obs_size(self) -> int:
        return self._env.spec.obs_dim

    def get_state_size(self) -> int:
        return self._env.spec.state_dim

    def get_total_actions(self) -> int:
        return self.n_actions

    def get_env_info(self) -> dict:
        return {"state_shape": self.get_state_size(), "obs_shape": self.get_obs_size(),
                "n_actions": self.get_total_actions(), "n_agents": self.n_agents, "episode_limit": self.episode_limit}

    def close(self) -> None:
        self.closed = True

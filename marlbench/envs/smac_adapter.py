"""The StarCraft II adapter: B instances of anything with SMAC's Python interface as one ``BatchedMultiAgentEnv``.

The instances are ``smac.env.StarCraft2Env`` (SMACv1) or SMACv2's ``StarCraftCapabilityEnvWrapper``, built by
``make_starcraft_env``, or, on machines without StarCraft II, the SMAX test shim (``envs/smax_shim.py``). Each SC2
instance is its own game process, so the adapter loops over the B instances; each instance takes the joint action
of all its agents in one call (no loop over agents).

SMAC's interface: ``reset()``, ``step(actions) -> (reward, terminated, info)`` with ``info["battle_won"]``,
``get_obs()``, ``get_state()``, ``get_avail_actions()``, ``get_env_info()`` (n_agents, obs_shape, state_shape,
n_actions, episode_limit), ``close()``. Conventions the adapter relies on:

- SMAC asserts that every action is available; the adapter checks the joint action against the last legal masks
  first and raises ``ValueError`` naming the episode, agent and action.
- The time limit: SMAC ends the episode (``terminated=True``) at ``episode_limit`` steps and says so in
  ``info["episode_limit"]`` only with ``continuing_episode=True``. The adapter reports ``truncated`` when that flag
  is set, or when an episode that was not won ends at the limit (a battle lost on exactly the last step is then
  reported as a time-out); an instance that runs past its limit is stopped there, truncated.
- Seeding: SMAC seeds a game when it is built. ``reset(seed)`` builds instance i with ``derive_seed(seed, i)``; with
  ``relaunch=True`` (the default, exact reproducibility) every reset rebuilds the instances, with ``relaunch=False``
  (``make_starcraft_env``: launching StarCraft II takes seconds per instance) they are built at the first reset and
  later batches continue each game's own sequence of episodes.

``won`` [B] tells which episodes ended in a won battle. Rewards are SMAC's scalar team reward, copied to every
agent; ended episodes keep their last observation, zero reward and their flags until the next reset.
"""
from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from marlbench.envs.base import BatchedMultiAgentEnv, EnvStep
from marlbench.errors import ConfigError, UnavailableError
from marlbench.seeding import derive_seed
from marlbench.spec import TaskSpec

SC2_RETURN = "episode return of SMAC's team reward (scaled so that winning with every enemy killed gives 20)"
SMAC_INSTALL = "pip install git+https://github.com/oxwhirl/smac.git"
SMACV2_INSTALL = "pip install git+https://github.com/oxwhirl/smacv2.git"
SC2_INSTALL = ("wget http://blzdistsc2-a.akamaihd.net/Linux/SC2.4.10.zip && unzip -P iagreetotheeula SC2.4.10.zip "
               "-d ~ && export SC2PATH=~/StarCraftII")
MAPS_INSTALL = {
    "v1": "wget https://github.com/oxwhirl/smac/releases/download/v0.1-beta1/SMAC_Maps.zip && unzip SMAC_Maps.zip "
          "-d $SC2PATH/Maps",
    "v2": "wget https://github.com/oxwhirl/smacv2/releases/download/maps/SMAC_Maps.zip && unzip SMAC_Maps.zip "
          "-d $SC2PATH/Maps/SMAC_Maps",
}
# SMACv2 scenarios of OG-MARL's vaults: the map and the capability config OG-MARL generated them with
# (instadeepai/og-marl, og_marl/wrapped_environments/smacv2.py)
_START_POSITIONS = {"dist_type": "surrounded_and_reflect", "p": 0.5, "n_enemies": 5, "map_x": 32, "map_y": 32}
_TERRAN = {"dist_type": "weighted_teams", "unit_types": ["marine", "marauder", "medivac"],
           "exception_unit_types": ["baneling"], "weights": [0.45, 0.45, 0.1], "observe": True}
_ZERG = {"dist_type": "weighted_teams", "unit_types": ["zergling", "baneling", "hydralisk"],
         "exception_unit_types": ["baneling"], "weights": [0.45, 0.1, 0.45], "observe": True}
SMACV2_SCENARIOS = {
    "terran_5_vs_5": ("10gen_terran", {"n_units": 5, "n_enemies": 5, "team_gen": _TERRAN,
                                       "start_positions": _START_POSITIONS}),
    "zerg_5_vs_5": ("10gen_zerg", {"n_units": 5, "n_enemies": 5, "team_gen": _ZERG,
                                   "start_positions": _START_POSITIONS}),
    "terran_10_vs_10": ("10gen_terran", {"n_units": 10, "n_enemies": 10, "team_gen": _TERRAN,
                                         "start_positions": _START_POSITIONS}),
}
SMACV2_KWARGS = {"conic_fov": False, "obs_own_pos": True, "use_unit_ranges": True, "min_attack_range": 2}


def spec_from_env_info(name: str, info: dict) -> TaskSpec:
    """The TaskSpec of a SMAC-like environment from its ``get_env_info()``."""
    return TaskSpec(name=name, n_agents=int(info["n_agents"]), obs_dim=int(info["obs_shape"]), action_kind="discrete",
                    action_dim=int(info["n_actions"]), episode_limit=int(info["episode_limit"]),
                    state_dim=int(info["state_shape"]), return_definition=SC2_RETURN)


def layout_differences(info: dict, dims: dict) -> list[str]:
    """Where a SMAC-like environment's layout (``get_env_info()``) differs from a dataset's recorded dims (the
    public manifest's ``dims``: n_agents, obs_dim, action_dim, state_dim; a dim recorded as None is not checked)."""
    pairs = (("n_agents", "n_agents"), ("obs_shape", "obs_dim"), ("n_actions", "action_dim"),
             ("state_shape", "state_dim"))
    return [f"{key} {info[key]} (data: {dims[dim]})" for key, dim in pairs
            if dims.get(dim) is not None and int(info[key]) != int(dims[dim])]


def check_layout(info: dict, dims: dict, what: str) -> None:
    """Raise ConfigError when the environment's layout cannot evaluate policies trained on the data."""
    diff = layout_differences(info, dims)
    if diff:
        raise ConfigError(f"{what}: the environment's layout differs from the dataset's: " + ", ".join(diff))


class SmacAdapterEnv(BatchedMultiAgentEnv):
    """``num_envs`` SMAC-interface instances stepped together (see the module docstring).

    ``make_instance(seed)`` builds one instance seeded with ``seed``; ``spec`` defaults to the one its
    ``get_env_info()`` describes (named ``name``)."""

    def __init__(self, make_instance: Callable[[int], Any], num_envs: int, spec: TaskSpec | None = None,
                 name: str = "smac", relaunch: bool = True):
        if num_envs < 1:
            raise ConfigError(f"num_envs must be at least 1, got {num_envs}")
        self.make_instance, self.num_envs, self.relaunch = make_instance, int(num_envs), relaunch
        probe = make_instance(derive_seed(0, 0))
        try:
            self.env_info = dict(probe.get_env_info())
        finally:
            probe.close()
        self.spec = spec or spec_from_env_info(name, self.env_info)
        self.limit = self.spec.episode_limit
        self.instances: list | None = None
        self.won = np.zeros(self.num_envs, dtype=bool)
        self.steps = np.zeros(self.num_envs, dtype=np.int64)
        self.last: EnvStep | None = None

    def _observe(self, instance) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return (np.asarray(instance.get_obs(), dtype=np.float32), np.asarray(instance.get_state(), dtype=np.float32),
                np.asarray(instance.get_avail_actions()).astype(bool))

    def reset(self, seed: int) -> EnvStep:
        if self.instances is None or self.relaunch:
            self.close()
            self.instances = [self.make_instance(derive_seed(seed, i)) for i in range(self.num_envs)]
        parts = []
        for instance in self.instances:
            instance.reset()
            parts.append(self._observe(instance))
        obs, state, legals = (np.stack(x) for x in zip(*parts))
        self._check_shapes(obs, state, legals)
        b, n = self.num_envs, self.spec.n_agents
        self.won = np.zeros(b, dtype=bool)
        self.steps = np.zeros(b, dtype=np.int64)
        self.last = EnvStep(obs=obs, rewards=np.zeros((b, n), np.float32), terminated=np.zeros(b, bool),
                            truncated=np.zeros(b, bool), state=state, legals=legals)
        return self.last

    def _check_shapes(self, obs: np.ndarray, state: np.ndarray, legals: np.ndarray) -> None:
        s = self.spec
        want = {"obs": (s.n_agents, s.obs_dim), "state": (s.state_dim,), "legals": (s.n_agents, s.action_dim)}
        got = {"obs": obs.shape[1:], "state": state.shape[1:], "legals": legals.shape[1:]}
        if got != want:
            raise ConfigError(f"{s.name}: the environment returned shapes {got}, its spec says {want}")

    def step(self, actions: np.ndarray) -> EnvStep:
        if self.last is None:
            raise ConfigError("SmacAdapterEnv.step() called before reset(seed)")
        actions = self.check_discrete_actions(actions)
        last = self.last
        live = ~(last.terminated | last.truncated)
        chosen = np.take_along_axis(last.legals, actions[..., None], -1)[..., 0]
        illegal = np.argwhere(~chosen & live[:, None])
        if len(illegal):
            b, i = illegal[0]
            raise ValueError(f"illegal action: episode {b}, agent {i} chose {actions[b, i]}, not available there "
                             f"({len(illegal)} illegal actions in all)")
        obs, state, legals = last.obs.copy(), last.state.copy(), last.legals.copy()
        reward = np.zeros(self.num_envs, np.float32)
        terminated, truncated = last.terminated.copy(), last.truncated.copy()
        for b in np.flatnonzero(live):
            instance = self.instances[b]
            r, term, info = instance.step(actions[b].tolist())
            self.steps[b] += 1
            reward[b] = r
            won = bool(info.get("battle_won", False))
            at_limit = self.steps[b] >= self.limit
            trunc = bool(info.get("episode_limit", False)) or (at_limit and not won)
            truncated[b] = trunc and (term or at_limit)
            terminated[b] = bool(term) and not truncated[b]
            self.won[b] = won and terminated[b]
            obs[b], state[b], legals[b] = self._observe(instance)
        self.last = EnvStep(obs=obs, rewards=np.repeat(reward[:, None], self.spec.n_agents, 1),
                            terminated=terminated, truncated=truncated, state=state, legals=legals)
        return self.last

    def close(self) -> None:
        for instance in self.instances or ():
            instance.close()
        self.instances = None


# ---------------------------------------------------------------------- StarCraft II
def sc2_default_path() -> Path:
    """Where StarCraft II is looked for without SC2PATH (pysc2's defaults per platform)."""
    if sys.platform == "win32":
        return Path("C:/Program Files (x86)/StarCraft II")
    if sys.platform == "darwin":
        return Path("/Applications/StarCraft II")
    return Path("~/StarCraftII").expanduser()


def find_sc2() -> Path | None:
    """The StarCraft II directory (SC2PATH, else the platform default) if it holds a game (a Versions folder)."""
    root = Path(os.environ["SC2PATH"]).expanduser() if os.environ.get("SC2PATH") else sc2_default_path()
    return root if (root / "Versions").is_dir() else None


def starcraft_missing(version: str = "v1") -> str | None:
    """What is missing to run SMAC ``version`` ("v1" or "v2") here, with the commands that install it; None if
    nothing is."""
    if version not in ("v1", "v2"):
        raise ConfigError(f"SMAC version must be 'v1' or 'v2', got {version!r}")
    module, install = ("smac", SMAC_INSTALL) if version == "v1" else ("smacv2", SMACV2_INSTALL)
    missing = []
    try:
        importlib.import_module(module)
    except ImportError:
        missing.append(f"the {module!r} package ({install})")
    if find_sc2() is None:
        where = (f"SC2PATH={os.environ['SC2PATH']}" if os.environ.get("SC2PATH")
                 else f"SC2PATH is not set and {sc2_default_path()} holds no game")
        missing.append(f"StarCraft II ({where}; on Linux: {SC2_INSTALL}; then the maps: {MAPS_INSTALL[version]})")
    if not missing:
        return None
    return "needs " + " and ".join(missing)


def _smacv1_instance(map_name: str, kwargs: dict, seed: int):
    from smac.env import StarCraft2Env

    return StarCraft2Env(map_name=map_name, seed=seed, **kwargs)


def _smacv2_instance(scenario: str, kwargs: dict, seed: int):
    from smacv2.env.starcraft2.wrapper import StarCraftCapabilityEnvWrapper

    map_name, capabilities = SMACV2_SCENARIOS[scenario]
    return StarCraftCapabilityEnvWrapper(capability_config=capabilities, map_name=map_name, seed=seed,
                                         **{**SMACV2_KWARGS, **kwargs})


def make_starcraft_env(map_name: str, version: str = "v1", num_envs: int = 1, spec: TaskSpec | None = None,
                       relaunch: bool = False, **kwargs) -> SmacAdapterEnv:
    """``num_envs`` StarCraft II games of a SMAC map (``version="v1"``, e.g. "3m") or SMACv2 scenario
    (``version="v2"``: terran_5_vs_5, zerg_5_vs_5, terran_10_vs_10, as in OG-MARL's vaults), built as OG-MARL built
    them (SMAC's defaults; SMACv2's capability configs); ``kwargs`` go to the SMAC constructor. Raises
    UnavailableError naming what is missing (the package, StarCraft II / SC2PATH, the maps) and how to install it."""
    why = starcraft_missing(version)
    if why:
        raise UnavailableError(f"SMAC{version} map {map_name!r} {why}. Without StarCraft II, the SMAX tasks "
                               f"(smax/<map>-<quality>, docs/SMAX.md) run anywhere")
    if version == "v2" and map_name not in SMACV2_SCENARIOS:
        raise ConfigError(f"unknown SMACv2 scenario {map_name!r}; known: {', '.join(SMACV2_SCENARIOS)}")
    factory = _smacv1_instance if version == "v1" else _smacv2_instance
    benchmark = "smacv1" if version == "v1" else "smacv2"
    return SmacAdapterEnv(partial(factory, map_name, kwargs), num_envs, spec=spec, name=f"{benchmark}/{map_name}",
                          relaunch=relaunch)

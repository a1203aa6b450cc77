"""SMAX (JaxMARL's SMAC-like micromanagement simulator in JAX), batched over episodes with ``jax.vmap`` + ``jit``.

SMAX is its own benchmark, not SMACv1: its units, observations, state, actions and rewards differ from StarCraft II's
(docs/SMAX.md). Layouts, from ``jaxmarl`` 0.2.0 (``environments/smax/smax_env.py``), for ``a`` allies and ``e``
enemies, 6 unit types:

- observation (``unit_list``): 13 features for each other ally and each enemy (health fraction, position relative
  to the observer / its sight range, last move (x, y), last attack target / max action, weapon cooldown fraction,
  6 unit-type bits), then 10 own features (health, position / map size, cooldown, type bits):
  ``13 (a - 1) + 13 e + 10``;
- global state: 10 features per unit (all ``a + e`` units) then every unit's team and type: ``12 (a + e)``;
- actions: 0-3 move, 4 stop (the only legal action of a dead unit), ``5 + j`` attack enemy j (legal in range):
  ``e + 5``; an illegal action is not refused, it does what SMAX does with it (an out-of-range attack stands still,
  a dead unit's move does nothing), though the others still observe it as the unit's last attack target;
- team reward, copied to every agent: each step the enemy team's summed health-fraction loss divided by its size,
  plus ``won_battle_bonus`` = 1 when every enemy is dead and an ally lives, so a return is at most 2.0;
- an episode ends when one team is dead (terminated) or after 100 steps (truncated, unless a team died then).

The enemy team is SMAX's heuristic (``HeuristicEnemySMAX``, attack the closest unit), with JaxMARL's defaults (as
its SMAX baselines use them: enemy actions visible, walls kill). ``SmaxEnv.won`` [B] tells which episodes were won.
JAX is imported on first use, so ``import marlbench`` works without it (``pip install 'marlbench-suite[smax]'``).
"""
from __future__ import annotations

import contextlib
import io
import sys
from functools import lru_cache

import numpy as np

from marlbench.envs.base import BatchedMultiAgentEnv, EnvStep
from marlbench.errors import ConfigError, MissingExtraError, UnknownNameError
from marlbench.seeding import derive_seed
from marlbench.spec import TaskSpec

EXTRA = "smax"
JAXMARL_VERSION = "0.2.0"
INSTALL = f"pip install 'marlbench-suite[{EXTRA}]'"
# map -> (allies, enemies): jaxmarl 0.2.0's MAP_NAME_TO_SCENARIO for the maps the suite registers
MAPS = {"3m": (3, 3), "8m": (8, 8), "2s3z": (5, 5), "5m_vs_6m": (5, 6), "smacv2_5_units": (5, 5)}
# SMACv2-style maps (random unit types and start positions): OG-MARL's datasets of them are Replay tiers
SMACV2_STYLE_MAPS = ("smacv2_5_units",)
UNIT_FEATURES, OWN_FEATURES, STATE_FEATURES, MOVE_ACTIONS = 13, 10, 12, 5
EPISODE_LIMIT = 100  # SMAX's max_steps
MAX_RETURN = 2.0  # all enemy health (1.0) + won_battle_bonus (1.0)
# measure_random_score(map, episodes=1000, seed=0): mean return of uniform random legal actions, hard-coded
# (win rate 0.0 on every map)
RANDOM_SCORES = {"3m": 0.1779, "8m": 0.1779, "2s3z": 0.2028, "5m_vs_6m": 0.1390, "smacv2_5_units": 0.2629}
NORMALISATION_SOURCE = (
    "random: uniform random legal actions, measure_random_score(map, episodes=1000, seed=0) with jaxmarl "
    f"{JAXMARL_VERSION}, hard-coded; expert: SMAX's maximum return {MAX_RETURN} (jaxmarl {JAXMARL_VERSION} "
    "smax_env.py compute_reward: per step the enemy team's summed health-fraction loss / its size, plus "
    "won_battle_bonus 1.0 when every enemy is dead and an ally lives)")


def smax_dims(map_name: str) -> dict[str, int]:
    """n_agents, obs_dim, state_dim, n_actions of a SMAX map, without importing JAX (tests check them against
    jaxmarl)."""
    if map_name not in MAPS:
        raise UnknownNameError("SMAX map", map_name, list(MAPS))
    a, e = MAPS[map_name]
    return {"n_agents": a, "obs_dim": UNIT_FEATURES * (a - 1) + UNIT_FEATURES * e + OWN_FEATURES,
            "state_dim": STATE_FEATURES * (a + e), "n_actions": e + MOVE_ACTIONS}


def smax_spec(map_name: str, name: str | None = None, random_score: float | None = None) -> TaskSpec:
    """The TaskSpec of a SMAX map; scores: the hard-coded random score (or ``random_score``) and SMAX's maximum."""
    dims = smax_dims(map_name)
    random_score = RANDOM_SCORES.get(map_name) if random_score is None else random_score
    return TaskSpec(name=name or f"smax/{map_name}", n_agents=dims["n_agents"], obs_dim=dims["obs_dim"],
                    action_kind="discrete", action_dim=dims["n_actions"], episode_limit=EPISODE_LIMIT,
                    state_dim=dims["state_dim"], random_score=random_score,
                    expert_score=MAX_RETURN if random_score is not None else None,
                    normalisation_source=NORMALISATION_SOURCE if random_score is not None else "")


def jaxmarl_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("jaxmarl") is not None and importlib.util.find_spec("jax") is not None


def _import_jaxmarl():
    """jax and jaxmarl's SMAX, or MissingExtraError naming the extra. jaxmarl prints two lines about optional
    submodules on import (and its MABrax module resets ``sys.stdout`` to ``sys.__stdout__``), so both streams are
    silenced for the import and restored after it."""
    saved = sys.stdout, sys.__stdout__
    sink = io.StringIO()
    try:
        sys.stdout = sys.__stdout__ = sink
        with contextlib.redirect_stderr(io.StringIO()):
            import jax
            from jaxmarl.environments.smax import HeuristicEnemySMAX, map_name_to_scenario
    except ImportError as err:
        raise MissingExtraError(f"SMAX needs jax and jaxmarl=={JAXMARL_VERSION}, which are not installed; they come "
                                f"with the {EXTRA!r} extra: {INSTALL}") from err
    finally:
        sys.stdout, sys.__stdout__ = saved
    return jax, HeuristicEnemySMAX, map_name_to_scenario


class _Programs:
    """One map's jitted batch programs, shared by every SmaxEnv of that map in the process (JAX compiles once per
    batch size: about 10 s on a CPU core for reset + step)."""

    def __init__(self, map_name: str, fast_compile: bool):
        jax, heuristic_enemy_smax, map_name_to_scenario = _import_jaxmarl()
        jnp = jax.numpy
        env = heuristic_enemy_smax(scenario=map_name_to_scenario(map_name))
        self.env, self.jax = env, jax
        allies, agents = env.num_allies, list(env.agents)

        def canonical(tree):  # strong dtypes, so the state a step returns has the type reset gave (no recompile)
            return jax.tree.map(lambda x: jnp.asarray(x, dtype=x.dtype), tree)

        def observe(state):
            obs = env.get_obs(state)
            legal = env.get_avail_actions(state)
            return (jnp.stack([obs[a] for a in agents]).astype(jnp.float32),
                    env.get_world_state(state).astype(jnp.float32),
                    jnp.stack([legal[a] for a in agents]).astype(bool))

        def reset_one(key):
            key, reset_key = jax.random.split(key)
            _, state = env.reset(reset_key)
            return (key, canonical(state)) + observe(state)

        def step_one(key, state, actions, ended):
            key, step_key = jax.random.split(key)
            _, new, rewards, _, _ = env.step_env(step_key, state, {a: actions[i] for i, a in enumerate(agents)})
            new = canonical(jax.tree.map(lambda old, nxt: jnp.where(ended, old, nxt), state, new))
            alive = new.state.unit_alive
            allies_alive, enemies_alive = alive[:allies].any(), alive[allies:].any()
            decided = ~allies_alive | ~enemies_alive
            reward = jnp.where(ended, 0.0, rewards[agents[0]]).astype(jnp.float32)
            terminated = decided
            truncated = new.state.done & ~decided
            won = ~enemies_alive & allies_alive
            return (key, new) + observe(new) + (reward, terminated, truncated, won)

        options = {"xla_backend_optimization_level": 0} if fast_compile else None
        self.reset = jax.jit(jax.vmap(reset_one), compiler_options=options)
        self.step = jax.jit(jax.vmap(step_one), compiler_options=options)


@lru_cache(maxsize=None)
def _programs(map_name: str, fast_compile: bool = False) -> _Programs:
    return _Programs(map_name, fast_compile)


class SmaxEnv(BatchedMultiAgentEnv):
    """``num_envs`` SMAX episodes of one map against the heuristic enemy, stepped together in one jitted, vmapped
    call (no Python loop over episodes or agents).

    ``reset(seed)`` makes every episode's randomness (start positions, SMACv2-style unit types, weapon cooldown noise,
    the enemy's choices) a function of ``seed`` alone. ``step`` takes ``[B, N]`` integer actions. After each step
    ``won`` [B] says which episodes ended in a won battle (every enemy dead, an ally alive); ended episodes keep
    their last observation, zero reward and their flags until the next reset. ``fast_compile`` trades about 3x
    slower steps for about 3x faster compilation (tests).
    """

    def __init__(self, num_envs: int, map_name: str = "3m", spec: TaskSpec | None = None, fast_compile: bool = False):
        if num_envs < 1:
            raise ConfigError(f"num_envs must be at least 1, got {num_envs}")
        self.num_envs, self.map_name = int(num_envs), map_name
        self.spec = spec or smax_spec(map_name)
        self._programs = _programs(map_name, bool(fast_compile))
        dims = smax_dims(map_name)
        env = self._programs.env
        found = {"n_agents": env.num_allies, "obs_dim": int(env.obs_size), "state_dim": int(env.state_size),
                 "n_actions": int(env.num_ally_actions)}
        if found != dims:
            raise ConfigError(f"SMAX {map_name}: jaxmarl reports {found}, the suite expects {dims} (jaxmarl "
                              f"{JAXMARL_VERSION}); install {INSTALL}")
        self.won = np.zeros(self.num_envs, dtype=bool)
        self._keys = self._state = None
        self.last: EnvStep | None = None

    def reset(self, seed: int) -> EnvStep:
        jax = self._programs.jax
        keys = jax.random.split(jax.random.PRNGKey(derive_seed(seed, 0)), self.num_envs)
        self._keys, self._state, obs, state, legals = self._programs.reset(keys)
        b, n = self.num_envs, self.spec.n_agents
        self.won = np.zeros(b, dtype=bool)
        # np.array copies: JAX's buffers are read-only, and torch.as_tensor of a read-only array warns
        self.last = EnvStep(obs=np.array(obs), rewards=np.zeros((b, n), np.float32),
                            terminated=np.zeros(b, bool), truncated=np.zeros(b, bool), state=np.array(state),
                            legals=np.array(legals))
        return self.last

    def step(self, actions: np.ndarray) -> EnvStep:
        if self.last is None:
            raise ConfigError("SmaxEnv.step() called before reset(seed)")
        actions = self.check_discrete_actions(actions)
        ended = self.last.terminated | self.last.truncated
        out = self._programs.step(self._keys, self._state, actions.astype(np.int32), ended)
        self._keys, self._state = out[0], out[1]
        obs, state, legals, reward, terminated, truncated, won = (np.array(x) for x in out[2:])
        self.won = won
        self.last = EnvStep(obs=obs, rewards=np.repeat(reward[:, None], self.spec.n_agents, 1),
                            terminated=terminated, truncated=truncated, state=state, legals=legals)
        return self.last


def measure_random_score(map_name: str, episodes: int = 1000, seed: int = 0) -> tuple[float, float]:
    """(mean return, win rate) of uniform random legal actions over ``episodes`` episodes played together."""
    env = SmaxEnv(episodes, map_name)
    rng = np.random.default_rng(derive_seed(seed, 2))
    step = env.reset(seed)
    returns = np.zeros(episodes)
    for _ in range(env.spec.episode_limit):
        step = env.step(env.random_actions(rng, step.legals))
        returns += step.rewards.mean(-1)
        if (step.terminated | step.truncated).all():
            break
    return float(returns.mean()), float(env.won.mean())

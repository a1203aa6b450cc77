"""SMAX (JaxMARL) environments, the StarCraft II adapter and its SMAX test shim.

Tests that need jax skip without the ``smax`` extra; the adapter's mechanics (time limits, seeding, layout checks
against the vault manifest) and the StarCraft II factory's message run everywhere, on a scripted SMAC-interface stub.
Every SMAX test steps one map (3m) at batch size 1 with ``fast_compile``, so JAX compiles once for the module.
"""
import sys
import types

import numpy as np
import pytest

from marlbench.envs.smac_adapter import (
    MAPS_INSTALL,
    SC2_INSTALL,
    SMAC_INSTALL,
    SmacAdapterEnv,
    check_layout,
    layout_differences,
    make_starcraft_env,
    starcraft_missing,
)
from marlbench.envs.smax import MAPS, smax_dims, smax_spec
from marlbench.errors import ConfigError, UnavailableError
from marlbench.families.public import get_vault

SC2_3M = {"n_agents": 3, "obs_shape": 30, "state_shape": 48, "n_actions": 9, "episode_limit": 60}
STOP, EAST, FIRST_ATTACK = 4, 1, 5  # SMAX's action layout (envs/smax.py)


class ScriptedSmac:
    """A SMAC-interface stub with SC2's 3m layout: every action but no-op (0) is legal; the battle is won at step
    ``win_at`` (never if None); like SMAC it ends at ``episode_limit`` and flags it only with continuing_episode."""

    def __init__(self, seed: int, win_at: int | None = None, continuing_episode: bool = False, info=SC2_3M):
        self.seed, self.win_at, self.continuing_episode, self.info = seed, win_at, continuing_episode, dict(info)
        self.t, self.resets, self.closed = 0, 0, False

    def get_env_info(self):
        return dict(self.info)

    def reset(self):
        self.t, self.resets = 0, self.resets + 1

    def _value(self):
        return float(self.seed % 1000 + 1000 * self.resets + self.t)

    def get_obs(self):
        return [np.full(self.info["obs_shape"], self._value() + i) for i in range(self.info["n_agents"])]

    def get_state(self):
        return np.full(self.info["state_shape"], self._value())

    def get_avail_actions(self):
        return [[0] + [1] * (self.info["n_actions"] - 1) for _ in range(self.info["n_agents"])]

    def step(self, actions):
        assert len(actions) == self.info["n_agents"] and 0 not in actions
        self.t += 1
        won = self.win_at is not None and self.t >= self.win_at
        info = {"battle_won": won}
        at_limit = self.t >= self.info["episode_limit"]
        if at_limit and not won and self.continuing_episode:
            info["episode_limit"] = True
        return 1.0, won or at_limit, info

    def close(self):
        self.closed = True


def play(env, policy, seed):
    """Run one batch to its end; (returns [B], step count)."""
    step = env.reset(seed)
    returns = np.zeros(env.num_envs)
    for t in range(env.spec.episode_limit):
        step = env.step(policy(step))
        returns += step.rewards.mean(-1)
        if (step.terminated | step.truncated).all():
            return returns, t + 1
    return returns, env.spec.episode_limit


# ---------------------------------------------------------------------- the adapter, without jax
def test_adapter_time_limit_win_and_ended_episodes_stay_ended():
    env = SmacAdapterEnv(lambda seed: ScriptedSmac(seed, win_at=None if seed % 2 else 5), 4, name="smacv1/3m")
    assert env.spec.obs_dim == 30 and env.spec.state_dim == 48 and env.spec.action_dim == 9
    step = env.reset(7)
    assert step.legals.shape == (4, 3, 9) and not step.legals[..., 0].any() and step.legals[..., 1:].all()
    returns, steps = play(env, lambda s: np.ones((4, 3), dtype=np.int64), 7)
    wins = np.array([inst.seed % 2 == 0 for inst in env.instances])
    assert steps == 60 and np.array_equal(env.won, wins) and np.array_equal(env.last.terminated, wins)
    assert np.array_equal(env.last.truncated, ~wins)  # SMAC's default: the limit ends the episode, unflagged
    assert np.array_equal(returns, np.where(wins, 5.0, 60.0))
    frozen = env.last
    after = env.step(np.ones((4, 3), dtype=np.int64))  # every episode ended: nothing moves, no reward
    assert not after.rewards.any() and np.array_equal(after.obs, frozen.obs) and np.array_equal(env.won, wins)
    with pytest.raises(ValueError, match="illegal action: episode 0, agent 1 chose 0"):
        env.reset(7), env.step(np.array([[1, 0, 1]] * 4))


def test_adapter_flags_the_limit_smac_reports_and_seeds_its_instances():
    env = SmacAdapterEnv(lambda seed: ScriptedSmac(seed, continuing_episode=True), 2)
    play(env, lambda s: np.full((2, 3), 3), 0)
    assert env.last.truncated.all() and not env.last.terminated.any() and not env.won.any()
    first = env.reset(11).obs.copy()
    assert np.array_equal(env.reset(11).obs, first) and not np.array_equal(env.reset(12).obs, first)
    kept = SmacAdapterEnv(lambda seed: ScriptedSmac(seed), 2, relaunch=False)  # SC2: launched once, then reused
    a = kept.reset(11).obs.copy()
    instances = kept.instances
    assert kept.reset(11).obs[0, 0, 0] == a[0, 0, 0] + 1000 and kept.instances is instances  # the next episode


def test_adapter_layout_is_checked_against_the_vault_manifest():
    dims = get_vault("og_marl/smac_v1/3m")["dims"]  # 3m: obs 30, 9 actions (state not recorded there)
    check_layout(SC2_3M, {**dims, "state_dim": 48}, "smacv1/3m-good")
    smax = smax_dims("3m")
    smax_info = {"n_agents": smax["n_agents"], "obs_shape": smax["obs_dim"], "state_shape": smax["state_dim"],
                 "n_actions": smax["n_actions"], "episode_limit": 100}
    assert layout_differences(smax_info, dims) == ["obs_shape 75 (data: 30)", "n_actions 8 (data: 9)"]
    with pytest.raises(ConfigError, match="obs_shape 75 \\(data: 30\\)"):
        check_layout(smax_info, dims, "smax shim against og_marl/3m")


def test_starcraft_factory_names_what_is_missing(monkeypatch, tmp_path):
    monkeypatch.setenv("SC2PATH", str(tmp_path / "nowhere"))
    monkeypatch.setitem(sys.modules, "smac", None)  # an import of smac fails as if it were not installed
    with pytest.raises(UnavailableError) as err:
        make_starcraft_env("3m", "v1")
    msg = str(err.value)
    for part in (SMAC_INSTALL, "SC2PATH=" + str(tmp_path / "nowhere"), SC2_INSTALL, MAPS_INSTALL["v1"], "smax/"):
        assert part in msg
    monkeypatch.setitem(sys.modules, "smac", types.ModuleType("smac"))  # installed, but no game
    assert SMAC_INSTALL not in starcraft_missing("v1") and "StarCraft II" in starcraft_missing("v1")
    (tmp_path / "nowhere" / "Versions").mkdir(parents=True)
    assert starcraft_missing("v1") is None
    monkeypatch.delenv("SC2PATH")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert f"SC2PATH is not set and {tmp_path / 'StarCraftII'} holds no game" in starcraft_missing("v1")


def test_smax_family_is_its_own_benchmark():
    from marlbench import catalog
    from marlbench.tasks import family_of, get_task

    catalog.load()
    assert family_of("smax").label == "SMAX" and family_of("smacv1").label == "SMACv1"
    from marlbench.behaviour.tiers import load_manifest
    from marlbench.envs.smax import jaxmarl_available

    for map_name in MAPS:
        quality = "replay" if map_name.startswith("smacv2") else "good"
        task = get_task(f"smax/{map_name}-{quality}")
        runnable, why = task.status()
        shipped = load_manifest(f"smax/{map_name}") is not None
        assert runnable == (jaxmarl_available() and shipped), (task.name, why)
        assert runnable or "smax" in why.lower()
        assert task.spec.obs_dim == smax_dims(map_name)["obs_dim"]
    assert smax_spec("3m").expert_score in (None, 2.0)


# ---------------------------------------------------------------------- SMAX itself (needs the smax extra)
@pytest.fixture(scope="module")
def smax():
    pytest.importorskip("jaxmarl")
    from marlbench.envs import smax as module

    return module


def focus_fire(step):
    """Attack the lowest-numbered enemy in range, else move east (towards the enemy's side); dead units stop."""
    legal = step.legals
    attack = legal[..., FIRST_ATTACK:]
    return np.where(attack.any(-1), FIRST_ATTACK + attack.argmax(-1), np.where(legal[..., EAST], EAST, STOP))


def test_smax_sizes_equal_jaxmarls(smax):
    from marlbench.envs.smax import _import_jaxmarl

    _, enemy_smax, scenario = _import_jaxmarl()
    for map_name in MAPS:
        env = enemy_smax(scenario=scenario(map_name))
        assert smax.smax_dims(map_name) == {"n_agents": env.num_allies, "obs_dim": env.obs_size,
                                            "state_dim": env.state_size, "n_actions": env.num_ally_actions}


def test_smax_3m_shapes_masks_and_determinism(smax):
    env = smax.SmaxEnv(1, "3m", fast_compile=True)
    step = env.reset(3)
    assert step.obs.shape == (1, 3, 75) and step.state.shape == (1, 72) and step.legals.shape == (1, 3, 8)
    assert step.obs.dtype == np.float32 and step.legals.dtype == bool and not step.rewards.any()
    # the teams start out of range: attacks are illegal, and SMAX plays an illegal attack as standing still (the
    # world state is the same; observations differ only in the "last attack target" each unit shows the others)
    assert not step.legals[..., FIRST_ATTACK:].any() and step.legals[..., :FIRST_ATTACK].all()
    stood = env.step(np.full((1, 3), STOP))
    env.reset(3)
    attacked = env.step(np.full((1, 3), FIRST_ATTACK))
    assert np.array_equal(attacked.state, stood.state) and np.array_equal(attacked.rewards, stood.rewards)
    differ = np.flatnonzero((attacked.obs != stood.obs).any((0, 1)))
    assert set(differ % 13) == {5} and differ.max() < 13 * 5  # feature 5 of the other-unit blocks only

    compiled = env._programs.step._cache_size()  # other tests in this process may have compiled other batches

    def trajectory(seed):
        rng = np.random.default_rng(0)
        step, out = env.reset(seed), []
        for _ in range(30):
            step = env.step(env.random_actions(rng, step.legals))
            out.append((step.obs.copy(), step.rewards.copy(), step.terminated.copy()))
        return out

    a, b, c = trajectory(5), trajectory(5), trajectory(6)
    assert all(all(np.array_equal(x, y) for x, y in zip(s, t)) for s, t in zip(a, b))
    assert not np.array_equal(a[0][0], c[0][0])
    assert env._programs.step._cache_size() == compiled  # the state keeps its types: no recompilation


def test_smax_won_battle_through_the_adapter_over_the_shim(smax):
    from marlbench.envs.smax_shim import SmaxSmacShim

    env = SmacAdapterEnv(lambda seed: SmaxSmacShim("3m", seed, fast_compile=True), 4, name="shim/3m")
    assert env.env_info == {"state_shape": 72, "obs_shape": 75, "n_actions": 8, "n_agents": 3, "episode_limit": 100}
    won, returns = [], []
    for batch in range(8):  # 32 episodes of the scripted focus-fire policy against SMAX's heuristic enemy
        ret, _ = play(env, focus_fire, batch)
        won.append(env.won.copy())
        returns.append(ret)
        assert (env.last.terminated | env.last.truncated).all()
    won, returns = np.concatenate(won), np.concatenate(returns)
    assert won.any()
    assert (returns[won] > 1.99).all() and (returns[~won] < 1.01).all()  # a win: all enemy health + the bonus
    step = env.reset(0)
    with pytest.raises(ValueError, match="illegal action"):
        env.step(np.full((4, 3), FIRST_ATTACK))  # out of range: the adapter refuses it before SMAC would assert
    assert np.array_equal(step.legals[0], np.asarray(env.instances[0].get_avail_actions(), bool))


def test_smax_episodes_stay_ended(smax):
    env = smax.SmaxEnv(1, "3m", fast_compile=True)
    play(env, focus_fire, 1)
    last = env.last
    again = env.step(np.full((1, 3), STOP))
    assert not again.rewards.any() and np.array_equal(again.obs, last.obs) and again.terminated == last.terminated


@pytest.mark.slow
def test_smax_random_scores_hold(smax):
    for map_name, score in smax.RANDOM_SCORES.items():
        assert smax.measure_random_score(map_name, 1000, 0)[0] == pytest.approx(score, abs=1e-4)

import math

import numpy as np
import pytest

from marlbench.envs.mpe import SpreadEnv, spread_spec
from marlbench.errors import ConfigError


def test_spec():
    spec = spread_spec()
    assert (spec.name, spec.n_agents, spec.obs_dim, spec.action_dim, spec.episode_limit) == ("mpe/spread", 3, 18, 2, 25)
    assert spec.continuous and spec.state_dim is None
    assert (spec.action_low, spec.action_high) == (-1.0, 1.0)
    assert (spec.random_score, spec.expert_score) == (159.8, 516.8)
    assert SpreadEnv(2).spec == spec
    with pytest.raises(ConfigError):
        SpreadEnv(2, n_agents=11)


def test_random_policy_matches_omar_reference():
    """Acceptance test: OMAR's uniform-random policy scores 159.8 (measured 159.2 +- 59.4)."""
    env = SpreadEnv(2000)
    env.reset(seed=0)
    rng = np.random.default_rng(1)
    returns = np.zeros(2000)
    for _ in range(25):
        returns += env.step(env.random_actions(rng)).rewards.mean(axis=1)
    assert abs(returns.mean() - 159.8) < 4.0, returns.mean()
    assert 50 < returns.std() < 70, returns.std()


def test_reset_is_seeded_and_in_bounds():
    a, b = SpreadEnv(50), SpreadEnv(50)
    oa, ob = a.reset(7), b.reset(7)
    np.testing.assert_array_equal(oa.obs, ob.obs)
    assert not np.array_equal(oa.obs, SpreadEnv(50).reset(8).obs)
    assert np.abs(a.pos).max() <= 1 and np.abs(a.landmarks).max() <= 1
    assert np.all(a.vel == 0)
    assert np.all(oa.rewards == 0) and not oa.terminated.any() and not oa.truncated.any()
    assert oa.obs.dtype == np.float32 and oa.obs.shape == (50, 3, 18)
    wide = SpreadEnv(200, n_agents=5)
    wide.reset(0)
    assert 1 < np.abs(wide.pos).max() <= 2 and wide.reset(0).obs.shape == (200, 5, 30)


def test_observation_layout():
    env = SpreadEnv(4)
    env.reset(3)
    step = env.step(env.random_actions(np.random.default_rng(0)))
    pos, vel, lm = env.pos, env.vel, env.landmarks
    for i in range(3):
        o = step.obs[:, i].astype(np.float64)
        np.testing.assert_allclose(o[:, 0:2], vel[:, i], atol=1e-6)
        np.testing.assert_allclose(o[:, 2:4], pos[:, i], atol=1e-6)
        for lnd in range(3):
            np.testing.assert_allclose(o[:, 4 + 2 * lnd:6 + 2 * lnd], lm[:, lnd] - pos[:, i], atol=1e-6)
        others = [j for j in range(3) if j != i]
        for k, j in enumerate(others):
            np.testing.assert_allclose(o[:, 10 + 2 * k:12 + 2 * k], pos[:, j] - pos[:, i], atol=1e-6)
        assert np.all(o[:, 14:18] == 0)
    assert np.any(vel != 0)


def test_exactly_25_steps_then_truncated_and_zero_reward():
    env = SpreadEnv(3)
    env.reset(0)
    rng = np.random.default_rng(0)
    for t in range(1, 26):
        step = env.step(env.random_actions(rng))
        assert not step.terminated.any()
        assert step.truncated.all() == (t == 25) and step.truncated.any() == (t == 25)
        assert np.any(step.rewards != 0)
    final = step.obs
    for _ in range(2):
        after = env.step(env.random_actions(rng))
        assert np.all(after.rewards == 0) and after.truncated.all() and not after.terminated.any()
        np.testing.assert_array_equal(after.obs, final)
    assert env.t == 25


def _place(env, pos, landmarks, vel=None):
    env.pos = np.asarray(pos, dtype=np.float64)[None]
    env.landmarks = np.asarray(landmarks, dtype=np.float64)[None]
    env.vel = np.zeros_like(env.pos) if vel is None else np.asarray(vel, dtype=np.float64)[None]


def test_collision_penalty_only_for_overlapping_agents():
    env = SpreadEnv(1)
    env.reset(0)
    far = [[5.0, 5.0], [-5.0, 5.0], [5.0, -5.0]]
    # agents 0 and 1 are 0.28 apart and pushed into each other harder than the contact force separates them
    _place(env, [[-0.14, 0.0], [0.14, 0.0], [0.0, 0.9]], far)
    r = env.step(np.array([[[1.0, 0.0], [-1.0, 0.0], [0.0, 0.0]]])).rewards[0]
    assert np.linalg.norm(env.pos[0, 0] - env.pos[0, 1]) < 0.3
    assert r[0] == pytest.approx(r[2] - 5) and r[1] == pytest.approx(r[2] - 5)
    # coincident agents: no contact force (guarded division), penalty for both, and no NaN
    _place(env, [[0.2, 0.2], [0.2, 0.2], [0.0, 0.9]], far)
    r = env.step(np.zeros((1, 3, 2))).rewards[0]
    assert np.all(np.isfinite(env.pos)) and np.allclose(env.pos[0, 0], [0.2, 0.2])
    assert r[0] == pytest.approx(r[2] - 5) and r[1] == pytest.approx(r[2] - 5)
    # well separated: identical (shared coverage) rewards
    _place(env, [[-0.5, 0.0], [0.5, 0.0], [0.0, 0.9]], far)
    r = env.step(np.zeros((1, 3, 2))).rewards[0]
    assert r[0] == r[1] == r[2]


def _reference_step(pos, vel, landmarks, actions):
    """Scalar re-derivation of one step of the original particle world + OMAR's spread reward."""
    n = len(pos)
    force = [[5.0 * max(-1.0, min(1.0, a)) for a in act] for act in actions]
    for a in range(n):
        for b in range(a + 1, n):
            dx, dy = pos[a][0] - pos[b][0], pos[a][1] - pos[b][1]
            dist = math.hypot(dx, dy)
            k = 1e-3
            pen = math.log1p(math.exp(-(dist - 0.3) / k)) * k if -(dist - 0.3) / k < 700 else -(dist - 0.3)
            f = 100.0 * pen / dist
            force[a][0] += f * dx
            force[a][1] += f * dy
            force[b][0] -= f * dx
            force[b][1] -= f * dy
    new_vel = [[vel[i][c] * 0.75 + force[i][c] * 0.1 for c in range(2)] for i in range(n)]
    new_pos = [[pos[i][c] + new_vel[i][c] * 0.1 for c in range(2)] for i in range(n)]
    cover = 0.0
    for lx, ly in landmarks:
        d = min(math.hypot(p[0] - lx, p[1] - ly) for p in new_pos)
        cover += min(1.0 / d, 10.0)
    rewards = []
    for i in range(n):
        hits = sum(1 for j in range(n) if j != i and math.dist(new_pos[i], new_pos[j]) < 0.3)
        rewards.append(cover - 5.0 * hits)
    return new_pos, new_vel, rewards


def test_physics_step_matches_hand_computation():
    pos = [[0.1, -0.2], [0.32, -0.1], [-0.7, 0.6]]  # agents 0 and 1 are in soft contact (0.2417 apart)
    vel = [[0.3, 0.1], [-0.2, 0.0], [0.0, 0.5]]
    landmarks = [[0.15, -0.2], [0.9, 0.9], [-0.7, 0.62]]  # agent 2 sits 0.02 from a landmark: capped at 10
    actions = [[0.5, -2.0], [-0.3, 0.8], [1.5, 0.0]]  # out-of-range entries are clipped
    env = SpreadEnv(1)
    env.reset(0)
    _place(env, pos, landmarks, vel)
    step = env.step(np.array([actions]))
    exp_pos, exp_vel, exp_r = _reference_step(pos, vel, landmarks, actions)
    np.testing.assert_allclose(env.pos[0], exp_pos, rtol=0, atol=1e-12)
    np.testing.assert_allclose(env.vel[0], exp_vel, rtol=0, atol=1e-12)
    np.testing.assert_allclose(step.rewards[0], exp_r, rtol=1e-6)
    # the contact force is visible: it changes agent 0's velocity beyond the action alone
    assert abs(exp_vel[0][0] - (0.3 * 0.75 + 0.25)) > 0.1
    np.testing.assert_allclose(step.obs[0, 0, :4], [*exp_vel[0], *exp_pos[0]], atol=1e-6)


def test_step_rejects_bad_actions():
    env = SpreadEnv(2)
    with pytest.raises(RuntimeError):
        env.step(np.zeros((2, 3, 2)))
    env.reset(0)
    with pytest.raises(ValueError):
        env.step(np.zeros((2, 3)))
    with pytest.raises(ValueError):
        env.step(np.full((2, 3, 2), np.nan))

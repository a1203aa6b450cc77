import numpy as np
import pytest

from marlbench.envs.base import BatchedMultiAgentEnv, EnvStep
from marlbench.envs.mpe import (
    ScriptedSpreadPolicy,
    SpreadEnv,
    generate_spread_scripted,
    optimal_assignment,
    spread_spec,
)
from marlbench.envs.rollout import rollout
from marlbench.errors import ConfigError
from marlbench.seeding import derive_seed
from marlbench.spec import TaskSpec

SPEC = spread_spec()


def _returns(policy, episodes=1000, seed=0):
    env = SpreadEnv(episodes)
    step = env.reset(seed)
    policy.reset(episodes)
    total = np.zeros(episodes)
    for _ in range(25):
        step = env.step(policy(step))
        total += step.rewards.mean(axis=1)
    return total


def test_optimal_assignment_brute_force():
    dist = np.array([[[1.0, 0.1, 5.0], [0.2, 3.0, 5.0], [9.0, 9.0, 1.0]],
                     [[0.0, 1.0, 2.0], [1.0, 0.0, 2.0], [2.0, 1.0, 0.0]]])
    np.testing.assert_array_equal(optimal_assignment(dist), [[1, 0, 2], [0, 1, 2]])


def test_noise_free_scripted_policy_is_near_expert():
    score = SPEC.normalise(_returns(ScriptedSpreadPolicy(noise_levels=[0.0])).mean())
    assert score > 90, score


def test_noise_levels_order_quality_and_random_level_is_random():
    levels = ScriptedSpreadPolicy().noise_levels
    means = [_returns(ScriptedSpreadPolicy(noise_levels=[lv], seed=1), episodes=500).mean() for lv in levels]
    assert all(a > b for a, b in zip(means, means[1:])), means
    assert abs(means[-1] - 159.8) < 10, means  # the fully random level is the normalisation's random policy


def test_policy_levels_cycle_over_episodes_and_actions_in_range():
    pol = ScriptedSpreadPolicy(noise_levels=[0.0, 1.0, (0.0, 1.0)])
    np.testing.assert_array_equal(pol.reset(4), [0, 1, 2, 0])
    np.testing.assert_array_equal(pol.reset(2), [1, 2])  # counting continues across batches
    env = SpreadEnv(2)
    a = pol(env.reset(0))
    assert a.shape == (2, 3, 2) and a.dtype == np.float32 and np.abs(a).max() <= 1
    with pytest.raises(RuntimeError):
        pol(SpreadEnv(3).reset(0))


def test_generate_is_deterministic_and_seed_dependent():
    a = generate_spread_scripted(episodes=300, seed=4)
    b = generate_spread_scripted(episodes=300, seed=4)
    for field in ("obs", "actions", "rewards", "terminals", "truncations"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
    assert a.checksum() == b.checksum()
    assert a.checksum() != generate_spread_scripted(episodes=300, seed=5).checksum()
    # fewer episodes are a prefix of more episodes
    np.testing.assert_array_equal(generate_spread_scripted(episodes=120, seed=4).actions, a.actions[:120 * 25])


def test_generated_dataset_layout_and_metadata():
    d = generate_spread_scripted(episodes=1200, seed=2)
    assert d.obs.shape == (1200 * 25, 3, 18) and d.actions.shape == (1200 * 25, 3, 2)
    assert d.rewards.shape == (1200 * 25, 3) and d.state is None and d.legals is None
    assert np.all(d.episode_lengths == 25) and not d.terminals.any()
    np.testing.assert_array_equal(np.flatnonzero(d.truncations), np.arange(24, 1200 * 25, 25))
    d.validate_against(SPEC)
    m = d.metadata
    assert (m["task"], m["source"], m["quality"], m["generator_seed"], m["episodes"]) == (
        "mpe/spread-scripted", "generated", "scripted", 2, 1200)
    bp = m["behaviour_policy"]
    assert bp["name"] == "scripted-spread-pd" and {"kp", "kd", "noise_levels"} <= set(bp)
    assert len(bp["return_mean_per_level"]) == len(bp["noise_levels"])


def test_generated_transitions_replay_in_the_env():
    """obs[t+1] is the env's answer to actions[t] within an episode; rewards[t] is the reward for it."""
    d = generate_spread_scripted(episodes=1000, seed=6)
    obs, act, rew = (x.reshape(1000, 25, *x.shape[1:]) for x in (d.obs, d.actions, d.rewards))
    env = SpreadEnv(1000)
    step = env.reset(derive_seed(6, 0, 0))
    for t in range(25):
        np.testing.assert_array_equal(step.obs, obs[:, t])
        step = env.step(act[:, t])
        np.testing.assert_array_equal(step.rewards, rew[:, t])


def test_dataset_quality_mix():
    d = generate_spread_scripted(episodes=4000, seed=0)
    score = SPEC.normalise(d.episode_returns().mean())
    assert 55 <= score <= 70, score
    per_level = d.metadata["behaviour_policy"]["return_mean_per_level"]
    assert SPEC.normalise(per_level[0]) > 75 and SPEC.normalise(per_level[-1]) < 40, per_level
    assert all(a > b for a, b in zip(per_level, per_level[1:])), per_level


class _CountdownEnv(BatchedMultiAgentEnv):
    """Episode b (of a batch) lasts 1 + (b + seed) % 5 steps; obs = 100 * (b + 1) + t for both agents.

    Episodes that reach the limit of 4 steps are truncated there unless ``env_truncates`` is False, in which case
    the env never ends them and the rollout must cut them.
    """

    def __init__(self, num_envs, env_truncates=True):
        self.spec = TaskSpec("fake", n_agents=2, obs_dim=1, action_kind="continuous", action_dim=1, episode_limit=4)
        self.num_envs, self.env_truncates = num_envs, env_truncates

    def reset(self, seed):
        self.length = 1 + (np.arange(self.num_envs) + seed) % 5
        self.t = 0
        self.done = np.zeros(self.num_envs, dtype=bool)
        return self._step(np.zeros(self.num_envs, dtype=bool), np.zeros(self.num_envs, dtype=bool))

    def _step(self, term, trunc):
        obs = np.repeat((100.0 * (np.arange(self.num_envs) + 1) + self.t)[:, None, None], 2, axis=1)
        return EnvStep(obs.astype(np.float32), np.ones((self.num_envs, 2), np.float32), term, trunc)

    def step(self, actions):
        assert actions.shape == (self.num_envs, 2, 1)
        self.t += 1
        term = self.length <= 3
        term = self.done | (term & (self.t >= self.length))
        trunc = self.done | (~term & (self.t >= 4) & self.env_truncates)
        self.done = term | trunc
        return self._step(term, trunc)


@pytest.mark.parametrize("env_truncates", [True, False])
def test_rollout_handles_variable_lengths_chunks_and_cuts(env_truncates):
    env = _CountdownEnv(3, env_truncates)
    resets = []

    class Zero:
        def reset(self, n):
            resets.append(n)

        def __call__(self, step):
            return np.zeros((3, 2, 1), np.float32)

    d = rollout(env, Zero(), episodes=5, seed=11)
    assert resets == [3, 3]  # two batches of 3, the last one's surplus episode dropped
    expected_len = np.concatenate([np.minimum(1 + (np.arange(k) + derive_seed(11, 0, c)) % 5, 4)
                                   for c, k in ((0, 3), (1, 2))])
    np.testing.assert_array_equal(d.episode_lengths, expected_len)
    for e, (s, length) in enumerate(zip(d.episode_starts, expected_len)):
        b = e % 3
        np.testing.assert_array_equal(d.obs[s:s + length, 0, 0], 100 * (b + 1) + np.arange(length))
        assert d.terminals[s + length - 1] == (length <= 3)
        assert d.truncations[s + length - 1] == (length == 4)
    assert (d.terminals | d.truncations).sum() == 5 and not (d.terminals & d.truncations).any()
    assert np.all(d.rewards == 1)


def test_index_assignment_steers_agent_i_to_landmark_i():
    env = SpreadEnv(num_envs=4)
    step = env.reset(3)
    pol = ScriptedSpreadPolicy(noise_levels=[0.0], assignment="index")
    pol.reset(4)
    agent = np.arange(3)
    rel_own_landmark = step.obs[:, agent[:, None], 4 + 2 * agent[:, None] + np.arange(2)]  # [B, N, 2]
    expected = np.clip(2.0 * rel_own_landmark - step.obs[..., 0:2], -1, 1)
    np.testing.assert_allclose(pol(step), expected, atol=1e-6)
    with pytest.raises(ConfigError, match="assignment"):
        ScriptedSpreadPolicy(assignment="greedy")

"""The single-step games of App. H.5-H.7: rewards, datasets, normalisation references and registration."""
import numpy as np
import pytest

from marlbench.envs.games import (
    COORDINATION_FREQUENCIES,
    PAYOFF_ZETAS,
    CoordinationGameEnv,
    XorGameEnv,
    generate_coordination,
    generate_payoff,
    generate_xor,
    joint_action_frequencies,
    payoff_name,
)
from marlbench.envs.rollout import rollout
from marlbench.families.games import FAMILY
from marlbench.registry import FAMILIES, TASKS
from marlbench.tasks import get_task, register_family

GAME_TASKS = ["games/coordination", *(payoff_name(z) for z in PAYOFF_ZETAS), "games/xor"]


@pytest.fixture(scope="module", autouse=True)
def registered():
    """Register the games (twice: idempotent), then restore the registry so other modules see the catalogue as is."""
    saved = dict(TASKS._items), dict(TASKS._aliases), dict(FAMILIES._items)
    register_family(FAMILY)
    register_family(FAMILY)
    yield
    TASKS._items, TASKS._aliases, FAMILIES._items = saved


def _play(env, actions):
    env.reset(0)
    return env.step(np.asarray(actions))


def test_coordination_rewards_of_every_joint_action():
    step = _play(CoordinationGameEnv(4), [[0, 0], [0, 1], [1, 0], [1, 1]])
    np.testing.assert_array_equal(step.rewards, [[0, 0], [1, 1], [1, 1], [2, 2]])
    assert step.rewards.dtype == np.float32 and step.obs.shape == (4, 2, 1) and not step.obs.any()


def test_xor_reward_depends_only_on_relative_action_and_peaks_at_the_modes():
    a = [[-1, 1], [1, -1], [0.3, 0.3], [-1, -1], [0.5, -0.5], [3.0, -3.0]]
    step = _play(XorGameEnv(6), np.array(a)[:, :, None])
    np.testing.assert_allclose(step.rewards[:, 0], [1, 1, 0, 0, 0.5, 1])  # last one is clipped to the box
    np.testing.assert_array_equal(step.rewards[:, 0], step.rewards[:, 1])


@pytest.mark.parametrize("name", GAME_TASKS)
def test_episode_is_one_terminal_step(name):
    task = get_task(name)
    env = task.make_env(3)
    assert env.spec == task.spec and task.spec.episode_limit == 1
    first = env.reset(5)
    assert not first.terminated.any() and not first.truncated.any() and not first.rewards.any()
    actions = env.random_actions(np.random.default_rng(0))
    step = env.step(actions)
    assert step.terminated.all() and not step.truncated.any() and step.rewards.shape == (3, 2)
    after = env.step(actions)  # an ended episode stays ended with zero reward
    assert after.terminated.all() and not after.rewards.any()


@pytest.mark.parametrize("name", GAME_TASKS)
def test_random_policy_mean_return_matches_random_score(name):
    task = get_task(name)
    env = task.make_env(20000)
    env.reset(0)
    returns = env.step(env.random_actions(np.random.default_rng(1))).rewards.mean(-1)
    # the return's std is at most 0.71 (matrix games) and 0.24 (xor): 5 standard errors is < 0.03
    assert returns.mean() == pytest.approx(task.spec.random_score, abs=0.03)
    assert task.spec.normalise(task.spec.expert_score) == 100.0 and task.spec.normalisation_source == "analytic"


def test_coordination_dataset_frequencies_and_determinism():
    data = generate_coordination(20000, seed=3)
    freq = joint_action_frequencies(data.actions)
    np.testing.assert_array_equal(COORDINATION_FREQUENCIES, [[0.05, 0.45], [0.45, 0.05]])  # rare diagonal
    np.testing.assert_allclose(freq, COORDINATION_FREQUENCIES, atol=0.015)  # sd <= 0.0036
    assert data.metadata["joint_action_frequencies"] == COORDINATION_FREQUENCIES.tolist()
    assert data.n_episodes == 20000 and data.terminals.all() and not data.truncations.any()
    assert data.actions.dtype == np.int64 and data.obs.shape == (20000, 2, 1)
    np.testing.assert_array_equal(data.rewards[:, 0], data.actions.sum(1))  # payoff = number of agents playing 1
    assert generate_coordination(500, seed=3).checksum() == generate_coordination(500, seed=3).checksum()
    assert generate_coordination(500, seed=3).checksum() != generate_coordination(500, seed=4).checksum()
    data.validate_against(get_task("games/coordination").spec)


@pytest.mark.parametrize("zeta", PAYOFF_ZETAS)
def test_payoff_dataset_diagonal_mass(zeta):
    data = generate_payoff(8000, seed=0, zeta=zeta)
    freq = joint_action_frequencies(data.actions)
    assert np.trace(freq) == pytest.approx(zeta, abs=0.02)
    # each mode of a half gets half of it
    assert freq[0, 0] == pytest.approx(zeta / 2, abs=0.02) and freq[0, 1] == pytest.approx((1 - zeta) / 2, abs=0.02)
    assert data.metadata["task"] == payoff_name(zeta)
    data.validate_against(get_task(payoff_name(zeta)).spec)


def test_payoff_tasks_generate_their_own_zeta():
    assert np.trace(joint_action_frequencies(get_task("games/payoff-z0").generate(1000, 0).actions)) == 0
    assert np.trace(joint_action_frequencies(get_task("payoff-z100").generate(1000, 0).actions)) == 1


def test_xor_dataset_has_two_anti_aligned_modes():
    data = generate_xor(10000, seed=1)
    a = data.actions[:, :, 0]
    assert data.actions.shape == (10000, 2, 1) and data.actions.dtype == np.float32
    assert np.abs(a).max() <= 1.0
    assert np.all(np.sign(a[:, 0]) != np.sign(a[:, 1]))  # noise 0.1 never flips a sign from +-1
    assert (a[:, 0] < 0).mean() == pytest.approx(0.5, abs=0.03)
    # N(0, 0.1^2) noise: half of it points out of the box and is clipped, the other half is half-normal
    gap = 1 - np.abs(a)
    assert (gap == 0).mean() == pytest.approx(0.5, abs=0.03)
    assert gap[gap > 0].mean() == pytest.approx(0.1 * np.sqrt(2 / np.pi), abs=0.005)
    np.testing.assert_allclose(data.rewards[:, 0], np.abs(a[:, 0] - a[:, 1]) / 2, rtol=1e-6)
    assert generate_xor(100, seed=1).checksum() == generate_xor(100, seed=1).checksum()
    data.validate_against(get_task("games/xor").spec)


def test_joint_action_frequencies_rows_are_agent_zero():
    np.testing.assert_allclose(joint_action_frequencies(np.array([[0, 1], [0, 1], [1, 0], [1, 1]])),
                               [[0, 0.5], [0.25, 0.25]])
    with pytest.raises(ValueError):
        joint_action_frequencies(np.array([[0, 2]]))


def test_rollout_through_game_env_matches_the_dataset_layout():
    env = CoordinationGameEnv(8)
    data = rollout(env, lambda step: np.ones((8, 2), dtype=np.int64), episodes=10, seed=0)
    assert data.n_episodes == 10 and data.terminals.all() and (data.episode_returns() == 2.0).all()


def test_bad_actions_are_rejected():
    env = CoordinationGameEnv(2)
    env.reset(0)
    with pytest.raises(ValueError):
        env.step(np.array([[0, 2], [1, 1]]))
    with pytest.raises(ValueError):
        _play(XorGameEnv(2), np.zeros((2, 2)))  # xor actions are [B, 2, 1]

"""The landmark covering game (Sec. 4.3, App. H.4): observations, assignment reward, truncation, dataset, tasks."""
import itertools
import time

import numpy as np
import pytest

from marlbench.envs.landmarks import (
    EPISODE_LIMIT,
    MEASURED_SCORES,
    LandmarkCoveringEnv,
    generate_landmarks,
    landmark_positions,
    measure_scores,
    optimal_assignment,
)
from marlbench.errors import ConfigError
from marlbench.families.games import FAMILY
from marlbench.registry import FAMILIES, TASKS
from marlbench.tasks import get_task, register_family


@pytest.fixture(scope="module", autouse=True)
def registered():
    """Register the tasks (twice: idempotent), then restore the registry for other modules."""
    saved = dict(TASKS._items), dict(TASKS._aliases), dict(FAMILIES._items)
    register_family(FAMILY)
    register_family(FAMILY)
    yield
    TASKS._items, TASKS._aliases, FAMILIES._items = saved


def _place(env, pos):
    """Reset, then put the agents at ``pos`` [B, N, 2] by hand."""
    env.reset(0)
    env.pos = np.asarray(pos, dtype=np.float64).copy()


def test_landmarks_fixed_on_unit_circle_and_size_checked():
    lm = landmark_positions(4)
    np.testing.assert_allclose(lm, [[1, 0], [0, 1], [-1, 0], [0, -1]], atol=1e-12)
    np.testing.assert_array_equal(landmark_positions(40), landmark_positions(40))
    for bad in (2, 41):
        with pytest.raises(ConfigError):
            LandmarkCoveringEnv(1, bad)


def test_observation_is_own_position_then_all_landmarks_only():
    env = LandmarkCoveringEnv(2, 3)
    step = env.reset(7)
    assert step.obs.shape == (2, 3, 2 + 2 * 3) and env.spec.obs_dim == 8
    np.testing.assert_allclose(step.obs[:, :, :2], env.pos, atol=1e-6)
    np.testing.assert_allclose(step.obs[:, :, 2:], np.broadcast_to(landmark_positions(3).ravel(), (2, 3, 6)),
                               atol=1e-6)
    # moving only agent 1 leaves the observations of agents 0 and 2 untouched
    actions = np.zeros((2, 3, 2), dtype=np.float32)
    actions[:, 1] = [1.0, -1.0]
    nxt = env.step(actions)
    np.testing.assert_array_equal(nxt.obs[:, [0, 2]], step.obs[:, [0, 2]])
    np.testing.assert_allclose(nxt.obs[:, 1, :2] - step.obs[:, 1, :2], [[0.1, -0.1]] * 2, atol=1e-6)


def test_actions_clipped_to_unit_box():
    env = LandmarkCoveringEnv(1, 3)
    start = env.reset(0).obs[0, :, :2]
    moved = env.step(np.full((1, 3, 2), 5.0)).obs[0, :, :2]
    np.testing.assert_allclose(moved - start, 0.1, atol=1e-6)


@pytest.mark.parametrize("n", [3, 10])  # brute-force and linear_sum_assignment paths
def test_reward_zero_on_landmarks_in_any_order(n):
    env = LandmarkCoveringEnv(1, n)
    _place(env, landmark_positions(n)[np.random.default_rng(0).permutation(n)][None])
    step = env.step(np.zeros((1, n, 2)))
    np.testing.assert_allclose(step.rewards, 0.0, atol=1e-6)


def test_reward_is_minus_mean_optimally_assigned_distance():
    lm = landmark_positions(3)
    env = LandmarkCoveringEnv(1, 3)
    # agents 0, 1 sit on landmarks 1, 2; agent 2 is (0.3, 0.4) away from landmark 0 -> reward -0.5 / 3
    _place(env, [[lm[1], lm[2], lm[0] + [0.3, 0.4]]])
    step = env.step(np.zeros((1, 3, 2)))
    np.testing.assert_allclose(step.rewards, [[-0.5 / 3] * 3], atol=1e-6)
    # two agents near landmark 0: the farther one must take the free landmark, not its nearest
    env2 = LandmarkCoveringEnv(1, 3)
    _place(env2, [[lm[0], lm[0] + [0.1, 0.0], lm[1]]])
    expected = -np.linalg.norm(lm[0] + [0.1, 0.0] - lm[2]) / 3
    np.testing.assert_allclose(env2.step(np.zeros((1, 3, 2))).rewards, [[expected] * 3], atol=1e-6)


@pytest.mark.parametrize("n", [3, 8])
def test_assignment_matches_brute_force(n):
    dist = np.random.default_rng(n).random((20 if n == 3 else 3, n, n))
    assign = optimal_assignment(dist)
    for d, a in zip(dist, assign):
        assert sorted(a) == list(range(n))
        best = min(d[np.arange(n), list(p)].sum() for p in itertools.permutations(range(n)))
        assert d[np.arange(n), a].sum() == pytest.approx(best, abs=1e-12)


def test_truncated_exactly_at_episode_limit_then_frozen():
    env = LandmarkCoveringEnv(3, 3)
    env.reset(0)
    zeros = np.zeros((3, 3, 2))
    for t in range(1, EPISODE_LIMIT + 1):
        step = env.step(zeros)
        assert not step.terminated.any()
        assert step.truncated.all() == (t == EPISODE_LIMIT) and step.truncated.any() == (t == EPISODE_LIMIT)
        assert (step.rewards < 0).all()
    after = env.step(np.ones((3, 3, 2)))
    assert after.truncated.all() and not after.rewards.any()
    np.testing.assert_array_equal(after.obs, step.obs)


def test_dataset_shape_and_determinism():
    a, b = generate_landmarks(3, seed=0), generate_landmarks(3, seed=0)
    assert a.obs.shape == (50 * EPISODE_LIMIT, 3, 8) and a.actions.shape == (50 * EPISODE_LIMIT, 3, 2)
    for field in ("obs", "actions", "rewards", "truncations"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
    assert not np.array_equal(a.actions, generate_landmarks(3, seed=1).actions)
    assert a.truncations.sum() == 50 and not a.terminals.any()
    assert np.abs(a.actions).max() <= 1.0
    # a prefix of a longer dataset
    np.testing.assert_array_equal(generate_landmarks(3, episodes=10).obs, a.obs[:10 * EPISODE_LIMIT])


def test_dataset_partitions_differ_across_episodes():
    data = generate_landmarks(3)
    last = data.obs[EPISODE_LIMIT - 1::EPISODE_LIMIT]  # [50, 3, 8] final observation of each episode
    lm = landmark_positions(3)
    covered = np.linalg.norm(last[:, :, None, :2] - lm[None, None], axis=-1).argmin(-1)  # [50, 3]
    assert (np.sort(covered, axis=1) == [0, 1, 2]).mean() > 0.9  # coordinated: one agent per landmark
    assert len({tuple(c) for c in covered}) >= 3  # multimodal: several partitions across episodes


@pytest.mark.parametrize("n", [3, 40])
def test_scripted_data_clearly_beats_uniform_random(n):
    data = generate_landmarks(n)
    spec = get_task(f"games/landmarks-{n}").spec
    score = spec.normalise(float(data.episode_returns().mean()))
    assert score > 80.0, score
    assert spec.expert_score - spec.random_score > 5.0


@pytest.mark.parametrize("n", [3, 40])
def test_hard_coded_scores_match_a_fresh_measurement(n):
    random_score, expert_score = measure_scores(n, episodes=200, seed=1)
    assert random_score == pytest.approx(MEASURED_SCORES[n][0], rel=0.03)
    assert expert_score == pytest.approx(MEASURED_SCORES[n][1], rel=0.05)


def test_forty_agent_dataset_generates_quickly():
    start = time.perf_counter()
    data = generate_landmarks(40)
    assert time.perf_counter() - start < 10.0
    assert data.obs.shape == (50 * EPISODE_LIMIT, 40, 82)


def test_tasks_registered_with_aliases_and_unique_cache_paths():
    paths = set()
    for n in (3, 10, 40):
        task = get_task(f"landmarks-{n}")
        assert task.name == f"games/landmarks-{n}" and task.benchmark == "games"
        assert task.spec.n_agents == n and task.spec.obs_dim == 2 + 2 * n and task.spec.continuous
        assert task.status()[0]
        paths.add(task.dataset_path)
        env = task.make_env(4)
        assert env.reset(0).obs.shape == (4, n, 2 + 2 * n)
    assert len(paths) == 3
    assert get_task("landmarks-3").generate(2, 0).obs.shape == (2 * EPISODE_LIMIT, 3, 8)

"""Dataset layout, boundaries, sampling, statistics, validation and the torch sampler."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from marlbench.data.dataset import Dataset
from marlbench.data.sampler import Batch, TransitionSampler
from marlbench.errors import DatasetError
from marlbench.spec import TaskSpec

N, OBS_DIM, ACT_DIM, N_ACTIONS, STATE_DIM = 2, 3, 2, 4, 5
# (length, terminal?) per episode: a mix of terminal and time-limit ends, including one-step episodes.
EPISODES = [(3, True), (4, False), (1, True), (5, False), (1, False), (2, True)]


def make_arrays(discrete: bool = False, episodes=EPISODES) -> dict:
    """obs[t, n, 0] == t and obs[t, n, 1] == n, so a sampled observation reveals its step."""
    T = sum(length for length, _ in episodes)
    t = np.arange(T, dtype=np.float32)
    obs = np.zeros((T, N, OBS_DIM), np.float32)
    obs[:, :, 0] = t[:, None]
    obs[:, :, 1] = np.arange(N)
    rewards = np.stack([t, 2 * t + 1], axis=1).astype(np.float32)  # agent mean = 1.5 t + 0.5
    terminals, truncations = np.zeros(T, bool), np.zeros(T, bool)
    end = -1
    for length, terminal in episodes:
        end += length
        (terminals if terminal else truncations)[end] = True
    rng = np.random.default_rng(0)
    arrays = dict(obs=obs, rewards=rewards, terminals=terminals, truncations=truncations,
                  state=rng.normal(size=(T, STATE_DIM)).astype(np.float32))
    if discrete:
        arrays["actions"] = rng.integers(0, N_ACTIONS - 1, size=(T, N))
        arrays["legals"] = np.ones((T, N, N_ACTIONS), bool)
        arrays["legals"][:, :, -1] = rng.random((T, N)) < 0.5
    else:
        arrays["actions"] = rng.uniform(-1, 1, size=(T, N, ACT_DIM)).astype(np.float32)
    return arrays


def make_dataset(discrete: bool = False, **overrides) -> Dataset:
    arrays = make_arrays(discrete)
    arrays.update(overrides)
    return Dataset(**arrays, metadata={"task": "toy"})


def spec(**changes) -> TaskSpec:
    fields = dict(name="toy", n_agents=N, obs_dim=OBS_DIM, action_kind="continuous", action_dim=ACT_DIM,
                  episode_limit=5, state_dim=STATE_DIM)
    fields.update(changes)
    return TaskSpec(**fields)


def step_of(obs: np.ndarray) -> np.ndarray:
    return obs[..., 0, 0].astype(int)


# ------------------------------------------------------------------ episodes and statistics
def test_episode_boundaries_and_shapes():
    ds = make_dataset()
    assert ds.n_transitions == 16 and ds.n_agents == N and ds.obs_dim == OBS_DIM and ds.action_dim == ACT_DIM
    assert not ds.discrete and ds.state_dim == STATE_DIM and ds.n_episodes == 6
    np.testing.assert_array_equal(ds.episode_starts, [0, 3, 7, 8, 13, 14])
    np.testing.assert_array_equal(ds.episode_ends, [2, 6, 7, 12, 13, 15])
    np.testing.assert_array_equal(ds.episode_lengths, [3, 4, 1, 5, 1, 2])


def test_episode_returns_match_hand_computation():
    ds = make_dataset()
    per_step = 1.5 * np.arange(16) + 0.5
    expected = [per_step[s:e + 1].sum() for s, e in [(0, 2), (3, 6), (7, 7), (8, 12), (13, 13), (14, 15)]]
    np.testing.assert_allclose(ds.episode_returns(), expected)
    assert ds.episode_returns()[0] == pytest.approx(0.5 + 2.0 + 3.5)


def test_td_indices_exclude_truncated_last_steps_and_keep_terminal_ones():
    td = make_dataset().td_indices()
    for t in (6, 12, 13):  # truncated episode ends: no stored next observation
        assert t not in td
    for t in (2, 7, 15):  # terminal ends: target does not bootstrap
        assert t in td
    assert len(td) == 16 - 3


def test_statistics():
    ds = make_dataset()
    stats = ds.statistics()
    returns = ds.episode_returns()
    assert stats["episodes"] == 6 and stats["transitions"] == 16 and stats["terminal_episodes"] == 3
    assert stats["return_mean"] == pytest.approx(returns.mean())
    assert stats["return_std"] == pytest.approx(returns.std())
    assert stats["return_min"] == pytest.approx(returns.min()) and stats["return_max"] == pytest.approx(returns.max())
    assert stats["return_median"] == pytest.approx(np.median(returns))
    assert stats["episode_length_min"] == 1 and stats["episode_length_max"] == 5
    assert stats["episode_length_mean"] == pytest.approx(16 / 6)
    assert (stats["n_agents"], stats["obs_dim"], stats["action_dim"], stats["state_dim"]) == (N, OBS_DIM, ACT_DIM,
                                                                                             STATE_DIM)


def test_checksum_changes_with_one_value_and_ignores_metadata():
    arrays = make_arrays()
    base = Dataset(**arrays).checksum()
    assert Dataset(**arrays, metadata={"task": "other"}).checksum() == base
    changed = {**arrays, "rewards": arrays["rewards"].copy()}
    changed["rewards"][5, 1] += 1e-3
    assert Dataset(**changed).checksum() != base
    flipped = {**arrays, "terminals": arrays["terminals"].copy(), "truncations": arrays["truncations"].copy()}
    flipped["terminals"][6], flipped["truncations"][6] = True, False  # same boundaries, different end kind
    assert Dataset(**flipped).checksum() != base


# ------------------------------------------------------------------ sampling
@pytest.mark.parametrize("discrete", [False, True])
def test_sampled_transitions_follow_obs_t_plus_1_within_episodes(discrete):
    ds = make_dataset(discrete)
    batch = ds.sample_transitions(512, np.random.default_rng(1))
    t, nt = step_of(batch["obs"]), step_of(batch["next_obs"])
    assert set(t) == set(ds.td_indices())
    ends = np.isin(t, ds.episode_ends)
    assert np.all(ends == (batch["dones"] == 1))  # only terminal ends are sampled among ends
    np.testing.assert_array_equal(nt[~ends], t[~ends] + 1)  # next_obs is obs[t+1] ...
    np.testing.assert_array_equal(nt[ends], t[ends])  # ... and never the next episode's first step
    np.testing.assert_array_equal(batch["actions"], ds.actions[t])
    np.testing.assert_array_equal(batch["rewards"], ds.rewards[t])
    np.testing.assert_array_equal(batch["next_state"], ds.state[nt])
    assert batch["dones"].dtype == np.float32 and batch["obs"].shape == (512, N, OBS_DIM)
    if discrete:
        np.testing.assert_array_equal(batch["next_legals"], ds.legals[nt])
        assert batch["next_legals"].any(-1).all()


def test_sequences_never_cross_episodes_and_mask_is_right():
    ds = make_dataset(discrete=True)
    L = 4
    seq = ds.sample_sequences(256, L, np.random.default_rng(2))
    assert seq["obs"].shape == (256, L, N, OBS_DIM) and seq["mask"].shape == (256, L)
    start = step_of(seq["obs"][:, 0])
    ep = np.searchsorted(ds.episode_ends, start)  # episode of each window's first step
    end = ds.episode_ends[ep]
    expected_mask = (start[:, None] + np.arange(L)) <= end[:, None]
    np.testing.assert_array_equal(seq["mask"], expected_mask.astype(np.float32))
    steps = step_of(seq["obs"])
    valid = expected_mask
    np.testing.assert_array_equal(steps[valid], (start[:, None] + np.arange(L))[valid])
    assert (seq["obs"][~valid] == 0).all() and (seq["rewards"][~valid] == 0).all()
    np.testing.assert_array_equal(seq["timesteps"][:, 0], start - ds.episode_starts[ep])
    assert seq["legals"].any(-1).all()  # padding keeps a legal action
    # a window whose episode ends at a terminal carries terminals=1 at that step
    term = seq["terminals"].astype(bool)
    assert np.all(ds.terminals[steps[term]])


# ------------------------------------------------------------------ validation
def test_nan_names_field_and_count():
    rewards = make_arrays()["rewards"].copy()
    rewards[[1, 4], 0] = np.nan
    with pytest.raises(DatasetError, match=r"rewards: 2 of 32 values are NaN or inf"):
        make_dataset(rewards=rewards)
    obs = make_arrays()["obs"].copy()
    obs[0, 0, 0] = np.inf
    with pytest.raises(DatasetError, match="obs: 1 of"):
        make_dataset(obs=obs)


def test_shape_mismatch_names_field_expected_and_found():
    with pytest.raises(DatasetError, match=r"rewards: expected shape \[T, N\] = \(16, 2\), found shape \(16, 3\)"):
        make_dataset(rewards=np.zeros((16, 3), np.float32))
    with pytest.raises(DatasetError, match=r"terminals: expected shape \[T\] = \(16,\), found shape \(15,\)"):
        make_dataset(terminals=np.zeros(15, bool))
    with pytest.raises(DatasetError, match=r"state: expected shape \[T, S\] = \(16, \?\), found shape \(16, 2, 1\)"):
        make_dataset(state=np.zeros((16, 2, 1)))
    with pytest.raises(DatasetError, match=r"obs: expected shape \[T, N, obs_dim\].*found shape \(16, 6\)"):
        make_dataset(obs=np.zeros((16, 6)))
    with pytest.raises(DatasetError, match="actions: discrete actions .* must be int64"):
        make_dataset(actions=np.zeros((16, N), np.float32))


def test_incomplete_final_episode_is_named_with_fix():
    arrays = make_arrays()
    arrays["terminals"][15] = False
    with pytest.raises(DatasetError, match=r"final episode \(steps 14\.\.15, 2 steps\) is incomplete.*truncations"):
        Dataset(**arrays)


def test_legals_without_any_legal_action_rejected():
    arrays = make_arrays(discrete=True)
    arrays["legals"][3, 1] = False
    with pytest.raises(DatasetError, match="legals: 1 .* no legal action, first at step 3, agent 1"):
        Dataset(**arrays)


def test_validate_against_spec():
    make_dataset().validate_against(spec())
    make_dataset(discrete=True).validate_against(spec(action_kind="discrete", action_dim=N_ACTIONS))
    make_dataset(state=None).validate_against(spec())  # a task's state may be absent from the data
    cases = [(spec(n_agents=3), "n_agents expected 3, found 2"), (spec(obs_dim=7), "obs_dim expected 7, found 3"),
             (spec(action_dim=6), "action_dim expected 6, found 2"), (spec(state_dim=9), "state_dim expected 9"),
             (spec(action_kind="discrete", action_dim=4), "action kind expected discrete, found continuous")]
    for bad_spec, message in cases:
        with pytest.raises(DatasetError, match=message + r".*marlbench data generate toy"):
            make_dataset().validate_against(bad_spec)
    with pytest.raises(DatasetError, match="number of discrete actions expected 5, found 4"):
        make_dataset(discrete=True).validate_against(spec(action_kind="discrete", action_dim=5))


# ------------------------------------------------------------------ torch sampler
def batches_equal(a: Batch, b: Batch) -> bool:
    return all(torch.equal(getattr(a, k), getattr(b, k)) for k in ("obs", "actions", "rewards", "next_obs", "dones"))


@pytest.mark.parametrize("discrete", [False, True])
def test_sampler_matches_dataset_layout(discrete):
    ds = make_dataset(discrete)
    batch = TransitionSampler(ds, 256, "cpu", seed=0).sample()
    t, nt = batch.obs[:, 0, 0].long().numpy(), batch.next_obs[:, 0, 0].long().numpy()
    assert set(t) <= set(ds.td_indices())
    np.testing.assert_array_equal(nt, ds._next_index[t])
    np.testing.assert_array_equal(batch.dones.numpy(), ds.terminals[t])
    np.testing.assert_array_equal(batch.state.numpy(), ds.state[t])
    assert batch.dones.dtype == torch.float32 and batch.rewards.shape == (256, N)
    assert batch.actions.dtype == (torch.int64 if discrete else torch.float32)
    assert (batch.legals is None) == (not discrete)


def test_sampler_is_deterministic_and_resumes_exactly():
    ds = make_dataset(discrete=True)
    a, b = TransitionSampler(ds, 32, "cpu", seed=7), TransitionSampler(ds, 32, "cpu", seed=7)
    assert all(batches_equal(a.sample(), b.sample()) for _ in range(3))
    assert not batches_equal(TransitionSampler(ds, 32, "cpu", seed=8).sample(), a.sample())

    run = TransitionSampler(ds, 32, "cpu", seed=3)
    for _ in range(4):
        run.sample()
    checkpoint = run.state_dict()
    uninterrupted = [run.sample() for _ in range(5)]
    resumed = TransitionSampler(ds, 32, "cpu", seed=999)
    resumed.load_state_dict(checkpoint)
    assert all(batches_equal(x, y) for x, y in zip(uninterrupted, [resumed.sample() for _ in range(5)]))
    with pytest.raises(DatasetError, match="same dataset"):
        other = Dataset(**make_arrays(episodes=[(3, True), (2, False)]))
        TransitionSampler(other, 32, "cpu").load_state_dict(checkpoint)

"""SegmentSampler: windows of consecutive steps for trajectory models (MADiff, DoF)."""
import numpy as np
import pytest
import torch

from marlbench.data.dataset import Dataset
from marlbench.data.sampler import SegmentSampler, returns_to_go
from marlbench.errors import DatasetError


def _dataset(lengths=(5, 3, 7), n_agents=2, discrete=False):
    T = sum(lengths)
    rng = np.random.default_rng(0)
    ends = np.cumsum(lengths) - 1
    terminals = np.zeros(T, bool)
    terminals[ends] = True
    obs = np.zeros((T, n_agents, 3), np.float32)
    obs[:, :, 0] = np.arange(T)[:, None]  # the step index, to read windows back
    obs[:, :, 1] = np.arange(n_agents)[None]
    actions = rng.integers(0, 4, (T, n_agents)) if discrete else rng.normal(size=(T, n_agents, 2))
    return Dataset(obs, actions, rng.normal(size=(T, n_agents)), terminals, np.zeros(T, bool))


def test_returns_to_go_matches_a_backward_scan():
    data = _dataset()
    r = data.rewards.mean(axis=1, dtype=np.float64)
    got = returns_to_go(r, data.episode_starts, data.episode_lengths, 0.9)
    expected = np.empty_like(r)
    for s, n in zip(data.episode_starts, data.episode_lengths):
        acc = 0.0
        for k in range(s + n - 1, s - 1, -1):
            acc = r[k] + 0.9 * acc
            expected[k] = acc
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)
    # the long-episode fallback gives the same numbers
    long = np.random.default_rng(1).normal(size=4000)
    fast = returns_to_go(long[:50], np.array([0]), np.array([50]), 0.99)
    slow = returns_to_go(long, np.array([0]), np.array([4000]), 0.5)[:3]
    assert np.isfinite(slow).all() and np.isclose(fast[0], sum(0.99 ** k * long[k] for k in range(50)))


def test_windows_stay_inside_their_episode_and_mask_padding():
    data = _dataset()
    sampler = SegmentSampler(data, 64, history=2, horizon=4, discount=0.99, seed=3)
    batch = sampler.sample()
    assert batch.obs.shape == (64, 6, 2, 3) and batch.actions.shape == (64, 6, 2, 2) and batch.mask.shape == (64, 6)
    steps = batch.obs[:, :, 0, 0].long()  # [B, L] stored step of each position
    t = steps[:, 2]
    assert (batch.mask[:, 2] == 1).all()
    episode_of = torch.as_tensor(np.repeat(np.arange(data.n_episodes), data.episode_lengths))
    assert (episode_of[steps] == episode_of[t][:, None]).all()  # never another episode's step
    expected_raw = t[:, None] + torch.arange(-2, 4)
    assert ((steps == expected_raw) == batch.mask.bool()).all()  # padding exactly where the window leaves
    assert batch.returns.min() >= 0 and batch.returns.max() <= 1
    assert (batch.obs[:, :, 1, 1] == 1).all()  # agents keep their order


def test_discrete_windows_carry_actions_and_resume_exactly():
    data = _dataset(discrete=True)
    a = SegmentSampler(data, 8, history=0, horizon=3, discount=1.0, seed=0)
    a.sample()
    state = a.state_dict()
    expected = a.sample()
    b = SegmentSampler(data, 8, history=0, horizon=3, discount=1.0, seed=99)
    b.load_state_dict(state)
    got = b.sample()
    assert got.actions.dtype == torch.int64 and got.actions.shape == (8, 3, 2)
    assert torch.equal(got.obs, expected.obs) and torch.equal(got.returns, expected.returns)
    with pytest.raises(DatasetError, match="same dataset"):
        SegmentSampler(_dataset(lengths=(4,)), 8, 0, 3, 1.0).load_state_dict(state)
    with pytest.raises(DatasetError, match="horizon >= 1"):
        SegmentSampler(data, 8, 0, 0, 1.0)


def test_latency_timing_cuts_calls_of_a_slow_sampler_but_not_a_fast_policy():
    import time

    from marlbench import catalog
    from marlbench.protocol import inference_latency_ms
    from marlbench.tasks import get_task

    catalog.load()
    task = get_task("mpe/spread-scripted")

    class Policy:
        device = torch.device("cpu")
        calls = 0

        def __init__(self, seconds):
            self.seconds = seconds

        def act(self, obs, legals=None):
            Policy.calls += 1
            time.sleep(self.seconds)
            return torch.zeros(obs.shape[0], obs.shape[1], 2)

    assert len(inference_latency_ms(Policy(0.0), task, 50, 10, budget_seconds=10.0)) == 50
    Policy.calls = 0
    slow = inference_latency_ms(Policy(0.05), task, 1000, 100, budget_seconds=0.5)
    assert 8 <= len(slow) <= 10 and Policy.calls <= 16  # 0.5 s / 50 ms timed calls, about 0.25 s of warm-up
    assert min(slow) >= 50
    assert len(inference_latency_ms(Policy(0.05), task, 1000, 100, budget_seconds=0.01)) == 5  # never below 5

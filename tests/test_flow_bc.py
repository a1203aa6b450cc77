"""Flow BC: the shared Euler sampler and flow-matching loss (marlbench/flows.py), acting (shapes, box, legal masks,
decentralisation), and learning tests through the real protocol (each can fail)."""
import pytest
import torch
from learning import train_and_score

from marlbench.baselines.flow_bc import FlowBC, FlowBCConfig
from marlbench.config import resolve
from marlbench.data.sampler import Batch
from marlbench.errors import ConfigError, IncompatibleError
from marlbench.flows import endpoint_loss, endpoint_velocity, euler, flow_matching_loss
from marlbench.registry import ALGORITHMS
from marlbench.spec import TaskSpec

MARGIN = 30.0
DISC = TaskSpec(name="t/d", n_agents=3, obs_dim=4, action_kind="discrete", action_dim=5, episode_limit=5)
CONT = TaskSpec(name="t/c", n_agents=2, obs_dim=3, action_kind="continuous", action_dim=2, episode_limit=5,
                action_low=-1.0, action_high=1.0)

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def make(spec, **kw):
    torch.manual_seed(0)
    return FlowBC(spec, FlowBCConfig(hidden_dims=(32, 32), **kw))


def batch(spec, b=16, seed=1):
    g = torch.Generator().manual_seed(seed)
    obs = torch.randn(b, spec.n_agents, spec.obs_dim, generator=g)
    legals = None
    if spec.continuous:
        actions = torch.rand(b, spec.n_agents, spec.action_dim, generator=g) * 2 - 1
    else:
        legals = torch.rand(b, spec.n_agents, spec.action_dim, generator=g) < 0.5
        legals[..., 0] = True  # at least one legal action
        actions = (torch.rand(legals.shape, generator=g) + legals.float()).argmax(-1)  # a legal action
    return Batch(obs=obs, actions=actions, rewards=torch.zeros(b, spec.n_agents), next_obs=torch.randn_like(obs),
                 dones=torch.zeros(b), legals=legals, next_legals=legals)


# -- the sampler and the loss (marlbench/flows.py)
def test_euler_integrates_constant_and_linear_fields_as_computed_by_hand():
    x0 = torch.randn(8, 3, 2, generator=torch.Generator().manual_seed(0))
    c = torch.tensor([0.5, -2.0])
    assert torch.allclose(euler(lambda x, t: c.expand_as(x), x0, 10), x0 + c, atol=1e-6)
    # v = a + b t: exact x0 + a + b/2; left-point Euler with M steps sums b k / M^2 over k < M = b (M - 1) / (2 M),
    # i.e. 0.45 b for M = 10 (t starts at 0, advances by 1/M, the last velocity is taken at t = 0.9)
    a, b = 0.3, 2.0
    for m in (1, 10):
        got = euler(lambda x, t: (a + b * t).expand_as(x), x0, m)
        assert torch.allclose(got, x0 + a + b * (m - 1) / (2 * m), atol=1e-6)
    # v = x: Euler gives (1 + 1/M)^M x0, not e x0
    assert torch.allclose(euler(lambda x, t: x, x0, 10), x0 * 1.1 ** 10, atol=1e-5)


def test_time_is_per_sample_and_broadcasts_against_x():
    seen = []
    euler(lambda x, t: seen.append(t.shape) or torch.zeros_like(x), torch.zeros(4, 3, 2), 3)
    assert seen == [(4, 1, 1)] * 3


def test_flow_matching_loss_is_zero_for_the_exact_conditional_velocity():
    """On the linear path x_t = (1 - t) x0 + t x1 the conditional velocity (x1 - x_t) / (1 - t) equals x1 - x0,
    so its loss vanishes; the velocity pointing the other way, or a constant, does not."""
    torch.manual_seed(0)
    x1 = torch.randn(64, 3, 2)
    assert flow_matching_loss(lambda x, t: (x1 - x) / (1 - t), x1) < 1e-6
    assert flow_matching_loss(lambda x, t: (x - x1) / (1 - t), x1) > 1.0
    assert flow_matching_loss(lambda x, t: x1, x1) > 0.5  # x1 - x0 needs the noise, a constant misses it


def test_policy_loss_uses_one_hot_targets_and_the_exact_velocity_samples_the_data_action(monkeypatch):
    """Discrete x1 = onehot(a); with v = (x1 - x) / (1 - t) the loss is ~0 and 10 Euler steps land exactly on x1
    (the last step has 1 - t = 1/M), so act() returns the dataset action (continuous: clipped to the box)."""
    for spec in (CONT, DISC):
        algo, bt = make(spec), batch(spec)
        x1 = algo.target(bt)
        assert x1.shape == (16, spec.n_agents, spec.action_dim)
        monkeypatch.setattr(algo, "velocity", lambda obs, x, t, x1=x1: (x1 - x) / (1 - t))
        assert algo.loss(bt) < 1e-6
        if spec.continuous:
            assert torch.allclose(algo.act(bt.obs), bt.actions, atol=1e-5)
        else:
            assert torch.equal(algo.act(bt.obs, bt.legals), bt.actions)


def test_endpoint_parametrisation_closed_forms():
    """discrete_flow=endpoint: the loss is the cross-entropy of x1's logits at x_t; the implied velocity
    (softmax - x_t) / (1 - t) is the linear path's conditional velocity when softmax = x1, so Euler lands on the
    predicted distribution (its last step starts at t = 1 - 1/M)."""
    torch.manual_seed(0)
    actions = torch.randint(0, 5, (32, 3))
    logits = torch.randn(5)
    seen = []
    got = endpoint_loss(lambda x, t: seen.append((x, t)) or logits.expand(*x.shape), actions, 5)
    assert torch.allclose(got, torch.nn.functional.cross_entropy(logits.expand(96, 5), actions.flatten()))
    x, t = seen[0]
    assert x.shape == (32, 3, 5) and t.shape == (32, 1, 1)  # one t per sample, on the path to onehot(a)
    x1 = torch.nn.functional.one_hot(actions, 5).float()
    assert torch.allclose(endpoint_velocity(torch.log(x1 + 1e-12), x, t), (x1 - x) / (1 - t), atol=1e-4)
    probs = torch.tensor([0.1, 0.6, 0.1, 0.1, 0.1])
    out = euler(lambda x, t: endpoint_velocity(probs.log().expand_as(x), x, t), torch.randn(4, 3, 5), 10)
    assert torch.allclose(out, probs.expand(4, 3, 5), atol=1e-5)


def test_endpoint_flow_learns_the_decision_faster_than_velocity_regression():
    """The mechanism behind the option (docs/ALGORITHMS.md): on a deterministic 9-way decision of the observation,
    the same network and budget decode the data action far more often when trained by the endpoint cross-entropy
    than by the velocity MSE of App. E (measured 0.98 vs 0.77 at 8k steps; here 600 steps)."""
    spec = TaskSpec(name="t/toy", n_agents=1, obs_dim=10, action_kind="discrete", action_dim=9, episode_limit=1)
    w = torch.randn(10, 9, generator=torch.Generator().manual_seed(0))
    test_obs = torch.randn(2048, 1, 10, generator=torch.Generator().manual_seed(1))
    accuracy = {}
    for kind in ("velocity", "endpoint"):
        torch.manual_seed(0)
        algo = FlowBC(spec, FlowBCConfig(hidden_dims=(64, 64), lr=1e-3, discrete_flow=kind))
        g = torch.Generator().manual_seed(2)
        for _ in range(600):
            obs = torch.randn(128, 1, 10, generator=g)
            algo.update(Batch(obs=obs, actions=(obs @ w).argmax(-1), rewards=torch.zeros(128, 1), next_obs=obs,
                              dones=torch.zeros(128), legals=None, next_legals=None))
        accuracy[kind] = (algo.act(test_obs) == (test_obs @ w).argmax(-1)).float().mean().item()
    assert accuracy["endpoint"] > accuracy["velocity"] + 0.1 and accuracy["endpoint"] > 0.8, accuracy
    with pytest.raises(IncompatibleError, match="discrete_flow=velocity"):
        FlowBC(CONT, FlowBCConfig(discrete_flow="endpoint"))


def test_training_reduces_the_flow_loss_and_fits_a_deterministic_policy():
    torch.manual_seed(0)
    algo = FlowBC(CONT, FlowBCConfig(hidden_dims=(64, 64), lr=3e-3))
    bt = batch(CONT, b=64)
    bt.actions = torch.tanh(bt.obs[..., :2])  # a deterministic function of o_i
    first = algo.update(bt)["flow_loss"].item()
    for _ in range(300):
        last = algo.update(bt)["flow_loss"].item()
    assert last < 0.5 * first
    err = (algo.act(bt.obs) - bt.actions).abs().mean().item()
    assert err < 0.15, err  # an untrained flow is off by about 0.8


# -- acting
def test_act_shapes_box_clipping_and_noise_each_step():
    algo = make(CONT)
    obs = torch.randn(7, 2, 3)
    with torch.no_grad():
        algo.flow.net.out.bias.fill_(100.0)  # every sample far outside the box
    a = algo.act(obs)
    assert a.shape == (7, 2, 2) and a.dtype == torch.float32
    assert torch.equal(a, torch.full_like(a, CONT.action_high))
    algo = make(CONT)
    assert not torch.equal(algo.act(obs), algo.act(obs))  # z redrawn at every call
    zero = make(CONT, eval_noise="zero")
    assert torch.equal(zero.act(obs), zero.act(obs))


def test_discrete_actions_are_legal_even_when_the_flow_prefers_an_illegal_one():
    algo, bt = make(DISC), batch(DISC, b=64)
    with torch.no_grad():
        algo.flow.net.out.bias[..., 4] += 100.0  # the flow's sample points at action 4
    a = algo.act(bt.obs, bt.legals)
    assert a.shape == (64, 3) and a.dtype == torch.long
    assert bt.legals.gather(-1, a.unsqueeze(-1)).all()
    assert (a[bt.legals[..., 4]] == 4).all() and not bt.legals[..., 4].all()  # the mask changed some choices
    assert (algo.act(bt.obs) == 4).all()  # without a mask: every action legal


def test_agents_act_on_their_own_observation_in_one_call_per_euler_step(monkeypatch):
    algo = make(CONT, eval_noise="zero")
    obs = torch.randn(5, 2, 3)
    other = obs.clone()
    other[:, 1] += 3.0
    a, b = algo.act(obs), algo.act(other)
    assert torch.equal(a[:, 0], b[:, 0]) and not torch.allclose(a[:, 1], b[:, 1])
    calls = []
    forward = algo.flow.forward
    monkeypatch.setattr(algo.flow, "forward", lambda x: calls.append(x.shape) or forward(x))
    algo.act(obs)
    assert calls == [(5, 2, 3 + 2 + 1)] * algo.cfg.flow_steps  # obs, x, t: all agents batched, K calls


def test_registration_config_and_update():
    assert ALGORITHMS.get("flow-bc") is FlowBC and FlowBC.inference_complexity == "O(K)"
    assert FlowBC.continuous and FlowBC.discrete and FlowBCConfig().flow_steps == 10
    cfg = resolve(FlowBC, "test", "quick", overrides={"flow_steps": 4, "time_features": 3}).algorithm
    assert cfg.flow_steps == 4 and cfg.hidden_dims == (128, 128, 128)
    with pytest.raises(ConfigError):
        resolve(FlowBC, "test", "quick", overrides={"flow_steps": 0})
    for spec in (CONT, DISC):
        algo = FlowBC(spec, FlowBCConfig(hidden_dims=(16,), time_features=3))
        logged = algo.update(batch(spec))
        assert set(logged) == {"flow_loss"} and torch.isfinite(logged["flow_loss"])


# -- learning through the real protocol (quick profile). Measured seed 0: 54.3 vs random 0.1 (dataset mean 61.8).
@pytest.mark.slow
def test_learns_spread(tmp_path, spread_dataset):
    score, random = train_and_score("flow-bc", "mpe/spread-scripted", tmp_path)
    assert score >= random + MARGIN


# Discrete: at the paper's lr 3e-4 the one-hot flow learns too slowly for the quick budget (seed 0: 21.5 vs random
# 0.7, docs/ALGORITHMS.md); lr 1e-3 measured 54.4. This tests the discrete path end to end, not the default's score.
# (The matrix games' per-agent marginals are uniform, so no decentralised BC beats random there.)
@pytest.mark.slow
def test_learns_discrete_spread_at_higher_lr(tmp_path):
    score, random = train_and_score("flow-bc", "mpe/spread-discrete-scripted", tmp_path, overrides={"lr": 1e-3})
    assert score >= random + MARGIN


# discrete_flow=endpoint at the default lr (measured seeds 0-2: 63.0 / 61.0 / 65.7 vs random 0.7, dataset mean 69.5;
# the velocity default scores 20.4 +- 1.7 there): the option's faster-learned decision, end to end.
@pytest.mark.slow
def test_learns_discrete_spread_with_the_endpoint_flow(tmp_path):
    score, random = train_and_score("flow-bc", "mpe/spread-discrete-scripted", tmp_path,
                                    overrides={"discrete_flow": "endpoint"})
    assert score >= random + MARGIN

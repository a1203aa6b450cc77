"""Mechanism tests of MAC-Flow (each can fail)."""
import torch

from marlbench.config import resolve
from marlbench.data.sampler import Batch
from marlbench.registry import ALGORITHMS
from marlbench.spec import TaskSpec

DISCRETE = TaskSpec(name="test/discrete", n_agents=3, obs_dim=4, action_kind="discrete", action_dim=5,
                    episode_limit=10)
CONTINUOUS = TaskSpec(name="test/continuous", n_agents=2, obs_dim=3, action_kind="continuous", action_dim=2,
                      episode_limit=10)


def make(spec, **overrides):
    torch.manual_seed(0)
    cls = ALGORITHMS.get("macflow")
    cfg = resolve(cls, "test", "quick", overrides={"hidden_dims": [32, 32], **overrides}).algorithm
    return cls(spec, cfg)


def batch(spec, b=16, legal_prob=0.7):
    g = torch.Generator().manual_seed(1)
    obs = torch.randn(b, spec.n_agents, spec.obs_dim, generator=g)
    if spec.continuous:
        actions = torch.rand(b, spec.n_agents, spec.action_dim, generator=g) * 2 - 1
        legals = next_legals = None
    else:
        legals = torch.rand(b, spec.n_agents, spec.action_dim, generator=g) < legal_prob
        legals[..., 0] = True  # at least one legal action
        next_legals = legals.roll(1, 0)
        actions = (torch.rand(legals.shape, generator=g) + legals.float()).argmax(-1)  # a legal action
    return Batch(obs=obs, actions=actions, rewards=torch.randn(b, spec.n_agents, generator=g),
                 next_obs=torch.randn_like(obs), dones=torch.zeros(b), legals=legals, next_legals=next_legals)


def test_discrete_q_guidance_gradient_reaches_the_one_step_policy():
    algo = make(DISCRETE)
    q_loss = algo.losses(batch(DISCRETE))["q_loss"]
    grads = torch.autograd.grad(q_loss, list(algo.actor.parameters()), allow_unused=True)
    assert any(g is not None and g.abs().sum() > 0 for g in grads)
    # and it trains neither the critic nor the flow
    assert all(p.grad is None for p in algo.critic.parameters())


def test_q_guidance_can_be_switched_off():
    algo = make(DISCRETE, q_guidance=False)
    assert "q_loss" not in algo.losses(batch(DISCRETE))


def test_discrete_actions_respect_legal_masks():
    algo = make(DISCRETE)
    bt = batch(DISCRETE, b=256, legal_prob=0.4)
    for deploy in ("onestep", "flow"):
        algo.cfg.deploy = deploy
        actions = algo.act(bt.obs, bt.legals)
        assert actions.shape == (256, 3) and bt.legals.gather(-1, actions.unsqueeze(-1)).all()


def test_discrete_update_runs_and_returns_finite_losses():
    algo = make(DISCRETE)
    out = algo.update(batch(DISCRETE))
    assert {"flow_loss", "critic_loss", "distill_loss", "q_loss"} <= set(out)
    assert all(torch.isfinite(v) for v in out.values())


def test_endpoint_discrete_flow_trains_on_cross_entropy_and_samples_legal_actions():
    """discrete_flow=endpoint (joint and individual flows, and MA-FQL through MAC-Flow's config): the flow loss is the
    cross-entropy of x1's logits, the Euler chain lands on the predicted distribution, decoded legally."""
    import pytest

    from marlbench.errors import IncompatibleError
    from marlbench.flows import endpoint_velocity

    bt = batch(DISCRETE, b=64, legal_prob=0.4)
    for flow in ("joint", "individual"):
        algo = make(DISCRETE, discrete_flow="endpoint", flow=flow)
        torch.manual_seed(3)
        loss = algo.losses(bt)["flow_loss"]
        assert 0.5 * torch.log(torch.tensor(5.0)) < loss < 3 * torch.log(torch.tensor(5.0))  # CE near log(nA)
        x, t = torch.randn(64, 3, 5), torch.full((64, 1, 1), 0.3)
        assert torch.allclose(algo.velocity(bt.obs, x, t), endpoint_velocity(algo.field(bt.obs, x, t), x, t))
        sample = algo.flow_actions(bt.obs, torch.randn(64, 3, 5))
        assert torch.allclose(sample.sum(-1), torch.ones(64, 3), atol=1e-5) and (sample >= 0).all()  # a softmax
        algo.cfg.deploy = "flow"
        actions = algo.act(bt.obs, bt.legals)
        assert bt.legals.gather(-1, actions.unsqueeze(-1)).all()
        assert all(torch.isfinite(v) for v in algo.update(bt).values())
    with pytest.raises(IncompatibleError, match="discrete_flow=velocity"):
        make(CONTINUOUS, discrete_flow="endpoint")


def test_continuous_one_step_policy_is_decentralised():
    """Agent i's action must not change when another agent's observation changes (same noise)."""
    algo = make(CONTINUOUS)
    obs = torch.randn(8, 2, 3)
    noise = torch.randn(8, 2, 2)
    moved = obs.clone()
    moved[:, 1] += 1.0
    a, b = algo.one_step(obs, noise), algo.one_step(moved, noise)
    assert torch.allclose(a[:, 0], b[:, 0]) and not torch.allclose(a[:, 1], b[:, 1])


def test_distillation_uses_the_same_noise_as_the_teacher(monkeypatch):
    """With a one-step policy equal to the flow map, the distillation loss is zero only under shared noise."""
    algo = make(CONTINUOUS, next_actions="flow")
    monkeypatch.setattr(algo, "one_step", lambda obs, noise: algo.flow_actions(obs, noise))
    assert algo.losses(batch(CONTINUOUS))["distill_loss"] < 1e-10


def test_centralised_critic_sees_the_joint_action_and_guides_the_policy():
    """Fig. 8 ablation: one Q(o, a) over all agents; its Q term still reaches every agent's one-step policy."""
    for spec in (CONTINUOUS, DISCRETE):
        algo = make(spec, critic="centralised")
        bt = batch(spec)
        qs = algo.q_members(algo.critic, bt.obs, bt.actions)
        assert qs.shape == (2, 16, spec.n_agents) and torch.equal(qs[..., 0], qs[..., -1])
        other = bt.actions.clone()
        other[:, -1] = other[:, 0] if spec.continuous else (other[:, -1] + 1) % spec.action_dim
        assert not torch.allclose(algo.q_members(algo.critic, bt.obs, other)[..., 0], qs[..., 0])  # not IGM
        q_loss = algo.losses(bt)["q_loss"]
        grads = torch.autograd.grad(q_loss, list(algo.actor.parameters()), allow_unused=True)
        assert any(g is not None and g.abs().sum() > 0 for g in grads)
        assert all(torch.isfinite(v) for v in algo.update(bt).values())


def test_centralised_critic_refuses_individual_td_targets():
    import pytest

    from marlbench.errors import ConfigError

    with pytest.raises(ConfigError, match="td_target=mixed"):
        make(CONTINUOUS, critic="centralised", td_target="individual")


def test_diagnostics_measure_whether_the_q_term_is_alive():
    """The gradient ratio distillation : Q on the one-step policies is what the logs show; normalising the Q term
    by mean |Q_tot| divides its gradient by that scale (the audit's silenced Q term), so with a large Q offset the
    normalised ratio is far larger than the raw one. Q(pi) - Q(data) and Q(flow) - Q(data) are reported."""
    b = batch(CONTINUOUS, b=256)
    ratios = {}
    for normalise in (True, False):
        algo = make(CONTINUOUS, normalize_q_loss=normalise)
        with torch.no_grad():  # Q values near 1000, as on Spread with gamma 0.995 (action-dependent part small)
            algo.critic.net.out.bias.add_(1000.0)
        diag = algo.diagnostics(b)
        assert {"grad_ratio_distill_q", "grad_norm_distill", "grad_norm_q", "q_pi_minus_q_data",
                "q_flow_minus_q_data", "q_data"} <= set(diag)
        assert all(torch.isfinite(torch.tensor(v)) for v in diag.values())
        ratios[normalise] = diag["grad_ratio_distill_q"]
    assert ratios[True] > 100 * ratios[False]
    assert "grad_ratio_distill_q" not in make(CONTINUOUS, q_guidance=False).diagnostics(b)
    assert "q_pi_minus_q_data" in make(DISCRETE).diagnostics(batch(DISCRETE))


def test_evaluation_noise_options():
    """eval_noise: step redraws z at every call (FQL), zero is deterministic, episode keeps one z per episode
    until start_episodes (reference code)."""
    obs = torch.randn(4, CONTINUOUS.n_agents, CONTINUOUS.obs_dim)
    step, zero, episode = (make(CONTINUOUS, eval_noise=m) for m in ("step", "zero", "episode"))
    assert not torch.equal(step.act(obs), step.act(obs))
    assert torch.equal(zero.act(obs), zero.act(obs))
    assert torch.equal(zero.act(obs), zero.clip(zero.one_step(obs, torch.zeros(4, 2, 2))))
    episode.start_episodes(4)
    first = episode.act(obs)
    assert torch.equal(first, episode.act(obs))  # same z within the episodes
    episode.start_episodes(4)
    assert not torch.equal(first, episode.act(obs))  # new episodes, new z

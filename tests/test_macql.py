"""MACQL: the conservative penalty's defining effect, the discrete target's legality, and learning tests."""
import pytest
import torch
from learning import train_and_score

from marlbench.baselines.macql import MACQL, MACQLConfig
from marlbench.data.sampler import Batch
from marlbench.spec import TaskSpec

MARGIN = 30.0
DISC = TaskSpec(name="t/d", n_agents=2, obs_dim=3, action_kind="discrete", action_dim=4, episode_limit=5)
CONT = TaskSpec(name="t/c", n_agents=2, obs_dim=3, action_kind="continuous", action_dim=2, episode_limit=5)


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def fixed_batch(spec, b=32, seed=0):
    """Data actions concentrated on one action (discrete 0; continuous near the origin), reward 0 (every true
    value is 0), no terminals."""
    g = torch.Generator().manual_seed(seed)
    n = spec.n_agents
    obs = torch.randn(b, n, spec.obs_dim, generator=g)
    if spec.continuous:
        actions = 0.05 * torch.randn(b, n, spec.action_dim, generator=g)
    else:
        actions = torch.zeros(b, n, dtype=torch.long)
    return Batch(obs=obs, actions=actions, rewards=torch.zeros(b, n), next_obs=obs.roll(1, 0), dones=torch.zeros(b))


def ood_gap(spec, weight, steps=300):
    """mean over states and agents of max_{OOD a} Q_i(o_i, a) - Q_i(o_i, a_data) after training on a fixed batch.

    Discrete critics start optimistic about the unseen actions (+5, extrapolation error); plain TD never corrects
    them and even bootstraps the data action's value from them, CQL pushes them below the data action."""
    torch.manual_seed(0)
    cfg = MACQLConfig(hidden_dims=(64, 64), cql_weight=weight, gamma=0.9, target_update_period=20)
    algo = MACQL(spec, cfg)
    if not spec.continuous:
        with torch.no_grad():
            algo.q["critic"].net.net.out.bias[..., 1:] += 5.0
            algo.target_q.load_state_dict(algo.q.state_dict())
    batch = fixed_batch(spec)
    for _ in range(steps):
        algo.update(batch)
    critic = algo.q["critic"]
    with torch.no_grad():
        if not spec.continuous:
            q = critic.all_actions(batch.obs).mean(0)  # [B, N, nA]
            return (q[..., 1:].max(-1).values - q[..., 0]).mean().item()
        corners = torch.tensor([[1.0, 1.0], [1.0, -1.0], [-1.0, 1.0], [-1.0, -1.0]])  # far from the data
        obs = batch.obs.expand(4, *batch.obs.shape)
        q_ood = critic(obs, corners[:, None, None, :].expand(4, *batch.actions.shape)).mean(0).max(0).values
        return (q_ood - critic(batch.obs, batch.actions).mean(0)).mean().item()


@pytest.mark.parametrize("spec", [DISC, CONT], ids=["discrete", "continuous"])
def test_penalty_raises_ood_q_less_than_plain_td(spec):
    plain, conservative = ood_gap(spec, 0.0), ood_gap(spec, 3.0)
    print(f"{spec.action_kind}: Q(OOD) - Q(data) plain TD {plain:.2f}, CQL {conservative:.2f}")
    assert conservative < plain - 0.5
    assert conservative < 0.0  # out-of-distribution actions end below the data action


def test_discrete_target_and_acting_respect_legal_actions():
    torch.manual_seed(0)
    algo = MACQL(DISC, MACQLConfig(hidden_dims=(32,)))
    with torch.no_grad():  # make the illegal action 3 by far the most valuable
        algo.q["critic"].net.net.out.bias[..., 3] += 100.0
        algo.target_q.load_state_dict(algo.q.state_dict())
    batch = fixed_batch(DISC, b=8)
    legals = torch.ones(8, 2, 4, dtype=torch.bool)
    legals[..., 3] = False
    batch.legals = batch.next_legals = legals
    assert (algo.act(batch.obs, legals) != 3).all()
    losses = algo.losses(batch)
    assert losses["td_loss"].item() < 100.0  # an illegal next action would put ~100 * gamma into every target
    assert losses["cql_penalty"].item() < 5.0  # and its Q would dominate the log-sum-exp


def test_auto_entropy_lowers_the_temperature_above_the_target_entropy():
    """entropy=auto (the reference's SAC temperature): a fresh policy is far more random than the target -|A|, so
    one step must lower alpha (a sign error would raise it)."""
    torch.manual_seed(0)
    algo = MACQL(CONT, MACQLConfig(hidden_dims=(32,), entropy="auto"))
    _, logp = algo.actor.sample(torch.randn(64, 2, 3))
    assert logp.mean().item() < CONT.action_dim  # entropy above the target
    algo.update(fixed_batch(CONT))
    assert algo.log_alpha.item() < 0.0


def test_warm_start_trains_the_actor_by_bc_alone_for_the_configured_steps():
    """bc_warmup_steps=3 (the reference's policy_eval_start): for updates 1-3 the actor's gradient is that of
    -log pi(a_data) (+ the regulariser and entropy) and does not depend on the critic; from update 4 it does."""
    def actor_grads(critic_scale, steps_before):
        torch.manual_seed(0)
        algo = MACQL(CONT, MACQLConfig(hidden_dims=(32,), bc_warmup_steps=3, entropy="none", policy_reg=0.0))
        batch = fixed_batch(CONT)
        with torch.no_grad():
            algo.q["critic"].net.net.out.weight.mul_(critic_scale)
        algo.steps.fill_(steps_before)
        torch.manual_seed(1)
        loss = algo.losses(batch)["actor_loss"]
        return torch.autograd.grad(loss, list(algo.actor.parameters()), allow_unused=True), algo, batch

    for step in range(3):  # updates 1..3: BC only, the same gradient whatever the critic
        (g1, algo, batch), (g2, _, _) = actor_grads(1.0, step), actor_grads(25.0, step)
        assert all(torch.allclose(a, b) for a, b in zip(g1, g2) if a is not None)
        torch.manual_seed(1)
        bc = -algo.actor.log_prob(batch.obs, batch.actions).mean()
        g_bc = torch.autograd.grad(bc, list(algo.actor.parameters()), allow_unused=True)
        assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(g1, g_bc) if a is not None and b is not None)
    (g1, _, _), (g2, _, _) = actor_grads(1.0, 3), actor_grads(25.0, 3)  # update 4: Q drives the actor
    assert not all(torch.allclose(a, b) for a, b in zip(g1, g2) if a is not None)


# 4000 of the quick profile's 8000 steps keep the suite's slowest test short (measured seed 0: 54.5 at 4000 steps,
# 80.5 at 8000; random 0.1).
@pytest.mark.slow
def test_learns_spread(tmp_path, spread_dataset):
    score, random = train_and_score("macql", "mpe/spread-scripted", tmp_path, steps=4000)
    assert score >= random + MARGIN


@pytest.mark.slow
def test_learns_coordination_game(tmp_path):
    score, random = train_and_score("macql", "games/coordination", tmp_path)
    assert score >= random + MARGIN

"""MATD3BC: its lambda normalisation and a learning test (each can fail)."""
import pytest
import torch
from learning import train_and_score

from marlbench.config import resolve
from marlbench.data.sampler import Batch
from marlbench.registry import ALGORITHMS
from marlbench.spec import TaskSpec

SPEC = TaskSpec(name="test/continuous", n_agents=3, obs_dim=4, action_kind="continuous", action_dim=2,
                episode_limit=10)


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def make(**overrides):
    torch.manual_seed(0)
    cls = ALGORITHMS.get("matd3bc")
    return cls(SPEC, resolve(cls, "test", "quick", overrides={"hidden_dims": [32, 32], **overrides}).algorithm)


def batch(b=32):
    g = torch.Generator().manual_seed(1)
    obs = torch.randn(b, SPEC.n_agents, SPEC.obs_dim, generator=g)
    return Batch(obs=obs, actions=torch.rand(b, SPEC.n_agents, SPEC.action_dim, generator=g) * 2 - 1,
                 rewards=torch.randn(b, SPEC.n_agents, generator=g), next_obs=torch.randn_like(obs),
                 dones=torch.zeros(b))


def q_term_grads(algo, bt):
    q_loss = algo.actor_losses(bt)["q_loss"]
    return torch.cat([g.flatten() for g in torch.autograd.grad(q_loss, list(algo.actor.parameters()))])


def scale_critic(algo, c):
    """Q_tot -> c * Q_tot: every Q_i (linear output layer) and, for the linear mixer, its bias b(s)."""
    with torch.no_grad():
        layers = [algo.critic.net.net.out] + ([algo.mixer.bias[-1]] if algo.cfg.mixer == "linear" else [])
        for layer in layers:
            layer.weight.mul_(c)
            layer.bias.mul_(c)


@pytest.mark.parametrize("mixer", ["mean", "linear"])
def test_lambda_normalisation_makes_the_q_term_invariant_to_the_critic_scale(mixer):
    algo, bt = make(mixer=mixer), batch()
    before = q_term_grads(algo, bt)
    lam = algo.actor_losses(bt)["lambda"]
    scale_critic(algo, 50.0)
    after = q_term_grads(algo, bt)
    assert before.norm() > 0
    assert torch.allclose(after, before, rtol=1e-4, atol=1e-7)
    # lambda itself absorbed the scale: lambda = 2.5 / mean|Q1_tot|
    assert algo.actor_losses(bt)["lambda"] == pytest.approx(float(lam) / 50.0, rel=1e-4)
    # the un-normalised term -mean Q1_tot (= q_loss / lambda) scales with the critic: the normalisation removes it
    def raw_norm():
        losses = algo.actor_losses(bt)
        return float(torch.autograd.grad(losses["q_loss"] / losses["lambda"], list(algo.actor.parameters()))[0].norm())
    big = raw_norm()
    scale_critic(algo, 0.1)
    assert big == pytest.approx(10.0 * raw_norm(), rel=1e-3)

def test_actor_and_targets_update_every_second_step_only():
    algo, bt = make(), batch()
    actor0 = [p.clone() for p in algo.actor.parameters()]
    target0 = [p.clone() for p in algo.target_critic.parameters()]
    out = algo.update(bt)
    assert "q_loss" not in out and all(torch.equal(a, b) for a, b in zip(actor0, algo.actor.parameters()))
    assert all(torch.equal(a, b) for a, b in zip(target0, algo.target_critic.parameters()))
    out = algo.update(bt)
    assert "q_loss" in out and not all(torch.equal(a, b) for a, b in zip(actor0, algo.actor.parameters()))
    assert not all(torch.equal(a, b) for a, b in zip(target0, algo.target_critic.parameters()))


@pytest.mark.slow
def test_learns_spread_well_above_random(tmp_path, spread_dataset):
    score, random = train_and_score("matd3bc", "mpe/spread-scripted", tmp_path)
    assert score >= random + 30.0

"""The shared baseline components: mixers, heads and RL mechanisms (each test can fail)."""
import math

import pytest
import torch

from marlbench.config import AlgoConfig
from marlbench.heads import ActionBox, AgentQ, CategoricalActor, GaussianActor
from marlbench.mixers import MIXERS, Mixer
from marlbench.rl import cem_search, cql_penalty_discrete, td_target
from marlbench.spec import TaskSpec

CONT = TaskSpec(name="t/c", n_agents=3, obs_dim=4, action_kind="continuous", action_dim=2, episode_limit=5)
DISC = TaskSpec(name="t/d", n_agents=3, obs_dim=4, action_kind="discrete", action_dim=5, episode_limit=5)
CFG = AlgoConfig(hidden_dims=(32, 32))


@pytest.mark.parametrize("kind", MIXERS)
def test_mixers_are_monotonic_in_every_agent(kind):
    torch.manual_seed(0)
    mixer = Mixer(kind, 3, state_dim=6, embed_dim=16)
    qs, state = torch.randn(2, 8, 3, requires_grad=True), torch.randn(8, 6)
    out = mixer(qs, state)
    assert out.shape == (2, 8)
    (grad,) = torch.autograd.grad(out.sum(), qs)
    assert (grad >= 0).all() and (grad > 0).any()


def test_gaussian_log_prob_matches_sampling_density():
    torch.manual_seed(0)
    for squash in (True, False):
        actor = GaussianActor(CONT, CFG, squash=squash)
        obs = torch.randn(16, 3, 4)
        a, logp = actor.sample(obs)
        assert a.shape == (16, 3, 2) and logp.shape == (16, 3) and a.abs().max() <= 1
        if squash:  # the density of an interior sample is recovered from the action alone
            assert torch.allclose(actor.log_prob(obs, a), logp, atol=1e-3)


def test_uniform_squashed_density_integrates_to_one():
    """Monte Carlo: E_{a ~ U(box)}[pi(a)] * volume = 1 for a squashed Gaussian (checks the tanh correction)."""
    torch.manual_seed(0)
    spec = TaskSpec(name="t/1", n_agents=1, obs_dim=1, action_kind="continuous", action_dim=1, episode_limit=1)
    actor = GaussianActor(spec, CFG, squash=True)
    with torch.no_grad():  # mu = 0.3, sigma = e^-1: the density's mass is inside float32's atanh range
        actor.net.net.out.weight.zero_()
        actor.net.net.out.bias.copy_(torch.tensor([0.3, -1.0]))
    box = ActionBox(spec)
    a = box.uniform((200000, 1, 1))
    density = actor.log_prob(torch.zeros(200000, 1, 1), a).exp().mean() * math.exp(box.log_volume())
    assert density.item() == pytest.approx(1.0, abs=0.03)


def test_discrete_heads_respect_legal_masks():
    torch.manual_seed(0)
    legals = torch.rand(32, 3, 5) < 0.5
    legals[..., 2] = True
    actor = CategoricalActor(DISC, CFG)
    obs = torch.randn(32, 3, 4)
    assert legals.gather(-1, actor.mode(obs, legals).unsqueeze(-1)).all()
    assert (actor.probs(obs, legals)[~legals] < 1e-6).all()
    q = AgentQ(DISC, CFG)
    assert q(obs, torch.zeros(32, 3, dtype=torch.long)).shape == (2, 32, 3)
    assert torch.allclose(q(obs, torch.nn.functional.one_hot(torch.ones(32, 3, dtype=torch.long), 5).float()),
                          q(obs, torch.ones(32, 3, dtype=torch.long)))


def test_cql_penalty_is_zero_only_when_data_action_dominates():
    q_all = torch.tensor([[0.0, 10.0, 0.0]])
    assert cql_penalty_discrete(q_all, q_all[:, 1]).item() == pytest.approx(math.log(1 + 2 * math.exp(-10)), abs=1e-6)
    assert cql_penalty_discrete(q_all, q_all[:, 0]).item() > 9.9
    legals = torch.tensor([[True, False, True]])  # the high-Q action is illegal: it must not count
    assert cql_penalty_discrete(q_all, q_all[:, 0], legals).item() == pytest.approx(math.log(2), abs=1e-6)


def test_cem_search_finds_a_better_action_than_its_start():
    torch.manual_seed(0)
    box = ActionBox(CONT)
    target = torch.tensor([0.7, -0.4])
    q_fn = lambda a: -(a - target).square().sum(-1)
    start = torch.zeros(8, 3, 2)
    best, best_q = cem_search(q_fn, start, 0.5, box, iterations=3, samples=64, elites=8)
    assert (best_q > q_fn(start)).all() and (best - target).norm(dim=-1).max() < 0.3


def test_td_target_masks_terminals_for_team_and_agent_values():
    r, d = torch.ones(2), torch.tensor([0.0, 1.0])
    assert torch.equal(td_target(r, d, torch.full((2,), 10.0), 0.5), torch.tensor([6.0, 1.0]))
    per_agent = td_target(torch.ones(2, 3), d, torch.full((2, 3), 10.0), 0.5)
    assert torch.equal(per_agent[:, 0], torch.tensor([6.0, 1.0]))

"""MABCQ: the BC filter excludes actions below the threshold (acting and targets), the perturbation stays within
phi, and learning tests."""
import math

import pytest
import torch
from learning import train_and_score

from marlbench.baselines.mabcq import MABCQ, MABCQConfig
from marlbench.data.sampler import Batch
from marlbench.spec import TaskSpec

MARGIN = 30.0
DISC = TaskSpec(name="t/d", n_agents=2, obs_dim=3, action_kind="discrete", action_dim=4, episode_limit=5)
CONT = TaskSpec(name="t/c", n_agents=2, obs_dim=3, action_kind="continuous", action_dim=2, episode_limit=5)
# G(a|o) with ratios to the most likely action 1.0, 0.35, 0.5, 0.2; Q ranks action 1 first, then 3, then 2
G_PROBS = torch.tensor([1.0, 0.35, 0.5, 0.2])
Q_VALUES = torch.tensor([0.0, 100.0, 10.0, 50.0])


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def constructed(threshold):
    """A discrete MABCQ whose G and Q (online and target) are the constants above for every observation."""
    torch.manual_seed(0)
    algo = MABCQ(DISC, MABCQConfig(hidden_dims=(16,), threshold=threshold))
    with torch.no_grad():
        for head, values in ((algo.generator.net.net.out, G_PROBS.log()), (algo.q["critic"].net.net.out, Q_VALUES)):
            head.weight.zero_()
            head.bias.copy_(values.expand_as(head.bias))
        algo.target_q.load_state_dict(algo.q.state_dict())
    return algo


def batch_of(b=8, legals=None):
    obs = torch.randn(b, 2, 3)
    return Batch(obs=obs, actions=torch.zeros(b, 2, dtype=torch.long), rewards=torch.zeros(b, 2),
                 next_obs=torch.randn(b, 2, 3), dones=torch.zeros(b), legals=legals, next_legals=legals)


def test_filter_excludes_high_q_actions_below_the_threshold():
    algo, batch = constructed(0.4), batch_of()
    allowed = algo.allowed(batch.obs, None)
    assert allowed[..., [0, 2]].all() and not allowed[..., [1, 3]].any()  # ratio 0.5 >= 0.4 passes, 0.35 does not
    assert (algo.act(batch.obs) == 2).all()  # the best ALLOWED action, not the best-Q action 1
    # the TD target bootstraps from action 2 as well: y = gamma * Q(o', 2) with zero reward; Q(o, a_data=0) = 0
    loss = algo.discrete_losses(batch)["critic_loss"].item()
    assert loss == pytest.approx((algo.cfg.gamma * Q_VALUES[2].item()) ** 2, rel=1e-4)
    # a lower threshold admits action 1 (ratio 0.35): the filter, not Q, is what excluded it
    assert (constructed(0.3).act(batch.obs) == 1).all()


def test_filter_keeps_only_legal_actions():
    legals = torch.ones(8, 2, 4, dtype=torch.bool)
    legals[..., 0] = False  # G's most likely action is illegal: ratios are taken among legal actions (max 0.5)
    algo, batch = constructed(0.4), batch_of(legals=legals)
    batch.actions[:] = 2
    assert (algo.act(batch.obs, legals) == 1).all()  # 0.35 / 0.5 = 0.7 >= 0.4 now, and Q(1) is the highest
    assert not algo.allowed(batch.obs, legals)[..., 0].any()


def test_perturbation_stays_within_phi_of_the_decoded_action():
    torch.manual_seed(0)
    algo = MABCQ(CONT, MABCQConfig(hidden_dims=(16,)))
    with torch.no_grad():
        algo.perturb.net.out.bias.fill_(50.0)  # saturate tanh: the largest possible perturbation
        obs, actions = torch.randn(64, 2, 3), torch.rand(64, 2, 2) * 1.8 - 0.9
        shift = algo.perturbed(algo.perturb, obs, actions) - actions
    assert shift.max().item() == pytest.approx(algo.cfg.phi, abs=1e-5) and shift.min().item() > 0
    act = algo.act(obs)
    assert act.shape == (64, 2, 2) and act.abs().max() <= 1.0 and math.isfinite(act.sum().item())


# 3000 of the quick profile's 8000 steps (measured seed 0, one thread: 42.0 at 2000 steps, 64.1 at 3000, 67.7 at
# 4000, 80.1 at 8000; random 0.1, so 34.0 points above the threshold, 37.6 at the former 4000 steps).
@pytest.mark.slow
def test_learns_spread(tmp_path, spread_dataset):
    score, random = train_and_score("mabcq", "mpe/spread-scripted", tmp_path, steps=3000)
    assert score >= random + MARGIN


@pytest.mark.slow
def test_learns_coordination_game(tmp_path):
    score, random = train_and_score("mabcq", "games/coordination", tmp_path)
    assert score >= random + MARGIN

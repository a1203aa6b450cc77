"""The baselines' mechanism measurements (``diagnostics``): every value-based baseline reports Q(pi) - Q(data) under
its own critic and the strength of the term its tuned coefficient sets, and that strength moves with the
coefficient exactly as the loss says it should (each test can fail)."""
import dataclasses

import pytest
import torch
from test_macflow import CONTINUOUS, DISCRETE, batch

from marlbench.config import resolve
from marlbench.registry import ALGORITHMS
from marlbench.rl import value_gap

# algorithm -> (keys on continuous actions, keys on discrete actions or None where it has no discrete form)
KEYS = {
    "matd3bc": ({"grad_ratio_bc_q", "grad_norm_bc", "grad_norm_q"}, None),
    "macql": ({"grad_ratio_cql_td", "grad_norm_cql", "grad_norm_td"}, {"grad_ratio_cql_td"}),
    "omar": ({"grad_ratio_cql_td", "grad_norm_cql", "grad_norm_td"}, None),
    "mabcq": ({"perturbation"}, {"allowed_fraction"}),
    "icq": ({"weight_ess"}, {"weight_ess"}),
    "omiga": ({"weight_ess"}, {"weight_ess"}),
}


def make(name, spec, **overrides):
    torch.manual_seed(0)
    cls = ALGORITHMS.get(name)
    cfg = resolve(cls, "test", "quick", overrides={"hidden_dims": [32, 32], **overrides}).algorithm
    return cls(spec, cfg)


def full_batch(spec):
    b = batch(spec, b=64)
    return dataclasses.replace(b, next_actions=b.actions.roll(1, 0))  # ICQ's in-sample target needs them


@pytest.mark.parametrize("name", sorted(KEYS))
def test_every_value_based_baseline_reports_its_mechanism(name):
    for spec, keys in zip((CONTINUOUS, DISCRETE), KEYS[name]):
        if keys is None:
            continue
        diag = make(name, spec).diagnostics(full_batch(spec))
        assert keys | {"q_data", "q_pi_minus_q_data"} <= set(diag), (name, spec.action_kind, sorted(diag))
        assert all(torch.isfinite(torch.tensor(v)) for v in diag.values()), diag
        for key in ("weight_ess", "allowed_fraction", "perturbation"):
            if key in diag:
                assert 0.0 < diag[key] <= 1.0, (key, diag[key])


@pytest.mark.parametrize("name, key, ratio", [("matd3bc", "alpha", "grad_ratio_bc_q"),
                                               ("macql", "cql_weight", "grad_ratio_cql_td"),
                                               ("omar", "cql_alpha", "grad_ratio_cql_td")])
def test_the_tuned_coefficient_scales_its_gradient_ratio(name, key, ratio):
    """The same weights and batch with the coefficient 10x larger: the Q term's gradient (MATD3BC's lambda Q) or
    the conservative term's (CQL) is 10x larger, so bc : q falls 10x and cql : td rises 10x."""
    b = full_batch(CONTINUOUS)
    low, high = (make(name, CONTINUOUS, **{key: v}).diagnostics(b)[ratio] for v in (1.0, 10.0))
    expected = 0.1 if ratio == "grad_ratio_bc_q" else 10.0
    assert high / low == pytest.approx(expected, rel=1e-4)


def test_mabcq_threshold_sets_the_allowed_fraction():
    """threshold 0 lets every legal action through; threshold 1 only the generator's most likely one."""
    b = full_batch(DISCRETE)
    every = make("mabcq", DISCRETE, threshold=0.0).diagnostics(b)["allowed_fraction"]
    only_max = make("mabcq", DISCRETE, threshold=1.0).diagnostics(b)["allowed_fraction"]
    legal = b.legals.sum(-1).float()
    assert every == pytest.approx(1.0)
    assert only_max == pytest.approx((1 / legal).mean().item(), rel=1e-5)


def test_value_gap_is_the_mean_difference_of_the_critic_values():
    data, policy = torch.zeros(5, 2, 3), torch.ones(5, 2, 3)
    gap = value_gap(lambda a: 2.0 * a.sum((-1, -2)) + 7.0, data, policy)
    assert gap["q_data"].item() == 7.0 and gap["q_pi_minus_q_data"].item() == 12.0

import math

import numpy as np
import pytest
import torch

from marlbench.analysis.diagnostics import (
    coupled_w2_bound,
    lipschitz_estimate,
    lipschitz_gradient_estimate,
    mutual_information_discrete,
    value_gap,
    w2_discrete,
    w2_empirical,
)

BINARY_PAIRS = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=float)


def test_w2_identical_samples_is_zero():
    x = np.random.default_rng(0).normal(size=(50, 3))
    assert w2_empirical(x, x.copy()) == pytest.approx(0.0, abs=1e-9)
    # a permutation of the same cloud is the same empirical measure
    assert w2_empirical(x, x[::-1]) == pytest.approx(0.0, abs=1e-9)


def test_w2_point_masses_is_euclidean_distance():
    assert w2_empirical(np.array([[0.0, 0.0]]), np.array([[3.0, 4.0]])) == pytest.approx(5.0)
    # several copies of each point, unequal counts
    assert w2_empirical(np.zeros((3, 2)), np.tile([[3.0, 4.0]], (5, 1))) == pytest.approx(5.0)


def test_w2_1d_shift():
    x = np.random.default_rng(1).normal(size=(40, 1))
    assert w2_empirical(x, x + 0.7) == pytest.approx(0.7, rel=1e-9)
    # 1-D inputs are read as points on the line
    assert w2_empirical(x[:, 0], x[:, 0] - 2.0) == pytest.approx(2.0, rel=1e-9)


def test_w2_accepts_torch_and_validates_shapes():
    x = torch.randn(10, 2, requires_grad=True)
    assert w2_empirical(x, x + 1.0) == pytest.approx(math.sqrt(2.0), rel=1e-5)
    with pytest.raises(ValueError, match="same dimension"):
        w2_empirical(np.zeros((4, 2)), np.zeros((4, 3)))
    with pytest.raises(ValueError, match=r"\[n, d\]"):
        w2_empirical(np.zeros((2, 2, 2)), np.zeros((2, 2)))
    with pytest.raises(ValueError, match="no samples"):
        w2_empirical(np.zeros((0, 2)), np.zeros((2, 2)))


def test_w2_discrete_binary_game():
    p = np.array([0.4, 0.1, 0.1, 0.4])
    assert w2_discrete(p, p, BINARY_PAIRS) == pytest.approx(0.0, abs=1e-12)
    mass_00 = np.array([1.0, 0.0, 0.0, 0.0])
    mass_11 = np.array([0.0, 0.0, 0.0, 1.0])
    assert w2_discrete(mass_00, mass_11, BINARY_PAIRS) == pytest.approx(math.sqrt(2.0))
    # the coordinated joint policy {(0,0), (1,1)} vs its product of marginals (uniform over 4):
    # move 1/4 from each diagonal point to its nearest off-diagonal point at distance 1 -> W2 = sqrt(1/2)
    coordinated = np.array([0.5, 0.0, 0.0, 0.5])
    assert w2_discrete(coordinated, np.full(4, 0.25), BINARY_PAIRS) == pytest.approx(math.sqrt(0.5))
    with pytest.raises(ValueError, match="sum to 1"):
        w2_discrete(np.array([0.5, 0.5, 0.5, 0.0]), p, BINARY_PAIRS)
    with pytest.raises(ValueError, match="shape"):
        w2_discrete(np.array([0.5, 0.5]), p, BINARY_PAIRS)


def test_coupled_bound_dominates_w2():
    rng = np.random.default_rng(2)
    z = rng.normal(size=(200, 2))
    a_joint = z
    a_fact = -z  # same distribution (symmetric), but the same-noise pairing is far apart
    bound = coupled_w2_bound(a_joint, a_fact)
    w2 = w2_empirical(a_joint, a_fact)
    assert bound == pytest.approx(2.0 * math.sqrt(np.mean(np.sum(z**2, axis=1))))
    assert bound > w2 + 1.0
    # a generic pair: the same-noise pairing is one admissible coupling, so it can only be worse than the optimum
    a_fact2 = np.tanh(z) + 0.1 * rng.normal(size=z.shape)
    assert coupled_w2_bound(z, a_fact2) >= w2_empirical(z, a_fact2) - 1e-9
    with pytest.raises(ValueError, match="same shape"):
        coupled_w2_bound(z, z[:10])


def test_mutual_information():
    rng = np.random.default_rng(3)
    n = 200_000
    independent = mutual_information_discrete(rng.integers(0, 3, n), rng.integers(0, 3, n), n_actions=3)
    assert independent == pytest.approx(0.0, abs=1e-3)
    a = rng.integers(0, 2, n)
    assert mutual_information_discrete(a, a, n_actions=2) == pytest.approx(math.log(2.0), abs=1e-3)
    assert mutual_information_discrete(a, 1 - a, n_actions=2) == pytest.approx(math.log(2.0), abs=1e-3)
    with pytest.raises(ValueError, match="integers"):
        mutual_information_discrete(np.array([0, 2]), np.array([0, 1]), n_actions=2)


def test_value_gap():
    assert value_gap(np.array([1.0, 3.0]), np.array([0.0, 2.0, 4.0, 6.0])) == pytest.approx(1.0)  # means 2 vs 3
    assert value_gap(torch.tensor([2.0]), torch.tensor([5.0])) == pytest.approx(3.0)


def test_lipschitz_of_linear_q_is_weight_norm():
    w = np.array([3.0, -4.0])  # ||w|| = 5
    rng = np.random.default_rng(4)
    acts = rng.uniform(-1.0, 1.0, size=(500, 2))

    grad_est = lipschitz_gradient_estimate(lambda a: a @ torch.as_tensor(w, dtype=a.dtype), acts)
    assert grad_est == pytest.approx(5.0, rel=1e-6)

    pair_est = lipschitz_estimate(lambda a: a @ w, acts, n_pairs=5000, rng=rng)
    assert pair_est <= 5.0 + 1e-9  # pairwise ratios never exceed the true constant
    assert pair_est == pytest.approx(5.0, rel=1e-2)
    # actions on the line spanned by w: every pair attains ||w|| exactly
    on_line = rng.normal(size=(50, 1)) * w
    assert lipschitz_estimate(lambda a: a @ w, on_line, n_pairs=100, rng=rng) == pytest.approx(5.0)


def test_lipschitz_pairwise_is_below_gradient_bound_for_nonlinear_q():
    rng = np.random.default_rng(5)
    acts = rng.uniform(-1.0, 1.0, size=(400, 2))
    pair_est = lipschitz_estimate(lambda a: np.sin(2.0 * a).sum(axis=1), acts, n_pairs=2000, rng=rng)
    grad_est = lipschitz_gradient_estimate(lambda a: torch.sin(2.0 * a).sum(dim=1), acts)
    # true constant on [-1, 1]^2 is 2*sqrt(2) (at a = 0); both estimates lie below it, the gradient one closer
    assert pair_est <= grad_est <= 2.0 * math.sqrt(2.0) + 1e-9
    assert grad_est > 0.95 * 2.0 * math.sqrt(2.0)


def test_w2_coupled_lipschitz_bounds_the_value_gap():
    from marlbench.analysis.diagnostics import w2_coupled_lipschitz

    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(200, 3)), rng.normal(loc=0.5, size=(200, 3))
    q = lambda a: np.sin(a).sum(-1) + a[:, 0] ** 2
    w2, lip = w2_coupled_lipschitz(x, y, q(x), q(y))
    assert w2 == pytest.approx(w2_empirical(x, y), rel=1e-9)
    assert abs(q(x).mean() - q(y).mean()) <= lip * w2 + 1e-12
    w2_same, lip_same = w2_coupled_lipschitz(x, x, q(x), q(x))
    assert w2_same == 0.0 and lip_same == 0.0


def test_pairwise_gaussian_mi_has_known_answers():
    from marlbench.analysis.diagnostics import mean_pairwise_gaussian_mi

    rng = np.random.default_rng(0)
    k = 20000
    assert mean_pairwise_gaussian_mi(rng.normal(size=(k, 4, 2))) < 0.005  # independent agents
    z = rng.normal(size=(k, 1))
    rho = 0.8
    pair = np.stack([z, rho * z + np.sqrt(1 - rho**2) * rng.normal(size=(k, 1))], axis=1)  # [K, 2, 1]
    assert mean_pairwise_gaussian_mi(pair) == pytest.approx(-0.5 * math.log(1 - rho**2), abs=0.02)
    constant = np.ones((100, 3, 2))  # clipped actions: finite, counted as independent
    assert mean_pairwise_gaussian_mi(constant) == pytest.approx(0.0, abs=1e-9)
    with pytest.raises(ValueError, match="shape"):
        mean_pairwise_gaussian_mi(np.zeros((10, 1, 2)))

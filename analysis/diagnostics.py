"""Diagnostics for the MAC-Flow distillation bounds (paper Propositions 4.2-4.3, Section 4.3).

For a fixed joint observation ``o`` the paper relates three quantities:

* ``W2(pi_w(o), pi_phi(o))``, the 2-Wasserstein distance between the factorised one-step policy and the joint
  flow policy (:func:`w2_empirical`, :func:`w2_discrete`);
* its same-noise upper bound ``sqrt(E_z ||mu_w(o, z) - mu_phi(o, z)||^2)``, the root of the distillation loss
  (:func:`coupled_w2_bound`, Prop. 4.2);
* the value gap ``|E_{pi_w}[Q_tot] - E_{pi_phi}[Q_tot]| <= L_Q * W2`` (:func:`value_gap`, Prop. 4.3), with ``L_Q``
  estimated by :func:`lipschitz_estimate` (pairwise ratios) or :func:`lipschitz_gradient_estimate` (autograd).

:func:`mutual_information_discrete` and :func:`mean_pairwise_gaussian_mi` measure the inter-agent dependence of
Figure 3(b) for discrete and continuous actions.

Array arguments may be numpy arrays or torch tensors. Exact optimal transport is computed with POT (``import ot``).
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np
import torch

from marlbench.errors import require

ot = require("ot", "games")  # POT: exact optimal transport


def _as_numpy(x: Any, name: str) -> np.ndarray:
    """Float64 numpy copy of an array or torch tensor."""
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    arr = np.asarray(x, dtype=np.float64)
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or inf")
    return arr


def _as_points(x: Any, name: str) -> np.ndarray:
    """A sample cloud as a float64 [n, d] array; a 1-D array is read as n points in R^1."""
    arr = _as_numpy(x, name)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
        raise ValueError(f"{name} must have shape [n, d], got {arr.shape}")
    if arr.shape[0] == 0:
        raise ValueError(f"{name} has no samples")
    return arr


def _sq_cost(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Squared-Euclidean cost matrix [n, m]. The scipy backend subtracts coordinates directly, so identical points
    cost exactly 0 (the default expands |x|^2 + |y|^2 - 2 x.y, whose round-off gives W2(x, x) ~ 1e-8)."""
    return ot.dist(x, y, metric="sqeuclidean", backend="scipy")


def w2_empirical(x: Any, y: Any) -> float:
    """Exact 2-Wasserstein distance between the empirical measures of two sample clouds.

    ``x`` is [n, d] and ``y`` is [m, d] (n may differ from m); every sample has weight 1/n (resp. 1/m). The
    estimator solves the discrete optimal-transport problem exactly (``ot.emd2``, network simplex) on the
    squared-Euclidean cost matrix and returns the square root of the optimal cost.

    It is the plug-in estimator of W2 between the underlying distributions: consistent, but biased upward for
    small n in high d (the empirical measures converge at rate about n^(-1/d)). Cost: the [n, m] cost matrix
    needs O(n*m) memory (O(n^2) for equal sizes), and the solver's time grows roughly cubically in n, so keep
    n to a few thousand.
    """
    xa, ya = _as_points(x, "x"), _as_points(y, "y")
    if xa.shape[1] != ya.shape[1]:
        raise ValueError(f"x and y must have the same dimension d, got {xa.shape[1]} and {ya.shape[1]}")
    n, m = xa.shape[0], ya.shape[0]
    cost = _sq_cost(xa, ya)
    w2_sq = ot.emd2(np.full(n, 1.0 / n), np.full(m, 1.0 / m), cost, numItermax=max(100_000, 50 * n * m))
    return float(np.sqrt(max(float(w2_sq), 0.0)))


def w2_discrete(p: Any, q: Any, support: Any) -> float:
    """Exact W2 between two probability vectors ``p``, ``q`` [K] over the same support points [K, d].

    Example: the 4 joint actions of a 2-agent binary game as the points of {0, 1}^2. Weights must be
    non-negative and sum to 1 (to within 1e-6; they are then renormalised exactly for the solver).
    """
    pa, qa = _as_numpy(p, "p"), _as_numpy(q, "q")
    pts = _as_points(support, "support")
    k = pts.shape[0]
    for name, w in (("p", pa), ("q", qa)):
        if w.shape != (k,):
            raise ValueError(f"{name} must have shape [{k}] to match support {pts.shape}, got {w.shape}")
        if np.any(w < 0):
            raise ValueError(f"{name} has negative entries")
        if abs(w.sum() - 1.0) > 1e-6:
            raise ValueError(f"{name} must sum to 1, sums to {w.sum()}")
    cost = _sq_cost(pts, pts)
    w2_sq = ot.emd2(pa / pa.sum(), qa / qa.sum(), cost)
    return float(np.sqrt(max(float(w2_sq), 0.0)))


def coupled_w2_bound(a_joint: Any, a_factorised: Any) -> float:
    """``sqrt(mean_z ||a_phi(z) - a_w(z)||^2)``: the Prop. 4.2 upper bound on W2.

    Row k of ``a_joint`` and of ``a_factorised`` (both [n, d]) must come from the SAME noise sample z_k. The
    same-noise pairing is one admissible coupling, so this value is >= the optimal-coupling W2 between the two
    sample sets (:func:`w2_empirical`), and its square is the distillation loss.
    """
    aj, af = _as_points(a_joint, "a_joint"), _as_points(a_factorised, "a_factorised")
    if aj.shape != af.shape:
        raise ValueError(f"a_joint and a_factorised must have the same shape (same noise), got {aj.shape} and "
                         f"{af.shape}")
    return float(np.sqrt(np.mean(np.sum((aj - af) ** 2, axis=1))))


def mutual_information_discrete(a1: Any, a2: Any, n_actions: int) -> float:
    """Plug-in mutual information (nats) between two agents' discrete actions, from paired samples.

    ``a1[k]`` and ``a2[k]`` are the actions in {0, ..., n_actions-1} taken at the same joint sample k. The
    joint histogram is built with one ``np.bincount``; MI = sum p(i,j) log(p(i,j) / (p(i) p(j))). The plug-in
    estimator is biased upward by about (n_actions-1)^2 / (2 n) for independent actions.
    """
    if n_actions < 1:
        raise ValueError(f"n_actions must be >= 1, got {n_actions}")
    x, y = _as_numpy(a1, "a1"), _as_numpy(a2, "a2")
    if x.ndim != 1 or x.shape != y.shape or x.size == 0:
        raise ValueError(f"a1 and a2 must be non-empty 1-D arrays of equal length, got {x.shape} and {y.shape}")
    for name, a in (("a1", x), ("a2", y)):
        if np.any(a != np.round(a)) or a.min() < 0 or a.max() >= n_actions:
            raise ValueError(f"{name} must hold integers in [0, {n_actions})")
    idx = x.astype(np.int64) * n_actions + y.astype(np.int64)
    joint = np.bincount(idx, minlength=n_actions * n_actions).reshape(n_actions, n_actions) / x.size
    outer = joint.sum(axis=1, keepdims=True) * joint.sum(axis=0, keepdims=True)
    nz = joint > 0
    return float(max(np.sum(joint[nz] * np.log(joint[nz] / outer[nz])), 0.0))


def mean_pairwise_gaussian_mi(actions: Any, ridge: float = 1e-6) -> float:
    """Mean over agent pairs i < j of the Gaussian estimate of I(a_i; a_j) (nats) from joint samples [K, N, d].

    With C the sample covariance of the K joint actions, I(a_i; a_j) ~= 0.5 (log det C_i + log det C_j -
    log det C_ij): exact for jointly Gaussian actions and a measure of their linear dependence otherwise. A ridge
    ``ridge * I`` keeps constant (e.g. clipped) actions finite; they count as independent. For independent
    agents the estimate is biased upward by about d^2 / (2K). All pairs are scored in one batched ``slogdet``.
    """
    a = _as_numpy(actions, "actions")
    if a.ndim != 3 or a.shape[0] < 2 or a.shape[1] < 2:
        raise ValueError(f"actions must be [K >= 2 samples, N >= 2 agents, d], got shape {a.shape}")
    k, n, d = a.shape
    x = a.reshape(k, n * d)
    x = x - x.mean(axis=0)
    cov = x.T @ x / (k - 1) + ridge * np.eye(n * d)
    dims = np.arange(n)[:, None] * d + np.arange(d)  # [N, d] covariance indices of each agent
    per_agent = np.linalg.slogdet(cov[dims[:, :, None], dims[:, None, :]])[1]  # [N]
    i, j = np.triu_indices(n, 1)
    pair = np.concatenate([dims[i], dims[j]], axis=1)  # [P, 2d]
    per_pair = np.linalg.slogdet(cov[pair[:, :, None], pair[:, None, :]])[1]
    return float(np.mean(0.5 * (per_agent[i] + per_agent[j] - per_pair)))


def value_gap(q_joint_samples: Any, q_factorised_samples: Any) -> float:
    """``|mean(Q under pi_w) - mean(Q under pi_phi)|``, the left-hand side of Prop. 4.3."""
    qj = _as_numpy(q_joint_samples, "q_joint_samples").reshape(-1)
    qf = _as_numpy(q_factorised_samples, "q_factorised_samples").reshape(-1)
    if qj.size == 0 or qf.size == 0:
        raise ValueError("value_gap needs at least one Q sample on each side")
    return float(abs(qf.mean() - qj.mean()))


def lipschitz_estimate(
    q_fn: Callable[[np.ndarray], Any], actions: Any, n_pairs: int, rng: np.random.Generator
) -> float:
    """Max over ``n_pairs`` random pairs of sampled actions of ``|Q(a) - Q(a')| / ||a - a'||``.

    ``q_fn`` maps an [n, d] float64 numpy array to n values (numpy or torch). Every ratio is at most the true
    Lipschitz constant L_Q, so this is a LOWER bound on L_Q: plugging it into Prop. 4.3 can under-state the
    bound. Use :func:`lipschitz_gradient_estimate` for the upper-bound proxy. Pairs of identical actions are
    skipped; returns 0.0 when no pair of distinct actions was drawn.
    """
    acts = _as_points(actions, "actions")
    if acts.shape[0] < 2:
        raise ValueError("lipschitz_estimate needs at least 2 actions")
    if n_pairs < 1:
        raise ValueError(f"n_pairs must be >= 1, got {n_pairs}")
    q = _as_numpy(q_fn(acts), "q_fn(actions)").reshape(-1)
    if q.shape[0] != acts.shape[0]:
        raise ValueError(f"q_fn returned {q.shape[0]} values for {acts.shape[0]} actions")
    i = rng.integers(0, acts.shape[0], size=n_pairs)
    j = rng.integers(0, acts.shape[0], size=n_pairs)
    dist = np.linalg.norm(acts[i] - acts[j], axis=1)
    ok = dist > 0
    if not np.any(ok):
        return 0.0
    return float(np.max(np.abs(q[i] - q[j])[ok] / dist[ok]))


def lipschitz_gradient_estimate(q_fn: Callable[[torch.Tensor], torch.Tensor], actions: Any) -> float:
    """``max_k ||grad_a Q(a_k)||`` over the sampled actions, by torch autograd.

    ``q_fn`` maps an [n, d] tensor (the dtype/device of ``actions`` if it is a tensor, else torch's default
    dtype) to n values, each depending on its own row only (as a critic does). For a
    differentiable Q on a convex region, the mean value theorem gives ``|Q(a) - Q(a')| <= sup_segment
    ||grad Q|| * ||a - a'||``, so ``sup ||grad Q||`` over the region (e.g. the convex hull of the action
    samples) IS its Lipschitz constant and upper-bounds every pairwise ratio. This is therefore the
    upper-bound proxy for L_Q in Prop. 4.3. Caveat: it evaluates the gradient only at the samples, so it
    estimates that supremum from below; it is exact for linear Q and converges as the samples fill the region.
    """
    if isinstance(actions, torch.Tensor):  # keep the caller's dtype and device (critics are usually float32)
        acts = actions.detach()
        if acts.ndim == 1:
            acts = acts[:, None]
        if acts.ndim != 2 or acts.shape[0] == 0:
            raise ValueError(f"actions must have shape [n, d], got {tuple(actions.shape)}")
    else:
        acts = torch.as_tensor(_as_points(actions, "actions"), dtype=torch.get_default_dtype())
    with torch.enable_grad():
        a = acts.clone().requires_grad_(True)
        q = q_fn(a).reshape(-1)
        if q.shape[0] != a.shape[0]:
            raise ValueError(f"q_fn returned {q.shape[0]} values for {a.shape[0]} actions")
        (grad,) = torch.autograd.grad(q.sum(), a)
    return float(grad.norm(dim=1).max())


def w2_coupled_lipschitz(x: Any, y: Any, qx: Any, qy: Any) -> tuple[float, float]:
    """W2 between two equal-size sample clouds and the Lipschitz ratio of Q over the pairs the optimal plan matches.

    Returns ``(w2, l_plan)`` with ``l_plan = max |Q(x_i) - Q(y_j)| / ||x_i - y_j||`` over pairs (i, j) that the
    optimal W2 plan couples. For these empirical measures |mean Q(x) - mean Q(y)| <= l_plan * W1 <= l_plan * W2
    holds exactly (Prop. 4.3 with the constant restricted to the matched pairs); ``l_plan`` is a lower bound on
    the global Lipschitz constant of Q.
    """
    xa, ya = _as_points(x, "x"), _as_points(y, "y")
    qxa, qya = _as_numpy(qx, "qx").reshape(-1), _as_numpy(qy, "qy").reshape(-1)
    if xa.shape != ya.shape or qxa.shape[0] != xa.shape[0] or qya.shape[0] != ya.shape[0]:
        raise ValueError("x, y must have the same shape [n, d] and qx, qy one value per sample")
    n = xa.shape[0]
    cost = _sq_cost(xa, ya)
    plan = ot.emd(np.full(n, 1.0 / n), np.full(n, 1.0 / n), cost, numItermax=max(100_000, 50 * n * n))
    i, j = np.nonzero(plan > 1e-12)
    dist = np.sqrt(cost[i, j])
    moved = dist > 1e-12
    l_plan = float(np.max(np.abs(qxa[i] - qya[j])[moved] / dist[moved])) if moved.any() else 0.0
    return float(np.sqrt(max(float((plan * cost).sum()), 0.0))), l_plan

"""Flow matching shared by the flow policies (MAC-Flow, Flow BC): the linear-path loss, the Euler sampler and the
time input of the velocity field.

Linear path (Lipman et al. 2023; paper Eq. 5-6): x_t = (1 - t) x0 + t x1 with x0 ~ N(0, I), t ~ U[0, 1], and
target velocity x1 - x0. Sampling integrates dx/dt = v(x, t) from t = 0 to 1 with M explicit Euler steps
x <- x + v(x, t) / M, t <- t + 1 / M (Alg. 2). Shapes: x [B, ...]; t [B, 1, ..., 1], broadcastable against x.

Discrete actions (x1 = onehot(a), App. E) have a second parametrisation of the same path, ``endpoint``: the network
outputs logits of x1 given (x_t, t), trained by cross-entropy (the x1-prediction objective of discrete flow
matching, Gat et al. 2024), and the velocity is the one the linear path implies, v = (E[x1 | x_t] - x_t) / (1 - t)
with E[x1 | x_t] = softmax(logits). Both give the same flow at the optimum; the endpoint loss learns the
observation-to-action decision as fast as categorical BC, the velocity MSE several times slower (docs/ALGORITHMS.md).
"""
from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from marlbench.errors import refuse_one_hot_option

Velocity = Callable[[Tensor, Tensor], Tensor]  # v(x_t, t) -> dx/dt, the shape of x_t


def time_features(t: Tensor, count: int) -> Tensor:
    """[B, 1] -> [B, count]: t itself, then sin/cos of t at geometric frequencies."""
    if count == 1:
        return t
    freqs = torch.pi * 2.0 ** torch.arange((count - 1) // 2, device=t.device)
    return torch.cat([t, torch.sin(t * freqs), torch.cos(t * freqs)], -1)[:, :count]


def flow_matching_loss(velocity: Velocity, x1: Tensor) -> Tensor:
    """mean ||v(x_t, t) - (x1 - x0)||^2 over every element, one t per sample (Eq. 5/6)."""
    x0 = torch.randn_like(x1)
    t = torch.rand(x1.shape[0], *(1,) * (x1.dim() - 1), device=x1.device)
    return (velocity((1 - t) * x0 + t * x1, t) - (x1 - x0)).square().mean()


def endpoint_loss(logits: Velocity, actions: Tensor, n_actions: int) -> Tensor:
    """Cross-entropy of the endpoint x1 = onehot(a) predicted from x_t on the linear path, one t per sample:
    ``logits(x_t, t)`` [..., n_actions] for actions [...] (long); mean over every action."""
    x1 = F.one_hot(actions, n_actions).to(torch.get_default_dtype())
    x0 = torch.randn_like(x1)
    t = torch.rand(x1.shape[0], *(1,) * (x1.dim() - 1), device=x1.device)
    out = logits((1 - t) * x0 + t * x1, t)
    return F.cross_entropy(out.reshape(-1, n_actions), actions.reshape(-1))


def endpoint_velocity(logits: Tensor, x: Tensor, t: Tensor) -> Tensor:
    """The linear path's velocity for a predicted endpoint distribution: (softmax(logits) - x_t) / (1 - t). The Euler
    sampler never evaluates t = 1 (its last step starts at 1 - 1/M, and lands on softmax(logits) there)."""
    return (logits.softmax(-1) - x) / (1 - t)


def as_velocity(out: Tensor, x: Tensor, t: Tensor, kind: str) -> Tensor:
    """The velocity from the flow network's output at (x_t, t): the output itself (``kind="velocity"``), or the one
    the linear path implies for endpoint logits (``"endpoint"``)."""
    return endpoint_velocity(out, x, t) if kind == "endpoint" else out


def check_discrete_flow(kind: str, spec) -> None:
    """``discrete_flow=endpoint`` predicts a one-hot endpoint: refuse it on continuous actions, saying what works."""
    refuse_one_hot_option("discrete_flow", kind, "velocity", spec)


def euler(velocity: Velocity, x: Tensor, steps: int) -> Tensor:
    """x(1) from x(0) = ``x`` by ``steps`` Euler steps of dx/dt = v(x, t) (Alg. 2); t starts at 0 for every sample."""
    t = torch.zeros(x.shape[0], *(1,) * (x.dim() - 1), device=x.device)
    for _ in range(steps):
        x = x + velocity(x, t) / steps
        t = t + 1.0 / steps
    return x

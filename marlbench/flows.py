"""Flow matching shared by the flow policies (MAC-Flow, Flow BC): the linear-path loss, the Euler sampler and the
time input of the velocity field.

Linear path (Lipman et al. 2023; paper Eq. 5-6): x_t = (1 - t) x0 + t x1 with x0 ~ N(0, I), t ~ U[0, 1], and
target velocity x1 - x0. Sampling integrates dx/dt = v(x, t) from t = 0 to 1 with M explicit Euler steps
x <- x + v(x, t) / M, t <- t + 1 / M (Alg. 2). Shapes: x [B, ...]; t [B, 1, ..., 1], broadcastable against x.
"""
from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

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


def euler(velocity: Velocity, x: Tensor, steps: int) -> Tensor:
    """x(1) from x(0) = ``x`` by ``steps`` Euler steps of dx/dt = v(x, t) (Alg. 2); t starts at 0 for every sample."""
    t = torch.zeros(x.shape[0], *(1,) * (x.dim() - 1), device=x.device)
    for _ in range(steps):
        x = x + velocity(x, t) / steps
        t = t + 1.0 / steps
    return x

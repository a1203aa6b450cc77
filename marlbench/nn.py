"""Shared network building blocks.

Every network is an MLP with exact (erf) GELU and LayerNorm (paper App. E). Ensembles and per-agent
(unshared) networks stack their weights and run as one batched matmul, so neither agents nor ensemble
members are ever looped over in Python (docs/SPEED.md: shared weights + stacked batches are fastest here).
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class EnsembleLinear(nn.Module):
    """``members`` independent linear layers applied as one batched matmul: [E, B, in] -> [E, B, out]."""

    def __init__(self, members: int, in_dim: int, out_dim: int):
        super().__init__()
        bound = 1.0 / math.sqrt(in_dim)  # same init as nn.Linear
        self.weight = nn.Parameter(torch.empty(members, in_dim, out_dim).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(members, 1, out_dim).uniform_(-bound, bound))

    def forward(self, x: Tensor) -> Tensor:
        return torch.baddbmm(self.bias, x, self.weight)


class EnsembleMLP(nn.Module):
    """An ensemble of MLPs: Linear -> GELU -> LayerNorm per hidden layer, as in FQL's MLP.

    Input [B, in] (shared by all members) or [E, B, in]; output [E, B, out].
    """

    def __init__(self, members: int, in_dim: int, hidden_dims: Sequence[int], out_dim: int, layer_norm: bool = True):
        super().__init__()
        self.members = members
        dims = [in_dim, *hidden_dims]
        self.hidden = nn.ModuleList(EnsembleLinear(members, a, b) for a, b in zip(dims[:-1], dims[1:]))
        self.norms = nn.ModuleList(
            EnsembleLayerNorm(members, h) if layer_norm else nn.Identity() for h in hidden_dims
        )
        self.out = EnsembleLinear(members, dims[-1], out_dim)

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() == 2:
            x = x.unsqueeze(0).expand(self.members, *x.shape)
        for layer, norm in zip(self.hidden, self.norms):
            x = norm(F.gelu(layer(x)))
        return self.out(x)


class EnsembleLayerNorm(nn.Module):
    def __init__(self, members: int, dim: int):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(members, 1, dim))
        self.bias = nn.Parameter(torch.zeros(members, 1, dim))

    def forward(self, x: Tensor) -> Tensor:
        return torch.addcmul(self.bias, F.layer_norm(x, x.shape[-1:]), self.weight)


def mlp(in_dim: int, hidden_dims: Sequence[int], out_dim: int, layer_norm: bool = True) -> nn.Sequential:
    """A single MLP (Linear -> GELU -> LayerNorm per hidden layer)."""
    layers: list[nn.Module] = []
    for h in hidden_dims:
        layers += [nn.Linear(in_dim, h), nn.GELU(), nn.LayerNorm(h) if layer_norm else nn.Identity()]
        in_dim = h
    layers.append(nn.Linear(in_dim, out_dim))
    return nn.Sequential(*layers)


class AgentMLP(nn.Module):
    """Per-agent network f_i(x_i) over inputs [..., N, in] -> [E, ..., N, out] (E = ensemble members).

    ``shared=True``: one set of weights for all agents with the agent's one-hot id appended to its input (the
    reference codes' choice and the fastest on CPU). ``shared=False``: separate weights per agent, stacked so all
    agents (and ensemble members) still run in one batched matmul.
    """

    def __init__(
        self,
        n_agents: int,
        in_dim: int,
        hidden_dims: Sequence[int],
        out_dim: int,
        members: int = 1,
        shared: bool = True,
        layer_norm: bool = True,
    ):
        super().__init__()
        self.n_agents, self.members, self.shared = n_agents, members, shared
        if shared:
            self.register_buffer("agent_ids", torch.eye(n_agents), persistent=False)
            self.net = EnsembleMLP(members, in_dim + n_agents, hidden_dims, out_dim, layer_norm)
        else:
            self.net = EnsembleMLP(members * n_agents, in_dim, hidden_dims, out_dim, layer_norm)

    def forward(self, x: Tensor) -> Tensor:
        *lead, n, d = x.shape
        if self.shared:
            ids = self.agent_ids.expand(*lead, n, n)
            y = self.net(torch.cat([x, ids], -1).reshape(-1, d + n))  # [E, prod(lead)*N, out]
            return y.reshape(self.members, *lead, n, -1)
        # [.., N, d] -> [N, prod(lead), d] -> repeat for members -> [E*N, prod(lead), d]
        xa = x.reshape(-1, n, d).transpose(0, 1)
        xa = xa.unsqueeze(0).expand(self.members, *xa.shape).reshape(self.members * n, -1, d)
        y = self.net(xa).reshape(self.members, n, -1, y_dim := self.net.out.weight.shape[-1])
        return y.permute(0, 2, 1, 3).reshape(self.members, *lead, n, y_dim)


def polyak_update(target: nn.Module, source: nn.Module, tau: float) -> None:
    """target <- (1 - tau) * target + tau * source, in one fused foreach op."""
    targets = list(target.parameters())
    if targets:  # parameter-free modules (e.g. the mean mixer) have nothing to update
        with torch.no_grad():
            torch._foreach_lerp_(targets, list(source.parameters()), tau)


def make_adam(params, lr: float, eps: float) -> torch.optim.Adam:
    """Adam, fused where the device supports it (one kernel over all parameters)."""
    params = list(params)
    try:
        return torch.optim.Adam(params, lr=lr, eps=eps, fused=True)
    except (RuntimeError, TypeError):  # fused unsupported for this device/dtype
        return torch.optim.Adam(params, lr=lr, eps=eps)


def gradient_step(optimizer: torch.optim.Optimizer, loss: Tensor) -> None:
    """One optimiser step on ``loss``: clear the gradients, backpropagate, step."""
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()

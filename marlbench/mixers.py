"""Value mixers: Q_tot = f(Q_1..Q_N; s), shared by every value-based algorithm.

All mixers are monotonic in each Q_i (IGM holds: each agent's greedy action maximises Q_tot).

- ``mean``: Q_tot = mean_i Q_i, MAC-Flow's average mixer (App. E) and the default of the baselines here: the
  paper's App. F.1 says each baseline "employs the mixer" without naming it, so they share MAC-Flow's.
- ``sum``: Q_tot = sum_i Q_i (VDN).
- ``linear``: Q_tot = sum_i w_i(s) Q_i + b(s), w = |Linear(ReLU(Linear(s)))| (OMIGA's mixer).
- ``convex``: Q_tot = sum_i k_i(s) Q_i with k = |w(s)| / sum_j |w_j(s)| (k >= 0, sum 1; MA-ICQ's mixer).
- ``qmix``: the two-layer monotonic hypernetwork mixer of QMIX (ELU hidden layer, |W| weights).

``s`` is the global state when the dataset has one, else the concatenated observations (MPE has no state).
Q inputs may carry leading ensemble/sample dimensions: ``qs`` [..., B, N] -> [..., B].
"""
from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

MixerKind = Literal["mean", "sum", "linear", "convex", "qmix"]
MIXERS = ("mean", "sum", "linear", "convex", "qmix")


def mixer_state(obs: Tensor, state: Tensor | None) -> Tensor:
    """The mixer's conditioning input: the global state, or the joint observation [B, N*obs_dim]."""
    return state if state is not None else obs.flatten(-2)


class Mixer(nn.Module):
    def __init__(self, kind: MixerKind, n_agents: int, state_dim: int, embed_dim: int = 128):
        super().__init__()
        if kind not in MIXERS:
            raise ValueError(f"unknown mixer {kind!r}; choose one of {', '.join(MIXERS)}")
        self.kind, self.n_agents, self.embed_dim = kind, n_agents, embed_dim
        if kind in ("linear", "convex"):
            self.weights = nn.Sequential(nn.Linear(state_dim, embed_dim), nn.ReLU(), nn.Linear(embed_dim, n_agents))
            self.bias = nn.Sequential(nn.Linear(state_dim, embed_dim), nn.ReLU(), nn.Linear(embed_dim, 1))
        elif kind == "qmix":
            self.hyper_w1 = nn.Sequential(nn.Linear(state_dim, embed_dim), nn.ReLU(),
                                          nn.Linear(embed_dim, n_agents * embed_dim))
            self.hyper_b1 = nn.Linear(state_dim, embed_dim)
            self.hyper_w2 = nn.Sequential(nn.Linear(state_dim, embed_dim), nn.ReLU(), nn.Linear(embed_dim, embed_dim))
            self.hyper_b2 = nn.Sequential(nn.Linear(state_dim, embed_dim), nn.ReLU(), nn.Linear(embed_dim, 1))

    def agent_weights(self, state: Tensor) -> Tensor:
        """[B, N] non-negative per-agent weights of the linear mixers (``linear``, ``convex``)."""
        w = self.weights(state)
        w = w.abs()
        return w if self.kind == "linear" else w / w.sum(-1, keepdim=True).clamp_min(1e-8)

    def forward(self, qs: Tensor, state: Tensor | None = None) -> Tensor:
        if self.kind == "mean":
            return qs.mean(-1)
        if self.kind == "sum":
            return qs.sum(-1)
        if state is None:
            raise ValueError(f"the {self.kind!r} mixer needs a state (see mixer_state)")
        if self.kind in ("linear", "convex"):
            bias = self.bias(state).squeeze(-1) if self.kind == "linear" else 0.0
            return (self.agent_weights(state) * qs).sum(-1) + bias
        b = state.shape[0]
        w1 = self.hyper_w1(state).abs().view(b, self.n_agents, self.embed_dim)
        hidden = F.elu(torch.einsum("...bn,bne->...be", qs, w1) + self.hyper_b1(state))
        w2 = self.hyper_w2(state).abs()
        return (hidden * w2).sum(-1) + self.hyper_b2(state).squeeze(-1)

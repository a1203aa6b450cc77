"""Per-agent critics and policy heads shared by the baselines (decentralised: agent i sees only o_i).

Every head wraps one ``AgentMLP``, so all agents (and critic ensemble members) run in one batched call.
Shapes: obs [..., N, obs_dim]; continuous actions [..., N, action_dim]; discrete actions [..., N] int64;
legal masks [..., N, n_actions] bool (None: every action legal).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from marlbench.config import AlgoConfig
from marlbench.nn import AgentMLP
from marlbench.spec import TaskSpec

LOG_STD_MIN, LOG_STD_MAX = -5.0, 2.0


def masked_logits(logits: Tensor, legals: Tensor | None) -> Tensor:
    """Illegal actions get a large negative score so no softmax, cross-entropy or argmax picks them."""
    return logits if legals is None else logits.masked_fill(~legals, -1e9)


def _net(spec: TaskSpec, cfg: AlgoConfig, in_dim: int, out_dim: int, members: int = 1) -> AgentMLP:
    return AgentMLP(spec.n_agents, in_dim, cfg.hidden_dims, out_dim, members=members,
                    shared=cfg.share_parameters, layer_norm=cfg.layer_norm)


class ActionBox(nn.Module):
    """Affine map between [-1, 1]^d and the task's action box [low, high]^d (scalar bounds, as in TaskSpec)."""

    def __init__(self, spec: TaskSpec):
        super().__init__()
        self.low, self.high, self.dim = float(spec.action_low), float(spec.action_high), spec.action_dim

    def scale(self, unit: Tensor) -> Tensor:
        return self.low + (unit + 1.0) * 0.5 * (self.high - self.low)

    def unscale(self, action: Tensor) -> Tensor:
        return 2.0 * (action - self.low) / (self.high - self.low) - 1.0

    def clip(self, action: Tensor) -> Tensor:
        return action.clamp(self.low, self.high)

    def uniform(self, shape: tuple[int, ...], device: torch.device | str = "cpu") -> Tensor:
        return self.low + torch.rand(shape, device=device) * (self.high - self.low)

    def log_volume(self) -> float:
        """log of one agent's action-box volume (a uniform action has log-density -log_volume)."""
        return self.dim * math.log(self.high - self.low)

    def log_half_width(self) -> float:
        return self.dim * math.log((self.high - self.low) / 2.0)


class AgentQ(nn.Module):
    """Per-agent critics Q_i(o_i, a_i), ``members`` of them (2 = TD3's twin critics).

    Continuous: the network reads o_i and a_i and outputs one value. Discrete: it reads o_i and outputs
    Q_i(o_i, .) for every action; ``forward`` then takes integer actions (gather) or action probabilities
    (the expectation sum_a pi(a) Q_i(o_i, a)).
    """

    def __init__(self, spec: TaskSpec, cfg: AlgoConfig, members: int = 2, in_dim: int | None = None):
        super().__init__()
        self.continuous, self.n_actions = spec.continuous, spec.action_dim
        obs_in = spec.obs_dim if in_dim is None else in_dim
        self.net = _net(spec, cfg, obs_in + spec.action_dim if spec.continuous else obs_in,
                        1 if spec.continuous else spec.action_dim, members)

    def forward(self, obs: Tensor, actions: Tensor) -> Tensor:
        """[E, ..., N] per-member Q_i."""
        if self.continuous:
            return self.net(torch.cat([obs, actions], -1)).squeeze(-1)
        qs = self.net(obs)
        if actions.dtype == torch.long:
            return qs.gather(-1, actions.expand(qs.shape[0], *actions.shape).unsqueeze(-1)).squeeze(-1)
        return (qs * actions).sum(-1)

    def all_actions(self, obs: Tensor) -> Tensor:
        """Discrete only: [E, ..., N, n_actions]."""
        if self.continuous:
            raise TypeError("all_actions is defined for discrete critics only")
        return self.net(obs)


class DeterministicActor(nn.Module):
    """a_i = scale(tanh(f(o_i))) inside the action box (TD3-style)."""

    def __init__(self, spec: TaskSpec, cfg: AlgoConfig):
        super().__init__()
        self.net, self.box = _net(spec, cfg, spec.obs_dim, spec.action_dim), ActionBox(spec)

    def pre_tanh(self, obs: Tensor) -> Tensor:
        return self.net(obs)[0]

    def forward(self, obs: Tensor) -> Tensor:
        return self.box.scale(torch.tanh(self.pre_tanh(obs)))


class GaussianActor(nn.Module):
    """Diagonal Gaussian policy per agent.

    ``squash=True`` (SAC/CQL): a = scale(tanh(u)), u ~ N(mu(o), sigma(o)^2), log-prob with the tanh correction.
    ``squash=False`` (AWR-style: OMIGA, ICQ): mean scale(tanh(mu(o))), a state-independent learned log-std, and
    the plain Gaussian log-density, so dataset actions on the box boundary keep finite log-probabilities;
    samples are clipped to the box.
    """

    def __init__(self, spec: TaskSpec, cfg: AlgoConfig, squash: bool = True):
        super().__init__()
        self.squash, self.box = squash, ActionBox(spec)
        da = spec.action_dim
        self.net = _net(spec, cfg, spec.obs_dim, 2 * da if squash else da)
        if not squash:
            self.log_std = nn.Parameter(torch.zeros(da))

    def distribution(self, obs: Tensor) -> tuple[Tensor, Tensor]:
        out = self.net(obs)[0]
        if self.squash:
            mu, log_std = out.chunk(2, -1)
            return mu, log_std.clamp(LOG_STD_MIN, LOG_STD_MAX)
        return self.box.scale(torch.tanh(out)), self.log_std.clamp(LOG_STD_MIN, LOG_STD_MAX).expand_as(out)

    def sample(self, obs: Tensor, samples: tuple[int, ...] = ()) -> tuple[Tensor, Tensor]:
        """Reparameterised actions [*samples, ..., N, da] and their log-probabilities [*samples, ..., N]."""
        mu, log_std = self.distribution(obs)
        u = mu + log_std.exp() * torch.randn(*samples, *mu.shape, device=mu.device)
        logp = _gaussian_log_prob(u, mu, log_std)
        if not self.squash:
            return self.box.clip(u), logp
        a = torch.tanh(u)
        logp = logp - (2.0 * (math.log(2.0) - u - F.softplus(-2.0 * u))).sum(-1)  # log |d tanh(u) / du|
        return self.box.scale(a), logp - self.box.log_half_width()

    def log_prob(self, obs: Tensor, actions: Tensor) -> Tensor:
        """[..., N] log pi_i(a_i | o_i) of given (e.g. dataset) actions."""
        mu, log_std = self.distribution(obs)
        if not self.squash:
            return _gaussian_log_prob(actions, mu, log_std)
        unit = self.box.unscale(actions).clamp(-1 + 1e-6, 1 - 1e-6)
        u = torch.atanh(unit)
        logp = _gaussian_log_prob(u, mu, log_std) - torch.log1p(-unit.square()).sum(-1)
        return logp - self.box.log_half_width()

    def mode(self, obs: Tensor) -> Tensor:
        mu, _ = self.distribution(obs)
        return self.box.scale(torch.tanh(mu)) if self.squash else mu


def _gaussian_log_prob(x: Tensor, mu: Tensor, log_std: Tensor) -> Tensor:
    return (-0.5 * ((x - mu) / log_std.exp()).square() - log_std - 0.5 * math.log(2 * math.pi)).sum(-1)


class CategoricalActor(nn.Module):
    """Softmax policy over legal actions per agent."""

    def __init__(self, spec: TaskSpec, cfg: AlgoConfig):
        super().__init__()
        self.net = _net(spec, cfg, spec.obs_dim, spec.action_dim)

    def logits(self, obs: Tensor, legals: Tensor | None = None) -> Tensor:
        return masked_logits(self.net(obs)[0], legals)

    def log_prob(self, obs: Tensor, actions: Tensor, legals: Tensor | None = None) -> Tensor:
        """[..., N] log pi_i(a_i | o_i)."""
        return self.logits(obs, legals).log_softmax(-1).gather(-1, actions.unsqueeze(-1)).squeeze(-1)

    def probs(self, obs: Tensor, legals: Tensor | None = None) -> Tensor:
        return self.logits(obs, legals).softmax(-1)

    def mode(self, obs: Tensor, legals: Tensor | None = None) -> Tensor:
        return self.logits(obs, legals).argmax(-1)

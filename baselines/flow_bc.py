"""Flow BC (paper App. F.1): behaviour cloning with per-agent flow policies - no Q, no distillation.

Training: the flow-BC loss of Eq. (5) for every agent at once, v_phi(t, o_i, x_t) regressed on a_i - x0 along
x_t = (1 - t) x0 + t a_i, x0 ~ N(0, I), t ~ U[0, 1] (one t per sample); individual (decentralised) vector fields,
one AgentMLP with the agent's one-hot id, as MAC-Flow's ``flow="individual"`` (the shared flow-matching code of
marlbench/flows.py).
Acting: M = 10 Euler steps (Alg. 2) from z_i ~ N(0, I), each agent seeing only o_i, all agents in one network call
per step (O(K)); continuous samples are clipped to the action box.
Discrete (App. E, F.1): the flow runs over one-hot vectors x1 = onehot(a_i) and its sample is decoded by a
legal-masked argmax, as in MAC-Flow. ``discrete_flow="endpoint"`` (not the paper's) trains the same path by
cross-entropy on x1's logits and derives the velocity from them (marlbench/flows.py).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from marlbench.algorithm import Algorithm
from marlbench.config import AlgoConfig
from marlbench.data.sampler import Batch
from marlbench.errors import ConfigError
from marlbench.flows import (
    as_velocity,
    check_discrete_flow,
    endpoint_loss,
    euler,
    flow_matching_loss,
    time_features,
)
from marlbench.heads import masked_logits
from marlbench.nn import AgentMLP, gradient_step, make_adam


@dataclass
class FlowBCConfig(AlgoConfig):
    flow_steps: int = 10  # Euler steps M at deployment (App. F.1)
    time_features: int = 1  # 1: the raw t as input (MAC-Flow's reference code); >1: t plus sinusoidal features
    eval_noise: Literal["step", "zero"] = "step"  # z redrawn at every step, or z = 0 (the flow's "mean" path)
    # discrete actions: "velocity" regresses x1 - x0 by MSE (App. E); "endpoint" predicts x1's logits by
    # cross-entropy, v = (softmax - x_t) / (1 - t) (Gat et al. 2024's objective; learns the decision faster)
    discrete_flow: Literal["velocity", "endpoint"] = "velocity"

    def validate(self) -> None:
        if self.flow_steps < 1 or self.time_features < 1:
            raise ConfigError(f"flow_steps and time_features must be >= 1, got {self.flow_steps}, "
                              f"{self.time_features}")


class FlowBC(Algorithm, name="flow-bc", continuous=True, discrete=True):
    """Flow BC: per-agent flow-matching behaviour cloning, sampled with 10 Euler steps (no Q, no distillation)."""

    Config = FlowBCConfig
    inference_complexity = "O(K)"

    def __init__(self, spec, cfg: FlowBCConfig, device="cpu"):
        super().__init__(spec, cfg, device)
        check_discrete_flow(cfg.discrete_flow, spec)
        # da: continuous action dims, or the one-hot width (number of actions) for discrete tasks
        do, da = spec.obs_dim, spec.action_dim
        self.flow = AgentMLP(spec.n_agents, do + da + cfg.time_features, cfg.hidden_dims, da,
                             shared=cfg.share_parameters, layer_norm=cfg.layer_norm)
        self.to(self.device)
        self.optimizer = make_adam(self.flow.parameters(), cfg.lr, cfg.adam_eps)

    def field(self, obs: Tensor, x: Tensor, t: Tensor) -> Tensor:
        """The network at (t, o_i, x_i) for every agent: obs [B,N,do], x [B,N,da], t [B,1,1] -> [B,N,da] (the
        velocity, or x1's logits with ``discrete_flow="endpoint"``)."""
        b, n, _ = x.shape
        tf = time_features(t.flatten(1), self.cfg.time_features)  # [B, F]
        return self.flow(torch.cat([obs, x, tf.unsqueeze(1).expand(b, n, tf.shape[-1])], -1))[0]

    def velocity(self, obs: Tensor, x: Tensor, t: Tensor) -> Tensor:
        """v_phi(t, o_i, x_i) for every agent."""
        return as_velocity(self.field(obs, x, t), x, t, self.cfg.discrete_flow)

    def target(self, batch: Batch) -> Tensor:
        """x1: the dataset action, one-hot for discrete tasks."""
        return batch.actions if self.spec.continuous else F.one_hot(batch.actions, self.spec.action_dim).float()

    def loss(self, batch: Batch) -> Tensor:
        if self.cfg.discrete_flow == "endpoint":
            return endpoint_loss(lambda x, t: self.field(batch.obs, x, t), batch.actions, self.spec.action_dim)
        return flow_matching_loss(lambda x, t: self.velocity(batch.obs, x, t), self.target(batch))

    def update(self, batch: Batch) -> dict[str, Tensor]:
        loss = self.loss(batch)
        gradient_step(self.optimizer, loss)
        return {"flow_loss": loss.detach()}

    @torch.no_grad()
    def sample(self, obs: Tensor, noise: Tensor) -> Tensor:
        """mu_phi(o_i, z_i): the Euler sample from z, unclipped (one-hot space for discrete tasks)."""
        return euler(lambda x, t: self.velocity(obs, x, t), noise, self.cfg.flow_steps)

    @torch.no_grad()
    def act(self, obs: Tensor, legals: Tensor | None = None) -> Tensor:
        shape = (*obs.shape[:-1], self.spec.action_dim)
        noise = torch.zeros(shape, device=obs.device) if self.cfg.eval_noise == "zero" else \
            torch.randn(shape, device=obs.device)
        x = self.sample(obs, noise)
        if self.spec.continuous:
            return x.clamp(self.spec.action_low, self.spec.action_high)
        return masked_logits(x, legals).argmax(-1)

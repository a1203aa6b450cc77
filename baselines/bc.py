"""Behaviour cloning (paper App. F.1).

Continuous: a Gaussian policy with unit standard deviation. With a fixed unit std the negative log-likelihood is,
up to a constant, half the squared error of the mean, so the loss is 0.5 * ||mean(o_i) - a_i||^2; evaluation plays
the mean, clipped to the box.
Discrete: a categorical policy (softmax over logits), trained by legal-masked cross-entropy; evaluation plays the
most likely legal action.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from marlbench.algorithm import Algorithm
from marlbench.config import AlgoConfig
from marlbench.data.sampler import Batch
from marlbench.heads import CategoricalActor
from marlbench.nn import AgentMLP, gradient_step, make_adam


@dataclass
class BCConfig(AlgoConfig):
    pass


class BC(Algorithm, name="bc", continuous=True, discrete=True):
    """Behaviour cloning: unit-std Gaussian (continuous) or categorical (discrete) policy per agent."""

    Config = BCConfig

    def __init__(self, spec, cfg: BCConfig, device="cpu"):
        super().__init__(spec, cfg, device)
        if spec.continuous:
            self.policy = AgentMLP(spec.n_agents, spec.obs_dim, cfg.hidden_dims, spec.action_dim,
                                   shared=cfg.share_parameters, layer_norm=cfg.layer_norm)
        else:
            self.policy = CategoricalActor(spec, cfg)
        self.to(self.device)
        self.optimizer = make_adam(self.policy.parameters(), cfg.lr, cfg.adam_eps)

    def loss(self, batch: Batch) -> Tensor:
        if self.spec.continuous:
            return 0.5 * (self.policy(batch.obs)[0] - batch.actions).square().sum(-1).mean()
        logits = self.policy.logits(batch.obs, batch.legals)
        return F.cross_entropy(logits.flatten(0, 1), batch.actions.flatten())

    def update(self, batch: Batch) -> dict[str, Tensor]:
        loss = self.loss(batch)
        gradient_step(self.optimizer, loss)
        return {"bc_loss": loss.detach()}

    @torch.no_grad()
    def act(self, obs: Tensor, legals: Tensor | None = None) -> Tensor:
        if self.spec.continuous:
            return self.policy(obs)[0].clamp(self.spec.action_low, self.spec.action_high)
        return self.policy.mode(obs, legals)

"""Behaviour cloning (paper App. F.1): a Gaussian policy with unit standard deviation.

With a fixed unit std the negative log-likelihood is, up to a constant, half the squared error of the mean, so
the loss is the MSE between the policy mean and the dataset action. Evaluation plays the mean, clipped to the box.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from marlbench.algorithm import Algorithm
from marlbench.config import AlgoConfig
from marlbench.data.sampler import Batch
from marlbench.nn import AgentMLP, make_adam


@dataclass
class BCConfig(AlgoConfig):
    pass


class BC(Algorithm, name="bc", continuous=True, discrete=False):
    """Behaviour cloning with a unit-std Gaussian policy per agent."""

    Config = BCConfig

    def __init__(self, spec, cfg: BCConfig, device="cpu"):
        super().__init__(spec, cfg, device)
        self.policy = AgentMLP(
            spec.n_agents, spec.obs_dim, cfg.hidden_dims, spec.action_dim,
            shared=cfg.share_parameters, layer_norm=cfg.layer_norm,
        ).to(self.device)
        self.optimizer = make_adam(self.policy.parameters(), cfg.lr, cfg.adam_eps)

    def update(self, batch: Batch) -> dict[str, Tensor]:
        loss = 0.5 * (self.policy(batch.obs)[0] - batch.actions).square().sum(-1).mean()
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return {"bc_loss": loss.detach()}

    @torch.no_grad()
    def act(self, obs: Tensor, legals: Tensor | None = None) -> Tensor:
        return self.policy(obs)[0].clamp(self.spec.action_low, self.spec.action_high)

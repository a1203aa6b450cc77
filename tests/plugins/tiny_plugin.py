"""A third-party algorithm: a separate module that registers itself by subclassing alone."""
from dataclasses import dataclass

import torch

from marlbench.algorithm import Algorithm
from marlbench.config import AlgoConfig


@dataclass
class TinyConfig(AlgoConfig):
    scale: float = 1.0


class TinyLinear(Algorithm, name="tiny-linear", continuous=True):
    """A linear per-agent policy fitted by least squares to the data actions."""

    Config = TinyConfig

    def __init__(self, spec, cfg, device="cpu"):
        super().__init__(spec, cfg, device)
        self.policy = torch.nn.Linear(spec.obs_dim, spec.action_dim).to(self.device)
        self.optimizer = torch.optim.Adam(self.policy.parameters(), lr=1e-2)

    def update(self, batch):
        loss = (self.policy(batch.obs) - batch.actions).square().mean()
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        return {"loss": loss.detach()}

    @torch.no_grad()
    def act(self, obs, legals=None):
        return (self.cfg.scale * self.policy(obs)).clamp(-1, 1)


class DiscreteOnly(Algorithm, name="tiny-discrete", discrete=True):
    """A discrete-action-only algorithm, to exercise the capability check."""

    def update(self, batch):
        return {}

    def act(self, obs, legals=None):
        return torch.zeros(obs.shape[:2], dtype=torch.long)

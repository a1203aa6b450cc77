"""A third-party algorithm that fails its first ``fail_first`` attempts: the sweep's retry and failure records are
tested with it. Every construction appends a line to ``marker`` (a file), so attempts are counted across
processes (local workers or Ray tasks)."""
from dataclasses import dataclass
from pathlib import Path

import torch

from marlbench.algorithm import Algorithm
from marlbench.config import AlgoConfig


@dataclass
class FlakyConfig(AlgoConfig):
    fail_first: int = 0  # attempts that raise in their first update
    marker: str = ""  # the attempt log (one line per construction)


class Flaky(Algorithm, name="tiny-flaky", continuous=True):
    """Behaviour cloning with a linear policy whose first attempts fail on purpose."""

    Config = FlakyConfig

    def __init__(self, spec, cfg, device="cpu"):
        super().__init__(spec, cfg, device)
        self.policy = torch.nn.Linear(spec.obs_dim, spec.action_dim).to(self.device)
        self.optimizer = torch.optim.Adam(self.policy.parameters(), lr=1e-2)
        log = Path(cfg.marker)
        with log.open("a") as f:
            f.write("attempt\n")
        self.attempt = len(log.read_text().splitlines())

    def update(self, batch):
        if self.attempt <= self.cfg.fail_first:
            raise RuntimeError(f"injected failure (attempt {self.attempt})")
        loss = (self.policy(batch.obs) - batch.actions).square().mean()
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        return {"loss": loss.detach()}

    @torch.no_grad()
    def act(self, obs, legals=None):
        return self.policy(obs).clamp(-1, 1)

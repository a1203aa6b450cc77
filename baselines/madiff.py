"""MADiff (Zhu et al. 2024): an attention-based diffusion model of all agents' observation trajectories.

One temporal U-Net (marlbench/trajectory.py, diffuser's TemporalUnet) over the joint window x [L, N, obs_dim],
parameters shared across agents (agents folded into the batch for the convolutions), with cross-agent
self-attention at the skip connections and the bottleneck (at every time position the N agents' features attend
to each other). Trained by epsilon prediction with classifier-free return guidance (dropout 0.25) jointly with a
shared inverse-dynamics model a_t = f(o_t, o_t+1); acts with eps_u + 1.2 (eps_c - eps_u), K = 200 ancestral steps.

- ``madiff-c`` (centralised execution, O(N K) per joint action): one joint chain per environment step, every
  agent's current observation (and history) inpainted; each agent reads its own predicted o_t+1.
- ``madiff-d`` (decentralised execution, O(N^2 K)): agent i runs its own joint chain in which only agent i's
  observations are inpainted and its teammates' are generated (teammate modelling); agent i acts on its own
  predicted o^i_t+1. The N chains run batched, one network call per denoising step (B N windows). Training
  conditions each window on one random agent (the published code's agent_condition_type="single", under which
  MADiff-D is trained), so the model sees at training what it sees when acting.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from marlbench.trajectory import TrajectoryDiffusion, TrajectoryDiffusionConfig, TrajectoryModel


@dataclass
class MADiffConfig(TrajectoryDiffusionConfig):
    condition_agents: Literal["all", "single", "random"] = "all"


@dataclass
class MADiffDConfig(TrajectoryDiffusionConfig):
    condition_agents: Literal["all", "single", "random"] = "single"


class MADiffC(TrajectoryDiffusion, name="madiff-c", continuous=True, discrete=True):
    """MADiff-C: joint observation-trajectory diffusion with cross-agent attention, one centralised chain per step."""

    Config = MADiffConfig
    inference_complexity = "O(N K)"
    attention = True


class MADiffD(TrajectoryDiffusion, name="madiff-d", continuous=True, discrete=True):
    """MADiff-D: every agent denoises its own joint trajectory conditioned on its own observations only."""

    Config = MADiffDConfig
    inference_complexity = "O(N^2 K)"
    attention = True

    def plan(self, window: Tensor, model: TrajectoryModel | None = None,
             generator: torch.Generator | None = None) -> Tensor:
        """Chain i (batched as [B, N, ...] -> [B N, ...]) inpaints agent i's observed positions only; agent i's
        predicted o_t+1 is read from chain i."""
        b, hp1, n, d = window.shape
        length = self.cfg.history + self.cfg.horizon
        own = torch.eye(n, dtype=torch.bool, device=window.device)  # [chain, agent]
        values = torch.zeros(b, n, length, n, d, device=window.device)
        values[:, :, :hp1] = window[:, None] * own[None, :, None, :, None]
        mask = torch.zeros(b, n, length, n, dtype=torch.bool, device=window.device)
        mask[:, :, :hp1] = own[None, :, None, :]
        x = self.sample(values.reshape(b * n, length, n, d), mask.reshape(b * n, length, n), model, generator)
        nxt = x.reshape(b, n, length, n, d)[:, :, hp1]  # [B, chain, agent, do]
        return nxt.diagonal(dim1=1, dim2=2).transpose(1, 2)  # chain i's agent i -> [B, N, do]

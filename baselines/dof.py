"""DoF (Li et al. 2025, DoF-Trajectory with the W-concat noise factorisation): decentralised trajectory diffusion.

The temporal U-Net of marlbench/trajectory.py WITHOUT cross-agent attention is applied to each agent's own
observation window (agents folded into the batch, parameters shared, a learned agent-id embedding added to the
conditioning). Noise factorisation (W-concat): the joint noise is the concatenation over agents of the weighted
per-agent predictions

    eps = concat_i ( w_i eps_theta(x^i_k, k, R, i) / sum_j w_j ),      w_j = softplus(rho_j) > 0, w_j = 1 at init,

used both in the training loss || eps - eps_true ||^2 (one joint noise target) and in every sampling step (the
published code's use_learnable_agent_weights: the weighted per-agent noises are stacked along the agent axis, not
summed). Each agent's chain needs only its own observations and the constant w_i / sum_j w_j, so execution is
decentralised: all N agents run batched in one network call per denoising step (O(K) per agent, O(N K) total).
Inverse dynamics, return guidance (dropout 0.25, w = 1.2) and history inpainting as MADiff.
"""
from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

from marlbench.trajectory import TrajectoryDiffusion, TrajectoryDiffusionConfig, TrajectoryModel


@dataclass
class DoFConfig(TrajectoryDiffusionConfig):
    agent_id: bool = True  # the published code passes no id; shared weights here get a learned id embedding


class DoF(TrajectoryDiffusion, name="dof", continuous=True, discrete=True):
    """DoF: per-agent trajectory diffusion (no cross-agent attention) with W-concat noise factorisation."""

    Config = DoFConfig
    inference_complexity = "O(K)"
    attention = False
    noise_weights = True

    def combine(self, model: TrajectoryModel, eps: Tensor) -> Tensor:
        """eps [B, L, N, do]: agent i's prediction scaled by w_i / sum_j w_j."""
        w = model.noise_weights()
        return eps * (w / w.sum())[:, None]

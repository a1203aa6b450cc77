"""Diffusion BC (paper App. F.1): behaviour cloning with a per-agent DDPM policy (Ho et al. 2020).

Each agent's action is denoised by one shared noise model eps_theta(o_i, id_i, a_k, emb(k)) (AgentMLP with a one-hot
agent id; emb: sinusoidal features of the step), trained with the epsilon-prediction loss
E_{k, eps} ||eps - eps_theta(o_i, id_i, sqrt(ab_k) a_0 + sqrt(1 - ab_k) eps, k)||^2 (DDPM Eq. 14), one independent
step k and noise per (transition, agent). K = 200 steps (App. F.1); the schedule is a config option
(marlbench/diffusion.py: linear scaled to K by default, cosine).
Acting: ancestral sampling (DDPM Alg. 2) from N(0, I), all agents batched in one network call per step (O(K)); the
predicted x_0 is clipped to the data range at every step (``clip_denoised``).
Continuous: diffusion runs in [-1, 1] box coordinates; the sample is mapped back and clipped to the action box.
Discrete: the one-hot action vector is diffused in the relaxed space [0, 1]^nA (App. F.1); the sample is decoded by
the argmax over legal actions. ``discrete_diffusion="x0"`` (not the paper's) keeps the schedule and the sampler but
lets the network output logits of x_0 = onehot(a), trained by cross-entropy; x_0_hat = softmax(logits) and the
sampler uses the noise it implies. It is the DDPM analogue of ``discrete_flow="endpoint"`` (marlbench/flows.py):
epsilon-MSE through the noisy one-hot vector learns the observation-to-action decision slowly
(benchmarks/onehot_flow.py, docs/ALGORITHMS.md).
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
from marlbench.diffusion import DDPM, check_discrete_diffusion, one_hot_denoising_loss, timestep_embedding
from marlbench.errors import ConfigError
from marlbench.heads import ActionBox, masked_logits
from marlbench.nn import AgentMLP, gradient_step, make_adam


@dataclass
class DiffusionBCConfig(AlgoConfig):
    diffusion_steps: int = 200  # K (App. F.1: a Gaussian diffusion scheduler with 200 timesteps)
    schedule: Literal["linear", "cosine"] = "linear"
    beta_start: float = 1e-4  # linear schedule, given for K = 1000 and scaled by 1000 / K (capped at 0.999)
    beta_end: float = 0.02
    time_embed_dim: int = 16  # sinusoidal step features appended to the noise model's input
    clip_denoised: bool = True  # clip the predicted x_0 to the data range at every reverse step
    # discrete actions: "epsilon" = App. F.1's noise prediction; "x0" = x_0's logits by cross-entropy (module doc)
    discrete_diffusion: Literal["epsilon", "x0"] = "epsilon"

    def validate(self) -> None:
        if self.diffusion_steps < 1 or self.time_embed_dim < 4 or self.time_embed_dim % 2:
            raise ConfigError("diffusion-bc needs diffusion_steps >= 1 and an even time_embed_dim >= 4")
        if not 0 < self.beta_start <= self.beta_end < 1:
            raise ConfigError("diffusion-bc needs 0 < beta_start <= beta_end < 1")


class DiffusionBC(Algorithm, name="diffusion-bc", continuous=True, discrete=True):
    """Diffusion BC: per-agent DDPM policy (K = 200) trained by noise prediction, ancestral sampling when acting."""

    Config = DiffusionBCConfig
    inference_complexity = "O(K)"

    def __init__(self, spec, cfg: DiffusionBCConfig, device="cpu"):
        super().__init__(spec, cfg, device)
        check_discrete_diffusion(cfg.discrete_diffusion, spec)
        self.box = ActionBox(spec)
        clip = ((-1.0, 1.0) if spec.continuous else (0.0, 1.0)) if cfg.clip_denoised else None
        self.ddpm = DDPM(cfg.diffusion_steps, cfg.schedule, cfg.beta_start, cfg.beta_end, clip)
        steps = torch.arange(cfg.diffusion_steps)
        self.register_buffer("step_features", timestep_embedding(steps, cfg.time_embed_dim), persistent=False)
        self.noise_model = AgentMLP(spec.n_agents, spec.obs_dim + spec.action_dim + cfg.time_embed_dim,
                                    cfg.hidden_dims, spec.action_dim, shared=cfg.share_parameters,
                                    layer_norm=cfg.layer_norm)
        self.to(self.device)
        self.optimizer = make_adam(self.noise_model.parameters(), cfg.lr, cfg.adam_eps)

    def network(self, obs: Tensor, x: Tensor, t: Tensor | int) -> Tensor:
        """The model's output at (o_i, id_i, x_k, emb(k)) for obs [B,N,do], x [B,N,da], t [B,N] indices or one int:
        the noise, or x_0's logits with ``discrete_diffusion="x0"``; [B,N,da]."""
        emb = self.step_features[t]
        emb = emb.expand(*x.shape[:-1], emb.shape[-1])
        return self.noise_model(torch.cat([obs, x, emb], -1))[0]

    def eps(self, obs: Tensor, x: Tensor, t: Tensor | int) -> Tensor:
        """eps_theta(o_i, id_i, x_k, emb(k)), or the noise the predicted x_0 = softmax(logits) implies."""
        return self.ddpm.as_eps(self.network(obs, x, t), x, t, self.cfg.discrete_diffusion)

    def clean_actions(self, batch: Batch) -> Tensor:
        """x_0: box coordinates in [-1, 1] (continuous) or the one-hot action (discrete)."""
        if self.spec.continuous:
            return self.box.unscale(batch.actions)
        return F.one_hot(batch.actions, self.spec.action_dim).float()

    def loss(self, batch: Batch) -> Tensor:
        x0 = self.clean_actions(batch)
        t = torch.randint(0, self.cfg.diffusion_steps, x0.shape[:-1], device=x0.device)
        noise = torch.randn_like(x0)
        out = self.network(batch.obs, self.ddpm.q_sample(x0, t, noise), t)
        if self.spec.continuous:
            return (out - noise).square().mean()
        return one_hot_denoising_loss(out, noise, batch.actions, self.cfg.discrete_diffusion)

    def update(self, batch: Batch) -> dict[str, Tensor]:
        loss = self.loss(batch)
        gradient_step(self.optimizer, loss)
        return {"diffusion_loss": loss.detach()}

    @torch.no_grad()
    def sample(self, obs: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """x_0 for every agent from K ancestral steps (one batched network call per step)."""
        shape = (*obs.shape[:-1], self.spec.action_dim)
        x = torch.randn(shape, generator=generator, device=obs.device)
        return self.ddpm.sample(lambda xk, t: self.eps(obs, xk, t), x, generator)

    @torch.no_grad()
    def act(self, obs: Tensor, legals: Tensor | None = None) -> Tensor:
        x = self.sample(obs)
        if self.spec.continuous:
            return self.box.clip(self.box.scale(x))
        return masked_logits(x, legals).argmax(-1)

"""Trajectory diffusion shared by MADiff (Zhu et al. 2024) and DoF (Li et al. 2025): a temporal U-Net generates
windows of future OBSERVATIONS and an inverse-dynamics model recovers the actions (Decision Diffuser's recipe).

Window: L = history + horizon positions of every agent's (normalised) observation, the current step t at position
``history`` (``SegmentBatch``). Training (one Adam on 0.5 (L_diff + L_inv), as the published MADiff/DoF codes):

    L_diff = E_{k, eps} || eps - eps_theta(x_k, k, R) ||^2 over the positions that are not inpainted and lie inside
             the episode, x_k = sqrt(ab_k) x_0 + sqrt(1 - ab_k) eps with the observed positions 0..history
             overwritten by x_0 (diffuser's apply_conditioning); R is dropped (null embedding) with p = 0.25
    L_inv  = || f(o_t, o_{t+1}) - a_t ||^2 (box coordinates) or CE(f(o_t, o_{t+1}), a_t) over legal actions, on
             every pair (t, t+1) of the window with both steps inside the episode

Acting: K-step ancestral DDPM from N(0, I) with classifier-free guidance eps_u + w (eps_c - eps_u) (w = 1.2, R =
``target_return`` = 1, the top of the sampler's [0, 1] returns-to-go scale); the observed positions are inpainted at
every step. The predicted o_{t+1} at position history + 1 and the observed o_t give a_t = f(o_t, o_{t+1}).

The temporal U-Net is Janner et al.'s diffuser TemporalUnet (residual blocks Conv1d(k=5) + GroupNorm + Mish with the
step and return embeddings added, Conv1d stride-2 down- and ConvTranspose1d up-sampling, skip connections, widths
dim * dim_mults); ``attention=True`` adds MADiff's cross-agent self-attention at the skip connections and the
bottleneck. Agents are folded into the batch for the convolutions (parameters shared across agents).

This module holds the U-Net, the inverse dynamics, the observation normaliser and the unregistered base class
``TrajectoryDiffusion`` (no ``name=``): baselines/madiff.py and baselines/dof.py subclass it.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from marlbench.algorithm import Algorithm
from marlbench.config import AlgoConfig
from marlbench.data.dataset import Dataset
from marlbench.data.sampler import SegmentBatch, SegmentSampler
from marlbench.diffusion import DDPM, guided_eps, timestep_embedding
from marlbench.errors import ConfigError
from marlbench.heads import ActionBox, masked_logits
from marlbench.nn import AgentMLP, gradient_step, make_adam, polyak_update


@dataclass
class TrajectoryDiffusionConfig(AlgoConfig):
    """Defaults: MADiff's/DoF's published settings for MPE (horizon 24, no history); the profiles set MA-MuJoCo's
    (10, 18) and SMAC's (4, 20). ``hidden_dims``/``layer_norm`` size the inverse-dynamics MLP."""

    horizon: int = 24  # H: positions from the current step on
    history: int = 0  # observed past steps before the current one (inpainted, never in the loss)
    dim: int = 128  # U-Net base width (diffuser/MADiff: 128)
    dim_mults: tuple[int, ...] = (1, 2, 4, 8)  # widths dim * m per level; len - 1 down-samplings
    kernel_size: int = 5
    groups: int = 8  # GroupNorm groups
    heads: int = 4  # cross-agent attention heads (MADiff)
    agent_id: bool = False  # add a learned agent-id embedding to the U-Net's conditioning
    diffusion_steps: int = 200  # K (the paper's setting for MADiff/DoF, App. F)
    schedule: Literal["linear", "cosine"] = "cosine"  # MADiff/DoF: diffusers' squaredcos_cap_v2
    beta_start: float = 1e-4  # linear schedule only
    beta_end: float = 0.02
    clip_denoised: bool = True  # clip the predicted x_0 to the normalised range [-1, 1] at every reverse step
    # what the U-Net predicts: the noise (MADiff's GaussianDiffusion default) or the clean window x_0 (diffuser's
    # locomotion configs, predict_epsilon=False); guidance combines whichever it predicts
    prediction: Literal["epsilon", "x0"] = "epsilon"
    init_noise_scale: float = 0.5  # sampling starts from init_noise_scale * N(0, I) (MADiff: 0.5, "low temperature")
    returns_condition: bool = True
    condition_dropout: float = 0.25  # classifier-free guidance: P(return embedding dropped) in training
    guidance_weight: float = 1.2  # w in eps_u + w (eps_c - eps_u)
    target_return: float = 1.0  # conditioning return when acting (returns-to-go are scaled to [0, 1])
    # whose observed positions are inpainted in training: "all" agents (MADiff-C, DoF), one random agent per
    # window (MADiff-D: the published agent_condition_type="single") or each agent with probability 1/2 ("random")
    condition_agents: Literal["all", "single", "random"] = "all"
    # diffusion-loss weight of the agents whose observations are not inpainted (the published opponent_loss_weight;
    # 1.0 = its default None: every agent weighs the same)
    opponent_loss_weight: float = 1.0
    ema_decay: float = 0.995  # acting uses an EMA copy (diffuser: decay 0.995 every 10 steps from step 2000)
    ema_every: int = 10
    ema_start: int = 2000  # before it, the EMA copy follows the model
    # diagnostics: windows of the fresh batch that are planned with the full K-step chain (0: none) to measure the
    # planner's o_t+1 error against the one-step change it must resolve, and the action error it causes
    plan_diagnostic_windows: int = 16
    hidden_dims: tuple[int, ...] = (256, 256)  # inverse dynamics (published: 2 x 256)
    lr: float = 2e-4  # MADiff/DoF learning rate

    def validate(self) -> None:
        name = type(self).__name__
        if self.horizon < 2 or self.history < 0:
            raise ConfigError(f"{name} needs horizon >= 2 (the action reads o_t+1) and history >= 0")
        if self.dim < 4 or self.dim % 2 or not self.dim_mults or min(self.dim_mults) < 1:
            raise ConfigError(f"{name} needs an even dim >= 4 and positive dim_mults")
        if self.dim % self.groups or self.dim % self.heads:
            raise ConfigError(f"{name} needs dim divisible by groups ({self.groups}) and heads ({self.heads}); "
                              f"got dim={self.dim}")
        if self.kernel_size < 1 or self.kernel_size % 2 == 0:
            raise ConfigError(f"{name} needs an odd kernel_size")
        if self.diffusion_steps < 1 or not 0 < self.beta_start <= self.beta_end < 1:
            raise ConfigError(f"{name} needs diffusion_steps >= 1 and 0 < beta_start <= beta_end < 1")
        if self.opponent_loss_weight < 0:
            raise ConfigError(f"{name} needs opponent_loss_weight >= 0")
        if self.plan_diagnostic_windows < 0:
            raise ConfigError(f"{name} needs plan_diagnostic_windows >= 0")
        if self.init_noise_scale <= 0:
            raise ConfigError(f"{name} needs init_noise_scale > 0")
        if not 0 <= self.condition_dropout < 1 or not 0 <= self.ema_decay < 1 or self.ema_every < 1:
            raise ConfigError(f"{name} needs condition_dropout and ema_decay in [0, 1), ema_every >= 1")


# ---------------------------------------------------------------------------------------------------- the U-Net
class Conv1dBlock(nn.Sequential):
    """Conv1d -> GroupNorm -> Mish (diffuser's Conv1dBlock)."""

    def __init__(self, cin: int, cout: int, kernel: int, groups: int):
        super().__init__(nn.Conv1d(cin, cout, kernel, padding=kernel // 2), nn.GroupNorm(groups, cout), nn.Mish())


class ResidualTemporalBlock(nn.Module):
    """Two Conv1dBlocks, the embedding (Mish -> Linear) added after the first, and a 1x1 residual projection."""

    def __init__(self, cin: int, cout: int, embed_dim: int, kernel: int, groups: int):
        super().__init__()
        self.first, self.second = Conv1dBlock(cin, cout, kernel, groups), Conv1dBlock(cout, cout, kernel, groups)
        self.embed = nn.Sequential(nn.Mish(), nn.Linear(embed_dim, cout))
        self.residual = nn.Conv1d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:
        return self.second(self.first(x) + self.embed(emb)[..., None]) + self.residual(x)


class AgentAttention(nn.Module):
    """Cross-agent self-attention (MADiff): at every time position the N agents' feature vectors attend to each
    other, h + MHA(LN(h)). Input [B*N, C, L] with agents folded into the batch (agent-minor)."""

    def __init__(self, channels: int, heads: int, n_agents: int):
        super().__init__()
        self.n_agents = n_agents
        self.norm = nn.LayerNorm(channels)
        self.attn = nn.MultiheadAttention(channels, heads, batch_first=True)

    def forward(self, h: Tensor) -> Tensor:
        rows, c, length = h.shape
        b, n = rows // self.n_agents, self.n_agents
        x = h.reshape(b, n, c, length).permute(0, 3, 1, 2).reshape(b * length, n, c)
        y = self.norm(x)
        y = self.attn(y, y, y, need_weights=False)[0]
        return h + y.reshape(b, length, n, c).permute(0, 2, 3, 1).reshape(rows, c, length)


class TemporalUnet(nn.Module):
    """eps_theta(x_k, k, R) for windows x [B, L, N, obs_dim] -> [B, L, N, obs_dim].

    Lengths not divisible by 2^(levels - 1) are padded at the end (the last frame repeated) and cropped back.
    ``drop`` [B] bool replaces the return embedding by the null (zero) embedding for those rows.
    """

    def __init__(self, obs_dim: int, n_agents: int, dim: int, dim_mults: tuple[int, ...], kernel: int = 5,
                 groups: int = 8, attention: bool = False, heads: int = 4, returns_condition: bool = True,
                 agent_id: bool = False):
        super().__init__()
        self.n_agents, self.dim, self.returns_condition = n_agents, dim, returns_condition
        self.stride = 2 ** (len(dim_mults) - 1)
        self.time_mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.Mish(), nn.Linear(4 * dim, dim))
        embed_dim = dim
        if returns_condition:
            self.returns_mlp = nn.Sequential(nn.Linear(1, dim), nn.Mish(), nn.Linear(dim, 4 * dim), nn.Mish(),
                                             nn.Linear(4 * dim, dim))
            embed_dim = 2 * dim
        self.agent_embed = nn.Embedding(n_agents, embed_dim) if agent_id else None

        def attend(channels: int) -> nn.Module:
            return AgentAttention(channels, heads, n_agents) if attention else nn.Identity()

        dims = [obs_dim, *(dim * m for m in dim_mults)]
        in_out = list(zip(dims[:-1], dims[1:]))
        self.downs = nn.ModuleList()
        for i, (cin, cout) in enumerate(in_out):
            last = i == len(in_out) - 1
            self.downs.append(nn.ModuleList([
                ResidualTemporalBlock(cin, cout, embed_dim, kernel, groups),
                ResidualTemporalBlock(cout, cout, embed_dim, kernel, groups),
                attend(cout),
                nn.Identity() if last else nn.Conv1d(cout, cout, 3, 2, 1),
            ]))
        mid = dims[-1]
        self.mid1 = ResidualTemporalBlock(mid, mid, embed_dim, kernel, groups)
        self.mid_attn = attend(mid)
        self.mid2 = ResidualTemporalBlock(mid, mid, embed_dim, kernel, groups)
        self.ups = nn.ModuleList()
        for cin, cout in reversed(in_out[1:]):
            self.ups.append(nn.ModuleList([
                ResidualTemporalBlock(2 * cout, cin, embed_dim, kernel, groups),
                ResidualTemporalBlock(cin, cin, embed_dim, kernel, groups),
                nn.ConvTranspose1d(cin, cin, 4, 2, 1),
            ]))
        self.final = nn.Sequential(Conv1dBlock(dim, dim, kernel, groups), nn.Conv1d(dim, obs_dim, 1))

    def forward(self, x: Tensor, t: Tensor, returns: Tensor | None = None, drop: Tensor | None = None) -> Tensor:
        b, length, n, d = x.shape
        h = x.permute(0, 2, 3, 1).reshape(b * n, d, length)
        pad = (-length) % self.stride
        if pad:
            h = F.pad(h, (0, pad), mode="replicate")
        emb = self.time_mlp(timestep_embedding(t, self.dim))
        if self.returns_condition:
            r = self.returns_mlp(returns.reshape(b, 1).to(x.dtype))
            if drop is not None:
                r = r * (~drop).to(r.dtype)[:, None]
            emb = torch.cat([emb, r], -1)
        emb = emb.repeat_interleave(n, 0)  # [B*N, E], agent-minor like h
        if self.agent_embed is not None:
            emb = emb + self.agent_embed.weight.repeat(b, 1)
        skips = []
        for res1, res2, attn, down in self.downs:
            h = res2(res1(h, emb), emb)
            skips.append(attn(h))
            h = down(h)
        h = self.mid2(self.mid_attn(self.mid1(h, emb)), emb)
        for res1, res2, up in self.ups:
            h = up(res2(res1(torch.cat([h, skips.pop()], 1), emb), emb))
        h = self.final(h)[..., :length]
        return h.reshape(b, n, d, length).permute(0, 3, 1, 2)


class ObservationNormaliser(nn.Module):
    """Per-dimension min/max to [-1, 1] (diffuser's LimitsNormalizer), shared by the agents; buffers, so
    checkpoints carry them. Identity until ``fit`` (e.g. ``marlbench bench inference``)."""

    def __init__(self, obs_dim: int):
        super().__init__()
        self.register_buffer("low", -torch.ones(obs_dim))
        self.register_buffer("high", torch.ones(obs_dim))

    def fit(self, obs: Tensor) -> None:
        flat = obs.reshape(-1, obs.shape[-1]).float()
        low, high = flat.min(0).values, flat.max(0).values
        flat_dims = (high - low) < 1e-6  # constant features map to 0
        low, high = torch.where(flat_dims, low - 1, low), torch.where(flat_dims, high + 1, high)
        self.low.copy_(low)
        self.high.copy_(high)

    def forward(self, obs: Tensor) -> Tensor:
        return 2 * (obs - self.low) / (self.high - self.low) - 1

    def unnormalise(self, x: Tensor) -> Tensor:
        return self.low + (x + 1) * 0.5 * (self.high - self.low)


class TrajectoryModel(nn.Module):
    """The trained parts: U-Net, inverse dynamics f(o_t, o_t+1) -> a_t (AgentMLP, one-hot id when shared) and,
    for DoF, the noise-factorisation weights w = softplus(rho) > 0 (init 1). The EMA copy duplicates this."""

    def __init__(self, spec, cfg: TrajectoryDiffusionConfig, attention: bool, noise_weights: bool):
        super().__init__()
        self.unet = TemporalUnet(spec.obs_dim, spec.n_agents, cfg.dim, cfg.dim_mults, cfg.kernel_size, cfg.groups,
                                 attention, cfg.heads, cfg.returns_condition, cfg.agent_id)
        self.inverse = AgentMLP(spec.n_agents, 2 * spec.obs_dim, cfg.hidden_dims, spec.action_dim,
                                shared=cfg.share_parameters, layer_norm=cfg.layer_norm)
        # softplus^-1(1) = log(e - 1): w starts at 1
        self.noise_rho = (nn.Parameter(torch.full((spec.n_agents,), 0.5413248546129181)) if noise_weights
                          else None)

    def noise_weights(self) -> Tensor | None:
        return None if self.noise_rho is None else F.softplus(self.noise_rho)


# ------------------------------------------------------------------------------------------------ the algorithm
class TrajectoryDiffusion(Algorithm):
    """Base of MADiff and DoF (unregistered: no ``name=``). Subclasses set ``attention`` and ``noise_weights`` and
    may override ``combine`` (the noise factorisation) and ``plan`` (which chains are sampled when acting)."""

    Config = TrajectoryDiffusionConfig
    attention: ClassVar[bool] = False
    noise_weights: ClassVar[bool] = False

    def __init__(self, spec, cfg: TrajectoryDiffusionConfig, device="cpu"):
        super().__init__(spec, cfg, device)
        self.box = ActionBox(spec)
        self.ddpm = DDPM(cfg.diffusion_steps, cfg.schedule, cfg.beta_start, cfg.beta_end,
                         (-1.0, 1.0) if cfg.clip_denoised else None)
        self.normaliser = ObservationNormaliser(spec.obs_dim)
        self.model = TrajectoryModel(spec, cfg, self.attention, self.noise_weights)
        self.ema = copy.deepcopy(self.model).requires_grad_(False)
        self.register_buffer("updates", torch.zeros((), dtype=torch.long))
        self.to(self.device)
        self.optimizer = make_adam(self.model.parameters(), cfg.lr, cfg.adam_eps)
        self._history: Tensor | None = None  # normalised past observations of the running evaluation episodes

    @classmethod
    def make_sampler(cls, dataset: Dataset, cfg: TrajectoryDiffusionConfig, device, seed: int = 0,
                     batch_size: int | None = None) -> SegmentSampler:
        return SegmentSampler(dataset, batch_size or cfg.batch_size, cfg.history, cfg.horizon, cfg.gamma, device,
                              seed)

    def prepare(self, dataset: Dataset) -> None:
        self.normaliser.fit(torch.from_numpy(dataset.obs).to(self.device))

    # -- the noise model
    def combine(self, model: TrajectoryModel, eps: Tensor) -> Tensor:
        """The joint noise from the network's output [B, L, N, do]; identity unless factorised (DoF)."""
        return eps

    def eps(self, model: TrajectoryModel, x: Tensor, t: Tensor, returns: Tensor | None,
            drop: Tensor | None) -> Tensor:
        return self.combine(model, model.unet(x, t, returns if self.cfg.returns_condition else None, drop))

    def guided(self, model: TrajectoryModel, x: Tensor, t: int, returns: Tensor) -> Tensor:
        """The noise estimate of x_k for the ancestral step: u + w (c - u) of the network's conditional and
        unconditional outputs (one network call for both), converted to epsilon when the network predicts x_0."""
        b = x.shape[0]
        if not self.cfg.returns_condition:
            out = self.eps(model, x, torch.full((b,), t, device=x.device), None, None)
        else:
            drop = torch.arange(2 * b, device=x.device) >= b
            both = self.eps(model, torch.cat([x, x]), torch.full((2 * b,), t, device=x.device),
                            torch.cat([returns, returns]), drop)
            out = guided_eps(both[:b], both[b:], self.cfg.guidance_weight)
        return self.ddpm.eps_from_x0(x, t, out) if self.cfg.prediction == "x0" else out

    # -- training
    def condition_mask(self, b: int, length: int, n: int, device) -> Tensor:
        """[B, L, N] bool: the inpainted (observed) positions 0..history of all agents or of one random agent."""
        mask = torch.zeros(b, length, n, dtype=torch.bool, device=device)
        if self.cfg.condition_agents == "all":
            mask[:, : self.cfg.history + 1] = True
        elif self.cfg.condition_agents == "random":
            mask[:, : self.cfg.history + 1] = torch.rand(b, 1, n, device=device) < 0.5
        else:
            agent = torch.randint(0, n, (b,), device=device)
            mask[:, : self.cfg.history + 1] = F.one_hot(agent, n).bool()[:, None]
        return mask

    def inverse_targets(self, batch: SegmentBatch) -> tuple[Tensor, Tensor, Tensor]:
        """(inputs [B, L-1, N, 2 do], targets, pair mask [B, L-1]) on every pair (t, t+1) inside the episode."""
        x = self.normaliser(batch.obs)
        inputs = torch.cat([x[:, :-1], x[:, 1:]], -1)
        actions = batch.actions[:, :-1]
        targets = self.box.unscale(actions) if self.spec.continuous else actions
        return inputs, targets, batch.mask[:, :-1] * batch.mask[:, 1:]

    def inverse_error(self, model: TrajectoryModel, batch: SegmentBatch) -> tuple[Tensor, Tensor]:
        """(masked loss, masked accuracy or MSE in box coordinates)."""
        inputs, targets, pair = self.inverse_targets(batch)
        out = model.inverse(inputs)[0]
        weight = pair[..., None].expand(*out.shape[:-1])
        total = weight.sum().clamp(min=1)
        if self.spec.continuous:
            err = (out - targets).square().mean(-1)
            loss = (err * weight).sum() / total
            return loss, loss
        legals = None if batch.legals is None else batch.legals[:, :-1]
        logits = masked_logits(out, legals)
        ce = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), reduction="none")
        acc = (logits.argmax(-1) == targets).float()
        return (ce.reshape(weight.shape) * weight).sum() / total, (acc * weight).sum() / total

    def denoise_error(self, model: TrajectoryModel, batch: SegmentBatch, t: Tensor,
                      drop: Tensor | None) -> Tensor:
        """Masked prediction error (of the noise or of x_0, ``prediction``) over the positions inside the episode
        that are not inpainted."""
        x0 = self.normaliser(batch.obs)
        b, length, n, _ = x0.shape
        cond = self.condition_mask(b, length, n, x0.device)
        noise = torch.randn_like(x0)
        xk = torch.where(cond[..., None], x0, self.ddpm.q_sample(x0, t, noise))
        out = self.eps(model, xk, t, batch.returns, drop)
        target = noise if self.cfg.prediction == "epsilon" else x0
        weight = batch.mask[:, :, None] * (~cond)
        if self.cfg.opponent_loss_weight != 1.0:  # agents not conditioned at the current step are the opponents
            own = cond[:, self.cfg.history]  # [B, N]
            weight = weight * torch.where(own, 1.0, self.cfg.opponent_loss_weight)[:, None]
        return ((out - target).square().mean(-1) * weight).sum() / weight.sum().clamp(min=1)

    def loss(self, batch: SegmentBatch) -> tuple[Tensor, Tensor]:
        b = batch.obs.shape[0]
        t = torch.randint(0, self.cfg.diffusion_steps, (b,), device=batch.obs.device)
        drop = torch.rand(b, device=batch.obs.device) < self.cfg.condition_dropout
        return self.denoise_error(self.model, batch, t, drop), self.inverse_error(self.model, batch)[0]

    def update(self, batch: SegmentBatch) -> dict[str, Tensor]:
        diffusion, inverse = self.loss(batch)
        gradient_step(self.optimizer, 0.5 * (diffusion + inverse))
        self.updates += 1
        if int(self.updates) % self.cfg.ema_every == 0:
            if int(self.updates) < self.cfg.ema_start:
                self.ema.load_state_dict(self.model.state_dict())
            else:
                polyak_update(self.ema, self.model, 1.0 - self.cfg.ema_decay)
        return {"diffusion_loss": diffusion.detach(), "inverse_loss": inverse.detach()}

    @torch.no_grad()
    def diagnostics(self, batch: SegmentBatch) -> dict[str, float]:
        """Each term alive: denoising error at k = 10%/50%/90% of K (conditional), the return conditioning's effect
        |eps_c - eps_u| / |eps_c| at k = K/2, and the inverse dynamics' MSE (box coordinates) or accuracy."""
        out: dict[str, float] = {}
        b, big_k = batch.obs.shape[0], self.cfg.diffusion_steps
        for frac in (0.1, 0.5, 0.9):
            k = min(big_k - 1, int(frac * big_k))
            t = torch.full((b,), k, device=batch.obs.device)
            out[f"denoise_mse_k{int(frac * 100)}"] = float(self.denoise_error(self.model, batch, t, None))
        if self.cfg.returns_condition:
            x = self.normaliser(batch.obs)
            t = torch.full((b,), big_k // 2, device=x.device)
            xk = self.ddpm.q_sample(x, t, torch.randn_like(x))
            cond = self.model.unet(xk, t, batch.returns, None)
            uncond = self.model.unet(xk, t, batch.returns, torch.ones(b, dtype=torch.bool, device=x.device))
            out["guidance_gap"] = float((cond - uncond).abs().mean() / cond.abs().mean().clamp(min=1e-8))
        _, metric = self.inverse_error(self.model, batch)
        out["inverse_mse" if self.spec.continuous else "inverse_accuracy"] = float(metric)
        out.update(self.plan_diagnostics(batch))
        weights = self.model.noise_weights()
        if weights is not None:
            out["noise_weight_min"], out["noise_weight_max"] = float(weights.min()), float(weights.max())
        return out

    @torch.no_grad()
    def plan_diagnostics(self, batch: SegmentBatch) -> dict[str, float]:
        """Where observation planning breaks: on the first ``plan_diagnostic_windows`` windows whose t+1 lies in the
        episode, the acting model's planned o_t+1 against the data's (``plan_obs_mse``, normalised units), the
        one-step change the plan must resolve (``obs_step_mse``: |o_t+1 - o_t|^2, what "no change" would score),
        and the inverse dynamics' action on the planned o_t+1 against the data action (``plan_action_mse`` in box
        coordinates, beside ``action_var``, what predicting the mean would score; discrete:
        ``plan_action_accuracy``)."""
        h, n = self.cfg.history, self.cfg.plan_diagnostic_windows
        keep = batch.mask[:, h + 1] > 0
        if n <= 0 or not bool(keep.any()):
            return {}
        x = self.normaliser(batch.obs[keep][:n])
        planned = self.plan(x[:, : h + 1], self.ema)
        out = {"plan_obs_mse": float((planned - x[:, h + 1]).square().mean()),
               "obs_step_mse": float((x[:, h + 1] - x[:, h]).square().mean())}
        act = self.ema.inverse(torch.cat([x[:, h], planned], -1))[0]
        data = batch.actions[keep][:n][:, h]
        if self.spec.continuous:
            target = self.box.unscale(data)
            out["plan_action_mse"] = float((act - target).square().mean())
            out["action_var"] = float(target.var(0).mean())
        else:
            legals = None if batch.legals is None else batch.legals[keep][:n][:, h]
            out["plan_action_accuracy"] = float((masked_logits(act, legals).argmax(-1) == data).float().mean())
        return out

    # -- acting
    def start_episodes(self, count: int) -> None:
        self._history = None

    def observed_window(self, x: Tensor) -> Tensor:
        """[B, history + 1, N, do] normalised observations up to now; the history restarts when episodes start
        or the batch size changes (positions before the episode's first step repeat it, as the sampler pads)."""
        h = self.cfg.history
        if h == 0:
            return x[:, None]
        if self._history is None or self._history.shape[0] != x.shape[0]:
            self._history = x[:, None].expand(-1, h, -1, -1).clone()
        window = torch.cat([self._history, x[:, None]], 1)
        self._history = window[:, 1:]
        return window

    @torch.no_grad()
    def sample(self, values: Tensor, mask: Tensor, model: TrajectoryModel | None = None,
               generator: torch.Generator | None = None) -> Tensor:
        """Windows [B', L, N, do] from K guided ancestral steps with ``values`` inpainted where ``mask`` [B', L, N]
        (overwriting the input of every step is diffuser's apply_conditioning: DDPM steps act elementwise, so
        the generated positions are exactly those of x_k-1 = step(apply(x_k)))."""
        model = self.ema if model is None else model
        returns = torch.full((values.shape[0],), self.cfg.target_return, device=values.device)

        def apply(x: Tensor) -> Tensor:
            return torch.where(mask[..., None], values, x)

        x = self.cfg.init_noise_scale * torch.randn(values.shape, generator=generator, device=values.device)
        return apply(self.ddpm.sample(lambda xk, t: self.guided(model, apply(xk), t, returns), x, generator))

    def plan(self, window: Tensor, model: TrajectoryModel | None = None,
             generator: torch.Generator | None = None) -> Tensor:
        """Predicted normalised o_t+1 [B, N, do]: one joint chain conditioned on every agent's observations."""
        b, hp1, n, d = window.shape
        values = torch.zeros(b, self.cfg.history + self.cfg.horizon, n, d, device=window.device)
        values[:, :hp1] = window
        mask = torch.zeros(values.shape[:-1], dtype=torch.bool, device=window.device)
        mask[:, :hp1] = True
        return self.sample(values, mask, model, generator)[:, hp1]

    def actions_from(self, model: TrajectoryModel, x: Tensor, x_next: Tensor, legals: Tensor | None) -> Tensor:
        out = model.inverse(torch.cat([x, x_next], -1))[0]
        if self.spec.continuous:
            return self.box.clip(self.box.scale(out))
        return masked_logits(out, legals).argmax(-1)

    @torch.no_grad()
    def act(self, obs: Tensor, legals: Tensor | None = None, generator: torch.Generator | None = None) -> Tensor:
        x = self.normaliser(obs)
        x_next = self.plan(self.observed_window(x), self.ema, generator)
        return self.actions_from(self.ema, x, x_next, legals)

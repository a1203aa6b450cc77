"""DDPM machinery shared by the diffusion baselines (Diffusion BC; MADiff and DoF reuse it).

Ho, Jain & Abbeel 2020 ("DDPM"), with the cosine schedule of Nichol & Dhariwal 2021 as an option:

    q(x_k | x_0)          = N(sqrt(ab_k) x_0, (1 - ab_k) I),          ab_k = prod_{s<=k} (1 - beta_s)
    q(x_{k-1} | x_k, x_0) = N(c0_k x_0 + ck_k x_k, tvar_k I),
        c0_k = sqrt(ab_{k-1}) beta_k / (1 - ab_k),   ck_k = sqrt(alpha_k) (1 - ab_{k-1}) / (1 - ab_k),
        tvar_k = beta_k (1 - ab_{k-1}) / (1 - ab_k)                  (DDPM Eq. 6-7; ab_0 = 1)
    x_0 = (x_k - sqrt(1 - ab_k) eps) / sqrt(ab_k)                      (epsilon -> x_0, DDPM Eq. 4 inverted)
    eps = (x_k - sqrt(ab_k) x_0) / sqrt(1 - ab_k)                      (x_0 -> epsilon, for x_0-predicting models)

Ancestral sampling (DDPM Alg. 2) draws x_K ~ N(0, I) and x_{k-1} ~ q(x_{k-1} | x_k, x_0_hat(x_k, eps_theta)), the
reverse variance being the posterior's tvar_k ("fixed_small"), which is 0 at the last step. Writing the mean through
x_0_hat equals DDPM's (x_k - beta_k / sqrt(1 - ab_k) eps) / sqrt(alpha_k) and allows the usual clipping of x_0_hat.

Indexing: tensors hold textbook steps k = 1..K at index t = k - 1, so ``betas[t] = beta_{t+1}`` and every method
takes the 0-based index t in [0, K) (as DDPM codes do); t = 0 is the least noisy step.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from marlbench.errors import refuse_one_hot_option

Schedule = Literal["linear", "cosine"]


def beta_schedule(steps: int, kind: Schedule = "linear", beta_start: float = 1e-4, beta_end: float = 0.02,
                  cosine_s: float = 0.008, max_beta: float = 0.999) -> Tensor:
    """beta_1..beta_K in float64.

    ``linear``: DDPM's linspace(beta_start, beta_end) given for K = 1000 and scaled by 1000 / K (improved-diffusion's
    ``get_named_beta_schedule``), so every K ends near pure noise (K = 200: betas 5e-4..0.1, ab_K ~ 3e-5; unscaled
    1e-4..0.02 would leave ab_K ~ 0.13 and start sampling far from the data's noised marginal). Betas are capped at
    ``max_beta`` (below K = 1000 beta_end / max_beta ~ 20 steps the last ones would otherwise reach 1).
    ``cosine``: ab(t) = f(t) / f(0), f(t) = cos^2((t / K + s) / (1 + s) * pi / 2), beta_k = min(1 - ab_k / ab_{k-1},
    max_beta) (Nichol & Dhariwal 2021; diffusers' ``squaredcos_cap_v2``, MADiff's and DoF's schedule).
    """
    if kind == "linear":
        scale = 1000.0 / steps
        return torch.linspace(scale * beta_start, scale * beta_end, steps, dtype=torch.float64).clamp(max=max_beta)
    if kind == "cosine":
        f = torch.cos((torch.arange(steps + 1, dtype=torch.float64) / steps + cosine_s) / (1 + cosine_s)
                      * math.pi / 2) ** 2
        return (1 - f[1:] / f[:-1]).clamp(max=max_beta)
    raise ValueError(f"unknown noise schedule {kind!r} (expected 'linear' or 'cosine')")


def timestep_embedding(t: Tensor, dim: int) -> Tensor:
    """Sinusoidal embedding of step indices t [...] -> [..., dim] (sin half, cos half; frequencies 10000^(-i/(h-1)),
    as the SinusoidalPosEmb of Diffusion-QL/diffuser). ``dim`` must be even and >= 4."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, device=t.device) / (half - 1))
    arg = t.float().unsqueeze(-1) * freqs
    return torch.cat([arg.sin(), arg.cos()], -1)


def check_discrete_diffusion(kind: str, spec) -> None:
    """``discrete_diffusion=x0`` predicts one-hot logits: refuse it on continuous actions, saying what works."""
    refuse_one_hot_option("discrete_diffusion", kind, "epsilon", spec)


def one_hot_denoising_loss(out: Tensor, noise: Tensor, actions: Tensor, kind: str) -> Tensor:
    """The denoiser's loss on one-hot actions: MSE of the predicted noise (``kind="epsilon"``, DDPM Eq. 14) or the
    cross-entropy of x_0's logits to the actions (``"x0"``); out, noise [..., nA], actions [...] (long)."""
    if kind == "x0":
        return F.cross_entropy(out.reshape(-1, out.shape[-1]), actions.reshape(-1))
    return (out - noise).square().mean()


def guided_eps(eps_cond: Tensor, eps_uncond: Tensor, w: float) -> Tensor:
    """Classifier-free guidance, MADiff's/Decision Diffuser's convention: eps_uncond + w (eps_cond - eps_uncond).
    w = 0 is the unconditional model, w = 1 the conditional one, w > 1 extrapolates (MADiff uses 1.2)."""
    return eps_uncond + w * (eps_cond - eps_uncond)


class DDPM(nn.Module):
    """A K-step DDPM schedule and its closed forms, as float32 buffers (not checkpointed: they follow the config).

    ``clip``: a (low, high) range for the predicted x_0 at every reverse step (DDPM's ``clip_denoised``), or None.
    """

    def __init__(self, steps: int, kind: Schedule = "linear", beta_start: float = 1e-4, beta_end: float = 0.02,
                 clip: tuple[float, float] | None = None):
        super().__init__()
        self.steps, self.clip = steps, clip
        betas = beta_schedule(steps, kind, beta_start, beta_end)
        alphas = 1 - betas
        ab = torch.cumprod(alphas, 0)
        ab_prev = torch.cat([torch.ones(1, dtype=torch.float64), ab[:-1]])
        table = {
            "betas": betas, "alphas": alphas, "alpha_bars": ab, "alpha_bars_prev": ab_prev,
            "sqrt_alpha_bars": ab.sqrt(), "sqrt_one_minus_alpha_bars": (1 - ab).sqrt(),
            "posterior_variance": betas * (1 - ab_prev) / (1 - ab),
            "posterior_coef_x0": ab_prev.sqrt() * betas / (1 - ab),
            "posterior_coef_xk": alphas.sqrt() * (1 - ab_prev) / (1 - ab),
        }
        for name, value in table.items():
            self.register_buffer(name, value.float(), persistent=False)
        self.register_buffer("posterior_std", table["posterior_variance"].sqrt().float(), persistent=False)

    @staticmethod
    def _at(values: Tensor, t: Tensor | int, x: Tensor) -> Tensor:
        """values[t] shaped to broadcast against x: t an int, or indices whose shape is a prefix of x's."""
        if isinstance(t, int):
            return values[t]
        return values[t].reshape(*t.shape, *(1,) * (x.dim() - t.dim()))

    def q_sample(self, x0: Tensor, t: Tensor | int, noise: Tensor) -> Tensor:
        """x_k = sqrt(ab_k) x_0 + sqrt(1 - ab_k) eps."""
        return self._at(self.sqrt_alpha_bars, t, x0) * x0 + self._at(self.sqrt_one_minus_alpha_bars, t, x0) * noise

    def predict_x0(self, x: Tensor, t: Tensor | int, eps: Tensor) -> Tensor:
        """x_0 = (x_k - sqrt(1 - ab_k) eps) / sqrt(ab_k)."""
        return (x - self._at(self.sqrt_one_minus_alpha_bars, t, x) * eps) / self._at(self.sqrt_alpha_bars, t, x)

    def eps_from_x0(self, x: Tensor, t: Tensor | int, x0: Tensor) -> Tensor:
        """eps = (x_k - sqrt(ab_k) x_0) / sqrt(1 - ab_k): the noise a predicted x_0 implies, so an x_0-predicting model
        samples through the same ancestral step (``predict_x0`` inverts it)."""
        return (x - self._at(self.sqrt_alpha_bars, t, x) * x0) / self._at(self.sqrt_one_minus_alpha_bars, t, x)

    def as_eps(self, out: Tensor, x: Tensor, t: Tensor | int, kind: str) -> Tensor:
        """The noise from the denoiser's output at x_k: the output itself (``kind="epsilon"``), or the noise that
        x_0 = softmax(logits) implies (``"x0"``, one-hot actions)."""
        return self.eps_from_x0(x, t, out.softmax(-1)) if kind == "x0" else out

    def posterior(self, x0: Tensor, x: Tensor, t: Tensor | int) -> tuple[Tensor, Tensor]:
        """Mean and variance of q(x_{k-1} | x_k, x_0)."""
        mean = self._at(self.posterior_coef_x0, t, x) * x0 + self._at(self.posterior_coef_xk, t, x) * x
        return mean, self._at(self.posterior_variance, t, x)

    def step(self, x: Tensor, t: int, eps: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """One ancestral step x_k -> x_{k-1} given the predicted noise (no noise is drawn at t = 0)."""
        x0 = self.predict_x0(x, t, eps)
        if self.clip is not None:
            x0 = x0.clamp(*self.clip)
        mean, _ = self.posterior(x0, x, t)
        if t == 0:
            return mean
        noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        return mean + self.posterior_std[t] * noise

    def sample(self, eps_fn: Callable[[Tensor, int], Tensor], x: Tensor,
               generator: torch.Generator | None = None) -> Tensor:
        """Ancestral sampling from x = x_K (pass N(0, I) noise): eps_fn(x_k, t) -> predicted noise, K calls."""
        for t in reversed(range(self.steps)):
            x = self.step(x, t, eps_fn(x, t), generator)
        return x

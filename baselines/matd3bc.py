"""MATD3BC: TD3+BC (Fujimoto & Gu, 2021) with a value mixer over per-agent twin critics (paper App. F.1).

Critic   twin per-agent critics Q^k_i(o_i, a_i), k = 1, 2, mixed into Q^k_tot = Mixer(Q^k_1..N; s) (mean by default,
         as MAC-Flow's average mixer). TD target with the mean team reward and target policy smoothing (TD3):
         a'_i = clip(pi'_i(o'_i) + clip(N(0, 0.2^2), -0.5, 0.5), box),  y = r + gamma (1 - d) min_k Q'^k_tot(o', a').
Actor    every ``policy_delay`` (2) critic steps (TD3's delayed update, together with the Polyak targets):
         loss = -lambda * mean Q^1_tot(o, pi(o)) + MSE(pi(o), a_data),  lambda = alpha / mean|Q^1_tot(o, pi(o))|
         (detached), alpha = 2.5 (TD3+BC Eq. 3). Scaling the critic by any constant leaves the actor's gradient
         unchanged (tests/test_matd3bc.py).
Acting   pi_i(o_i) = scale(tanh(f(o_i))), decentralised, deterministic.
"""
from __future__ import annotations

import copy
import itertools
from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor

from marlbench.algorithm import Algorithm
from marlbench.config import AlgoConfig
from marlbench.data.sampler import Batch
from marlbench.errors import ConfigError
from marlbench.heads import AgentQ, DeterministicActor
from marlbench.mixers import MixerKind, mixer_state
from marlbench.nn import gradient_step, make_adam, polyak_update
from marlbench.rl import gradient_ratio, make_mixer, smoothed_target_actions, td_target, value_gap


@dataclass
class MATD3BCConfig(AlgoConfig):
    tuning_grid: ClassVar[dict[str, tuple]] = {"alpha": (1.0, 2.5, 5.0, 10.0)}  # TD3+BC trade-off
    alpha: float = 2.5  # BC trade-off of TD3+BC (App. F.1: 2.5 for all environments)
    policy_noise: float = 0.2  # target policy smoothing std (TD3), in action units
    noise_clip: float = 0.5
    policy_delay: int = 2  # actor and target updates every 2nd critic step (TD3)
    mixer: MixerKind = "mean"  # App. F.1 "employs the mixer"; mean = MAC-Flow's average mixer
    mixer_embed_dim: int = 128  # hidden width of the parameterised mixers (linear, convex, qmix)

    def validate(self) -> None:
        if self.policy_delay < 1 or self.alpha < 0 or self.policy_noise < 0 or self.noise_clip < 0:
            raise ConfigError("matd3bc needs policy_delay >= 1 and non-negative alpha, policy_noise, noise_clip")


class MATD3BC(Algorithm, name="matd3bc", continuous=True, discrete=False):
    """MATD3BC: TD3+BC with twin per-agent critics under a mixer, Q term normalised by alpha / mean|Q|."""

    Config = MATD3BCConfig

    def __init__(self, spec, cfg: MATD3BCConfig, device="cpu"):
        super().__init__(spec, cfg, device)
        self.actor = DeterministicActor(spec, cfg)
        self.critic = AgentQ(spec, cfg, members=2)
        self.mixer = make_mixer(cfg.mixer, spec, cfg.mixer_embed_dim)
        self.target_actor = copy.deepcopy(self.actor).requires_grad_(False)
        self.target_critic = copy.deepcopy(self.critic).requires_grad_(False)
        self.target_mixer = copy.deepcopy(self.mixer).requires_grad_(False)
        self.register_buffer("steps", torch.zeros((), dtype=torch.long))  # checkpointed: the delay survives resume
        self.to(self.device)
        self.critic_optimizer = make_adam(itertools.chain(self.critic.parameters(), self.mixer.parameters()),
                                          cfg.lr, cfg.adam_eps)
        self.actor_optimizer = make_adam(self.actor.parameters(), cfg.lr, cfg.adam_eps)

    def critic_loss(self, batch: Batch) -> tuple[Tensor, Tensor]:
        cfg, box = self.cfg, self.actor.box
        with torch.no_grad():
            next_a = smoothed_target_actions(self.target_actor(batch.next_obs), box, cfg.policy_noise, cfg.noise_clip)
            next_s = mixer_state(batch.next_obs, batch.next_state)
            next_q = self.target_mixer(self.target_critic(batch.next_obs, next_a), next_s).min(0).values  # [B]
            y = td_target(batch.rewards.mean(-1), batch.dones, next_q, cfg.gamma)
        q_tot = self.mixer(self.critic(batch.obs, batch.actions), mixer_state(batch.obs, batch.state))  # [2, B]
        return (q_tot - y).square().mean(), q_tot.detach().mean()

    def actor_losses(self, batch: Batch) -> dict[str, Tensor]:
        """The two actor terms: -lambda * mean Q^1_tot(o, pi(o)) and MSE(pi(o), a_data); the critic gets no grad."""
        pi = self.actor(batch.obs)
        self.critic.requires_grad_(False), self.mixer.requires_grad_(False)
        q1 = self.mixer(self.critic(batch.obs, pi), mixer_state(batch.obs, batch.state))[0]  # [B]
        self.critic.requires_grad_(True), self.mixer.requires_grad_(True)
        lam = self.cfg.alpha / q1.abs().mean().detach().clamp_min(1e-6)
        return {"q_loss": -lam * q1.mean(), "bc_loss": F.mse_loss(pi, batch.actions), "lambda": lam.detach()}

    def diagnostics(self, batch: Batch) -> dict[str, float]:
        """Is the Q term alive? ``grad_ratio_bc_q``: ||grad MSE(pi, a_data)|| / ||grad lambda Q^1_tot(o, pi(o))||
        over the actor's weights (alpha sets it); ``q_pi_minus_q_data``: Q^1_tot(o, pi(o)) - Q^1_tot(o, a_data)."""
        losses = self.actor_losses(batch)
        out = gradient_ratio(("bc", losses["bc_loss"]), ("q", losses["q_loss"]), list(self.actor.parameters()))
        s = mixer_state(batch.obs, batch.state)
        out.update(value_gap(lambda a: self.mixer(self.critic(batch.obs, a), s)[0], batch.actions, self.act(batch.obs)))
        return {k: float(v) for k, v in out.items()}

    def update(self, batch: Batch) -> dict[str, Tensor]:
        critic_loss, q_mean = self.critic_loss(batch)
        gradient_step(self.critic_optimizer, critic_loss)
        out = {"critic_loss": critic_loss.detach(), "q_mean": q_mean}
        self.steps += 1
        if int(self.steps) % self.cfg.policy_delay == 0:
            losses = self.actor_losses(batch)
            gradient_step(self.actor_optimizer, losses["q_loss"] + losses["bc_loss"])
            for target, source in ((self.target_actor, self.actor), (self.target_critic, self.critic),
                                   (self.target_mixer, self.mixer)):
                polyak_update(target, source, self.cfg.tau)
            out.update({k: v.detach() for k, v in losses.items()})
        return out

    @torch.no_grad()
    def act(self, obs: Tensor, legals: Tensor | None = None) -> Tensor:
        return self.actor(obs)

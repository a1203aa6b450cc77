"""MABCQ: multi-agent Batch-Constrained Q-learning (Fujimoto et al. 2019; MAC-Flow paper App. F.1).

Every agent's critics are individual, Q_i^j(o_i, a_i) (j = 1, 2), mixed into Q_tot = mixer(Q_1..Q_N; s) (default: the
average mixer) and trained by TD on the team reward r = mean_i r_i: (Q_tot^j - y)^2. Because the mixers are
monotonic, each agent maximising its own Q_i maximises Q_tot, so all choices below are per agent (decentralised).

Discrete (discrete BCQ, Fujimoto et al. 2019b): a generative policy G_i(a | o_i) trained by legal-masked
          cross-entropy (+ 1e-2 mean logit^2, the reference code's regulariser); allowed set
          A_i(o) = {a legal : G_i(a|o) / max_b G_i(b|o) >= 0.4}; y = r + gamma (1 - d) mixer'(min_j Q'_i^j(o'_i, a*_i))
          with a*_i = argmax over A_i(o') of mean_j Q_i^j(o'_i, a) (online net picks, twin target nets evaluate);
          hard target copy every 200 steps. Acting: argmax over A_i(o) of mean_j Q_i^j (the filter applies here too).
Continuous (BCQ): a conditional VAE per agent (latent 2|A|, decoder z ~ N(0, I) clipped to +-0.5) trained with
          reconstruction MSE + 0.5 KL; a perturbation model xi_i(o, a) in phi * half-width * tanh, phi = 0.05;
          y = r + gamma (1 - d) mixer'(q'_i) with q'_i the max over 10 decoded, target-perturbed actions at o'_i of
          the soft clipped double Q  lambda min_j Q'^j + (1 - lambda) max_j Q'^j, lambda = 0.75; perturbation loss
          -mixer(Q_i^1(o_i, a + xi(o_i, a))) over decoded a; Polyak tau = 0.005 for critics and perturbation.
          Acting: the best under Q_i^1 of ``act_samples`` perturbed decoded actions (reference: 100).

One combined loss, one backward pass and one Adam step per update; the critic is frozen in the perturbation term and
decoded actions are constants there (the reference steps only the perturbation model with that loss).
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
from marlbench.data.sampler import Batch
from marlbench.errors import ConfigError
from marlbench.heads import ActionBox, AgentQ, CategoricalActor, masked_logits
from marlbench.mixers import MixerKind, mixer_state
from marlbench.nn import AgentMLP, gradient_step, make_adam, polyak_update
from marlbench.rl import make_mixer, td_target, update_target, value_gap


@dataclass
class MABCQConfig(AlgoConfig):
    # the BC constraint, loosest first: threshold on discrete actions, phi on continuous ones (zipped: one point each)
    tuning_grid: ClassVar[dict[str, tuple]] = {"threshold": (0.1, 0.3, 0.5, 0.7), "phi": (0.2, 0.1, 0.05, 0.02)}
    critic_ensemble: int = 2  # twin Q-networks (paper F.1)
    mixer: MixerKind = "mean"
    mixer_embed: int = 128
    td_loss: Literal["mse", "huber"] = "mse"  # discrete BCQ reference code: Huber
    # discrete
    threshold: float = 0.4  # BC threshold on G(a|o) / max G (paper F.1; discrete BCQ reference code 0.3)
    target_update_period: int = 200  # discrete hard target copy (paper F.1; reference 8000); continuous uses tau
    logit_reg: float = 1e-2  # discrete BCQ reference: 1e-2 * mean(logits^2) on G
    # continuous
    phi: float = 0.05  # perturbation range as a fraction of the box half-width
    lmbda: float = 0.75  # soft clipped double Q weight on the min
    target_samples: int = 10  # decoded actions per next observation in the target
    act_samples: int = 100  # decoded actions per observation when acting (BCQ reference select_action)
    latent_factor: int = 2  # VAE latent dimension = latent_factor * |A|
    kl_weight: float = 0.5
    latent_clip: float = 0.5  # decoder noise z ~ N(0, I) clipped to +-latent_clip

    def validate(self) -> None:
        if not 0.0 <= self.threshold <= 1.0 or not 0.0 <= self.lmbda <= 1.0:
            raise ConfigError("mabcq needs threshold and lmbda in [0, 1]")
        if min(self.critic_ensemble, self.target_samples, self.act_samples, self.latent_factor) < 1:
            raise ConfigError("mabcq needs critic_ensemble, target_samples, act_samples, latent_factor >= 1")


class MABCQ(Algorithm, name="mabcq", continuous=True, discrete=True):
    """MABCQ: batch-constrained Q-learning per agent (VAE + perturbation, or a thresholded BC filter) under a mixer."""

    Config = MABCQConfig

    def __init__(self, spec, cfg: MABCQConfig, device="cpu"):
        super().__init__(spec, cfg, device)
        n, do, da, h = spec.n_agents, spec.obs_dim, spec.action_dim, cfg.hidden_dims
        net = lambda i, o: AgentMLP(n, i, h, o, shared=cfg.share_parameters, layer_norm=cfg.layer_norm)
        self.q = nn.ModuleDict({"critic": AgentQ(spec, cfg, cfg.critic_ensemble),
                                "mixer": make_mixer(cfg.mixer, spec, cfg.mixer_embed)})
        self.target_q = copy.deepcopy(self.q).requires_grad_(False)
        self.register_buffer("steps", torch.zeros((), dtype=torch.long))
        if spec.continuous:
            self.box, self.latent = ActionBox(spec), cfg.latent_factor * da
            self.encoder, self.decoder = net(do + da, 2 * self.latent), net(do + self.latent, da)
            self.perturb = net(do + da, da)
            self.target_perturb = copy.deepcopy(self.perturb).requires_grad_(False)
        else:
            self.generator = CategoricalActor(spec, cfg)  # G_i(a | o_i)
        self.to(self.device)
        self.optimizer = make_adam([p for p in self.parameters() if p.requires_grad], cfg.lr, cfg.adam_eps)

    # -- shared
    def mix(self, q: nn.ModuleDict, qs: Tensor, obs: Tensor, state: Tensor | None) -> Tensor:
        return q["mixer"](qs, mixer_state(obs, state))

    def td(self, q_tot: Tensor, y: Tensor) -> Tensor:
        loss = F.mse_loss if self.cfg.td_loss == "mse" else F.smooth_l1_loss
        return loss(q_tot, y.expand_as(q_tot))

    # -- discrete
    def allowed(self, obs: Tensor, legals: Tensor | None) -> Tensor:
        """[..., N, nA] bool: legal actions with G(a|o) / max_b G(b|o) >= threshold (the max always passes)."""
        probs = self.generator.probs(obs, legals)
        ok = probs >= self.cfg.threshold * probs.max(-1, keepdim=True).values
        return ok if legals is None else ok & legals

    def filtered_greedy(self, obs: Tensor, legals: Tensor | None) -> Tensor:
        return masked_logits(self.q["critic"].all_actions(obs).mean(0), self.allowed(obs, legals)).argmax(-1)

    def discrete_losses(self, batch: Batch) -> dict[str, Tensor]:
        with torch.no_grad():
            best = self.filtered_greedy(batch.next_obs, batch.next_legals)
            next_q = self.target_q["critic"](batch.next_obs, best).min(0).values
            y = td_target(batch.rewards.mean(-1), batch.dones,
                          self.mix(self.target_q, next_q, batch.next_obs, batch.next_state), self.cfg.gamma)
        qs = self.q["critic"](batch.obs, batch.actions)  # [E, B, N]
        critic_loss = self.td(self.mix(self.q, qs, batch.obs, batch.state), y)
        raw = self.generator.net(batch.obs)[0]
        logits = masked_logits(raw, batch.legals)
        bc = F.cross_entropy(logits.flatten(0, 1), batch.actions.flatten())
        return {"critic_loss": critic_loss, "bc_loss": bc + self.cfg.logit_reg * raw.square().mean(),
                "q_mean": qs.mean().detach()}

    # -- continuous
    def decode(self, obs: Tensor, z: Tensor | None = None) -> Tensor:
        if z is None:
            z = torch.randn(*obs.shape[:-1], self.latent, device=obs.device)
            z = z.clamp(-self.cfg.latent_clip, self.cfg.latent_clip)
        return self.box.scale(torch.tanh(self.decoder(torch.cat([obs, z], -1))[0]))

    def perturbed(self, model: AgentMLP, obs: Tensor, actions: Tensor) -> Tensor:
        half = 0.5 * (self.box.high - self.box.low)
        xi = self.cfg.phi * half * torch.tanh(model(torch.cat([obs, actions], -1))[0])
        return self.box.clip(actions + xi)

    def continuous_losses(self, batch: Batch) -> dict[str, Tensor]:
        cfg, obs, actions = self.cfg, batch.obs, batch.actions
        mean, log_std = self.encoder(torch.cat([obs, actions], -1))[0].chunk(2, -1)
        log_std = log_std.clamp(-4.0, 15.0)
        recon = self.decode(obs, mean + log_std.exp() * torch.randn_like(mean))
        kl = -0.5 * (1 + 2 * log_std - mean.square() - (2 * log_std).exp()).mean()
        vae_loss = (recon - actions).square().mean() + cfg.kl_weight * kl

        with torch.no_grad():  # max over decoded, perturbed candidates of the soft clipped double Q, per agent
            next_obs = batch.next_obs.expand(cfg.target_samples, *batch.next_obs.shape)
            cand = self.perturbed(self.target_perturb, next_obs, self.decode(next_obs))
            tq = self.target_q["critic"](next_obs, cand)  # [E, S, B, N]
            soft = cfg.lmbda * tq.min(0).values + (1 - cfg.lmbda) * tq.max(0).values
            y = td_target(batch.rewards.mean(-1), batch.dones,
                          self.mix(self.target_q, soft.max(0).values, batch.next_obs, batch.next_state), cfg.gamma)
        qs = self.q["critic"](obs, actions)
        critic_loss = self.td(self.mix(self.q, qs, obs, batch.state), y)

        self.q.requires_grad_(False)
        a = self.perturbed(self.perturb, obs, self.decode(obs).detach())
        actor_loss = -self.mix(self.q, self.q["critic"](obs, a)[0], obs, batch.state).mean()
        self.q.requires_grad_(True)
        return {"critic_loss": critic_loss, "vae_loss": vae_loss, "actor_loss": actor_loss,
                "q_mean": qs.mean().detach()}

    def diagnostics(self, batch: Batch) -> dict[str, float]:
        """How far the constrained greedy action moves from the data: ``q_pi_minus_q_data`` under Q^1_tot (the twin
        that ranks candidates); discrete: ``allowed_fraction``, the share of legal actions the threshold lets
        through (1: no constraint, 1 / |A|: behaviour cloning); continuous: ``perturbation``, the mean |xi| of the
        deployed action's correction as a fraction of the box half-width (at most phi)."""
        obs = batch.obs
        out = value_gap(lambda a: self.mix(self.q, self.q["critic"](obs, a)[0], obs, batch.state), batch.actions,
                        self.act(obs, batch.legals))
        with torch.no_grad():
            if self.spec.continuous:
                decoded = self.decode(obs)
                half = 0.5 * (self.box.high - self.box.low)
                out["perturbation"] = ((self.perturbed(self.perturb, obs, decoded) - decoded).abs() / half).mean()
            else:
                legal = batch.legals if batch.legals is not None else torch.ones_like(self.allowed(obs, None))
                out["allowed_fraction"] = (self.allowed(obs, batch.legals).sum(-1) / legal.sum(-1)).float().mean()
        return {k: float(v) for k, v in out.items()}

    def update(self, batch: Batch) -> dict[str, Tensor]:
        losses = self.continuous_losses(batch) if self.spec.continuous else self.discrete_losses(batch)
        total = sum(v for k, v in losses.items() if k.endswith("_loss"))
        gradient_step(self.optimizer, total)
        self.steps += 1
        if self.spec.continuous:
            polyak_update(self.target_q, self.q, self.cfg.tau)
            polyak_update(self.target_perturb, self.perturb, self.cfg.tau)
        else:
            update_target(self.target_q, self.q, int(self.steps), self.cfg.target_update_period, self.cfg.tau)
        return {k: v.detach() for k, v in losses.items()}

    @torch.no_grad()
    def act(self, obs: Tensor, legals: Tensor | None = None) -> Tensor:
        if not self.spec.continuous:
            return self.filtered_greedy(obs, legals)
        reps = obs.expand(self.cfg.act_samples, *obs.shape)
        cand = self.perturbed(self.perturb, reps, self.decode(reps))  # [S, B, N, da]
        best = self.q["critic"](reps, cand)[0].argmax(0)  # [B, N]: each agent's best candidate under Q_i^1
        return cand.gather(0, best[None, ..., None].expand(1, *cand.shape[1:])).squeeze(0)

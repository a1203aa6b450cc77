"""OMAR: Pan et al., "Plan Better Amid Conservatism: Offline Multi-Agent RL with Actor Rectification", ICML 2022.

Independent learners (paper App. F.1; reference code github.com/ling-pan/OMAR, ``algorithms/maddpg.py``):
Critic   per-agent twin critics Q^k_i(o_i, a_i) with the per-agent reward, TD3 clipped double Q:
         y_i = r_i + gamma (1 - d) min_k Q'^k_i(o'_i, pi'_i(o'_i))  (the reference adds no target smoothing), plus
         the CQL term  cql_alpha * mean[log sum_j exp(Q(o, a_j) - log p(a_j)) - Q(o, a_data)]  over 10 uniform
         actions per state (weight 3.0, App. F.1), for each twin.
Search   per agent, ``search_iterations`` (3) rounds of sampling ``search_samples`` (10) actions from N(mu, sigma^2)
         (clipped to the box), scored by Q^1_i, then a refit (marlbench.rl.cem_search): by default mu = the
         softmax(Q^1 / search_temperature)-weighted mean of the samples, as the reference's MPE branch;
         ``search_refit=elites`` refits to the ``search_elites`` best of the samples and the previous elites (its
         MA-MuJoCo branch). A plain top-10-of-10 refit is the sample mean and never refines (App. F.1's
         "10 samples, 10 elites" read literally). The search starts at mu = 0, sigma = 2.0 (the reference's
         ``omar_mu``, ``omar_sigma``), not at the policy's action (option ``search_init=policy``).
         a_hat_i = the better of pi_i(o_i) and the search's best action under Q^1_i (so Q(a_hat) >= Q(pi)).
Actor    loss = tau_mix * ||pi(o) - a_hat||^2 - (1 - tau_mix) * Q^1(o, pi(o)) + 1e-3 * ||u||^2, tau_mix = 0.7,
         u = the policy's pre-tanh output; squared norms are means over agents and action dims (F.mse_loss, as the
         reference). The reference does NOT normalise Q in this loss (raw mean Q^1); ``q_normalisation=mean_abs``
         divides it by the detached mean |Q^1| (TD3+BC-style) as an option.
Acting   pi_i(o_i) = scale(tanh(u_i)), deterministic, decentralised.
"""
from __future__ import annotations

import copy
import itertools
import math
from dataclasses import dataclass
from typing import ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from marlbench.algorithm import Algorithm
from marlbench.config import AlgoConfig
from marlbench.data.sampler import Batch
from marlbench.errors import ConfigError
from marlbench.heads import AgentQ, DeterministicActor
from marlbench.nn import make_adam, polyak_update
from marlbench.rl import (
    cem_search,
    cql_penalty_continuous,
    gradient_ratio,
    smoothed_target_actions,
    td_target,
    value_gap,
)


@dataclass
class OMARConfig(AlgoConfig):
    tuning_grid: ClassVar[dict[str, tuple]] = {"cql_alpha": (0.5, 1.0, 3.0, 5.0)}  # the reference's range
    cql_alpha: float = 3.0  # CQL weight (App. F.1; the reference tunes it per dataset, 0.5-5.0)
    cql_samples: int = 10  # uniform OOD actions per state (App. F.1)
    # "uniform": the reference's MPE branch; "uniform+policy": its MA-MuJoCo branch also scores noisy policy
    # actions at o and o' (N(pi, 0.2^2), with their Gaussian log-density)
    cql_proposals: Literal["uniform", "uniform+policy"] = "uniform"
    search_iterations: int = 3  # App. F.1 (reference MA-MuJoCo: 2 iterations, 20 samples, 5 elites)
    search_samples: int = 10
    search_elites: int = 10
    search_refit: Literal["softmax", "elites"] = "softmax"  # reference MPE branch / MA-MuJoCo branch
    search_temperature: float = 1.0  # softmax refit temperature on raw Q^1 (reference: 1)
    search_init: Literal["fixed", "policy"] = "fixed"  # fixed: N(search_mean, search_std^2) as the reference
    search_mean: float = 0.0
    search_std: float = 2.0
    mix: float = 0.7  # tau: weight of the imitation of a_hat vs (1 - tau) of Q (App. F.1; reference MPE Spread: 1.0)
    q_normalisation: Literal["none", "mean_abs"] = "none"  # reference: raw Q in the actor loss
    action_reg: float = 1e-3
    action_reg_on: Literal["pre_tanh", "action"] = "pre_tanh"  # the reference penalises the tanh output (action)
    target_noise: float = 0.0  # TD3 target smoothing std; the reference uses none
    noise_clip: float = 0.5
    grad_clip: float = 0.0  # 0: off; the reference clips critic and actor gradient norms at 0.5

    def validate(self) -> None:
        if not 1 <= self.search_elites <= self.search_samples or self.search_iterations < 1:
            raise ConfigError("omar needs search_iterations >= 1 and 1 <= search_elites <= search_samples")
        if not 0.0 <= self.mix <= 1.0 or self.cql_samples < 1 or self.search_std <= 0 or self.search_temperature <= 0:
            raise ConfigError("omar needs 0 <= mix <= 1, cql_samples >= 1, search_std > 0 and search_temperature > 0")


class OMAR(Algorithm, name="omar", continuous=True, discrete=False):
    """OMAR: independent CQL-TD3 critics; the actor imitates the better of pi(o) and a sampling search under Q."""

    Config = OMARConfig

    def __init__(self, spec, cfg: OMARConfig, device="cpu"):
        super().__init__(spec, cfg, device)
        self.actor = DeterministicActor(spec, cfg)
        # The twins are two single-member critics, not one 2-member ensemble: the search (30 candidate actions per
        # agent and state) and the actor's Q term use Q^1 alone, so evaluating only Q^1 halves their cost.
        self.critic1, self.critic2 = AgentQ(spec, cfg, members=1), AgentQ(spec, cfg, members=1)
        self.target_actor = copy.deepcopy(self.actor).requires_grad_(False)
        self.target_critic1 = copy.deepcopy(self.critic1).requires_grad_(False)
        self.target_critic2 = copy.deepcopy(self.critic2).requires_grad_(False)
        self.to(self.device)
        self.critic_optimizer = make_adam(itertools.chain(self.critic1.parameters(), self.critic2.parameters()),
                                          cfg.lr, cfg.adam_eps)
        self.actor_optimizer = make_adam(self.actor.parameters(), cfg.lr, cfg.adam_eps)

    @staticmethod
    def twin(q1: AgentQ, q2: AgentQ, obs: Tensor, actions: Tensor) -> Tensor:
        """[2, *lead, N]: both critics; ``actions`` may carry extra leading sample dims over ``obs``."""
        obs = obs.expand(*actions.shape[:-1], obs.shape[-1])
        return torch.cat([q1(obs, actions), q2(obs, actions)])

    def q1(self, obs: Tensor, actions: Tensor) -> Tensor:
        """Q^1 only: [*lead, N]."""
        return self.critic1(obs.expand(*actions.shape[:-1], obs.shape[-1]), actions)[0]

    def critic_loss(self, batch: Batch) -> dict[str, Tensor]:
        cfg, box = self.cfg, self.actor.box
        with torch.no_grad():
            next_a = self.target_actor(batch.next_obs)
            if cfg.target_noise > 0:
                next_a = smoothed_target_actions(next_a, box, cfg.target_noise, cfg.noise_clip)
            next_q = self.twin(self.target_critic1, self.target_critic2, batch.next_obs, next_a).min(0).values
            y = td_target(batch.rewards, batch.dones, next_q, cfg.gamma)
        q_data = self.twin(self.critic1, self.critic2, batch.obs, batch.actions)  # [2, B, N]
        td = (q_data - y).square().mean()
        b, n, da = batch.actions.shape
        uniform = box.uniform((cfg.cql_samples, b, n, da), device=batch.obs.device)
        proposals = [(uniform, torch.full(uniform.shape[:-1], -box.log_volume(), device=uniform.device))]
        if cfg.cql_proposals == "uniform+policy":
            with torch.no_grad():
                for o in (batch.obs, batch.next_obs):
                    mu = self.actor(o).expand(cfg.cql_samples, b, n, da)
                    eps = 0.2 * torch.randn_like(mu)
                    logp = (-0.5 * (eps / 0.2).square() - math.log(0.2 * math.sqrt(2 * math.pi))).sum(-1)
                    proposals.append((box.clip(mu + eps), logp))
        cql = cql_penalty_continuous(lambda a: self.twin(self.critic1, self.critic2, batch.obs, a), q_data, proposals)
        return {"critic_loss": td + cfg.cql_alpha * cql, "td_loss": td, "cql_loss": cql,
                "q_mean": q_data.detach().mean()}

    @torch.no_grad()
    def search_target(self, obs: Tensor, pi: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """(a_hat, Q^1(a_hat), Q^1(pi)): a_hat = the better of the policy's action and the search's best under Q^1."""
        cfg = self.cfg
        q_pi = self.q1(obs, pi)  # [B, N]
        mean = pi if cfg.search_init == "policy" else torch.full_like(pi, cfg.search_mean)
        best_a, best_q = cem_search(lambda a: self.q1(obs, a), mean, cfg.search_std, self.actor.box,
                                    cfg.search_iterations, cfg.search_samples, cfg.search_elites,
                                    cfg.search_refit, cfg.search_temperature)
        keep = q_pi >= best_q
        return torch.where(keep.unsqueeze(-1), pi, best_a), torch.where(keep, q_pi, best_q), q_pi

    def actor_losses(self, batch: Batch) -> dict[str, Tensor]:
        cfg = self.cfg
        pre = self.actor.pre_tanh(batch.obs)
        pi = self.actor.box.scale(torch.tanh(pre))
        a_hat, q_hat, _ = self.search_target(batch.obs, pi.detach())
        self.critic1.requires_grad_(False)
        q_pi = self.q1(batch.obs, pi)  # [B, N]
        self.critic1.requires_grad_(True)
        q_term = q_pi.mean()
        if cfg.q_normalisation == "mean_abs":
            q_term = q_term / q_pi.abs().mean().detach().clamp_min(1e-6)
        reg = (pre if cfg.action_reg_on == "pre_tanh" else pi).square().mean()
        imitation = F.mse_loss(pi, a_hat)
        loss = cfg.mix * imitation - (1 - cfg.mix) * q_term + cfg.action_reg * reg
        # mechanism: how much the search improves on pi, and how often it wins at all
        return {"actor_loss": loss, "imitation_loss": imitation.detach(),
                "search_gain": (q_hat - q_pi.detach()).mean(),
                "search_win_rate": (q_hat > q_pi.detach()).float().mean()}

    def diagnostics(self, batch: Batch) -> dict[str, float]:
        """Is the conservative term alive, or does it drown TD? ``grad_ratio_cql_td``: ||grad cql_alpha * CQL|| /
        ||grad TD|| over both critics' weights (cql_alpha sets it); ``q_pi_minus_q_data``: Q^1 of pi(o) minus Q^1 of
        the dataset action, mean over agents (OMAR's critics are independent: no mixer)."""
        losses = self.critic_loss(batch)
        params = [*self.critic1.parameters(), *self.critic2.parameters()]
        out = gradient_ratio(("cql", self.cfg.cql_alpha * losses["cql_loss"]), ("td", losses["td_loss"]), params)
        out.update(value_gap(lambda a: self.q1(batch.obs, a), batch.actions, self.act(batch.obs)))
        return {k: float(v) for k, v in out.items()}

    def _step(self, loss: Tensor, optimizer: torch.optim.Optimizer, *modules: torch.nn.Module) -> None:
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.cfg.grad_clip > 0:  # the reference clips each network's gradient norm
            for module in modules:
                torch.nn.utils.clip_grad_norm_(module.parameters(), self.cfg.grad_clip)
        optimizer.step()

    def update(self, batch: Batch) -> dict[str, Tensor]:
        out = self.critic_loss(batch)
        self._step(out["critic_loss"], self.critic_optimizer, self.critic1, self.critic2)
        actor = self.actor_losses(batch)
        self._step(actor["actor_loss"], self.actor_optimizer, self.actor)
        polyak_update(self.target_critic1, self.critic1, self.cfg.tau)
        polyak_update(self.target_critic2, self.critic2, self.cfg.tau)
        polyak_update(self.target_actor, self.actor, self.cfg.tau)
        return {k: v.detach() for k, v in {**out, **actor}.items()}

    @torch.no_grad()
    def act(self, obs: Tensor, legals: Tensor | None = None) -> Tensor:
        return self.actor(obs)

"""MACQL: multi-agent Conservative Q-Learning (Kumar et al. 2020; MAC-Flow paper App. F.1).

Critic    per-agent twin critics Q_i^j(o_i, a_i) (j = 1, 2), mixed into Q_tot = mixer(Q_1..Q_N; s) (default: the
          average mixer, like every baseline here) and trained by TD on the team reward r = mean_i r_i:
          (Q_tot^j - y)^2 + weight * CQL_i^j, the conservative term on every agent's individual Q_i^j.
Discrete  y = r + gamma (1 - d) mixer'(min_j Q'_i^j(o'_i, a*_i)) with the double-DQN action a*_i = argmax over legal
          a of mean_j Q_i^j(o'_i, a); CQL(H) term logsumexp_a Q_i(o_i, a) - Q_i(o_i, a_i^data) over legal actions
          (Kumar et al. Eq. 4); hard target copy every 200 steps (paper: tau = 1.0 at period 200). Acting: the
          greedy legal action of mean_j Q_i^j (the categorical policy's mode).
Continuous  squashed Gaussian policy pi_i(a_i | o_i); y = r + gamma (1 - d) mixer'(min_j Q'_i^j(o'_i, a'_i)),
          a' ~ pi(o') (the reference's deterministic backup: no entropy term in the target); CQL(H) with importance
          sampling (CQL App. F): logsumexp over 10 uniform actions (density 1/vol) and 10 policy samples at o and at
          o' (density pi), all scored by Q(o, .), minus Q(o, a_data); actor loss -mixer(min_j Q_i^j(o_i, a_i)),
          a ~ pi(o) reparameterised, + 1e-3 ||pre-tanh mean||^2; Polyak tau = 0.005. Acting: the tanh mean.

One combined loss, one backward pass and one Adam step per update (the critic is frozen in the actor's term).
Reference-code parts the paper's card (App. F.1) does not mention are options, off by default: SAC's automatic
temperature (``entropy="auto"``, target entropy -|A|; the actor loss gains alpha log pi) and the behaviour-cloning
warm start (``bc_warmup_steps=K``, the reference's ``policy_eval_start``: for the first K updates the actor
minimises alpha log pi - log pi(a_data), never Q; 40k of 1M steps there, i.e. about 10k of the paper profile's 2e5
or 400 of the quick profile's 8k). The ``macql-cql-reference`` preset turns both on at the quick profile's scale.
Option: ``td_target="individual"`` is independent Q-learning per agent on r_i (App. H.2 says the paper's
discrete CQL runs used it). Per-tier CQL weights (OMAR's Spread settings) are the ``macql-omar-spread`` preset.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import ClassVar, Literal

import torch
from torch import Tensor, nn

from marlbench.algorithm import Algorithm
from marlbench.config import AlgoConfig
from marlbench.data.sampler import Batch
from marlbench.errors import ConfigError
from marlbench.heads import ActionBox, AgentQ, GaussianActor, masked_logits
from marlbench.mixers import MixerKind, mixer_state
from marlbench.nn import gradient_step, make_adam
from marlbench.rl import (
    cql_penalty_continuous,
    cql_penalty_discrete,
    gradient_ratio,
    make_mixer,
    td_target,
    update_target,
    value_gap,
)


@dataclass
class MACQLConfig(AlgoConfig):
    tuning_grid: ClassVar[dict[str, tuple]] = {"cql_weight": (0.5, 1.0, 3.0, 10.0)}
    cql_weight: float = 3.0  # conservative weight (paper F.1; CQL reference min_q_weight 5.0 for MuJoCo)
    cql_samples: int = 10  # actions per proposal (uniform, pi(o), pi(o')) in the continuous log-sum-exp (paper)
    critic_ensemble: int = 2  # twin Q-networks (paper F.1)
    mixer: MixerKind = "mean"
    mixer_embed: int = 128
    td_target: Literal["mixed", "individual"] = "mixed"  # TD on Q_tot (paper F.1) or per agent (App. H.2)
    target_update_period: int = 200  # discrete: hard copy every 200 steps (paper); continuous uses Polyak tau
    policy_reg: float = 1e-3  # continuous actor: weight of ||pre-tanh mean||^2
    entropy: Literal["none", "auto"] = "none"  # "auto": SAC temperature tuning as in the CQL reference code
    bc_warmup_steps: int = 0  # continuous: actor trained by BC alone for this many updates (policy_eval_start)

    def validate(self) -> None:
        if self.cql_weight < 0 or self.cql_samples < 1 or self.critic_ensemble < 1 or self.policy_reg < 0 \
                or self.bc_warmup_steps < 0:
            raise ConfigError("macql needs cql_weight >= 0, cql_samples >= 1, critic_ensemble >= 1, policy_reg >= 0 "
                              "and bc_warmup_steps >= 0")
        if self.td_target == "individual" and self.mixer != "mean":
            raise ConfigError("macql td_target=individual trains each Q_i on its own reward: no mixer (keep mean)")


class MACQL(Algorithm, name="macql", continuous=True, discrete=True):
    """MACQL: twin per-agent critics under a mixer with the CQL(H) conservative penalty."""

    Config = MACQLConfig

    def __init__(self, spec, cfg: MACQLConfig, device="cpu"):
        super().__init__(spec, cfg, device)
        self.q = nn.ModuleDict({"critic": AgentQ(spec, cfg, cfg.critic_ensemble),
                                "mixer": make_mixer(cfg.mixer, spec, cfg.mixer_embed)})
        self.target_q = copy.deepcopy(self.q).requires_grad_(False)
        self.register_buffer("steps", torch.zeros((), dtype=torch.long))
        params = list(self.q.parameters())
        if spec.continuous:
            self.box = ActionBox(spec)
            self.actor = GaussianActor(spec, cfg, squash=True)
            params += list(self.actor.parameters())
            if cfg.entropy == "auto":
                self.log_alpha = nn.Parameter(torch.zeros(()))
                params.append(self.log_alpha)
        self.to(self.device)
        self.optimizer = make_adam(params, cfg.lr, cfg.adam_eps)

    def mix(self, q: nn.ModuleDict, qs: Tensor, obs: Tensor, state: Tensor | None) -> Tensor:
        """Per-agent values [..., B, N] -> the TD quantity: Q_tot [..., B], or unchanged for individual TD."""
        return qs if self.cfg.td_target == "individual" else q["mixer"](qs, mixer_state(obs, state))

    def target(self, batch: Batch, next_q: Tensor) -> Tensor:
        rewards = batch.rewards if self.cfg.td_target == "individual" else batch.rewards.mean(-1)
        return td_target(rewards, batch.dones, self.mix(self.target_q, next_q, batch.next_obs, batch.next_state),
                         self.cfg.gamma)

    def losses(self, batch: Batch) -> dict[str, Tensor]:
        cfg, critic, obs = self.cfg, self.q["critic"], batch.obs
        if self.spec.continuous:
            return self._continuous(batch)
        q_all = critic.all_actions(obs)  # [E, B, N, nA]
        q_data = q_all.gather(-1, batch.actions.expand(q_all.shape[0], *batch.actions.shape).unsqueeze(-1))
        q_data = q_data.squeeze(-1)  # [E, B, N]
        with torch.no_grad():  # double DQN: online argmax over legal actions, evaluated by the target twins
            best = masked_logits(critic.all_actions(batch.next_obs).mean(0), batch.next_legals).argmax(-1)
            y = self.target(batch, self.target_q["critic"](batch.next_obs, best).min(0).values)
        td = (self.mix(self.q, q_data, obs, batch.state) - y).square().mean()
        cql = cql_penalty_discrete(q_all, q_data, batch.legals)
        return {"critic_loss": td + cfg.cql_weight * cql, "td_loss": td, "cql_penalty": cql,
                "q_mean": q_data.mean().detach()}

    def _continuous(self, batch: Batch) -> dict[str, Tensor]:
        cfg, critic, obs, s = self.cfg, self.q["critic"], batch.obs, self.cfg.cql_samples
        with torch.no_grad():
            next_a, _ = self.actor.sample(batch.next_obs)
            y = self.target(batch, self.target_q["critic"](batch.next_obs, next_a).min(0).values)
            # CQL proposals, all scored at o: uniform over the box, the policy at o and at o'
            uniform = self.box.uniform((s, *batch.actions.shape), obs.device)
            proposals = [(uniform, torch.full(uniform.shape[:-1], -self.box.log_volume(), device=obs.device)),
                         self.actor.sample(obs, (s,)), self.actor.sample(batch.next_obs, (s,))]
        q_data = critic(obs, batch.actions)  # [E, B, N]
        td = (self.mix(self.q, q_data, obs, batch.state) - y).square().mean()
        obs_s = obs.expand(s, *obs.shape)
        cql = cql_penalty_continuous(lambda a: critic(obs_s, a), q_data, proposals)

        # actor: -Q_tot(o, a ~ pi(o)) + policy_reg ||pre-tanh mean||^2 (+ alpha log pi), the critic frozen;
        # during the warm start -log pi(a_data) replaces -Q_tot
        actions, logp = self.actor.sample(obs)
        mu, _ = self.actor.distribution(obs)
        if int(self.steps) < cfg.bc_warmup_steps:
            objective = -self.actor.log_prob(obs, batch.actions).mean()
        else:
            self.q.requires_grad_(False)
            objective = -self.mix(self.q, critic(obs, actions).min(0).values, obs, batch.state).mean()
            self.q.requires_grad_(True)
        actor_loss = objective + cfg.policy_reg * mu.square().sum(-1).mean()
        out = {"critic_loss": td + cfg.cql_weight * cql, "td_loss": td, "cql_penalty": cql, "actor_loss": actor_loss,
               "q_mean": q_data.mean().detach()}
        if cfg.entropy == "auto":
            alpha = self.log_alpha.exp()
            out["actor_loss"] = actor_loss + alpha.detach() * logp.mean()
            out["alpha_loss"] = -(self.log_alpha * (logp.detach() - self.spec.action_dim).mean())  # target -|A|
        return out

    def diagnostics(self, batch: Batch) -> dict[str, float]:
        """Is the conservative term alive, or does it drown TD? ``grad_ratio_cql_td``: ||grad weight * CQL|| /
        ||grad TD|| over the critics' weights (cql_weight sets it); ``q_pi_minus_q_data``: the TD quantity (Q_tot,
        or the per-agent mean for individual TD) of the deployed action minus the dataset action's, min twin."""
        losses = self.losses(batch)
        out = gradient_ratio(("cql", self.cfg.cql_weight * losses["cql_penalty"]), ("td", losses["td_loss"]),
                             list(self.q.parameters()))
        value = lambda a: self.mix(self.q, self.q["critic"](batch.obs, a).min(0).values, batch.obs, batch.state)
        out.update(value_gap(value, batch.actions, self.act(batch.obs, batch.legals)))
        return {k: float(v) for k, v in out.items()}

    def update(self, batch: Batch) -> dict[str, Tensor]:
        losses = self.losses(batch)
        total = losses["critic_loss"] + losses.get("actor_loss", 0.0) + losses.get("alpha_loss", 0.0)
        gradient_step(self.optimizer, total)
        self.steps += 1
        period = 0 if self.spec.continuous else self.cfg.target_update_period
        update_target(self.target_q, self.q, int(self.steps), period, self.cfg.tau)
        return {k: v.detach() for k, v in losses.items()}

    @torch.no_grad()
    def act(self, obs: Tensor, legals: Tensor | None = None) -> Tensor:
        if self.spec.continuous:
            return self.actor.mode(obs)
        return masked_logits(self.q["critic"].all_actions(obs).mean(0), legals).argmax(-1)

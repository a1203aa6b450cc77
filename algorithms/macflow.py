"""MAC-Flow: Lee, Lee & Zhang, "Multi-Agent Coordination via Flow Matching", ICLR 2026.

Stage I   joint flow BC over the joint action, Eq. (6); Euler sampler with M steps, Alg. 2. Discrete actions are
          one-hot vectors x1 = onehot(a) (App. E), decoded by a legal-masked argmax.
Critic    individual Q_i(o_i, a_i), an ensemble of 2 aggregated by the mean (App. E), Q_tot = mean_i Q_i (average
          mixer, IGM); TD targets use next actions sampled from the flow (Alg. 1); Polyak target. Discrete critics
          output Q_i(o_i, .) for every action at once. ``critic="centralised"`` is the Fig. 8 ablation: one
          Q(o_1..N, a_1..N) over the joint observation and action (discrete actions enter one-hot, or as the
          policy's probabilities in the actor's Q term), no IGM factorisation.
Stage II  one-step policies mu_w_i(o_i, z_i) trained with -Q_tot + alpha * distillation toward the flow with the
          SAME noise z (Eq. 9). Discrete policies output logits; distillation is the cross-entropy to the flow's
          decoded sample, and the Q term uses the differentiable expectation sum_a pi_i(a) Q_i(o_i, a) (the
          reference code routes Q through argmax, whose gradient is zero).
Deployment uses only the one-step policies (decentralised, one network call; discrete: legal-masked argmax).

All losses are summed and take one backward pass and one Adam step on the same batch, as the reference code does
(App. E's "alternate" updates share the batch; the critic is frozen inside the actor's Q term).
Deviations of the reference code and the paper's ablations are options here, never silent.
"""
from __future__ import annotations

import copy
import itertools
from dataclasses import dataclass
from functools import partial
from typing import ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from marlbench.algorithm import Algorithm
from marlbench.config import AlgoConfig
from marlbench.data.sampler import Batch
from marlbench.errors import ConfigError
from marlbench.flows import (
    as_velocity,
    check_discrete_flow,
    endpoint_loss,
    euler,
    flow_matching_loss,
    time_features,
)
from marlbench.heads import masked_logits as masked
from marlbench.nn import AgentMLP, EnsembleMLP, gradient_step, make_adam, polyak_update
from marlbench.rl import grad_norm, gradient_ratio, value_gap


@dataclass
class MACFlowConfig(AlgoConfig):
    tuning_grid: ClassVar[dict[str, tuple]] = {"alpha": (0.3, 1.0, 3.0, 10.0)}  # distillation vs Q (Eq. 9)
    alpha: float = 3.0  # distillation coefficient of Eq. (9) (App. G.4; reference code default 1.0)
    flow_steps: int = 10  # Euler steps M (App. E, Alg. 2)
    critic_ensemble: int = 2
    q_aggregation: Literal["mean", "min"] = "mean"  # App. E: mean(Q1, Q2), not min, to avoid over-pessimism
    # divide the Q term by the detached mean |Q_tot| (FQL's option, off by default there). Off: on Spread |Q_tot| is
    # ~400 by step 8k (time-limit bootstrapping), so dividing by it silences the Q term (docs/ALGORITHMS.md)
    normalize_q_loss: bool = False
    # "mixed": TD on Q_tot = mean_i Q_i with the mean team reward (App. E average mixer; reference code).
    # "individual": per-agent TD with r_i, as Alg. 1 is written.
    td_target: Literal["mixed", "individual"] = "mixed"
    # Eq. (9) sums the distillation over agents (and action dims); the reference code averages ("mean").
    distill_reduction: Literal["sum", "mean"] = "sum"
    flow: Literal["joint", "individual"] = "joint"  # Stage I over the joint action (Eq. 6) or per agent (reference)
    next_actions: Literal["flow", "onestep"] = "flow"  # TD next actions from the flow (Alg. 1) or one-step (reference)
    actor_layer_norm: bool = True  # paper App. E: LayerNorm everywhere; reference code: False for actors
    time_features: int = 1  # 1: the raw t as input (reference code); >1: t plus sinusoidal features of t
    # discrete actions: "velocity" regresses x1 - x0 by MSE (App. E); "endpoint" (not the paper's) predicts x1's
    # logits by cross-entropy and integrates v = (softmax - x_t) / (1 - t): the same path, a faster-learned decision
    discrete_flow: Literal["velocity", "endpoint"] = "velocity"
    # Ablations (App. H): without value guidance (Fig. 14d), and acting with the joint flow itself (Fig. 14b,
    # centralised execution: every agent's action depends on all observations).
    q_guidance: bool = True
    deploy: Literal["onestep", "flow"] = "onestep"
    critic: Literal["igm", "centralised"] = "igm"  # Fig. 8: individual Q_i under IGM, or one centralised Q
    # Policy noise z when acting: redrawn every step (FQL), z = 0, or fixed per episode (reference code)
    eval_noise: Literal["step", "zero", "episode"] = "step"

    def validate(self) -> None:
        if self.flow_steps < 1 or self.critic_ensemble < 1 or self.alpha < 0:
            raise ConfigError("macflow needs flow_steps >= 1, critic_ensemble >= 1 and alpha >= 0")
        if self.critic == "centralised" and self.td_target != "mixed":
            raise ConfigError("critic=centralised learns one team value: it needs td_target=mixed "
                              "(td_target=individual is per-agent TD on individual critics)")


class MACFlow(Algorithm, name="macflow", continuous=True, discrete=True):
    """MAC-Flow: joint flow BC distilled into decentralised one-step policies under an IGM critic."""

    Config = MACFlowConfig

    def __init__(self, spec, cfg: MACFlowConfig, device="cpu"):
        super().__init__(spec, cfg, device)
        check_discrete_flow(cfg.discrete_flow, spec)
        # da: continuous action dims, or the one-hot width (number of actions) for discrete tasks
        n, do, da, h = spec.n_agents, spec.obs_dim, spec.action_dim, cfg.hidden_dims
        shared, ln, tf = cfg.share_parameters, cfg.layer_norm, cfg.time_features
        if cfg.flow == "joint":  # v_phi(t, o, x) over the whole joint action
            self.flow = EnsembleMLP(1, n * do + n * da + tf, h, n * da, ln)
        else:
            self.flow = AgentMLP(n, do + da + tf, h, da, shared=shared, layer_norm=ln)
        if cfg.critic == "centralised":  # Q(o, a) over the joint observation and (one-hot) joint action
            self.critic = EnsembleMLP(cfg.critic_ensemble, n * (do + da), h, 1, ln)
        else:
            critic_in, critic_out = (do + da, 1) if spec.continuous else (do, da)
            self.critic = AgentMLP(n, critic_in, h, critic_out, members=cfg.critic_ensemble, shared=shared,
                                   layer_norm=ln)
        self.target_critic = copy.deepcopy(self.critic).requires_grad_(False)
        self.actor = AgentMLP(n, do + da, h, da, shared=shared, layer_norm=cfg.actor_layer_norm)
        self.to(self.device)
        params = itertools.chain(self.flow.parameters(), self.critic.parameters(), self.actor.parameters())
        self.optimizer = make_adam(params, cfg.lr, cfg.adam_eps)
        self.episode_noise: Tensor | None = None  # eval_noise="episode": z of the running evaluation episodes

    # -- Stage I: the flow policy
    def field(self, obs: Tensor, x: Tensor, t: Tensor) -> Tensor:
        """The flow network at (t, o, x) for obs [B,N,do], x [B,N,da], t [B,1,1] -> [B,N,da]: the velocity, or x1's
        logits with ``discrete_flow="endpoint"``."""
        b, n, da = x.shape
        tf = time_features(t.flatten(1), self.cfg.time_features)  # [B, F]
        if self.cfg.flow == "joint":
            return self.flow(torch.cat([obs.flatten(1), x.flatten(1), tf], -1))[0].view(b, n, da)
        return self.flow(torch.cat([obs, x, tf.unsqueeze(1).expand(b, n, tf.shape[-1])], -1))[0]

    def velocity(self, obs: Tensor, x: Tensor, t: Tensor) -> Tensor:
        """v_phi(t, o, x) -> [B,N,da]."""
        return as_velocity(self.field(obs, x, t), x, t, self.cfg.discrete_flow)

    @torch.no_grad()
    def flow_actions(self, obs: Tensor, noise: Tensor) -> Tensor:
        """mu_phi(o, z): Euler integration of the flow from z over M steps (Alg. 2); continuous: clipped to the box."""
        x = euler(lambda x, t: self.velocity(obs, x, t), noise, self.cfg.flow_steps)
        return self.clip(x) if self.spec.continuous else x

    def one_step(self, obs: Tensor, noise: Tensor) -> Tensor:
        """mu_w_i(o_i, z_i) for every agent at once: unclipped actions, or logits for discrete tasks."""
        return self.actor(torch.cat([obs, noise], -1))[0]

    def q_members(self, critic: AgentMLP | EnsembleMLP, obs: Tensor, actions: Tensor) -> Tensor:
        """Per-member Q_i(o_i, a_i): [E, B, N]. Discrete ``actions`` are indices [B, N] or action probabilities
        [B, N, nA]; probabilities give the expectation sum_a pi_i(a) Q_i(o_i, a). A centralised critic's single
        Q(o, a) is repeated over the N agents, so Q_tot = mean_i is that value."""
        if self.cfg.critic == "centralised":
            if actions.dtype == torch.long:
                actions = F.one_hot(actions, self.spec.action_dim).float()
            q = critic(torch.cat([obs.flatten(1), actions.flatten(1)], -1))  # [E, B, 1]
            return q.expand(-1, -1, self.spec.n_agents)
        if self.spec.continuous:
            return critic(torch.cat([obs, actions], -1)).squeeze(-1)
        qs = critic(obs)  # [E, B, N, nA]
        if actions.dtype == torch.long:
            return qs.gather(-1, actions.expand(qs.shape[0], *actions.shape).unsqueeze(-1)).squeeze(-1)
        return (qs * actions).sum(-1)

    def aggregate(self, qs: Tensor) -> Tensor:
        return qs.mean(0) if self.cfg.q_aggregation == "mean" else qs.min(0).values

    def clip(self, actions: Tensor) -> Tensor:
        return actions.clamp(self.spec.action_low, self.spec.action_high)

    def losses(self, batch: Batch) -> dict[str, Tensor]:
        """The three losses of one step (flow, critic, actor terms), before summation."""
        cfg, obs, discrete = self.cfg, batch.obs, not self.spec.continuous
        b, n, da = obs.shape[0], self.spec.n_agents, self.spec.action_dim
        x1 = F.one_hot(batch.actions, da).float() if discrete else batch.actions

        # Stage I, Eq. (6): x_t = (1-t) x0 + t x1, regress x1 - x0 (or predict x1 by cross-entropy: "endpoint").
        if cfg.discrete_flow == "endpoint":
            flow_loss = endpoint_loss(lambda x, t: self.field(obs, x, t), batch.actions, da)
        else:
            flow_loss = flow_matching_loss(lambda x, t: self.velocity(obs, x, t), x1)

        # One batch for both Euler chains: next actions for TD (o') and distillation targets (o).
        noise = torch.randn(2 * b, n, da, device=obs.device)
        actor_noise = noise[b:]
        if cfg.next_actions == "flow":
            sampled = self.flow_actions(torch.cat([batch.next_obs, obs]), noise)
            next_actions, teacher = sampled[:b], sampled[b:]
        else:
            teacher = self.flow_actions(obs, actor_noise)
            with torch.no_grad():
                next_actions = self.one_step(batch.next_obs, noise[:b])
                next_actions = next_actions if discrete else self.clip(next_actions)
        if discrete:  # decode one-hot-space samples into legal actions
            next_actions = masked(next_actions, batch.next_legals).argmax(-1)
            teacher = masked(teacher, batch.legals).argmax(-1)

        # Critic: TD under the average mixer.
        with torch.no_grad():
            next_q = self.aggregate(self.q_members(self.target_critic, batch.next_obs, next_actions))  # [B, N]
            not_done = (1.0 - batch.dones).unsqueeze(-1)
            if cfg.td_target == "mixed":
                target = batch.rewards.mean(-1, keepdim=True) + cfg.gamma * not_done * next_q.mean(-1, keepdim=True)
            else:
                target = batch.rewards + cfg.gamma * not_done * next_q
        qs = self.q_members(self.critic, obs, batch.actions)  # [E, B, N]
        critic_loss = ((qs.mean(-1, keepdim=True) if cfg.td_target == "mixed" else qs) - target).square().mean()

        losses = {"flow_loss": flow_loss, "critic_loss": critic_loss,
                  **self.actor_terms(obs, batch.legals, actor_noise, teacher), "q_mean": qs.mean().detach()}
        return losses

    def actor_terms(self, obs: Tensor, legals: Tensor | None, noise: Tensor, teacher: Tensor) -> dict[str, Tensor]:
        """Stage II, Eq. (9): alpha * distance(mu_w(o, z), mu_phi(o, z)) with the SAME z, and -Q_tot(o, mu_w(o, z)).

        Returns ``distill_loss`` and, with Q guidance, ``q_loss`` (the term as it enters the total loss) and
        ``q_pi`` (the raw mean Q_tot of the one-step actions, detached: what ``q_loss`` hides when normalised)."""
        cfg, discrete = self.cfg, not self.spec.continuous
        b, n = obs.shape[:2]
        out = self.one_step(obs, noise)
        if discrete:
            logits = masked(out, legals)
            per_agent = F.cross_entropy(logits.flatten(0, 1), teacher.flatten(), reduction="none").view(b, n)
            policy = logits.softmax(-1)  # differentiable relaxation: Q_i in expectation under pi_i
        else:
            per_agent = (out - teacher).square().sum(-1)
            policy = self.clip(out)
        # "sum": over agents and action dims, per sample (Eq. 9); "mean": over every element (reference code)
        terms = {"distill_loss": per_agent.sum(1).mean() if cfg.distill_reduction == "sum"
                 else per_agent.mean() / (1 if discrete else self.spec.action_dim)}
        if cfg.q_guidance:
            self.critic.requires_grad_(False)  # the actor's Q term must not train the critic
            q_tot = self.q_tot(obs, policy)
            self.critic.requires_grad_(True)
            q_loss = -q_tot.mean()
            if cfg.normalize_q_loss:
                q_loss = q_loss / q_tot.abs().mean().detach().clamp_min(1e-6)
            terms.update(q_loss=q_loss, q_pi=q_tot.mean().detach())
        return terms

    def q_tot(self, obs: Tensor, actions: Tensor) -> Tensor:
        """Q_tot(o, a) [B] under the online critic (mean mixer over agents, ensemble aggregated)."""
        return self.aggregate(self.q_members(self.critic, obs, actions)).mean(-1)

    def diagnostics(self, batch: Batch) -> dict[str, float]:
        """Is the Q term alive? On a batch no update used:
        - ``grad_ratio_distill_q``: ||grad_w alpha * distill|| / ||grad_w q_loss|| over the one-step policies'
          weights (>> 1: the policy is a copy of the flow and Q guidance is dead);
        - ``q_pi_minus_q_data``: Q_tot(o, deployed one-step action) - Q_tot(o, dataset action), and the same for
          the flow's own sample (``q_flow_minus_q_data``)."""
        cfg, obs, discrete = self.cfg, batch.obs, not self.spec.continuous
        noise = torch.randn(*obs.shape[:2], self.spec.action_dim, device=obs.device)
        teacher = self.flow_actions(obs, noise)
        if discrete:
            teacher = masked(teacher, batch.legals).argmax(-1)
        terms = self.actor_terms(obs, batch.legals, noise, teacher)
        params = [p for p in self.actor.parameters() if p.requires_grad]
        out = {"diag_distill_loss": terms["distill_loss"].detach()}
        if "q_loss" in terms:
            out.update(gradient_ratio(("distill", cfg.alpha * terms["distill_loss"]), ("q", terms["q_loss"]), params))
        else:  # no Q term (q_guidance=false)
            out["grad_norm_distill"] = grad_norm(cfg.alpha * terms["distill_loss"], params)
        q_tot = partial(self.q_tot, obs)
        out.update(value_gap(q_tot, batch.actions, self.act(obs, batch.legals)))
        out["q_flow_minus_q_data"] = value_gap(q_tot, batch.actions, teacher)["q_pi_minus_q_data"]
        return {k: float(v) for k, v in out.items()}

    def update(self, batch: Batch) -> dict[str, Tensor]:
        losses = self.losses(batch)
        total = losses["flow_loss"] + losses["critic_loss"] + self.cfg.alpha * losses["distill_loss"]
        if "q_loss" in losses:
            total = total + losses["q_loss"]
        gradient_step(self.optimizer, total)
        polyak_update(self.target_critic, self.critic, self.cfg.tau)
        return {k: v.detach() for k, v in losses.items()}

    def start_episodes(self, count: int) -> None:
        self.episode_noise = None  # drawn at the first act() of these episodes

    def policy_noise(self, obs: Tensor) -> Tensor:
        """z for acting: redrawn every step (FQL), zero, or fixed for each episode (reference code)."""
        shape = (*obs.shape[:-1], self.spec.action_dim)
        if self.cfg.eval_noise == "zero":
            return torch.zeros(shape, device=obs.device)
        if self.cfg.eval_noise == "episode":
            noise = self.episode_noise
            if noise is None or noise.shape != shape:  # a new set of episodes (or a lone latency call)
                self.episode_noise = noise = torch.randn(shape, device=obs.device)
            return noise
        return torch.randn(shape, device=obs.device)

    @torch.no_grad()
    def act(self, obs: Tensor, legals: Tensor | None = None) -> Tensor:
        noise = self.policy_noise(obs)
        if self.cfg.deploy == "flow":
            out = self.flow_actions(obs, noise)
        else:
            out = self.one_step(obs, noise)
        if not self.spec.continuous:
            return masked(out, legals).argmax(-1)
        return self.clip(out)

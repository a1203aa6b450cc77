"""MA-ICQ: Implicit Constraint Q-learning (Yang et al. 2021, "Believe What You See"; MAC-Flow paper Table 2).

Critic    Q_i(s, o_i, .) over all actions (discrete) or Q_i(s, o_i, a_i) (continuous), s the global state or the
          joint observation; convex mixer Q_tot = sum_i k_i(s) Q_i with k = |w(s)| / sum_j |w_j(s)|. The target uses
          only dataset actions a' (``Batch.next_actions``), with in-sample weights over the batch
            w = B softmax_batch(Q'_tot(s', a') / (beta_Q sigma)),   sigma = batch std of Q'_tot (ICQ Eq. 9-10).
          Default (``critic_weighting=td_error``): loss mean[w (Q_tot(s, a) - y)^2], y = r + gamma (1 - d) Q'_tot.
          Reference (``target``): y = r + gamma (1 - d) w Q'_tot(s', a'), loss mean[(Q_tot(s, a) - y)^2].
Actor     decentralised pi_i(a_i | o_i); advantage A_i = Q_i(a_i) - sum_a pi_i(a) Q_i(a) (detached) and loss
            -mean[k_i(s) * B softmax_batch(A_i / (beta_pi sigma_i)) * log pi_i(a_i)],   sigma_i = batch std of A_i,
          the softmax over the batch per agent. Acting: the most likely legal action / the Gaussian mean.
Scale     ``weight_scale=std`` (default) divides both softmax arguments by their batch std, so the weights are the
          same for Q and a Q + b: temperatures are in std units (beta_Q 10, beta_pi 1). ``weight_scale=raw`` is the
          reference (beta_Q 1000, beta_pi 0.1 on raw values, tuned at SMAC's Q of about 10). At Spread's Q of about
          1500 the raw forms fail (docs/ALGORITHMS.md): the critic weights span 0.5-1.9, so the shifted target
          climbs about 70 per backup, and the actor's effective sample size falls to about 1.4 of 64.
          The reference form is ``--set weight_scale=raw critic_weighting=target critic_beta=1000 policy_beta=0.1``
          (the ``icq-reference`` preset).
Continuous  (no reference code): an unsquashed Gaussian policy (mean in the box, learned state-independent std, so
          dataset actions on the box boundary keep finite log-densities) and the baseline sum_a pi(a) Q_i(a) estimated
          by the mean Q_i over ``baseline_samples`` actions sampled from pi_i.

Deviation: the original critic target is TD(lambda = 0.8) over whole episodes; the protocol samples transitions, so
this is the 1-step target (lambda = 0). Targets are Polyak-averaged (tau = 0.005, the suite convention; the
reference copies them every ``target_update_period`` steps, an option). One combined loss, one backward pass and one
Adam step per update (the actor's weights come from the detached critic and mixer of the same step).
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
from marlbench.heads import AgentQ, CategoricalActor, GaussianActor
from marlbench.mixers import MixerKind, mixer_state
from marlbench.nn import gradient_step, make_adam
from marlbench.rl import (
    batch_softmax_weights,
    effective_sample_size,
    make_mixer,
    td_target,
    update_target,
    value_gap,
)


@dataclass
class ICQConfig(AlgoConfig):
    tuning_grid: ClassVar[dict[str, tuple]] = {"policy_beta": (0.3, 1.0, 3.0, 10.0)}  # actor temperature
    critic_beta: float = 10.0  # temperature of the critic's in-sample weights (std units; reference 1000 raw)
    policy_beta: float = 1.0  # temperature of the actor's advantage weights (std units; reference 0.1 raw)
    weight_scale: Literal["std", "raw"] = "std"  # std: softmax of standardised values (scale-free); raw: reference
    critic_weighting: Literal["td_error", "target"] = "td_error"  # weight the TD error, or shift the target (ref.)
    mixer: MixerKind = "convex"  # sum_i k_i(s) Q_i, k >= 0, sum 1 (card); "linear" adds a bias, mean/sum fix k
    mixer_embed: int = 128
    target_update_period: int = 0  # 0: Polyak tau every step; > 0: hard copy every that many steps (reference)
    baseline_samples: int = 10  # continuous: actions from pi_i for the baseline E_pi[Q_i]

    def validate(self) -> None:
        if self.critic_beta <= 0 or self.policy_beta <= 0 or self.baseline_samples < 1:
            raise ConfigError("icq needs critic_beta > 0, policy_beta > 0 and baseline_samples >= 1")
        if self.mixer == "qmix":
            raise ConfigError("icq weights each agent's actor loss by its mixing weight k_i(s): it needs a linear "
                              "mixer (convex, linear, mean or sum), not qmix")


class ICQ(Algorithm, name="icq", continuous=True, discrete=True):
    """MA-ICQ: in-sample (dataset-action) critic targets and advantage-weighted decentralised actors."""

    Config = ICQConfig

    def __init__(self, spec, cfg: ICQConfig, device="cpu"):
        super().__init__(spec, cfg, device)
        state_dim = spec.state_dim if spec.state_dim is not None else spec.n_agents * spec.obs_dim
        self.q = nn.ModuleDict({"critic": AgentQ(spec, cfg, members=1, in_dim=state_dim + spec.obs_dim),
                                "mixer": make_mixer(cfg.mixer, spec, cfg.mixer_embed)})
        self.target_q = copy.deepcopy(self.q).requires_grad_(False)
        self.actor = GaussianActor(spec, cfg, squash=False) if spec.continuous else CategoricalActor(spec, cfg)
        self.register_buffer("steps", torch.zeros((), dtype=torch.long))
        self.to(self.device)
        self.optimizer = make_adam([*self.q.parameters(), *self.actor.parameters()], cfg.lr, cfg.adam_eps)

    def critic_input(self, obs: Tensor, state: Tensor | None) -> tuple[Tensor, Tensor]:
        """(mixer state s [B, S], critic input [B, N, S + obs_dim] = (s, o_i) per agent)."""
        s = mixer_state(obs, state)
        return s, torch.cat([s.unsqueeze(-2).expand(*obs.shape[:-1], s.shape[-1]), obs], -1)

    def agent_weights(self, s: Tensor) -> Tensor:
        """k_i(s) [B, N]: dQ_tot / dQ_i of the (linear) mixer."""
        mixer, n = self.q["mixer"], self.spec.n_agents
        if mixer.kind in ("mean", "sum"):
            return torch.full((s.shape[0], n), 1.0 / n if mixer.kind == "mean" else 1.0, device=s.device)
        return mixer.agent_weights(s)

    def in_sample_target(self, batch: Batch) -> tuple[Tensor, Tensor]:
        """(y [B], weights [B]): the critic target from the next DATASET actions only, and its batch-softmax
        weights (folded into y for ``critic_weighting=target``, else applied to the squared TD error)."""
        cfg = self.cfg
        s, x = self.critic_input(batch.next_obs, batch.next_state)
        q_next = self.target_q["mixer"](self.target_q["critic"](x, batch.next_actions)[0], s)  # [B]
        weights = batch_softmax_weights(q_next, cfg.critic_beta, standardise=cfg.weight_scale == "std")
        next_value = weights * q_next if cfg.critic_weighting == "target" else q_next
        return td_target(batch.rewards.mean(-1), batch.dones, next_value, cfg.gamma), weights

    def losses(self, batch: Batch) -> dict[str, Tensor]:
        if batch.next_actions is None:
            raise ValueError("icq needs the next dataset actions (Batch.next_actions) for its in-sample target")
        cfg, critic = self.cfg, self.q["critic"]
        with torch.no_grad():
            y, critic_weights = self.in_sample_target(batch)
        s, x = self.critic_input(batch.obs, batch.state)
        q_data = critic(x, batch.actions)[0]  # [B, N]
        td_error = (self.q["mixer"](q_data, s) - y).square()
        critic_loss = (critic_weights * td_error if cfg.critic_weighting == "td_error" else td_error).mean()

        with torch.no_grad():  # advantage of the dataset action over the policy's expected Q_i
            if self.spec.continuous:
                samples, _ = self.actor.sample(batch.obs, (cfg.baseline_samples,))
                xs = x.expand(cfg.baseline_samples, *x.shape)
                baseline = critic(xs, samples)[0].mean(0)
            else:
                baseline = (self.actor.probs(batch.obs, batch.legals) * critic.all_actions(x)[0]).sum(-1)
            # [B, N], softmax over B per agent
            weights = batch_softmax_weights(q_data - baseline, cfg.policy_beta, standardise=cfg.weight_scale == "std")
            k = self.agent_weights(s)
        if self.spec.continuous:
            logp = self.actor.log_prob(batch.obs, batch.actions)
        else:
            logp = self.actor.log_prob(batch.obs, batch.actions, batch.legals)
        actor_loss = -(k * weights * logp).mean()
        # mechanism: how many transitions each actor update really imitates, and how far the critic weights spread
        return {"critic_loss": critic_loss, "actor_loss": actor_loss, "q_mean": q_data.mean().detach(),
                "actor_ess": effective_sample_size(weights).mean(), "critic_weight_min": critic_weights.min(),
                "critic_weight_max": critic_weights.max()}

    def diagnostics(self, batch: Batch) -> dict[str, float]:
        """``q_pi_minus_q_data``: Q_tot(s, o, mode of pi) - Q_tot(s, o, a_data) under ICQ's critic (which is only
        trained on dataset actions, so a large gap is extrapolation); ``weight_ess``: the effective sample size of
        the actor's weights on a batch no update used, as a fraction of the batch (policy_beta sets it: 1 is plain
        BC, near 0 imitates a few transitions)."""
        s, x = self.critic_input(batch.obs, batch.state)
        out = value_gap(lambda a: self.q["mixer"](self.q["critic"](x, a)[0], s), batch.actions,
                        self.act(batch.obs, batch.legals))
        with torch.no_grad():
            out["weight_ess"] = self.losses(batch)["actor_ess"] / batch.obs.shape[0]
        return {k: float(v) for k, v in out.items()}

    def update(self, batch: Batch) -> dict[str, Tensor]:
        losses = self.losses(batch)
        gradient_step(self.optimizer, losses["critic_loss"] + losses["actor_loss"])
        self.steps += 1
        update_target(self.target_q, self.q, int(self.steps), self.cfg.target_update_period, self.cfg.tau)
        return {k: v.detach() for k, v in losses.items()}

    @torch.no_grad()
    def act(self, obs: Tensor, legals: Tensor | None = None) -> Tensor:
        if self.spec.continuous:
            return self.actor.mode(obs)
        return self.actor.mode(obs, legals)

"""OMIGA: Wang et al., "Offline Multi-Agent RL with Implicit Global-to-Local Value Regularization", NeurIPS 2023.

Networks  per-agent Q_i(o_i, a_i) (twin, paper App. F.1), V_i(o_i), policies pi_i(a_i | o_i); the state-dependent
          linear mixer w(s) = |Linear(ReLU(Linear(s)))| in R^N, b(s) (marlbench.mixers "linear"; s = the global
          state, or the joint observation when the dataset has none, as the reference's MA-MuJoCo code).
Q loss    Q^k_tot = sum_i w_i(s) Q^k_i(o_i, a_i) + b(s);  y = r + gamma (1 - d) (sum_i w'_i(s') V'_i(o'_i) + b'(s'))
          with target networks w', b', V' and the mean team reward; loss mean_k (Q^k_tot - y)^2 (trains Q and mixer).
V loss    z_i = clamp(w'_i(s) (Q'_i(o_i, a_i) - V_i(o_i)) / alpha, -10, 10), alpha = 10, with the TARGET mixer weights
          and the TARGET critic (as the reference), Q' = min over the twins (option ``q_aggregation=mean``);
          loss mean[exp(z - M) + exp(-M) w'_i V_i / alpha], M = max(max z, -1) detached.
Policy    loss -mean[min(exp(z), 100) * log pi_i(a_i | o_i)], weights detached (the paper's weight clip 100; the
          reference code clips only z, so weights reach e^10: ``weight_clip=0``).
Update    the three losses touch disjoint parameters (the weights and targets are detached), so they share one
          backward; each group (policy / Q + mixer / V) has its gradient norm clipped at 1.0; Polyak 0.005 on Q,
          mixer and V targets.
Policies  continuous: Gaussian with mean scale(tanh(mu(o))) and a state-independent log-std, plain Gaussian
          log-density (GaussianActor(squash=False); the reference uses a tanh-squashed Gaussian with state-dependent
          std); acts with the mean. Discrete: softmax over legal actions, acts with the legal argmax.
"""
from __future__ import annotations

import copy
import itertools
from dataclasses import dataclass
from typing import ClassVar, Literal

import torch
from torch import Tensor

from marlbench.algorithm import Algorithm
from marlbench.config import AlgoConfig
from marlbench.data.sampler import Batch
from marlbench.errors import ConfigError
from marlbench.heads import AgentQ, CategoricalActor, GaussianActor
from marlbench.mixers import mixer_state
from marlbench.nn import AgentMLP, make_adam, polyak_update
from marlbench.rl import effective_sample_size, make_mixer, td_target, value_gap


@dataclass
class OMIGAConfig(AlgoConfig):
    tuning_grid: ClassVar[dict[str, tuple]] = {"alpha": (1.0, 3.0, 10.0, 30.0)}
    alpha: float = 10.0  # advantage scale (App. F.1)
    z_clip: float = 10.0  # z clamped to [-z_clip, z_clip] (reference)
    weight_clip: float = 100.0  # policy weights min(exp(z), weight_clip) (App. F.1); 0 = off (reference code)
    grad_clip: float = 1.0  # per-network gradient-norm clip (App. F.1)
    mixer_embed_dim: int = 128  # App. F.1 (reference code: 64)
    critic_members: int = 2  # twin Q (App. F.1); the reference code has a single Q network
    q_aggregation: Literal["min", "mean"] = "min"  # how the twins' target Q enters z

    def validate(self) -> None:
        if self.alpha <= 0 or self.z_clip <= 0 or self.weight_clip < 0 or self.critic_members < 1:
            raise ConfigError("omiga needs alpha > 0, z_clip > 0, weight_clip >= 0 and critic_members >= 1")


class OMIGA(Algorithm, name="omiga", continuous=True, discrete=True):
    """OMIGA: global-to-local implicit value regularisation; AWR policies weighted by the mixed advantage."""

    Config = OMIGAConfig

    def __init__(self, spec, cfg: OMIGAConfig, device="cpu"):
        super().__init__(spec, cfg, device)
        n = spec.n_agents
        self.critic = AgentQ(spec, cfg, members=cfg.critic_members)
        self.mixer = make_mixer("linear", spec, cfg.mixer_embed_dim)
        self.value = AgentMLP(n, spec.obs_dim, cfg.hidden_dims, 1, shared=cfg.share_parameters,
                              layer_norm=cfg.layer_norm)
        self.policy = GaussianActor(spec, cfg, squash=False) if spec.continuous else CategoricalActor(spec, cfg)
        self.target_critic = copy.deepcopy(self.critic).requires_grad_(False)
        self.target_mixer = copy.deepcopy(self.mixer).requires_grad_(False)
        self.target_value = copy.deepcopy(self.value).requires_grad_(False)
        self.to(self.device)
        self.groups = (list(self.policy.parameters()), [*self.critic.parameters(), *self.mixer.parameters()],
                       list(self.value.parameters()))
        self.optimizer = make_adam(itertools.chain(*self.groups), cfg.lr, cfg.adam_eps)

    def log_prob(self, batch: Batch) -> Tensor:
        if self.spec.continuous:
            return self.policy.log_prob(batch.obs, batch.actions)
        return self.policy.log_prob(batch.obs, batch.actions, batch.legals)

    def losses(self, batch: Batch) -> dict[str, Tensor]:
        cfg = self.cfg
        s, next_s = mixer_state(batch.obs, batch.state), mixer_state(batch.next_obs, batch.next_state)
        # Q loss: mixed Q_tot against the mixed target V
        with torch.no_grad():
            next_v = self.target_mixer(self.target_value(batch.next_obs)[0].squeeze(-1), next_s)  # [B]
            y = td_target(batch.rewards.mean(-1), batch.dones, next_v, cfg.gamma)
        q_tot = self.mixer(self.critic(batch.obs, batch.actions), s)  # [E, B]
        q_loss = (q_tot - y).square().mean()
        # V loss: implicit global-to-local regularisation with the target mixer weights and target critic
        with torch.no_grad():
            q_target = self.target_critic(batch.obs, batch.actions)  # [E, B, N]
            q_target = q_target.min(0).values if cfg.q_aggregation == "min" else q_target.mean(0)
            w = self.target_mixer.agent_weights(s)  # [B, N]
        v = self.value(batch.obs)[0].squeeze(-1)  # [B, N]
        z = (w * (q_target - v) / cfg.alpha).clamp(-cfg.z_clip, cfg.z_clip)
        m = z.max().detach().clamp_min(-1.0)
        v_loss = (torch.exp(z - m) + torch.exp(-m) * w * v / cfg.alpha).mean()
        # policy: advantage-weighted regression with clipped weights
        weights = z.detach().exp()
        if cfg.weight_clip > 0:
            weights = weights.clamp_max(cfg.weight_clip)
        policy_loss = -(weights * self.log_prob(batch)).mean()
        return {"q_loss": q_loss, "v_loss": v_loss, "policy_loss": policy_loss, "q_tot": q_tot.detach().mean(),
                "v_mean": v.detach().mean(), "weights": weights}

    def diagnostics(self, batch: Batch) -> dict[str, float]:
        """``q_pi_minus_q_data``: Q_tot of the policy's mode minus the dataset action's (mean over the critic
        members); ``weight_ess``: Kish's effective sample size of the advantage weights over the batch, per agent,
        as a fraction of the batch (alpha sets it: 1 is plain BC, near 0 imitates a few transitions)."""
        s = mixer_state(batch.obs, batch.state)
        out = value_gap(lambda a: self.mixer(self.critic(batch.obs, a), s).mean(0), batch.actions,
                        self.act(batch.obs, batch.legals))
        with torch.no_grad():
            weights = self.losses(batch)["weights"]  # [B, N]
            out["weight_ess"] = (effective_sample_size(weights) / weights.shape[0]).mean()
        return {k: float(v) for k, v in out.items()}

    def update(self, batch: Batch) -> dict[str, Tensor]:
        losses = self.losses(batch)
        self.optimizer.zero_grad(set_to_none=True)
        (losses["q_loss"] + losses["v_loss"] + losses["policy_loss"]).backward()
        for params in self.groups:
            torch.nn.utils.clip_grad_norm_(params, self.cfg.grad_clip)
        self.optimizer.step()
        for target, source in ((self.target_critic, self.critic), (self.target_mixer, self.mixer),
                               (self.target_value, self.value)):
            polyak_update(target, source, self.cfg.tau)
        weights = losses.pop("weights")
        return {**{k: v.detach() for k, v in losses.items()}, "weight_max": weights.max()}

    @torch.no_grad()
    def act(self, obs: Tensor, legals: Tensor | None = None) -> Tensor:
        if self.spec.continuous:
            return self.policy.mode(obs)
        return self.policy.mode(obs, legals)

"""MATD3 (multi-agent TD3) for continuous actions: decentralised actors, centralised twin critics.

The online behaviour-policy learner used to build OMAR-style quality tiers (OMAR trained its MPE behaviour policies
with MATD3). Agent i's actor maps its own observation to an action in the task's box; agent i's two critics see
every observation and every action and estimate agent i's return. All agents (and both twins) run in one batched
matmul per layer (``AgentMLP`` with stacked per-agent weights); nothing loops over agents in Python.

One ``update`` is one TD3 step for every agent at once:

- critic: ``y_i = r_i + gamma * (1 - d) * min_k Q'_ik(o', a')`` with ``a'_j = clip(mu'_j(o'_j) + clip(eps, -c, c))``
  (target policy smoothing), squared error on both twins;
- actor, every ``policy_delay`` critic steps: agent i maximises ``Q_i1(o, a_1..mu_i(o_i)..a_n)`` (its own action
  replaced, the others' from the batch, as in MADDPG), plus a small penalty on the pre-tanh output;
- Polyak averaging of actor and critic targets right after each actor step.

``team_critic=True`` (used for MA-MuJoCo, whose agents share one team reward) replaces the N per-agent critics by
one twin critic of the team reward ``mean_i r_i`` over the joint observation and action, and every actor ascends
``Q(o, mu_1(o_1), ..., mu_N(o_N))`` with all agents' current actions (FACMAC-style centralised policy gradient).
Actors stay decentralised; the critic costs 1/N of the per-agent version.
"""
from __future__ import annotations

import copy
from dataclasses import asdict, dataclass

import torch
from torch import Tensor, nn

from marlbench.nn import AgentMLP, make_adam, polyak_update
from marlbench.spec import TaskSpec


@dataclass
class MATD3Config:
    """MATD3 hyperparameters (defaults: the values used to train the shipped Spread behaviour policies)."""

    hidden_dims: tuple[int, ...] = (64, 64)
    layer_norm: bool = False
    actor_lr: float = 1e-3
    critic_lr: float = 1e-3
    adam_eps: float = 1e-8
    batch_size: int = 256
    gamma: float = 0.95
    tau: float = 0.01
    policy_noise: float = 0.2  # target policy smoothing std (in action units of a [-1, 1] box)
    noise_clip: float = 0.5
    policy_delay: int = 2
    action_reg: float = 1e-3  # weight of mean(pre_tanh^2), keeps the actor out of tanh saturation
    reward_scale: float = 0.1  # rewards are multiplied by this inside the critic targets
    team_critic: bool = False  # one critic of the team reward and a joint actor gradient (see module docstring)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["hidden_dims"] = list(self.hidden_dims)
        return d


def make_actor(spec: TaskSpec, hidden_dims, layer_norm: bool) -> AgentMLP:
    """Per-agent (unshared) actor networks; ``squash`` maps their output into the action box."""
    return AgentMLP(spec.n_agents, spec.obs_dim, hidden_dims, spec.action_dim, shared=False, layer_norm=layer_norm)


def squash(pre: Tensor, low: float, high: float) -> Tensor:
    """tanh into [low, high]."""
    return low + (torch.tanh(pre) + 1.0) * (0.5 * (high - low))


class MATD3(nn.Module):
    """Networks, optimisers and the update/act math. Checkpoint with ``state_dict`` + ``optimizer_state``."""

    def __init__(self, spec: TaskSpec, cfg: MATD3Config, device: torch.device | str = "cpu"):
        super().__init__()
        self.spec, self.cfg, self.device = spec, cfg, torch.device(device)
        n, do, da = spec.n_agents, spec.obs_dim, spec.action_dim
        self.low, self.high = float(spec.action_low), float(spec.action_high)
        self.half_range = 0.5 * (self.high - self.low)
        self.actor = make_actor(spec, cfg.hidden_dims, cfg.layer_norm)
        # agent i's twin critics read the joint observation and joint action: [B, N, N*(do+da)] -> [2, B, N, 1]
        self.critic = AgentMLP(1 if cfg.team_critic else n, n * (do + da), cfg.hidden_dims, 1, members=2,
                               shared=False, layer_norm=cfg.layer_norm)
        self.actor_target = copy.deepcopy(self.actor).requires_grad_(False)
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        self.to(self.device)
        self.actor_opt = make_adam(self.actor.parameters(), cfg.actor_lr, cfg.adam_eps)
        self.critic_opt = make_adam(self.critic.parameters(), cfg.critic_lr, cfg.adam_eps)
        self.register_buffer("updates", torch.zeros((), dtype=torch.long))
        self.register_buffer("eye", torch.eye(n, dtype=torch.bool), persistent=False)

    # ------------------------------------------------------------------ acting
    def policy(self, obs: Tensor, target: bool = False) -> tuple[Tensor, Tensor]:
        """(actions [B, N, da] in the box, pre-tanh outputs) for observations [B, N, do]."""
        pre = (self.actor_target if target else self.actor)(obs)[0]
        return squash(pre, self.low, self.high), pre

    @torch.no_grad()
    def act(self, obs: Tensor, noise_std: float = 0.0, generator: torch.Generator | None = None) -> Tensor:
        """Decentralised actions for obs [B, N, do]; Gaussian exploration noise (std in units of a [-1, 1] box)."""
        actions = self.policy(obs)[0]
        if noise_std > 0:
            noise = torch.randn(actions.shape, generator=generator, device=actions.device)
            actions = (actions + noise_std * self.half_range * noise).clamp(self.low, self.high)
        return actions

    # ---------------------------------------------------------------- learning
    def _critic_in(self, obs: Tensor, actions: Tensor) -> Tensor:
        """Joint (obs, actions) [B, J], the same row for every critic: [B, N, J] (or [B, 1, J] for the team's)."""
        joint = torch.cat([obs.flatten(1), actions.flatten(1)], -1)
        return joint.unsqueeze(1).expand(-1, 1 if self.cfg.team_critic else self.spec.n_agents, -1)

    def update(self, obs: Tensor, actions: Tensor, rewards: Tensor, next_obs: Tensor, dones: Tensor,
               generator: torch.Generator | None = None) -> dict[str, Tensor]:
        """One MATD3 step on a batch: obs/next_obs [B, N, do], actions [B, N, da], rewards [B, N], dones [B]."""
        cfg = self.cfg
        with torch.no_grad():
            next_a, _ = self.policy(next_obs, target=True)
            eps = torch.randn(next_a.shape, generator=generator, device=next_a.device)
            eps = (cfg.policy_noise * eps).clamp(-cfg.noise_clip, cfg.noise_clip) * self.half_range
            next_a = (next_a + eps).clamp(self.low, self.high)
            q_next = self.critic_target(self._critic_in(next_obs, next_a)).squeeze(-1).min(0).values  # [B, N|1]
            if cfg.team_critic:
                rewards = rewards.mean(-1, keepdim=True)
            target = cfg.reward_scale * rewards + cfg.gamma * (1.0 - dones)[:, None] * q_next
        q = self.critic(self._critic_in(obs, actions)).squeeze(-1)  # [2, B, N]
        critic_loss = (q - target).square().mean(dim=(1, 2)).sum()
        self.critic_opt.zero_grad(set_to_none=True)
        critic_loss.backward()
        self.critic_opt.step()
        self.updates += 1
        out = {"critic_loss": critic_loss.detach(), "q_mean": q[0].detach().mean()}
        if int(self.updates) % cfg.policy_delay == 0:
            mu, pre = self.policy(obs)
            if cfg.team_critic:
                joint_a = mu[:, None, :, :]  # every agent's current action: [B, 1, N, da]
            else:
                # row i: agent i's own action from its actor, every other agent's action from the batch
                joint_a = torch.where(self.eye[None, :, :, None], mu[:, None, :, :], actions[:, None, :, :])
            obs_flat = obs.flatten(1).unsqueeze(1).expand(-1, joint_a.shape[1], -1)
            q_pi = self.critic(torch.cat([obs_flat, joint_a.flatten(2)], -1))[0].squeeze(-1)  # [B, N]
            actor_loss = -q_pi.mean() + cfg.action_reg * pre.square().mean()
            self.actor_opt.zero_grad(set_to_none=True)
            actor_loss.backward()
            self.actor_opt.step()
            polyak_update(self.actor_target, self.actor, cfg.tau)
            polyak_update(self.critic_target, self.critic, cfg.tau)
            out["actor_loss"] = actor_loss.detach()
        return out

    # ----------------------------------------------------------- checkpointing
    def optimizer_state(self) -> dict:
        return {"actor": self.actor_opt.state_dict(), "critic": self.critic_opt.state_dict()}

    def load_optimizer_state(self, state: dict) -> None:
        self.actor_opt.load_state_dict(state["actor"])
        self.critic_opt.load_state_dict(state["critic"])

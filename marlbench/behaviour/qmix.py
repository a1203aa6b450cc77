"""QMIX for discrete actions: the online behaviour-policy learner of the discrete tasks (SMAX), as OG-MARL trained
the behaviour policies of its SMAC datasets with QMIX.

Networks (Rashid et al. 2018, as in pymarl):

- one agent Q-network shared by every agent: ``[obs, one-hot agent id, one-hot last action] -> Linear -> ReLU ->
  GRU (or a second Linear + ReLU with ``recurrent=False``) -> Linear -> Q [n_actions]``. All agents and episodes run
  in one batched call (agents are folded into the batch; nothing loops over agents in Python);
- the monotonic hypernetwork mixer of ``marlbench.mixers`` (kind ``qmix``) on the global state (the joint
  observation where the environment has no state): ``Q_tot = f(Q_1..Q_N; s)`` with ``dQ_tot/dQ_i >= 0``. The state
  is divided by a fixed per-feature scale (its max |value| in the data collected before learning starts, at least
  1), since SMAX's state holds raw positions and cooldowns of up to 50.

One ``update`` is one gradient step on a batch of whole episodes: ``y_t = scale * r_t + gamma * (1 - d_t) *
Q'_tot(argmax_legal Q(o_{t+1}), s_{t+1})`` (double Q: the online network picks the next actions among the legal
ones, the target networks evaluate them), squared TD error averaged over the valid steps, gradient norm clipped;
target networks are copied from the online ones every ``target_update_interval`` gradient steps.

Acting: epsilon-greedy restricted to the legal actions (a random action is uniform among the legal ones; the greedy
one is the legal argmax), epsilon annealed linearly over ``epsilon_anneal_steps`` env steps.

Defaults: the architecture and optimiser sizes of pymarl's QMIX for SMAC (GRU 64, mixing embedding 32, batch 32
episodes, buffer 5000 episodes, lr 5e-4, epsilon 1 -> 0.05 over 50k steps, gamma 0.99, grad-norm clip 10), with
JaxMARL's SMAX choices where pymarl has none (Adam, reward scale 10 "to SMAC's scale", 8 gradient steps per
collection round, hard target updates every 80 gradient steps = JaxMARL's 10 rounds of 8, learning starts after 10k
env steps). JaxMARL's own SMAX QMIX (``baselines/QLearning/config/alg/ql_rnn_smax.yaml``) uses a 512-wide GRU, a
64/256 mixer and lr 5e-5 for 10M steps on a GPU; the narrower pymarl sizes are the ones a CPU can afford.
"""
from __future__ import annotations

import copy
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from marlbench.mixers import Mixer
from marlbench.nn import make_adam
from marlbench.spec import TaskSpec


@dataclass
class QMIXConfig:
    """QMIX hyperparameters (see the module docstring for where each default comes from)."""

    hidden_dim: int = 64
    recurrent: bool = True  # GRU agent network (pymarl's RNN agent); False: a two-layer MLP
    last_action: bool = True  # the agent input includes its previous action, one-hot (pymarl's obs_last_action)
    mixer_embed_dim: int = 32
    lr: float = 5e-4
    adam_eps: float = 1e-5
    batch_size: int = 32  # episodes per gradient step
    gamma: float = 0.99
    grad_norm_clip: float = 10.0
    target_update_interval: int = 80  # gradient steps between hard target-network copies
    double_q: bool = True
    reward_scale: float = 10.0  # rewards are multiplied by this inside the TD targets
    epsilon_start: float = 1.0
    epsilon_finish: float = 0.05
    epsilon_anneal_steps: int = 50_000  # env steps over which epsilon decays linearly
    # 0: one-step targets (pymarl's QMIX); > 0: TD(lambda) targets over the episode (pymarl2, Hu et al. 2021,
    # "Rethinking the implementation tricks...", whose QMIX uses 0.6 and wins SMAC's hard maps with it)
    td_lambda: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)

    def epsilon(self, env_steps: int) -> float:
        frac = min(1.0, env_steps / max(1, self.epsilon_anneal_steps))
        return self.epsilon_start + frac * (self.epsilon_finish - self.epsilon_start)


class AgentQNetwork(nn.Module):
    """The shared per-agent Q-network. ``forward`` takes inputs ``[..., T, N, in]`` (whole sequences) or a single step
    with a hidden state; agents are folded into the batch dimension."""

    def __init__(self, in_dim: int, hidden_dim: int, n_actions: int, recurrent: bool):
        super().__init__()
        self.recurrent, self.hidden_dim = recurrent, hidden_dim
        self.fc1 = nn.Linear(in_dim, hidden_dim)
        self.core = nn.GRU(hidden_dim, hidden_dim, batch_first=True) if recurrent else nn.Linear(hidden_dim,
                                                                                                   hidden_dim)
        self.fc2 = nn.Linear(hidden_dim, n_actions)

    def forward(self, x: Tensor, hidden: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
        """x [E, T, N, in] -> (Q [E, T, N, A], final hidden [1, E*N, H] or None)."""
        e, t, n, _ = x.shape
        h = F.relu(self.fc1(x))
        if not self.recurrent:
            return self.fc2(F.relu(self.core(h))), None
        seq = h.permute(0, 2, 1, 3).reshape(e * n, t, self.hidden_dim)
        out, hidden = self.core(seq, hidden)
        out = out.reshape(e, n, t, self.hidden_dim).permute(0, 2, 1, 3)
        return self.fc2(out), hidden


def masked_argmax(q: Tensor, legal: Tensor) -> Tensor:
    """The legal action with the highest Q (ties: the lowest index)."""
    return q.masked_fill(~legal, float("-inf")).argmax(-1)


def td_lambda_targets(rewards: Tensor, terminals: Tensor, mask: Tensor, next_values: Tensor, gamma: float,
                      lam: float) -> Tensor:
    """TD(lambda) targets [E, T]: ``G_t = r_t + gamma (1 - d_t) ((1 - lam) V_t+1 + lam G_t+1)``, where
    ``next_values[:, t]`` is the target V(s_t+1) and G_t+1 is replaced by V(s_t+1) after the last valid step (a
    time-limit cut bootstraps there). ``lam = 0`` gives the one-step targets. The recursion runs backwards over time
    (episodes and agents stay batched)."""
    if lam == 0.0:
        return rewards + gamma * (1.0 - terminals) * next_values
    targets = torch.empty_like(rewards)
    ahead = next_values[:, -1]  # G_t+1 where t+1 is past the window: bootstrap
    for step in range(rewards.shape[1] - 1, -1, -1):
        if step + 1 < rewards.shape[1]:
            valid_next = mask[:, step + 1]
            ahead = valid_next * targets[:, step + 1] + (1.0 - valid_next) * next_values[:, step]
        blended = (1.0 - lam) * next_values[:, step] + lam * ahead
        targets[:, step] = rewards[:, step] + gamma * (1.0 - terminals[:, step]) * blended
    return targets


class QMIX(nn.Module):
    """Agent network, mixer, their targets and the optimiser. Checkpoint with ``state_dict`` + ``optimizer_state``."""

    def __init__(self, spec: TaskSpec, cfg: QMIXConfig, state_dim: int | None = None):
        super().__init__()
        if spec.continuous:
            raise ValueError("QMIX needs a discrete action space")
        self.spec, self.cfg = spec, cfg
        n, a = spec.n_agents, spec.action_dim
        self.state_dim = state_dim or spec.state_dim or n * spec.obs_dim
        self.in_dim = spec.obs_dim + n + (a if cfg.last_action else 0)
        self.agent = AgentQNetwork(self.in_dim, cfg.hidden_dim, a, cfg.recurrent)
        self.mixer = Mixer("qmix", n, self.state_dim, embed_dim=cfg.mixer_embed_dim)
        self.target_agent = copy.deepcopy(self.agent).requires_grad_(False)
        self.target_mixer = copy.deepcopy(self.mixer).requires_grad_(False)
        self.params = list(self.agent.parameters()) + list(self.mixer.parameters())
        self.opt = make_adam(self.params, cfg.lr, cfg.adam_eps)
        self.register_buffer("updates", torch.zeros((), dtype=torch.long))
        # the mixer's state divided by a fixed per-feature scale (SMAX's state holds raw positions up to 32 and
        # cooldowns up to 50, which blow up the hypernetworks): set once by ``set_state_scale`` before learning
        self.register_buffer("state_scale", torch.ones(self.state_dim))
        self.register_buffer("eye", torch.eye(n), persistent=False)

    # ------------------------------------------------------------------ inputs
    def inputs(self, obs: Tensor, last_actions: Tensor) -> Tensor:
        """Agent inputs for obs [..., N, do] and previous actions [..., N] (-1: none yet) -> [..., N, in]."""
        parts = [obs, self.eye.expand(*obs.shape[:-1], -1)]
        if self.cfg.last_action:
            parts.append(F.one_hot(last_actions.clamp_min(0), self.spec.action_dim).to(obs.dtype)
                         * (last_actions >= 0).unsqueeze(-1).to(obs.dtype))
        return torch.cat(parts, -1)

    # ------------------------------------------------------------------ acting
    def initial_hidden(self, batch: int) -> Tensor | None:
        return torch.zeros(1, batch * self.spec.n_agents, self.cfg.hidden_dim) if self.cfg.recurrent else None

    @torch.no_grad()
    def act(self, obs: Tensor, last_actions: Tensor, legal: Tensor, hidden: Tensor | None, epsilon: float = 0.0,
            generator: torch.Generator | None = None) -> tuple[Tensor, Tensor | None]:
        """Epsilon-greedy legal actions [B, N] for one step: obs [B, N, do], last actions [B, N], legal [B, N, A]."""
        q, hidden = self.agent(self.inputs(obs, last_actions)[:, None], hidden)
        actions = masked_argmax(q[:, 0], legal)
        if epsilon > 0:
            # uniform among the legal actions: random keys, the illegal ones pushed below every legal one
            keys = torch.rand(legal.shape, generator=generator) + legal.to(torch.float32)
            explore = torch.rand(actions.shape, generator=generator) < epsilon
            actions = torch.where(explore, keys.argmax(-1), actions)
        return actions, hidden

    # ---------------------------------------------------------------- learning
    def update(self, batch: dict[str, Tensor]) -> dict[str, float]:
        """One QMIX step on episodes: obs [E, T+1, N, do], state [E, T+1, S], legal [E, T+1, N, A] (bool),
        actions [E, T, N] (long), rewards [E, T], terminals [E, T], mask [E, T] (1 on valid steps)."""
        cfg = self.cfg
        actions = batch["actions"]
        last = torch.cat([torch.full_like(actions[:, :1], -1), actions], 1)  # previous action at every step
        x = self.inputs(batch["obs"], last)
        q, _ = self.agent(x)  # [E, T+1, N, A]
        q_taken = q[:, :-1].gather(-1, actions.unsqueeze(-1)).squeeze(-1)  # [E, T, N]
        e, t = q_taken.shape[:2]
        state = batch["state"] / self.state_scale
        with torch.no_grad():
            q_target, _ = self.target_agent(x)
            legal_next = batch["legal"][:, 1:]
            if cfg.double_q:
                best = masked_argmax(q[:, 1:].detach(), legal_next)
                q_next = q_target[:, 1:].gather(-1, best.unsqueeze(-1)).squeeze(-1)
            else:
                q_next = q_target[:, 1:].masked_fill(~legal_next, float("-inf")).max(-1).values
            tot_next = self.target_mixer(q_next.reshape(e * t, -1), state[:, 1:].reshape(e * t, -1)).view(e, t)
            y = td_lambda_targets(cfg.reward_scale * batch["rewards"], batch["terminals"], batch["mask"], tot_next,
                                  cfg.gamma, cfg.td_lambda)
        tot = self.mixer(q_taken.reshape(e * t, -1), state[:, :-1].reshape(e * t, -1)).view(e, t)
        mask = batch["mask"]
        loss = ((tot - y).square() * mask).sum() / mask.sum().clamp_min(1.0)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(self.params, cfg.grad_norm_clip)
        self.opt.step()
        self.updates += 1
        if int(self.updates) % cfg.target_update_interval == 0:
            self.update_targets()
        valid = mask.sum().clamp_min(1.0)
        return {"td_loss": float(loss.detach()), "grad_norm": float(grad_norm),
                "q_tot_mean": float((tot.detach() * mask).sum() / valid),
                "target_mean": float((y * mask).sum() / valid)}

    @torch.no_grad()
    def set_state_scale(self, states: Tensor) -> None:
        """Per-feature scale = max |state| over ``states`` [..., S], at least 1 (features already in [-1, 1] stay)."""
        self.state_scale.copy_(states.reshape(-1, self.state_dim).abs().amax(0).clamp_min(1.0))

    def update_targets(self) -> None:
        self.target_agent.load_state_dict(self.agent.state_dict())
        self.target_mixer.load_state_dict(self.mixer.state_dict())

    # ----------------------------------------------------------- checkpointing
    def optimizer_state(self) -> dict:
        return self.opt.state_dict()

    def load_optimizer_state(self, state: dict) -> None:
        self.opt.load_state_dict(state)

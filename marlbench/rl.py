"""Offline-RL mechanisms that several baselines share, written once.

- ``td_target``: y = r + gamma (1 - d) * next value (team or per-agent).
- ``smoothed_target_actions``: TD3's target policy smoothing.
- ``cql_penalty_discrete`` / ``cql_penalty_continuous``: CQL's conservative term (Kumar et al. 2020, Eq. 4 with
  the importance-sampled log-sum-exp of App. F for continuous actions).
- ``cem_search``: OMAR's sampling (cross-entropy) search for a higher-Q action per agent (Pan et al. 2022, Sec. 4.2).
- ``batch_softmax_weights``: softmax over the batch, as ICQ's in-sample weights (optionally on standardised
  scores); ``effective_sample_size``: Kish's ESS of such weights.
- ``update_target``: hard target copy every P steps or Polyak averaging; ``make_mixer``: a task's Mixer.
- ``gradient_ratio`` / ``value_gap``: the mechanism measurements of ``Algorithm.diagnostics`` (is each loss term
  alive? does the policy's value claim to beat the data's?), named alike in every algorithm's log.
"""
from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from marlbench.heads import ActionBox
from marlbench.mixers import Mixer
from marlbench.nn import polyak_update


def td_target(rewards: Tensor, dones: Tensor, next_value: Tensor, gamma: float) -> Tensor:
    """``rewards`` and ``next_value`` of the same shape [..., B] or [..., B, N]; ``dones`` [B] (1: terminal)."""
    not_done = 1.0 - dones
    if next_value.dim() > 1 and next_value.shape[-1] != dones.shape[-1]:  # per-agent values [.., B, N]
        not_done = not_done.unsqueeze(-1)
    return rewards + gamma * not_done * next_value


def smoothed_target_actions(target_actions: Tensor, box: ActionBox, noise_std: float, noise_clip: float) -> Tensor:
    """TD3: clip(pi'(o') + clip(N(0, noise_std^2), -noise_clip, noise_clip), box). Noise is in action units."""
    noise = (torch.randn_like(target_actions) * noise_std).clamp(-noise_clip, noise_clip)
    return box.clip(target_actions + noise)


def cql_penalty_discrete(q_all: Tensor, q_data: Tensor, legals: Tensor | None = None) -> Tensor:
    """mean[logsumexp_a Q(o, a) - Q(o, a_data)] over legal actions; ``q_all`` [..., nA], ``q_data`` [...]."""
    if legals is not None:
        q_all = q_all.masked_fill(~legals.expand_as(q_all), -1e9)
    return (torch.logsumexp(q_all, -1) - q_data).mean()


def cql_penalty_continuous(q_fn: Callable[[Tensor], Tensor], q_data: Tensor,
                           proposals: list[tuple[Tensor, Tensor]]) -> Tensor:
    """mean[log (1/M) sum_j exp(Q(o, a_j) - log p(a_j)) - Q(o, a_data)] (CQL(H) with importance sampling).

    ``proposals``: (actions [S, ..., N, da], log-densities [S, ..., N]) from the samplers (uniform over the box,
    the current policy at o and at o'), all evaluated at the same o by ``q_fn(actions) -> [E, S, ..., N]``.
    ``q_data`` [E, ..., N]. The constant log M is dropped (it does not change gradients).
    """
    scores = torch.cat([q_fn(actions) - log_p.detach().unsqueeze(0) for actions, log_p in proposals], dim=1)
    return (torch.logsumexp(scores, dim=1) - q_data).mean()


@torch.no_grad()
def cem_search(q_fn: Callable[[Tensor], Tensor], mean: Tensor, std: float | Tensor, box: ActionBox,
               iterations: int, samples: int, elites: int, refit: str = "softmax",
               temperature: float = 1.0) -> tuple[Tensor, Tensor]:
    """Per agent, ``iterations`` rounds of: sample ``samples`` actions from N(mean, std^2) (clipped to the box),
    score them with ``q_fn(actions [S, B, N, da]) -> [S, B, N]``, then refit mean and std:

    - ``refit="softmax"`` (OMAR reference, MPE): mean = sum_j softmax(Q_j / temperature) a_j, std = the RMS
      distance of the samples to that mean;
    - ``refit="elites"`` (OMAR reference, MA-MuJoCo): mean/std of the ``elites`` best among this round's samples
      and the previous round's elites (carried forward, so elites == samples still refines).

    Returns the best action seen [B, N, da] and its Q [B, N]. Every agent searches independently (OMAR's critics
    are individual), all agents and batch rows at once.
    """
    if not 1 <= elites <= samples:
        raise ValueError(f"need 1 <= elites <= samples, got elites={elites}, samples={samples}")
    if refit not in ("softmax", "elites"):
        raise ValueError(f"refit must be 'softmax' or 'elites', got {refit!r}")
    std = torch.as_tensor(std, dtype=mean.dtype, device=mean.device).expand_as(mean)
    best_a, best_q = mean.clone(), torch.full(mean.shape[:-1], -torch.inf, device=mean.device)
    kept_a = kept_q = None
    for _ in range(iterations):
        cand = box.clip(mean + std * torch.randn(samples, *mean.shape, device=mean.device))  # [S, B, N, da]
        q = q_fn(cand)  # [S, B, N]
        top_q, top_i = q.max(0)
        top = cand.gather(0, top_i[None, ..., None].expand(1, *cand.shape[1:]))[0]
        improved = top_q > best_q
        best_q = torch.where(improved, top_q, best_q)
        best_a = torch.where(improved.unsqueeze(-1), top, best_a)
        if refit == "softmax":
            w = torch.softmax(q / temperature, dim=0).unsqueeze(-1)  # [S, B, N, 1]
            mean = (w * cand).sum(0)
            std = (cand - mean).square().mean(0).sqrt().clamp_min(1e-3)
        else:
            pool_a = cand if kept_a is None else torch.cat([cand, kept_a])
            pool_q = q if kept_q is None else torch.cat([q, kept_q])
            kept_q, idx = pool_q.topk(elites, dim=0)
            kept_a = pool_a.gather(0, idx.unsqueeze(-1).expand(-1, *pool_a.shape[1:]))
            mean = kept_a.mean(0)
            std = kept_a.std(0, unbiased=False).clamp_min(1e-3) if elites > 1 else std
    return best_a, best_q


def batch_softmax_weights(scores: Tensor, temperature: float, dim: int = 0, standardise: bool = False) -> Tensor:
    """softmax(scores / temperature) over the batch dimension, times the batch size (mean weight 1).

    ``standardise``: divide the scores by their batch standard deviation first, so the weights do not change when
    the scores are shifted by a constant or scaled (the temperature is then in units of std)."""
    if standardise:
        scores = scores / scores.std(dim, keepdim=True).clamp_min(1e-8)
    return torch.softmax(scores / temperature, dim=dim) * scores.shape[dim]


def effective_sample_size(weights: Tensor, dim: int = 0) -> Tensor:
    """Kish's (sum w)^2 / sum w^2 along ``dim``: how many samples a weighted batch is really worth."""
    return weights.sum(dim).square() / weights.square().sum(dim).clamp_min(1e-30)


def update_target(target: torch.nn.Module, source: torch.nn.Module, step: int, period: int, tau: float) -> None:
    """Target networks: a hard copy every ``period`` steps when ``period > 0`` (DQN-style, i.e. tau = 1 at that
    period; BCQ/CQL discrete), else Polyak averaging with ``tau`` every step. ``step`` counts updates from 1."""
    if period > 0:
        if step % period == 0:
            target.load_state_dict(source.state_dict())
    else:
        polyak_update(target, source, tau)


def make_mixer(kind: str, spec, embed_dim: int = 128) -> Mixer:
    """The ``Mixer`` for a task: conditioned on the global state if the task has one, else on the joint
    observation (the input ``mixers.mixer_state`` builds)."""
    state_dim = spec.state_dim if spec.state_dim is not None else spec.n_agents * spec.obs_dim
    return Mixer(kind, spec.n_agents, state_dim, embed_dim)


def grad_norm(loss: Tensor, params: list[Tensor]) -> Tensor:
    """||d loss / d params|| (weights the loss does not reach count 0); the graph is kept."""
    grads = torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True)
    return torch.sqrt(sum(g.square().sum() for g in grads if g is not None))


def gradient_ratio(first: tuple[str, Tensor], second: tuple[str, Tensor], params: list[Tensor]) -> dict[str, Tensor]:
    """``grad_norm_<a>``, ``grad_norm_<b>`` and ``grad_ratio_<a>_<b>`` = ||d first / d params|| / ||d second /
    d params|| for two named loss terms (each with its coefficient applied) over the weights they share: far above
    1, the second term barely moves those weights (a silent Q or conservative term); far below, it drowns the first.
    The graph is kept, so the terms can be reused."""
    (a, loss_a), (b, loss_b) = first, second
    norm_a, norm_b = grad_norm(loss_a, params), grad_norm(loss_b, params)
    return {f"grad_norm_{a}": norm_a, f"grad_norm_{b}": norm_b, f"grad_ratio_{a}_{b}": norm_a / norm_b.clamp_min(1e-12)}


@torch.no_grad()
def value_gap(q_tot: Callable[[Tensor], Tensor], data_actions: Tensor, policy_actions: Tensor) -> dict[str, Tensor]:
    """``q_data`` = mean Q_tot(o, a_data) and ``q_pi_minus_q_data`` = mean [Q_tot(o, pi(o)) - Q_tot(o, a_data)]
    under the algorithm's own critic (``q_tot`` maps joint actions to [B] or [B, N] values): about 0, the policy is
    valued like the data (copying it, or the critic cannot tell); large and positive, the policy claims
    improvement, real or an exploited critic error; negative, the critic ranks the data above the policy."""
    q_data = q_tot(data_actions)
    return {"q_data": q_data.mean(), "q_pi_minus_q_data": (q_tot(policy_actions) - q_data).mean()}

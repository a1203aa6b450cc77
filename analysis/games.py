"""The paper's didactic game experiments (App. H.5-H.7): train MAC-Flow, measure its policies, draw the figures.

`marlbench plot games` runs them all with the quick profile's games budget and writes ``games.json`` plus
Fig. 14 (coordination game), Fig. 15 (XOR) and Fig. 16 (payoff game against zeta) as PNG files.
W2 between the joint flow policy and the factorised one-step policy is the exact W2 between their joint-action
distributions (marlbench.diagnostics.w2_discrete, support = the four joint actions as points of {0,1}^2).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from marlbench.config import resolve
from marlbench.errors import require
from marlbench.data.formats.native import load_native
from marlbench.data.sampler import TransitionSampler
from marlbench.diagnostics import coupled_w2_bound, w2_coupled_lipschitz, w2_discrete
from marlbench.envs.games import COORDINATION_PAYOFF, PAYOFF_ZETAS, joint_action_frequencies, payoff_name
from marlbench.protocol import EVAL_SEED_OFFSET, ensure_dataset, evaluate, seed_everything
from marlbench.registry import ALGORITHMS
from marlbench.tasks import get_task

SAMPLES = 20000
JOINT_SUPPORT = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=float)  # row-major order of the 2x2 matrices


def train_macflow(task_name: str, seed: int = 0, steps: int | None = None, callback=None, every: int = 250,
                  **overrides):
    """MAC-Flow trained with the quick profile's games budget; returns (algorithm, dataset).

    ``callback(step, algo, dataset)`` runs every ``every`` steps (diagnostics during training)."""
    task = get_task(task_name)
    dataset = load_native(ensure_dataset(task, log=lambda msg: None), task.spec)
    cls = ALGORITHMS.get("macflow")
    resolved = resolve(cls, task.benchmark, "quick", steps=steps, overrides=overrides)
    torch.set_num_threads(1)
    seed_everything(seed)
    algo = cls(task.spec, resolved.algorithm)
    sampler = TransitionSampler(dataset, resolved.algorithm.batch_size, "cpu", seed=seed)
    for step in range(1, resolved.protocol.steps + 1):
        algo.update(sampler.sample())
        if callback is not None and (step % every == 0 or step == resolved.protocol.steps):
            callback(step, algo, dataset)
    return algo, dataset


def policy_samples(algo, deploy: str, samples: int = SAMPLES, seed: int = 1) -> np.ndarray:
    """Joint actions of the one-step policies (``onestep``) or of the joint flow (``flow``) at the game's state."""
    algo.cfg.deploy = deploy
    torch.manual_seed(seed)
    return algo.act(torch.zeros(samples, algo.spec.n_agents, algo.spec.obs_dim)).numpy()


def expected_reward(freq: np.ndarray) -> float:
    return float((freq * np.asarray(COORDINATION_PAYOFF)).sum())


def matrix_game(task_name: str, seed: int = 0, steps: int | None = None, no_guidance: bool = True) -> dict[str, Any]:
    """Joint-action frequencies, expected rewards and W2(flow, one-step) for a 2x2 game; optionally also the
    variant distilled without value guidance."""
    macflow, dataset = train_macflow(task_name, seed, steps)
    freqs = {
        "dataset": joint_action_frequencies(dataset.actions),
        "flow": joint_action_frequencies(policy_samples(macflow, "flow")),
        "macflow": joint_action_frequencies(policy_samples(macflow, "onestep")),
    }
    if no_guidance:
        variant, _ = train_macflow(task_name, seed, steps, q_guidance=False)
        freqs["no_guidance"] = joint_action_frequencies(policy_samples(variant, "onestep"))
    return {
        "frequencies": {k: v.tolist() for k, v in freqs.items()},
        "expected_reward": {k: expected_reward(v) for k, v in freqs.items()},
        "w2_flow_vs_macflow": w2_discrete(freqs["flow"].ravel(), freqs["macflow"].ravel(), JOINT_SUPPORT),
    }


def xor_game(seed: int = 0, steps: int | None = None) -> dict[str, Any]:
    algo, dataset = train_macflow("games/xor", seed, steps)
    samples = {"dataset": dataset.actions[:, :, 0], "flow": policy_samples(algo, "flow")[..., 0],
               "macflow": policy_samples(algo, "onestep")[..., 0]}

    def near_modes(a: np.ndarray) -> float:  # both agents within 0.5 of +-1 and opposite in sign
        return float(np.mean((np.abs(a) > 0.5).all(-1) & (a[:, 0] * a[:, 1] < 0)))

    return {"samples": {k: v[:2000].tolist() for k, v in samples.items()},
            "near_anti_aligned_modes": {k: near_modes(v) for k, v in samples.items()},
            "mean_reward": {k: float(np.abs(v[:, 0] - v[:, 1]).mean() / 2) for k, v in samples.items()}}


@torch.no_grad()
def distillation_diagnostics(algo, dataset, n_obs: int = 16, k: int = 64, seed: int = 0) -> dict[str, float]:
    """Prop. 4.2-4.3 quantities at ``n_obs`` dataset observations, each with ``k`` shared noise draws z:
    distillation loss, W2(pi_phi(o), pi_w(o)) (exact empirical OT), its same-noise coupling bound, the value gap
    |E_w Q_tot - E_phi Q_tot| under the trained critic, and L_Q. L_Q is estimated per observation as the largest
    |dQ_tot| / ||da|| over the pairs matched by the optimal W2 plan (exact for the empirical measures, a lower
    bound on the true constant); averages over observations are reported, and the bound L_Q * W2 is formed per
    observation before averaging."""
    g = torch.Generator().manual_seed(seed)
    rows = torch.randint(dataset.n_transitions, (n_obs,), generator=g)
    obs = torch.as_tensor(dataset.obs[rows.numpy()])  # [n_obs, N, do]
    n, da = algo.spec.n_agents, algo.spec.action_dim
    obs_k = obs.repeat_interleave(k, 0)
    noise = torch.randn(n_obs * k, n, da, generator=g)
    joint = algo.flow_actions(obs_k, noise)
    factorised = algo.clip(algo.one_step(obs_k, noise))
    q_joint = algo.aggregate(algo.q_members(algo.critic, obs_k, joint)).mean(-1)
    q_fact = algo.aggregate(algo.q_members(algo.critic, obs_k, factorised)).mean(-1)
    out = {"distill_loss": float((factorised - joint).square().sum((1, 2)).mean())}
    per_obs = []
    for i in range(n_obs):  # one OT problem per observation (k x k), as Prop. 4.2 fixes o
        sl = slice(i * k, (i + 1) * k)
        w2, lip = w2_coupled_lipschitz(joint[sl].flatten(1), factorised[sl].flatten(1), q_joint[sl], q_fact[sl])
        gap = abs(float(q_fact[sl].mean() - q_joint[sl].mean()))
        per_obs.append((w2, coupled_w2_bound(joint[sl].flatten(1), factorised[sl].flatten(1)), gap, lip, lip * w2))
    w2, coupled, gap, lip, bound = np.asarray(per_obs).T
    out.update(w2=float(w2.mean()), coupled_bound=float(coupled.mean()), value_gap=float(gap.mean()),
               lipschitz=float(lip.mean()), lq_w2_bound=float(bound.mean()),
               bound_holds_everywhere=bool(np.all(gap <= bound + 1e-6)))
    return out


def landmarks(n_agents: int, seed: int = 0, steps: int | None = None, every: int = 250) -> dict[str, Any]:
    """Train on games/landmarks-N, log the distillation diagnostics at every checkpoint, score the policies."""
    log: list[dict[str, Any]] = []

    def record(step, algo, dataset):
        log.append({"step": step, **distillation_diagnostics(algo, dataset, seed=seed)})

    algo, _ = train_macflow(f"games/landmarks-{n_agents}", seed, steps, callback=record, every=every)
    task = get_task(f"games/landmarks-{n_agents}")
    scores = {}
    for deploy in ("flow", "onestep"):
        algo.cfg.deploy = deploy
        scores[deploy] = task.spec.normalise(float(evaluate(algo, task, 32, EVAL_SEED_OFFSET + seed).mean()))
    algo.cfg.deploy = "onestep"
    return {"checkpoints": log, "normalised_score": scores}


def run_all(seed: int = 0, steps: int | None = None, log=print) -> dict[str, Any]:
    results: dict[str, Any] = {}
    log("coordination game ...")
    results["coordination"] = matrix_game("games/coordination", seed, steps)
    log("xor ...")
    results["xor"] = xor_game(seed, steps)
    for n in (3, 40):
        log(f"landmark covering, {n} agents ...")
        results[f"landmarks_{n}"] = landmarks(n, seed, steps)
    results["payoff"] = {}
    for zeta in PAYOFF_ZETAS:
        log(f"payoff game, zeta={zeta} ...")
        results["payoff"][str(zeta)] = matrix_game(payoff_name(zeta), seed, steps, no_guidance=False)
    return results


def plot_all(results: dict[str, Any], out: Path) -> list[Path]:
    matplotlib = require("matplotlib", "plot")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    written = []

    def save(fig, name: str) -> None:
        fig.tight_layout()
        written.append(out / name)
        fig.savefig(written[-1], dpi=120)
        plt.close(fig)

    def heatmap(ax, freq, title):
        freq = np.asarray(freq)
        ax.imshow(freq, vmin=0, vmax=1, cmap="Blues")
        for i in range(2):
            for j in range(2):
                ax.text(j, i, f"{freq[i, j]:.2f}", ha="center", va="center",
                        color="white" if freq[i, j] > 0.5 else "black")
        ax.set_xticks([0, 1]), ax.set_yticks([0, 1])
        ax.set_xlabel("agent 2 action"), ax.set_ylabel("agent 1 action"), ax.set_title(title, fontsize=9)

    coord = results["coordination"]
    fig, axes = plt.subplots(1, 4, figsize=(12, 3.8))
    titles = {"dataset": "(a) dataset", "flow": "(b) joint flow", "macflow": "(c) one-step, IGM guidance",
              "no_guidance": "(d) one-step, no guidance"}
    for ax, (key, title) in zip(axes, titles.items()):
        heatmap(ax, coord["frequencies"][key], f"{title}\nE[r]={coord['expected_reward'][key]:.2f}")
    fig.suptitle("Fig. 14: pure coordination game (reward (1,1)=2, off-diagonal 1, (0,0)=0)")
    save(fig, "fig14_coordination.png")

    xor = results["xor"]
    fig, axes = plt.subplots(1, 3, figsize=(10, 3.4))
    for ax, key, title in zip(axes, ("dataset", "flow", "macflow"), ("dataset", "joint flow", "factorised one-step")):
        a = np.asarray(xor["samples"][key])
        ax.scatter(a[:, 0], a[:, 1], s=3, alpha=0.3)
        ax.set_xlim(-1.1, 1.1), ax.set_ylim(-1.1, 1.1), ax.set_aspect("equal")
        ax.set_title(f"{title}\nnear modes {xor['near_anti_aligned_modes'][key]:.2f}", fontsize=9)
        ax.set_xlabel("agent 1 action"), ax.set_ylabel("agent 2 action")
    fig.suptitle("Fig. 15: XOR (optimal joint actions (-1,+1) and (+1,-1))")
    save(fig, "fig15_xor.png")

    payoff = results["payoff"]
    zetas = sorted(payoff, key=float)
    fig = plt.figure(figsize=(13, 6.5))
    grid = fig.add_gridspec(2, len(zetas) + 2)
    for col, z in enumerate(zetas):
        heatmap(fig.add_subplot(grid[0, col]), payoff[z]["frequencies"]["flow"], f"flow, zeta={float(z):.2f}")
        heatmap(fig.add_subplot(grid[1, col]), payoff[z]["frequencies"]["macflow"], f"one-step, zeta={float(z):.2f}")
    x = [float(z) for z in zetas]
    ax = fig.add_subplot(grid[0, len(zetas):])
    for key, label in (("dataset", "dataset"), ("flow", "joint flow"), ("macflow", "one-step (MAC-Flow)")):
        ax.plot(x, [payoff[z]["expected_reward"][key] for z in zetas], marker="o", label=label)
    ax.set_xlabel("zeta"), ax.set_ylabel("expected reward"), ax.legend(fontsize=8), ax.set_title("(b) return")
    ax = fig.add_subplot(grid[1, len(zetas):])
    ax.plot(x, [payoff[z]["w2_flow_vs_macflow"] for z in zetas], marker="o")
    ax.set_xlabel("zeta"), ax.set_ylabel("W2(flow, one-step)"), ax.set_title("(c) Wasserstein-2")
    fig.suptitle("Fig. 16: payoff game against interaction strength zeta")
    save(fig, "fig16_payoff.png")
    return written


def main(out: Path, seed: int = 0, steps: int | None = None) -> list[Path]:
    require("matplotlib", "plot")  # fail before minutes of training, not after
    results = run_all(seed, steps)
    out.mkdir(parents=True, exist_ok=True)
    (out / "games.json").write_text(json.dumps(results, indent=1))
    return [out / "games.json", *plot_all(results, out)]

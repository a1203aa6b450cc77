"""The paper's didactic game experiments (App. H.5-H.7): train MAC-Flow, measure its policies, draw the figures.

`marlbench plot games` runs them all with the quick profile's games budget and writes ``games.json`` plus
Fig. 3 (distillation diagnostics, 3-agent landmark covering), Fig. 13 (landmark trajectories, 3 and 40 agents),
Fig. 14 (coordination game), Fig. 15 (XOR) and Fig. 16 (payoff game against zeta) as PNG files.
W2 between the joint flow policy and the factorised one-step policy is the exact W2 between their joint-action
distributions (marlbench.analysis.diagnostics.w2_discrete, support = the four joint actions as points of {0,1}^2).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from marlbench.analysis.diagnostics import (
    coupled_w2_bound,
    mean_pairwise_gaussian_mi,
    w2_coupled_lipschitz,
    w2_discrete,
)
from marlbench.config import resolve
from marlbench.data.formats.native import load_native
from marlbench.data.sampler import TransitionSampler
from marlbench.envs.games import COORDINATION_PAYOFF, PAYOFF_ZETAS, joint_action_frequencies, payoff_name
from marlbench.envs.landmarks import GENERATE_CHUNK, LandmarkCoveringEnv
from marlbench.envs.rollout import rollout
from marlbench.errors import require
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
    observation before averaging. ``points`` keeps the per-observation (W2, gap, L_Q) for Fig. 3(d).
    Inter-agent mutual information (Fig. 3(b)) is I(a_i; a_j | o) from the k draws at each observation, averaged
    over observations and agent pairs (Gaussian estimator,
    marlbench.analysis.diagnostics.mean_pairwise_gaussian_mi). The one-step policies are independent given o by
    construction, so their value is the estimator's bias floor."""
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
        per_obs.append((w2, coupled_w2_bound(joint[sl].flatten(1), factorised[sl].flatten(1)), gap, lip, lip * w2,
                        mean_pairwise_gaussian_mi(joint[sl]), mean_pairwise_gaussian_mi(factorised[sl])))
    w2, coupled, gap, lip, bound, mi_flow, mi_onestep = np.asarray(per_obs).T
    out.update(w2=float(w2.mean()), coupled_bound=float(coupled.mean()), value_gap=float(gap.mean()),
               lipschitz=float(lip.mean()), lq_w2_bound=float(bound.mean()),
               bound_holds_everywhere=bool(np.all(gap <= bound + 1e-6)),
               mi_flow=float(mi_flow.mean()), mi_onestep=float(mi_onestep.mean()),
               points={"w2": w2.tolist(), "value_gap": gap.tolist(), "lipschitz": lip.tolist()})
    return out


@torch.no_grad()
def landmark_trajectories(algo, dataset, n_agents: int, seed: int = 0) -> dict[str, list]:
    """Fig. 13: agent positions [T, N, 2] of the dataset's first episode, and of the joint flow and the one-step
    policies rolled out from that episode's start state (same reset seed as the generator's first chunk)."""
    limit = algo.spec.episode_limit
    out = {"dataset": dataset.obs[:limit, :, :2].tolist()}
    for deploy in ("flow", "onestep"):
        algo.cfg.deploy = deploy
        torch.manual_seed(seed)
        env = LandmarkCoveringEnv(GENERATE_CHUNK, n_agents, spec=algo.spec)
        episode = rollout(env, lambda step: algo.act(torch.as_tensor(step.obs)).numpy(), 1,
                          int(dataset.metadata.get("generator_seed", 0)))
        out[deploy] = episode.obs[:, :, :2].tolist()
    algo.cfg.deploy = "onestep"
    return out


def landmarks(n_agents: int, seed: int = 0, steps: int | None = None, every: int = 250,
              no_guidance: bool = False) -> dict[str, Any]:
    """Train on games/landmarks-N, log the distillation diagnostics at every checkpoint, score the policies.
    ``no_guidance`` also trains and logs the variant distilled without the Q term (same seed and data)."""
    task = get_task(f"games/landmarks-{n_agents}")
    variants = {"macflow": {}, "no_guidance": {"q_guidance": False}} if no_guidance else {"macflow": {}}
    out: dict[str, Any] = {"normalised_score": {}}
    for variant, overrides in variants.items():
        log: list[dict[str, Any]] = []

        def record(step, algo, dataset):
            log.append({"step": step, **distillation_diagnostics(algo, dataset, seed=seed)})

        algo, dataset = train_macflow(task.name, seed, steps, callback=record, every=every, **overrides)
        out["checkpoints" if variant == "macflow" else f"checkpoints_{variant}"] = log
        for deploy in ("flow", "onestep"):
            algo.cfg.deploy = deploy
            key = deploy if variant == "macflow" else f"{deploy}_{variant}"
            out["normalised_score"][key] = task.spec.normalise(
                float(evaluate(algo, task, 32, EVAL_SEED_OFFSET + seed).mean()))
        algo.cfg.deploy = "onestep"
        if variant == "macflow":
            out["landmarks"] = dataset.metadata.get("landmarks")
            out["trajectories"] = landmark_trajectories(algo, dataset, n_agents, seed)
    return out


def run_all(seed: int = 0, steps: int | None = None, log=print) -> dict[str, Any]:
    results: dict[str, Any] = {}
    log("coordination game ...")
    results["coordination"] = matrix_game("games/coordination", seed, steps)
    log("xor ...")
    results["xor"] = xor_game(seed, steps)
    for n in (3, 40):
        log(f"landmark covering, {n} agents ...")
        results[f"landmarks_{n}"] = landmarks(n, seed, steps, no_guidance=n == 3)
    results["payoff"] = {}
    for zeta in PAYOFF_ZETAS:
        log(f"payoff game, zeta={zeta} ...")
        results["payoff"][str(zeta)] = matrix_game(payoff_name(zeta), seed, steps, no_guidance=False)
    return results


def plot_all(results: dict[str, Any], out: Path) -> list[Path]:
    """Write every figure of ``results`` (from run_all) into ``out``; returns the PNG paths."""
    matplotlib = require("matplotlib", "plot")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, draw in (("fig03_distillation_bounds.png", _fig3), ("fig13_landmark_trajectories.png", _fig13),
                       ("fig14_coordination.png", _fig14), ("fig15_xor.png", _fig15),
                       ("fig16_payoff.png", _fig16)):
        fig = draw(plt, results)
        fig.tight_layout()
        written.append(out / name)
        fig.savefig(written[-1], dpi=120)
        plt.close(fig)
    return written


def _heatmap(ax, freq, title: str) -> None:
    freq = np.asarray(freq)
    ax.imshow(freq, vmin=0, vmax=1, cmap="Blues")
    for i in range(2):
        for j in range(2):
            ax.text(j, i, f"{freq[i, j]:.2f}", ha="center", va="center",
                    color="white" if freq[i, j] > 0.5 else "black")
    ax.set_xticks([0, 1]), ax.set_yticks([0, 1])
    ax.set_xlabel("agent 2 action"), ax.set_ylabel("agent 1 action"), ax.set_title(title, fontsize=9)


def _fig3(plt, results):
    """Fig. 3: the 3-agent landmark run's distillation diagnostics at every checkpoint."""
    log = results["landmarks_3"]["checkpoints"]
    ablation = results["landmarks_3"].get("checkpoints_no_guidance", [])
    steps = [c["step"] for c in log]
    fig, axes = plt.subplots(1, 4, figsize=(16, 3.8))
    ax = axes[0]
    ax.plot(steps, [c["distill_loss"] for c in log], marker="o", color="C0", label="distillation loss")
    ax.set_xlabel("gradient step"), ax.set_ylabel("distillation loss", color="C0")
    twin = ax.twinx()
    twin.plot(steps, [c["value_gap"] for c in log], marker="s", color="C3", label="value gap")
    if ablation:
        ax.plot(steps, [c["distill_loss"] for c in ablation], ls="--", color="C0", alpha=0.6)
        twin.plot(steps, [c["value_gap"] for c in ablation], ls="--", color="C3", alpha=0.6)
    twin.set_ylabel("value gap |E_w Q - E_phi Q|", color="C3")
    ax.set_title("(a) distillation loss and value gap" + ("\n(dashed: distilled without Q guidance)" if ablation
                                                          else ""), fontsize=9)
    ax = axes[1]
    ax.plot(steps, [c["mi_flow"] for c in log], marker="o", label="joint flow")
    ax.plot(steps, [c["mi_onestep"] for c in log], marker="s", label="one-step (factorised)")
    if ablation:
        ax.plot(steps, [c["mi_flow"] for c in ablation], ls="--", color="C0", alpha=0.6, label="flow, no-Q run")
        ax.plot(steps, [c["mi_onestep"] for c in ablation], ls="--", color="C1", alpha=0.6,
                label="one-step, no Q guidance")
    ax.set_xlabel("gradient step"), ax.set_ylabel("MI(a_i; a_j | o), nats"), ax.legend(fontsize=8)
    ax.set_title("(b) inter-agent mutual information (Gaussian est.)", fontsize=9)
    ax = axes[2]
    ax.plot(steps, [c["value_gap"] for c in log], marker="o", label="empirical value gap")
    ax.plot(steps, [c["lq_w2_bound"] for c in log], marker="s", label="L_Q * W2 (Prop. 4.3)")
    if ablation:
        ax.plot(steps, [c["value_gap"] for c in ablation], ls="--", color="C0", alpha=0.6, label="gap, no Q guidance")
        ax.plot(steps, [c["lq_w2_bound"] for c in ablation], ls="--", color="C1", alpha=0.6,
                label="bound, no Q guidance")
    ax.set_xlabel("gradient step"), ax.legend(fontsize=8), ax.set_title("(c) gap against bound", fontsize=9)
    ax = axes[3]
    w2 = np.concatenate([c["points"]["w2"] for c in log])
    gap = np.concatenate([c["points"]["value_gap"] for c in log])
    lip = np.concatenate([c["points"]["lipschitz"] for c in log])
    colour = np.concatenate([[c["step"]] * len(c["points"]["w2"]) for c in log])
    sc = ax.scatter(w2, gap, c=colour, s=10, cmap="viridis")
    fig.colorbar(sc, ax=ax, label="gradient step")
    line = np.linspace(0, w2.max() * 1.05, 2)
    ax.plot(line, lip.max() * line, "k--", lw=1, label=f"max L_Q * W2 (L_Q = {lip.max():.2f})")
    ax.set_xlabel("W2(pi_phi(o), pi_w(o))"), ax.set_ylabel("value gap"), ax.legend(fontsize=8)
    ax.set_title("(d) per-observation gap against W2", fontsize=9)
    fig.suptitle("Fig. 3: distillation diagnostics, landmark covering with 3 agents")
    return fig


def _fig13(plt, results):
    """Fig. 13: dataset, joint-flow and one-step trajectories from one start state, at 3 and 40 agents."""
    sizes = sorted(int(k.split("_")[1]) for k in results if k.startswith("landmarks_"))
    rows = (("dataset", "dataset"), ("flow", "joint flow"), ("onestep", "one-step policies"))
    fig, axes = plt.subplots(len(rows), len(sizes), figsize=(4.2 * len(sizes), 12), squeeze=False)
    for col, n in enumerate(sizes):
        run = results[f"landmarks_{n}"]
        landmarks = np.asarray(run["landmarks"])
        for row, (key, label) in enumerate(rows):
            ax = axes[row, col]
            paths = np.asarray(run["trajectories"][key])  # [T, N, 2]
            colours = plt.cm.hsv(np.linspace(0, 1, n, endpoint=False))
            for i in range(n):
                ax.plot(paths[:, i, 0], paths[:, i, 1], color=colours[i], lw=1)
                ax.plot(paths[0, i, 0], paths[0, i, 1], "o", color=colours[i], ms=3)
            ax.plot(landmarks[:, 0], landmarks[:, 1], "kx", ms=6)
            ax.set_xlim(-1.6, 1.6), ax.set_ylim(-1.6, 1.6), ax.set_aspect("equal")
            score = "" if key == "dataset" else f", normalised {run['normalised_score'][key]:.0f}"
            ax.set_title(f"{n} agents: {label}{score}", fontsize=9)
    fig.suptitle("Fig. 13: landmark covering trajectories (o: start, x: landmark)")
    return fig


def _fig14(plt, results):
    coord = results["coordination"]
    fig, axes = plt.subplots(1, 4, figsize=(12, 3.8))
    titles = {"dataset": "(a) dataset", "flow": "(b) joint flow", "macflow": "(c) one-step, IGM guidance",
              "no_guidance": "(d) one-step, no guidance"}
    for ax, (key, title) in zip(axes, titles.items()):
        _heatmap(ax, coord["frequencies"][key], f"{title}\nE[r]={coord['expected_reward'][key]:.2f}")
    fig.suptitle("Fig. 14: pure coordination game (reward (1,1)=2, off-diagonal 1, (0,0)=0)")
    return fig


def _fig15(plt, results):
    xor = results["xor"]
    fig, axes = plt.subplots(1, 3, figsize=(10, 3.4))
    for ax, key, title in zip(axes, ("dataset", "flow", "macflow"), ("dataset", "joint flow", "factorised one-step")):
        a = np.asarray(xor["samples"][key])
        ax.scatter(a[:, 0], a[:, 1], s=3, alpha=0.3)
        ax.set_xlim(-1.1, 1.1), ax.set_ylim(-1.1, 1.1), ax.set_aspect("equal")
        ax.set_title(f"{title}\nnear modes {xor['near_anti_aligned_modes'][key]:.2f}", fontsize=9)
        ax.set_xlabel("agent 1 action"), ax.set_ylabel("agent 2 action")
    fig.suptitle("Fig. 15: XOR (optimal joint actions (-1,+1) and (+1,-1))")
    return fig


def _fig16(plt, results):
    payoff = results["payoff"]
    zetas = sorted(payoff, key=float)
    fig = plt.figure(figsize=(13, 6.5))
    grid = fig.add_gridspec(2, len(zetas) + 2)
    for col, z in enumerate(zetas):
        _heatmap(fig.add_subplot(grid[0, col]), payoff[z]["frequencies"]["flow"], f"flow, zeta={float(z):.2f}")
        _heatmap(fig.add_subplot(grid[1, col]), payoff[z]["frequencies"]["macflow"], f"one-step, zeta={float(z):.2f}")
    x = [float(z) for z in zetas]
    ax = fig.add_subplot(grid[0, len(zetas):])
    for key, label in (("dataset", "dataset"), ("flow", "joint flow"), ("macflow", "one-step (MAC-Flow)")):
        ax.plot(x, [payoff[z]["expected_reward"][key] for z in zetas], marker="o", label=label)
    ax.set_xlabel("zeta"), ax.set_ylabel("expected reward"), ax.legend(fontsize=8), ax.set_title("(b) return")
    ax = fig.add_subplot(grid[1, len(zetas):])
    ax.plot(x, [payoff[z]["w2_flow_vs_macflow"] for z in zetas], marker="o")
    ax.set_xlabel("zeta"), ax.set_ylabel("W2(flow, one-step)"), ax.set_title("(c) Wasserstein-2")
    fig.suptitle("Fig. 16: payoff game against interaction strength zeta")
    return fig


def main(out: Path, seed: int = 0, steps: int | None = None) -> list[Path]:
    require("matplotlib", "plot")  # fail before minutes of training, not after
    results = run_all(seed, steps)
    out.mkdir(parents=True, exist_ok=True)
    (out / "games.json").write_text(json.dumps(results, indent=1))
    return [out / "games.json", *plot_all(results, out)]

"""Dataset cards: the numbers and figures that describe one dataset (``marlbench data info TASK``).

A card holds: size and dimensions; episode-return statistics (mean, std, min, quartiles, max), raw and normalised
with the task's fixed references; per-agent action statistics; and a state-action coverage measure in the spirit
of OG-MARL's Joint-SACo (unique joint state-action pairs over transitions), made meaningful for continuous data by
discretising a fixed low-dimensional view of every agent's (observation, action):

- each agent's observation is projected on the first two principal components of all agents' observations in the
  dataset, each component cut into ``COVERAGE_OBS_BINS`` equal bins over its range;
- each action dimension is cut into ``COVERAGE_ACTION_BINS`` equal bins over the action box;
- a joint cell is the tuple of every agent's cell. Coverage = distinct joint cells / transitions (1.0: every
  transition in a new cell; low: the data revisits the same situations and actions).

The PNG shows the return histogram (normalised scale on top), the agents' observation density in that projection
(state coverage), and the density of the agents' actions (first two dimensions; frequencies for discrete actions).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from marlbench.data.dataset import Dataset
from marlbench.errors import require
from marlbench.paths import DATA_DIR_ENV, data_dir
from marlbench.spec import TaskSpec

COVERAGE_OBS_BINS = 10
COVERAGE_ACTION_BINS = 5
COVERAGE_MAX_TRANSITIONS = 200_000  # evenly spaced subsample above this (coverage is then over the subsample)
PLOT_MAX_POINTS = 200_000
DATA_DIR_MARK = "<data>"  # a file in the data directory is named relative to it (docs/DATASETS.md's `<data>`)


def _quantiles(x: np.ndarray) -> dict[str, float]:
    q = np.quantile(x, (0.0, 0.25, 0.5, 0.75, 1.0))
    return {"mean": float(x.mean()), "std": float(x.std()), "min": float(q[0]), "q25": float(q[1]),
            "median": float(q[2]), "q75": float(q[3]), "max": float(q[4])}


def _subsample(n: int, limit: int) -> np.ndarray:
    return np.arange(n) if n <= limit else np.linspace(0, n - 1, limit).astype(np.int64)


def _projection(obs: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mean, components [2, do], explained variance ratios) of PCA over the rows of obs [M, do]."""
    mean = obs.mean(0)
    centred = obs - mean
    cov = centred.T @ centred / max(1, len(obs) - 1)
    vals, vecs = np.linalg.eigh(cov.astype(np.float64))
    order = np.argsort(vals)[::-1][:2]
    comps = vecs[:, order].T
    # fixed sign convention so the figure does not flip between runs
    comps *= np.where(comps[np.arange(len(comps)), np.abs(comps).argmax(1)] < 0, -1.0, 1.0)[:, None]
    total = vals.sum()
    ratio = vals[order] / total if total > 0 else np.zeros(len(order))
    if comps.shape[0] < 2:  # one-dimensional observations
        comps = np.vstack([comps, np.zeros_like(comps)])
        ratio = np.append(ratio, 0.0)
    return mean, comps, ratio


def _bin(x: np.ndarray, lo, hi, bins: int) -> np.ndarray:
    span = np.where(hi > lo, hi - lo, 1.0)
    return np.clip(((x - lo) / span * bins).astype(np.int64), 0, bins - 1)


def coverage(dataset: Dataset, spec: TaskSpec | None = None) -> dict:
    """SACo-style joint state-action coverage (see the module docstring)."""
    idx = _subsample(dataset.n_transitions, COVERAGE_MAX_TRANSITIONS)
    obs = dataset.obs[idx].astype(np.float64)  # [M, N, do]
    m, n, do = obs.shape
    mean, comps, ratio = _projection(obs.reshape(-1, do))
    z = (obs - mean) @ comps.T  # [M, N, 2]
    zlo, zhi = z.reshape(-1, 2).min(0), z.reshape(-1, 2).max(0)
    cells = _bin(z, zlo, zhi, COVERAGE_OBS_BINS)  # [M, N, 2]
    if dataset.discrete:
        acts = dataset.actions[idx][..., None]
        acells, abins = acts, dataset.action_dim
    else:
        lo = spec.action_low if spec else dataset.actions.min()
        hi = spec.action_high if spec else dataset.actions.max()
        acells, abins = _bin(dataset.actions[idx], lo, hi, COVERAGE_ACTION_BINS), COVERAGE_ACTION_BINS
    per_agent = np.concatenate([cells, acells], -1)  # [M, N, 2 + da]
    radix = np.array([COVERAGE_OBS_BINS] * 2 + [abins] * acells.shape[-1], dtype=np.int64)
    code = (per_agent * np.concatenate(([1], np.cumprod(radix[:-1])))).sum(-1)  # [M, N] one int per agent cell
    joint = np.unique(code, axis=0).shape[0]
    agent_cells = [int(np.unique(code[:, i]).size) for i in range(n)]
    return {
        "definition": f"distinct joint cells / transitions; per agent: first 2 principal components of the "
                      f"observation in {COVERAGE_OBS_BINS} bins each, every action dimension in "
                      f"{abins if dataset.discrete else COVERAGE_ACTION_BINS} bins",
        "transitions_used": int(m),
        "joint_cells": int(joint),
        "joint_coverage": joint / m,
        "cells_per_agent": agent_cells,
        "cells_possible_per_agent": int(np.prod(radix)),
        "pca_explained_variance": [float(r) for r in ratio],
    }


def card_location(path: str | Path | None) -> str | None:
    """Where a card says its file is, without naming this machine's directories: a file inside the data directory
    as ``<data>/datasets/...`` (``<data>`` = $MARLBENCH_DATA_DIR, see :func:`marlbench.paths.data_dir`), any other
    file as given."""
    if path is None:
        return None
    try:
        inside = Path(path).resolve().relative_to(data_dir().resolve())
    except ValueError:
        return str(path)
    return f"{DATA_DIR_MARK}/{inside.as_posix()}"


def make_card(dataset: Dataset, spec: TaskSpec, task: str | None = None, path: str | None = None,
              published: dict | None = None) -> dict:
    """Every number of the card as a JSON-ready dict. ``path``: the dataset file, recorded by
    :func:`card_location`. ``published``: the published card's statistics beside this dataset's
    (``marlbench.cli.data.published_comparison``), shown as its own section."""
    stats = dataset.statistics()
    returns = dataset.episode_returns()
    raw = _quantiles(returns)
    normalised = None
    if spec.normalise(0.0) is not None:
        normalised = _quantiles(np.array([spec.normalise(float(r)) for r in returns]))
    if dataset.discrete:
        counts = np.stack([np.bincount(dataset.actions[:, i], minlength=dataset.action_dim)
                           for i in range(dataset.n_agents)])
        actions = {"kind": "discrete", "frequency_per_agent": (counts / counts.sum(1, keepdims=True)).tolist()}
    else:
        a = dataset.actions.astype(np.float64)  # [T, N, da]
        lo, hi = spec.action_low, spec.action_high
        actions = {
            "kind": "continuous",
            "mean": a.mean(0).tolist(), "std": a.std(0).tolist(), "min": a.min(0).tolist(), "max": a.max(0).tolist(),
            "at_bound_fraction": (np.isclose(a, lo) | np.isclose(a, hi)).mean(0).tolist(),
            "layout": "[agent][action dimension]",
        }
    return {
        "task": task or dataset.metadata.get("task"),
        "path": card_location(path),
        "checksum": dataset.checksum(),
        "source": dataset.metadata.get("source"),
        "quality": dataset.metadata.get("quality"),
        "size": {k: stats[k] for k in ("episodes", "transitions", "terminal_episodes", "episode_length_min",
                                       "episode_length_mean", "episode_length_max")},
        "dimensions": {k: stats[k] for k in ("n_agents", "obs_dim", "action_kind", "action_dim", "state_dim")},
        "transition_definition": "one joint step of all agents (one row of the time-major arrays)",
        "return_definition": spec.return_definition,
        "normalisation": {"random": spec.random_score, "expert": spec.expert_score,
                          "source": spec.normalisation_source},
        "returns": raw,
        "returns_normalised": normalised,
        "actions_per_agent": actions,
        "coverage": coverage(dataset, spec),
        "metadata": {k: v for k, v in dataset.metadata.items() if k != "statistics"},
        "published": published,
    }


def _fmt(x) -> str:
    return "n/a" if x is None else f"{x:.2f}" if isinstance(x, float) else str(x)


def card_markdown(card: dict, png_name: str | None = None) -> str:
    """The card as Markdown."""
    lines = [f"# Dataset card: {card['task']}", ""]
    if card.get("path"):
        where = (f" (`{DATA_DIR_MARK}`: the data directory, `${DATA_DIR_ENV}`, default `~/.local/share/marlbench`)"
                 if card["path"].startswith(f"{DATA_DIR_MARK}/") else "")
        lines.append(f"- file: `{card['path']}`{where}")
    lines += [f"- sha256 (content): `{card['checksum']}`",
              f"- source: {card['source']}; quality: {card['quality']}", ""]
    if png_name:
        lines += [f"![{card['task']}]({png_name})", ""]
    s, d = card["size"], card["dimensions"]
    lines += ["## Size and dimensions", "",
              "| episodes | transitions | episode length (min / mean / max) | agents | obs dim | action | state dim |",
              "|---|---|---|---|---|---|---|",
              f"| {s['episodes']} | {s['transitions']} | {s['episode_length_min']} / "
              f"{s['episode_length_mean']:.1f} / {s['episode_length_max']} | {d['n_agents']} | {d['obs_dim']} | "
              f"{d['action_kind']} {d['action_dim']} | {_fmt(d['state_dim'])} |", "",
              f"A transition is {card['transition_definition']}.", "",
              "## Episode returns", "", f"Return: {card['return_definition']}. Normalised: "
              f"`100 * (R - {_fmt(card['normalisation']['random'])}) / ({_fmt(card['normalisation']['expert'])} - "
              f"{_fmt(card['normalisation']['random'])})` ({card['normalisation']['source'] or 'no references'}).", "",
              "| | mean | std | min | q25 | median | q75 | max |", "|---|---|---|---|---|---|---|---|"]
    for label, r in (("raw", card["returns"]), ("normalised", card["returns_normalised"])):
        if r is not None:
            lines.append(f"| {label} | " + " | ".join(f"{r[k]:.2f}" for k in
                                                      ("mean", "std", "min", "q25", "median", "q75", "max")) + " |")
    a = card["actions_per_agent"]
    lines += ["", "## Actions per agent", ""]
    if a["kind"] == "continuous":
        da = len(a["mean"][0])
        lines += ["| agent | dim | mean | std | min | max | at bound |", "|---|---|---|---|---|---|---|"]
        for i in range(len(a["mean"])):
            for j in range(da):
                lines.append(f"| {i} | {j} | {a['mean'][i][j]:.3f} | {a['std'][i][j]:.3f} | {a['min'][i][j]:.3f} | "
                             f"{a['max'][i][j]:.3f} | {a['at_bound_fraction'][i][j]:.3f} |")
    else:
        lines += ["| agent | action frequencies |", "|---|---|"]
        for i, f in enumerate(a["frequency_per_agent"]):
            lines.append(f"| {i} | " + ", ".join(f"{x:.3f}" for x in f) + " |")
    c = card["coverage"]
    lines += ["", "## State-action coverage", "",
              f"Joint coverage {c['joint_coverage']:.4f} ({c['joint_cells']} distinct joint cells over "
              f"{c['transitions_used']} transitions); distinct cells per agent {c['cells_per_agent']} of "
              f"{c['cells_possible_per_agent']}. Definition: {c['definition']}. The two principal components "
              f"explain {100 * sum(c['pca_explained_variance']):.1f}% of the observation variance.", ""]
    lines += _published_lines(card, markdown=True)
    beh = card["metadata"].get("behaviour_policy")
    if beh is not None:
        import json

        lines += ["## Behaviour policy", "", "```json", json.dumps(beh, indent=2), "```", ""]
    return "\n".join(lines)


def card_figure(dataset: Dataset, spec: TaskSpec, card: dict, png: str | Path) -> Path:
    """Write the card's PNG: return histogram, observation coverage, action density."""
    matplotlib = require("matplotlib", "plot")
    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    n = dataset.n_agents
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.4), constrained_layout=True)
    returns = dataset.episode_returns()
    ax = axes[0]
    ax.hist(returns, bins=50, color="#4c72b0")
    ax.axvline(returns.mean(), color="k", ls="--", lw=1, label=f"mean {returns.mean():.1f}")
    if spec.random_score is not None and spec.expert_score is not None:
        for ref, name, col in ((spec.random_score, "random ref.", "#c44e52"), (spec.expert_score, "expert ref.",
                                                                                 "#55a868")):
            ax.axvline(ref, color=col, lw=1, label=name)
        sec = ax.secondary_xaxis("top", functions=(lambda r: 100 * (r - spec.random_score) /
                                                   (spec.expert_score - spec.random_score),
                                                   lambda s: spec.random_score + s / 100 *
                                                   (spec.expert_score - spec.random_score)))
        sec.set_xlabel("normalised return")
    ax.set_xlabel("episode return")
    ax.set_ylabel("episodes")
    ax.legend(fontsize=8)
    ax.set_title(f"returns ({card['size']['episodes']} episodes)")

    idx = _subsample(dataset.n_transitions, PLOT_MAX_POINTS)
    obs = dataset.obs[idx].astype(np.float64)
    mean, comps, ratio = _projection(obs.reshape(-1, obs.shape[-1]))
    z = ((obs - mean) @ comps.T).reshape(-1, 2)
    ax = axes[1]
    h = ax.hist2d(z[:, 0], z[:, 1], bins=60, cmap="viridis", norm=matplotlib.colors.LogNorm())
    fig.colorbar(h[3], ax=ax, label="agent-steps")
    ax.set_xlabel(f"obs PC1 ({100 * ratio[0]:.0f}% var.)")
    ax.set_ylabel(f"obs PC2 ({100 * ratio[1]:.0f}% var.)")
    c = card["coverage"]
    ax.set_title(f"state coverage (all agents); joint SA coverage {c['joint_coverage']:.3f}")

    ax = axes[2]
    acts = dataset.actions[idx]
    if dataset.discrete:
        freq = np.array(card["actions_per_agent"]["frequency_per_agent"])
        im = ax.imshow(freq, aspect="auto", cmap="magma")
        fig.colorbar(im, ax=ax, label="frequency")
        ax.set_xlabel("action")
        ax.set_ylabel("agent")
    elif acts.shape[-1] >= 2:
        a2 = acts[..., :2].reshape(-1, 2)
        h = ax.hist2d(a2[:, 0], a2[:, 1], bins=50, range=[[spec.action_low, spec.action_high]] * 2, cmap="magma",
                      norm=matplotlib.colors.LogNorm())
        fig.colorbar(h[3], ax=ax, label="agent-steps")
        ax.set_xlabel("action dim 0")
        ax.set_ylabel("action dim 1")
    else:
        for i in range(n):
            ax.hist(acts[:, i, 0], bins=50, histtype="step", label=f"agent {i}")
        ax.set_xlabel("action")
        ax.legend(fontsize=8)
    ax.set_title("action density (all agents)" if not dataset.discrete else "action frequencies per agent")
    fig.suptitle(f"{card['task']} ({card['quality']}): {card['size']['transitions']} transitions", fontsize=11)
    png = Path(png)
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=110)
    plt.close(fig)
    return png


def card_text(card: dict) -> str:
    """Short plain-text card for the terminal."""
    s, d, r, rn, c = card["size"], card["dimensions"], card["returns"], card["returns_normalised"], card["coverage"]
    out = [f"{card['task']}  ({card['source']}, {card['quality']})",
           f"  file      {card['path']}",
           f"  sha256    {card['checksum']}",
           f"  size      {s['episodes']} episodes, {s['transitions']} transitions (joint steps), "
           f"episode length {s['episode_length_min']}-{s['episode_length_max']}",
           f"  dims      {d['n_agents']} agents, obs {d['obs_dim']}, {d['action_kind']} action {d['action_dim']}, "
           f"state {_fmt(d['state_dim'])}",
           "  return    " + "  ".join(f"{k} {r[k]:.1f}" for k in ("mean", "std", "min", "q25", "median", "q75", "max"))]
    if rn is not None:
        out.append("  normalised " + "  ".join(f"{k} {rn[k]:.1f}" for k in
                                                ("mean", "std", "min", "q25", "median", "q75", "max")))
    a = card["actions_per_agent"]
    if a["kind"] == "continuous":
        for i in range(len(a["mean"])):
            out.append(f"  agent {i}   action mean {np.round(a['mean'][i], 3).tolist()} std "
                       f"{np.round(a['std'][i], 3).tolist()} at-bound "
                       f"{np.round(a['at_bound_fraction'][i], 3).tolist()}")
    out.append(f"  coverage  joint {c['joint_coverage']:.4f} ({c['joint_cells']} cells / {c['transitions_used']} "
               f"transitions), per agent {c['cells_per_agent']} of {c['cells_possible_per_agent']} cells")
    return "\n".join(out + _published_lines(card, markdown=False))


def _published_lines(card: dict, markdown: bool) -> list[str]:
    """The published card beside this dataset: return mean/std/min/max, transitions, episodes."""
    p = card.get("published")
    if not p:
        return []
    keys = ("return_mean", "return_std", "return_min", "return_max", "transitions", "episodes")
    pub, this = (" | ".join(_fmt(row.get(k)) for k in keys) for row in (p["published"], p["this"]))
    if markdown:
        return ["## Published card", "", f"Compared with {p['dataset']} ({p['source']}).", "",
                "| | " + " | ".join(keys) + " |", "|---" * (len(keys) + 1) + "|",
                f"| published | {pub} |", f"| this dataset | {this} |", ""]
    return [f"  published {p['dataset']}: " + "  ".join(f"{k} {_fmt(p['published'].get(k))}" for k in keys),
            "  this data " + "  ".join(f"{k} {_fmt(p['this'].get(k))}" for k in keys)]

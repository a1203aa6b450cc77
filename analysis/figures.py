"""`marlbench plot inference|training|curves|profiles|improvement|aggregates|results`: figures from run records.

- ``inference`` (Fig. 1/4): mean normalised score against mean inference ms per joint action (log x), one point
  per algorithm with 95% stratified-bootstrap intervals on both axes; one panel per benchmark and one over all
  tasks. With ``bench`` (``--bench FILE``, the JSON of ``marlbench bench inference --json --out FILE``) the x of an
  algorithm is that benchmark's ms per joint action at batch 1 (median, error bar = interquartile range), the same
  in every panel; an algorithm without a bench entry keeps its recorded ``inference_ms`` and is labelled
  "recorded ms". The title names the x source and the bench's machine; ``inference.json`` beside the figure holds
  every plotted point (x, y, their intervals, the x source).
- ``training`` (Fig. 11): mean training wall-clock (gradient steps only) per algorithm with 95% intervals, tasks
  with discrete and continuous actions (as each run's recorded spec says) in separate panels, log y.
- ``curves`` (Fig. 12): learning curves, IQM of the normalised score over seeds x tasks at every evaluation step,
  with 95% stratified-bootstrap bands; one panel per benchmark.
- ``profiles``: rliable performance profiles (fraction of runs with normalised score > tau) with bands.
- ``improvement``: rliable probability of improvement of MAC-Flow (``--target``) over each baseline, with 95%
  intervals (independent stratified bootstrap).
- ``aggregates``: IQM, median, mean and optimality gap with 95% intervals (rliable's interval-estimate plot).
- ``results``: all of the above.

Every figure is written as PNG and PDF (no timestamps in the files). An algorithm enters a panel with the tasks of
that panel where it has complete results; its runs are the seeds it has on every one of those tasks.
"""
from __future__ import annotations

import json
import textwrap
from pathlib import Path

import numpy as np

from marlbench.analysis import references as refs
from marlbench.analysis import stats
from marlbench.analysis.reader import Results, ResultsError
from marlbench.errors import MarlbenchError, require
from marlbench.results import atomic_write_json

KINDS = ("inference", "training", "curves", "profiles", "improvement", "aggregates")


def _plt():
    require("matplotlib", "analysis")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _color(algo: str):
    import matplotlib

    cmap = matplotlib.colormaps["tab20"]
    i = refs.ALGORITHM_ORDER.index(algo) if algo in refs.ALGORITHM_ORDER else len(refs.ALGORITHM_ORDER) + \
        sum(map(ord, algo)) % 8
    return "black" if algo == "macflow" else cmap(i % 20)


def _save(fig, out_dir: Path, stem: str) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    png, pdf = out_dir / f"{stem}.png", out_dir / f"{stem}.pdf"
    fig.savefig(png, dpi=150, bbox_inches="tight", metadata={"Software": None})
    fig.savefig(pdf, bbox_inches="tight", metadata={"CreationDate": None, "Creator": None, "Producer": None})
    import matplotlib.pyplot as plt

    plt.close(fig)
    return [png, pdf]


def _matrix(results: Results, algo: str, tasks: list[str], column: str) -> tuple[np.ndarray | None, list[str]]:
    """``[runs, tasks]`` over the tasks where ``algo`` has results, runs = the seeds common to all of them."""
    sub = results.runs[(results.runs["algorithm"] == algo) & results.runs["task"].isin(tasks)]
    sub = sub[sub[column].notna()]
    have = [t for t in tasks if (sub["task"] == t).any()]
    if not have:
        return None, []
    seeds = set.intersection(*(set(sub[sub["task"] == t]["seed"]) for t in have))
    if not seeds:
        return None, []
    return results.score_matrix(algo, have, column, seeds=sorted(seeds)), have


def _label(algo: str, have: list[str], tasks: list[str]) -> str:
    """Algorithm label, with its task count when it has results on only some of the panel's tasks."""
    name = refs.algorithm_label(algo)
    return name if len(have) == len(tasks) else f"{name} ({len(have)}/{len(tasks)} tasks)"


def panels(results: Results) -> list[tuple[str, list[str]]]:
    by: dict[str, list[str]] = {}
    for t in results.tasks:
        if refs.reference(t) is not None:
            by.setdefault(refs.split_task(t)[0], []).append(t)
    order = sorted(by, key=refs.benchmark_sort_key)
    out = [(refs.benchmark_label(b), by[b]) for b in order]
    if len(out) > 1:
        out.append(("All tasks", [t for _, ts in out for t in ts]))
    if not out:
        raise ResultsError("no task with fixed normalisation references in these results; nothing to plot")
    return out


def _grid(n: int, plt, width: float = 4.2, height: float = 3.4):
    cols = min(n, 3)
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(width * cols, height * rows), squeeze=False)
    for ax in axes.flat[n:]:
        ax.axis("off")
    return fig, list(axes.flat[:n])


def load_bench(path: Path) -> dict:
    """The JSON of ``marlbench bench inference --json --out FILE`` (marlbench/bench/inference.py), checked."""
    path = Path(path)
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise MarlbenchError(f"--bench {path}: cannot read the inference benchmark JSON ({e})") from None
    if not isinstance(doc, dict) or doc.get("benchmark") != "inference" or not isinstance(doc.get("algorithms"), list):
        raise MarlbenchError(f"--bench {path}: not the JSON of `marlbench bench inference --json --out FILE` "
                             "(needs benchmark \"inference\" and a list of algorithms)")
    for row in doc["algorithms"]:
        b1 = row.get("batch1") if isinstance(row, dict) else None
        if not isinstance(b1, dict) or "name" not in row or "median_ms" not in b1 or len(b1.get("iqr_ms") or ()) != 2:
            raise MarlbenchError(f"--bench {path}: algorithm entry {row!r:.80} has no name, batch1 median_ms and "
                                 "iqr_ms [q1, q3]")
    return doc


def bench_source(doc: dict) -> str:
    """One line naming what the bench measured and where: task shapes, network size, machine, torch, threads."""
    m, t = doc.get("machine") or {}, doc.get("task") or {}
    hidden = doc.get("hidden_dims") or []
    size = f"{len(hidden)}x{hidden[0]}" if hidden else "?"
    return (f"`marlbench bench inference` on {m.get('cpu', 'unknown machine')} ({m.get('usable_cores', '?')} usable "
            f"cores), torch {m.get('torch', '?')}, {doc.get('threads', '?')} thread(s); {t.get('name', '?')} shapes, "
            f"{size} networks")


def plot_inference(results: Results, out_dir: Path, reps: int, seed: int, bench: Path | None = None
                   ) -> list[Path]:
    plt = _plt()
    doc = load_bench(bench) if bench is not None else None
    measured = {row["name"]: row["batch1"] for row in doc["algorithms"]} if doc else {}
    shown = panels(results)
    fig, axes = _grid(len(shown), plt)
    record = {"x_source": "bench" if doc else "recorded", "bench": str(bench) if doc else None,
              "machine": doc.get("machine") if doc else None, "panels": []}
    for ax, (label, tasks) in zip(axes, shown):
        points = []
        for algo in results.algorithms:
            score, have = _matrix(results, algo, tasks, "normalised_score")
            if score is None:
                continue
            y = stats.mean_intervals({algo: score}, reps=reps, seed=seed)[algo]
            name = _label(algo, have, tasks)
            if algo in measured:  # the benchmark's batch-1 median and quartiles
                b1 = measured[algo]
                x, x_low, x_high, source = b1["median_ms"], b1["iqr_ms"][0], b1["iqr_ms"][1], "bench"
            else:
                ms, _ = _matrix(results, algo, have, "inference_ms")
                if ms is None:
                    continue
                iv = stats.mean_intervals({algo: ms}, reps=reps, seed=seed)[algo]
                x, x_low, x_high, source = iv.point, iv.low, iv.high, "recorded"
                if doc:
                    name += " (recorded ms)"
            ax.errorbar([x], [y.point], xerr=[[x - x_low], [x_high - x]],
                        yerr=[[y.point - y.low], [y.high - y.point]], fmt="o", color=_color(algo), capsize=3,
                        label=name, markersize=7 if algo == "macflow" else 5)
            ax.annotate(name, (x, y.point), textcoords="offset points", xytext=(5, 4), fontsize=7)
            points.append({"algorithm": algo, "label": name, "x_source": source, "x": x, "x_low": x_low,
                           "x_high": x_high, "y": y.point, "y_low": y.low, "y_high": y.high, "tasks": len(have)})
        ax.set_xscale("log")
        ax.set_xlabel("inference time per joint action at batch 1 (ms, log scale)" if doc else
                      "inference time per joint action (ms, log scale)")
        ax.set_ylabel("mean normalised score")
        ax.set_title(f"{label} ({len(tasks)} tasks)")
        ax.grid(alpha=0.3, which="both")
        record["panels"].append({"label": label, "tasks": tasks, "points": points})
    if doc:
        record["caption"] = (f"x: ms per joint action at batch 1 from {bench_source(doc)} (median, IQR error bars); "
                             "y: recorded mean normalised score (95% CI); 'recorded ms': no bench entry, x = the "
                             "runs' recorded inference_ms (mean, 95% CI)")
        caption = textwrap.fill(record["caption"], max(50, int(fig.get_figwidth() * 15)))
        fig.suptitle("Performance vs inference time (Fig. 1/4)\n" + caption, fontsize=8)
    else:
        record["caption"] = ("x: recorded inference_ms of the runs (final.json, mean, 95% CI); y: mean normalised "
                             "score (95% CI)")
        fig.suptitle("Performance vs inference time (Fig. 1/4), mean and 95% CI; x: recorded inference_ms")
    fig.tight_layout()
    sidecar = Path(out_dir) / "inference.json"
    paths = _save(fig, Path(out_dir), "inference")
    atomic_write_json(sidecar, record)
    return paths + [sidecar]


def action_groups(results: Results) -> dict[str, list[str]]:
    """Tasks by action space, as their runs recorded it (the spec in config.json): Fig. 11's two panels, plus one
    for runs whose records carry no spec and whose task is not registered here. Empty groups are left out."""
    kinds = results.action_kinds()
    groups = {label: [t for t in results.tasks if kinds[t] == kind]
              for label, kind in (("Discrete control", "discrete"), ("Continuous control", "continuous"),
                                  ("Action space not recorded", None))}
    return {k: v for k, v in groups.items() if v}


def plot_training(results: Results, out_dir: Path, reps: int, seed: int) -> list[Path]:
    plt = _plt()
    groups = action_groups(results)
    fig, axes = _grid(len(groups), plt, width=5.5)
    for ax, (label, tasks) in zip(axes, groups.items()):
        names, points, lows, highs, colors = [], [], [], [], []
        for algo in results.algorithms:
            x, have = _matrix(results, algo, tasks, "train_seconds")
            if x is None:
                continue
            iv = stats.mean_intervals({algo: x / 3600.0}, reps=reps, seed=seed)[algo]
            names.append(_label(algo, have, tasks))
            points.append(iv.point), lows.append(iv.point - iv.low), highs.append(iv.high - iv.point)
            colors.append(_color(algo))
        pos = np.arange(len(names))
        ax.bar(pos, points, yerr=[lows, highs], color=colors, capsize=3)
        ax.set_xticks(pos, names, rotation=45, ha="right", fontsize=8)
        ax.set_yscale("log")
        ax.set_ylabel("training wall-clock (hours, log scale)")
        ax.set_title(f"{label} ({len(tasks)} tasks)")
        ax.grid(alpha=0.3, axis="y", which="both")
    fig.suptitle("Training wall-clock, gradient steps only (Fig. 11), mean and 95% CI")
    fig.tight_layout()
    return _save(fig, out_dir, "training")


def _curve_array(results: Results, algo: str, tasks: list[str]):
    c = results.curves[(results.curves["algorithm"] == algo) & results.curves["task"].isin(tasks) &
                       results.curves["normalised_score"].notna()]
    if c.empty:
        return None, None
    have = sorted(c["task"].unique())
    seeds = sorted(set.intersection(*(set(c[c["task"] == t]["seed"]) for t in have)))
    c = c[c["seed"].isin(seeds)]
    steps = sorted(set.intersection(*(set(g["step"]) for _, g in c.groupby(["task", "seed"]))))
    if not seeds or not steps:
        return None, None
    c = c[c["step"].isin(steps)].drop_duplicates(["task", "seed", "step"], keep="last")
    arr = c.pivot_table(index=["seed", "task"], columns="step", values="normalised_score").to_numpy()
    return arr.reshape(len(seeds), len(have), len(steps)), np.asarray(steps)


def plot_curves(results: Results, out_dir: Path, reps: int, seed: int, algorithms: list[str] | None = None
                ) -> list[Path]:
    plt = _plt()
    shown = panels(results)
    fig, axes = _grid(len(shown), plt)
    for ax, (label, tasks) in zip(axes, shown):
        for algo in algorithms or results.algorithms:
            arr, steps = _curve_array(results, algo, tasks)
            if arr is None:
                continue
            point, ci = stats.curve_iqm({algo: arr}, reps=reps, seed=seed)
            ax.plot(steps, point[algo], color=_color(algo), label=refs.algorithm_label(algo),
                    linewidth=2 if algo == "macflow" else 1.2)
            ax.fill_between(steps, ci[algo][0], ci[algo][1], color=_color(algo), alpha=0.2, linewidth=0)
        ax.xaxis.set_major_formatter(lambda x, _: f"{x / 1000:g}k")
        ax.set_xlabel("gradient steps")
        ax.set_ylabel("IQM normalised score")
        ax.set_title(f"{label} ({len(tasks)} tasks)")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7, ncol=2)
    fig.suptitle("Learning curves (Fig. 12), IQM over seeds x tasks and 95% CI")
    fig.tight_layout()
    return _save(fig, out_dir, "curves")


def _common_scores(results: Results, algorithms: list[str]) -> tuple[dict[str, np.ndarray], list[str]]:
    tasks = [t for t in results.tasks if refs.reference(t) is not None]
    complete = [t for t in tasks if all((_matrix(results, a, [t], "normalised_score")[0] is not None)
                                        for a in algorithms)]
    if not complete:
        raise ResultsError("no task has normalised scores for every algorithm; nothing to aggregate")
    out = {}
    for a in algorithms:
        x, _ = _matrix(results, a, complete, "normalised_score")
        out[a] = x
    return out, complete


def plot_profiles(results: Results, out_dir: Path, reps: int, seed: int) -> list[Path]:
    plt = _plt()
    scores, tasks = _common_scores(results, results.algorithms)
    top = max(100.0, max(float(x.max()) for x in scores.values()))
    low = min(0.0, min(float(x.min()) for x in scores.values()))
    taus = np.linspace(low, top, 81)
    profiles, cis = stats.performance_profiles({a: x for a, x in scores.items()}, taus, reps=reps, seed=seed)
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for algo in scores:
        ax.plot(taus, profiles[algo], color=_color(algo), label=refs.algorithm_label(algo),
                linewidth=2 if algo == "macflow" else 1.2)
        ax.fill_between(taus, cis[algo][0], cis[algo][1], color=_color(algo), alpha=0.15, linewidth=0)
    ax.set_xlabel(r"normalised score $\tau$")
    ax.set_ylabel(r"fraction of runs with score $> \tau$")
    ax.set_title(f"Performance profiles over {len(tasks)} tasks (95% CI)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    return _save(fig, out_dir, "profiles")


def plot_improvement(results: Results, out_dir: Path, reps: int, seed: int, target: str = "macflow"
                     ) -> list[Path]:
    plt = _plt()
    if target not in results.algorithms:
        raise ResultsError(f"probability of improvement: no runs of {target!r} (found "
                           f"{', '.join(results.algorithms)})")
    baselines = [a for a in results.algorithms if a != target]
    if not baselines:
        raise ResultsError("probability of improvement needs at least one algorithm besides " + target)
    rows = []
    for base in baselines:
        scores, tasks = _common_scores(results, [target, base])
        iv = stats.probability_of_improvement(scores, target, reps=reps, seed=seed)[base]
        rows.append((base, iv, len(tasks)))
    fig, ax = plt.subplots(figsize=(6.0, 0.45 * len(rows) + 1.4))
    for i, (base, iv, n) in enumerate(rows):
        ax.errorbar([iv.point], [i], xerr=[[iv.point - iv.low], [iv.high - iv.point]], fmt="o",
                    color=_color(base), capsize=3)
    ax.set_yticks(range(len(rows)), [f"{refs.algorithm_label(b)} ({n} tasks)" for b, _, n in rows], fontsize=8)
    ax.axvline(0.5, color="grey", linestyle="--", linewidth=1)
    ax.set_xlim(0, 1)
    ax.set_xlabel(f"P({refs.algorithm_label(target)} > baseline)")
    ax.set_title(f"Probability of improvement of {refs.algorithm_label(target)} (95% CI)")
    ax.grid(alpha=0.3, axis="x")
    fig.tight_layout()
    return _save(fig, out_dir, "improvement")


def plot_aggregates(results: Results, out_dir: Path, reps: int, seed: int) -> list[Path]:
    plt = _plt()
    scores, tasks = _common_scores(results, results.algorithms)
    agg = stats.aggregate_intervals(scores, reps=reps, seed=seed)
    algos = list(scores)
    fig, axes = plt.subplots(1, len(stats.AGGREGATES), figsize=(3.2 * len(stats.AGGREGATES),
                                                                0.38 * len(algos) + 1.5), sharey=True)
    for ax, key in zip(axes, stats.AGGREGATES):
        for i, a in enumerate(algos):
            iv = agg[a][key]
            ax.barh(i, iv.high - iv.low, left=iv.low, height=0.6, color=_color(a), alpha=0.75)
            ax.vlines(iv.point, i - 0.3, i + 0.3, color="black", linewidth=1.5)
        ax.set_title(stats.AGGREGATE_LABELS[key])
        ax.grid(alpha=0.3, axis="x")
        ax.set_xlabel("normalised score")
    axes[0].set_yticks(range(len(algos)), [refs.algorithm_label(a) for a in algos], fontsize=8)
    fig.suptitle(f"Aggregate normalised scores over {len(tasks)} tasks (95% stratified-bootstrap CI)")
    fig.tight_layout()
    return _save(fig, out_dir, "aggregates")


def plot(kind: str, results: Results, out_dir: Path, reps: int = stats.DEFAULT_REPS, seed: int = stats.DEFAULT_SEED,
         target: str = "macflow", bench: Path | None = None) -> list[Path]:
    """Write figure ``kind``; ``bench`` (an inference benchmark JSON) sets the x-axis of ``inference``."""
    out_dir = Path(out_dir)
    if bench is not None and kind not in ("inference", "results"):
        raise MarlbenchError(f"--bench sets the x-axis of `marlbench plot inference` (or results); not of {kind}")
    if kind == "results":
        return [p for k in KINDS for p in plot(k, results, out_dir, reps, seed, target, bench)]
    if kind == "improvement":
        return plot_improvement(results, out_dir, reps, seed, target)
    if kind == "inference":
        return plot_inference(results, out_dir, reps, seed, bench)
    funcs = {"inference": plot_inference, "training": plot_training, "curves": plot_curves,
             "profiles": plot_profiles, "aggregates": plot_aggregates}
    return funcs[kind](results, out_dir, reps, seed)

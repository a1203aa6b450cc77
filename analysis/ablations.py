"""`marlbench plot ablations`: the paper's ablation figures (Fig. 6-10) from run records.

The records come from a suite whose labelled entries are MAC-Flow variants (configs/suites/ablations.yaml,
docs/SWEEPS.md "Variants"); the reader reports a variant as the algorithm ``macflow:<label>``. Each figure compares
MAC-Flow with the variants of one question, one panel per task of the suite:

- Fig. 6 (distillation and Q maximisation): final normalised score, mean +- 2 std over seeds, of MAC-Flow, w/o Q
  maximisation (``no-q-max``: ``q_guidance=false``) and w/o distillation (``no-distill``: ``deploy=flow``);
- Fig. 7 (IGM): learning curves of the score (top row) and of the critic's Q value (bottom row, the ``q_mean``
  training log: mean Q of the batch's dataset actions; ``q_data`` when only the diagnostics have it) for MAC-Flow
  (IGM, individual critics) and ``centralised-critic`` (``critic=centralised``: one Q over the joint observation
  and action);
- Fig. 8 (critic): final score, IGM vs centralised critic;
- Fig. 9 (Stage I policy): learning curves, joint flow vs ``individual-flow`` (``flow=individual``);
- Fig. 10: learning curves, MAC-Flow vs MA-FQL (``ma-fql``).

Curves are the mean over seeds with a +-1 std band. Members without records are left out of a figure with a note,
and a figure with only one member is skipped with a note; no record of any member on the suite's tasks is an
error that names the sweep to run. ``ablations.json`` beside the figures holds every figure's final scores (mean,
2 std, seeds) and the notes.
"""
from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from marlbench.analysis import references as refs
from marlbench.analysis.figures import _grid, _plt, _save
from marlbench.analysis.reader import Results, ResultsError, read_results
from marlbench.results import atomic_write_json

Q_KEYS = ("q_mean", "q_data")  # the critic's Q value in metrics.jsonl, in order of preference
PALETTE = ("black", "tab:red", "tab:blue", "tab:green", "tab:orange", "tab:purple")


@dataclass(frozen=True)
class AblationFigure:
    stem: str
    title: str
    kind: str  # "bars": final score per task; "curves": learning curves; "curves+q": curves and Q value
    members: tuple[tuple[str, str], ...]  # (algorithm as the reader names it, legend label); the first is the reference


FIGURES = (
    AblationFigure("fig6-distillation", "Fig. 6: Q maximisation and distillation", "bars",
                   (("macflow", "MAC-Flow"), ("macflow:no-q-max", "w/o Q maximisation"),
                    ("macflow:no-distill", "w/o distillation (flow policy)"))),
    AblationFigure("fig7-igm", "Fig. 7: IGM vs no IGM", "curves+q",
                   (("macflow", "MAC-Flow (IGM)"), ("macflow:centralised-critic", "w/o IGM (centralised Q)"))),
    AblationFigure("fig8-critic", "Fig. 8: individual Q under IGM vs centralised Q", "bars",
                   (("macflow", "individual Q (IGM)"), ("macflow:centralised-critic", "centralised Q"))),
    AblationFigure("fig9-flow", "Fig. 9: joint vs individual flow in Stage I", "curves",
                   (("macflow", "joint flow"), ("macflow:individual-flow", "individual flows"))),
    AblationFigure("fig10-ma-fql", "Fig. 10: MAC-Flow vs MA-FQL", "curves",
                   (("macflow", "MAC-Flow"), ("ma-fql", "MA-FQL"))),
)
MEMBERS = tuple(dict.fromkeys(name for fig in FIGURES for name, _ in fig.members))


def sweep_hint(suite: str, results: Sequence[str | Path]) -> str:
    where = " ".join(f"--results {p}" for p in results)
    return f"run `marlbench sweep {suite} {where}` first (`--dry-run` lists its seeds)"


def read_ablations(paths: Sequence[str | Path], suite_arg: str, tasks: Sequence[str], profile: str | None,
                   mix_profiles: bool = False, latest: bool = False) -> Results:
    """The records of the ablation members on ``tasks``; a ResultsError naming the sweep if there are none."""
    hint = sweep_hint(suite_arg, paths)
    try:
        results = read_results(paths, profile=profile, mix_profiles=mix_profiles, latest=latest)
    except ResultsError as err:
        if "no completed runs" in str(err) or "no runs with profile" in str(err):
            raise ResultsError(f"no ablation records: {err}; {hint}") from None
        raise
    chosen = results.select([m for m in MEMBERS if m in results.algorithms],
                            [t for t in tasks if t in results.tasks])
    if chosen.runs.empty:
        found = ", ".join(results.algorithms) or "none"
        raise ResultsError(f"no ablation records under {', '.join(map(str, paths))} for the tasks "
                           f"{', '.join(tasks)} (looked for {', '.join(MEMBERS)}; found algorithms {found}); {hint}")
    return chosen


def _metric(results: Results, task: str) -> tuple[str, str]:
    """(column, axis label): the normalised score where every run of the task has one, else the raw return."""
    sub = results.runs[results.runs["task"] == task]
    if len(sub) and sub["normalised_score"].notna().all():
        return "normalised_score", "normalised score"
    return "return", "return"


def final_scores(results: Results, algo: str, task: str) -> dict | None:
    """Mean, 2 x population std and seeds of one member's final score on one task; None without runs."""
    column, _ = _metric(results, task)
    sub = results.runs[(results.runs["algorithm"] == algo) & (results.runs["task"] == task)].sort_values("seed")
    values = sub[column].dropna().to_numpy(dtype=float)
    if not len(values):
        return None
    return {"metric": column, "mean": float(values.mean()), "two_std": float(2 * values.std()),
            "seeds": [int(s) for s in sub["seed"]], "values": [float(v) for v in values]}


def _curve(results: Results, algo: str, task: str, column: str):
    """(steps, mean, std) over seeds of one member's evaluation curve; None without points."""
    c = results.curves[(results.curves["algorithm"] == algo) & (results.curves["task"] == task)]
    c = c[c[column].notna()].drop_duplicates(["seed", "step"], keep="last")
    if c.empty:
        return None
    g = c.groupby("step")[column]
    return g.mean().index.to_numpy(), g.mean().to_numpy(), g.std(ddof=0).to_numpy()


def training_metric(results: Results, algo: str, task: str, keys: Sequence[str] = Q_KEYS):
    """(key, steps, mean, std) over seeds of the first of ``keys`` that every run of the member logged in its
    metrics.jsonl training lines; None if none did."""
    sub = results.runs[(results.runs["algorithm"] == algo) & (results.runs["task"] == task)]
    per_seed: list[dict[str, dict[int, float]]] = []
    for path in sub["path"]:
        logged: dict[str, dict[int, float]] = {}
        metrics = Path(path) / "metrics.jsonl"
        if metrics.exists():
            for line in metrics.read_text().splitlines():
                try:
                    rec = json.loads(line) if line.strip() else {}
                except ValueError:
                    continue
                if rec.get("curve"):
                    continue
                for key in keys:
                    if rec.get(key) is not None:
                        logged.setdefault(key, {})[int(rec["step"])] = float(rec[key])
        per_seed.append(logged)
    for key in keys:
        if per_seed and all(key in logged for logged in per_seed):
            steps = sorted(set.intersection(*(set(logged[key]) for logged in per_seed)))
            if steps:
                arr = np.array([[logged[key][s] for s in steps] for logged in per_seed])
                return key, np.asarray(steps), arr.mean(0), arr.std(0)
    return None


def _bars(ax, results: Results, task: str, members: list[tuple[str, str]], colors: dict[str, str]) -> dict:
    column, ylabel = _metric(results, task)
    scores, names, points, errs, cols = {}, [], [], [], []
    for algo, label in members:
        s = final_scores(results, algo, task)
        if s is None:
            continue
        scores[algo] = s
        names.append(f"{label}\n(n={len(s['seeds'])})")
        points.append(s["mean"]), errs.append(s["two_std"]), cols.append(colors[algo])
    pos = np.arange(len(names))
    ax.bar(pos, points, yerr=errs, color=cols, capsize=4, alpha=0.85)
    ax.set_xticks(pos, names, fontsize=7)
    ax.set_ylabel(f"final {ylabel}")
    ax.set_title(task, fontsize=9)
    ax.grid(alpha=0.3, axis="y")
    return scores


def _curves(ax, results: Results, task: str, members: list[tuple[str, str]], colors: dict[str, str]) -> None:
    column, ylabel = _metric(results, task)
    for algo, label in members:
        curve = _curve(results, algo, task, column)
        if curve is None:
            continue
        steps, mean, std = curve
        ax.plot(steps, mean, color=colors[algo], label=label, linewidth=1.6, marker="o", markersize=3)
        ax.fill_between(steps, mean - std, mean + std, color=colors[algo], alpha=0.15, linewidth=0)
    ax.xaxis.set_major_formatter(lambda x, _: f"{x / 1000:g}k")
    ax.set_xlabel("gradient steps")
    ax.set_ylabel(ylabel)
    ax.set_title(task, fontsize=9)
    ax.grid(alpha=0.3)


def _q_curves(ax, results: Results, task: str, members: list[tuple[str, str]], colors: dict[str, str]) -> str | None:
    keys = set()
    for algo, label in members:
        logged = training_metric(results, algo, task)
        if logged is None:
            continue
        key, steps, mean, std = logged
        keys.add(key)
        ax.plot(steps, mean, color=colors[algo], label=label, linewidth=1.4)
        ax.fill_between(steps, mean - std, mean + std, color=colors[algo], alpha=0.15, linewidth=0)
    ax.xaxis.set_major_formatter(lambda x, _: f"{x / 1000:g}k")
    ax.set_xlabel("gradient steps")
    ax.set_ylabel("Q value (" + (", ".join(sorted(keys)) or "not logged") + ")")
    ax.grid(alpha=0.3)
    return None if keys else f"{task}: no Q value ({' or '.join(Q_KEYS)}) in the runs' metrics.jsonl"


def plot_ablations(results: Results, tasks: Sequence[str], out_dir: Path, log: Callable[[str], None] = print
                   ) -> tuple[list[Path], list[str]]:
    """Write Fig. 6-10 (PNG and PDF each) and ablations.json; returns (paths, notes). ``results`` holds the
    ablation members (``read_ablations``); a figure is drawn on the ``tasks`` where at least two of its members
    have records."""
    plt = _plt()
    out_dir = Path(out_dir)
    paths, notes, summary = [], [], {"tasks": list(tasks), "figures": {}}

    def note(line: str) -> None:
        notes.append(line)
        log(f"note: {line}")

    have = set(results.algorithms)
    for fig_spec in FIGURES:
        present = [(a, label) for a, label in fig_spec.members if a in have]
        missing = [a for a, _ in fig_spec.members if a not in have]
        shown_tasks = [t for t in tasks
                       if sum(((results.runs["algorithm"] == a) & (results.runs["task"] == t)).any()
                              for a, _ in present) >= 2]
        if len(present) < 2 or not shown_tasks:
            note(f"{fig_spec.title} skipped: it needs records of {' and '.join(a for a, _ in fig_spec.members)} "
                 f"on one task; missing: {', '.join(missing) or 'a common task'}")
            continue
        if missing:
            note(f"{fig_spec.title}: no records of {', '.join(missing)}; drawn without")
        if len(shown_tasks) < len(tasks):
            left = [t for t in tasks if t not in shown_tasks]
            note(f"{fig_spec.title}: drawn on {', '.join(shown_tasks)} only (fewer than two of its members have "
                 f"records on {', '.join(left)})")
        colors = {a: PALETTE[i % len(PALETTE)] for i, (a, _) in enumerate(fig_spec.members)}
        record = {"title": fig_spec.title, "members": {a: label for a, label in present}, "missing": missing,
                  "final": {}}
        if fig_spec.kind == "curves+q":
            fig, axes = plt.subplots(2, len(shown_tasks), figsize=(4.6 * len(shown_tasks), 6.6), squeeze=False)
            for col, task in enumerate(shown_tasks):
                _curves(axes[0][col], results, task, present, colors)
                problem = _q_curves(axes[1][col], results, task, present, colors)
                if problem:
                    note(f"{fig_spec.title}: {problem}")
            axes[0][0].legend(fontsize=7)
            caption = "mean over seeds, band +-1 std; top: score, bottom: the critic's Q value"
        else:
            fig, axes = _grid(len(shown_tasks), plt, width=4.6, height=3.6)
            for ax, task in zip(axes, shown_tasks):
                if fig_spec.kind == "bars":
                    _bars(ax, results, task, present, colors)
                else:
                    _curves(ax, results, task, present, colors)
            if fig_spec.kind != "bars":
                axes[0].legend(fontsize=7)
            caption = ("final score, mean +- 2 std over seeds" if fig_spec.kind == "bars"
                       else "mean over seeds, band +-1 std")
        for task in shown_tasks:
            record["final"][task] = {a: s for a, _ in present if (s := final_scores(results, a, task)) is not None}
        profiles = ", ".join(results.profiles)
        fig.suptitle(f"{fig_spec.title} ({caption}; {profiles} profile)", fontsize=10)
        fig.tight_layout()
        paths += _save(fig, out_dir, fig_spec.stem)
        summary["figures"][fig_spec.stem] = record
    summary["notes"] = notes
    summary["labels"] = {a: refs.algorithm_label(a) for a in results.algorithms}
    sidecar = out_dir / "ablations.json"
    atomic_write_json(sidecar, summary)
    return paths + [sidecar], notes

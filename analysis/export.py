"""marl-eval compatible JSON export (`marlbench export marl-eval`); `reader.read_results` reads it back.

marl-eval (instadeepai/marl-eval) expects::

    {env_name: {task_name: {algorithm_name: {run_name: {
        "step_<i>": {"step_count": int, "<metric>": [per evaluation episode], ...},
        ...,
        "absolute_metrics": {"<metric>": [per evaluation episode]}}}}}}

We write env_name = benchmark (``mpe``), task_name = the rest of the task name (``spread-expert``),
algorithm_name = the registry name, run_name = ``seed_<k>``. Learning-curve points become ``step_<i>`` entries
with ``return`` and ``normalised_score`` (metrics.jsonl keeps only the mean of a curve evaluation, so these lists
hold one value), and ``win_rate`` where the environment reports battles (SMAX, StarCraft II); ``absolute_metrics``
holds the final evaluation's per-episode ``return`` and ``normalised_score`` plus one-element ``inference_ms``,
``train_seconds`` and, for battles, ``win_rate`` (the final record keeps the mean, not the per-episode wins).
marl-eval has no place for run metadata, so ``<file>.meta.json`` beside it keeps each run's task, profile, run id,
dataset source and checksum; ``reader.read_results`` on the JSON file reads both back (``reader.marl_eval_rows``).
"""
from __future__ import annotations

import math
from pathlib import Path

from marlbench.analysis import references as refs
from marlbench.analysis.reader import Results
from marlbench.results import atomic_write_json


def _clean(x):
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return None
    return float(x)


def to_marl_eval(results: Results) -> tuple[dict, dict]:
    """(marl-eval document, metadata sidecar)."""
    doc: dict = {}
    meta: dict = {"format": "marl-eval", "writer": "marlbench export", "runs": {}}
    curves: dict[tuple, list[dict]] = {}
    for point in results.curves.sort_values(["task", "algorithm", "seed", "step"]).to_dict("records"):
        if not point["final"]:
            curves.setdefault((point["task"], point["algorithm"], point["seed"]), []).append(point)
    for row in results.runs.to_dict("records"):
        bench, _, name = row["task"].partition("/")
        env, task_name = (bench, name) if name else ("unknown", row["task"])
        run = {}
        for i, point in enumerate(curves.get((row["task"], row["algorithm"], row["seed"]), [])):
            run[f"step_{i}"] = {"step_count": int(point["step"]), "return": [_clean(point["return"])],
                                "normalised_score": [_clean(point["normalised_score"])]}
            if _clean(point.get("win_rate")) is not None:  # SMAX / StarCraft II curves
                run[f"step_{i}"]["win_rate"] = [_clean(point["win_rate"])]
        returns = row["returns"] if isinstance(row["returns"], (list, tuple)) and row["returns"] else [row["return"]]
        ref = refs.reference(row["task"])
        run["absolute_metrics"] = {
            "return": [float(r) for r in returns],
            "normalised_score": ([ref.normalise(float(r)) for r in returns] if ref
                                 else [_clean(row["normalised_score"])]),
            "inference_ms": [_clean(row["inference_ms"])], "train_seconds": [_clean(row["train_seconds"])],
        }
        if _clean(row["win_rate"]) is not None:
            run["absolute_metrics"]["win_rate"] = [_clean(row["win_rate"])]
        run_name = f"seed_{int(row['seed'])}"
        doc.setdefault(env, {}).setdefault(task_name, {}).setdefault(row["algorithm"], {})[run_name] = run
        steps = row["step"]
        meta["runs"][f"{env}/{task_name}/{row['algorithm']}/{run_name}"] = {
            "task": row["task"], "profile": row["profile"], "run_id": row["run_id"], "source": row["source"],
            "checksum": row["checksum"], "steps": None if _clean(steps) is None else int(steps),
            "return_std": _clean(row["return_std"]), "win_rate": _clean(row["win_rate"]),
            "finished_at": row["finished_at"],
        }
    return doc, meta


def write_marl_eval(results: Results, path: Path) -> list[Path]:
    path = Path(path)
    doc, meta = to_marl_eval(results)
    meta_path = path.with_suffix(".meta.json")
    atomic_write_json(path, doc)
    atomic_write_json(meta_path, meta)
    return [path, meta_path]

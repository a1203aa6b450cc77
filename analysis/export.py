"""marl-eval compatible JSON export (`marlbench export marl-eval`) and its reader.

marl-eval (instadeepai/marl-eval) expects::

    {env_name: {task_name: {algorithm_name: {run_name: {
        "step_<i>": {"step_count": int, "<metric>": [per evaluation episode], ...},
        ...,
        "absolute_metrics": {"<metric>": [per evaluation episode]}}}}}}

We write env_name = benchmark (``mpe``), task_name = the rest of the task name (``spread-expert``),
algorithm_name = the registry name, run_name = ``seed_<k>``. Learning-curve points become ``step_<i>`` entries
with ``return`` and ``normalised_score`` (metrics.jsonl keeps only the mean of a curve evaluation, so these lists
hold one value); ``absolute_metrics`` holds the final evaluation's per-episode ``return`` and
``normalised_score`` plus one-element ``inference_ms`` and ``train_seconds``. marl-eval has no place for run
metadata, so ``<file>.meta.json`` beside it keeps each run's task, profile, run id, dataset source and checksum;
``read_results`` on the JSON file reads both back.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

from marlbench.analysis import references as refs
from marlbench.analysis.reader import Results, ResultsError
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
        returns = row["returns"] if isinstance(row["returns"], (list, tuple)) and row["returns"] else [row["return"]]
        ref = refs.reference(row["task"])
        run["absolute_metrics"] = {
            "return": [float(r) for r in returns],
            "normalised_score": ([ref.normalise(float(r)) for r in returns] if ref
                                 else [_clean(row["normalised_score"])]),
            "inference_ms": [_clean(row["inference_ms"])], "train_seconds": [_clean(row["train_seconds"])],
        }
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


def marl_eval_rows(path: Path) -> tuple[list[dict], list[dict]]:
    """Run and curve rows (reader.read_results format, before normalisation) from a marl-eval JSON file."""
    path = Path(path)
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise ResultsError(f"cannot read marl-eval file {path}: {err}") from err
    meta_path = path.with_suffix(".meta.json")
    meta = json.loads(meta_path.read_text())["runs"] if meta_path.exists() else {}
    runs, curves = [], []
    for env, tasks in doc.items():
        for task_name, algos in tasks.items():
            for algo, seeds in algos.items():
                for run_name, run in seeds.items():
                    m = meta.get(f"{env}/{task_name}/{algo}/{run_name}", {})
                    task = m.get("task") or f"{env}/{task_name}"
                    benchmark, scenario, quality = refs.split_task(task)
                    seed = int(run_name.rsplit("_", 1)[-1]) if run_name.rsplit("_", 1)[-1].isdigit() else len(runs)
                    absolute = run.get("absolute_metrics", {})
                    returns = absolute.get("return") or []
                    ret = sum(returns) / len(returns) if returns else None
                    norm = absolute.get("normalised_score") or []
                    base = {"algorithm": algo, "task": task, "benchmark": benchmark, "dataset": task_name,
                            "seed": seed, "profile": m.get("profile", "unknown"),
                            "run_id": m.get("run_id") or f"marl-eval:{path.name}"}
                    runs.append({
                        **base, "scenario": scenario, "quality": quality, "step": m.get("steps"), "return": ret,
                        "return_std": m.get("return_std"),
                        "recorded_normalised_score": sum(norm) / len(norm) if norm and None not in norm else None,
                        "inference_ms": (absolute.get("inference_ms") or [None])[0],
                        "train_seconds": (absolute.get("train_seconds") or [None])[0],
                        "source": m.get("source"), "checksum": m.get("checksum"), "win_rate": m.get("win_rate"),
                        "returns": returns, "finished_at": m.get("finished_at"), "path": str(path),
                    })
                    steps = sorted((k for k in run if k.startswith("step_")), key=lambda k: int(k.split("_")[1]))
                    for k in steps:
                        point = run[k]
                        r = point.get("return") or [None]
                        n = point.get("normalised_score") or [None]
                        curves.append({**base, "step": int(point["step_count"]), "return": r[0] if len(r) == 1 else
                                       sum(r) / len(r), "recorded": n[0] if len(n) == 1 else sum(n) / len(n),
                                       "final": False})
                    if m.get("steps") is not None and ret is not None:  # the final evaluation is a curve point too
                        curves.append({**base, "step": int(m["steps"]), "return": ret,
                                       "recorded": runs[-1]["recorded_normalised_score"], "final": True})
    return runs, curves

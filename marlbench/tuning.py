"""`marlbench tune SUITE`: the equal-budget tuning protocol.

Every algorithm declares a grid over its key trade-off coefficient (``Config.tuning_grid``), with the same number of
values for every algorithm that has one (BC-like algorithms have none and run with their defaults). For each task of
the suite, every grid value trains on the suite's TUNING seeds (``tuning: {seeds: [...]}`` in the suite file,
default 1000 and 1001), which must be disjoint from its report seeds, so selection never sees a reported run. The
value with the best mean final score over the tuning seeds (normalised where the task has references, else the
raw return; ties go to the earlier grid value) is written per (algorithm, task) to ``configs/tuned/<profile>.yaml``
(or ``--out``), with every value's score and the trial count.

`marlbench sweep SUITE --tuned FILE` then runs the report seeds with those values; their records carry
``config.tuning`` (file, trials per task, tuning seeds, the values), and `marlbench table` says per algorithm
"tuned (k trials per task)" or "defaults".
"""
from __future__ import annotations

import dataclasses
import json
import statistics
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from marlbench.errors import ConfigError, MarlbenchError
from marlbench.registry import ALGORITHMS
from marlbench.results import atomic_write_bytes
from marlbench.sweep import AlgorithmEntry, Suite, SweepSummary, expand, run_sweep

DEFAULT_TUNING_SEEDS = (1000, 1001)


def grid_points(algorithm: str) -> list[dict[str, Any]]:
    """The algorithm's grid points, in grid order ([] when it has nothing to tune). Several keys are zipped (point
    k takes every key's k-th value), so they must list equally many values."""
    grid = ALGORITHMS.get(algorithm).Config.tuning_grid
    if not grid:
        return []
    sizes = {key: len(values) for key, values in grid.items()}
    if len(set(sizes.values())) > 1:
        raise ConfigError(f"{algorithm}: the keys of Config.tuning_grid are zipped into points and need equally many "
                          f"values, got {sizes}")
    return [dict(zip(grid, values)) for values in zip(*grid.values())]


def check_equal_budget(algorithms: list[str]) -> int:
    """The common grid size of the algorithms that tune; a ConfigError naming the sizes if they differ."""
    sizes = {a: len(grid_points(a)) for a in algorithms if grid_points(a)}
    if len(set(sizes.values())) > 1:
        raise ConfigError("tuning grids must have the same number of values for every algorithm (equal budget), "
                          "got " + ", ".join(f"{a}: {n}" for a, n in sizes.items()))
    return next(iter(sizes.values()), 0)


def tuning_seeds(suite: Suite) -> tuple[int, ...]:
    seeds = tuple(suite.tuning.get("seeds") or DEFAULT_TUNING_SEEDS)
    overlap = sorted(set(seeds) & set(suite.seeds))
    if overlap:
        raise ConfigError(f"suite {suite.name}: tuning seeds {overlap} are also report seeds; selection must never "
                          f"see a reported run (set `tuning: {{seeds: [...]}}` to seeds outside {list(suite.seeds)})")
    return seeds


def tuning_suite(suite: Suite) -> Suite:
    """The suite's grid: one entry per (algorithm, grid value), on the tuning seeds. An algorithm with variants
    (labelled entries, e.g. the ablations) is tuned once, with its unlabelled entry's overrides (else its first
    entry's); its variants then run with the values selected for it."""
    algorithms = [entry.name for entry in suite.algorithms]
    check_equal_budget(algorithms)
    base: dict[str, AlgorithmEntry] = {}
    for entry in suite.algorithms:
        if entry.name not in base or (base[entry.name].label and not entry.label):
            base[entry.name] = entry
    entries = [AlgorithmEntry(entry.name, {**entry.overrides, **point})
               for entry in base.values() for point in grid_points(entry.name)]
    if not entries:
        raise ConfigError(f"suite {suite.name}: none of its algorithms has a tuning grid")
    return dataclasses.replace(suite, name=f"{suite.name}-tuning", algorithms=tuple(entries),
                               seeds=tuning_seeds(suite))


def _score(record: dict) -> float:
    value = record.get("normalised_score")
    return float(record["return_mean"] if value is None else value)


def select(suite: Suite, results_root: Path) -> dict[str, Any]:
    """Read the grid's records and pick, per (algorithm, task), the value with the best mean score."""
    grid = tuning_suite(suite)
    plan = expand(grid, results_root=results_root)
    scores: dict[tuple[str, str], dict[str, list[float]]] = {}
    points: dict[str, dict[str, Any]] = {}
    missing = []
    for unit in plan.units:
        keys = list(ALGORITHMS.get(unit.algorithm).Config.tuning_grid)
        point = {k: getattr(unit.resolved.algorithm, k) for k in keys}
        label = json.dumps(point, sort_keys=True)
        points[label] = point
        if unit.paths is None or not unit.paths.final.exists():
            missing.append(unit.label)
            continue
        record = json.loads(unit.paths.final.read_text())
        scores.setdefault((unit.algorithm, unit.task.name), {}).setdefault(label, []).append(_score(record))
    if missing:
        raise MarlbenchError(f"{len(missing)} tuning runs are not complete (e.g. {missing[0]}); run `marlbench tune` "
                             f"again to finish them")
    chosen: dict[str, dict[str, dict[str, Any]]] = {}
    at_edge: dict[str, list[str]] = {}
    table: dict[str, dict[str, dict[str, float]]] = {}
    for (algo, task), by_value in scores.items():
        means = {label: statistics.fmean(v) for label, v in by_value.items()}
        order = [json.dumps(p, sort_keys=True) for p in grid_points(algo)]
        best = max(order, key=lambda label: (means[label], -order.index(label)))
        chosen.setdefault(algo, {})[task] = points[best]
        table.setdefault(algo, {})[task] = {label: round(m, 4) for label, m in means.items()}
        if len(order) > 2 and order.index(best) in (0, len(order) - 1):
            at_edge.setdefault(algo, []).append(task)
    return {
        **protocol_header(suite),
        "selected_by": "best mean final score (normalised where the task has references) over the tuning seeds",
        "untuned": sorted({e.name for e in suite.algorithms if not grid_points(e.name)}),
        "values": chosen, "scores": table,
        # the best value is the grid's first or last: the optimum may lie outside the grid (widen it to know)
        "at_grid_edge": at_edge,
    }


HEADER_KEYS = ("suite", "profile", "steps", "tuning_seeds", "report_seeds", "trials_per_task")


def protocol_header(suite: Suite) -> dict[str, Any]:
    """What a selection was made under (HEADER_KEYS): selections agree on it or cannot be merged."""
    return {"suite": suite.name, "profile": suite.profile, "steps": suite.steps,
            "tuning_seeds": list(tuning_seeds(suite)), "report_seeds": list(suite.seeds),
            "trials_per_task": check_equal_budget([e.name for e in suite.algorithms])}


def tune(suite: Suite, results_root: Path, out: Path, executor: str = "local", workers: int | None = None,
         retries: int = 1, address: str | None = None, device: str = "cpu",
         show_progress: bool = True) -> tuple[SweepSummary, dict[str, Any] | None]:
    """Train the grid (a sweep: resumable, retried) and write the selection to ``out`` (merged with an earlier
    part's, see ``merge_selection``; a conflicting ``out`` is refused before anything trains)."""
    check_mergeable(protocol_header(suite), out)
    summary = run_sweep(tuning_suite(suite), results_root, executor, workers, retries, address, device,
                        show_progress)
    if not summary.ok:
        return summary, None
    selection = merge_selection(select(suite, results_root), out)
    write_selection(out, selection)
    return summary, selection


def write_selection(out: Path, selection: dict[str, Any]) -> None:
    """Atomically, as plain YAML: a value shared by two tasks is written out twice (`alpha: 10.0`, not `*id002`)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(out, yaml.dump(selection, Dumper=_NoAliasDumper, sort_keys=False).encode())


class _NoAliasDumper(yaml.SafeDumper):
    """A SafeDumper that never writes YAML anchors and aliases."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def check_mergeable(header: dict[str, Any], out: Path) -> dict[str, Any]:
    """The selection already in ``out`` ({} if none); a ConfigError if it was made under another protocol."""
    if not out.exists():
        return {}
    old = yaml.safe_load(out.read_text()) or {}
    differs = [k for k in header if old.get(k) != header[k]]
    if differs:
        raise ConfigError(f"{out} holds a selection with other {', '.join(differs)} "
                          f"({', '.join(f'{k}={old.get(k)!r}' for k in differs)}); write this one elsewhere with "
                          f"--out, or delete {out}")
    return old


def merge_selection(selection: dict[str, Any], out: Path) -> dict[str, Any]:
    """A suite tuned part by part (``--tasks``/``--algorithms``) accumulates in one file: the values and scores of
    an existing ``out`` written for the same suite, profile, budget and seeds are kept where this selection has no
    (algorithm, task) of its own. A file from another protocol is refused, never silently mixed."""
    selection["tasks"] = sorted({task for per_task in selection["values"].values() for task in per_task})
    old = check_mergeable({k: selection[k] for k in HEADER_KEYS}, out)
    if not old:
        return selection
    fresh = {(algo, task) for algo, per_task in selection["values"].items() for task in per_task}
    for key in ("values", "scores"):
        merged = {algo: dict(per_task) for algo, per_task in (old.get(key) or {}).items()}
        for algo, per_task in selection[key].items():
            merged.setdefault(algo, {}).update(per_task)
        selection[key] = merged
    edges = {(algo, task) for algo, tasks in (old.get("at_grid_edge") or {}).items() for task in tasks}
    edges = {pair for pair in edges if pair not in fresh} | \
        {(algo, task) for algo, tasks in selection["at_grid_edge"].items() for task in tasks}
    selection["at_grid_edge"] = {algo: sorted(t for a, t in edges if a == algo)
                                 for algo in sorted({a for a, _ in edges})}
    selection["untuned"] = sorted(set(old.get("untuned") or []) | set(selection["untuned"]))
    selection["tasks"] = sorted(set(old.get("tasks") or []) | set(selection["tasks"]))
    return selection


PUBLISHED = "paper"  # `--tuned paper`: the paper's published values (configs/tuned/published.yaml)


def load_tuned(path: str | Path) -> tuple[dict[str, dict[str, dict[str, Any]]], dict[str, Any]]:
    """The tuned values {algorithm: {task or "*": {key: value}}} of a file written by `marlbench tune` (or
    ``"paper"``: the bundled published values), and the record each tuned run carries (file, source, trials per
    task, tuning seeds)."""
    if str(path) == PUBLISHED:
        text = resources.files("marlbench.configs").joinpath("tuned", "published.yaml").read_text()
        name = "published.yaml"
    else:
        path = Path(path)
        if not path.exists():
            raise ConfigError(f"tuned config {path} does not exist (write it with `marlbench tune SUITE --out {path}`, "
                              f"or use `--tuned {PUBLISHED}` for the paper's published values)")
        text, name = path.read_text(), path.name
    data = yaml.safe_load(text)
    if not isinstance(data, dict) or not isinstance(data.get("values"), dict):
        raise ConfigError(f"{name}: not a tuned config written by `marlbench tune` (no 'values' mapping)")
    info = {"file": name, "source": data.get("source") or "tuned", "suite": data.get("suite"),
            "trials": data.get("trials_per_task"), "seeds": data.get("tuning_seeds")}
    return data["values"], info

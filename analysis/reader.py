"""Read per-seed run records into tidy pandas frames.

``read_results(paths)`` walks one or more results roots for ``<task>/<algorithm>/<run_id>/seed_<k>/`` directories
(docs/RESULTS.md) and reads exactly the documented files: ``final.json`` (the record; its presence marks a seed
complete), ``config.json`` (run identity, checked against the record) and ``metrics.jsonl`` (learning-curve lines,
``"curve": true``). A path may also be a marl-eval JSON file written by ``marlbench export`` (analysis/export.py).

A run with a variant label (``config.variant``: a suite entry's ``label:`` or ``marlbench run --variant``, e.g. an
ablation) is read as its own algorithm ``<algorithm>:<variant>`` (``macflow:no-q-max``), so tables, figures and
exports never merge it with the algorithm itself; ``base_algorithm`` and ``variant`` keep the two parts.

Two frames come back (``Results.runs``: one row per seed; ``Results.curves``: one row per seed and curve step) with
the columns listed in RUN_COLUMNS / CURVE_COLUMNS. Normalised scores are recomputed from the raw return with the
fixed references of analysis/references.py; a record whose stored ``normalised_score`` disagrees is reported in
``Results.warnings``. Mixed profiles are refused unless asked for, and incomplete or non-rectangular selections
raise MissingResultsError naming every missing cell and seed.
"""
from __future__ import annotations

import json
import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from marlbench.analysis import references as refs
from marlbench.config import variant_name
from marlbench.errors import MarlbenchError, require

if TYPE_CHECKING:  # pandas is the [analysis] extra, imported when results are read
    import pandas as pd

RUN_COLUMNS = [
    "algorithm", "task", "benchmark", "scenario", "quality", "dataset", "seed", "step", "return", "return_std",
    "normalised_score", "recorded_normalised_score", "inference_ms", "train_seconds", "profile", "run_id",
    "source", "checksum", "win_rate", "returns", "finished_at", "path", "action_kind", "tuning_trials",
    "base_algorithm", "variant", "tuning_source",
]
CURVE_COLUMNS = ["algorithm", "task", "benchmark", "dataset", "seed", "step", "return", "normalised_score",
                 "final", "profile", "run_id", "return_std", "episodes", "win_rate"]
MAX_LISTED = 60


class ResultsError(MarlbenchError):
    """Results that cannot be read or analysed as asked."""


class MissingResultsError(ResultsError):
    """Cells (task x algorithm) or seeds that a table or figure needs and the results do not have."""

    def __init__(self, what: str, missing_cells: list[tuple[str, str]],
                 missing_seeds: dict[tuple[str, str], list[int]], expected_seeds: Sequence[int], hint: str = ""):
        self.missing_cells, self.missing_seeds, self.expected_seeds = missing_cells, missing_seeds, list(expected_seeds)
        lines = [f"results are incomplete for {what}: expected seeds {_seed_list(expected_seeds)} in every "
                 f"task x algorithm cell"]
        if missing_cells:
            by_task: dict[str, list[str]] = {}
            for task, algo in missing_cells:
                by_task.setdefault(task, []).append(algo)
            n_algos = len({a for _, a in missing_cells} | {a for _, a in missing_seeds})
            lines.append(f"  missing cells ({len(missing_cells)} task x algorithm cells without any completed "
                         f"seed), by task:")
            for task, algos in by_task.items():
                lines.append(f"    {task}: " + (f"all {len(algos)} algorithms ({', '.join(algos)})"
                                                if len(algos) == n_algos and len(algos) > 1 else ", ".join(algos)))
        if missing_seeds:
            lines.append(f"  missing seeds ({sum(map(len, missing_seeds.values()))} in {len(missing_seeds)} cells):")
            items = sorted(missing_seeds.items())
            lines += [f"    {task} x {algo}: seed {_seed_list(seeds)} missing "
                      f"(has {len(expected_seeds) - len(seeds)} of {len(expected_seeds)})"
                      for (task, algo), seeds in items[:MAX_LISTED]]
            if len(items) > MAX_LISTED:
                lines.append(f"    ... and {len(items) - MAX_LISTED} more")
        if hint:
            lines.append(hint)
        super().__init__("\n".join(lines))


class MixedProfilesError(ResultsError):
    """Runs from different profiles (paper, quick, ...) that would silently be averaged together."""


class DuplicateRunsError(ResultsError):
    """More than one completed run (different run ids) for one task x algorithm x seed."""


def _seed_list(seeds: Iterable[int]) -> str:
    seeds = sorted(seeds)
    if seeds and seeds == list(range(seeds[0], seeds[-1] + 1)) and len(seeds) > 2:
        return f"{seeds[0]}-{seeds[-1]}"
    return ", ".join(map(str, seeds))


def _pd():
    return require("pandas", "analysis")


@dataclass
class Results:
    runs: pd.DataFrame
    curves: pd.DataFrame
    warnings: list[str] = field(default_factory=list)
    incomplete: list[str] = field(default_factory=list)  # seed directories without final.json

    @property
    def algorithms(self) -> list[str]:
        return sorted(self.runs["algorithm"].unique(), key=refs.algorithm_sort_key)

    @property
    def tasks(self) -> list[str]:
        return sorted(self.runs["task"].unique())

    @property
    def profiles(self) -> list[str]:
        return sorted(self.runs["profile"].astype(str).unique())

    def action_kinds(self) -> dict[str, str | None]:
        """Per task, ``continuous`` or ``discrete`` as its runs recorded it (the spec in config.json), else as the
        registered task's spec says; None when neither knows."""
        out = {}
        for task in self.tasks:
            recorded = self.runs.loc[self.runs["task"] == task, "action_kind"].dropna().unique()
            out[task] = str(recorded[0]) if len(recorded) else refs.task_action_kind(task)
        return out

    def select(self, algorithms: Iterable[str] | None = None, tasks: Iterable[str] | None = None) -> "Results":
        runs, curves = self.runs, self.curves
        if algorithms is not None:
            algorithms = list(algorithms)
            runs, curves = runs[runs["algorithm"].isin(algorithms)], curves[curves["algorithm"].isin(algorithms)]
        if tasks is not None:
            tasks = list(tasks)
            runs, curves = runs[runs["task"].isin(tasks)], curves[curves["task"].isin(tasks)]
        return Results(runs.reset_index(drop=True), curves.reset_index(drop=True), self.warnings, self.incomplete)

    def missing(self, algorithms: Sequence[str], tasks: Sequence[str], seeds: Sequence[int] | None = None
                ) -> tuple[list[tuple[str, str]], dict[tuple[str, str], list[int]], list[int]]:
        """(missing cells, missing seeds per cell, expected seeds). Expected seeds default to the union of the
        seeds found in the selected cells, so a rectangle is runs x tasks with the same seeds everywhere."""
        sub = self.runs[self.runs["algorithm"].isin(algorithms) & self.runs["task"].isin(tasks)]
        have: dict[tuple[str, str], set[int]] = defaultdict(set)
        for task, algo, seed in zip(sub["task"], sub["algorithm"], sub["seed"]):
            have[(task, algo)].add(int(seed))
        expected = sorted(seeds) if seeds is not None else sorted(set().union(*have.values()) if have else set())
        cells, seeds_missing = [], {}
        for task in tasks:
            for algo in algorithms:
                got = have.get((task, algo))
                if not got:
                    cells.append((task, algo))
                elif set(expected) - got:
                    seeds_missing[(task, algo)] = sorted(set(expected) - got)
        return cells, seeds_missing, expected

    def require_complete(self, algorithms: Sequence[str], tasks: Sequence[str], seeds: Sequence[int] | None = None,
                         what: str = "the selection", hint: str = "") -> list[int]:
        cells, seeds_missing, expected = self.missing(algorithms, tasks, seeds)
        if cells or seeds_missing:
            raise MissingResultsError(what, cells, seeds_missing, expected, hint)
        return expected

    def score_matrix(self, algorithm: str, tasks: Sequence[str], column: str = "normalised_score",
                     seeds: Sequence[int] | None = None):
        """``[runs, tasks]`` array of one algorithm's scores, rows ordered by seed (rliable's layout)."""

        sub = self.runs[(self.runs["algorithm"] == algorithm) & self.runs["task"].isin(tasks)]
        if seeds is not None:
            sub = sub[sub["seed"].isin(seeds)]
        table = sub.pivot(index="seed", columns="task", values=column).reindex(columns=list(tasks))
        if table.isna().to_numpy().any():
            cells, seeds_missing, expected = self.missing([algorithm], tasks, seeds)
            raise MissingResultsError(f"the {column} matrix of {algorithm}", cells, seeds_missing, expected)
        return table.to_numpy(dtype=float)


# --------------------------------------------------------------------------------------------- reading
def _find_seed_dirs(root: Path) -> tuple[list[Path], list[Path]]:
    """(completed seed directories, seed directories without final.json), sorted."""
    done, incomplete = [], []
    for cfg in sorted(root.rglob("seed_*/config.json")):
        (done if (cfg.parent / "final.json").exists() else incomplete).append(cfg.parent)
    known = set(done)
    for final in sorted(root.rglob("seed_*/final.json")):  # records copied without their config.json
        if final.parent not in known:
            done.append(final.parent)
    return sorted(done), sorted(incomplete)


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise ResultsError(f"cannot read {path}: {err}") from err


def _curve_rows(path: Path, base: dict, episodes: tuple[int | None, int | None] = (None, None)) -> list[dict]:
    """The ``"curve"`` lines of one seed's metrics.jsonl; ``episodes`` = (curve evaluation episodes, final
    evaluation episodes) from the run's config and record, the sample sizes of the convergence test."""
    rows = []
    if not path.exists():
        return rows
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except ValueError as err:
            raise ResultsError(f"{path}:{n}: not JSON ({err})") from err
        if rec.get("curve"):
            final = bool(rec.get("final", False))
            rows.append({**base, "step": int(rec["step"]), "return": rec.get("return_mean"),
                         "recorded": rec.get("normalised_score"), "final": final,
                         "return_std": rec.get("return_std"), "episodes": episodes[1] if final else episodes[0],
                         "win_rate": rec.get("win_rate")})  # only where the environment reports wins
    return rows


def split_algorithm(name: str) -> tuple[str, str | None]:
    """``macflow:no-q-max`` -> (``macflow``, ``no-q-max``); a plain algorithm name -> (name, None)."""
    base, _, variant = name.partition(":")
    return base, variant or None


def run_variant(final: dict, config: dict | None) -> str | None:
    """The variant label a run was recorded with (``config.variant`` in final.json, else in config.json)."""
    for doc in (final, config or {}):
        inner = doc.get("config")
        if isinstance(inner, dict) and inner.get("variant"):
            return str(inner["variant"])
    return None


def _run_row(seed_dir: Path, final: dict, config: dict | None, warnings: list[str]) -> dict:
    task = final["task"]
    variant = run_variant(final, config)
    benchmark, scenario, quality = refs.split_task(task)
    dataset = final.get("dataset") or {}
    if config is not None:
        # records written before config.json nested the configs under "config" held the algorithm's config in
        # "algorithm"; only a name is compared
        keys = ("run_id", "task", "seed") + (("algorithm",) if isinstance(config.get("algorithm"), str) else ())
        for key in keys:
            if key in config and config[key] != final.get(key):
                warnings.append(f"{seed_dir}: config.json {key}={config[key]!r} but final.json has "
                                f"{final.get(key)!r}")
        if "profile" in config and config["profile"] != final.get("profile"):
            warnings.append(f"{seed_dir}: config.json profile {config['profile']!r} but final.json has "
                            f"{final.get('profile')!r}")
    return {
        "algorithm": variant_name(final["algorithm"], variant), "base_algorithm": final["algorithm"],
        "variant": variant, "task": task, "benchmark": final.get("benchmark") or benchmark,
        "scenario": scenario, "quality": quality or (dataset.get("quality") or ""),
        "dataset": task.partition("/")[2] or task, "seed": int(final["seed"]), "step": final.get("steps"),
        "return": final.get("return_mean"), "return_std": final.get("return_std"),
        "recorded_normalised_score": final.get("normalised_score"),
        "inference_ms": final.get("inference_ms"), "train_seconds": final.get("train_seconds"),
        "profile": final.get("profile") or (config or {}).get("profile") or "unknown",
        "run_id": final.get("run_id") or seed_dir.parent.name, "source": dataset.get("source"),
        "checksum": dataset.get("checksum"), "win_rate": final.get("win_rate"),
        "returns": final.get("returns"), "finished_at": final.get("finished_at"), "path": str(seed_dir),
        "action_kind": ((config or {}).get("spec") or {}).get("action_kind"),
        # trials per task of the tuning that chose this run's values (`marlbench tune`); None: defaults
        "tuning_trials": (((config or {}).get("config") or {}).get("tuning") or {}).get("trials"),
        # "tuned" (`marlbench tune`), "published" (`--tuned paper`) or None (defaults)
        "tuning_source": _tuning_source(((config or {}).get("config") or {}).get("tuning")),
    }


def _tuning_source(tuning: dict | None) -> str | None:
    return None if not tuning else tuning.get("source") or "tuned"  # records before `source` are all tuned


def _normalise_rows(rows: list[dict], key: str, recorded: str, warnings: list[str], where: str) -> None:
    """Recompute normalised scores from the raw return with the fixed references; flag disagreements."""
    unreferenced: set[str] = set()
    disagree: dict[str, int] = defaultdict(int)
    for row in rows:
        ref = refs.reference(row["task"])
        rec = row.pop(recorded, None)
        if ref is None:
            unreferenced.add(row["task"])
            row[key] = rec
            continue
        row[key] = ref.normalise(row["return"])
        if rec is not None and row[key] is not None and not math.isclose(rec, row[key], rel_tol=1e-6, abs_tol=1e-6):
            disagree[row["task"]] += 1
        if where == "runs":
            row["recorded_normalised_score"] = rec
    for task in sorted(unreferenced):
        warnings.append(f"{task}: no fixed references in the registry or configs/reference/normalisation.yaml; "
                        f"using the records' own normalised_score")
    for task, n in sorted(disagree.items()):
        ref = refs.reference(task)
        warnings.append(f"{task}: {n} {where} record(s) carry a normalised_score that disagrees with the fixed "
                        f"references (random {ref.random}, expert {ref.expert}); the recomputed value is used")


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
                        **base, "base_algorithm": split_algorithm(algo)[0], "variant": split_algorithm(algo)[1],
                        "scenario": scenario, "quality": quality, "step": m.get("steps"), "return": ret,
                        "return_std": m.get("return_std"),
                        "recorded_normalised_score": sum(norm) / len(norm) if norm and None not in norm else None,
                        "inference_ms": (absolute.get("inference_ms") or [None])[0],
                        "train_seconds": (absolute.get("train_seconds") or [None])[0],
                        "source": m.get("source"), "checksum": m.get("checksum"),
                        "win_rate": (absolute.get("win_rate") or [m.get("win_rate")])[0],
                        "returns": returns, "finished_at": m.get("finished_at"), "path": str(path),
                    })
                    steps = sorted((k for k in run if k.startswith("step_")), key=lambda k: int(k.split("_")[1]))
                    for k in steps:
                        point = run[k]
                        r = point.get("return") or [None]
                        n = point.get("normalised_score") or [None]
                        curves.append({**base, "step": int(point["step_count"]), "return": r[0] if len(r) == 1 else
                                       sum(r) / len(r), "recorded": n[0] if len(n) == 1 else sum(n) / len(n),
                                       "final": False, "win_rate": (point.get("win_rate") or [None])[0]})
                    if m.get("steps") is not None and ret is not None:  # the final evaluation is a curve point too
                        curves.append({**base, "step": int(m["steps"]), "return": ret,
                                       "recorded": runs[-1]["recorded_normalised_score"], "final": True})
    return runs, curves


def read_results(paths: str | Path | Sequence[str | Path], profile: str | None = None, mix_profiles: bool = False,
                 latest: bool = False, curves: bool = True) -> Results:
    """Collect every completed seed under ``paths`` (results roots or marl-eval JSON files).

    ``profile`` keeps only runs of that profile; otherwise runs of several profiles raise MixedProfilesError unless
    ``mix_profiles``. Several completed runs (run ids) of one task x algorithm x seed raise DuplicateRunsError
    unless ``latest`` keeps the most recently finished one.
    """
    pd = _pd()
    if isinstance(paths, (str, Path)):
        paths = [paths]
    run_rows, curve_rows, warnings, incomplete = [], [], [], []
    for p in map(Path, paths):
        if p.is_file() and p.suffix == ".json":
            r, c = marl_eval_rows(p)
            run_rows += r
            curve_rows += c
            continue
        if not p.is_dir():
            raise ResultsError(f"results path {p} does not exist (expected a results root directory or a "
                               f"marl-eval .json file)")
        done, unfinished = _find_seed_dirs(p)
        incomplete += [str(d) for d in unfinished]
        for seed_dir in done:
            final = _read_json(seed_dir / "final.json")
            config = _read_json(seed_dir / "config.json") if (seed_dir / "config.json").exists() else None
            row = _run_row(seed_dir, final, config, warnings)
            run_rows.append(row)
            if curves:
                base = {k: row[k] for k in ("algorithm", "task", "benchmark", "dataset", "seed", "profile",
                                            "run_id")}
                protocol = ((config or {}).get("config") or {}).get("protocol") or {}
                episodes = (protocol.get("curve_eval_episodes"), final.get("episodes"))
                curve_rows += _curve_rows(seed_dir / "metrics.jsonl", base, episodes)
    if not run_rows:
        raise ResultsError("no completed runs (final.json) under " + ", ".join(map(str, paths)) +
                           (f"; {len(incomplete)} seed(s) are still running or were interrupted" if incomplete else ""))
    _normalise_rows(run_rows, "normalised_score", "recorded_normalised_score", warnings, "runs")
    _normalise_rows(curve_rows, "normalised_score", "recorded", warnings, "curves")
    runs = pd.DataFrame(run_rows, columns=RUN_COLUMNS)
    curve_frame = pd.DataFrame(curve_rows, columns=CURVE_COLUMNS)

    found = runs["profile"].astype(str).value_counts().sort_index()
    if profile is not None:
        if profile not in found.index:
            raise ResultsError(f"no runs with profile {profile!r}; found " +
                               ", ".join(f"{p} ({n} runs)" for p, n in found.items()))
        runs = runs[runs["profile"] == profile]
        curve_frame = curve_frame[curve_frame["profile"] == profile]
    elif len(found) > 1 and not mix_profiles:
        raise MixedProfilesError(
            "refusing to mix profiles: " + ", ".join(f"{p} ({n} runs)" for p, n in found.items()) +
            ". Numbers from different profiles are not comparable; select one with --profile NAME "
            "(read_results(profile=...)) or pass --mix-profiles (mix_profiles=True) to combine them anyway")

    key = ["task", "algorithm", "seed"]
    dup = runs[runs.duplicated(key, keep=False)]
    if len(dup):
        if not latest:
            lines = [f"  {t} x {a} seed {s}: run ids {', '.join(sorted(g['run_id']))}"
                     for (t, a, s), g in dup.groupby(key)]
            raise DuplicateRunsError(
                f"{len(lines)} task x algorithm x seed triples have more than one completed run (different "
                f"configs or code versions):\n" + "\n".join(lines[:MAX_LISTED]) +
                ("\n  ..." if len(lines) > MAX_LISTED else "") +
                "\nremove the stale run directories, point --results at one set, or pass --latest to keep the "
                "most recently finished run of each")
        runs = runs.sort_values("finished_at", na_position="first").drop_duplicates(key, keep="last")
        keep = runs[key + ["run_id"]]
        curve_frame = curve_frame.merge(keep, on=key + ["run_id"], how="inner")[CURVE_COLUMNS]
    runs = runs.sort_values(key).reset_index(drop=True)
    curve_frame = curve_frame.sort_values(key + ["step", "final"]).reset_index(drop=True)
    return Results(runs, curve_frame, warnings, incomplete)

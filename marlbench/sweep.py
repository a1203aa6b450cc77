"""`marlbench sweep SUITE`: every (algorithm, task, seed) of a suite, on local processes or a Ray cluster.

A suite (configs/suites/*.yaml, docs/SWEEPS.md) names algorithms x tasks x seeds under one profile, with optional
overrides. ``expand`` turns it into units, one per seed; ``run_sweep`` runs the units that are not complete:

- a complete seed (final.json) is skipped, an interrupted one resumes from its checkpoint (the protocol's own
  resume: the record equals an uninterrupted run's);
- a unit that raises is retried up to ``retries`` times (resuming from its last checkpoint); if it still fails,
  ``seed_<k>/failure.json`` records the error, its traceback and the attempts, and the sweep goes on. The next
  sweep retries it; success removes the failure record;
- executors: ``local`` (one single-threaded spawned process per core, the same safe pool as `marlbench run`) or
  ``ray`` (one Ray task per unit with its CPU/GPU needs, on a local cluster started here or on ``--address``).
  Both run the same ``protocol.run_seed`` into the same results directory, so their records are identical.

Units are independent: nothing but the results directory is shared, so a sweep can be killed at any moment and
re-run with the same command.
"""
from __future__ import annotations

import dataclasses
import importlib
import json
import os
import statistics
import sys
import tempfile
import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, wait
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

import marlbench
from marlbench import catalog
from marlbench.config import PROFILES, ProtocolConfig, ResolvedConfig, check_variant, resolve, variant_name
from marlbench.errors import ConfigError, IncompatibleError, MarlbenchError, UnavailableError, UnknownNameError
from marlbench.executors import default_workers, guarded_pool, progress_queue, seed_job
from marlbench.protocol import ensure_dataset, run_seed, seed_paths
from marlbench.registry import ALGORITHMS
from marlbench.results import RunPaths, SeedBusy, atomic_write_json
from marlbench.tasks import Task, get_task

SUITE_KEYS = {"name", "description", "profile", "steps", "seeds", "first_seed", "algorithms", "tasks", "set",
              "overrides", "imports", "tuning"}
EXECUTORS = ("local", "ray")
FAILURE_FILE = "failure.json"
BUSY_RETRY_SECONDS = 30.0  # how long a seed that another process is training waits before the sweep asks again


# ------------------------------------------------------------------------------------------------------- suites
@dataclass(frozen=True)
class AlgorithmEntry:
    """One algorithm of a suite, with its own ``--set`` overrides (e.g. an ablation's switches) and an optional
    variant ``label``: a labelled entry's runs carry ``config.variant`` and are reported as the algorithm
    ``<name>:<label>``, never merged with the unlabelled algorithm."""

    name: str
    overrides: dict[str, Any] = field(default_factory=dict)
    label: str | None = None

    @property
    def display(self) -> str:
        return variant_name(self.name, self.label)


@dataclass(frozen=True)
class Suite:
    name: str
    profile: str
    seeds: tuple[int, ...]
    algorithms: tuple[AlgorithmEntry, ...]
    tasks: tuple[str, ...]
    description: str = ""
    steps: int | None = None
    common: dict[str, Any] = field(default_factory=dict)  # `set:` overrides for every unit
    overrides: dict[str, dict[str, Any]] = field(default_factory=dict)  # per task
    imports: tuple[str, ...] = ()  # modules that register plugin algorithms or families
    tuning: dict[str, Any] = field(default_factory=dict)  # `marlbench tune` settings (marlbench/tuning.py)
    path: Path | None = None

    @classmethod
    def load(cls, path: str | Path) -> "Suite":
        """Read and check a suite file; every problem names the file and the key."""
        path = Path(path)
        if not path.exists():
            bundled = resources.files("marlbench.configs").joinpath("suites", f"{path}.yaml")
            if path.suffix == "" and bundled.is_file():
                path = Path(str(bundled))
            else:
                raise ConfigError(f"suite file {path} does not exist (give a path to a .yaml file, e.g. "
                                  f"configs/suites/mpe-reference.yaml)")
        try:
            data = yaml.safe_load(path.read_text())
        except yaml.YAMLError as err:
            raise ConfigError(f"{path}: not valid YAML ({err})") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: a suite is a mapping with keys {', '.join(sorted(SUITE_KEYS))}")
        unknown = sorted(set(data) - SUITE_KEYS)
        if unknown:
            raise UnknownNameError(f"suite key (in {path})", unknown[0], sorted(SUITE_KEYS))
        for key in ("algorithms", "tasks"):
            if not isinstance(data.get(key), list) or not data[key]:
                raise ConfigError(f"{path}: '{key}' must be a non-empty list")
        profile = data.get("profile", "quick")
        if profile not in PROFILES:
            raise UnknownNameError(f"profile (in {path})", profile, PROFILES)
        seeds = data.get("seeds", 3)
        if isinstance(seeds, int):
            if seeds < 1:
                raise ConfigError(f"{path}: 'seeds' must be at least 1 (or a list of seeds)")
            first = int(data.get("first_seed", 0))
            seeds = list(range(first, first + seeds))
        if not isinstance(seeds, list) or not all(isinstance(s, int) and s >= 0 for s in seeds) or \
                len(set(seeds)) != len(seeds):
            raise ConfigError(f"{path}: 'seeds' must be a count or a list of distinct seeds >= 0, got {seeds!r}")
        entries = []
        for item in data["algorithms"]:
            if isinstance(item, str):
                entries.append(AlgorithmEntry(item))
            elif isinstance(item, dict) and set(item) <= {"name", "set", "label"} and \
                    isinstance(item.get("name"), str):
                if not isinstance(item.get("set") or {}, dict):
                    raise ConfigError(f"{path}: algorithm {item['name']!r}: 'set' maps keys to values, got "
                                      f"{item['set']!r}")
                label = item.get("label")
                if label is not None:
                    check_variant(label, f"{path}: algorithm {item['name']!r} label")
                entries.append(AlgorithmEntry(item["name"], dict(item.get("set") or {}), label))
            else:
                raise ConfigError(f"{path}: each algorithm is a name or {{name: ..., label: ..., set: {{key: "
                                  f"value}}}}, got {item!r}")
        seen: set[tuple[str, str | None]] = set()
        for entry in entries:
            if (entry.name, entry.label) in seen:
                what = (f"label {entry.label!r}" if entry.label else "no label")
                raise ConfigError(f"{path}: algorithm {entry.name!r} appears twice with {what}; give each entry of "
                                  f"one algorithm a distinct `label:` (e.g. {{name: {entry.name}, label: no-q-max, "
                                  f"set: {{...}}}}) so that their runs are reported apart")
            seen.add((entry.name, entry.label))
        overrides = data.get("overrides") or {}
        if not isinstance(overrides, dict) or not all(isinstance(v, dict) for v in overrides.values()):
            raise ConfigError(f"{path}: 'overrides' maps a task to {{key: value}} overrides")
        stray = sorted(set(overrides) - set(data["tasks"]))
        if stray:
            raise ConfigError(f"{path}: overrides for {stray[0]!r}, which is not one of the suite's tasks")
        steps = data.get("steps")
        if steps is not None and (not isinstance(steps, int) or steps < 1):
            raise ConfigError(f"{path}: 'steps' must be a positive integer")
        return cls(name=str(data.get("name") or path.stem), profile=profile, seeds=tuple(seeds),
                   algorithms=tuple(entries), tasks=tuple(str(t) for t in data["tasks"]),
                   description=str(data.get("description") or ""), steps=steps, common=dict(data.get("set") or {}),
                   overrides={str(k): dict(v) for k, v in overrides.items()},
                   imports=tuple(data.get("imports") or ()), tuning=dict(data.get("tuning") or {}), path=path)


    def subset(self, tasks: Iterable[str] | None = None, algorithms: Iterable[str] | None = None) -> "Suite":
        """The suite restricted to some of its tasks and algorithms (an algorithm name keeps all its variants;
        ``macflow:no-q-max`` names one), in the suite's order; a name the suite lacks fails with its closest."""
        suite = self
        if tasks:
            wanted = list(tasks)
            for name in wanted:
                if name not in self.tasks:
                    raise UnknownNameError(f"task of suite {self.name}", name, list(self.tasks))
            suite = dataclasses.replace(suite, tasks=tuple(t for t in self.tasks if t in wanted),
                                        overrides={t: o for t, o in self.overrides.items() if t in wanted})
        if algorithms:
            wanted = list(algorithms)
            names = [e.name for e in self.algorithms] + [e.display for e in self.algorithms]
            for name in wanted:
                if name not in names:
                    raise UnknownNameError(f"algorithm of suite {self.name}", name, sorted(set(names)))
            suite = dataclasses.replace(suite, algorithms=tuple(e for e in self.algorithms
                                                                if e.name in wanted or e.display in wanted))
        return suite


@dataclass(frozen=True)
class Unit:
    """One seed of one (algorithm, configuration, task): the sweep's unit of work."""

    algorithm: str
    task: Task
    seed: int
    resolved: ResolvedConfig
    run_id: str | None  # None until the task's dataset exists (the id includes its checksum)
    paths: RunPaths | None

    @property
    def name(self) -> str:
        """The algorithm as reports show it: ``macflow``, or ``macflow:no-q-max`` for a variant."""
        return variant_name(self.algorithm, self.resolved.variant)

    @property
    def label(self) -> str:
        return f"{self.name} {self.task.name} seed {self.seed}"

    def status(self) -> str:
        """complete, failed (a failure record and no final record), partial (a checkpoint) or pending."""
        if self.paths is None:
            return "pending"
        if self.paths.final.exists():
            return "complete"
        if (self.paths.dir / FAILURE_FILE).exists():
            return "failed"
        return "partial" if self.paths.checkpoint.exists() else "pending"


@dataclass
class Plan:
    units: list[Unit]
    skipped: list[str]  # "algorithm on task: reason" for pairs that cannot run here


def _import_modules(modules: Iterable[str]) -> None:
    for module in modules:
        try:
            importlib.import_module(module)
        except ImportError as err:
            raise ConfigError(f"suite import {module!r} failed: {err}") from None


def expand(suite: Suite, tuned: tuple[dict, dict] | None = None, seeds: Iterable[int] | None = None,
           prepare_data: bool = False, log: Callable[[str], None] = print, results_root: Path = Path(".")) -> Plan:
    """The suite's units, in suite order (task-major). ``tuned``: (values {algorithm: {task: overrides}}, record)
    from ``tuning.load_tuned``; the values are layered last and the record goes into the run's config
    (``config.tuning``). ``prepare_data`` generates missing datasets (otherwise units of a task without data have no
    run id yet). Unknown names fail with the closest names; impossible pairings and tasks that cannot run here are
    listed in ``Plan.skipped``."""
    catalog.load()
    _import_modules(suite.imports)
    algos = [(entry, ALGORITHMS.get(entry.name)) for entry in suite.algorithms]
    tasks = [get_task(name) for name in suite.tasks]
    seeds = tuple(seeds) if seeds is not None else suite.seeds
    units, skipped = [], []
    for task in tasks:
        try:
            task.require_runnable()
        except (UnavailableError, MarlbenchError) as err:
            skipped.append(f"{task.name} (all {len(algos)} algorithms): {err}")
            continue
        pending_data = not task.dataset_path.exists()
        if pending_data and prepare_data:
            ensure_dataset(task, log)
            pending_data = False
        for entry, cls in algos:
            try:
                cls.check_compatible(task.spec)
            except IncompatibleError as err:
                skipped.append(f"{entry.display} on {task.name}: {err}")
                continue
            overrides = _applicable(cls, {**suite.common, **suite.overrides.get(task.name, {})})
            overrides.update(entry.overrides)
            values = tuned_values(tuned, cls.name, task.name)
            overrides.update(values)
            resolved = resolve(cls, task.benchmark, suite.profile, suite.steps, overrides, task=task.name)
            if values:
                resolved = dataclasses.replace(resolved, tuning={**tuned[1], "values": values})
            if entry.label:
                resolved = dataclasses.replace(resolved, variant=entry.label)
            for seed in seeds:
                rid, paths = ((None, None) if pending_data
                              else seed_paths(cls, task, resolved, Path(results_root), seed))
                units.append(Unit(cls.name, task, seed, resolved, rid, paths))
    return Plan(units, skipped)


def tuned_values(tuned: tuple[dict, dict] | None, algorithm: str, task: str) -> dict[str, Any]:
    """The tuned overrides of (algorithm, task) from ``tuning.load_tuned``'s values: the task's own, else the
    file's value for every task ("*", the published values), else none."""
    per_task = ((tuned[0] if tuned else {}).get(algorithm)) or {}
    return dict(per_task.get(task) or per_task.get("*") or {})


def _applicable(cls: type, overrides: dict[str, Any]) -> dict[str, Any]:
    """Suite-wide and per-task overrides apply to every algorithm that has the key (and to the protocol)."""
    names = {f.name for f in dataclasses.fields(cls.Config)} | {f.name for f in dataclasses.fields(ProtocolConfig)}
    return {k: v for k, v in overrides.items() if k in names}


# ---------------------------------------------------------------------------------------------------- running
@dataclass
class SweepSummary:
    complete: list[str] = field(default_factory=list)  # labels, including those complete before the sweep
    failed: dict[str, str] = field(default_factory=dict)  # label -> last error line
    retried: dict[str, int] = field(default_factory=dict)  # label -> attempts that failed before the last one
    skipped: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.failed


class _Progress:
    """done / running / failed / remaining, with an ETA from the units finished in this sweep."""

    def __init__(self, total: int, done: int, show: bool):
        from tqdm.auto import tqdm

        self.bar = tqdm(total=total, initial=done, desc="sweep", unit="seed", dynamic_ncols=True, disable=not show,
                        mininterval=1.0)
        self.running = self.failed = 0

    def update(self, finished: int = 0) -> None:
        self.bar.update(finished)
        remaining = self.bar.total - self.bar.n - self.running
        self.bar.set_postfix_str(f"done {self.bar.n - self.failed}, running {self.running}, failed {self.failed}, "
                                 f"remaining {max(remaining, 0)}", refresh=False)

    def write(self, line: str) -> None:
        self.bar.write(line, file=sys.stderr)

    def close(self) -> None:
        self.bar.close()


def _record_failure(unit: Unit, attempts: int, error: BaseException | str, trace: str) -> None:
    unit.paths.dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(unit.paths.dir / FAILURE_FILE, {
        "algorithm": unit.algorithm, "variant": unit.resolved.variant, "task": unit.task.name, "seed": unit.seed,
        "run_id": unit.run_id,
        "attempts": attempts, "error": str(error).strip().splitlines()[-1] if str(error).strip() else repr(error),
        "error_type": type(error).__name__ if isinstance(error, BaseException) else "Error", "traceback": trace,
        "at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    })


def run_sweep(suite: Suite, results_root: Path, executor: str = "local", workers: int | None = None,
              retries: int = 1, address: str | None = None, device: str = "cpu", show_progress: bool = True,
              tuned: tuple[dict, dict] | None = None, seeds: Iterable[int] | None = None,
              log: Callable[[str], None] = print) -> SweepSummary:
    """Run every unit of ``suite`` that is not complete; see the module docstring."""
    if executor not in EXECUTORS:
        raise UnknownNameError("executor", executor, EXECUTORS)
    if retries < 0:
        raise ConfigError(f"--retries must be 0 or more, got {retries}")
    if workers is not None and workers < 1:
        raise ConfigError(f"--workers must be at least 1, got {workers}")
    t0 = time.perf_counter()
    plan = expand(suite, tuned, seeds, prepare_data=True, log=log, results_root=results_root)
    units = plan.units
    summary = SweepSummary(skipped=plan.skipped)
    todo = []
    for unit in units:
        if unit.status() == "complete":
            summary.complete.append(unit.label)
        else:
            todo.append(unit)
    for line in plan.skipped:
        log(f"skipped: {line}")
    log(f"suite {suite.name}: {len(units)} seeds, {len(summary.complete)} complete, {len(todo)} to run "
        f"({executor} executor, up to {retries} retries each)")
    progress = _Progress(len(units), len(summary.complete), show_progress)
    try:
        if todo:
            runner = _run_local if executor == "local" else _run_ray
            runner(todo, results_root, device, workers, retries, address, summary, progress)
    finally:
        progress.close()
    summary.seconds = time.perf_counter() - t0
    return summary


def _finish(unit: Unit, attempts: dict[str, int], retries: int, error: BaseException | None, trace: str,
            summary: SweepSummary, progress: _Progress) -> bool:
    """Book one finished attempt; True if the unit should be submitted again."""
    label = unit.label
    if error is None:
        (unit.paths.dir / FAILURE_FILE).unlink(missing_ok=True)
        summary.complete.append(label)
        if attempts[label] > 1:
            summary.retried[label] = attempts[label] - 1
        progress.update(1)
        return False
    line = str(error).strip().splitlines()[-1] if str(error).strip() else type(error).__name__
    if attempts[label] <= retries:
        progress.write(f"{label}: attempt {attempts[label]} failed ({type(error).__name__}: {line}); retrying")
        return True
    _record_failure(unit, attempts[label], error, trace)
    summary.failed[label] = f"{type(error).__name__}: {line}"
    progress.failed += 1
    progress.write(f"{label}: failed after {attempts[label]} attempts ({type(error).__name__}: {line}); recorded in "
                   f"{unit.paths.dir / FAILURE_FILE}")
    progress.update(1)
    return False


def _run_local(todo: list[Unit], results_root: Path, device: str, workers: int | None, retries: int,
               address: str | None, summary: SweepSummary, progress: _Progress) -> None:
    if address:
        raise ConfigError("--address is for the ray executor (the local executor uses this machine's cores)")
    workers = workers or default_workers(len(todo))
    queue = progress_queue()
    attempts = {u.label: 0 for u in todo}

    def drain() -> None:  # worker log lines, shown above the bar; step progress is not needed here
        while not queue.empty():
            item = queue.get_nowait()
            if item and item[0] == "log":
                progress.write(item[1])

    with guarded_pool(workers, queue) as pool:
        pending: dict[Any, Unit] = {}
        deferred: list[tuple[float, Unit]] = []  # (when to try again, unit): seeds another process is training
        told: list[Unit] = []  # busy seeds already reported

        def submit(unit: Unit, wait_if_running: bool = False) -> None:
            attempts[unit.label] += 1
            module = ALGORITHMS.get(unit.algorithm).__module__
            future = pool.submit(seed_job, unit.algorithm, module, unit.task, unit.seed, unit.resolved,
                                 results_root, device, wait_if_running)
            pending[future] = unit

        for unit in todo:
            submit(unit)
        progress.running = min(workers, len(pending))
        progress.update()
        while pending or deferred:
            done, _ = wait(list(pending), timeout=1.0, return_when=FIRST_COMPLETED)
            drain()
            for future in done:
                unit = pending.pop(future)
                error = future.exception()
                if isinstance(error, SeedBusy):  # another sweep trains it: do the others first, then come back
                    attempts[unit.label] -= 1
                    if all(u != unit for u in told):
                        told.append(unit)
                        progress.write(f"{unit.label}: running in another process"
                                       f"{f' (pid {error.pid})' if error.pid else ''}; coming back to it later")
                    deferred.append((time.monotonic() + BUSY_RETRY_SECONDS, unit))
                    continue
                trace = "".join(traceback.format_exception(error)) if error else ""
                if _finish(unit, attempts, retries, error, trace, summary, progress):
                    submit(unit)
            # a deferred seed is tried again when its time comes; once nothing else is left it waits for the lock
            # (blocking in one worker), so the sweep still ends with every seed complete
            block = not pending
            ready = [u for when, u in deferred if when <= time.monotonic() or block]
            deferred = [(when, u) for when, u in deferred if all(u is not r for r in ready)]
            for unit in ready:
                submit(unit, wait_if_running=block)
            progress.running = min(workers, len(pending))
            progress.update()
        drain()


def ray_unit(algorithm: str, algo_module: str, task: Task, seed: int, resolved: ResolvedConfig, results_root: str,
             device: str) -> dict[str, Any]:
    """One seed inside a Ray worker: the same call as a local worker's, minus the progress channel."""
    importlib.import_module(algo_module)
    return run_seed(algorithm, task, seed, resolved, Path(results_root), device, show_bar=False)


def _worker_pythonpath() -> str:
    """This process's import path for local Ray workers (so plugin modules import there too), minus folders that
    hold a ``marlbench`` source tree other than the one imported here: a repository checkout on the path would
    shadow an installed marlbench, whose subpackages (algorithms, baselines, analysis) live in other folders of
    the checkout."""
    home = Path(marlbench.__file__).resolve().parent.parent
    keep = [p for p in sys.path if p and (Path(p).resolve() == home or not (Path(p) / "marlbench").is_dir())]
    return os.pathsep.join(keep)


def _run_ray(todo: list[Unit], results_root: Path, device: str, workers: int | None, retries: int,
             address: str | None, summary: SweepSummary, progress: _Progress) -> None:
    try:
        import ray
    except ImportError:
        raise UnavailableError("the ray executor needs Ray: pip install 'marlbench-suite[ray]' (or use --executor "
                               "local)") from None
    started_here = not ray.is_initialized()
    if started_here:
        if address:
            ray.init(address=address, log_to_driver=False)
        else:  # a local cluster: its workers import plugins from this process's path
            env = {k: v for k, v in os.environ.items() if k.startswith("MARLBENCH_")}
            env["PYTHONPATH"] = _worker_pythonpath()
            # Ray puts the driver's working directory on its workers' import path: a repository checkout there
            # would shadow the installed package, so the cluster starts from a neutral directory
            cwd = os.getcwd()
            os.chdir(tempfile.gettempdir())
            try:
                ray.init(num_cpus=workers or default_workers(len(todo)), include_dashboard=False,
                         log_to_driver=False, runtime_env={"env_vars": env})
            finally:
                os.chdir(cwd)
    gpus = 1 if str(device).startswith("cuda") else 0
    remote = ray.remote(num_cpus=1, num_gpus=gpus, max_retries=0)(ray_unit)
    attempts = {u.label: 0 for u in todo}
    pending = {}

    def submit(unit: Unit) -> None:
        attempts[unit.label] += 1
        module = ALGORITHMS.get(unit.algorithm).__module__
        ref = remote.options(name=unit.label.replace(" ", "-")).remote(
            unit.algorithm, module, unit.task, unit.seed, unit.resolved, str(Path(results_root).resolve()), device)
        pending[ref] = unit

    try:
        for unit in todo:
            submit(unit)
        slots = int(ray.available_resources().get("CPU", 1)) or 1
        while pending:
            progress.running = min(slots, len(pending))
            progress.update()
            done, _ = ray.wait(list(pending), num_returns=1, timeout=1.0)
            for ref in done:
                unit = pending.pop(ref)
                error, trace = None, ""
                try:
                    ray.get(ref)
                except ray.exceptions.RayTaskError as err:
                    cause = err.as_instanceof_cause()
                    error, trace = cause, str(err)
                except ray.exceptions.RayError as err:  # a worker died (killed, out of memory)
                    error, trace = err, str(err)
                if _finish(unit, attempts, retries, error, trace, summary, progress):
                    submit(unit)
    except BaseException:
        for ref in pending:
            ray.cancel(ref, force=True)
        raise
    finally:
        if started_here:
            ray.shutdown()


def describe_plan(suite: Suite, plan: Plan, results_root: Path | None = None) -> list[str]:
    """`--dry-run`: one line per (algorithm, configuration, task) with the status of its seeds (a tuning grid's
    values are named, e.g. ``macflow alpha=0.3``), then what cannot run here, then the estimated cost of what is
    left (from the completed records under ``results_root``, see ``estimate_seconds``)."""
    pairs = len({(u.name, u.task.name) for u in plan.units})
    lines = [f"suite {suite.name} ({suite.profile} profile{f', {suite.steps} steps' if suite.steps else ''}): "
             f"{pairs} algorithm/task pairs, {len(plan.units)} seeds"]
    groups: dict[tuple[str, str, str | None], list[Unit]] = {}
    for unit in plan.units:
        groups.setdefault((unit.name, unit.task.name, unit.run_id), []).append(unit)
    configurations = Counter((algo, task) for algo, task, _ in groups)
    several = {pair for pair, n in configurations.items() if n > 1}
    names = {key: _display(units[0], key[:2] in several) for key, units in groups.items()}
    counts: dict[str, int] = {}
    width = max([14] + [len(name) for name in names.values()])
    for key, units in groups.items():
        states = [u.status() if u.paths is not None else "no data yet" for u in units]
        for s in states:
            counts[s] = counts.get(s, 0) + 1
        detail = ", ".join(f"{u.seed}:{s}" for u, s in zip(units, states))
        rid = units[0].run_id or "(run id after the dataset is generated)"
        lines.append(f"  {names[key]:<{width}} {key[1]:<32} {rid}  seeds {detail}")
    lines.append("totals: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    lines += [f"skipped: {line}" for line in plan.skipped]
    if results_root is not None:
        lines.append(describe_cost(plan, results_root))
    return lines


def _display(unit: Unit, with_grid: bool) -> str:
    """The unit's algorithm, with its tuning-grid values when one (algorithm, task) has several configurations."""
    if not with_grid:
        return unit.name
    keys = ALGORITHMS.get(unit.algorithm).Config.tuning_grid or {}
    values = " ".join(f"{k}={getattr(unit.resolved.algorithm, k)}" for k in keys)
    return f"{unit.name} {values}".strip()


def _record_seconds(final: dict) -> float | None:
    """A record's cost: training plus final-evaluation seconds (curve evaluations and the latency measurement,
    usually seconds, are not counted)."""
    if not isinstance(final.get("train_seconds"), (int, float)):
        return None
    return float(final["train_seconds"]) + float(final.get("eval_seconds") or 0.0)


def estimate_seconds(plan: Plan, results_root: Path) -> tuple[float, int, int]:
    """(estimated seconds, seeds estimated, seeds without an estimate) for the plan's units that are not complete.
    Each is priced at the median cost of the completed records under ``results_root`` of the same algorithm
    (variant included), task and step budget, else of the same algorithm, benchmark and budget; a unit with
    neither has no estimate. Seconds are single-core: divide by the workers for wall-clock time."""
    by_task: dict[tuple, list[float]] = {}
    by_benchmark: dict[tuple, list[float]] = {}
    for final_path in Path(results_root).rglob("seed_*/final.json"):
        try:
            record = json.loads(final_path.read_text())
        except (OSError, ValueError):
            continue
        seconds = _record_seconds(record)
        if seconds is None:
            continue
        name = variant_name(record.get("algorithm", ""), (record.get("config") or {}).get("variant"))
        by_task.setdefault((name, record.get("task"), record.get("steps")), []).append(seconds)
        by_benchmark.setdefault((name, record.get("benchmark"), record.get("steps")), []).append(seconds)
    total, known, unknown = 0.0, 0, 0
    for unit in plan.units:
        if unit.status() == "complete":
            continue
        steps = unit.resolved.protocol.steps
        samples = by_task.get((unit.name, unit.task.name, steps)) or \
            by_benchmark.get((unit.name, unit.task.benchmark, steps))
        if samples:
            total += statistics.median(samples)
            known += 1
        else:
            unknown += 1
    return total, known, unknown


def describe_cost(plan: Plan, results_root: Path) -> str:
    seconds, known, unknown = estimate_seconds(plan, results_root)
    if not known and not unknown:
        return "cost: nothing left to run"
    if not known:
        return (f"cost: unknown: none of the {unknown} seeds left has a completed record of the same algorithm, task "
                f"or benchmark, and budget under {results_root} to be priced from")
    text = (f"cost: about {seconds / 3600:.1f} core-hours for {known} of the {known + unknown} seeds left (median "
            f"train + final-evaluation time of completed records under {results_root} with the same algorithm, "
            f"task or benchmark, and budget)")
    if unknown:
        text += f"; {unknown} seeds have no such record to estimate from"
    return text

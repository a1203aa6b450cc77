"""Run (algorithm, task, seed) jobs: in this process, or one single-threaded process per core.

Nothing in an algorithm knows which executor runs it; every job writes only its own run directory, so
completed seeds are skipped and interrupted ones resume whichever executor runs them next.
"""
from __future__ import annotations

import importlib
import multiprocessing as mp
import os
import threading
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from marlbench.config import ResolvedConfig
from marlbench.protocol import run_seed
from marlbench.registry import ALGORITHMS
from marlbench.tasks import Task, get_task


def default_workers(n_jobs: int) -> int:
    return max(1, min(n_jobs, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()))


def _job(algorithm: str, algo_module: str, task: Task, seed: int, resolved: ResolvedConfig, results_root: Path,
         device: str, queue) -> dict[str, Any]:
    """One seed in a spawned worker. The task arrives pickled; the algorithm registers when its module is imported
    (built-in or plugin alike), so the worker needs no catalogue."""
    importlib.import_module(algo_module)

    def progress(step: int) -> None:
        queue.put((seed, step))

    return run_seed(algorithm, task, seed, resolved, results_root, device, progress=progress, show_bar=False)


def run_local(
    algorithm: str,
    task: Task | str,
    seeds: list[int],
    resolved: ResolvedConfig,
    results_root: Path,
    device: str = "cpu",
    workers: int | None = None,
    show_progress: bool = True,
) -> list[dict[str, Any]]:
    """Run every seed and return the final records in seed order. ``task`` is a task object or a registered name;
    workers receive the object itself (tasks pickle), so tasks bound to a user's file need no registry there."""
    task = get_task(task) if isinstance(task, str) else task
    algo_module = ALGORITHMS.get(algorithm).__module__
    workers = default_workers(len(seeds)) if workers is None else workers
    if workers <= 1 or len(seeds) == 1:
        return [run_seed(algorithm, task, s, resolved, results_root, device, show_bar=show_progress) for s in seeds]

    steps = resolved.protocol.steps
    ctx = mp.get_context("spawn")  # fork after torch has started threads can deadlock
    with ctx.Manager() as manager:
        queue = manager.Queue()
        bar = tqdm(total=steps * len(seeds), desc=f"{algorithm} {task.name} {len(seeds)} seeds x {workers} workers",
                   unit="step", dynamic_ncols=True, disable=not show_progress, mininterval=1.0)
        done_steps = {s: 0 for s in seeds}

        def pump() -> None:
            while True:
                item = queue.get()
                if item is None:
                    return
                seed, step = item
                bar.update(step - done_steps[seed])
                done_steps[seed] = step

        pumper = threading.Thread(target=pump, daemon=True)
        pumper.start()
        try:
            with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
                futures = [pool.submit(_job, algorithm, algo_module, task, s, resolved, results_root, device, queue)
                           for s in seeds]
                records = [f.result() for f in futures]
        finally:
            queue.put(None)
            pumper.join(timeout=5)
            bar.close()
    return records

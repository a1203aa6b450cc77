"""Run (algorithm, task, seed) jobs: in this process, or one single-threaded process per core.

Nothing in an algorithm knows which executor runs it; every job writes only its own run directory, so completed
seeds are skipped and interrupted ones resume whichever executor runs them next. Safety:

- worker processes die with the parent, however it ends (SIGKILL included): on Linux the kernel sends them
  SIGKILL when the parent dies (``PR_SET_PDEATHSIG``); elsewhere a watchdog thread polls the parent's pid;
- if the parent is interrupted (Ctrl-C, SIGTERM), it kills its workers before it exits;
- each seed's directory is locked while it trains (``results.seed_lock``), so two identical commands never train
  one seed twice.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import importlib
import multiprocessing as mp
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from marlbench.config import ResolvedConfig
from marlbench.errors import ConfigError
from marlbench.protocol import completed, run_seed, seed_paths
from marlbench.registry import ALGORITHMS
from marlbench.tasks import Task, get_task

PR_SET_PDEATHSIG = 1  # linux/prctl.h
_progress_queue = None  # a worker's channel to the parent: (seed, step) progress and ("log", line) messages


def default_workers(n_jobs: int) -> int:
    return max(1, min(n_jobs, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()))


def _die_with_parent(parent_pid: int) -> None:
    """Make this process exit when ``parent_pid`` does: the kernel's parent-death signal on Linux, else a
    watchdog thread. Checked once right away, in case the parent died before the signal was armed."""
    armed = False
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        armed = libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) == 0
    if os.getppid() != parent_pid:
        os._exit(1)
    if not armed:  # pragma: no cover - macOS, Windows

        def watch() -> None:
            while os.getppid() == parent_pid:
                time.sleep(1.0)
            os._exit(1)

        threading.Thread(target=watch, daemon=True).start()


def _init_worker(queue, parent_pid: int) -> None:
    global _progress_queue
    _die_with_parent(parent_pid)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and kills its workers
    _progress_queue = queue


def seed_job(algorithm: str, algo_module: str, task: Task, seed: int, resolved: ResolvedConfig, results_root: Path,
             device: str, wait_if_running: bool = True) -> dict[str, Any]:
    """One seed in a spawned worker. The task arrives pickled; the algorithm registers when its module is imported
    (built-in or plugin alike), so the worker needs no catalogue."""
    importlib.import_module(algo_module)
    queue = _progress_queue
    return run_seed(algorithm, task, seed, resolved, results_root, device, show_bar=False,
                    progress=lambda step: queue.put((seed, step)), log=lambda line: queue.put(("log", line)),
                    wait_if_running=wait_if_running)


def _say(line: str) -> None:
    tqdm.write(line, file=sys.stderr)


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
    workers receive the object itself (tasks pickle), so tasks bound to a user's file need no registry there.
    Seeds already complete are reported and skipped here, without starting a worker for them."""
    if workers is not None and workers < 1:
        raise ConfigError(f"--workers must be at least 1, got {workers}")
    task = get_task(task) if isinstance(task, str) else task
    algo_cls = ALGORITHMS.get(algorithm)
    records: dict[int, dict[str, Any]] = {}
    for seed in seeds:
        record = completed(seed_paths(algo_cls, task, resolved, results_root, seed)[1], seed, _say)
        if record is not None:
            records[seed] = record
    todo = [s for s in seeds if s not in records]
    workers = default_workers(len(todo)) if workers is None else workers
    if len(todo) <= 1 or workers == 1:
        for s in todo:
            records[s] = run_seed(algorithm, task, s, resolved, results_root, device, show_bar=show_progress,
                                  log=_say)
    else:
        for s, record in zip(todo, _run_in_workers(algorithm, task, todo, resolved, results_root, device, workers,
                                                   show_progress)):
            records[s] = record
    return [records[s] for s in seeds]


def _run_in_workers(algorithm: str, task: Task, seeds: list[int], resolved: ResolvedConfig, results_root: Path,
                    device: str, workers: int, show_progress: bool) -> list[dict[str, Any]]:
    steps = resolved.protocol.steps
    queue = progress_queue()
    bar = tqdm(total=steps * len(seeds), desc=f"{algorithm} {task.name} {len(seeds)} seeds x {workers} workers",
               unit="step", dynamic_ncols=True, disable=not show_progress, mininterval=1.0)
    done_steps = {s: 0 for s in seeds}

    def pump() -> None:
        while True:
            item = queue.get()
            if item is None:
                return
            if item[0] == "log":
                _say(item[1])
                continue
            seed, step = item
            bar.update(step - done_steps[seed])
            done_steps[seed] = step

    pumper = threading.Thread(target=pump, daemon=True)
    pumper.start()
    algo_module = ALGORITHMS.get(algorithm).__module__
    try:
        with guarded_pool(workers, queue) as pool:
            futures = [pool.submit(seed_job, algorithm, algo_module, task, s, resolved, results_root, device)
                       for s in seeds]
            records = [f.result() for f in futures]
    finally:
        queue.put(None)
        pumper.join(timeout=5)
        bar.close()
    return records


def progress_queue():
    """The workers' channel to the parent (progress and log lines), from the spawn context the pool uses."""
    return mp.get_context("spawn").Queue()


@contextmanager
def guarded_pool(workers: int, queue) -> Iterator[ProcessPoolExecutor]:
    """A pool of spawned worker processes that die with this process (SIGKILL included) and are killed when the
    block is left by an exception, Ctrl-C or SIGTERM; their seeds resume from their checkpoints next time."""
    ctx = mp.get_context("spawn")  # fork after torch has started threads can deadlock
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_init_worker,
                               initargs=(queue, os.getpid()))
    previous_term = signal.signal(signal.SIGTERM, _raise_interrupt) if _main_thread() else None
    try:
        yield pool
    except BaseException:
        for child in mp.active_children():
            child.kill()
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    finally:
        if previous_term is not None:
            signal.signal(signal.SIGTERM, previous_term)
    pool.shutdown()


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def _raise_interrupt(signum, frame) -> None:
    """SIGTERM to the parent: stop like Ctrl-C, so the workers are killed and the command says how to resume."""
    raise KeyboardInterrupt

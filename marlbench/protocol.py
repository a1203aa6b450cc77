"""The protocol: train, evaluate, time, checkpoint and resume; identical for every algorithm.

- A fixed budget of gradient steps. Learning-curve evaluations every ``eval_every`` steps.
- The reported score is the FINAL policy's mean return over ``eval_episodes`` fixed episodes (never the best
  evaluation seen). Evaluation episodes are seeded by the run seed only, so every algorithm meets the same ones.
  Where the environment reports battles (a ``won`` attribute: SMAX, StarCraft II), every evaluation also records
  its win rate (``win_rate``; None in final.json and absent from curve lines elsewhere).
- Inference latency: wall time of one joint action (all agents, batch 1), median over ``latency_calls`` calls
  after ``latency_warmup`` calls (fewer for samplers too slow for ``latency_budget_seconds``), measured in the
  same run. Training wall-clock counts gradient steps only.
- Checkpoints every ``checkpoint_every`` steps hold every random state, so a run killed at any point and re-run
  with the same command finishes with the same final record as an uninterrupted run (timings aside).
"""
from __future__ import annotations

import json
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from marlbench.algorithm import Algorithm
from marlbench.config import ResolvedConfig
from marlbench.data.formats.native import load_native, read_native_metadata, save_native
from marlbench.errors import ConfigError
from marlbench.paths import require_writable
from marlbench.registry import ALGORITHMS
from marlbench.results import (
    FINAL_SCHEMA_VERSION,
    RunPaths,
    append_metrics,
    atomic_torch_save,
    atomic_write_json,
    loaded_versions,
    machine,
    run_id,
    seed_lock,
    truncate_jsonl,
)
from marlbench.seeding import seed_everything
from marlbench.tasks import Task, get_task

EVAL_SEED_OFFSET = 1_000_003  # evaluation episodes never share a seed with training randomness
DIAGNOSTIC_SEED_OFFSET = 2_000_003  # nor do the diagnostic batches



def ensure_dataset(task: Task, log: Callable[[str], None] = print) -> Path:
    """Return the task's dataset file, generating it first if it is missing or damaged and the task can generate
    it (a damaged file of a task that cannot generate fails in require_runnable, naming the damage)."""
    task.require_runnable()
    path = task.dataset_path
    damage = task.cache_damage()
    if not path.exists() or (damage is not None and task.generate is not None):
        require_writable(path.parent)  # before generating, which can take minutes
        if damage is not None:
            log(f"cached dataset {path} is damaged: {damage}; regenerating it")
        size = f"{task.default_episodes} episodes" if task.default_episodes else "its default size"
        log(f"generating dataset {task.name} ({size}) -> {path}")
        t0 = time.perf_counter()
        dataset = task.generate(task.default_episodes, 0)
        save_native(dataset, path)
        log(f"  {dataset.n_transitions} transitions, checksum {dataset.checksum()[:12]}, "
            f"{time.perf_counter() - t0:.1f}s")
    return path


def resolve_device(name: str) -> torch.device:
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda was requested but torch reports no CUDA device; use --device cpu")
    return device


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@torch.no_grad()
def evaluate_episodes(algo: Algorithm, task: Task, episodes: int, seed: int) -> tuple[np.ndarray, np.ndarray | None]:
    """(returns, won) of ``episodes`` episodes played together in one batched environment (one act() per step).

    ``won`` [episodes] bool says which episodes ended in a won battle, read once from the environment's ``won``
    attribute after the episode loop (SMAX and StarCraft II report it; ended episodes keep their flags until the
    next reset); None for environments without one."""
    env = task.make_env(episodes)
    devices = [algo.device] if algo.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):  # policy noise must not disturb the training RNG stream
        torch.manual_seed(seed)
        step = env.reset(seed)
        if hasattr(algo, "start_episodes"):  # any object with act() can be evaluated (e.g. a scripted policy)
            algo.start_episodes(episodes)
        returns = np.zeros(episodes)
        done = np.zeros(episodes, dtype=bool)
        for _ in range(task.spec.episode_limit):
            legals = None if step.legals is None else torch.as_tensor(step.legals, device=algo.device)
            actions = algo.act(torch.as_tensor(step.obs, device=algo.device), legals)
            step = env.step(actions.cpu().numpy())
            returns += step.rewards.mean(-1)  # the task's return: sum over steps of the mean over agents
            done |= step.terminated | step.truncated
            if done.all():
                break
    won = getattr(env, "won", None)
    return returns, (None if won is None else np.array(won, dtype=bool).reshape(episodes))


def evaluate(algo: Algorithm, task: Task, episodes: int, seed: int) -> np.ndarray:
    """Returns of ``episodes`` episodes played together in one batched environment (one act() per step)."""
    return evaluate_episodes(algo, task, episodes, seed)[0]


def win_rate(won: np.ndarray | None) -> float | None:
    """The fraction of won episodes, None where the environment does not report wins."""
    return None if won is None else float(np.mean(won))


def timing_plan(first_seconds: float, calls: int, warmup: int, budget_seconds: float,
                min_calls: int = 5) -> tuple[int, int]:
    """(timed calls, warm-up calls) after one untimed call that took ``first_seconds``: as many as asked, cut for a
    slow call so that timing takes about ``budget_seconds`` and warm-up half of it, with at least ``min_calls``
    timed calls and one warm-up call (when any was asked for). Shared by the runs' latency and `bench inference`."""
    first = max(first_seconds, 1e-7)
    timed = min(calls, max(min_calls, int(budget_seconds / first)))
    return timed, min(warmup, max(1, int(budget_seconds / (2 * first))))


@torch.no_grad()
def inference_latency_ms(algo: Algorithm, task: Task, calls: int, warmup: int,
                         budget_seconds: float = float("inf")) -> list[float]:
    """Per-call wall time (ms) of one joint action at batch 1, including the host/device transfer.

    A slow sampler (a K-step diffusion chain can take a second per call) gets fewer calls: the first, untimed call
    sizes the rest so that warm-up and timing take about ``budget_seconds``, with at least one warm-up call and
    5 timed ones. Fast policies are never cut (0.6 ms x 1,100 calls is under a second)."""
    step = task.make_env(1).reset(0)
    obs = torch.as_tensor(step.obs).to(algo.device)
    legals = None if step.legals is None else torch.as_tensor(step.legals).to(algo.device)

    def timed_call() -> float:
        t0 = time.perf_counter()
        algo.act(obs, legals).cpu()
        return (time.perf_counter() - t0) * 1e3

    calls, warmup = timing_plan(timed_call() / 1e3, calls, warmup, budget_seconds)  # the sizing call is untimed
    for _ in range(warmup - 1):  # ... and counts as one warm-up call
        timed_call()
    return [timed_call() for _ in range(calls)]


def measure_mechanism(algo: Algorithm, sampler: Any, seed: int, step: int) -> dict[str, float]:
    """``algo.diagnostics`` on a fresh batch that no update used, drawn and evaluated under a stream derived from
    (seed, step) alone: the training RNG is untouched and a resumed run logs the same numbers."""
    derived = DIAGNOSTIC_SEED_OFFSET + seed * 10_000_019 + step
    sampler.generator.manual_seed(derived)
    devices = [algo.device] if algo.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(derived)
        return {k: float(v) for k, v in algo.diagnostics(sampler.sample()).items()}


def _score(task: Task, returns: np.ndarray, won: np.ndarray | None = None) -> dict[str, Any]:
    """The scores of one evaluation: return, normalised score and, where the environment reports wins (``won`` not
    None), the win rate; without wins the key is left out, so such curve lines read as before."""
    normalised = [task.spec.normalise(float(r)) for r in returns]
    has_norm = normalised[0] is not None
    score = {
        "return_mean": float(np.mean(returns)),
        "return_std": float(np.std(returns)),
        "normalised_score": float(np.mean(normalised)) if has_norm else None,
        "normalised_std": float(np.std(normalised)) if has_norm else None,
    }
    if won is not None:
        score["win_rate"] = win_rate(won)
    return score


def seed_paths(algo_cls: type[Algorithm], task: Task, resolved: ResolvedConfig, results_root: Path,
               seed: int) -> tuple[str, RunPaths]:
    """The run id and directory of one seed. The dataset's stored checksum (attributes only) is part of the id:
    new data, new run."""
    data_checksum = read_native_metadata(task.dataset_path, task.name)["checksum"]
    rid = run_id(algo_cls.name, task.name, resolved.to_dict(), data_checksum)
    return rid, RunPaths.make(results_root, task.name, algo_cls.name, rid, seed)


def completed(paths: RunPaths, seed: int, log: Callable[[str], None] | None = None) -> dict[str, Any] | None:
    """The record of a seed that already finished (saying so in one line), None if it has not."""
    if not paths.final.exists():
        return None
    if log:
        log(f"seed {seed}: complete, skipped")
    return {**json.loads(paths.final.read_text()), "skipped": True}


def run_seed(
    algorithm: str,
    task: Task | str,
    seed: int,
    resolved: ResolvedConfig,
    results_root: Path,
    device: str = "cpu",
    progress: Callable[[int], None] | None = None,
    show_bar: bool = True,
    log: Callable[[str], None] | None = None,
    wait_if_running: bool = True,
) -> dict[str, Any]:
    """Train and evaluate one seed; resume from its checkpoint or return its record if already complete.
    ``task`` is a task object (what executors send to workers) or a registered name. The seed's directory is
    locked while it trains: an identical command started meanwhile waits for it instead of training it again
    (``wait_if_running=False``: raises ``results.SeedBusy`` instead, so a sweep can do other seeds first).
    ``log`` receives one line when the seed is skipped, resumed or waited for."""
    task, algo_cls = get_task(task) if isinstance(task, str) else task, ALGORITHMS.get(algorithm)
    rid, paths = seed_paths(algo_cls, task, resolved, results_root, seed)

    def waiting(pid: int | None) -> None:
        if log:
            log(f"seed {seed}: running in another process{f' (pid {pid})' if pid else ''}; waiting for it")

    with seed_lock(paths.dir, on_wait=waiting, wait=wait_if_running):
        record = completed(paths, seed, log)
        if record is not None:
            if progress:
                progress(resolved.protocol.steps)
            return record
        return _train_seed(algo_cls, task, seed, resolved, rid, paths, device, progress, show_bar, log)


def _train_seed(algo_cls: type[Algorithm], task: Task, seed: int, resolved: ResolvedConfig, rid: str,
                paths: RunPaths, device: str, progress: Callable[[int], None] | None, show_bar: bool,
                log: Callable[[str], None] | None) -> dict[str, Any]:
    proto, config = resolved.protocol, resolved.to_dict()
    torch.set_num_threads(proto.threads)
    dev = resolve_device(device)
    dataset = load_native(task.dataset_path, task.spec)
    seed_everything(seed)
    algo = algo_cls(task.spec, resolved.algorithm, dev)
    algo.prepare(dataset)
    sampler = algo_cls.make_sampler(dataset, resolved.algorithm, dev, seed)
    diagnostic_sampler = (algo_cls.make_sampler(dataset, resolved.algorithm, dev, batch_size=proto.diagnostic_batch)
                          if proto.diagnostic_batch else None)
    dataset_info = {
        "path": str(task.dataset_path), "checksum": dataset.checksum(), "transitions": dataset.n_transitions,
        "episodes": dataset.n_episodes, "source": dataset.metadata.get("source"),
        "quality": dataset.metadata.get("quality"), "return_mean": float(dataset.episode_returns().mean()),
    }

    start, train_seconds, resumes = 0, 0.0, []
    if paths.checkpoint.exists():
        ckpt = torch.load(paths.checkpoint, map_location=dev, weights_only=True)
        algo.load_checkpoint_state(ckpt["algorithm"])
        sampler.load_state_dict(ckpt["sampler"])
        torch.set_rng_state(ckpt["torch_rng"])
        if dev.type == "cuda" and ckpt.get("cuda_rng") is not None:
            torch.cuda.set_rng_state(ckpt["cuda_rng"], dev)
        start, train_seconds, resumes = ckpt["step"], ckpt["train_seconds"], ckpt["resumes"] + [ckpt["step"]]
        truncate_jsonl(paths.metrics, start)
        if log:
            log(f"seed {seed}: resuming at step {start}")
        if progress:
            progress(start)
    else:
        paths.metrics.unlink(missing_ok=True)
        atomic_write_json(paths.config, {
            "run_id": rid, "algorithm": algo_cls.name, "task": task.name, "seed": seed,
            "profile": resolved.profile, "config": config,
            "spec": task.spec.to_dict(), "dataset": dataset_info, "device": str(dev), "versions": loaded_versions(),
        })

    def save_checkpoint(step: int) -> None:
        atomic_torch_save({
            "step": step, "train_seconds": train_seconds, "resumes": resumes,
            "algorithm": algo.checkpoint_state(), "sampler": sampler.state_dict(),
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state(dev) if dev.type == "cuda" else None,
        }, paths.checkpoint)

    eval_seed = EVAL_SEED_OFFSET + seed
    bar = None
    if show_bar:
        from tqdm.auto import tqdm

        bar = tqdm(total=proto.steps, initial=start, desc=f"{algo_cls.name} {task.name} seed {seed}",
                   unit="step", dynamic_ncols=True, mininterval=1.0)
    segment_start = time.perf_counter()
    for step in range(start + 1, proto.steps + 1):
        losses = algo.update(sampler.sample())
        boundary = step % proto.log_every == 0 or step % proto.eval_every == 0 or step % proto.checkpoint_every == 0
        if not boundary:
            continue
        _sync(dev)
        train_seconds += time.perf_counter() - segment_start
        if step % proto.log_every == 0:
            mechanism = measure_mechanism(algo, diagnostic_sampler, seed, step) if diagnostic_sampler else {}
            append_metrics(paths.metrics, {"step": step, "train_seconds": round(train_seconds, 3),
                                           **{k: float(v) for k, v in losses.items()}, **mechanism})
            if bar is not None:
                bar.update(step - bar.n)
            if progress:
                progress(step)
        if step % proto.eval_every == 0 and step < proto.steps:  # the final step gets the full evaluation
            t0 = time.perf_counter()
            returns, won = evaluate_episodes(algo, task, proto.curve_eval_episodes, eval_seed)
            append_metrics(paths.metrics, {"step": step, "curve": True, **_score(task, returns, won),
                                           "eval_seconds": round(time.perf_counter() - t0, 3)})
        if step % proto.checkpoint_every == 0:
            save_checkpoint(step)
        segment_start = time.perf_counter()
    _sync(dev)
    train_seconds += time.perf_counter() - segment_start
    if bar is not None:
        bar.update(proto.steps - bar.n)
        bar.close()
    if start < proto.steps:
        save_checkpoint(proto.steps)

    # the final policy's mechanism, averaged over several fresh batches (never used by an update)
    final_mechanism: dict[str, float] = {}
    if diagnostic_sampler:
        draws = [measure_mechanism(algo, diagnostic_sampler, seed, proto.steps + k) for k in range(1, 5)]
        final_mechanism = {k: float(np.mean([d[k] for d in draws])) for k in draws[0]}
    t0 = time.perf_counter()
    returns, won = evaluate_episodes(algo, task, proto.eval_episodes, eval_seed)
    eval_seconds = time.perf_counter() - t0  # all episodes together, one batched act() per time step
    score = _score(task, returns, won)
    append_metrics(paths.metrics, {"step": proto.steps, "curve": True, "final": True, **score,
                                   "eval_seconds": round(eval_seconds, 3)})
    latency = inference_latency_ms(algo, task, proto.latency_calls, proto.latency_warmup,
                                   proto.latency_budget_seconds)
    q = statistics.quantiles(latency, n=4)
    record = {
        "schema_version": FINAL_SCHEMA_VERSION,
        "run_id": rid, "algorithm": algo_cls.name, "task": task.name, "benchmark": task.benchmark,
        "seed": seed, "profile": resolved.profile, "steps": proto.steps,
        **score, "win_rate": win_rate(won),  # None where the environment reports no wins
        "episodes": proto.eval_episodes, "returns": [float(r) for r in returns],
        "inference_ms": statistics.median(latency), "inference_ms_iqr": [q[0], q[2]], "inference_calls": len(latency),
        "train_seconds": train_seconds, "eval_seconds": eval_seconds, "diagnostics": final_mechanism,
        "dataset": dataset_info, "config": config, "device": str(dev), "threads": proto.threads,
        "versions": loaded_versions(), "machine": machine(), "resumed_at_steps": resumes,
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "pid": os.getpid(),
    }
    atomic_write_json(paths.final, record)
    return record

"""`marlbench bench batching`: the most that training S seeds as one batched model (population mode) can gain in
one process on this machine, measured side by side in one run.

A population of S members does the work of S separate steps in one step: every matmul gets S times the rows (in
S weight blocks), every elementwise op S times the elements, and Python, dispatch and kernel-launch costs are paid
once. One gradient step at S times the batch does the same work except that it keeps one set of weights, so its
time is a lower bound on the population's step and

    ceiling(S) = S * t(B) / t(S * B)

is an upper bound on the population's seed-steps per second relative to one member per process. A fit
``t(b) = fixed + per_sample * b`` over the measured batches gives the limit for large S, ``t(B) / (per_sample * B)``:
if most of a step's time grows with the batch, batching members cannot make it much cheaper per seed.
"""
from __future__ import annotations

import argparse
import json

import numpy as np
import torch

from marlbench.bench.train import _time_calls, machine_info
from marlbench.data.sampler import Batch
from marlbench.errors import MarlbenchError
from marlbench.registry import ALGORITHMS
from marlbench.spec import TaskSpec

SIZES = {"quick": (128, 128, 128), "paper": (512, 512, 512, 512)}
MEMBERS = (1, 2, 4, 8, 16)
SPREAD = {"agents": 3, "obs_dim": 18, "action_dim": 2}  # mpe/spread, the quick profile's default task


def random_batch(spec: TaskSpec, size: int, gen: torch.Generator) -> Batch:
    n, do, da = spec.n_agents, spec.obs_dim, spec.action_dim
    return Batch(obs=torch.randn(size, n, do, generator=gen), actions=torch.rand(size, n, da, generator=gen) * 2 - 1,
                 rewards=torch.randn(size, n, generator=gen), next_obs=torch.randn(size, n, do, generator=gen),
                 dones=(torch.rand(size, generator=gen) < 0.05).float(),
                 next_actions=torch.rand(size, n, da, generator=gen) * 2 - 1)


def time_step(algorithm: str, spec: TaskSpec, hidden: tuple[int, ...], batch_size: int, steps: int,
              warmup: int) -> dict:
    """Median milliseconds of one gradient step of ``algorithm`` at ``batch_size``."""
    cls = ALGORITHMS.get(algorithm)
    torch.manual_seed(0)
    algo = cls(spec, cls.Config(hidden_dims=hidden, batch_size=batch_size), "cpu")
    batch = random_batch(spec, batch_size, torch.Generator().manual_seed(0))
    times, info = _time_calls(lambda: algo.update(batch), steps, warmup)
    return {"median_ms": float(np.median(times)) * 1e3, "other_processes_cores": info["other_processes_cores"]}


def run(algorithms: list[str], sizes: list[str], members: tuple[int, ...], steps: int, warmup: int,
        threads: int, shape: dict) -> dict:
    torch.set_num_threads(threads)
    spec = TaskSpec("bench/batching", shape["agents"], shape["obs_dim"], "continuous", shape["action_dim"],
                    episode_limit=25)
    rows = []
    for algorithm in algorithms:
        base = ALGORITHMS.get(algorithm).Config().batch_size
        for size in sizes:
            hidden = SIZES[size]
            timed = {s: time_step(algorithm, spec, hidden, s * base, steps, warmup) for s in members}
            again = time_step(algorithm, spec, hidden, base, steps, warmup)  # drift check: the first point again
            t = {s: timed[s]["median_ms"] for s in members}
            slope, fixed = np.polyfit([s * base for s in members], [t[s] for s in members], 1)
            for s in members:
                rows.append({"algorithm": algorithm, "size": size, "members": s, "batch": s * base,
                             "median_ms": t[s], "seed_steps_per_s": s * 1e3 / t[s],
                             "ceiling": s * t[members[0]] / t[s] / members[0],
                             "other_processes_cores": timed[s]["other_processes_cores"]})
            rows[-1].update({"fit_fixed_ms": float(fixed), "fit_per_sample_ms": float(slope),
                             "limit": float(t[members[0]] / (slope * base * members[0])) if slope > 0 else None,
                             "drift": again["median_ms"] / t[members[0]] - 1.0})
    return {"benchmark": "batching", "machine": machine_info(), "task_shape": shape, "threads": threads,
            "steps": steps, "warmup": warmup, "rows": rows}


def format_report(r: dict) -> str:
    m = r["machine"]
    out = [f"population ceiling on {m['cpu']} ({m['usable_cores']} usable cores), torch {m['torch']}, "
           f"{r['threads']} thread(s); task shape {r['task_shape']}",
           f"{'algorithm':<10} {'size':<6} {'members':>7} {'batch':>6} {'ms/step':>9} {'seed-steps/s':>13} "
           f"{'ceiling':>8}"]
    for row in r["rows"]:
        out.append(f"{row['algorithm']:<10} {row['size']:<6} {row['members']:>7} {row['batch']:>6} "
                   f"{row['median_ms']:>9.1f} {row['seed_steps_per_s']:>13.1f} {row['ceiling']:>7.2f}x")
        if "fit_fixed_ms" in row:
            limit = "n/a" if row["limit"] is None else f"{row['limit']:.2f}x"
            out.append(f"{'':<10} fit: {row['fit_fixed_ms']:.1f} ms fixed + {row['fit_per_sample_ms'] * 1e3:.1f} us "
                       f"per sample; large-S limit {limit}; drift of the first point {row['drift']:+.0%}")
    out.append("ceiling = S x t(B) / t(S x B): an upper bound on population mode's gain over one member per process")
    return "\n".join(out)


def main(args: argparse.Namespace) -> int:
    algorithms = [a.strip() for a in (getattr(args, "algos", None) or "macflow,bc").split(",")]
    for name in algorithms:
        ALGORITHMS.get(name)  # unknown names list the close ones
    sizes = [s.strip() for s in (getattr(args, "sizes", None) or "quick").split(",")]
    if not set(sizes) <= set(SIZES):
        raise MarlbenchError(f"--sizes takes {', '.join(SIZES)}, got {','.join(sizes)}")
    steps = args.steps if getattr(args, "steps", None) is not None else 10
    warmup = args.warmup if getattr(args, "warmup", None) is not None else 2
    if steps < 1 or warmup < 0:
        raise MarlbenchError("bench batching needs --steps >= 1 and --warmup >= 0")
    result = run(algorithms, sizes, MEMBERS, steps, warmup, getattr(args, "threads", None) or 1, dict(SPREAD))
    print(json.dumps(result, indent=2) if getattr(args, "json", False) else format_report(result))
    return 0

"""`marlbench bench train`: speed of one MAC-Flow gradient step, its FLOPs, and a matmul calibration.

What is measured (all in one process, with ``torch.set_num_threads(threads)``):

1. **Step time.** MAC-Flow at the requested size on a synthetic continuous TaskSpec and one synthetic random Batch;
   ``algo.update(batch)`` is timed after warm-up (a full gradient step: flow loss, the two Euler chains without
   grad, the critic ensemble and its target, the actor, one backward, fused Adam, Polyak). Data sampling is not
   included.
2. **FLOPs per step**, twice: measured by ``torch.utils.flop_counter.FlopCounterMode`` over one extra update
   (forward and backward; it counts mm/addmm/bmm/baddbmm but no elementwise work such as GELU, LayerNorm, Adam or
   Polyak), and an analytic count of the matmuls the default MAC-Flow config performs (:func:`analytic_matmuls`).
3. **Calibration.** Every distinct matmul of the analytic list (forward ``baddbmm``, and the ``bmm`` of the
   input gradient and the weight gradient where gradients flow) is timed alone with the same shapes, layouts
   and thread count. Their count-weighted sum is the time the step's matmuls need at the achievable speed of
   those shapes; ``calibration GFLOP/s = FLOPs / that time``. The ratio achieved/calibration is the share of the
   step spent doing useful matmul work (the project's goal is >= 0.8). The same shapes are also timed through
   oneDNN's fp32 GEMM: on AMD CPUs torch's default (MKL) runs fp32 GEMM at about half the speed oneDNN reaches,
   so "ratio vs oneDNN" says how far the step is from what the CPU can do in fp32.

See benchmarks/README.md for how to read the numbers.
"""
from __future__ import annotations

import argparse
import gc
import json
import math
import os
import platform
import re
import statistics
import time
from collections import defaultdict
from dataclasses import dataclass

import torch

import marlbench.algorithms.macflow as macflow
from marlbench.data.sampler import Batch
from marlbench.errors import MarlbenchError
from marlbench.spec import TaskSpec

try:
    import resource
except ImportError:  # not on Windows
    resource = None

CASES = {
    "A": {"agents": 6, "obs_dim": 17, "action_dim": 1},
    "B": {"agents": 3, "obs_dim": 30, "action_dim": 9},
}
PAPER_HIDDEN = (512, 512, 512, 512)
GOAL_RATIO = 0.8
BUSY_WARNING = 0.25  # cores kept busy by other processes before the report warns


@dataclass
class BenchConfig:
    agents: int = 6
    obs_dim: int = 17
    action_dim: int = 1
    hidden: tuple[int, ...] = PAPER_HIDDEN
    batch_size: int = 64
    steps: int = 30
    warmup: int = 5
    threads: int = 1
    seed: int = 0
    case: str | None = "A"
    calibrate: bool = True
    calib_min_seconds: float = 0.05  # per distinct matmul shape; one timing repeat lasts at least this / repeats
    count_flops: bool = True
    # torch.backends.mkldnn.matmul.fp32_precision for the run (None: leave it). On CPUs without native bf16 GEMM
    # kernels "bf16" only reroutes fp32 matmuls from MKL to oneDNN; where they exist it really computes in bf16.
    # The report's matmul probe error tells which happened.
    mkldnn_fp32_precision: str | None = None


@dataclass
class MatmulOp:
    """``count`` batched matmuls [members, rows, k] @ [members, k, n] in one pass of one network."""

    part: str  # flow_loss / euler / target_critic / critic / actor / critic_on_actor
    kind: str  # fwd (baddbmm), grad_input (bmm), grad_weight (bmm)
    layer: int
    members: int
    rows: int
    k: int
    n: int
    count: int = 1

    @property
    def flops(self) -> int:
        return 2 * self.members * self.rows * self.k * self.n * self.count

    @property
    def shape_key(self) -> tuple:
        return self.kind, self.members, self.rows, self.k, self.n


# ----------------------------------------------------------------------------------------------- analytic count
def _mlp_ops(part: str, members: int, rows: int, in_dim: int, hidden: tuple[int, ...], out_dim: int, *,
             count: int = 1, weight_grad: bool = False, input_grad: bool = False) -> list[MatmulOp]:
    """Matmuls of one EnsembleMLP call: forward, and the backward matmuls autograd runs for it.

    ``weight_grad``: the parameters train (every layer gets a weight-gradient matmul; every layer but the first
    propagates a gradient to its input). ``input_grad``: the network input needs a gradient (frozen critic under
    the actor's Q term), so every layer, the first included, propagates the input gradient.
    """
    dims = [in_dim, *hidden, out_dim]
    ops = []
    for i, (k, n) in enumerate(zip(dims[:-1], dims[1:])):
        ops.append(MatmulOp(part, "fwd", i, members, rows, k, n, count))
        if weight_grad:
            ops.append(MatmulOp(part, "grad_weight", i, members, rows, k, n, count))
        if input_grad or (weight_grad and i > 0):
            ops.append(MatmulOp(part, "grad_input", i, members, rows, k, n, count))
    return ops


def analytic_matmuls(agents: int, obs_dim: int, action_dim: int, hidden: tuple[int, ...] = PAPER_HIDDEN,
                     batch_size: int = 64, flow_steps: int = 10, critic_ensemble: int = 2,
                     time_features: int = 1) -> list[MatmulOp]:
    """Every matmul of one MAC-Flow update with the default config (joint flow, shared networks with a one-hot
    agent id, flow next actions), written down from the algorithm, independently of FlopCounterMode."""
    n, do, da, b = agents, obs_dim, action_dim, batch_size
    flow_in, flow_out = n * do + n * da + time_features, n * da  # v(t, o, x) over the joint action
    agent_in = do + da + n  # (o_i, a_i or z_i, one-hot id)
    rows = b * n
    return [
        *_mlp_ops("flow_loss", 1, b, flow_in, hidden, flow_out, weight_grad=True),
        *_mlp_ops("euler", 1, 2 * b, flow_in, hidden, flow_out, count=flow_steps),  # o' and o chains together
        *_mlp_ops("target_critic", critic_ensemble, rows, agent_in, hidden, 1),
        *_mlp_ops("critic", critic_ensemble, rows, agent_in, hidden, 1, weight_grad=True),
        *_mlp_ops("actor", 1, rows, agent_in, hidden, da, weight_grad=True),
        *_mlp_ops("critic_on_actor", critic_ensemble, rows, agent_in, hidden, 1, input_grad=True),
    ]


# ---------------------------------------------------------------------------------------------------- building
def build(cfg: BenchConfig):
    """MAC-Flow (default config at the requested size), a synthetic continuous TaskSpec and a random Batch."""
    torch.manual_seed(cfg.seed)
    spec = TaskSpec("bench/synthetic", cfg.agents, cfg.obs_dim, "continuous", cfg.action_dim, episode_limit=1000)
    algo_cfg = macflow.MACFlowConfig(hidden_dims=tuple(cfg.hidden), batch_size=cfg.batch_size)
    algo = macflow.MACFlow(spec, algo_cfg, "cpu")
    b, n = cfg.batch_size, cfg.agents
    batch = Batch(
        obs=torch.randn(b, n, cfg.obs_dim),
        actions=torch.rand(b, n, cfg.action_dim) * 2 - 1,
        rewards=torch.randn(b, n),
        next_obs=torch.randn(b, n, cfg.obs_dim),
        dones=(torch.rand(b) < 0.05).float(),
    )
    return algo, algo_cfg, batch


# ------------------------------------------------------------------------------------------------------ timing
def _busy_seconds() -> float | None:
    """CPU seconds all processes on the machine have used (from /proc/stat), or None where unavailable."""
    try:
        with open("/proc/stat") as f:
            fields = [int(v) for v in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def _own_seconds() -> float:
    if resource is None:
        return time.process_time()
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _page_faults() -> int:
    return 0 if resource is None else resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def _time_calls(fn, steps: int, warmup: int) -> tuple[list[float], dict]:
    """Wall seconds of each timed call, and what else happened meanwhile: this process's CPU time and page
    faults, and how many cores other processes kept busy (a loaded machine makes the timings meaningless)."""
    for _ in range(warmup):
        fn()
    gc.collect()
    was_enabled = gc.isenabled()
    gc.disable()
    busy0, own0, faults0 = _busy_seconds(), _own_seconds(), _page_faults()
    start = time.perf_counter()
    try:
        times = []
        for _ in range(steps):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
    finally:
        if was_enabled:
            gc.enable()
    wall = time.perf_counter() - start
    busy1, own1 = _busy_seconds(), _own_seconds()
    own = own1 - own0
    info = {"cpu_ms_per_step": own / steps * 1e3,
            "page_faults_per_step": (_page_faults() - faults0) / steps,
            "other_processes_cores": None if busy0 is None else max(0.0, (busy1 - busy0 - own) / wall)}
    return times, info


def _time_op(fn, min_seconds: float, repeats: int = 5) -> float:
    """Median seconds per call of ``fn`` over ``repeats`` timing runs, each long enough to be measurable."""
    fn()
    t0 = time.perf_counter()
    fn()
    once = max(time.perf_counter() - t0, 1e-7)
    inner = max(1, int(min_seconds / repeats / once))
    samples = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(inner):
            fn()
        samples.append((time.perf_counter() - t0) / inner)
    return statistics.median(samples)


def onednn_available() -> bool:
    """Whether torch exposes oneDNN's fp32 GEMM (``mkldnn::_linear_pointwise``), used as a second calibration."""
    try:
        torch.ops.mkldnn._linear_pointwise(torch.ones(2, 2), torch.ones(2, 2), None, "none", [], "")
        return torch.backends.mkldnn.is_available()
    except (AttributeError, RuntimeError, NotImplementedError):
        return False


def _matmul_fn(kind: str, members: int, rows: int, k: int, n: int, backend: str = "aten"):
    """One pass's matmul. ``aten``: what autograd runs for EnsembleLinear (baddbmm forward; bmm with transposed
    views for the input and weight gradients), so it goes wherever torch dispatches fp32 matmuls (MKL by default).
    ``onednn``: the same products through oneDNN's fp32 GEMM, one call per member, same layouts."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(members, rows, k, generator=g)
    w = torch.randn(members, k, n, generator=g)
    bias = torch.randn(members, 1, n, generator=g)
    grad = torch.randn(members, rows, n, generator=g)
    if backend == "onednn":
        lp = torch.ops.mkldnn._linear_pointwise  # lp(A, B, bias) = A @ B^T + bias
        args = {
            "fwd": [(x[i], w[i].t(), bias[i, 0]) for i in range(members)],
            "grad_input": [(grad[i], w[i], None) for i in range(members)],
            "grad_weight": [(x[i].t(), grad[i].t(), None) for i in range(members)],
        }[kind]
        return lambda: [lp(a, b, c, "none", [], "") for a, b, c in args]
    if kind == "fwd":
        return lambda: torch.baddbmm(bias, x, w)
    if kind == "grad_input":  # dL/dx = grad @ W^T
        wt = w.transpose(1, 2)
        return lambda: torch.bmm(grad, wt)
    if kind == "grad_weight":  # dL/dW = x^T @ grad
        xt = x.transpose(1, 2)
        return lambda: torch.bmm(xt, grad)
    raise ValueError(kind)


def calibrate(ops: list[MatmulOp], min_seconds: float, backends=("aten",)) -> tuple[dict[str, float], list[dict]]:
    """Seconds per step the step's matmuls take at the isolated speed of each shape (per backend), and the
    per-shape table. Each shape is timed alone, so its weights stay in cache: an upper bound for the step."""
    keys = sorted({op.shape_key for op in ops})
    per_shape = {b: {} for b in backends}
    with torch.no_grad():
        for key in keys:
            for b in backends:
                per_shape[b][key] = _time_op(_matmul_fn(*key, backend=b), min_seconds)
    calls: dict[tuple, int] = defaultdict(int)
    flops: dict[tuple, int] = defaultdict(int)
    for op in ops:
        calls[op.shape_key] += op.count
        flops[op.shape_key] += op.flops
    first = backends[0]
    table = []
    for key in sorted(keys, key=lambda kk: -calls[kk] * per_shape[first][kk]):
        kind, e, m, k, n = key
        row = {"kind": kind, "members": e, "rows": m, "k": k, "n": n, "calls_per_step": calls[key],
               "gflop_per_step": flops[key] / 1e9}
        for b in backends:
            sec = per_shape[b][key]
            row[f"{b}_us_per_call"] = sec * 1e6
            row[f"{b}_gflops"] = 2 * e * m * k * n / sec / 1e9
            row[f"{b}_ms_per_step"] = calls[key] * sec * 1e3
        table.append(row)
    totals = {b: sum(calls[key] * sec for key, sec in per_shape[b].items()) for b in backends}
    return totals, table


def square_matmul_gflops(size: int = 512, min_seconds: float = 0.2, backend: str = "aten") -> float:
    """Reference ceiling: a plain size x size @ size x size fp32 matmul."""
    return 2 * size**3 / _time_op(_matmul_fn("fwd", 1, size, size, size, backend), min_seconds) / 1e9


def matmul_probe_error() -> float:
    """Relative error of a fp32 matmul against float64: ~1e-6 when matmuls really run in fp32, ~1e-3 when a
    reduced-precision setting (e.g. ``torch.backends.mkldnn.matmul.fp32_precision = "bf16"``) takes effect."""
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(128, 512, generator=g), torch.randn(512, 512, generator=g)
    ref = a.double() @ b.double()
    return ((a @ b).double() - ref).abs().max().item() / ref.abs().max().item()


# ------------------------------------------------------------------------------------------------------ report
def machine_info() -> dict:
    cpu, flags = platform.processor() or platform.machine(), set()
    try:
        with open("/proc/cpuinfo") as f:
            info = f.read()
        names = re.findall(r"^model name\s*:\s*(.+)$", info, re.M)
        cpu = names[0].strip() if names else cpu
        found = re.search(r"^flags\s*:\s*(.+)$", info, re.M)
        flags = set(found.group(1).split()) if found else set()
    except OSError:
        pass
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "usable_cores": usable,
        "isa": [f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile") if f in flags],
        "torch": torch.__version__,
        "blas": "mkl" if torch.backends.mkl.is_available() else "other",
        "threads": torch.get_num_threads(),
        "mkldnn_fp32_precision": _get_fp32_precision(),
        "matmul_probe_rel_error": matmul_probe_error(),
        "python": platform.python_version(),
    }


def _sum_by(ops: list[MatmulOp], attr: str) -> dict[str, float]:
    out: dict[str, float] = defaultdict(float)
    for op in ops:
        out[getattr(op, attr)] += op.flops / 1e9
    return dict(out)


def run(cfg: BenchConfig) -> dict:
    """Run the benchmark and return the result dict (the ``--json`` output)."""
    previous_threads = torch.get_num_threads()
    previous_precision = _get_fp32_precision()
    torch.set_num_threads(cfg.threads)
    try:
        if cfg.mkldnn_fp32_precision is not None:
            _set_fp32_precision(cfg.mkldnn_fp32_precision)
        algo, algo_cfg, batch = build(cfg)
        update = lambda: algo.update(batch)
        load_before = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
        times, during = _time_calls(update, cfg.steps, cfg.warmup)
        median = statistics.median(times)

        ops = analytic_matmuls(cfg.agents, cfg.obs_dim, cfg.action_dim, tuple(cfg.hidden), cfg.batch_size,
                               algo_cfg.flow_steps, algo_cfg.critic_ensemble, getattr(algo_cfg, "time_features", 1))
        analytic = sum(op.flops for op in ops)
        flops: dict = {"analytic_gflop": analytic / 1e9, "analytic_by_part": _sum_by(ops, "part"),
                       "analytic_by_pass": _sum_by(ops, "kind")}
        if cfg.count_flops:
            from torch.utils.flop_counter import FlopCounterMode

            _register_onednn_flops()
            counter = FlopCounterMode(display=False)
            with counter:
                algo.update(batch)
            measured = counter.get_total_flops()
            flops.update(measured_gflop=measured / 1e9,
                         measured_by_op={str(k): v / 1e9 for k, v in counter.get_flop_counts()["Global"].items()},
                         relative_difference=(measured - analytic) / analytic)
        step_flops = flops.get("measured_gflop", flops["analytic_gflop"]) * 1e9

        result = {
            "benchmark": "train",
            "algorithm": "macflow",
            "config": {"case": cfg.case, "agents": cfg.agents, "obs_dim": cfg.obs_dim, "action_dim": cfg.action_dim,
                       "hidden": list(cfg.hidden), "batch_size": cfg.batch_size, "layer_norm": algo_cfg.layer_norm,
                       "flow_steps": algo_cfg.flow_steps, "critic_ensemble": algo_cfg.critic_ensemble,
                       "parameters": sum(p.numel() for p in algo.parameters()), "seed": cfg.seed},
            "machine": machine_info(),
            "timing": {"warmup_steps": cfg.warmup, "timed_steps": cfg.steps, "median_ms": median * 1e3,
                       "mean_ms": statistics.fmean(times) * 1e3, "min_ms": min(times) * 1e3,
                       "max_ms": max(times) * 1e3, "steps_per_s": len(times) / sum(times),
                       "steps_per_s_at_median": 1.0 / median, **during,
                       "load_average_before": load_before},
            "flops": flops,
            "throughput": {"achieved_gflops": step_flops / median / 1e9},
        }
        if cfg.calibrate:
            backends = ("aten", "onednn") if onednn_available() else ("aten",)
            busy0, own0, t0 = _busy_seconds(), _own_seconds(), time.perf_counter()
            totals, table = calibrate(ops, cfg.calib_min_seconds, backends)
            square = {b: square_matmul_gflops(min_seconds=max(cfg.calib_min_seconds, 0.02), backend=b)
                      for b in backends}
            wall, own = time.perf_counter() - t0, _own_seconds() - own0
            other = None if busy0 is None else max(0.0, (_busy_seconds() - busy0 - own) / wall)
            achieved = result["throughput"]["achieved_gflops"]
            calib_gflops = analytic / totals["aten"] / 1e9
            th = result["throughput"]
            th.update(calibration_gflops=calib_gflops, ratio=achieved / calib_gflops, goal_ratio=GOAL_RATIO,
                      square_512_gflops=square["aten"])
            if "onednn" in totals:
                best = analytic / totals["onednn"] / 1e9
                th.update(onednn_calibration_gflops=best, ratio_vs_onednn=achieved / best,
                          square_512_onednn_gflops=square["onednn"])
            result["calibration"] = {"matmul_ms_per_step": totals["aten"] * 1e3,
                                     "other_ms_per_step": median * 1e3 - totals["aten"] * 1e3,
                                     "steps_per_s_if_only_matmuls": 1.0 / totals["aten"],
                                     "onednn_matmul_ms_per_step": totals["onednn"] * 1e3 if "onednn" in totals
                                     else None,
                                     "other_processes_cores": other,
                                     "shapes": table}
        return result
    finally:
        torch.set_num_threads(previous_threads)
        if cfg.mkldnn_fp32_precision is not None and previous_precision is not None:
            _set_fp32_precision(previous_precision)


def _register_onednn_flops() -> None:
    """FlopCounterMode knows aten matmuls only; count oneDNN's fp32 GEMM too, should a network call it directly."""
    from torch.utils.flop_counter import flop_registry, register_flop_formula

    op = getattr(torch.ops.mkldnn, "_linear_pointwise", None) if onednn_available() else None
    if op is None or op in flop_registry or op.default in flop_registry:
        return

    @register_flop_formula(op)
    def _linear_pointwise_flop(x_shape, w_shape, *args, out_shape=None, **kwargs) -> int:
        return 2 * math.prod(x_shape[:-1]) * x_shape[-1] * w_shape[0]  # X [.., K] @ W[N, K]^T


def _get_fp32_precision() -> str | None:
    matmul = getattr(torch.backends.mkldnn, "matmul", None)
    return getattr(matmul, "fp32_precision", None)


def _set_fp32_precision(value: str) -> None:
    if _get_fp32_precision() is None:
        raise MarlbenchError(f"torch {torch.__version__} has no torch.backends.mkldnn.matmul.fp32_precision")
    try:
        torch.backends.mkldnn.matmul.fp32_precision = value
    except (RuntimeError, ValueError, AssertionError) as e:
        raise MarlbenchError(f"cannot set mkldnn fp32_precision to {value!r}: {e}") from None


def format_report(r: dict) -> str:
    c, m, t, f, th = r["config"], r["machine"], r["timing"], r["flops"], r["throughput"]
    case = f"case {c['case']}: " if c["case"] else ""
    lines = [
        f"MAC-Flow train step - {case}{c['agents']} agents, obs {c['obs_dim']}, action {c['action_dim']}, "
        f"hidden {'x'.join(map(str, c['hidden']))}, batch {c['batch_size']}, {c['parameters'] / 1e6:.2f}M params",
        f"machine: {m['cpu']}, {m['cores']} cores ({m['usable_cores']} usable), {' '.join(m['isa'])}; "
        f"torch {m['torch']} ({m['blas']}), {m['threads']} thread(s)",
        "",
        f"steps/s            {t['steps_per_s']:8.2f}   ({t['timed_steps']} timed steps after {t['warmup_steps']} "
        "warm-up)",
        f"ms/step            {t['median_ms']:8.1f}   median (min {t['min_ms']:.1f}, max {t['max_ms']:.1f}); "
        f"CPU {t['cpu_ms_per_step']:.1f} ms/step, {t['page_faults_per_step']:.0f} page faults/step",
    ]
    if "measured_gflop" in f:
        lines.append(f"GFLOP/step         {f['measured_gflop']:8.3f}   FlopCounterMode, fwd+bwd matmuls "
                     f"({', '.join(f'{k} {v:.2f}' for k, v in f['measured_by_op'].items())})")
    lines.append(f"GFLOP/step         {f['analytic_gflop']:8.3f}   analytic"
                 + (f" (difference {100 * f['relative_difference']:+.3f}%)" if "relative_difference" in f else ""))
    lines.append("  by part: " + ", ".join(f"{k} {v:.2f}" for k, v in f["analytic_by_part"].items()))
    lines.append("  by pass: " + ", ".join(f"{k} {v:.2f}" for k, v in f["analytic_by_pass"].items()))
    lines.append(f"achieved GFLOP/s   {th['achieved_gflops']:8.1f}   matmul FLOPs / median step time")
    if "calibration_gflops" in th:
        cal = r["calibration"]
        verdict = "meets" if th["ratio"] >= th["goal_ratio"] else "below"
        lines += [
            f"calibration GFLOP/s{th['calibration_gflops']:8.1f}   the step's matmuls (baddbmm/bmm) timed alone: "
            f"{cal['matmul_ms_per_step']:.1f} ms/step = {cal['steps_per_s_if_only_matmuls']:.2f} steps/s if only "
            "they ran",
            f"ratio              {th['ratio']:8.2f}   achieved / calibration ({verdict} the {th['goal_ratio']:.0%} "
            f"goal; {cal['other_ms_per_step']:.1f} ms/step is not matmul time)",
        ]
        if "onednn_calibration_gflops" in th:
            lines += [
                f"oneDNN GFLOP/s     {th['onednn_calibration_gflops']:8.1f}   same shapes through oneDNN's fp32 GEMM "
                f"({cal['onednn_matmul_ms_per_step']:.1f} ms/step): what this CPU can do in fp32",
                f"ratio vs oneDNN    {th['ratio_vs_onednn']:8.2f}",
            ]
        sq = f"{th['square_512_gflops']:.1f}" + (f", oneDNN {th['square_512_onednn_gflops']:.1f}"
                                                 if "square_512_onednn_gflops" in th else "")
        lines += [f"512^3 matmul GFLOP/s: {sq} (reference ceilings)",
                  f"fp32 matmul check: mkldnn fp32_precision={m['mkldnn_fp32_precision']}, relative error vs "
                  f"float64 {m['matmul_probe_rel_error']:.1e}"
                  + ("" if m["matmul_probe_rel_error"] < 1e-4 else "  (REDUCED PRECISION: not fp32 arithmetic)"),
                  "", "calibration shapes (largest share of step time first; time per call in us, GFLOP/s):"]
        has_onednn = "onednn_us_per_call" in cal["shapes"][0]
        lines.append(f"  {'pass':<12}{'E':>3}{'rows':>6}{'k':>6}{'n':>6}{'calls':>7}{'aten us':>10}{'GFLOP/s':>9}"
                     f"{'ms/step':>9}" + (f"{'oneDNN us':>11}{'GFLOP/s':>9}" if has_onednn else ""))
        for row in cal["shapes"]:
            lines.append(f"  {row['kind']:<12}{row['members']:>3}{row['rows']:>6}{row['k']:>6}{row['n']:>6}"
                         f"{row['calls_per_step']:>7}{row['aten_us_per_call']:>10.1f}{row['aten_gflops']:>9.1f}"
                         f"{row['aten_ms_per_step']:>9.2f}"
                         + (f"{row['onednn_us_per_call']:>11.1f}{row['onednn_gflops']:>9.1f}" if has_onednn else ""))
    busy = [x for x in (t.get("other_processes_cores"), r.get("calibration", {}).get("other_processes_cores"))
            if x is not None]
    if busy and max(busy) > BUSY_WARNING:
        lines += ["", f"WARNING: other processes kept {max(busy):.2f} cores busy while this ran; on a shared machine "
                      "the timings are unreliable (re-run when it is idle)."]
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------- command line
def parse_hidden(text) -> tuple[int, ...]:
    """``"4x512"`` or ``"512,512,512,512"`` (or a sequence of ints) -> (512, 512, 512, 512)."""
    if text is None:
        return PAPER_HIDDEN
    if isinstance(text, (tuple, list)):
        dims = tuple(int(v) for v in text)
    else:
        s = str(text).strip().lower()
        try:
            if "x" in s:
                depth, width = s.split("x")
                dims = (int(width),) * int(depth)
            else:
                dims = tuple(int(v) for v in s.split(",") if v.strip())
        except ValueError:
            raise MarlbenchError(f"--hidden expects DEPTHxWIDTH (e.g. 4x512) or a list like 512,512; got {text!r}")
    if not dims or min(dims) < 1:
        raise MarlbenchError(f"--hidden needs at least one positive layer width; got {text!r}")
    return dims


def config_from_args(args: argparse.Namespace) -> BenchConfig:
    case = getattr(args, "case", None)
    base = dict(CASES[case.upper()] if case else CASES["A"])
    explicit = {k: getattr(args, k, None) for k in ("agents", "obs_dim", "action_dim")}
    overridden = {k: v for k, v in explicit.items() if v is not None and v != base[k]}
    base.update(overridden)
    label = (case.upper() if case else "A") if not overridden else None
    cfg = BenchConfig(**base, hidden=parse_hidden(getattr(args, "hidden", None)),
                      batch_size=getattr(args, "batch_size", None) or 64,
                      steps=args.steps if getattr(args, "steps", None) is not None else 30,
                      warmup=args.warmup if getattr(args, "warmup", None) is not None else 5,
                      threads=getattr(args, "threads", None) or 1, case=label,
                      mkldnn_fp32_precision=getattr(args, "mkldnn_fp32_precision", None))
    if min(cfg.agents, cfg.obs_dim, cfg.action_dim, cfg.batch_size, cfg.steps, cfg.threads) < 1 or cfg.warmup < 0:
        raise MarlbenchError("bench needs agents, obs/action dims, batch size, steps and threads >= 1, warmup >= 0")
    return cfg


def main(args: argparse.Namespace) -> int:
    cfg = config_from_args(args)
    result = run(cfg)
    if getattr(args, "json", False):
        print(json.dumps(result, indent=2))
    else:
        print(format_report(result))
    return 0


__all__ = ["BenchConfig", "CASES", "MatmulOp", "analytic_matmuls", "calibrate", "format_report", "main", "run"]

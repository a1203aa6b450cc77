"""`marlbench bench inference`: the cost of one joint action for every registered algorithm, side by side in one
process (paper Sec. 5 A2, Fig. 1 and Fig. 4: MAC-Flow's claimed ~14.5x lower inference cost than diffusion MARL).

Every algorithm (``ALGORITHMS`` after ``marlbench.catalog.load()``, or ``--algos``) is built with random weights
(``torch.manual_seed(0)``, its ``Config`` with ``hidden_dims`` 3x128 for ``--size quick`` or 4x512 for ``paper``) on
one task spec: Spread's shapes by default (3 agents, obs 18, continuous action 2) or a registered task's spec
(``--task``). An algorithm that refuses the spec (``IncompatibleError``, e.g. continuous-only on a discrete task) is
listed under ``skipped``. Then, with ``torch.set_num_threads(threads)`` and under ``torch.no_grad``:

1. **Milliseconds per joint action.** ``act(obs, legals)`` on random observations (all actions legal on discrete
   specs), exactly the call ``protocol.inference_latency_ms`` times: at batch 1 (one environment) and at a batch of
   ``envs`` environments, where one call yields ``envs`` joint actions. After one untimed call (its time ``t1``
   sizes the run) and ``min(warmup, budget / 2 t1)`` (at least one) warm-up calls, ``min(repeats, max(5,
   budget / t1))`` calls are timed one by one with the garbage collector off (``bench.train._time_calls``); the
   report gives their median and interquartile range. At batch ``envs`` ``ms_per_joint_action`` is the call's
   time divided by ``envs``.
2. **FLOPs per joint action.** ``torch.utils.flop_counter.FlopCounterMode`` around one batch-1 ``act`` call: the
   matmuls (mm/addmm/bmm/baddbmm, convolutions, oneDNN's linear), not the elementwise work. ``None`` when it counts
   nothing (an algorithm without matmuls).
3. **Ratio to MAC-Flow.** Each of the three numbers divided by MAC-Flow's ("macflow", always measured as the
   reference when it is registered): > 1 means costlier than MAC-Flow. The paper's claim is a ratio of ~14.5 for
   diffusion-based methods and ~1 for the Gaussian baselines.
4. **Scaling with the number of agents** N in (2, 4, 8, 16): the algorithm is rebuilt on the same spec with
   ``n_agents = N`` (same per-agent observation and action sizes) and measured again (FLOPs, ms at batch 1 and at
   ``envs``). A least-squares fit of log(cost) on log(N) gives the exponent ``p`` of cost ~ N^p, for FLOPs and
   for both timings.

**Complexity classes.** ``Algorithm.inference_complexity`` names the algorithm's class in the paper's Table 3
(App. C), with K the number of sampler steps (fixed for an algorithm) and N the number of agents. What is checked
is the TOTAL cost of one joint action (all N agents, one environment step), whose exponent in N is:

=============  ==========================================================  ==================  ==============
class          what the algorithm does per environment step                per agent (Tab. 3)  total, N-exp.
=============  ==========================================================  ==================  ==============
``O(1)``       one forward pass of a per-agent one-step policy (MAC-Flow,  O(1)                O(N)     -> 1
               Gaussian baselines); agents batched in one call
``O(K)``       a K-step sampler per agent, input O(1), agents batched in   O(K)                O(N K)   -> 1
               one call per step (DoF, Diffusion BC, Flow BC)
``O(N K)``     one K-step joint chain over all agents, input O(N)          O(N K)              O(N K)   -> 1
               (MADiff-C, centralised)
``O(N^2 K)``   every agent runs its own joint chain, input O(N) each       O(N K)              O(N^2 K) -> 2
               (MADiff-D)
=============  ==========================================================  ==================  ==============

So the labels "O(1)" and "O(K)" are per-agent costs and "O(N K)" and "O(N^2 K)" are the total costs of the
issue's cards (for MADiff-C the two coincide: one chain serves all agents). The check compares the FLOPs exponent
(deterministic) with the class's total exponent: it ``matches`` when ``|p - expected| <= 0.25 * expected``. The
timed exponents are reported beside it, not checked: at batch 1 a batched per-agent network is dominated by fixed
per-call costs and its wall time hardly grows with N.

Caveats of the fit over N = 2..16. (a) Shared per-agent networks take a one-hot agent id, so their input grows by
N; with 128-wide layers and Spread's shapes this adds ~0.02 to the exponent of an ``O(1)`` algorithm. (b) The
paper treats a network's cost as proportional to its input size. A joint network of fixed hidden width costs
``a + b N`` FLOPs with ``a`` (the hidden layers) dominating for small N, so an ``O(N K)`` / ``O(N^2 K)`` algorithm
built that way fits an exponent below 1 / 2 over this range and is reported as not matching; its asymptotic
exponent is reached only once the input layer dominates.

JSON (``--json`` prints it, ``--out FILE`` writes it atomically; times in ms, FLOPs per joint action)::

    benchmark "inference"; schema_version 1; machine (bench.train.machine_info)
    task {name, source ("spread-shapes" | "task"), n_agents, obs_dim, action_dim, action_kind}
    size, hidden_dims, envs, threads, warmup, repeats, budget_seconds, reference ("macflow" or null),
    agents_scaling [2, 4, 8, 16], tolerance 0.25, expected_exponents {class: exponent}
    algorithms: list, reference first, one per measured algorithm:
      name, inference_complexity, expected_exponent (null: unknown class), parameters
      batch1 {envs 1, median_ms, iqr_ms [q1, q3], ms_per_joint_action, calls, warmup, other_processes_cores}
      batch  {envs, median_ms (per call), iqr_ms, ms_per_joint_action (= per call / envs), calls, warmup,
              other_processes_cores}
      flops_per_joint_action (null: not countable)
      ratio_to_reference {ms_batch1, ms_per_joint_action_batch, flops} (null without a reference)
      scaling {points: [{agents, flops_per_joint_action, ms_batch1, ms_per_joint_action_batch}],
               flops_exponent, ms_batch1_exponent, ms_batch_exponent,
               check: "matches" | "does not match" | "unknown class" | "not countable"}
    skipped: [{name, reason}]; other_processes_cores_max (cores other processes kept busy, max over timings)
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from marlbench.bench.batching import SIZES, SPREAD
from marlbench.bench.train import BUSY_WARNING, _register_onednn_flops, _time_calls, machine_info
from marlbench.config import resolve
from marlbench.errors import IncompatibleError, MarlbenchError
from marlbench.protocol import timing_plan
from marlbench.registry import ALGORITHMS
from marlbench.results import atomic_write_json
from marlbench.spec import TaskSpec
from marlbench.tasks import get_task

SCHEMA_VERSION = 1
REFERENCE = "macflow"
AGENTS = (2, 4, 8, 16)
TOLERANCE = 0.25  # relative, on the exponent
# exponent in N of the total cost of one joint action, per class of Algorithm.inference_complexity (see above)
EXPECTED_EXPONENTS = {"O(1)": 1.0, "O(K)": 1.0, "O(N K)": 1.0, "O(N^2 K)": 2.0}
MIN_CALLS = 5
DEFAULTS = {"envs": 32, "repeats": 200, "warmup": 5, "budget_seconds": 1.0, "threads": 1, "max_call_seconds": 2.0}


def spread_spec() -> TaskSpec:
    return TaskSpec("bench/inference", SPREAD["agents"], SPREAD["obs_dim"], "continuous", SPREAD["action_dim"],
                    episode_limit=25)


def expected_exponent(complexity: str) -> float | None:
    """The exponent in N of the total cost of one joint action for a complexity class, None if unknown.
    Spaces and ``*`` are ignored: "O(N^2 K)", "O(N^2K)" and "O(N^2*K)" are one class."""
    key = complexity.replace(" ", "").replace("*", "")
    return {k.replace(" ", ""): v for k, v in EXPECTED_EXPONENTS.items()}.get(key)


def check_exponent(measured: float | None, expected: float | None, tolerance: float = TOLERANCE) -> str:
    if expected is None:
        return "unknown class"
    if measured is None:
        return "not countable"
    return "matches" if abs(measured - expected) <= tolerance * expected else "does not match"


def fit_exponent(agents, values) -> float | None:
    """Least-squares slope of log(value) on log(agents): cost ~ N^slope. None if a value is missing or <= 0."""
    if any(v is None or v <= 0 for v in values):
        return None
    return float(np.polyfit(np.log(agents), np.log(values), 1)[0])


def inputs(spec: TaskSpec, envs: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Random observations [envs, N, obs_dim], and all-legal masks [envs, N, actions] for discrete specs."""
    obs = torch.randn(envs, spec.n_agents, spec.obs_dim, generator=gen)
    legals = None if spec.continuous else torch.ones(envs, spec.n_agents, spec.action_dim, dtype=torch.bool)
    return obs, legals


def build(name: str, spec: TaskSpec, hidden: tuple[int, ...], steps: int | None = None, size: str | None = None,
          benchmark: str = "mpe"):
    """``name`` with random weights (seed 0) at ``hidden``: its default Config, or with a ``size`` its config as
    `marlbench run --profile size` resolves it for ``benchmark`` (trajectory U-Net widths, horizons, K); ``steps``
    overrides the sampler's step count K (``diffusion_steps``). Raises IncompatibleError."""
    cls = ALGORITHMS.get(name)
    cls.check_compatible(spec)
    if size is None:
        cfg = cls.Config(hidden_dims=tuple(hidden))
    else:
        cfg = resolve(cls, benchmark, size, overrides={"hidden_dims": list(hidden)}).algorithm
    if steps is not None:
        cfg = dataclasses.replace(cfg, diffusion_steps=steps)
    torch.manual_seed(0)
    return cls(spec, cfg, "cpu")


@torch.no_grad()
def count_flops(algo, obs: torch.Tensor, legals: torch.Tensor | None) -> int | None:
    """Matmul FLOPs of one ``act`` call (FlopCounterMode), None if it counts nothing."""
    _register_onednn_flops()
    counter = FlopCounterMode(display=False)
    with counter:
        algo.act(obs, legals)
    total = counter.get_total_flops()
    return int(total) if total > 0 else None


@torch.no_grad()
def time_act(algo, obs: torch.Tensor, legals: torch.Tensor | None, warmup: int, repeats: int,
             budget_seconds: float) -> dict:
    """Median and IQR (ms) of one ``act`` call at obs's batch; see the module docstring for the call counts."""
    envs = obs.shape[0]
    algo.start_episodes(envs)
    fn = lambda: algo.act(obs, legals)
    t0 = time.perf_counter()
    fn()
    calls, warm = timing_plan(time.perf_counter() - t0, repeats, warmup, budget_seconds, MIN_CALLS)
    times, info = _time_calls(fn, calls, warm)
    q1, median, q3 = (float(v) * 1e3 for v in np.percentile(times, [25, 50, 75]))
    return {"envs": envs, "median_ms": median, "iqr_ms": [q1, q3], "ms_per_joint_action": median / envs,
            "calls": calls, "warmup": warm, "other_processes_cores": info["other_processes_cores"]}


def _measure_once(algo, spec: TaskSpec, envs: int, warmup: int, repeats: int, budget_seconds: float,
                  timed: bool, parts: tuple[str, ...] = ("flops", "batch1", "batch")) -> dict:
    gen = torch.Generator().manual_seed(0)
    obs1, legals1 = inputs(spec, 1, gen)
    obs, legals = inputs(spec, envs, gen)
    out = {"parameters": sum(p.numel() for p in algo.parameters())}
    if "flops" in parts:
        out["flops_per_joint_action"] = count_flops(algo, obs1, legals1)
    if timed and "batch1" in parts:
        out["batch1"] = time_act(algo, obs1, legals1, warmup, repeats, budget_seconds)
    if timed and "batch" in parts:
        out["batch"] = time_act(algo, obs, legals, warmup, repeats, budget_seconds)
    return out


def _extrapolate(small: dict, large: dict, k_small: int, k_large: int, k: int) -> dict:
    """v(K) = v(k1) + (K - k1) (v(k2) - v(k1)) / (k2 - k1) for every cost of a measurement: exact for FLOPs (each
    sampler step is the same network call), an estimate for times (marked ``extrapolated_from_steps``)."""
    def line(a, b):
        return None if a is None or b is None else a + (k - k_small) * (b - a) / (k_large - k_small)

    out = {"parameters": large["parameters"],
           "flops_per_joint_action": None if large.get("flops_per_joint_action") is None else
           int(round(line(small["flops_per_joint_action"], large["flops_per_joint_action"])))}
    for key in ("batch1", "batch"):
        if key in large:
            a, b = small[key], large[key]
            median = line(a["median_ms"], b["median_ms"])
            out[key] = {**b, "median_ms": median, "iqr_ms": [line(x, y) for x, y in zip(a["iqr_ms"], b["iqr_ms"])],
                        "ms_per_joint_action": median / b["envs"], "extrapolated_from_steps": [k_small, k_large]}
    return out


def measure(name: str, spec: TaskSpec, hidden: tuple[int, ...], envs: int, warmup: int, repeats: int,
            budget_seconds: float, timed: bool = True, size: str | None = None, benchmark: str = "mpe",
            max_call_seconds: float = float("inf")) -> dict:
    """FLOPs per joint action and (if ``timed``) ms at batch 1 and at ``envs`` of one algorithm on ``spec``.

    A K-step sampler whose call would take longer than ``max_call_seconds`` (estimated from K = 2 and K = 4) is
    measured at those two K and extrapolated linearly to its K: exact for FLOPs, an estimate for times, marked
    ``extrapolated_from_steps`` (and ``flops_extrapolated``). A batched call that would exceed the limit even at
    K = 4 is not timed (``batch`` is None)."""
    algo = build(name, spec, hidden, size=size, benchmark=benchmark)
    k = getattr(algo.cfg, "diffusion_steps", None)
    if k is None or k <= 4 or max_call_seconds == float("inf"):
        return _measure_once(algo, spec, envs, warmup, repeats, budget_seconds, timed)
    small = [build(name, spec, hidden, steps, size, benchmark) for steps in (2, 4)]
    probes = [_measure_once(a, spec, envs, warmup, repeats, budget_seconds, timed, ("flops", "batch1"))
              for a in small]
    if timed and probes[1]["batch1"]["median_ms"] * envs / 1e3 <= max_call_seconds:
        for a, probe in zip(small, probes):
            probe.update(_measure_once(a, spec, envs, warmup, repeats, budget_seconds, timed, ("batch",)))
    estimate = _extrapolate(probes[0], probes[1], 2, 4, k)
    out = {"parameters": estimate["parameters"]}
    direct = [key for key in ("batch1", "batch") if timed and key in estimate
              and estimate[key]["median_ms"] / 1e3 <= max_call_seconds]
    if direct:  # affordable at full K: measured, not estimated
        out.update(_measure_once(algo, spec, envs, warmup, repeats, budget_seconds, timed,
                                 ("flops",) + tuple(direct) if "batch1" in direct else tuple(direct)))
    if "flops_per_joint_action" not in out:
        out["flops_per_joint_action"] = estimate["flops_per_joint_action"]
        out["flops_extrapolated"] = True
    for key in ("batch1", "batch"):
        if timed and key not in out:
            out[key] = estimate.get(key)
    return out


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or b == 0 else a / b


def scaling(name: str, spec: TaskSpec, hidden: tuple[int, ...], agents: tuple[int, ...], envs: int, warmup: int,
            repeats: int, budget_seconds: float, timed: bool = True, size: str | None = None,
            benchmark: str = "mpe", max_call_seconds: float = float("inf")) -> dict:
    """Cost per joint action for each N in ``agents`` (rebuilt per N), the fitted exponents and the class check."""
    points = []
    for n in agents:
        m = measure(name, dataclasses.replace(spec, n_agents=n), hidden, envs, warmup, repeats, budget_seconds, timed,
                    size, benchmark, max_call_seconds)
        points.append({"agents": n, "flops_per_joint_action": m["flops_per_joint_action"],
                       "ms_batch1": m["batch1"]["median_ms"] if timed else None,
                       "ms_per_joint_action_batch": m["batch"]["ms_per_joint_action"] if timed and m["batch"]
                       else None,
                       "_busy": [m[k]["other_processes_cores"] for k in ("batch1", "batch") if timed and m[k]]})
    flops_exp = fit_exponent(agents, [p["flops_per_joint_action"] for p in points])
    complexity = ALGORITHMS.get(name).inference_complexity
    busy = [b for p in points for b in p.pop("_busy") if b is not None]
    return {"points": points, "flops_exponent": flops_exp,
            "ms_batch1_exponent": fit_exponent(agents, [p["ms_batch1"] for p in points]) if timed else None,
            "ms_batch_exponent": fit_exponent(agents, [p["ms_per_joint_action_batch"] for p in points])
            if timed else None,
            "check": check_exponent(flops_exp, expected_exponent(complexity)), "_busy": busy}


def run(algorithms: list[str] | None = None, spec: TaskSpec | None = None, size: str = "quick", *,
        envs: int = DEFAULTS["envs"], warmup: int = DEFAULTS["warmup"], repeats: int = DEFAULTS["repeats"],
        budget_seconds: float | None = None, threads: int = DEFAULTS["threads"],
        agents: tuple[int, ...] = AGENTS, task_source: str | None = None, benchmark: str = "mpe",
        max_call_seconds: float = DEFAULTS["max_call_seconds"]) -> dict:
    """Measure ``algorithms`` (default: every registered one; MAC-Flow is added as the reference) on ``spec``
    (default: Spread's shapes) and return the result dict (the ``--json`` output)."""
    spec = spec or spread_spec()
    budget_seconds = DEFAULTS["budget_seconds"] if budget_seconds is None else budget_seconds
    hidden = SIZES[size]
    names = list(algorithms) if algorithms is not None else ALGORITHMS.names()
    names = [ALGORITHMS.canonical(n) for n in names]
    if REFERENCE in ALGORITHMS and REFERENCE not in names:
        names.append(REFERENCE)
    names = sorted(dict.fromkeys(names), key=lambda n: (n != REFERENCE, n))
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        rows, skipped, busy = [], [], []
        for name in names:
            try:
                m = measure(name, spec, hidden, envs, warmup, repeats, budget_seconds, True, size, benchmark,
                            max_call_seconds)
            except IncompatibleError as e:
                skipped.append({"name": name, "reason": str(e)})
                continue
            cls = ALGORITHMS.get(name)
            sc = scaling(name, spec, hidden, tuple(agents), envs, warmup, repeats, budget_seconds, True, size,
                         benchmark, max_call_seconds)
            busy += sc.pop("_busy") + [m[k]["other_processes_cores"] for k in ("batch1", "batch")
                                       if m[k] and m[k]["other_processes_cores"] is not None]
            rows.append({"name": name, "inference_complexity": cls.inference_complexity,
                         "expected_exponent": expected_exponent(cls.inference_complexity), **m, "scaling": sc})
        machine = machine_info()
    finally:
        torch.set_num_threads(previous_threads)
    ref = next((r for r in rows if r["name"] == REFERENCE), None)
    for r in rows:
        r["ratio_to_reference"] = None if ref is None else {
            "ms_batch1": _ratio(r["batch1"]["median_ms"], ref["batch1"]["median_ms"]),
            "ms_per_joint_action_batch": _ratio(r["batch"]["ms_per_joint_action"] if r["batch"] else None,
                                                ref["batch"]["ms_per_joint_action"]),
            "flops": _ratio(r["flops_per_joint_action"], ref["flops_per_joint_action"])}
    return {"benchmark": "inference", "schema_version": SCHEMA_VERSION, "machine": machine,
            "task": {"name": spec.name, "source": task_source or "spread-shapes", "n_agents": spec.n_agents,
                     "obs_dim": spec.obs_dim, "action_dim": spec.action_dim, "action_kind": spec.action_kind},
            "size": size, "hidden_dims": list(hidden), "envs": envs, "threads": threads, "warmup": warmup,
            "repeats": repeats, "budget_seconds": budget_seconds, "max_call_seconds": max_call_seconds,
            "reference": ref["name"] if ref else None,
            "agents_scaling": list(agents), "tolerance": TOLERANCE, "expected_exponents": dict(EXPECTED_EXPONENTS),
            "algorithms": rows, "skipped": skipped, "other_processes_cores_max": max(busy) if busy else None}


def _mega(v: float | None) -> float | None:
    return None if v is None else v / 1e6


def _num(v: float | None, fmt: str) -> str:
    return "n/a" if v is None else format(v, fmt)


def format_report(r: dict) -> str:
    m, t = r["machine"], r["task"]
    ref = r["reference"] or "(none)"
    out = [f"inference cost per joint action on {m['cpu']} ({m['usable_cores']} usable cores, "
           f"{' '.join(m['isa'])}), torch {m['torch']}, {r['threads']} thread(s)",
           f"task {t['name']}: {t['n_agents']} agents, obs {t['obs_dim']}, {t['action_kind']} action {t['action_dim']}"
           f"; hidden {len(r['hidden_dims'])}x{r['hidden_dims'][0]} ({r['size']}); batch = {r['envs']} environments"
           f"; ratios are to {ref}",
           "",
           f"{'algorithm':<14}{'class':>10}{'params':>9}{'ms @1':>9}{'IQR @1':>17}{'ms/JA @B':>10}"
           f"{'IQR @B':>18}{'MFLOP/JA':>10}{'x ms@1':>8}{'x ms@B':>8}{'x FLOP':>8}"]
    for row in r["algorithms"]:
        b1, ratio = row["batch1"], row["ratio_to_reference"] or {}
        bb = row["batch"] or {"ms_per_joint_action": float("nan"), "iqr_ms": [float("nan")] * 2, "envs": 1}
        star = "*" if "extrapolated_from_steps" in b1 or "extrapolated_from_steps" in bb else " "
        out.append(f"{row['name'] + star:<14}{row['inference_complexity']:>10}{row['parameters'] / 1e6:>8.2f}M"
                   f"{b1['median_ms']:>9.3f}{'[%.3f, %.3f]' % tuple(b1['iqr_ms']):>17}"
                   f"{bb['ms_per_joint_action']:>10.4f}"
                   f"{'[%.4f, %.4f]' % tuple(v / bb['envs'] for v in bb['iqr_ms']):>18}"
                   f"{_num(_mega(row['flops_per_joint_action']), '.3f'):>10}"
                   f"{_num(ratio.get('ms_batch1'), '.2f'):>8}{_num(ratio.get('ms_per_joint_action_batch'), '.2f'):>8}"
                   f"{_num(ratio.get('flops'), '.2f'):>8}")
    agents = r["agents_scaling"]
    out += ["", f"scaling with the number of agents N in {tuple(agents)}: fitted exponent p of cost ~ N^p per joint "
                f"action; check: FLOPs exponent within {r['tolerance']:.0%} of the class's total-cost exponent",
            f"{'algorithm':<14}{'class':>10}{'expect':>7}{'p FLOP':>8}{'p ms@1':>8}{'p ms@B':>8}  {'check':<16}"
            + "".join(f"{'MFLOP N=%d' % n:>12}" for n in agents)]
    for row in r["algorithms"]:
        sc = row["scaling"]
        out.append(f"{row['name']:<14}{row['inference_complexity']:>10}{_num(row['expected_exponent'], '.0f'):>7}"
                   f"{_num(sc['flops_exponent'], '.2f'):>8}{_num(sc['ms_batch1_exponent'], '.2f'):>8}"
                   f"{_num(sc['ms_batch_exponent'], '.2f'):>8}  {sc['check']:<16}"
                   + "".join(f"{_num(_mega(p['flops_per_joint_action']), '.3f'):>12}" for p in sc["points"]))
    for s in r["skipped"]:
        out.append(f"skipped {s['name']}: {s['reason']}")
    out += ["", "ms @1: median ms of one joint action at batch 1 (IQR: quartiles); ms/JA @B: ms per joint action when "
                f"one call acts for {r['envs']} environments; x ...: ratio to {ref} (> 1: costlier); "
                "MFLOP/JA: matmul MFLOPs per joint action (FlopCounterMode)",
            f"*: a K-step sampler whose call would exceed {r['max_call_seconds']:g} s: its times are extrapolated "
            "linearly in K from calls at K = 2 and 4 (its FLOPs too where marked in the JSON; exact, each step is "
            "the same network call)"]
    busy = r.get("other_processes_cores_max")
    if busy is not None and busy > BUSY_WARNING:
        out.append(f"WARNING: other processes kept up to {busy:.2f} cores busy while this ran; on a shared machine "
                   "the timings are unreliable (re-run when it is idle). FLOPs are unaffected.")
    return "\n".join(out)


def _positive(args: argparse.Namespace, key: str) -> int:
    value = getattr(args, key, None)
    value = DEFAULTS[key] if value is None else value
    if value < 1:
        raise MarlbenchError(f"bench inference needs --{key} >= 1, got {value}")
    return value


def main(args: argparse.Namespace) -> int:
    algos = getattr(args, "algos", None)
    algorithms = [a.strip() for a in algos.split(",") if a.strip()] if algos else None
    for name in algorithms or ():
        ALGORITHMS.get(name)  # unknown names list the close ones
    size = getattr(args, "size", None) or "quick"
    if size not in SIZES:
        raise MarlbenchError(f"--size takes {', '.join(SIZES)}, got {size}")
    spec, source, benchmark = None, None, "mpe"
    if getattr(args, "task", None):
        task = get_task(args.task)
        if task.spec is None:
            raise MarlbenchError(f"task {task.name!r} has no spec here: {task.blocked_reason or 'unknown shapes'}")
        spec, source, benchmark = task.spec, "task", task.benchmark
    warmup = getattr(args, "warmup", None)
    warmup = DEFAULTS["warmup"] if warmup is None else warmup
    if warmup < 0:
        raise MarlbenchError("bench inference needs --warmup >= 0")
    result = run(algorithms, spec, size, envs=_positive(args, "envs"), warmup=warmup,
                 repeats=_positive(args, "repeats"), threads=_positive(args, "threads"), task_source=source,
                 benchmark=benchmark, max_call_seconds=getattr(args, "max_call_seconds", None)
                 or DEFAULTS["max_call_seconds"])
    if getattr(args, "out", None):
        atomic_write_json(Path(args.out), result)
    print(json.dumps(result, indent=2) if getattr(args, "json", False) else format_report(result))
    return 0


__all__ = ["AGENTS", "EXPECTED_EXPONENTS", "check_exponent", "expected_exponent", "fit_exponent", "format_report",
           "main", "run"]

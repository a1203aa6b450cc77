"""Why discrete MAC-Flow scores below BC on the SMAX Poor tiers (docs/SMAX.md): action agreement with the dataset
and MAC-Flow's acting modes, from the seed-0 runs' checkpoints. Needs the `smax` extra. From the repository root:

    python results/reference/smax_diagnosis.py [--results DIR] [TASK ...]      (default: the 3m and 8m Poor tiers)

Checkpoints are not committed with the reference records; rerun seed 0 of BC and MAC-Flow (deterministic on CPU) into
another results directory and pass it, e.g. `marlbench run --algo macflow --task smax/3m-poor --seeds 1 --profile
quick --results /tmp/r` (and the same for bc), then `--results /tmp/r`.
"""
import glob
import json
import sys

import numpy as np
import torch

from marlbench import catalog
from marlbench.config import resolve
from marlbench.data.formats.native import load_native
from marlbench.heads import masked_logits as masked
from marlbench.protocol import evaluate_episodes
from marlbench.registry import ALGORITHMS
from marlbench.tasks import get_task

ROOT = "results/reference"


def load(task_name: str, algorithm: str, seed: int = 0):
    """The trained algorithm of a reference run (its final checkpoint) and the run's dataset."""
    run = glob.glob(f"{ROOT}/{task_name}/{algorithm}/*/seed_{seed}")[0]
    rec = json.load(open(f"{run}/final.json"))
    task, cls = get_task(rec["task"]), ALGORITHMS.get(rec["algorithm"])
    resolved = resolve(cls, task.benchmark, profile=rec["profile"], task=task.name)
    algo = cls(task.spec, resolved.algorithm, "cpu")
    data = load_native(task.dataset_path, task.spec)
    algo.prepare(data)
    algo.load_checkpoint_state(torch.load(f"{run}/checkpoint.pt", weights_only=True)["algorithm"])
    return algo, data, task


@torch.no_grad()
def agreement(task_name: str, transitions: int = 4096) -> dict[str, float]:
    """How often each policy's action equals the dataset's, per agent-step, on random dataset transitions."""
    bc, data, _ = load(task_name, "bc")
    mf, _, _ = load(task_name, "macflow")
    idx = np.random.default_rng(0).choice(data.n_transitions, transitions, replace=False)
    obs, act, leg = (torch.tensor(x[idx]) for x in (data.obs, data.actions, data.legals))
    torch.manual_seed(0)
    probs = bc.policy.probs(obs, leg)
    noise = torch.randn(*obs.shape[:2], mf.spec.action_dim)
    flow = masked(mf.flow_actions(obs, noise), leg).argmax(-1)
    one = masked(mf.one_step(obs, noise), leg).argmax(-1)
    zero = masked(mf.one_step(obs, torch.zeros_like(noise)), leg).argmax(-1)
    rate = lambda a: float((a == act).float().mean())
    return {"bc mode": rate(probs.argmax(-1)), "bc sampled (expected)": float(probs.gather(-1, act[..., None]).mean()),
            "macflow flow sample": rate(flow), "macflow one-step": rate(one), "macflow one-step z=0": rate(zero),
            "macflow one-step == flow": float((one == flow).float().mean())}


def acting_modes(task_name: str, episodes: int = 128, seed: int = 12345) -> dict[str, tuple[float, float]]:
    """(return, win rate) of MAC-Flow's acting modes and of BC's mode and samples, on the same episodes."""
    out = {}
    mf, _, task = load(task_name, "macflow")
    for key, value in (("eval_noise", "step"), ("eval_noise", "zero"), ("deploy", "flow")):
        setattr(mf.cfg, key, value)
        r, w = evaluate_episodes(mf, task, episodes, seed)
        out[f"macflow {key}={value}"] = (float(r.mean()), float(w.mean()))
    bc, _, _ = load(task_name, "bc")
    r, w = evaluate_episodes(bc, task, episodes, seed)
    out["bc mode"] = (float(r.mean()), float(w.mean()))
    torch.manual_seed(0)
    bc.act = lambda obs, legals=None: torch.distributions.Categorical(logits=bc.policy.logits(obs, legals)).sample()
    r, w = evaluate_episodes(bc, task, episodes, seed)
    out["bc sampled"] = (float(r.mean()), float(w.mean()))
    return out


if __name__ == "__main__":
    catalog.load()
    torch.set_num_threads(1)
    args = sys.argv[1:]
    if args[:1] == ["--results"]:
        ROOT, args = args[1], args[2:]
    for name in args or ["smax/3m-poor", "smax/8m-poor"]:
        for k, v in agreement(name).items():
            print(f"{name}  agreement  {k:28s} {v:.3f}")
        for k, (r, w) in acting_modes(name).items():
            print(f"{name}  acting     {k:28s} return {r:.3f}  win rate {w:.3f}")

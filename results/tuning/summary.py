"""Every tuning run of `marlbench tune`, grouped by (task, algorithm, grid value): the score on each tuning seed,
their mean, the selected value and the final policy's mechanism measurements, so a selection can be read next to
what the coefficient did to the mechanism (docs/SWEEPS.md "Equal-budget tuning").

    python results/tuning/summary.py [--results results/tuning] [--tuned configs/tuned/quick.yaml] [--out FILE]
"""
from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import yaml

from marlbench import catalog
from marlbench.analysis import references as refs
from marlbench.registry import ALGORITHMS

# the measurement that shows what each algorithm's coefficient does (docs/RESULTS.md), then the value gap
MECHANISM = {"macflow": "grad_ratio_distill_q", "ma-fql": "grad_ratio_distill_q", "matd3bc": "grad_ratio_bc_q",
             "macql": "grad_ratio_cql_td", "omar": "grad_ratio_cql_td", "icq": "weight_ess", "omiga": "weight_ess",
             "mabcq": "perturbation"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    here = Path(__file__).parent
    parser.add_argument("--results", type=Path, default=here)
    parser.add_argument("--tuned", type=Path, help="the tuned file whose selection to mark")
    parser.add_argument("--out", type=Path, help="write the Markdown here as well as to stdout")
    args = parser.parse_args()
    catalog.load()
    chosen = (yaml.safe_load(args.tuned.read_text()) or {}).get("values", {}) if args.tuned else {}
    groups: dict[tuple[str, str, str], list[dict]] = {}
    for final in sorted(args.results.rglob("seed_*/final.json")):
        record = json.loads(final.read_text())
        keys = ALGORITHMS.get(record["algorithm"]).Config.tuning_grid
        point = {k: record["config"]["algorithm"][k] for k in keys}
        groups.setdefault((record["task"], record["algorithm"], json.dumps(point, sort_keys=True)), []).append(record)
    lines = ["| task | algorithm | value | score per tuning seed | mean | mechanism (mean over seeds) | "
             "Q(pi) - Q(data) | train s / seed |", "|---|---|---|---|---|---|---|---|"]
    for (task, algo, label), records in sorted(groups.items(), key=lambda kv: (kv[0][0], refs.algorithm_sort_key(
            kv[0][1]), [float(v) for v in json.loads(kv[0][2]).values()])):
        point = json.loads(label)
        scores = [r["normalised_score"] if r["normalised_score"] is not None else r["return_mean"] for r in records]
        key = MECHANISM.get(algo)
        diags = [r.get("diagnostics") or {} for r in records]
        mech = f"{key} {statistics.fmean(d[key] for d in diags):.2f}" if key and all(key in d for d in diags) else ""
        gap = (f"{statistics.fmean(d['q_pi_minus_q_data'] for d in diags):+.1f}"
               if all("q_pi_minus_q_data" in d for d in diags) else "")
        selected = chosen.get(algo, {}).get(task) == point
        value = ", ".join(f"{k} {v:g}" for k, v in point.items()) + (" **(selected)**" if selected else "")
        seconds = statistics.fmean(r["train_seconds"] for r in records)
        lines.append(f"| {task} | {refs.algorithm_label(algo)} | {value} | "
                     f"{' / '.join(f'{s:.1f}' for s in scores)} (seeds {', '.join(str(r['seed']) for r in records)}) "
                     f"| {statistics.fmean(scores):.1f} | {mech} | {gap} | {seconds:.0f} |")
    text = "\n".join(lines)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()

"""Rankings of the reference comparison against the paper's Table 2 MPE rows, with Spearman rank correlation.

    python results/reference/ranking.py [--results DIR] [--old DIR] [--out FILE]

For each Spread tier (and the per-algorithm average over tiers): our mean normalised score per algorithm, our rank,
the paper's printed value and rank, and Spearman's rho over the algorithms both tables have (BC, MABCQ and MAC-Flow's
baselines without a paper column are listed but not ranked against it). The paper's MPE columns for ICQ and OMAR
are OMAR's own paper's values swapped (configs/reference/table2.yaml, notes); rho is also given against the
swap-corrected columns (ICQ <- the OMAR paper's MA-ICQ, OMAR <- its OMAR). ``--old DIR`` adds an earlier set of
records (for example a checkout of an earlier commit's results/reference) as a second ranking.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

from marlbench.analysis import references as refs
from marlbench.analysis.reader import read_results

TIERS = ("expert", "medium", "medium-replay", "random")


def means(results_dir: Path) -> dict[str, dict[str, float]]:
    """task -> algorithm -> mean normalised score over seeds."""
    runs = read_results(results_dir, curves=False).runs
    table = runs.groupby(["task", "algorithm"])["normalised_score"].mean()
    out: dict[str, dict[str, float]] = {}
    for (task, algo), value in table.items():
        out.setdefault(task, {})[algo] = float(value)
    return out


def convergence(results_dir: Path) -> str:
    """Per tier and algorithm: the mean learning-curve score at 2k/4k/6k steps (10 episodes each) and the final
    score at the budget (32 episodes), and whether it was still rising over the last quarter of the budget."""
    curves = read_results(results_dir).curves
    curves = curves[curves["normalised_score"].notna()]
    lines = ["| tier | algorithm | score by step (mean over seeds) | last quarter |", "|---|---|---|---|"]
    for tier in TIERS:
        sub = curves[curves["task"] == f"mpe/spread-{tier}"]
        for algo in sorted(sub["algorithm"].unique(), key=refs.algorithm_sort_key):
            by_step = sub[sub["algorithm"] == algo].groupby("step")["normalised_score"].mean()
            if len(by_step) < 2:
                continue
            steps = list(by_step.index)
            delta = by_step.iloc[-1] - by_step.iloc[-2]
            trend = "rising" if delta > 5 else "falling" if delta < -5 else "flat"
            points = ", ".join(f"{s // 1000}k {v:.1f}" for s, v in by_step.items())
            lines.append(f"| {tier} | {refs.algorithm_label(algo)} | {points} | {trend} ({delta:+.1f} from "
                         f"{steps[-2] // 1000}k) |")
    lines.append("")
    lines.append("'rising'/'falling': the final score differs from the previous curve point by more than 5 points "
                 "(a rough reading; `marlbench table`'s plateau test, analysis/convergence.py, weighs the last "
                 "quarter's slope against the evaluations' own noise).")
    return "\n".join(lines)


def mechanism(results_dir: Path) -> str:
    """The final policy's mechanism measurements (final.json -> diagnostics), per tier and algorithm: mean over
    seeds with the per-seed range."""
    import json

    rows: dict[tuple[str, str], list[dict]] = {}
    for final in sorted(results_dir.rglob("seed_*/final.json")):
        record = json.loads(final.read_text())
        if record.get("diagnostics"):
            rows.setdefault((record["task"], record["algorithm"]), []).append(record["diagnostics"])
    lines = ["| tier | algorithm | seeds | final-policy measurements: mean [per-seed min, max] |", "|---|---|---|---|"]
    for tier in TIERS:
        for (task, algo), diags in sorted(rows.items()):
            if task != f"mpe/spread-{tier}":
                continue
            keys = ("q_pi_minus_q_data", "q_flow_minus_q_data", "grad_ratio_distill_q", "grad_ratio_bc_q",
                    "grad_ratio_cql_td", "weight_ess", "allowed_fraction", "perturbation", "q_data")
            cells = []
            for key in (k for k in keys if k in diags[0]):
                values = [d[key] for d in diags]
                cells.append(f"{key} {np.mean(values):.2f} [{min(values):.2f}, {max(values):.2f}]")
            lines.append(f"| {tier} | {refs.algorithm_label(algo)} | {len(diags)} | {'; '.join(cells)} |")
    return "\n".join(lines)


def iqm(results_dir: Path, reps: int = 2000) -> str:
    """rliable's IQM of each algorithm's normalised scores over the Spread tiers present x its seeds, with 95%
    stratified bootstrap intervals (analysis/stats.py), for the algorithms that have every such tier."""
    from marlbench.analysis.stats import aggregate_intervals

    runs = read_results(results_dir, curves=False).runs
    runs = runs[runs["task"].isin([f"mpe/spread-{t}" for t in TIERS])]
    tiers = runs["task"].nunique()
    scores = {}
    for algo, sub in runs.groupby("algorithm"):
        table = sub.pivot_table(index="seed", columns="task", values="normalised_score")
        if table.shape[1] == tiers and not table.isna().any().any():
            scores[algo] = table.to_numpy()
    intervals = aggregate_intervals(scores, reps=reps)
    lines = ["| algorithm | IQM [95% CI] | mean [95% CI] | runs |", "|---|---|---|---|"]
    for algo in sorted(intervals, key=lambda a: -intervals[a]["iqm"].point):
        lines.append(f"| {refs.algorithm_label(algo)} | {intervals[algo]['iqm'].fmt()} | "
                     f"{intervals[algo]['mean'].fmt()} | {scores[algo].size} |")
    lines.append("")
    lines.append(f"IQM and mean over {tiers} Spread tier(s) x seeds (normalised), 95% stratified-bootstrap "
                 f"intervals ({reps} resamples, seed 0).")
    return "\n".join(lines)


def with_average(scores: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
    tasks = [f"mpe/spread-{t}" for t in TIERS]
    if not all(t in scores for t in tasks):  # a partial set (tiers still running): no average
        return scores
    algos = set.intersection(*(set(scores.get(t, {})) for t in tasks))
    return {**scores, "average": {a: float(np.mean([scores[t][a] for t in tasks])) for a in algos}}


def paper_scores(corrected: bool) -> dict[str, dict[str, float]]:
    section = refs.paper_section("mpe/spread-expert")
    out = {task: {a: c.mean for a, c in cells.items()} for task, cells in section.cells.items()}
    if corrected:  # put the OMAR paper's own numbers back under the method that produced them
        cited = section.cited[0]
        for task, cells in cited.cells.items():
            out[task]["icq"], out[task]["omar"] = cells["ma-icq"].mean, cells["omar"].mean
    out["average"] = {a: float(np.mean([out[f"mpe/spread-{t}"][a] for t in TIERS])) for a in out["mpe/spread-expert"]}
    return out


def rho(ours: dict[str, float], theirs: dict[str, float]) -> tuple[float, list[str]]:
    common = sorted(set(ours) & set(theirs))
    return float(spearmanr([ours[a] for a in common], [theirs[a] for a in common]).statistic), common


def ranking(scores: dict[str, float]) -> str:
    return " > ".join(f"{refs.algorithm_label(a)} {v:.1f}" for a, v in sorted(scores.items(), key=lambda kv: -kv[1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    here = Path(__file__).parent
    parser.add_argument("--results", type=Path, default=here)
    parser.add_argument("--old", type=Path, help="an earlier set of records to rank beside")
    parser.add_argument("--out", type=Path, help="write the Markdown here as well as to stdout")
    args = parser.parse_args()
    sets = {"new": with_average(means(args.results))}
    if args.old:
        sets["old"] = with_average(means(args.old))
    printed, corrected = paper_scores(False), paper_scores(True)
    lines = ["| tier | set | ranking | rho vs paper (printed) | rho vs paper (ICQ/OMAR swap corrected) | rho new vs old |",
             "|---|---|---|---|---|---|"]
    present = [t for t in (*TIERS, "average") if (t if t == "average" else f"mpe/spread-{t}") in sets["new"]]
    for tier in present:
        task = tier if tier == "average" else f"mpe/spread-{tier}"
        for name, scores in sets.items():
            r_printed, common = rho(scores[task], printed[task])
            r_corrected, _ = rho(scores[task], corrected[task])
            n = f" (n={len(common)})"
            r_old = (f"{rho(sets['new'][task], sets['old'][task])[0]:+.2f}"
                     if name == "new" and task in sets.get("old", {}) else "")
            lines.append(f"| {tier} | {name} | {ranking(scores[task])} | {r_printed:+.2f}{n} | {r_corrected:+.2f}{n} | "
                         f"{r_old} |")
        lines.append(f"| {tier} | paper | {ranking(printed[task])} | | | |")
    lines.append("")
    lines.append("rho is Spearman's rank correlation over the n algorithms both rankings have (the paper's MPE rows "
                 "have MACQL, MATD3BC, ICQ, OMAR, OMIGA and MAC-Flow); with n this small it says little.")
    text = "\n\n".join(["\n".join(lines), iqm(args.results), convergence(args.results), mechanism(args.results)])
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()

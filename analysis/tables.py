"""`marlbench table`: the paper's Table 1 / Table 2 layouts (or any results) as Markdown, LaTeX and CSV.

Rows are datasets grouped by benchmark, columns are algorithms. A cell holds mean +- 2 std over seeds (population
std, ddof = 0) of the final policy's score: the raw return where the paper prints returns (SMAC, MA-MuJoCo), the
normalised score where it prints those (MPE); a table of other results uses normalised scores where every task has
fixed references. Per row, the best displayed mean is bold and the second underlined (dense ranking of the rounded
means, so ties share a mark). Each benchmark gets an average row (mean over its datasets of the cell means, only for
columns with every dataset present). Paper rows carry the published values and marks (configs/reference/), and
each row says whether our numbers are comparable with the paper's (same dataset source and the paper profile); a
section's notes on the published values (configs/reference/, e.g. where the paper's MPE numbers come from) follow
its rows.
A cell whose runs had not converged is marked: ‡ when its learning curves still rise or fall over the last quarter
of the budget, ? when their evaluations are too noisy to tell (analysis/convergence.py; the notes count both).
Below the table, rliable aggregates over the table's tasks: IQM, mean, median and optimality gap of the normalised
scores with 95% stratified-bootstrap intervals (analysis/stats.py).

``metric`` (`marlbench table --metric`) picks what every cell shows instead of the layout's own choice: ``return``,
``normalised`` or ``win-rate`` (percent of the final evaluation's episodes won; only environments that report
battles, SMAX and SMAC, record it). A cell whose records lack the chosen value reads "n/a"; the paper's values are
shown only beside the unit the paper printed (it reports no win rates), and the rliable aggregates always use the
normalised score. The default (``auto``) is the layout's choice described above.
"""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from marlbench.analysis import convergence as conv
from marlbench.analysis import references as refs
from marlbench.analysis import stats
from marlbench.analysis.reader import Results, ResultsError
from marlbench.errors import UnknownNameError
from marlbench.results import atomic_write_bytes

FORMATS = ("md", "latex", "csv")
METRICS = ("auto", "return", "normalised", "win-rate")  # `--metric`: auto is each section's own (the paper's) unit
NOT_AVAILABLE = "n/a"  # a cell whose runs exist but whose records lack the chosen metric (e.g. win rate off SMAC)
EXTENSIONS = {"md": ".md", "latex": ".tex", "csv": ".csv"}
PM = "±"


@dataclass
class Cell:
    algorithm: str
    task: str
    values: np.ndarray  # one per seed, sorted by seed
    seeds: list[int]
    sources: list[str]
    profiles: list[str]
    rank: int | None = None
    paper: refs.PaperCell | None = None
    comparable: bool | None = None
    why_not: str = ""
    convergence: conv.Convergence | None = None  # the plateau test of the cell's learning curves

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def mean(self) -> float | None:  # None: runs exist but none recorded the metric (shown as n/a)
        return float(np.mean(self.values)) if self.n else None

    @property
    def std(self) -> float | None:
        return float(np.std(self.values)) if self.n else None  # population std (ddof = 0), as `marlbench run` prints


@dataclass
class Row:
    task: str
    benchmark: str
    scenario: str
    quality: str
    cells: dict[str, Cell | None]
    paper: dict[str, refs.PaperCell] = field(default_factory=dict)

    @property
    def comparability(self) -> str:
        present = [c for c in self.cells.values() if c is not None]
        if not self.paper or not present:
            return ""
        if all(c.comparable for c in present):
            return "comparable"
        reasons = sorted({c.why_not for c in present if not c.comparable})
        return "not comparable: " + "; ".join(reasons)


@dataclass
class Section:
    benchmark: str
    label: str
    metric: str  # "return", "normalised" or (chosen with `--metric`) "win-rate"
    rows: list[Row]
    average: dict[str, float | None] = field(default_factory=dict)
    average_rank: dict[str, int | None] = field(default_factory=dict)
    paper_average: dict[str, refs.PaperCell] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # remarks on the section's published values (configs/reference)


@dataclass
class Table:
    name: str
    title: str
    algorithms: list[str]
    sections: list[Section]
    seeds: list[int]
    decimals: int = 1
    aggregates: dict[str, dict[str, stats.Interval]] | None = None
    aggregate_tasks: list[str] = field(default_factory=list)
    aggregate_runs: dict[str, int] = field(default_factory=dict)
    reps: int = stats.DEFAULT_REPS
    seed: int = stats.DEFAULT_SEED
    notes: list[str] = field(default_factory=list)
    show_paper: bool = True
    profiles: list[str] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)
    metric: str = "auto"  # `--metric`: auto (each section's own) or the one every section shows

    @property
    def stem(self) -> str:
        """File name (and LaTeX label) of the table: the suite, with the metric when one was chosen."""
        return self.name if self.metric == "auto" else f"{self.name}_{self.metric.replace('-', '_')}"

    def fmt(self, x: float | None) -> str:
        return "-" if x is None else f"{x:.{self.decimals}f}"

    def cell_text(self, cell: Cell | None) -> str:
        if cell is None:
            return "-"
        if not cell.n:
            return NOT_AVAILABLE
        text = f"{self.fmt(cell.mean)} {PM} {self.fmt(2 * cell.std)}"
        if cell.n != len(self.seeds):
            text += f" (n={cell.n})"
        return text + convergence_mark(cell)


# --------------------------------------------------------------------------------------------- build
CONVERGENCE_MARKS = {conv.RISING: "‡", conv.FALLING: "‡", conv.UNDETERMINED: "?"}


def convergence_mark(cell: Cell | None) -> str:
    """'‡' (still rising or falling at the budget), '?' (too noisy to tell) or '' (plateau, or no usable curve)."""
    if cell is None or cell.convergence is None:
        return ""
    return CONVERGENCE_MARKS.get(cell.convergence.verdict, "")


def _dense_ranks(values: dict[str, float | None], decimals: int) -> dict[str, int | None]:
    shown = {a: round(v, decimals) for a, v in values.items() if v is not None}
    levels = sorted(set(shown.values()), reverse=True)
    return {a: (levels.index(shown[a]) + 1 if a in shown else None) for a in values}


def _metric_column(metric: str) -> str:
    return {"normalised": "normalised_score", "win-rate": "win_rate"}.get(metric, "return")


METRIC_SCALE = {"win-rate": 100.0}  # win rates are recorded as fractions and shown in percent


def _sections_auto(results: Results) -> list[tuple[str, str, str, list[str]]]:
    by_bench: dict[str, list[str]] = {}
    for task in results.tasks:
        by_bench.setdefault(refs.split_task(task)[0], []).append(task)
    order = sorted(by_bench, key=refs.benchmark_sort_key)
    out = []
    for bench in order:
        tasks = by_bench[bench]
        # the paper's unit where the paper printed these tasks (SMAC and MA-MuJoCo: returns), so the paper's rows
        # sit beside values in the same unit; elsewhere normalised scores where every task has references
        printed = {_paper_metric(t) for t in tasks} - {None}
        if len(printed) == 1:
            metric = printed.pop()
        else:
            metric = "normalised" if all(refs.reference(t) is not None for t in tasks) else "return"
        out.append((bench, refs.benchmark_label(bench), metric, tasks))
    return out


def _paper_notes(tasks: list[str]) -> list[str]:
    """The notes of every paper section holding one of ``tasks`` (for the ``auto`` layout), in table order."""
    out: list[str] = []
    for task in tasks:
        section = refs.paper_section(task)
        out += [n for n in (section.notes if section else ()) if n not in out]
    return out


def build_table(results: Results, suite: str = "auto", allow_missing: bool = False, decimals: int = 1,
                bootstrap: bool = True, reps: int = stats.DEFAULT_REPS, seed: int = stats.DEFAULT_SEED,
                show_paper: bool = True, metric: str = "auto") -> Table:
    """Assemble the table (``suite``: ``table1``, ``table2`` or ``auto`` = every task and algorithm present).
    ``metric`` (one of METRICS) is what the cells show: ``auto`` = each section's own unit (the paper's)."""
    if metric not in METRICS:
        raise UnknownNameError("table metric", metric, METRICS)
    chosen = None if metric == "auto" else metric
    if suite in refs.PAPER_TABLES:
        pt = refs.paper_table(suite)
        algorithms, title, name = list(pt.algorithms), pt.title, suite
        layout = [(s.benchmark, s.label, s.metric, list(s.tasks)) for s in pt.sections]
        paper_sections = {s.benchmark: s for s in pt.sections}
    elif suite == "auto":
        algorithms, title, name = results.algorithms, "Results", "results"
        layout, paper_sections = _sections_auto(results), {}
    else:
        raise UnknownNameError("table suite", suite, ("auto",) + refs.PAPER_TABLES)
    tasks = [t for _, _, _, ts in layout for t in ts]
    hint = "pass --allow-missing (build_table(allow_missing=True)) to render the table with gaps"
    if allow_missing:
        cells_missing, seeds_missing, expected = results.missing(algorithms, tasks)
        if len(cells_missing) == len(algorithms) * len(tasks):
            raise ResultsError(f"no results for any cell of {name}: tasks {', '.join(tasks[:5])}... x algorithms "
                               f"{', '.join(algorithms)}; found tasks {', '.join(results.tasks)}")
    else:
        expected = results.require_complete(algorithms, tasks, what=name, hint=hint)
        cells_missing, seeds_missing = [], {}
    table = Table(name=name, title=title, algorithms=algorithms, sections=[], seeds=expected, decimals=decimals,
                  reps=reps, seed=seed, show_paper=show_paper, metric=metric)
    if cells_missing or seeds_missing:
        table.notes.append(f"incomplete: {len(cells_missing)} empty cells, {len(seeds_missing)} cells with missing "
                           f"seeds (shown with their n)")

    runs = results.runs[results.runs["algorithm"].isin(algorithms) & results.runs["task"].isin(tasks)]
    table.profiles = sorted({str(p) for p in runs["profile"]})
    table.sources = sorted({str(p) for p in runs["source"]})
    grouped = {key: g.sort_values("seed") for key, g in runs.groupby(["task", "algorithm"])}
    curves = results.curves
    convergence = conv.convergence_by_cell(curves[curves["algorithm"].isin(algorithms) & curves["task"].isin(tasks)])
    hidden_paper: set[str] = set()  # units the paper printed that differ from the chosen metric
    for bench, label, layout_metric, section_tasks in layout:
        metric = chosen or layout_metric
        column, scale = _metric_column(metric), METRIC_SCALE.get(metric, 1.0)
        ps = paper_sections.get(bench)
        # a chosen metric shows the published values (and the notes on them) only beside the unit the paper printed
        if ps is not None:
            section_notes = list(ps.notes) if chosen is None or ps.metric == chosen else []
        else:
            section_notes = _paper_notes([t for t in section_tasks if chosen is None or _paper_metric(t) == chosen])
        section = Section(bench, label, metric, [], paper_average=dict(ps.average) if ps else {},
                          notes=section_notes)
        if chosen is not None and ps and ps.metric != chosen:
            section.paper_average = {}
            hidden_paper.add(ps.metric)
        for task in section_tasks:
            _, scenario, quality = refs.split_task(task)
            paper_row = ps.cells.get(task, {}) if ps else {}
            if not paper_row and suite == "auto":
                paper_row = {a: c for a in algorithms if (c := refs.paper_cell(task, a)) is not None}
            if chosen is not None and paper_row and _paper_metric(task) != chosen:
                hidden_paper.add(_paper_metric(task) or "")
                paper_row = {}
            sources = ps.paper_sources if ps else refs.paper_sources(task)
            cells: dict[str, Cell | None] = {}
            for algo in algorithms:
                g = grouped.get((task, algo))
                if g is None:
                    cells[algo] = None
                    continue
                vals = g[column].to_numpy(dtype=float)
                seeds = [int(s) for s in g["seed"]]
                if chosen is not None:  # seeds whose records lack the chosen metric leave the cell (n/a if all do)
                    seeds = [s for s, v in zip(seeds, vals) if not np.isnan(v)]
                    vals = vals[~np.isnan(vals)] * scale
                elif np.isnan(vals).any():
                    raise ResultsError(f"{task} x {algo}: no {metric} score in some records (task without fixed "
                                       f"references?)")
                cell = Cell(algo, task, vals, seeds,
                            sorted({str(s) for s in g["source"]}), sorted({str(p) for p in g["profile"]}),
                            paper=paper_row.get(algo), convergence=convergence.get((algo, task)))
                if paper_row:
                    why = []
                    bad_sources = [s for s in cell.sources if not refs.same_source(s, tuple(sources or ()))]
                    if bad_sources:
                        why.append(f"data {'/'.join(bad_sources)} (paper: {'/'.join(sources or ())})")
                    if any(p != "paper" for p in cell.profiles):
                        why.append(f"profile {'/'.join(cell.profiles)}")
                    cell.comparable, cell.why_not = not why, ", ".join(why)
                cells[algo] = cell
            ranks = _dense_ranks({a: (c.mean if c else None) for a, c in cells.items()}, decimals)  # n/a: None
            for a, c in cells.items():
                if c is not None:
                    c.rank = ranks[a]
            section.rows.append(Row(task, bench, scenario, quality, cells, paper_row))
        for algo in algorithms:
            means = [r.cells[algo].mean for r in section.rows if r.cells[algo] is not None and r.cells[algo].n]
            section.average[algo] = float(np.mean(means)) if len(means) == len(section.rows) else None
        section.average_rank = _dense_ranks(section.average, decimals)
        table.sections.append(section)

    _metric_notes(table, chosen, hidden_paper, bootstrap)
    _convergence_notes(table)
    _tuning_note(table, runs)
    for bench_section in table.sections:
        reasons = sorted({r.comparability for r in bench_section.rows if r.comparability.startswith("not")})
        for reason in reasons:
            table.notes.append(f"{bench_section.label}: {reason}")
    if bootstrap:
        _aggregates(table, results, tasks, algorithms, reps, seed)
    return table


def _paper_metric(task: str) -> str | None:
    """The unit the paper printed for a task ("return" or "normalised"), None when the paper has no such task."""
    section = refs.paper_section(task)
    return section.metric if section is not None else None


def _metric_notes(table: Table, chosen: str | None, hidden_paper: set[str], bootstrap: bool) -> None:
    """What a chosen ``--metric`` shows and leaves out (nothing for the default)."""
    if chosen is None:
        return
    if chosen == "win-rate":
        table.notes.append("win rate: percent of the final evaluation's episodes that ended in a won battle; only "
                           "recorded for environments that report battles (SMAX, SMAC). n/a: the records hold no "
                           "win rate (other environments, or records written before win rate was recorded)")
    elif any(not c.n for s in table.sections for r in s.rows for c in r.cells.values() if c is not None):
        table.notes.append(f"n/a: the records hold no {_metric_text(chosen)} (tasks without fixed references)")
    if table.show_paper and hidden_paper:
        printed = " and ".join(sorted(_metric_text(m) for m in hidden_paper if m))
        table.notes.append(f"the paper's values are left out where it printed {printed}, not "
                           f"{_metric_text(chosen)}")
    if bootstrap and chosen != "normalised":
        table.notes.append(f"the rliable aggregates below use normalised scores, not the cells' "
                           f"{_metric_text(chosen)}")


def _tuning_note(table: Table, runs) -> None:
    """How each algorithm's hyperparameters were chosen: "tuned (k trials per task)", "published values" (`--tuned
    paper`) or "defaults"."""
    parts = []
    for algo in table.algorithms:
        trials = runs.loc[runs["algorithm"] == algo, "tuning_trials"]
        sources = runs.loc[runs["algorithm"] == algo, "tuning_source"] if "tuning_source" in runs else trials * 0
        if trials.empty:
            continue
        if (sources == "published").all():
            parts.append(f"{refs.algorithm_label(algo)} published values (paper App. E/F.1)")
        elif trials.isna().all():
            parts.append(f"{refs.algorithm_label(algo)} defaults")
        elif trials.notna().all() and trials.nunique() == 1:
            parts.append(f"{refs.algorithm_label(algo)} tuned ({int(trials.iloc[0])} trials per task)")
        else:
            parts.append(f"{refs.algorithm_label(algo)} mixed (tuned in {int(trials.notna().sum())} of {len(trials)} "
                         f"runs)")
    if parts:
        table.notes.append("hyperparameters: " + "; ".join(parts))


def _convergence_notes(table: Table) -> None:
    """Count the cells per convergence verdict, and say what the marks mean."""
    verdicts: dict[str, list[str]] = {}
    for section in table.sections:
        for row in section.rows:
            for algo, cell in row.cells.items():
                if cell is not None:
                    verdict = cell.convergence.verdict if cell.convergence else conv.UNKNOWN
                    verdicts.setdefault(verdict, []).append(f"{refs.algorithm_label(algo)} on {row.task}")
    if not verdicts:
        return
    text = (f"convergence (plateau test of the learning curves, analysis/convergence.py; tolerance {conv.TOLERANCE:g} "
            f"normalised points over the last quarter of the budget): {len(verdicts.get(conv.PLATEAU, []))} cells "
            f"converged")
    moving = verdicts.get(conv.RISING, []) + verdicts.get(conv.FALLING, [])
    if moving:
        text += f"; ‡ still rising or falling at the budget ({len(moving)}): {', '.join(moving)}"
    if conv.UNDETERMINED in verdicts:
        text += (f"; ? {len(verdicts[conv.UNDETERMINED])} cells whose curve evaluations are too noisy to tell "
                 f"(more curve-evaluation episodes or points would decide)")
    if conv.UNKNOWN in verdicts:
        text += (f"; {len(verdicts[conv.UNKNOWN])} cells without a usable curve (fewer than two evaluations in the "
                 f"last quarter, or records that predate the recorded evaluation std)")
    table.notes.append(text)


def _aggregates(table: Table, results: Results, tasks: list[str], algorithms: list[str], reps: int,
                seed: int) -> None:
    """rliable aggregates over the tasks with fixed references where every algorithm has the same seeds."""
    usable = [t for t in tasks if refs.reference(t) is not None]
    dropped_no_ref = sorted(set(tasks) - set(usable))
    complete = []
    scores = {}
    for task in usable:
        if all(not results.missing([a], [task], table.seeds)[0] and not results.missing([a], [task], table.seeds)[1]
               for a in algorithms):
            complete.append(task)
    present = [a for a in algorithms if a in set(results.runs["algorithm"])]
    if dropped_no_ref:
        table.notes.append(f"aggregates exclude tasks without fixed references: {', '.join(dropped_no_ref)}")
    if len(complete) < len(usable):
        table.notes.append(f"aggregates use the {len(complete)} of {len(usable)} tasks where every algorithm has "
                           f"seeds {', '.join(map(str, table.seeds))}")
    if not complete or not present:
        table.notes.append("no aggregates: no task has complete normalised scores for every algorithm")
        return
    for algo in present:
        scores[algo] = results.score_matrix(algo, complete, "normalised_score", seeds=table.seeds)
    table.aggregates = stats.aggregate_intervals(scores, reps=reps, seed=seed)
    table.aggregate_tasks = complete
    table.aggregate_runs = {a: int(x.size) for a, x in scores.items()}


# --------------------------------------------------------------------------------------------- render
def _metric_text(metric: str) -> str:
    return {"normalised": "normalised score 100 (R - random) / (expert - random)",
            "win-rate": "win rate (% of evaluation episodes won)"}.get(metric, "episode return")


def _caption(table: Table) -> list[str]:
    seeds = ", ".join(map(str, table.seeds))
    metrics = "; ".join(f"{s.label}: {_metric_text(s.metric)}" for s in table.sections)
    lines = [f"Cells: mean {PM} 2 std (population std) over seeds {seeds} of the final policy's score ({metrics}). "
             f"Best per row in bold, second underlined (ranked on the displayed means; ties share a mark). "
             f"Profile {', '.join(table.profiles)}; dataset source {', '.join(table.sources)}."]
    if table.show_paper and any(r.paper for s in table.sections for r in s.rows):
        lines.append("`paper` rows: the published values with the paper's own marks (configs/reference/); the last "
                     "column says whether our numbers are comparable (same dataset source, paper profile).")
    return lines


def _agg_caption(table: Table) -> str:
    return (f"rliable aggregates of normalised scores over {len(table.aggregate_tasks)} tasks "
            f"(runs x tasks per algorithm), point estimate [95% CI]: stratified bootstrap over seeds within tasks, "
            f"percentile method, {table.reps} resamples, random state {table.seed}.")


def render_markdown(table: Table) -> str:
    names = [refs.algorithm_label(a) for a in table.algorithms]
    has_paper = table.show_paper and any(r.paper for s in table.sections for r in s.rows)
    header = ["Benchmark", "Task", "Dataset"] + names + (["vs paper"] if has_paper else [])
    out = [f"# {table.title}", ""] + _caption(table) + [""]
    out.append("| " + " | ".join(header) + " |")
    out.append("|" + "|".join(["---"] * 3 + [":---:"] * len(names) + (["---"] if has_paper else [])) + "|")

    def mark(text: str, rank: int | None) -> str:
        return f"**{text}**" if rank == 1 else f"<u>{text}</u>" if rank == 2 else text

    def paper_text(p: refs.PaperCell | None) -> str:
        if p is None:
            return "-"
        text = f"{p.mean:g}" if p.two_std is None else f"{p.mean:g} {PM} {p.two_std:g}"
        return f"**{text}**" if p.mark == "bold" else f"<u>{text}</u>" if p.mark == "underline" else text

    for s in table.sections:
        for i, r in enumerate(s.rows):
            cells = [mark(table.cell_text(r.cells[a]), r.cells[a].rank if r.cells[a] else None)
                     for a in table.algorithms]
            out.append("| " + " | ".join([s.label if i == 0 else "", r.scenario, r.quality.title()] + cells +
                                         ([r.comparability] if has_paper else [])) + " |")
            if has_paper and r.paper:
                out.append("| " + " | ".join(["", "", "*paper*"] + [paper_text(r.paper.get(a))
                                                                     for a in table.algorithms] +
                                             [""]) + " |")
        avg = [mark(table.fmt(s.average[a]), s.average_rank[a]) for a in table.algorithms]
        out.append("| " + " | ".join(["", "", f"*{s.label} average*"] + avg + ([""] if has_paper else [])) + " |")
        if has_paper and s.paper_average:
            out.append("| " + " | ".join(["", "", "*paper average*"] +
                                         [paper_text(s.paper_average.get(a)) for a in table.algorithms] + [""])
                       + " |")
        if table.show_paper:
            for note in s.notes:
                out.append("| " + " | ".join(["", "", "*Note:* " + note.replace("|", "\\|")] +
                                             [""] * (len(names) + has_paper)) + " |")
    if table.aggregates:
        out += ["", _agg_caption(table), "",
                "| Algorithm | " + " | ".join(stats.AGGREGATE_LABELS[k] for k in stats.AGGREGATES) + " | runs |",
                "|---|" + ":---:|" * len(stats.AGGREGATES) + "---:|"]
        for a, agg in table.aggregates.items():
            out.append(f"| {refs.algorithm_label(a)} | " + " | ".join(agg[k].fmt(table.decimals)
                                                                       for k in stats.AGGREGATES) +
                       f" | {table.aggregate_runs[a]} |")
    if table.notes:
        out += ["", "Notes:"] + [f"- {n}" for n in table.notes]
    return "\n".join(out) + "\n"


_TEX = {"\\": r"\textbackslash{}", "_": r"\_", "%": r"\%", "&": r"\&", "#": r"\#", "$": r"\$", "{": r"\{",
        "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}


def _tex(text: str) -> str:
    return "".join(_TEX.get(ch, ch) for ch in text)


def render_latex(table: Table) -> str:
    names = [_tex(refs.algorithm_label(a)) for a in table.algorithms]
    has_paper = table.show_paper and any(r.paper for s in table.sections for r in s.rows)

    def num(text: str, rank: int | None) -> str:
        math = text.replace(PM, r"\pm").replace("‡", r"^{\ddagger}").replace("?", "^{?}")
        body = "--" if text == "-" else text if text == NOT_AVAILABLE else "$" + math + "$"
        return rf"\textbf{{{body}}}" if rank == 1 else rf"\underline{{{body}}}" if rank == 2 else body

    def paper_tex(p: refs.PaperCell | None) -> str:
        if p is None:
            return "--"
        text = f"{p.mean:g}" if p.two_std is None else f"{p.mean:g} {PM} {p.two_std:g}"
        return num(text, 1 if p.mark == "bold" else 2 if p.mark == "underline" else None)

    cols = "lll" + "c" * len(names)
    out = [r"% generated by `marlbench table` - needs \usepackage{booktabs,graphicx}",
           r"\begin{table}[t]", r"\centering",
           r"\caption{" + _tex(table.title) + ". "
           + _tex(" ".join(_caption(table)).replace("`", "")).replace(PM, r"$\pm$")
           + "}",
           rf"\label{{tab:{table.stem}}}", r"\resizebox{\textwidth}{!}{%", rf"\begin{{tabular}}{{{cols}}}",
           r"\toprule", " & ".join(["Benchmark", "Task", "Dataset"] + names) + r" \\", r"\midrule"]
    for k, s in enumerate(table.sections):
        if k:
            out.append(r"\midrule")
        for i, r in enumerate(s.rows):
            cells = [num(table.cell_text(r.cells[a]), r.cells[a].rank if r.cells[a] else None)
                     for a in table.algorithms]
            out.append(" & ".join([_tex(s.label) if i == 0 else "", _tex(r.scenario), _tex(r.quality.title())] +
                                  cells) + r" \\")
            if has_paper and r.paper:
                out.append(" & ".join(["", "", r"\textit{paper}"] + [paper_tex(r.paper.get(a))
                                                                     for a in table.algorithms]) + r" \\")
        out.append(r"\cmidrule{3-" + str(3 + len(names)) + "}")
        out.append(" & ".join(["", "", r"\textit{Average}"] + [num(table.fmt(s.average[a]), s.average_rank[a])
                                                              for a in table.algorithms]) + r" \\")
        if has_paper and s.paper_average:
            out.append(" & ".join(["", "", r"\textit{paper}"] + [paper_tex(s.paper_average.get(a))
                                                                 for a in table.algorithms]) + r" \\")
        if table.show_paper:
            for note in s.notes:
                out.append(rf"\multicolumn{{{3 + len(names)}}}{{p{{\linewidth}}}}{{\footnotesize\textit{{Note:}} "
                           + _tex(note) + r"} \\")
    out += [r"\bottomrule", r"\end{tabular}}", r"\end{table}"]
    if table.aggregates:
        out += ["", r"\begin{table}[t]", r"\centering", rf"\caption{{{_tex(_agg_caption(table))}}}",
                rf"\label{{tab:{table.stem}-aggregates}}", r"\begin{tabular}{l" + "c" * len(stats.AGGREGATES) + "r}",
                r"\toprule", "Algorithm & " + " & ".join(stats.AGGREGATE_LABELS[k] for k in stats.AGGREGATES) +
                r" & runs \\", r"\midrule"]
        for a, agg in table.aggregates.items():
            out.append(_tex(refs.algorithm_label(a)) + " & " +
                       " & ".join(f"${agg[k].point:.{table.decimals}f}$ "
                                  f"[{agg[k].low:.{table.decimals}f}, {agg[k].high:.{table.decimals}f}]"
                                  for k in stats.AGGREGATES) + f" & {table.aggregate_runs[a]}" + r" \\")
        out += [r"\bottomrule", r"\end{tabular}", r"\end{table}"]
    if table.notes:
        out += [""] + [f"% note: {n}" for n in table.notes]
    return "\n".join(out) + "\n"


CSV_COLUMNS = ["table", "row", "benchmark", "task", "scenario", "quality", "algorithm", "metric", "n_seeds",
               "seeds", "mean", "std", "two_std", "display", "rank", "bold", "underline", "paper_mean",
               "paper_two_std", "paper_mark", "comparable", "not_comparable_because", "sources", "profiles",
               "convergence"]
AGG_COLUMNS = ["table", "algorithm", "aggregate", "point", "ci_low", "ci_high", "confidence", "method", "reps",
               "random_state", "tasks", "runs"]


def _f(x: float | None) -> str:
    return "" if x is None else f"{x:.6f}"


def render_csv(table: Table) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CSV_COLUMNS)
    for s in table.sections:
        for r in s.rows:
            for a in table.algorithms:
                c, p = r.cells[a], r.paper.get(a)
                w.writerow([table.name, "cell", s.benchmark, r.task, r.scenario, r.quality, a, s.metric,
                            c.n if c else 0, " ".join(map(str, c.seeds)) if c else "",
                            _f(c.mean if c else None), _f(c.std if c else None),
                            _f(2 * c.std if c and c.n else None),
                            table.cell_text(c), c.rank if c and c.rank else "",
                            int(bool(c and c.rank == 1)), int(bool(c and c.rank == 2)),
                            _f(p.mean if p else None), _f(p.two_std if p else None), (p.mark or "") if p else "",
                            "" if c is None or c.comparable is None else int(c.comparable),
                            c.why_not if c else "", " ".join(c.sources) if c else "",
                            " ".join(c.profiles) if c else "",
                            c.convergence.verdict if c and c.convergence else ""])
        for a in table.algorithms:
            p, v = s.paper_average.get(a), s.average[a]
            rank = s.average_rank[a]
            w.writerow([table.name, "average", s.benchmark, "", "", "", a, s.metric, "", "", _f(v), "", "",
                        table.fmt(v), rank or "", int(rank == 1), int(rank == 2), _f(p.mean if p else None), "",
                        (p.mark or "") if p else "", "", "", "", "", ""])
        for note in s.notes:  # the section's notes on the published values: the text in `display`
            w.writerow([table.name, "note", s.benchmark, "", "", "", "", s.metric] + [""] * 5 + [note] +
                       [""] * (len(CSV_COLUMNS) - 14))
    return buf.getvalue()


def render_aggregates_csv(table: Table) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(AGG_COLUMNS)
    for a, agg in (table.aggregates or {}).items():
        for k in stats.AGGREGATES:
            w.writerow([table.name, a, k, _f(agg[k].point), _f(agg[k].low), _f(agg[k].high), stats.CONFIDENCE,
                        stats.METHOD, table.reps, table.seed, " ".join(table.aggregate_tasks),
                        table.aggregate_runs[a]])
    return buf.getvalue()


def render(table: Table, fmt: str) -> str:
    return {"md": render_markdown, "latex": render_latex, "csv": render_csv}[fmt](table)


def write_table(table: Table, out_dir: Path, formats: tuple[str, ...] = FORMATS) -> list[Path]:
    out_dir = Path(out_dir)
    paths = []
    for fmt in formats:
        path = out_dir / f"{table.stem}{EXTENSIONS[fmt]}"
        atomic_write_bytes(path, render(table, fmt).encode())
        paths.append(path)
        if fmt == "csv" and table.aggregates:
            path = out_dir / f"{table.stem}_aggregates.csv"
            atomic_write_bytes(path, render_aggregates_csv(table).encode())
            paths.append(path)
    return paths

"""Command line: `marlbench list|run|data|behaviour|bench|plot|table|export`.

Usage errors print one clear message and exit with code 2.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from collections import Counter
from pathlib import Path

from marlbench.errors import MarlbenchError, UnknownNameError

USAGE_ERROR = 2


def _catalog() -> None:
    """Register the built-in algorithms and task families. Imported here, not at the top, so `marlbench --help`
    and the analysis commands start without importing torch and every algorithm."""
    from marlbench import catalog

    catalog.load()


def outer_parentheses(text: str) -> list[tuple[int, int]]:
    """(start, end) of every outermost balanced parenthesised part of ``text``, parentheses included."""
    spans, depth, start = [], 0, 0
    for i, char in enumerate(text):
        if char == "(":
            start = i if depth == 0 else start
            depth += 1
        elif char == ")" and depth:
            depth -= 1
            if depth == 0:
                spans.append((start, i + 1))
    return spans


def footnoted(texts: list[str], longest: int = 60) -> tuple[list[str], list[str]]:
    """``texts`` with every outermost parenthesised part that is longer than ``longest`` characters and occurs more
    than once replaced by a note marker ``[k]``, and the notes (the parts without their parentheses) in order."""
    parts = [[text[a + 1:b - 1] for a, b in outer_parentheses(text)] for text in texts]
    counts = Counter(part for found in parts for part in found if len(part) > longest)
    notes: dict[str, int] = {}
    out = []
    for text in texts:
        pieces, last = [], 0
        for a, b in outer_parentheses(text):
            inner = text[a + 1:b - 1]
            if counts[inner] > 1:
                pieces += [text[last:a].rstrip(), f" [{notes.setdefault(inner, len(notes) + 1)}]"]
                last = b
        out.append("".join(pieces) + text[last:])
    return out, list(notes)


def cmd_list(args: argparse.Namespace) -> int:
    _catalog()
    from marlbench.registry import ALGORITHMS, TASKS
    from marlbench.tasks import family_of, family_sort_key

    if args.what in ("algos", "all"):
        print("Algorithms (action spaces):")
        for name in ALGORITHMS.names():
            cls = ALGORITHMS.get(name)
            kinds = "/".join(k for k, ok in (("continuous", cls.continuous), ("discrete", cls.discrete)) if ok)
            print(f"  {name:<12} {kinds:<20} {cls.summary}")
    if args.what in ("tasks", "all"):
        print("Tasks by family (aliases) - status:")
        by_family: dict[str, list[str]] = {}
        for name in TASKS.names():
            by_family.setdefault(TASKS.get(name).benchmark, []).append(name)
        benchmarks = sorted(by_family, key=family_sort_key)
        order = [name for benchmark in benchmarks for name in by_family[benchmark]]
        statuses = dict(zip(order, (TASKS.get(name).status() for name in order)))
        # repeated long explanations (StarCraft II's install commands) are printed once, as numbered notes
        short, notes = footnoted([why for _, why in statuses.values()])
        short_of = dict(zip(order, short))
        for benchmark in benchmarks:
            family = family_of(benchmark)
            print(f"  {family.label}: {family.description}" if family else f"  {benchmark}:")
            for name in by_family[benchmark]:
                aliases = ", ".join(TASKS.aliases_of(name))
                print(f"    {'+' if statuses[name][0] else '-'} {name:<34} ({aliases}) - {short_of[name]}")
        if notes:
            print("Notes:")
            for number, text in enumerate(notes, 1):
                print(f"  [{number}] {text}")
    if args.what in ("presets", "all"):
        from marlbench.config import preset_doc, preset_names

        print("Presets (marlbench run --preset NAME; configs/presets/):")
        for name in preset_names():
            doc = preset_doc(name)
            print(f"  {name:<24} {doc['algorithm']:<8} {doc.get('description', '')}")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    _catalog()
    import numpy as np

    from marlbench.config import parse_set_options, resolve
    from marlbench.executors import run_local
    from marlbench.protocol import ensure_dataset, resolve_device
    from marlbench.registry import ALGORITHMS
    from marlbench.tasks import get_task

    algo_cls, task = ALGORITHMS.get(args.algo), get_task(args.task)
    if args.seeds < 1:
        raise MarlbenchError("--seeds must be at least 1")
    if args.workers is not None and args.workers < 1:
        raise MarlbenchError(f"--workers must be at least 1, got {args.workers} (omit it for one per core)")
    if args.first_seed < 0:
        raise MarlbenchError(f"--first-seed must be 0 or more, got {args.first_seed}")
    from marlbench.families.public import bind_dataset, describe_resolution

    log = (lambda msg: print(msg, file=sys.stderr)) if args.json else print
    if (notice := describe_resolution(args.task, task)) is not None:
        log(f"task {notice}")
    if args.dataset:
        task = bind_dataset(task, args.dataset)
        log(f"task {task.name}: {task.description}")
    task.require_runnable()
    algo_cls.check_compatible(task.spec)
    overrides = parse_set_options(args.set or [])
    tuned_record = None
    if args.tuned:
        from marlbench.sweep import tuned_values
        from marlbench.tuning import load_tuned

        tuned = load_tuned(args.tuned)
        values = tuned_values(tuned, algo_cls.name, task.name)
        clash = sorted(set(values) & set(overrides))
        if clash:
            raise MarlbenchError(f"--set {clash[0]} and --tuned {args.tuned} both set {clash[0]}; drop one of them")
        if values:
            overrides, tuned_record = {**overrides, **values}, {**tuned[1], "values": values}
            log(f"--tuned {args.tuned}: {algo_cls.name} on {task.name} uses " +
                ", ".join(f"{k}={v}" for k, v in values.items()))
        else:
            log(f"--tuned {args.tuned}: no value for {algo_cls.name} on {task.name}; it runs with its defaults")
    resolved = resolve(algo_cls, task.benchmark, args.profile, args.steps, overrides, preset=args.preset,
                       task=task.name)
    if tuned_record is not None:
        import dataclasses

        resolved = dataclasses.replace(resolved, tuning=tuned_record)
    if args.variant is not None:
        import dataclasses

        from marlbench.config import check_variant

        resolved = dataclasses.replace(resolved, variant=check_variant(args.variant, "--variant"))
    resolve_device(args.device)
    ensure_dataset(task, log)
    seeds = list(range(args.first_seed, args.first_seed + args.seeds))
    records = run_local(algo_cls.name, task, seeds, resolved, Path(args.results), args.device,
                        args.workers, show_progress=not args.no_progress)
    if args.json:
        print(json.dumps(records, indent=2))
        return 0
    from marlbench.config import variant_name

    print(f"\n{variant_name(algo_cls.name, resolved.variant)} on {task.name} - profile {resolved.profile}, "
          f"{resolved.protocol.steps} steps, "
          f"{resolved.protocol.eval_episodes} evaluation episodes per seed")
    print(f"{'seed':>4}  {'return':>9}  {'normalised':>10}  {'inference ms':>12}  {'train s':>8}  {'eval s':>7}")
    for r in records:
        norm = "n/a" if r["normalised_score"] is None else f"{r['normalised_score']:.1f}"
        note = "  (already complete)" if r.get("skipped") else ""
        eval_s = "n/a" if r.get("eval_seconds") is None else f"{r['eval_seconds']:.2f}"  # older records lack it
        print(f"{r['seed']:>4}  {r['return_mean']:>9.1f}  {norm:>10}  {r['inference_ms']:>12.3f}  "
              f"{r['train_seconds']:>8.1f}  {eval_s:>7}{note}")
    for label, key in (("return", "return_mean"), ("normalised", "normalised_score"), ("win rate", "win_rate"),
                       ("inference ms", "inference_ms"), ("train s", "train_seconds"), ("eval s", "eval_seconds")):
        values = [r[key] for r in records if r.get(key) is not None]
        if values:
            print(f"{label + ':':<14} {np.mean(values):.3f} +- {np.std(values):.3f} (mean +- std over "
                  f"{len(values)} seeds)")
    print(f"records: {Path(args.results) / task.name / algo_cls.name / records[0]['run_id']}")
    return 0


def cmd_sweep(args: argparse.Namespace) -> int:
    """`marlbench sweep SUITE`: every (algorithm, task, seed) of a suite (marlbench/sweep.py, docs/SWEEPS.md)."""
    from marlbench.sweep import Suite, describe_plan, expand, run_sweep
    from marlbench.tuning import load_tuned

    suite = Suite.load(args.suite).subset(args.tasks, args.algorithms)
    results = Path(args.results)
    tuned = load_tuned(args.tuned) if args.tuned else None
    if args.dry_run:
        for line in describe_plan(suite, expand(suite, tuned, results_root=results), results):
            print(line)
        return 0
    summary = run_sweep(suite, results, args.executor, args.workers, args.retries, args.address, args.device,
                        show_progress=not args.no_progress, tuned=tuned)
    print(f"suite {suite.name}: {len(summary.complete)} seeds complete, {len(summary.failed)} failed, "
          f"{len(summary.skipped)} algorithm/task pairs skipped, {summary.seconds:.0f} s")
    for label, attempts in summary.retried.items():
        print(f"  retried: {label} ({attempts} failed attempt(s) before it completed)")
    for label, error in summary.failed.items():
        print(f"  failed: {label}: {error}")
    if summary.failed:
        print("re-run the same command to retry the failed seeds (complete ones are skipped)")
    return 0 if summary.ok else 1


def cmd_tune(args: argparse.Namespace) -> int:
    """`marlbench tune SUITE`: the equal-budget grid on tuning seeds, then the selection (marlbench/tuning.py)."""
    from marlbench.sweep import Suite, describe_plan, expand
    from marlbench.tuning import tune, tuning_suite

    suite = Suite.load(args.suite).subset(args.tasks, args.algorithms)
    out = Path(args.out or f"configs/tuned/{suite.profile}.yaml")
    results = Path(args.results)
    if args.dry_run:
        grid = tuning_suite(suite)
        for line in describe_plan(grid, expand(grid, results_root=results), results):
            print(line)
        return 0
    summary, selection = tune(suite, results, out, args.executor, args.workers, args.retries, args.address,
                              args.device, show_progress=not args.no_progress)
    if selection is None:
        for label, error in summary.failed.items():
            print(f"  failed: {label}: {error}")
        print("some tuning runs failed; re-run the same command to retry them (complete ones are skipped)")
        return 1
    print(f"tuned {len(selection['values'])} algorithms on {len(selection['tasks'])} tasks, "
          f"{selection['trials_per_task']} trials per task on seeds {selection['tuning_seeds']} -> {out}")
    for algo, tasks in selection["values"].items():
        for task, values in tasks.items():
            edge = "  (best at the grid's edge: the optimum may lie outside it)" \
                if task in selection["at_grid_edge"].get(algo, []) else ""
            print(f"  {algo:<10} {task:<32} {values}{edge}")
    if selection["untuned"]:
        print(f"  no grid (defaults): {', '.join(selection['untuned'])}")
    return 0


def cmd_data(args: argparse.Namespace) -> int:
    """`marlbench data ACTION`: the action's options, unpacked into its typed function in marlbench/cli/data.py."""
    _catalog()
    from marlbench.cli import data as commands

    a = args
    if a.action == "generate":
        return commands.generate(a.names, episodes=a.episodes, seed=a.seed, out=a.out, force=a.force)
    if a.action == "path":
        return commands.show_path(a.names)
    if a.action == "info":
        return commands.info(a.names, file=a.file, task=a.task, fmt=a.format, uid=a.uid, source_seed=a.source_seed,
                             markdown=a.markdown, png=a.png, card_dir=a.card_dir, as_json=a.json)
    if a.action == "download":
        return commands.download(a.names, all_datasets=a.all, archive=a.archive, url=a.url, retries=a.retries,
                                 timeout=a.timeout, progress=not a.no_progress, force=a.force)
    if a.action == "convert":
        return commands.convert(a.names, task=a.task, fmt=a.format, uid=a.uid, source_seed=a.source_seed, out=a.out)
    if a.action == "subsample":
        return commands.subsample(a.names, out=a.out, episodes=a.episodes, transitions=a.transitions, seed=a.seed,
                                  match=a.match, task=a.task, fmt=a.format, uid=a.uid, source_seed=a.source_seed)
    if a.action == "combine":
        return commands.combine(a.names, out=a.out, task=a.task)
    raise MarlbenchError(f"unknown data action {args.action!r}")


def cmd_behaviour(args: argparse.Namespace) -> int:
    _catalog()
    from marlbench.behaviour import tiers
    from marlbench.behaviour.envs import get_env
    from marlbench.behaviour.trainer import config_with_overrides, default_command, make_trainer
    from marlbench.config import parse_set_options

    if args.action == "train":
        env = get_env(args.env)
        overrides = parse_set_options(args.set or [])
        overrides.setdefault("env", env.name)
        for key in ("seed", "env_steps"):
            if getattr(args, key) is not None:
                overrides[key] = getattr(args, key)
        cfg = config_with_overrides(overrides)
        out = Path(args.out or f"results/behaviour/{env.name}/seed_{cfg.seed}")
        trainer = make_trainer(cfg, out, command=default_command())  # MATD3 or QMIX, by the action kind
        print(f"training {trainer.algorithm} behaviour policies on {env.name}: {cfg.env_steps} env steps, seed "
              f"{cfg.seed} -> {out}")
        record = trainer.run()
        if "tiers" not in record:  # QMIX: tiers are chosen from the curve at export
            print(record["summary"])
            if args.export:
                _export_tiers(out, Path(args.export))
            return 0
        t = record["tiers"]

        def score(tier: dict) -> str:
            norm = "" if tier["normalised"] is None else f"{tier['normalised']:.1f} normalised, "
            return f"{norm}return {tier['return_mean']:.1f} at {tier['env_steps']} env steps"

        print(f"done in {record['train_seconds']:.0f}s: expert {score(t['expert'])}; medium {score(t['medium'])}; "
              f"uniform random return {t['random_return']:.1f}")
        if args.export:
            _export_tiers(out, Path(args.export))
        return 0
    if args.action == "export":
        _export_tiers(Path(args.env), Path(args.out or "weights"))
        return 0
    # replay: the exact Medium-Replay cut of a run's replay history
    from marlbench.data.formats.native import save_native

    dataset = tiers.medium_replay_from_run(Path(args.env))
    out = Path(args.out or "medium-replay.h5")
    save_native(dataset, out)
    print(f"wrote {out}: {dataset.n_episodes} episodes, {dataset.n_transitions} transitions, "
          f"sha256 {dataset.checksum()}")
    return 0


def _export_tiers(run: Path, out: Path) -> None:
    """Export a behaviour run's tier weights and manifest: MATD3 (tiers.py) or QMIX (smax_tiers.py)."""
    from marlbench.behaviour import smax_tiers, tiers

    config = run / "config.json"
    if not config.exists():
        raise MarlbenchError(f"{run} holds no behaviour-training run (no config.json)")
    if json.loads(config.read_text()).get("algorithm") == "QMIX":
        manifest = smax_tiers.export_smax_weights(run, out)
        summary = "; ".join(
            f"{q}: {t['episodes']} episodes of {t['env_steps']} env steps in {len(manifest['replay_windows'])} "
            f"windows" if q == "replay" else
            f"{q} {t['env_steps']} env steps, return {t['return_mean']:.3f}, win rate {t['win_rate']:.2f}"
            for q, t in manifest["tiers"].items())
    else:
        manifest = tiers.export_weights(run, out)
        summary = "; ".join(f"{q} {manifest['tiers'][q]['env_steps']} env steps" for q in ("expert", "medium"))
    print(f"exported {manifest['env']} tier weights and manifest to {out}: {summary}")


def _read_results(args: argparse.Namespace):
    from marlbench.analysis.reader import read_results

    results = read_results(args.results or ["results"], profile=args.profile, mix_profiles=args.mix_profiles,
                           latest=args.latest)
    for line in results.warnings:
        print(f"warning: {line}", file=sys.stderr)
    if results.incomplete:
        print(f"note: {len(results.incomplete)} seed(s) without final.json (running or interrupted) are ignored",
              file=sys.stderr)
    return results


def _plot_ablations(args: argparse.Namespace) -> int:
    """`marlbench plot ablations`: Fig. 6-10 from the records of an ablation suite (analysis/ablations.py)."""
    from marlbench.analysis import ablations
    from marlbench.sweep import Suite

    if args.algos or args.bench:
        raise MarlbenchError("plot ablations takes its algorithms from the suite (--suite); --algos and --bench "
                             "are for the other figures")
    suite = Suite.load(args.suite)
    tasks = list(suite.tasks)
    if args.tasks:
        tasks = [t.strip() for t in args.tasks.split(",")]
        for task in tasks:
            if task not in suite.tasks:
                raise UnknownNameError(f"task of suite {suite.name}", task, list(suite.tasks))
    paths = args.results or ["results"]
    results = ablations.read_ablations(paths, args.suite, tasks, args.profile or suite.profile,
                                       mix_profiles=args.mix_profiles, latest=args.latest)
    for line in results.warnings:
        print(f"warning: {line}", file=sys.stderr)
    written, _notes = ablations.plot_ablations(results, tasks, Path(args.out or "results/figures/ablations"))
    for path in written:
        print(f"wrote {path}")
    return 0


def cmd_plot(args: argparse.Namespace) -> int:
    _catalog()
    if args.suite is not None and args.what != "ablations":
        raise MarlbenchError("--suite names the ablation suite of `marlbench plot ablations`")
    if args.what == "ablations":
        args.suite = args.suite or "ablations"
        return _plot_ablations(args)
    if args.what != "games":
        from marlbench.analysis import figures

        out = Path(args.out or "results/figures")
        results = _read_results(args)
        if args.algos or args.tasks:  # e.g. two algorithms' learning curves on one task
            chosen = {}
            for kind, given, have in (("algorithm", args.algos, results.algorithms), ("task", args.tasks,
                                                                                    results.tasks)):
                names = [n.strip() for n in given.split(",")] if given else None
                for name in names or []:
                    if name not in have:
                        raise UnknownNameError(f"{kind} in the results", name, have)
                chosen[kind] = names
            results = results.select(chosen["algorithm"], chosen["task"])
        for path in figures.plot(args.what, results, out, args.reps, args.seed, args.target, bench=args.bench):
            print(f"wrote {path}")
        return 0
    if args.bench:
        raise MarlbenchError("--bench sets the x-axis of `marlbench plot inference` (or results); not of games")
    from marlbench.analysis import games

    for path in games.main(Path(args.out or "results/figures/games"), args.seed, args.steps):
        print(f"wrote {path}")
    return 0


def cmd_table(args: argparse.Namespace) -> int:
    from marlbench.analysis import tables

    table = tables.build_table(_read_results(args), args.suite, allow_missing=args.allow_missing,
                               decimals=args.decimals, bootstrap=not args.no_bootstrap, reps=args.reps,
                               seed=args.seed, show_paper=not args.no_paper, metric=args.metric)
    formats = tables.FORMATS if args.format == "all" else (args.format,)
    if args.out:
        for path in tables.write_table(table, Path(args.out), formats):
            print(f"wrote {path}")
    else:
        print("\n".join(tables.render(table, f) for f in formats), end="")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from marlbench.analysis.export import write_marl_eval

    for path in write_marl_eval(_read_results(args), Path(args.out)):
        print(f"wrote {path}")
    return 0


def _add_results_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--results", action="append", metavar="DIR",
                   help="results root or marl-eval .json file (repeatable; default ./results)")
    p.add_argument("--profile", help="only runs of this profile (paper, quick, ...)")
    p.add_argument("--mix-profiles", action="store_true", help="combine runs of different profiles (refused "
                                                               "otherwise)")
    p.add_argument("--latest", action="store_true",
                   help="when a task x algorithm x seed has several completed runs, keep the latest")


def cmd_bench(args: argparse.Namespace) -> int:
    _catalog()
    from marlbench import bench

    return bench.main(args)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="marlbench", description="Offline multi-agent RL benchmark suite (MAC-Flow).")
    sub = p.add_subparsers(dest="command", required=True)

    ls = sub.add_parser("list", help="registered algorithms and tasks, with availability")
    ls.add_argument("what", nargs="?", choices=("algos", "tasks", "presets", "all"), default="all")
    ls.set_defaults(func=cmd_list)

    run = sub.add_parser("run", help="train and evaluate an algorithm on a task over seeds")
    run.add_argument("--algo", required=True, help="algorithm name (see `marlbench list algos`)")
    run.add_argument("--task", required=True, help="task name or alias (see `marlbench list tasks`)")
    run.add_argument("--seeds", type=int, default=1, help="number of seeds (seed ids first_seed..)")
    run.add_argument("--first-seed", type=int, default=0)
    run.add_argument("--profile", choices=("paper", "quick", "standard"), default="paper",
                     help="paper: the paper's budgets and sizes; quick: small nets and budgets for a laptop CPU; "
                          "standard: quick's nets at the budget where Spread's critics converge (32k steps)")
    run.add_argument("--steps", type=int, help="override the profile's gradient-step budget")
    run.add_argument("--preset", metavar="NAME", help="a published setting from configs/presets/ (applied "
                     "before --set; `marlbench list presets`)")
    run.add_argument("--set", action="append", metavar="KEY=VALUE",
                     help="override an algorithm or protocol config field (repeatable)")
    run.add_argument("--variant", metavar="LABEL", help="label these runs as an ablation variant: they get their own "
                     "run id and are reported as the algorithm ALGO:LABEL (e.g. --variant no-q-max --set "
                     "q_guidance=false)")
    run.add_argument("--tuned", metavar="FILE|paper", help="use the values `marlbench tune` selected for this "
                     "algorithm and task (e.g. configs/tuned/quick.yaml), or `paper`: the paper's published values "
                     "(App. E, F.1); records say so")
    run.add_argument("--results", default="results", help="results root directory (default ./results)")
    run.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    run.add_argument("--workers", type=int, help="parallel seed processes (default: one per core)")
    run.add_argument("--json", action="store_true", help="print the final records as JSON")
    run.add_argument("--no-progress", action="store_true", help="no progress bar")
    run.add_argument("--dataset", metavar="FILE", help="train on this native dataset file (from `marlbench data "
                                                       "convert`) and evaluate in the task's environment; refused if "
                                                       "its shapes do not fit the task. Runs as task <task>@<stem>")
    run.set_defaults(func=cmd_run)

    data = sub.add_parser("data", help="dataset tools", description="Dataset tools (docs/DATASETS.md). "
                          "`marlbench data ACTION --help` shows an action's options.")

    class DataActionParser(argparse.ArgumentParser):  # an option another action takes: refused with this one's usage
        def parse_known_args(self, args=None, namespace=None):
            namespace, extras = super().parse_known_args(args, namespace)
            if extras:
                self.error(f"unrecognized arguments: {' '.join(extras)}")
            return namespace, extras

    data_actions = data.add_subparsers(dest="action", metavar="ACTION", title="actions", parser_class=DataActionParser)

    def data_action(name: str, names_metavar: str, names_help: str, summary: str) -> argparse.ArgumentParser:
        action = data_actions.add_parser(name, help=summary, description=summary[0].upper() + summary[1:] + ".")
        action.add_argument("names", nargs="*", metavar=names_metavar, help=names_help)
        action.set_defaults(func=cmd_data)
        return action

    def source_options(action: argparse.ArgumentParser, task_help: str) -> None:
        action.add_argument("--task", help=task_help)
        action.add_argument("--format", default="auto", choices=("auto", "native", "vault", "omiga", "omar"),
                            help="layout of the source (default: detected)")
        action.add_argument("--uid", help="vault dataset inside a .vlt directory (Good, Medium, Expert, ...)")
        action.add_argument("--source-seed", type=int, help="OMAR: which seed_<s>_data directory (default: the "
                                                            "lowest)")

    generate = data_action("generate", "TASK", "task name or alias",
                           "build a generated task's dataset into its cache (or --out FILE)")
    generate.add_argument("--episodes", type=int, help="episodes (default: the task's documented size)")
    generate.add_argument("--seed", type=int, default=0, help="generator seed (default 0)")
    generate.add_argument("--out", help="write to this file instead of the task's cache (needed for a non-default "
                                        "--episodes or --seed)")
    generate.add_argument("--force", action="store_true", help="regenerate even if the cached file exists (a "
                                                               "damaged one is rebuilt without it)")

    data_action("path", "TASK", "task name or alias", "print where a task's dataset is (or will be) cached")

    info = data_action("info", "TASK|PATH", "a task name or alias, or a dataset file or directory in any layout",
                       "dataset card: size, returns, actions, coverage, and the published card's statistics")
    info.add_argument("--file", help="describe this file or directory (any supported layout) instead of the task's "
                                     "cached dataset")
    source_options(info, "the task a file's data belongs to (checked against it)")
    info.add_argument("--markdown", metavar="FILE", help="also write the dataset card as Markdown")
    info.add_argument("--png", metavar="FILE", help="also write the card's figure (needs the [plot] extra)")
    info.add_argument("--card-dir", metavar="DIR", help="write <task>.md and <task>.png into DIR")
    info.add_argument("--json", action="store_true", help="print the card as JSON")

    download = data_action("download", "TASK|VAULT", "public task names, paper aliases or vault ids",
                           "download public datasets (OG-MARL vaults) and convert them into their tasks' caches")
    download.add_argument("--all", action="store_true", help="every dataset of the manifest")
    download.add_argument("--archive", metavar="ZIP", help="use this manually downloaded archive")
    download.add_argument("--url", help="fetch from this URL instead of the manifest's (a mirror)")
    download.add_argument("--retries", type=int, default=4, help="retries after a failed transfer (default 4)")
    download.add_argument("--timeout", type=float, default=60.0, help="seconds without data before retrying "
                                                                      "(default 60)")
    download.add_argument("--no-progress", action="store_true", help="no progress bar")
    download.add_argument("--force", action="store_true", help="fetch and convert again even if the datasets are "
                                                               "present")

    convert = data_action("convert", "SOURCE", "an OG-MARL vault, OMIGA .hdf5 file, OMAR directory or native file",
                          "convert a dataset in any supported layout into a native HDF5 file")
    source_options(convert, "the task the data belongs to (checked against it; a public task's cache is then the "
                            "default --out)")
    convert.add_argument("--out", help="write to this file (default: the cache of the public task of --task or of "
                                       "the source's published name)")

    subsample = data_action("subsample", "SOURCE", "a dataset file or directory, or a task name",
                            "keep whole episodes of a dataset: --episodes N, --transitions N, or --match SOURCE")
    subsample.add_argument("--episodes", type=int, help="keep N whole episodes")
    subsample.add_argument("--transitions", type=int, help="keep whole episodes up to N transitions")
    subsample.add_argument("--match", metavar="SOURCE", help="follow the return distribution of SOURCE")
    subsample.add_argument("--seed", type=int, default=0, help="selection seed (default 0)")
    subsample.add_argument("--out", help="output file (required; the task's cache is never overwritten)")
    source_options(subsample, "the task the data belongs to (checked against it)")

    combine = data_action("combine", "SOURCE", "two or more dataset files, directories or task names",
                          "concatenate the episodes of two or more datasets")
    combine.add_argument("--out", help="output file (required)")
    combine.add_argument("--task", help="the task the data belongs to (checked against it)")

    def data_without_action(_args: argparse.Namespace) -> int:  # `marlbench data` alone: its help, a usage error
        data.print_help(sys.stderr)
        return USAGE_ERROR

    data.set_defaults(func=data_without_action)

    beh = sub.add_parser("behaviour", help="train behaviour policies online (MATD3, QMIX for discrete actions) and "
                                                 "export their tiers")
    beh.add_argument("action", choices=("train", "export", "replay"),
                     help="train ENV: run the online trainer; export RUN: copy a finished run's tier weights and "
                          "manifest to --out; replay RUN: write the run's exact Medium-Replay dataset to --out")
    beh.add_argument("env", help="environment (train, e.g. mpe/spread) or run directory (export, replay)")
    beh.add_argument("--seed", type=int, help="training seed (default 0)")
    beh.add_argument("--env-steps", type=int, help="joint transitions to collect (default 600k; QMIX 2M)")
    beh.add_argument("--set", action="append", metavar="KEY=VALUE",
                     help="override a trainer, MATD3 or QMIX config field (repeatable), e.g. num_envs=32, lr=1e-3")
    beh.add_argument("--out", help="train: run directory (default results/behaviour/<env>/seed_<s>); "
                                   "export: weights directory; replay: output .h5 file")
    beh.add_argument("--export", metavar="DIR", help="train: export the tier weights and manifest here when done")
    beh.set_defaults(func=cmd_behaviour)

    plot = sub.add_parser("plot", help="figures")
    plot.add_argument("what", choices=("games", "inference", "training", "curves", "profiles", "improvement",
                                       "aggregates", "results", "ablations"),
                      help="games: the didactic games of App. H (Fig. 14-16); from run records (docs/ANALYSIS.md): "
                           "inference (Fig. 1/4), training (Fig. 11), curves (Fig. 12), profiles, improvement, "
                           "aggregates, results (all of these); ablations: Fig. 6-10 from an ablation suite's "
                           "records")
    plot.add_argument("--out", help="output directory (default results/figures/games for games, "
                                    "results/figures/ablations for ablations, else results/figures)")
    plot.add_argument("--suite", help="ablations: the suite whose tasks and profile to plot (default ablations, "
                                      "configs/suites/ablations.yaml)")
    plot.add_argument("--seed", type=int, default=0, help="games: training seed; others: bootstrap random state")
    plot.add_argument("--steps", type=int, help="override the quick profile's games budget (smoke tests)")
    _add_results_options(plot)
    plot.add_argument("--reps", type=int, default=2000, help="bootstrap resamples (default 2000)")
    plot.add_argument("--algos", help="only these algorithms (comma-separated names)")
    plot.add_argument("--tasks", help="only these tasks (comma-separated canonical names)")
    plot.add_argument("--target", default="macflow", help="improvement: the algorithm compared with each baseline")
    plot.add_argument("--bench", metavar="FILE",
                      help="inference: x = ms per joint action at batch 1 (median, IQR) from this `marlbench bench "
                           "inference --json --out FILE` JSON instead of the runs' recorded inference_ms")
    plot.set_defaults(func=cmd_plot)

    table = sub.add_parser("table", help="Tables 1-2 (or any results) with rliable aggregates, from run records")
    table.add_argument("--suite", default="auto", choices=("auto", "table1", "table2"),
                       help="table1/table2: the paper's layouts with its values beside ours; auto: every task and "
                            "algorithm found (default)")
    table.add_argument("--format", default="md", choices=("md", "latex", "csv", "all"))
    table.add_argument("--out", metavar="DIR", help="write <suite>.md/.tex/.csv (+ _aggregates.csv) here instead "
                                                    "of printing")
    _add_results_options(table)
    table.add_argument("--allow-missing", action="store_true", help="render with gaps instead of refusing")
    table.add_argument("--reps", type=int, default=2000, help="bootstrap resamples (default 2000)")
    table.add_argument("--seed", type=int, default=0, help="bootstrap random state (default 0)")
    table.add_argument("--no-bootstrap", action="store_true", help="skip the rliable aggregates")
    table.add_argument("--no-paper", action="store_true", help="leave out the paper's values")
    table.add_argument("--decimals", type=int, default=1)
    table.add_argument("--metric", default="auto", choices=("auto", "return", "normalised", "win-rate"),
                       help="what the cells show: auto (default) = each section's own unit, as the paper prints it; "
                            "return, normalised score, or win-rate (percent of evaluation episodes won; recorded only "
                            "for environments that report battles, SMAX and SMAC, n/a elsewhere)")
    table.set_defaults(func=cmd_table)

    sweep = sub.add_parser("sweep", help="run a suite (algorithms x tasks x seeds) on local processes or Ray",
                           description="Run every (algorithm, task, seed) of a suite file (configs/suites/*.yaml, "
                                       "docs/SWEEPS.md). Complete seeds are skipped, interrupted ones resume, failed "
                                       "ones are retried and then recorded (seed_k/failure.json).")
    sweep.add_argument("suite", help="suite file (e.g. configs/suites/mpe-reference.yaml) or a bundled suite's name")
    sweep.add_argument("--executor", choices=("local", "ray"), default="local",
                       help="local: one process per core (default); ray: one Ray task per seed")
    sweep.add_argument("--address", help="ray: the cluster to join (e.g. auto or ray://head:10001); default: start "
                                         "a local Ray cluster")
    sweep.add_argument("--workers", type=int, help="local: parallel processes (default one per core); ray, local "
                                                   "cluster: its CPUs")
    sweep.add_argument("--retries", type=int, default=1, help="retries of a failing seed before it is recorded as "
                                                              "failed (default 1)")
    sweep.add_argument("--results", default="results", help="results root directory (default ./results); with Ray "
                                                            "it must be visible to every node")
    sweep.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (ray: each task asks for one GPU)")
    sweep.add_argument("--tuned", metavar="FILE|paper", help="use the values `marlbench tune` selected (e.g. "
                       "configs/tuned/quick.yaml), or `paper`: the paper's published values (App. E, F.1); records "
                       "say so")
    sweep.add_argument("--dry-run", action="store_true", help="list the seeds and their status, run nothing")
    sweep.add_argument("--tasks", nargs="+", metavar="TASK", help="only these of the suite's tasks")
    sweep.add_argument("--algorithms", nargs="+", metavar="ALGO", help="only these of the suite's algorithms (a "
                     "name keeps its variants; name:label picks one)")
    sweep.add_argument("--no-progress", action="store_true", help="no progress bar")
    sweep.set_defaults(func=cmd_sweep)

    tune_p = sub.add_parser("tune", help="equal-budget tuning: every algorithm's grid on tuning seeds, then the "
                                         "selection per task", description="Train every algorithm's tuning grid "
                                         "(Config.tuning_grid, the same size for all) on the suite's tuning seeds "
                                         "(disjoint from its report seeds), select per task by the final score and "
                                         "write the values (docs/SWEEPS.md).")
    tune_p.add_argument("suite", help="suite file or bundled suite name")
    tune_p.add_argument("--out", metavar="FILE", help="tuned config to write (default configs/tuned/<profile>.yaml)")
    tune_p.add_argument("--results", default="results/tuning", help="where the grid's runs go (default "
                                                                     "./results/tuning)")
    tune_p.add_argument("--executor", choices=("local", "ray"), default="local")
    tune_p.add_argument("--address", help="ray: the cluster to join")
    tune_p.add_argument("--workers", type=int, help="parallel processes (default one per core)")
    tune_p.add_argument("--retries", type=int, default=1)
    tune_p.add_argument("--device", default="cpu")
    tune_p.add_argument("--dry-run", action="store_true", help="list the grid's runs and their status")
    tune_p.add_argument("--tasks", nargs="+", metavar="TASK", help="only these of the suite's tasks")
    tune_p.add_argument("--algorithms", nargs="+", metavar="ALGO", help="only these of the suite's algorithms (a "
                     "name keeps its variants; name:label picks one)")
    tune_p.add_argument("--no-progress", action="store_true")
    tune_p.set_defaults(func=cmd_tune)

    export = sub.add_parser("export", help="export run records (marl-eval JSON)")
    export.add_argument("what", choices=("marl-eval",))
    export.add_argument("--out", required=True, metavar="FILE", help="marl-eval JSON file (+ FILE.meta.json)")
    _add_results_options(export)
    export.set_defaults(func=cmd_export)

    bench = sub.add_parser("bench", help="speed benchmarks")
    bench.add_argument("what", choices=("train", "batching", "inference"),
                       help="train: one MAC-Flow step vs a matmul calibration; batching: the ceiling of training S "
                            "seeds as one batched model; inference: ms and FLOPs per joint action of every "
                            "algorithm, vs MAC-Flow and over the number of agents")
    bench.add_argument("--algos", help="batching: algorithms (comma-separated; default macflow,bc); inference: "
                                       "default every registered one (MAC-Flow is always added as the reference)")
    bench.add_argument("--sizes", help="batching: quick (3x128) and/or paper (4x512) networks (default quick)")
    bench.add_argument("--size", choices=("quick", "paper"),
                       help="inference: quick (3x128) or paper (4x512) networks (default quick)")
    bench.add_argument("--task", help="inference: use this registered task's spec (default Spread's shapes: 3 "
                                      "agents, obs 18, action 2)")
    bench.add_argument("--envs", type=int, help="inference: environments in the batched timing (default 32)")
    bench.add_argument("--repeats", type=int,
                       help="inference: at most this many timed act calls per measurement (default 200; fewer when "
                            "a call is slow, at least 5)")
    bench.add_argument("--out", metavar="FILE", help="inference: also write the JSON result to FILE")
    bench.add_argument("--max-call-seconds", type=float, help="inference: a K-step sampler slower than this per "
                       "call is timed at K = 2 and 4 and extrapolated to its K (default 2)")
    bench.add_argument("--case", type=str.upper, choices=("A", "B"),
                       help="paper-size case: A = 6 agents, obs 17, action 1 (default); B = 3 agents, obs 30, "
                            "action 9")
    bench.add_argument("--agents", type=int, help="override the case's agent count")
    bench.add_argument("--obs-dim", type=int, help="override the case's per-agent observation size")
    bench.add_argument("--action-dim", type=int, help="override the case's per-agent action size")
    bench.add_argument("--hidden", default="4x512", help="hidden layers, DEPTHxWIDTH or a list (default 4x512)")
    bench.add_argument("--batch-size", type=int, default=64)
    bench.add_argument("--steps", type=int, default=30, help="timed gradient steps")
    bench.add_argument("--warmup", type=int, default=5, help="untimed gradient steps (inference: act calls) first")
    bench.add_argument("--threads", type=int, default=1, help="torch threads (also used for the calibration)")
    bench.add_argument("--mkldnn-fp32-precision", choices=("ieee", "tf32", "bf16", "none"),
                       help="set torch.backends.mkldnn.matmul.fp32_precision for the run (experiment; the report "
                            "checks whether matmuls stay fp32)")
    bench.add_argument("--json", action="store_true", help="print the result as one JSON object")
    bench.set_defaults(func=cmd_bench)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except MarlbenchError as e:
        print(f"marlbench: error: {e}", file=sys.stderr)
        return USAGE_ERROR
    except KeyboardInterrupt:
        print("\nmarlbench: interrupted; re-run the same command to resume from the last checkpoint",
              file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader went away (`marlbench list | head`): stop quietly, as Unix tools do
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


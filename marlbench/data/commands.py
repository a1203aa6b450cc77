"""`marlbench data download|convert|subsample|combine` and the source handling of `data info` (cli.py wires them)."""
from __future__ import annotations

import argparse
from pathlib import Path

from marlbench.data.dataset import Dataset
from marlbench.errors import DatasetError, MarlbenchError
from marlbench.spec import TaskSpec


def _public():
    import marlbench.catalog  # noqa: F401
    from marlbench.data import public

    return public


def download(args: argparse.Namespace) -> int:
    """Download and convert the named public datasets (task names, aliases or vault ids), or all of them."""
    public = _public()
    from marlbench.data.download import download_vault

    if args.all == bool(args.names):
        raise MarlbenchError("name the datasets to download (task names or vault ids), or pass --all")
    if args.all:
        tasks = public.public_tasks()
        vault_ids = list(dict.fromkeys([t.vault_id for t in tasks] + list(public.vaults())))
    else:
        tasks, vault_ids = [], []
        for name in args.names:
            if name in public.vaults():
                vault_ids.append(name)
                tasks += public.public_tasks(name)
                continue
            task = public_task_for(name)
            if not isinstance(task, public.PublicTask):
                hint = [t.name for t in public.public_tasks() if t.env_task == task.name]
                raise MarlbenchError(f"{task.name!r} is not a public dataset" + (
                    f"; its public counterpart is {hint[0]!r}" if hint else
                    "; `marlbench list tasks` shows the public ones (og_marl/..., omiga/..., omar/...)"))
            tasks.append(task)
            vault_ids.append(task.vault_id)
        vault_ids = list(dict.fromkeys(vault_ids))
    if (args.archive or args.url) and len(vault_ids) != 1:
        raise MarlbenchError("--archive and --url apply to one vault; name a single dataset or vault")
    from marlbench.tasks import data_dir, require_writable

    require_writable(data_dir())  # archives, vaults and converted files all go there; check before fetching
    failed = []
    for vault_id in vault_ids:
        try:
            _download_one(args, public, download_vault, vault_id, [t for t in tasks if t.vault_id == vault_id])
        except MarlbenchError as e:
            if not args.all:
                raise
            failed.append(vault_id)
            print(f"marlbench: error: {vault_id}: {e}")
    if failed:
        raise MarlbenchError(f"{len(failed)} of {len(vault_ids)} vaults failed: {', '.join(failed)}")
    return 0


def _download_one(args: argparse.Namespace, public, download_vault, vault_id: str, mine: list) -> None:
    """Fetch one vault unless its datasets are present, then convert the datasets asked for."""
    if mine and all(t.dataset_path.exists() and t.cache_damage() is None for t in mine) and not args.force:
        print(f"{vault_id}: already downloaded ({', '.join(t.name for t in mine)})")
        return
    if not mine and public.vault_dir(vault_id).exists() and not args.force:
        print(f"{vault_id}: already unpacked in {public.vault_dir(vault_id)}")
        return
    if args.force or not mine or not all(t.vault_path.exists() for t in mine):
        download_vault(public.get_vault(vault_id), mine[0].name if mine else vault_id,
                       archive=Path(args.archive) if args.archive else None, url=args.url,
                       retries=args.retries, timeout=args.timeout, progress=not args.no_progress)
    for task in mine:
        if args.force or not task.dataset_path.exists() or task.cache_damage() is not None:
            public.convert_vault_task(task)


def public_task_for(name: str):
    """The task ``name`` names, except that a paper alias (``spread-expert``) means its public dataset: download
    and convert always concern the public data, whatever the alias resolves to before it is present."""
    public = _public()
    from marlbench.tasks import get_task

    paper = [t for t in public.public_tasks() if t.paper and f"{t.scenario}-{t.quality}" == name]
    return paper[0] if paper else get_task(name)


def task_or_none(name: str | None):
    if not name:
        return None
    _public()
    from marlbench.tasks import get_task

    return get_task(name)


def load_source(path: str, fmt: str, uid: str | None, seed: int | None, task=None) -> Dataset:
    """Any supported layout as a Dataset; with ``task``, checked against it and labelled with it."""
    from marlbench.data.formats.detect import load_any
    from marlbench.data.public import check_fits, reconcile_state, with_published_copy

    meta = {"task": task.name, "quality": task.quality} if task is not None else None
    try:
        dataset = load_any(path, fmt, uid, seed, meta)
    except DatasetError as e:
        raise with_published_copy(e, path) from e.__cause__
    if task is not None:
        dataset = reconcile_state(dataset, task.spec)
        try:
            check_fits(dataset, task.name, task.spec, getattr(task, "dims", None))
        except DatasetError as e:
            raise DatasetError(f"{path}: {e}") from None
    return dataset


def _out_path(args: argparse.Namespace, task) -> Path:
    from marlbench.data.public import PublicTask

    if args.out:
        return Path(args.out)
    if not isinstance(task, PublicTask):
        raise MarlbenchError("--out FILE is required unless --task names a public dataset (whose cache is then the "
                             "default; a generated task's cache holds only its generated data)")
    return task.dataset_path


def _save(dataset: Dataset, out: Path) -> None:
    from marlbench.data.formats.native import save_native

    save_native(dataset, out)
    print(f"wrote {out}: {dataset.n_episodes} episodes, {dataset.n_transitions} transitions, "
          f"sha256 {dataset.checksum()}")


def convert(args: argparse.Namespace) -> int:
    if len(args.names) != 1:
        raise MarlbenchError("convert takes one source: marlbench data convert SOURCE [--task T] [--out FILE]")
    task = public_task_for(args.task) if args.task else None
    if task is None and not args.out:
        from marlbench.data.public import task_for_source

        task = task_for_source(args.names[0])  # an original file under its published name
        if task is not None:
            print(f"{args.names[0]} is {task.name} (from its published name); converting into its cache")
    out = _out_path(args, task)  # before the (long) load: a refused destination fails fast
    from marlbench.tasks import require_writable

    require_writable(out.parent)  # so does one that cannot be written (MARLBENCH_DATA_DIR for the cache)
    _save(load_source(args.names[0], args.format, args.uid, args.source_seed, task), out)
    return 0


def subsample(args: argparse.Namespace) -> int:
    from marlbench.data.tools import subsample as run

    if len(args.names) != 1:
        raise MarlbenchError("subsample takes one source: marlbench data subsample SOURCE --episodes N|--transitions N "
                             "--out FILE")
    if not args.out:
        raise MarlbenchError("subsample needs --out FILE (the task's cached dataset is never overwritten)")
    task = task_or_none(args.task)
    dataset = load_source(_resolve_source(args.names[0]), args.format, args.uid, args.source_seed, task)
    target = None
    if args.match:
        target = load_source(_resolve_source(args.match), "auto", None, None).episode_returns()
    _save(run(dataset, episodes=args.episodes, transitions=args.transitions, seed=args.seed, match_returns=target),
          Path(args.out))
    return 0


def combine(args: argparse.Namespace) -> int:
    from marlbench.data.tools import combine as run

    if len(args.names) < 2 or not args.out:
        raise MarlbenchError("combine needs two or more sources and --out FILE")
    task = task_or_none(args.task)
    _save(run([load_source(_resolve_source(n), "auto", None, None, task) for n in args.names]), Path(args.out))
    return 0


def _resolve_source(name: str) -> str:
    """A path as given, or a task name -> its cached dataset file."""
    if Path(name).exists():
        return name
    task = task_or_none(name)
    if not task.dataset_path.exists():
        raise MarlbenchError(f"{name!r} is neither a file nor a task with its dataset on disk ({task.dataset_path})")
    return str(task.dataset_path)


def spec_for(dataset: Dataset, name: str) -> TaskSpec:
    """A spec for a dataset without a task (cards need one): its dimensions, no normalisation references."""
    return TaskSpec(name=name, n_agents=dataset.n_agents, obs_dim=dataset.obs_dim,
                    action_kind="discrete" if dataset.discrete else "continuous", action_dim=dataset.action_dim,
                    episode_limit=int(dataset.episode_lengths.max()), state_dim=dataset.state_dim,
                    action_low=float(dataset.actions.min()) if not dataset.discrete else -1.0,
                    action_high=float(dataset.actions.max()) if not dataset.discrete else 1.0)


def info_source(args: argparse.Namespace):
    """(dataset, spec, task name, path) for `data info`: a task's dataset, or any file/directory (--file or a path
    given instead of the task)."""
    name = args.names[0] if args.names else None
    file = args.file
    if file is None and name is not None and Path(name).exists():
        file, name = name, args.task
    task = task_or_none(name or args.task)
    if file is None:
        if task is None:
            raise MarlbenchError("data info needs a task name, a dataset path, or --file")
        path = task.dataset_path
        if not path.exists():
            raise MarlbenchError(f"no dataset for {task.name!r} at {path}; run `marlbench data "
                                 f"{'download' if getattr(task, 'vault_id', None) else 'generate'} {task.name}` first")
        file = str(path)
    dataset = load_source(file, args.format, args.uid, args.source_seed, task)
    spec = task.spec if task is not None and task.spec is not None else spec_for(dataset, task.name if task else
                                                                                 Path(file).name)
    return dataset, spec, task.name if task else None, file, task


def published_comparison(task, dataset: Dataset) -> dict | None:
    """The card's published statistics beside this dataset's (None if no published card applies)."""
    if task is None:
        return None
    from marlbench.data.public import published_card

    card = published_card(task)
    if not card:
        return None
    returns = dataset.episode_returns()
    ours = {"return_mean": float(returns.mean()), "return_std": float(returns.std()),
            "return_min": float(returns.min()), "return_max": float(returns.max()),
            "transitions": dataset.n_transitions, "episodes": dataset.n_episodes}
    return {"dataset": card["dataset"], "source": "OG-MARL dataset cards (configs/datasets/public.yaml)",
            "published": {k: card.get(k) for k in ours}, "this": ours}

"""`marlbench data generate|path|info|download|convert|subsample|combine` as functions with typed arguments.

cli.py parses the command line, loads the catalogue (``marlbench.catalog.load()``, which task names resolve
against) and calls them; they print what the command prints, return its exit code and raise
MarlbenchError (printed as one line, exit code 2) for a usage error. Paths may be given as str or Path.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from marlbench.data import tools
from marlbench.data.cards import card_figure, card_markdown, card_text, make_card
from marlbench.data.dataset import Dataset
from marlbench.data.download import download_vault, vault_dir
from marlbench.data.formats.detect import load_any
from marlbench.data.formats.native import save_native
from marlbench.errors import DatasetError, MarlbenchError
from marlbench.families import public
from marlbench.families.public import (
    PublicTask,
    check_fits,
    published_card,
    reconcile_state,
    task_for_source,
    with_published_copy,
)
from marlbench.paths import data_dir, require_writable
from marlbench.results import atomic_write_bytes
from marlbench.spec import TaskSpec
from marlbench.tasks import get_task


def _one_task(names: list[str], action: str):
    """The task of `data generate|path`, which take exactly one task name or alias."""
    if len(names) != 1:
        raise MarlbenchError(f"data {action} takes one task name")
    return get_task(names[0])


def generate(names: list[str], *, episodes: int | None = None, seed: int = 0, out: str | Path | None = None,
             force: bool = False) -> int:
    """`data generate TASK`: generate a task's dataset into its cache, or into ``out``.

    ``names`` holds the one task name or alias. ``episodes`` defaults to the task's documented size. A good cached
    file is kept unless ``force`` (a damaged one is rebuilt without it); a non-default ``episodes`` or ``seed``
    needs ``out``, so the cache always holds the documented default dataset."""
    task = _one_task(names, "generate")
    task.require_runnable()
    if task.generate is None:
        raise MarlbenchError(f"task {task.name!r} has no generator; its data comes from `marlbench data download`")
    if task.dataset_path.exists() and not force and episodes is None and seed == 0 and not out:
        damage = task.cache_damage()
        if damage is None:
            print(f"{task.dataset_path} already exists (use --force to regenerate)")
            return 0
        print(f"{task.dataset_path} is damaged: {damage}; regenerating it")
    n_episodes = episodes or task.default_episodes
    dest = Path(out) if out else task.dataset_path
    if dest == task.dataset_path and (episodes not in (None, task.default_episodes) or seed != 0):
        raise MarlbenchError("a non-default --episodes or --seed needs --out FILE, so the task's cached "
                             "dataset stays the documented default")
    require_writable(dest.parent)  # before generating, which can take minutes
    _save(task.generate(n_episodes, seed), dest)
    return 0


def show_path(names: list[str]) -> int:
    """`data path TASK`: print where the task's dataset is (or will be) cached; ``names`` holds one task name."""
    print(_one_task(names, "path").dataset_path)
    return 0


def download(names: list[str], *, all_datasets: bool = False, archive: str | Path | None = None,
             url: str | None = None, retries: int = 4, timeout: float = 60.0, progress: bool = True,
             force: bool = False) -> int:
    """`data download`: download and convert the named public datasets (task names, paper aliases or vault ids),
    or with ``all_datasets`` (``--all``) every vault of the manifest, where one failed vault does not stop the rest.

    ``archive`` (a zip fetched by hand) or ``url`` (a mirror) apply to a single vault; ``retries`` and ``timeout``
    (seconds without data) govern the transfer, ``progress`` its progress bar. Present datasets are kept unless
    ``force``."""
    if all_datasets == bool(names):
        raise MarlbenchError("name the datasets to download (task names or vault ids), or pass --all")
    if all_datasets:
        tasks = public.public_tasks()
        vault_ids = list(dict.fromkeys([t.vault_id for t in tasks] + list(public.vaults())))
    else:
        tasks, vault_ids = [], []
        for name in names:
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
    if (archive or url) and len(vault_ids) != 1:
        raise MarlbenchError("--archive and --url apply to one vault; name a single dataset or vault")

    require_writable(data_dir())  # archives, vaults and converted files all go there; check before fetching
    failed = []
    for vault_id in vault_ids:
        try:
            _download_one(public, download_vault, vault_id, [t for t in tasks if t.vault_id == vault_id],
                          force=force, archive=archive, url=url, retries=retries, timeout=timeout, progress=progress)
        except MarlbenchError as e:
            if not all_datasets:
                raise
            failed.append(vault_id)
            print(f"marlbench: error: {vault_id}: {e}")
    if failed:
        raise MarlbenchError(f"{len(failed)} of {len(vault_ids)} vaults failed: {', '.join(failed)}")
    return 0


def _download_one(public, download_vault, vault_id: str, mine: list, *, force: bool, archive: str | Path | None,
                  url: str | None, retries: int, timeout: float, progress: bool) -> None:
    """Fetch one vault unless its datasets are present, then convert the datasets asked for (``mine``)."""
    if mine and all(t.dataset_path.exists() and t.cache_damage() is None for t in mine) and not force:
        print(f"{vault_id}: already downloaded ({', '.join(t.name for t in mine)})")
        return
    if not mine and vault_dir(vault_id).exists() and not force:
        print(f"{vault_id}: already unpacked in {vault_dir(vault_id)}")
        return
    if force or not mine or not all(t.vault_path.exists() for t in mine):
        download_vault(public.get_vault(vault_id), mine[0].name if mine else vault_id,
                       archive=Path(archive) if archive else None, url=url,
                       retries=retries, timeout=timeout, progress=progress)
    for task in mine:
        if force or not task.dataset_path.exists() or task.cache_damage() is not None:
            public.convert_vault_task(task)


def public_task_for(name: str):
    """The task ``name`` names, except that a paper alias (``spread-expert``) means its public dataset: download
    and convert always concern the public data, whatever the alias resolves to before it is present."""
    paper = [t for t in public.public_tasks() if t.paper and f"{t.scenario}-{t.quality}" == name]
    return paper[0] if paper else get_task(name)


def task_or_none(name: str | None):
    if not name:
        return None

    return get_task(name)


def load_source(path: str, fmt: str, uid: str | None, seed: int | None, task=None) -> Dataset:
    """Any supported layout as a Dataset; with ``task``, checked against it and labelled with it."""
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


def _out_path(out: str | Path | None, task) -> Path:
    """``out``, else the cache of a public ``task`` (a generated task's cache holds only its generated data)."""
    if out:
        return Path(out)
    if not isinstance(task, PublicTask):
        raise MarlbenchError("--out FILE is required unless --task names a public dataset (whose cache is then the "
                             "default; a generated task's cache holds only its generated data)")
    return task.dataset_path


def _save(dataset: Dataset, out: Path) -> None:
    save_native(dataset, out)
    print(f"wrote {out}: {dataset.n_episodes} episodes, {dataset.n_transitions} transitions, "
          f"sha256 {dataset.checksum()}")


def convert(names: list[str], *, task: str | None = None, fmt: str = "auto", uid: str | None = None,
            source_seed: int | None = None, out: str | Path | None = None) -> int:
    """`data convert SOURCE`: convert one source (``names`` holds it) in any layout into a native HDF5 file.

    ``fmt`` forces a layout (auto|native|vault|omiga|omar), ``uid`` picks the dataset of a vault, ``source_seed``
    the seed directory of an OMAR dataset. With ``task`` the data is checked against that task and written to
    ``out`` or, for a public task, to its cache; without either, a file under its published name goes into the
    cache of the public task it belongs to."""
    if len(names) != 1:
        raise MarlbenchError("convert takes one source: marlbench data convert SOURCE [--task T] [--out FILE]")
    bound = public_task_for(task) if task else None
    if bound is None and not out:
        bound = task_for_source(names[0])  # an original file under its published name
        if bound is not None:
            print(f"{names[0]} is {bound.name} (from its published name); converting into its cache")
    dest = _out_path(out, bound)  # before the (long) load: a refused destination fails fast

    require_writable(dest.parent)  # so does one that cannot be written (MARLBENCH_DATA_DIR for the cache)
    _save(load_source(names[0], fmt, uid, source_seed, bound), dest)
    return 0


def subsample(names: list[str], *, out: str | Path | None, episodes: int | None = None,
              transitions: int | None = None, seed: int = 0, match: str | None = None, task: str | None = None,
              fmt: str = "auto", uid: str | None = None, source_seed: int | None = None) -> int:
    """`data subsample SOURCE`: write whole episodes of one source (``names`` holds a file, directory or task
    name) to ``out``: ``episodes`` of them drawn uniformly with ``seed``, or as many as fit in ``transitions``
    steps, following the episode-return distribution of the source ``match`` when given. ``task``, ``fmt``,
    ``uid`` and ``source_seed`` read the source as in `convert`. The task's cache is never overwritten."""

    if len(names) != 1:
        raise MarlbenchError("subsample takes one source: marlbench data subsample SOURCE --episodes N|--transitions N "
                             "--out FILE")
    if not out:
        raise MarlbenchError("subsample needs --out FILE (the task's cached dataset is never overwritten)")
    bound = task_or_none(task)
    dataset = load_source(_resolve_source(names[0]), fmt, uid, source_seed, bound)
    target = None
    if match:
        target = load_source(_resolve_source(match), "auto", None, None).episode_returns()
    _save(tools.subsample(dataset, episodes=episodes, transitions=transitions, seed=seed, match_returns=target),
          Path(out))
    return 0


def combine(names: list[str], *, out: str | Path | None, task: str | None = None) -> int:
    """`data combine SOURCE SOURCE ...`: concatenate the episodes of two or more sources (files, directories or
    task names; checked against ``task`` when given) into ``out``."""

    if len(names) < 2 or not out:
        raise MarlbenchError("combine needs two or more sources and --out FILE")
    bound = task_or_none(task)
    _save(tools.combine([load_source(_resolve_source(n), "auto", None, None, bound) for n in names]), Path(out))
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


def info_source(names: list[str], *, file: str | Path | None = None, task: str | None = None, fmt: str = "auto",
                uid: str | None = None, source_seed: int | None = None):
    """(dataset, spec, task name, path, task) for `data info`: a task's dataset (``names`` = [task]), or any file
    or directory (``file``, or a path in ``names``; ``task`` then names the task it belongs to, if any)."""
    name = names[0] if names else None
    if file is None and name is not None and Path(name).exists():
        file, name = name, task
    bound = task_or_none(name or task)
    if file is None:
        if bound is None:
            raise MarlbenchError("data info needs a task name, a dataset path, or --file")
        path = bound.dataset_path
        if not path.exists():
            raise MarlbenchError(f"no dataset for {bound.name!r} at {path}; run `marlbench data "
                                 f"{'download' if getattr(bound, 'vault_id', None) else 'generate'} {bound.name}` "
                                 "first")
        file = str(path)
    dataset = load_source(file, fmt, uid, source_seed, bound)
    spec = bound.spec if bound is not None and bound.spec is not None else spec_for(dataset, bound.name if bound else
                                                                                  Path(file).name)
    return dataset, spec, bound.name if bound else None, file, bound


def info(names: list[str], *, file: str | Path | None = None, task: str | None = None, fmt: str = "auto",
         uid: str | None = None, source_seed: int | None = None, markdown: str | Path | None = None,
         png: str | Path | None = None, card_dir: str | Path | None = None, as_json: bool = False) -> int:
    """`data info TASK|PATH`: print the dataset card (text, or JSON with ``as_json``) of the source that
    `info_source` picks from ``names``, ``file``, ``task``, ``fmt``, ``uid`` and ``source_seed``.

    ``markdown`` and ``png`` also write the card as Markdown and its figure (needs the [plot] extra); ``card_dir``
    writes ``<name>.md`` and ``<name>.png`` there for the ones not given. With ``as_json`` the "wrote" lines go to
    stderr, so stdout holds only the JSON."""
    dataset, spec, name, path, bound = info_source(names, file=file, task=task, fmt=fmt, uid=uid,
                                                   source_seed=source_seed)
    card = make_card(dataset, spec, name, str(path), published=published_comparison(bound, dataset))
    if card_dir:
        stem = (name or Path(path).name).replace("/", "_")
        markdown = markdown or str(Path(card_dir) / f"{stem}.md")
        png = png or str(Path(card_dir) / f"{stem}.png")
    log = sys.stderr if as_json else sys.stdout
    if png:  # first, so a missing matplotlib fails before anything is written
        print(f"wrote {card_figure(dataset, spec, card, png)}", file=log)
    if markdown:
        import os

        rel = os.path.relpath(Path(png).resolve(), Path(markdown).resolve().parent) if png else None
        atomic_write_bytes(Path(markdown), card_markdown(card, rel).encode())
        print(f"wrote {markdown}", file=log)
    print(json.dumps(card, indent=2, default=str) if as_json else card_text(card))
    return 0


def published_comparison(task, dataset: Dataset) -> dict | None:
    """The card's published statistics beside this dataset's (None if no published card applies)."""
    if task is None:
        return None

    card = published_card(task)
    if not card:
        return None
    returns = dataset.episode_returns()
    ours = {"return_mean": float(returns.mean()), "return_std": float(returns.std()),
            "return_min": float(returns.min()), "return_max": float(returns.max()),
            "transitions": dataset.n_transitions, "episodes": dataset.n_episodes}
    return {"dataset": card["dataset"], "source": "OG-MARL dataset cards (configs/datasets/public.yaml)",
            "published": {k: card.get(k) for k in ours}, "this": ours}

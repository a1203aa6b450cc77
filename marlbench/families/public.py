"""Public datasets as tasks: the manifest (``configs/datasets/public.yaml``), one task per published dataset, the
paper's short names resolving to them once downloaded, and datasets bound to a user's file (`run --dataset`).

Names: a public dataset is the task ``<source>/<scenario>-<quality>`` (``og_marl/3m-good``,
``omiga/6halfcheetah-expert``, ``omar/spread-expert``). It evaluates in the environment of its ``env_task`` (the
suite task of the same environment: ``mpe/spread-expert``, ``mamujoco/6halfcheetah-expert``) and takes that task's
TaskSpec; without one, the spec comes from the manifest's dimensions. A paper alias (``spread-expert``) resolves to
the public task when its converted dataset is on disk, else to what it named before (the generated task, or the
SMAC placeholder that explains what is missing).

On disk (under ``marlbench.tasks.data_dir()``)::

    vaults/<source>/<env>/<scenario>.vlt/<uid>/    unpacked OG-MARL vaults, as OG-MARL lays them out
    datasets/<source>/<scenario>-<quality>.h5      the converted native file every run reads
    checksums.json                                 sha256 and size of archives first seen (trust on first use)
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, fields, replace
from functools import lru_cache
from importlib import resources
from pathlib import Path

import yaml

from marlbench.data.dataset import Dataset
from marlbench.data.download import vault_dir
from marlbench.data.formats.detect import detect_format
from marlbench.data.formats.native import load_native, read_native_metadata, save_native
from marlbench.data.formats.omiga import OBTAIN_AGAIN
from marlbench.data.formats.vault import read_vault
from marlbench.errors import DatasetError, UnknownNameError
from marlbench.registry import TASKS
from marlbench.spec import TaskSpec
from marlbench.tasks import Task, data_dir

MANIFEST = "public.yaml"
SMAC_RETURN = "episode return of the team reward (SMAC's 0-20 scale, 20 = win with all kills)"


@lru_cache(maxsize=1)
def manifest() -> dict:
    """The manifest as loaded from the installed package data."""
    text = resources.files("marlbench.configs").joinpath("datasets", MANIFEST).read_text()
    return yaml.safe_load(text)


def vaults() -> dict[str, dict]:
    return {v["id"]: v for v in manifest()["vaults"]}


def get_vault(vault_id: str) -> dict:
    known = vaults()
    if vault_id not in known:
        raise UnknownNameError("public vault", vault_id, known)
    return known[vault_id]


@dataclass(frozen=True)
class PublicTask(Task):
    """A published dataset: where it comes from, what it binds to, what its published card says."""

    source: str = ""
    vault_id: str = ""
    uid: str = ""
    url: str = ""
    env_task: str | None = None
    paper: bool = False
    card: dict | None = None
    dims: dict | None = None

    @property
    def dataset_path(self) -> Path:
        return data_dir() / "datasets" / self.source / f"{self.scenario}-{self.quality}.h5"

    @property
    def vault_path(self) -> Path:
        return vault_dir(self.vault_id) / self.uid

    def status(self) -> tuple[bool, str]:
        damage = self.cache_damage()
        if damage is not None:  # `data download` converts (or fetches) it again
            data = f"cached file damaged: {damage}; `marlbench data download {self.name}` rebuilds it"
            return False, data + (f"; cannot run here: {self.blocked_reason}" if self.blocked_reason else "")
        if self.dataset_path.exists():
            data = "public dataset downloaded"
        elif self.vault_path.exists():
            data = f"vault downloaded, not converted (`marlbench data download {self.name}` converts it)"
        else:
            data = f"needs download (`marlbench data download {self.name}`)"
        if self.blocked_reason:
            return False, f"{data}; cannot run here: {self.blocked_reason}"
        return self.dataset_path.exists(), f"ready ({data})" if self.dataset_path.exists() else data

    def check(self, dataset: Dataset) -> None:
        """Raise DatasetError naming field, expected and found if ``dataset`` cannot be this task's data."""
        check_fits(dataset, self.name, self.spec, self.dims)


def check_fits(dataset: Dataset, name: str, spec: TaskSpec | None, dims: dict | None = None) -> None:
    """Validate against the spec (a spec without state_dim accepts any state), else against the known dims."""
    if spec is not None:
        if spec.state_dim is None and dataset.state is not None:
            spec = replace(spec, state_dim=dataset.state_dim)
        dataset.validate_against(spec)
        return
    found = {"n_agents": dataset.n_agents, "obs_dim": dataset.obs_dim, "action_dim": dataset.action_dim,
             "action_kind": "discrete" if dataset.discrete else "continuous", "state_dim": dataset.state_dim}
    for key, value in (dims or {}).items():
        if key in found and value is not None and (key != "state_dim" or dataset.state is not None) \
                and found[key] != value:
            raise DatasetError(f"dataset does not match task {name!r}: {key} expected {value}, found {found[key]}")


def reconcile_state(dataset: Dataset, spec: TaskSpec | None, log=print) -> Dataset:
    """Drop a state whose size is not the task's (sources define the global state differently: OMIGA stores a
    per-agent observation-like ``s``); the task's algorithms then build the state from observations, as for any
    dataset without one. Noted in the metadata and logged."""
    if dataset.state is None or spec is None or spec.state_dim in (None, dataset.state_dim):
        return dataset
    note = (f"state dropped: the source's state has {dataset.state_dim} dims, task {spec.name} defines "
            f"{spec.state_dim}; state-conditioned algorithms (mixers) use the concatenated observations instead")
    log(f"note: {note}")
    return Dataset(dataset.obs, dataset.actions, dataset.rewards, dataset.terminals, dataset.truncations,
                   dataset.legals, None, {**dataset.metadata, "state_dropped": note})


def spec_for_data(spec: TaskSpec | None, path: Path) -> TaskSpec | None:
    """``spec`` without its state_dim when the dataset file at ``path`` holds no global state (none stored, or
    dropped for its size by reconcile_state). Otherwise state-conditioned algorithms would build their mixers for
    a state they never receive; without state_dim they use the documented fallback, the concatenated observations.
    Reads the file's stored statistics (attributes only); a missing or damaged file leaves ``spec`` as it is."""
    if spec is None or spec.state_dim is None or not path.is_file():
        return spec

    try:
        stats = read_native_metadata(path).get("statistics") or {}
    except DatasetError:  # damaged: `marlbench list` and `run` report it
        return spec
    return replace(spec, state_dim=None) if "state_dim" in stats and stats["state_dim"] is None else spec


def spec_from_dims(name: str, dims: dict, benchmark: str) -> TaskSpec | None:
    need = ("n_agents", "obs_dim", "action_kind", "action_dim")
    if any(dims.get(k) is None for k in need):
        return None
    smac = benchmark.startswith("smac")
    return TaskSpec(name=name, **{k: dims[k] for k in need}, episode_limit=dims.get("episode_limit") or 0,
                    state_dim=dims.get("state_dim"),
                    **({"return_definition": SMAC_RETURN, "random_score": 0.0, "expert_score": 20.0,
                        "normalisation_source": "SMAC's return scale (0 = nothing, 20 = win with all kills)"}
                       if smac else {}))


def _env_binding(name: str, env_task: str | None, vault: dict) -> dict:
    """spec, make_env and blocked_reason of a public task, from its env_task when that is registered."""
    env = TASKS.get(env_task) if env_task and env_task in TASKS else None
    if env is None or env.spec is None:
        reason = vault.get("blocked") or (f"its environment task {env_task!r} is not available" if env_task else
                                          "no environment for it in this suite yet")
        return {"spec": spec_from_dims(name, vault.get("dims") or {}, vault["benchmark"]), "make_env": None,
                "blocked_reason": reason}
    dims = vault.get("dims") or {}
    clash = [f"{k} {getattr(env.spec, k)} (data: {dims[k]})" for k in ("n_agents", "obs_dim", "action_kind",
                                                                       "action_dim")
             if dims.get(k) is not None and getattr(env.spec, k) != dims[k]]
    if clash:  # e.g. OMIGA's Ant-v2 observations (113) against a v5 environment (107): not evaluable there
        return {"spec": spec_from_dims(name, dims, vault["benchmark"]), "make_env": None,
                "blocked_reason": f"the suite's environment {env_task} differs from the data: " + ", ".join(clash)}
    # the env task may be blocked only for want of its own generated data (no generator): that does not concern us
    data_only = env.make_env is not None and env.generate is None
    return {"spec": replace(env.spec, name=name), "make_env": env.make_env,
            "blocked_reason": None if data_only else env.blocked_reason}


def _paper_alias(alias: str, public: PublicTask) -> None:
    previous = TASKS.alias_target(alias)
    TASKS.set_alias(alias, lambda: public.name if public.dataset_path.exists() else (previous or public.name))


def register_public_tasks() -> list[PublicTask]:
    """Register one task per dataset of the manifest (idempotent)."""
    out = []
    for vault in manifest()["vaults"]:
        source = vault["id"].split("/")[0]
        for ds in vault["datasets"]:
            name = f"{source}/{vault['scenario']}-{ds['quality']}"
            if name in TASKS and isinstance(TASKS.get(name), PublicTask):
                out.append(TASKS.get(name))
                continue
            env_task = vault["env_task"].format(quality=ds["quality"]) if vault.get("env_task") else None
            binding = _env_binding(name, env_task, vault)
            binding["spec"] = spec_for_data(binding["spec"], data_dir() / "datasets" / source
                                            / f"{vault['scenario']}-{ds['quality']}.h5")  # = dataset_path
            task = PublicTask(
                name=name, benchmark=vault["benchmark"], scenario=vault["scenario"], quality=ds["quality"],
                **binding,
                description=f"public dataset {vault['id']} / {ds['uid']}" + (f"; {vault['note']}" if "note" in vault
                                                                           else ""),
                source=source, vault_id=vault["id"], uid=ds["uid"], url=vault["url"], env_task=env_task,
                paper=bool(ds.get("paper")), card=ds.get("card"), dims=vault.get("dims"),
            )
            TASKS.register(name, task)
            if task.paper:
                _paper_alias(f"{vault['scenario']}-{ds['quality']}", task)
            out.append(task)
    return out


def public_tasks(vault_id: str | None = None) -> list[PublicTask]:
    tasks = [TASKS.get(n) for n in TASKS.names()]
    return [t for t in tasks if isinstance(t, PublicTask) and (vault_id is None or t.vault_id == vault_id)]


def published_card(task: Task) -> dict | None:
    """The published statistics for ``task``: its own card, or the card of the public dataset whose environment
    task it is (so a generated tier compares against the public data of the same tier)."""
    if isinstance(task, PublicTask):
        return task.card and {"dataset": task.name, **task.card}
    for public in public_tasks():
        if public.env_task == task.name and public.card:
            return {"dataset": public.name, **public.card}
    return None


def task_for_source(path: str | os.PathLike) -> PublicTask | None:
    """The public task an original file belongs to, from its published name: OMIGA's
    ``HalfCheetah-v2-6x1-expert.hdf5`` (manifest ``omiga_file``), OMAR's ``.../simple_spread/expert[/seed_0_data]``
    (``omar_dir``), OG-MARL's ``.../<scenario>.vlt/<uid>``."""
    path = Path(path).resolve()
    parts = path.parts if not path.name.startswith("seed_") else path.parent.parts
    for task in public_tasks():
        vault = get_vault(task.vault_id)
        names = {"omiga_file": path.name, "omar_dir": "/".join(parts[-2:])}
        for key, found in names.items():
            if vault.get(key) and vault[key].format(quality=task.quality) == found:
                return task
        if path.name.lower() == task.uid.lower() and path.parent.name == f"{vault['id'].rsplit('/', 1)[1]}.vlt" \
                and path.parent.parent.name == vault["id"].split("/")[1]:
            return task
    return None


def convert_vault_task(task: PublicTask, log=print) -> Path:
    """Convert the task's unpacked vault dataset into its native file (atomic) and return the file."""

    if not task.vault_path.exists():
        raise DatasetError(f"vault dataset {task.vault_path} is missing; run `marlbench data download {task.name}`")
    dataset = read_vault(task.vault_path, metadata={
        "task": task.name, "source": task.vault_id, "quality": task.quality, "url": task.url})
    dataset = reconcile_state(dataset, task.spec, log)
    try:
        task.check(dataset)
    except DatasetError as e:
        raise DatasetError(f"{task.vault_path}: {e}") from None
    save_native(dataset, task.dataset_path)
    log(f"converted {task.vault_path} -> {task.dataset_path}: {dataset.n_episodes} episodes, "
        f"{dataset.n_transitions} transitions")
    return task.dataset_path


# ---------------------------------------------------------------- a task bound to a user's file (run --dataset)
@dataclass(frozen=True)
class BoundTask(Task):
    """A task whose data is a user's native file; the environment and spec are the base task's."""

    file: str = ""
    base: str = ""

    @property
    def dataset_path(self) -> Path:
        return Path(self.file)

    def status(self) -> tuple[bool, str]:
        if self.blocked_reason:
            return False, self.blocked_reason
        return (True, f"ready (bound to {self.file})") if Path(self.file).exists() else \
            (False, f"bound dataset file {self.file} does not exist")


def _register_bound(name: str, base: Task, file: str) -> BoundTask:
    if name in TASKS:
        return TASKS.get(name)
    spec = spec_for_data(replace(base.spec, name=name) if base.spec else None, Path(file))
    description = f"{base.name} on the data of {file}"
    if spec is not None and spec.state_dim != base.spec.state_dim:
        description += (f"; the data has no global state, so state-conditioned algorithms use the concatenated "
                        f"observations ({spec.n_agents} x {spec.obs_dim}) instead of the task's "
                        f"{base.spec.state_dim}-d state")
    values = {f.name: getattr(base, f.name) for f in fields(Task)}
    values.update(name=name, spec=spec, generate=None, default_episodes=0, description=description,
                  blocked_reason=None if base.make_env is not None else base.blocked_reason)
    return TASKS.register(name, BoundTask(**values, file=file, base=base.name))


def with_published_copy(err: DatasetError, path: str | os.PathLike) -> DatasetError:
    """``err`` for a damaged original file, plus the download command of its published copy when the manifest
    knows the file by name (the format readers below this layer cannot look that up)."""

    message = str(err)
    try:
        task = task_for_source(path) if OBTAIN_AGAIN in message else None
    except Exception:
        task = None
    if task is None:
        return err
    return DatasetError(f"{message.rstrip('.')}, or use the published copy: `marlbench data download {task.name}`.")


def bind_dataset(task: Task, file: str | os.PathLike) -> BoundTask:
    """Register ``<task>@<file stem>``: the task's environment evaluating a policy trained on ``file`` (a native
    file; other layouts are converted first with `marlbench data convert`). Refuses data that does not fit."""

    file = Path(file).resolve()
    try:
        fmt = detect_format(file)
    except DatasetError as e:
        raise with_published_copy(e, file) from e.__cause__
    if fmt != "native":
        raise DatasetError(f"{file} is in {fmt} layout; convert it first: marlbench data convert {file} --out "
                           f"{file.with_suffix('.h5').name} --task {task.name}")
    if task.spec is None or task.make_env is None:
        raise DatasetError(f"task {task.name!r} has no environment to evaluate in here"
                           + (f" ({task.blocked_reason})" if task.blocked_reason else ""))
    check_fits(load_native(file, verify=True), task.name, task.spec)
    name = f"{task.name}@{file.stem}"
    if name in TASKS and TASKS.get(name).dataset_path != file:  # another file of the same name
        name += "-" + hashlib.sha1(str(file).encode()).hexdigest()[:6]
    return _register_bound(name, task, str(file))  # a dataclass: seed workers receive it pickled


def describe_resolution(requested: str, task: Task) -> str | None:
    """One line saying which source an alias resolved to (None if the name was canonical)."""
    if requested == task.name:
        return None
    if isinstance(task, PublicTask):
        return f"{requested} -> {task.name} (public dataset {task.vault_id}/{task.uid})"
    public = [t for t in public_tasks() if t.paper and f"{t.scenario}-{t.quality}" == requested]
    other = f"; the public data ({public[0].name}) is not downloaded" if public else ""
    kind = "generated dataset" if task.generate is not None else "placeholder task"
    return f"{requested} -> {task.name} ({kind}{other})"


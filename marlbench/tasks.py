"""Tasks and task families: the two types, their registries and where a task's dataset is cached.

A task is ``<benchmark>/<scenario>-<quality>``: a ``TaskSpec``, an environment factory, a dataset generator (or a
download source), and a blocked reason while it cannot run here. Tasks of the paper that cannot run yet are
registered anyway, so ``marlbench list tasks`` shows them with the reason and ``marlbench run`` refuses them with it.

A task family (a benchmark such as MPE or MA-MuJoCo) is one module that defines a ``Family``: its label and place
in tables and figures, its tasks and the environments behaviour policies can be trained in. ``marlbench.catalog``
lists every built-in family; nothing here registers anything by itself.

Tasks are plain frozen dataclasses whose factories are module-level functions or ``functools.partial``s of them,
so a task object pickles and spawned workers receive the task itself, not a name to look up.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from marlbench.data.formats.native import native_damage
from marlbench.errors import UnavailableError
from marlbench.paths import data_dir
from marlbench.registry import ENVIRONMENTS, FAMILIES, TASKS
from marlbench.spec import TaskSpec


@dataclass(frozen=True)
class Task:
    name: str  # canonical: <benchmark>/<scenario>-<quality>
    benchmark: str
    scenario: str
    quality: str
    spec: TaskSpec | None = None
    make_env: Callable[[int], object] | None = None  # num_envs -> BatchedMultiAgentEnv
    generate: Callable[[int, int], object] | None = None  # (episodes, seed) -> Dataset
    default_episodes: int = 0
    blocked_reason: str | None = None  # why the task cannot run in this version/machine, None if it can
    description: str = ""

    @property
    def dataset_path(self) -> Path:
        return data_dir() / "datasets" / self.benchmark / f"{self.scenario}-{self.quality}.h5"

    def status(self) -> tuple[bool, str]:
        """(runnable, human-readable status) for `marlbench list tasks`."""
        if self.blocked_reason:
            return False, self.blocked_reason
        if self.dataset_path.exists():
            damage = self.cache_damage()
            if damage is None:
                return True, "ready (dataset cached)"
            if self.generate is not None:  # `run` and `data generate` rebuild it
                return True, f"cached file damaged: {damage}; `marlbench data generate {self.name}` rebuilds it"
            return False, f"cached file damaged: {damage}; delete {self.dataset_path} and obtain the dataset again"
        if self.generate is not None:
            return True, "ready (dataset generated on first run, or `marlbench data generate`)"
        return False, "needs `marlbench data download`"

    def cache_damage(self) -> str | None:
        """Why the cached dataset file cannot be read (truncated, corrupt, ...), None if it reads or is absent.
        A cheap check (attributes, shapes, last rows); the full checksum is verified when a run loads the file."""
        return native_damage(self.dataset_path) if self.dataset_path.exists() else None

    def require_runnable(self) -> None:
        runnable, why = self.status()
        if not runnable:
            raise UnavailableError(f"task {self.name!r} cannot run here: {why}")


TaskEntry = tuple[Task, tuple[str, ...]]  # a task and its aliases (the paper's short names)


@dataclass(frozen=True)
class Family:
    """A benchmark: the tasks named ``<name>/...``, how tables and figures label and order them, and the
    environments its behaviour policies are trained in (``marlbench behaviour train``).

    ``tasks`` and ``behaviour_envs`` are called once, when the family is registered, so a family module costs
    nothing until the catalogue loads it."""

    name: str  # the benchmark part of task names
    label: str  # in tables and figures
    order: int  # tables and figures sort benchmarks by it (the paper's order: SMAC first, the games last)
    tasks: Callable[[], Iterable[TaskEntry]]
    behaviour_envs: Callable[[], Iterable] = tuple  # -> marlbench.behaviour.envs.BehaviourEnv instances
    description: str = ""


def register_task(task: Task, aliases: tuple[str, ...] = ()) -> Task:
    return TASKS.register(task.name, task, aliases)


def register_family(family: Family) -> Family:
    """Register a family, its tasks and its behaviour environments; registering the same family again is a no-op."""
    if family.name in FAMILIES:
        return FAMILIES.get(family.name)
    for task, aliases in family.tasks():
        if task.benchmark != family.name:
            raise ValueError(f"task {task.name!r} has benchmark {task.benchmark!r}, not its family's {family.name!r}")
        register_task(task, aliases)
    for env in family.behaviour_envs():
        ENVIRONMENTS.register(env.name, env, env.aliases)
    return FAMILIES.register(family.name, family)


def get_task(name: str) -> Task:
    return TASKS.get(name)


def family_of(benchmark: str) -> Family | None:
    """The registered family of a benchmark name, None if it is not registered (for example results of a plugin
    family that is not installed here)."""
    return FAMILIES.get(benchmark) if benchmark in FAMILIES else None


def family_sort_key(benchmark: str) -> tuple[int, str]:
    """Benchmarks in their families' ``order`` (the paper's), unregistered ones last, by name."""
    family = family_of(benchmark)
    return (family.order if family is not None else 10**6, benchmark)

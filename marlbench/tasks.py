"""The task catalogue: ``<benchmark>/<scenario>-<quality>`` names, the paper's short names as aliases, and
where each task's environment and dataset come from.

A task is runnable when its environment runs here and its dataset is cached or can be generated. Tasks of the
paper that cannot run yet are registered anyway, so ``marlbench list tasks`` shows them with the reason, and
``marlbench run`` refuses them with that reason instead of a traceback.
"""
from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from marlbench.errors import UnavailableError
from marlbench.paths import DATA_DIR_ENV, data_dir, require_writable  # noqa: F401  (part of the tasks API)
from marlbench.registry import TASKS
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
        from marlbench.data.formats.native import native_damage

        return native_damage(self.dataset_path) if self.dataset_path.exists() else None

    def require_runnable(self) -> None:
        runnable, why = self.status()
        if not runnable:
            raise UnavailableError(f"task {self.name!r} cannot run here: {why}")


def register_task(task: Task, aliases: tuple[str, ...] = ()) -> Task:
    return TASKS.register(task.name, task, aliases)


def get_task(name: str) -> Task:
    return TASKS.get(name)


def _register_catalogue() -> None:
    from marlbench.data.generate import generate_spread_scripted
    from marlbench.envs.mpe import SpreadEnv, spread_spec

    register_task(
        Task(
            name="mpe/spread-scripted",
            benchmark="mpe",
            scenario="spread",
            quality="scripted",
            spec=spread_spec("mpe/spread-scripted"),
            make_env=lambda num_envs: SpreadEnv(num_envs),
            generate=generate_spread_scripted,
            default_episodes=4000,
            description="OMAR cooperative navigation, 3 agents; noisy landmark-assignment controller at mixed noise",
        ),
        aliases=("spread-scripted",),
    )

    # The paper's 34 datasets (Tables 1-2). Registered now so names resolve; runnable in later versions.
    # Their data is the public dataset og_marl/<name> (omiga/ for 2c_vs_64zg; marlbench/data/public.py), to which
    # the short alias resolves once downloaded.
    smac = ("not runnable yet: needs StarCraft II with the {adapter} adapter; its data is the public dataset {public} "
            "(`marlbench data download {public}`)")
    for scenario in ("3m", "8m", "2s3z", "5m_vs_6m", "2c_vs_64zg"):
        for quality in ("good", "medium", "poor"):
            public = f"{'omiga' if scenario == '2c_vs_64zg' else 'og_marl'}/{scenario}-{quality}"
            register_task(Task(f"smacv1/{scenario}-{quality}", "smacv1", scenario, quality,
                               blocked_reason=smac.format(adapter="SMAC", public=public)),
                          aliases=(f"{scenario}-{quality}",))
    for scenario in ("terran_5_vs_5", "zerg_5_vs_5", "terran_10_vs_10"):
        register_task(Task(f"smacv2/{scenario}-replay", "smacv2", scenario, "replay",
                           blocked_reason=smac.format(adapter="SMACv2", public=f"og_marl/{scenario}-replay")),
                      aliases=(f"{scenario}-replay",))
    # OMAR's tiers, generated from the shipped MATD3 behaviour policies (marlbench/behaviour/weights/spread/);
    # the real OMAR files can be pointed at the same names later (`marlbench data download`).
    from functools import partial

    from marlbench.behaviour.tiers import load_manifest

    manifest = load_manifest("mpe/spread")
    tiers = ("not runnable yet: no shipped behaviour weights for mpe/spread; train them with `marlbench behaviour "
             "train mpe/spread` or use the OMAR dataset (`marlbench data download`)")
    for quality in ("expert", "medium", "medium-replay", "random"):
        name = f"mpe/spread-{quality}"
        register_task(
            Task(name, "mpe", "spread", quality, spec=spread_spec(name),
                 make_env=lambda num_envs: SpreadEnv(num_envs),
                 generate=partial(_generate_spread_tier, quality) if manifest else None,
                 default_episodes=manifest["default_episodes"][quality] if manifest else 0,
                 blocked_reason=None if manifest else tiers,
                 description=f"OMAR cooperative navigation, 3 agents; {quality} tier generated from the shipped "
                             f"MATD3 behaviour policies"),
            aliases=(f"spread-{quality}",),
        )


def _generate_spread_tier(quality: str, episodes: int, seed: int):
    from marlbench.behaviour.tiers import generate_tier

    return generate_tier("mpe/spread", quality, episodes, seed, task=f"mpe/spread-{quality}")

_register_catalogue()

from marlbench.envs.games import register_game_tasks  # noqa: E402  (games import Task from this module)
from marlbench.envs.landmarks import register_landmark_tasks  # noqa: E402
from marlbench.envs.spread_discrete import register_discrete_spread_task  # noqa: E402
from marlbench.envs.mamujoco import register_mamujoco_tasks  # noqa: E402

register_game_tasks()
register_landmark_tasks()
register_discrete_spread_task()
register_mamujoco_tasks()

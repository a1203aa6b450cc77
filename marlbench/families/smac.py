"""SMACv1 and SMACv2, the paper's Table 1: StarCraft II tasks whose data is the public OG-MARL (and, for 2c_vs_64zg,
OMIGA) datasets (``marlbench/families/public.py``; the paper's short alias, e.g. ``3m-good``, resolves to the public
task once downloaded) and whose policies are evaluated in StarCraft II through ``marlbench/envs/smac_adapter.py``.

With StarCraft II and smac/smacv2 installed (``starcraft_missing`` says what is not), a task gets the adapter as its
environment and the layout of its vault (``configs/datasets/public.yaml`` dims, e.g. 3m: obs 30, 9 actions); the
public dataset then trains and SC2 evaluates. Without them, the task is blocked with one message that says which of
StarCraft II and the dataset is missing, the commands that get them, and the SMAX analogue that runs without SC2.
"""
from __future__ import annotations

from functools import lru_cache, partial

from marlbench.envs.smac_adapter import make_starcraft_env, starcraft_missing
from marlbench.envs.smax import MAPS as SMAX_MAPS
from marlbench.families.public import manifest, spec_from_dims
from marlbench.paths import data_dir
from marlbench.spec import TaskSpec
from marlbench.tasks import Family, Task, TaskEntry

SMACV1_MAPS = ("3m", "8m", "2s3z", "5m_vs_6m", "2c_vs_64zg")
SMACV1_QUALITIES = ("good", "medium", "poor")
SMACV2_MAPS = ("terran_5_vs_5", "zerg_5_vs_5", "terran_10_vs_10")


@lru_cache(maxsize=None)
def _vault_dims() -> dict[tuple[str, str], dict]:
    """(source, scenario) -> the dims recorded in the public manifest."""
    return {(v["id"].split("/")[0], v["scenario"]): v.get("dims") or {} for v in manifest()["vaults"]}


def _spec(name: str, source: str, scenario: str) -> TaskSpec | None:
    return spec_from_dims(name, _vault_dims().get((source, scenario), {}), "smac")


def headline_reason(public: str, version: str, smax_analogue: str | None) -> str | None:
    """Why a task whose data is ``public`` cannot run here, in one line: which of StarCraft II and its dataset is
    missing, with the commands that get each, and the SMAX analogue; None when both are present."""
    sc2 = starcraft_missing(version)  # "needs <what> (<command>) and <what> (<command>)" or None
    have_data = (data_dir() / "datasets" / f"{public}.h5").exists()
    data = f"the dataset {public} (missing: `marlbench data download {public}`)"
    if sc2 is None and have_data:
        return None
    if sc2 is None:
        return f"StarCraft II is installed; needs {data}"
    out = f"needs StarCraft II (missing: {sc2.removeprefix('needs ')})"
    out += f" and {data}" if not have_data else f"; the dataset {public} is downloaded"
    if smax_analogue:
        out += (f". Without StarCraft II, the SMAX analogue is {smax_analogue} (JaxMARL's simulator, its own "
                f"benchmark; `marlbench list tasks` shows its status, docs/SMAX.md)")
    return out


def _task(benchmark: str, version: str, scenario: str, quality: str, source: str, env_name: str) -> Task:
    name = f"{benchmark}/{scenario}-{quality}"
    public = f"{source}/{scenario}-{quality}"
    smax = f"smax/{scenario}-{quality}" if scenario in SMAX_MAPS else None
    reason = headline_reason(public, version, smax)
    spec = _spec(name, source, scenario)
    # the environment only where StarCraft II runs: the public task binds to it (public.py _env_binding)
    sc2_here = starcraft_missing(version) is None
    make_env = partial(make_starcraft_env, env_name, version, spec=spec) if sc2_here and spec else None
    return Task(name, benchmark, scenario, quality, spec=spec, make_env=make_env, blocked_reason=reason)


def smacv1_tasks() -> list[TaskEntry]:
    out = []
    for scenario in SMACV1_MAPS:
        source = "omiga" if scenario == "2c_vs_64zg" else "og_marl"
        for quality in SMACV1_QUALITIES:
            task = _task("smacv1", "v1", scenario, quality, source, scenario)
            out.append((task, (f"{scenario}-{quality}",)))
    return out


def smacv2_tasks() -> list[TaskEntry]:
    return [(_task("smacv2", "v2", scenario, "replay", "og_marl", scenario), (f"{scenario}-replay",))
            for scenario in SMACV2_MAPS]


SMACV1 = Family("smacv1", "SMACv1", order=10, tasks=smacv1_tasks, description="StarCraft II micromanagement (SMAC)")
SMACV2 = Family("smacv2", "SMACv2", order=20, tasks=smacv2_tasks, description="StarCraft II, SMACv2's random teams")

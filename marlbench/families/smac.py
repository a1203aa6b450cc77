"""SMACv1 and SMACv2, the paper's Table 1: registered so their names and the paper's short aliases resolve, and
blocked with the reason until StarCraft II and its adapter are available. Their data is the public OG-MARL (and, for
2c_vs_64zg, OMIGA) datasets (``marlbench/families/public.py``), to which the short alias resolves once downloaded."""
from __future__ import annotations

from marlbench.tasks import Family, Task, TaskEntry

BLOCKED = ("not runnable yet: needs StarCraft II with the {adapter} adapter; its data is the public dataset {public} "
           "(`marlbench data download {public}`)")
SMACV1_MAPS = ("3m", "8m", "2s3z", "5m_vs_6m", "2c_vs_64zg")
SMACV1_QUALITIES = ("good", "medium", "poor")
SMACV2_MAPS = ("terran_5_vs_5", "zerg_5_vs_5", "terran_10_vs_10")


def smacv1_tasks() -> list[TaskEntry]:
    out = []
    for scenario in SMACV1_MAPS:
        for quality in SMACV1_QUALITIES:
            public = f"{'omiga' if scenario == '2c_vs_64zg' else 'og_marl'}/{scenario}-{quality}"
            out.append((Task(f"smacv1/{scenario}-{quality}", "smacv1", scenario, quality,
                             blocked_reason=BLOCKED.format(adapter="SMAC", public=public)),
                        (f"{scenario}-{quality}",)))
    return out


def smacv2_tasks() -> list[TaskEntry]:
    return [(Task(f"smacv2/{scenario}-replay", "smacv2", scenario, "replay",
                  blocked_reason=BLOCKED.format(adapter="SMACv2", public=f"og_marl/{scenario}-replay")),
             (f"{scenario}-replay",)) for scenario in SMACV2_MAPS]


SMACV1 = Family("smacv1", "SMACv1", order=10, tasks=smacv1_tasks, description="StarCraft II micromanagement (SMAC)")
SMACV2 = Family("smacv2", "SMACv2", order=20, tasks=smacv2_tasks, description="StarCraft II, SMACv2's random teams")

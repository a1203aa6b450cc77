"""The catalogue: every built-in algorithm and task family, in one visible place.

``load()`` registers the families below (their tasks and behaviour environments), then the public datasets, which
bind to the environments of those tasks, then families that other packages declare under the entry-point group
``marlbench.families`` (an entry point names a ``marlbench.tasks.Family``). Algorithms register when their module
is imported (subclassing ``Algorithm``); they are listed here so the catalogue names everything, and third-party
algorithms come through the entry-point group ``marlbench.algorithms``.

Adding a task family: write one module that defines a ``Family`` and add it to ``FAMILIES``.
"""
from __future__ import annotations

from importlib import metadata

from marlbench.algorithms.macflow import MACFlow
from marlbench.baselines.bc import BC
from marlbench.baselines.diffusion_bc import DiffusionBC
from marlbench.baselines.dof import DoF
from marlbench.baselines.flow_bc import FlowBC
from marlbench.baselines.icq import ICQ
from marlbench.baselines.mabcq import MABCQ
from marlbench.baselines.macql import MACQL
from marlbench.baselines.madiff import MADiffC, MADiffD
from marlbench.baselines.mafql import MAFQL
from marlbench.baselines.matd3bc import MATD3BC
from marlbench.baselines.omar import OMAR
from marlbench.baselines.omiga import OMIGA
from marlbench.families import games, mamujoco, mpe, smac, smax
from marlbench.families.public import register_public_tasks
from marlbench.tasks import Family, register_family

ALGORITHMS = (MACFlow, BC, MABCQ, MACQL, MATD3BC, ICQ, OMAR, OMIGA, FlowBC, DiffusionBC, MAFQL, MADiffC, MADiffD, DoF)
FAMILIES: tuple[Family, ...] = (
    smac.SMACV1,
    smac.SMACV2,
    smax.FAMILY,
    mamujoco.FAMILY,
    mpe.FAMILY,
    games.FAMILY,
)
FAMILY_ENTRY_POINT_GROUP = "marlbench.families"


def load() -> None:
    """Register every built-in and installed task family and the public datasets (idempotent, cheap when done)."""
    for family in FAMILIES:
        register_family(family)
    register_public_tasks()
    for ep in metadata.entry_points(group=FAMILY_ENTRY_POINT_GROUP):
        register_family(ep.load())

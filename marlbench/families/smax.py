"""SMAX (JaxMARL's SMAC-like simulator in JAX): its own benchmark, labelled SMAX and never presented as SMACv1, since
its observations, state, actions and rewards differ from StarCraft II's (docs/SMAX.md).

Tasks ``smax/<map>-<quality>``: OG-MARL's tiers (Good, Medium, Poor; Replay for the SMACv2-style map) of the maps
3m, 8m, 2s3z, 5m_vs_6m and smacv2_5_units. They are registered blocked until their behaviour policies are trained and
the tiers generated; the environment itself (``marlbench/envs/smax.py``) runs with the ``smax`` extra.

Behaviour environments ``smax/<map>``: ``marlbench behaviour train smax/3m`` trains QMIX behaviour policies
(``marlbench/behaviour/qmix_trainer.py``; the trainer is chosen by the action kind).
"""
from __future__ import annotations

from functools import partial

from marlbench.behaviour.envs import BehaviourEnv
from marlbench.envs.smax import INSTALL, MAPS, SmaxEnv, jaxmarl_available, smax_spec
from marlbench.tasks import Family, Task, TaskEntry

QUALITIES = ("good", "medium", "poor")
REPLAY_MAPS = ("smacv2_5_units",)  # SMACv2-style maps (random unit types and start positions): OG-MARL's Replay tier
NO_TIERS = ("not runnable yet: the behaviour-policy tiers of SMAX {map} are not generated yet (the QMIX behaviour "
            "policies train with `marlbench behaviour train smax/{map}`; tier generation is still to come); the SMAX "
            "simulator itself runs")
NO_EXTRA = f"needs the 'smax' extra (jax and jaxmarl): {INSTALL}"


def qualities(map_name: str) -> tuple[str, ...]:
    return ("replay",) if map_name in REPLAY_MAPS else QUALITIES


def tasks() -> list[TaskEntry]:
    available = jaxmarl_available()
    out = []
    for map_name in MAPS:
        for quality in qualities(map_name):
            name = f"smax/{map_name}-{quality}"
            spec = smax_spec(map_name, name=name)
            out.append((Task(name, "smax", map_name, quality, spec=spec,
                             make_env=partial(SmaxEnv, map_name=map_name, spec=spec),
                             blocked_reason=NO_TIERS.format(map=map_name) if available else NO_EXTRA,
                             description=f"SMAX {map_name} (JaxMARL, heuristic enemy; not SMACv1), {quality} tier"),
                        ()))
    return out


# QMIX trainer defaults per map (QMIXTrainerConfig / QMIXConfig keys): the bigger maps get a smaller replay buffer
# (an 8m episode holds 101 x 8 x 205 observation floats, 0.66 MB)
BEHAVIOUR_DEFAULTS = {"8m": {"buffer_episodes": 2000}, "5m_vs_6m": {"buffer_episodes": 3000},
                      "2s3z": {"buffer_episodes": 3000}, "smacv2_5_units": {"buffer_episodes": 3000}}


def behaviour_envs() -> list[BehaviourEnv]:
    return [BehaviourEnv(f"smax/{m}", smax_spec(m, name=f"smax/{m}"), partial(SmaxEnv, map_name=m),
                         defaults=BEHAVIOUR_DEFAULTS.get(m, {}), default_episodes=1000) for m in MAPS]


FAMILY = Family("smax", "SMAX", order=30, tasks=tasks, behaviour_envs=behaviour_envs,
                description="JaxMARL's SMAC-like micromanagement in JAX (its own benchmark, not SMACv1)")

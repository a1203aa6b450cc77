"""SMAX (JaxMARL's SMAC-like simulator in JAX): its own benchmark, labelled SMAX and never presented as SMACv1, since
its observations, state, actions and rewards differ from StarCraft II's (docs/SMAX.md).

Tasks ``smax/<map>-<quality>``: OG-MARL's tiers (Good, Medium, Poor; Replay for the SMACv2-style map) of the maps
3m, 8m, 2s3z, 5m_vs_6m and smacv2_5_units, generated from the shipped QMIX behaviour policies
(``marlbench/behaviour/weights/<map>/``, ``marlbench/behaviour/smax_tiers.py``). A map without shipped weights is
registered blocked, saying so; the environment itself (``marlbench/envs/smax.py``) runs with the ``smax`` extra.

Behaviour environments ``smax/<map>``: ``marlbench behaviour train smax/3m`` trains QMIX behaviour policies
(``marlbench/behaviour/qmix_trainer.py``; the trainer is chosen by the action kind).
"""
from __future__ import annotations

from functools import partial

from marlbench.behaviour.envs import BehaviourEnv
from marlbench.behaviour.smax_tiers import REPLAY, SMAX_TIERS, generate_smax_tier
from marlbench.behaviour.tiers import load_manifest
from marlbench.envs.smax import INSTALL, MAPS, SMACV2_STYLE_MAPS, SmaxEnv, jaxmarl_available, smax_spec
from marlbench.tasks import Family, Task, TaskEntry

NO_TIERS = ("not runnable yet: no shipped QMIX behaviour policies for SMAX {map} (train them with `marlbench behaviour "
            "train smax/{map}` and export them with `marlbench behaviour export RUN`); the SMAX simulator itself runs")
NO_EXTRA = f"needs the 'smax' extra (jax and jaxmarl): {INSTALL}"


def qualities(map_name: str) -> tuple[str, ...]:
    return (REPLAY,) if map_name in SMACV2_STYLE_MAPS else SMAX_TIERS


def _generate(map_name: str, quality: str, task: str, episodes: int, seed: int):
    """Task.generate of a tier: 0 episodes means the manifest's default size."""
    return generate_smax_tier(f"smax/{map_name}", quality, episodes or None, seed, task=task)


def blocked_reason(map_name: str, quality: str, available: bool) -> str | None:
    """Why ``smax/<map>-<quality>`` cannot run here, None if it can."""
    if not available:
        return NO_EXTRA
    if load_manifest(f"smax/{map_name}") is None:
        return NO_TIERS.format(map=map_name)
    return None


def tasks() -> list[TaskEntry]:
    available = jaxmarl_available()
    out = []
    for map_name in MAPS:
        for quality in qualities(map_name):
            name = f"smax/{map_name}-{quality}"
            spec = smax_spec(map_name, name=name)
            blocked = blocked_reason(map_name, quality, available)
            out.append((Task(name, "smax", map_name, quality, spec=spec,
                             make_env=partial(SmaxEnv, map_name=map_name, spec=spec),
                             generate=None if blocked else partial(_generate, map_name, quality, name),
                             default_episodes=0, blocked_reason=blocked,
                             description=f"SMAX {map_name} (JaxMARL, heuristic enemy; not SMACv1), {quality} tier "
                                         f"generated from the shipped QMIX behaviour policies"),
                        ()))
    return out


# QMIX trainer defaults per map (QMIXTrainerConfig / QMIXConfig keys): the bigger maps get a smaller replay buffer
# (an 8m episode holds 101 x 8 x 205 observation floats, 0.66 MB). 5m_vs_6m, SMAC's hard map, gets pymarl2's
# TD(lambda) 0.6 and 100k-step exploration (one-step targets plateaued at return 0.64 with no wins by 350k-600k env
# steps; these reach a plateau of return 0.83-0.87 and win rate 0.10-0.15 from about 1.6M env steps; the shipped run
# is this config for 6M, evaluated every 20k: `marlbench behaviour train smax/5m_vs_6m --env-steps 6000000`).
BEHAVIOUR_DEFAULTS = {"8m": {"buffer_episodes": 2000},
                      "5m_vs_6m": {"buffer_episodes": 3000, "td_lambda": 0.6, "epsilon_anneal_steps": 100_000},
                      "2s3z": {"buffer_episodes": 3000}, "smacv2_5_units": {"buffer_episodes": 3000}}


def behaviour_envs() -> list[BehaviourEnv]:
    return [BehaviourEnv(f"smax/{m}", smax_spec(m, name=f"smax/{m}"), partial(SmaxEnv, map_name=m),
                         defaults=BEHAVIOUR_DEFAULTS.get(m, {}), default_episodes=1000) for m in MAPS]


FAMILY = Family("smax", "SMAX", order=30, tasks=tasks, behaviour_envs=behaviour_envs,
                description="JaxMARL's SMAC-like micromanagement in JAX (its own benchmark, not SMACv1)")

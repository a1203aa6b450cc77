"""MPE Spread, the paper's Table 2 benchmark: OMAR's tiers generated from the shipped MATD3 behaviour policies, the
scripted ``mpe/spread-scripted`` set (the default task), and Spread with MPE's five discrete moves.

Simulator, scripted controller and generators live in ``marlbench/envs/mpe.py`` and ``envs/spread_discrete.py``;
the tiers come from ``marlbench/behaviour/weights/spread/`` through ``behaviour.tiers.generate_tier``.
"""
from __future__ import annotations

from functools import partial

from marlbench.behaviour.envs import BehaviourEnv
from marlbench.behaviour.tiers import generate_tier, load_manifest
from marlbench.envs.mpe import SpreadEnv, generate_spread_scripted, spread_spec
from marlbench.envs.spread_discrete import TASK_NAME as DISCRETE_TASK
from marlbench.envs.spread_discrete import DiscreteSpreadEnv, discrete_spread_spec, generate_discrete_spread
from marlbench.tasks import Family, Task, TaskEntry

ENV = "mpe/spread"
TIERS = ("expert", "medium", "medium-replay", "random")
NO_WEIGHTS = (f"not runnable yet: no shipped behaviour weights for {ENV}; train them with `marlbench behaviour "
              f"train {ENV}` or use the OMAR dataset (`marlbench data download`)")


def tasks() -> list[TaskEntry]:
    out = [(Task("mpe/spread-scripted", "mpe", "spread", "scripted", spec=spread_spec("mpe/spread-scripted"),
                 make_env=SpreadEnv, generate=generate_spread_scripted, default_episodes=4000,
                 description="OMAR cooperative navigation, 3 agents; noisy landmark-assignment controller at mixed "
                             "noise"),
            ("spread-scripted",))]
    manifest = load_manifest(ENV)
    for quality in TIERS:  # OMAR's tiers; the real OMAR files bind to the same names (`marlbench data download`)
        name = f"mpe/spread-{quality}"
        out.append((Task(name, "mpe", "spread", quality, spec=spread_spec(name), make_env=SpreadEnv,
                         generate=partial(generate_tier, ENV, quality, task=name) if manifest else None,
                         default_episodes=manifest["default_episodes"][quality] if manifest else 0,
                         blocked_reason=None if manifest else NO_WEIGHTS,
                         description=f"OMAR cooperative navigation, 3 agents; {quality} tier generated from the "
                                     f"shipped MATD3 behaviour policies"),
                    (f"spread-{quality}",)))
    spec = discrete_spread_spec()
    out.append((Task(DISCRETE_TASK, "mpe", "spread-discrete", "scripted", spec=spec,
                     make_env=partial(DiscreteSpreadEnv, spec=spec), generate=generate_discrete_spread,
                     default_episodes=4000,
                     description="OMAR Spread with MPE's 5 discrete moves; discretised PD controller at mixed "
                                 "random-move rates"),
                ("spread-discrete-scripted",)))
    return out


def behaviour_envs() -> list[BehaviourEnv]:
    # OMAR's tiers hold 1M transitions: 40,000 episodes of 25 steps
    return [BehaviourEnv(ENV, spread_spec(ENV), SpreadEnv, default_episodes=40_000, aliases=("spread",))]


FAMILY = Family("mpe", "MPE", order=50, tasks=tasks, behaviour_envs=behaviour_envs,
                description="MPE Spread (OMAR's cooperative navigation), continuous and discrete")

"""MA-MuJoCo, the paper's Table 2 continuous-control benchmark: 6-agent HalfCheetah, 3-agent Hopper and 2-agent Ant
over Gymnasium-Robotics (``marlbench/envs/mamujoco.py``), with tiers generated from the shipped MATD3 behaviour
policies (``marlbench/behaviour/weights/<scenario>/``). Needs the ``[mujoco]`` extra."""
from __future__ import annotations

import importlib.util
from functools import partial

from marlbench.behaviour.envs import BehaviourEnv
from marlbench.behaviour.tiers import generate_tier, load_manifest
from marlbench.envs.mamujoco import SCENARIOS, MaMuJoCoEnv, mamujoco_spec
from marlbench.tasks import Family, Task, TaskEntry

# MATD3 with a team critic (one twin critic of the shared reward, FACMAC-style joint actor gradient) and TD3's
# MuJoCo settings (Fujimoto et al. 2018: lr 3e-4, batch 256, gamma 0.99, tau 0.005, exploration noise 0.1) except
# for cost: 128x128 networks instead of 256x256 and one gradient step per two collected transitions, which together
# make training about 5x cheaper on a CPU core. OMIGA's data came from HAPPO; see docs/TASKS.md.
BEHAVIOUR_DEFAULTS = {
    "num_envs": 4, "updates_per_step": 2, "warmup_steps": 10_000, "eval_every": 20_000, "eval_episodes": 10,
    "explore_std": 0.1, "buffer_capacity": 1_000_000,
    "hidden_dims": (128, 128), "actor_lr": 3e-4, "critic_lr": 3e-4, "batch_size": 256, "gamma": 0.99,
    "tau": 0.005, "reward_scale": 1.0, "team_critic": True,
}
BEHAVIOUR_ENV_STEPS = {"6halfcheetah": 160_000, "3hopper": 300_000, "2ant": 300_000}
# What the behaviour actors see. OMIGA's observations are z-scored per vector, which hides the state's scale; the
# Hopper and Ant policies learn from the raw global state (+ agent id) instead, i.e. they are centralised behaviour
# policies. Their datasets still record OMIGA's observations.
BEHAVIOUR_ACTOR_OBSERVATION = {"6halfcheetah": "env", "3hopper": "state", "2ant": "state"}
GENERATE_CHUNK = 100  # episodes stepped together when generating datasets (100 simulators of 1,000 steps)
DEFAULT_TRANSITIONS = 1_000_000  # OMIGA's datasets hold 1M transitions per tier

TIERS = ("expert", "medium", "medium-expert", "medium-replay")
# D4RL's reference scores of the single-agent task each scenario splits (configs/reference/normalisation.yaml,
# source d4rl-mujoco): the team reward is the single-agent reward. Measured scores of this suite's uniform-random
# and Expert policies are in docs/TASKS.md.
D4RL_REFERENCES = {"6halfcheetah": (-280.178953, 12135.0), "3hopper": (-20.272305, 3234.3), "2ant": (-325.6, 3879.7)}


def _generate(env_name: str, quality: str, task: str, episodes: int, seed: int):
    """Task.generate of a tier: 0 episodes means the manifest's default size (1M transitions)."""
    return generate_tier(env_name, quality, episodes or None, seed, task=task)


def tasks() -> list[TaskEntry]:
    """``mamujoco/<scenario>-<tier>`` for the generated tiers, with the paper's short names as aliases."""
    missing_extra = importlib.util.find_spec("gymnasium_robotics") is None
    out = []
    for scenario, (gym_name, conf, _, _) in SCENARIOS.items():
        env_name = f"mamujoco/{scenario}"
        blocked = None
        if missing_extra:
            blocked = "needs the MA-MuJoCo extra: pip install 'marlbench-suite[mujoco]'"
        elif load_manifest(env_name) is None:
            blocked = (f"no shipped behaviour weights for {env_name}; train them with `marlbench behaviour train "
                       f"{env_name}` or download the OMIGA dataset")
        random_score, expert_score = D4RL_REFERENCES[scenario]
        for quality in TIERS:
            name = f"{env_name}-{quality}"
            spec = mamujoco_spec(name, scenario, random_score=random_score, expert_score=expert_score,
                                 normalisation_source=f"D4RL reference scores of {gym_name} (d4rl-mujoco)")
            out.append((Task(name, "mamujoco", scenario, quality, spec=spec,
                             make_env=partial(MaMuJoCoEnv, scenario=scenario, spec=spec),
                             generate=None if blocked else partial(_generate, env_name, quality, name),
                             default_episodes=0, blocked_reason=blocked,
                             description=f"MA-MuJoCo {gym_name} {conf}, OMIGA observations; {quality} tier generated "
                                         f"from the shipped MATD3 behaviour policies"),
                        (f"{scenario}-{quality}",)))
    return out


def behaviour_envs() -> list[BehaviourEnv]:
    """``mamujoco/<scenario>``, trainable by ``marlbench behaviour train``."""
    out = []
    for scenario in SCENARIOS:
        name = f"mamujoco/{scenario}"
        spec = mamujoco_spec(name, scenario, random_score=D4RL_REFERENCES[scenario][0],
                             expert_score=D4RL_REFERENCES[scenario][1], normalisation_source="D4RL")
        out.append(BehaviourEnv(name, spec, partial(MaMuJoCoEnv, scenario=scenario, spec=spec),
                                defaults={**BEHAVIOUR_DEFAULTS, "env_steps": BEHAVIOUR_ENV_STEPS[scenario],
                                          "actor_observation": BEHAVIOUR_ACTOR_OBSERVATION[scenario]},
                                chunk=GENERATE_CHUNK, default_transitions=DEFAULT_TRANSITIONS, aliases=(scenario,)))
    return out


FAMILY = Family("mamujoco", "MA-MuJoCo", order=40, tasks=tasks, behaviour_envs=behaviour_envs,
                description="multi-agent MuJoCo: 6halfcheetah, 3hopper, 2ant (OMIGA observations)")

"""The paper's didactic games: the single-step coordination, payoff and XOR games (App. H.5-H.7) and landmark
covering with N agents (Sec. 4.3, App. H.4). Environments and generators: ``marlbench/envs/games.py`` and
``envs/landmarks.py``."""
from __future__ import annotations

from functools import partial

from marlbench.envs.games import (
    DEFAULT_EPISODES,
    PAYOFF_ZETAS,
    CoordinationGameEnv,
    XorGameEnv,
    coordination_spec,
    generate_coordination,
    generate_payoff,
    generate_xor,
    payoff_name,
    xor_spec,
)
from marlbench.envs.landmarks import DEFAULT_EPISODES as LANDMARK_EPISODES
from marlbench.envs.landmarks import (
    REGISTERED_SIZES,
    LandmarkCoveringEnv,
    generate_landmarks,
    landmarks_name,
    landmarks_spec,
)
from marlbench.tasks import Family, Task, TaskEntry


def tasks() -> list[TaskEntry]:
    out = [(Task("games/coordination", "games", "coordination", "biased", spec=coordination_spec(),
                 make_env=CoordinationGameEnv, generate=generate_coordination, default_episodes=DEFAULT_EPISODES,
                 description="App. H.5 pure coordination game; data mostly (0,1)/(1,0), optimum (1,1) rare"),
            ("coordination",))]
    for zeta in PAYOFF_ZETAS:
        name = payoff_name(zeta)
        out.append((Task(name, "games", "payoff", name.split("-")[-1], spec=coordination_spec(name),
                         make_env=partial(CoordinationGameEnv, name=name), generate=partial(generate_payoff, zeta=zeta),
                         default_episodes=DEFAULT_EPISODES,
                         description=f"App. H.7 payoff game; dataset diagonal mass zeta={zeta}"),
                    (name.split("/")[1],)))
    out.append((Task("games/xor", "games", "xor", "two-mode", spec=xor_spec(), make_env=XorGameEnv,
                     generate=generate_xor, default_episodes=DEFAULT_EPISODES,
                     description="App. H.6 continuous XOR stress test; anti-aligned optimum, non-factorisable"),
                ("xor",)))
    for n in REGISTERED_SIZES:
        name = landmarks_name(n)
        spec = landmarks_spec(n, name)
        out.append((Task(name, "games", f"landmarks{n}", "scripted", spec=spec,
                         make_env=partial(LandmarkCoveringEnv, n_agents=n, spec=spec),
                         generate=partial(generate_landmarks, n), default_episodes=LANDMARK_EPISODES,
                         description=f"Sec. 4.3 / App. H.4 landmark covering, {n} agents; scripted optimal "
                                     f"assignment data, agents blind to each other"),
                    (name.split("/")[1],)))
    return out


FAMILY = Family("games", "Games", order=60, tasks=tasks,
                description="the paper's didactic games: coordination, payoff, XOR, landmark covering")

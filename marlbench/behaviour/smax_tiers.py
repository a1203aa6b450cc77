"""SMAX tiers from a QMIX behaviour-training run, after OG-MARL's SMAC datasets (Good, Medium, Poor: datasets of
one training run's policies at different levels of return).

Selection from the run's learning curve (greedy return on the fixed evaluation episodes of every snapshot):

- Good: the last evaluated snapshot (the trained policy).
- Poor: the snapshot whose return is closest to ``POOR_FRACTION`` x Good's; Medium: the later snapshot closest to
  ``MEDIUM_FRACTION`` x Good's. The fractions are OG-MARL's published mean returns relative to Good's on the same
  maps (3m 4.69 / 9.96 / 16.49 and 8m 5.28 / 10.14 / 16.86: Poor 0.28-0.31, Medium 0.60). 5m_vs_6m uses its own
  OG-MARL ratios (7.45 / 12.62 / 16.58: Poor 0.45, Medium 0.76; ``MAP_FRACTIONS``); 2s3z keeps 0.3 / 0.6 (its own
  would be 0.38 / 0.69; its tiers shipped before the per-map rule). The untrained initial network is never a tier
  (its greedy argmax is one fixed action, not a policy of the run), Poor comes before Medium, and ties go to the
  earlier snapshot.

The datasets are the snapshot policies rolled in SMAX with ``behaviour_epsilon``-greedy legal actions (the manifest
records it; 0 by default, see docs/SMAX.md for why), recurrent state and last actions as in training, and the
legal-action masks and SMAX's global state stored.

SMACv2-style maps (random unit types and start positions) get OG-MARL's Replay tier instead: the run's whole replay
history, rebuilt window by window. The episodes between two evaluations were collected by the network being trained
in that interval with the schedule's epsilon; the rebuild plays the snapshot at the interval's start with the
epsilon at the interval's midpoint (the schedule is linear, so that is its mean over an interval inside the anneal).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from marlbench.behaviour.envs import get_env
from marlbench.behaviour.history import read_curve
from marlbench.behaviour.qmix import QMIX, QMIXConfig
from marlbench.behaviour.qmix_trainer import legal_mask
from marlbench.behaviour.tiers import (
    MANIFEST,
    _read_manifest,
    allocate,
    load_manifest,
    one_thread,
    reproduce_command,
    weights_dir,
)
from marlbench.data.tools import combine
from marlbench.envs.rollout import rollout
from marlbench.envs.smax import SMACV2_STYLE_MAPS
from marlbench.errors import MarlbenchError, UnavailableError
from marlbench.seeding import derive_seed

SMAX_TIERS = ("good", "medium", "poor")
REPLAY = "replay"
POOR_FRACTION, MEDIUM_FRACTION = 0.3, 0.6
# maps whose tiers use their own OG-MARL mean-return ratios (Poor / Good, Medium / Good) instead of 3m's and 8m's
MAP_FRACTIONS = {"5m_vs_6m": (0.45, 0.76)}  # OG-MARL 5m_vs_6m: 7.45 / 12.62 / 16.58
BEHAVIOUR_EPSILON = 0.0


def tier_fractions(map_name: str) -> tuple[float, float]:
    """(Poor, Medium) fractions of Good's greedy return for a SMAX map's tier selection."""
    return MAP_FRACTIONS.get(map_name, (POOR_FRACTION, MEDIUM_FRACTION))


def tier_rule(map_name: str) -> str:
    """The selection rule a map's manifest records."""
    poor, medium = tier_fractions(map_name)
    source = f"OG-MARL's mean-return ratios on {map_name}" if map_name in MAP_FRACTIONS else \
        "OG-MARL's mean-return ratios on 3m and 8m"
    return (f"good: the last evaluated snapshot; poor: the snapshot whose greedy return is closest to {poor} x "
            f"good's; medium: the later snapshot closest to {medium} x good's ({source}); the untrained initial "
            f"network excluded; ties to the earlier one")


REPLAY_RULE = ("replay: the training run's whole replay history, each window between evaluations rebuilt with the "
               "snapshot at its start and the epsilon at its midpoint")
_CURVE_KEYS = ("env_steps", "return_mean", "win_rate", "normalised", "snapshot")


def select_smax_tiers(curve: list[dict], fractions: tuple[float, float] = (POOR_FRACTION, MEDIUM_FRACTION)) -> dict:
    """Good, Medium and Poor from a QMIX learning curve (records with env_steps, return_mean, win_rate,
    snapshot), by the rule in the module docstring with the (Poor, Medium) ``fractions`` of Good's return."""
    pool = curve[1:-1]  # trained snapshots before the final one
    if len(pool) < 2:
        raise MarlbenchError(f"tier selection needs at least two evaluated snapshots between the initial network and "
                             f"the final one, found {len(pool)}; train longer or evaluate more often "
                             f"(--set eval_every=...)")
    good = curve[-1]

    def closest(records: list[dict], fraction: float) -> dict:
        target = fraction * good["return_mean"]
        return min(records, key=lambda r: (abs(r["return_mean"] - target), r["env_steps"]))

    poor = closest(pool[:-1], fractions[0])
    medium = closest([r for r in pool if r["env_steps"] > poor["env_steps"]], fractions[1])
    return {q: {k: r.get(k) for k in _CURVE_KEYS} for q, r in (("good", good), ("medium", medium), ("poor", poor))}


def replay_windows(curve: list[dict], qmix: QMIXConfig) -> list[dict]:
    """The replay history as windows between evaluations: episode range, the snapshot at the window's start and the
    epsilon at its midpoint (module docstring)."""
    windows = []
    for rec, nxt in zip(curve[:-1], curve[1:]):
        if nxt["episodes"] > rec["episodes"]:
            mid = (rec["env_steps"] + nxt["env_steps"]) // 2
            windows.append({"start_episode": rec["episodes"], "end_episode": nxt["episodes"],
                            "episodes": nxt["episodes"] - rec["episodes"], "snapshot": rec["snapshot"],
                            "snapshot_env_steps": rec["env_steps"], "epsilon": qmix.epsilon(mid),
                            "agent": len(windows)})
    return windows


def export_smax_weights(run_dir: Path, out_dir: Path, command: str | None = None) -> dict:
    """Copy a QMIX run's tier policies into ``out_dir`` (good.pt, medium.pt, poor.pt: agent-network weights; for a
    SMACv2-style map replay.pt, every window's snapshot) with a manifest: trainer config, seed, code version, the
    selection and its rule, the learning curve and the command that reproduces the run. A run stopped before its
    budget is exported as far as it got; the manifest's command then names the env steps it reached (a run to that
    budget makes the same rounds, so the same snapshots)."""
    run_dir, out_dir = Path(run_dir), Path(out_dir)
    config = json.loads((run_dir / "config.json").read_text())
    if config.get("algorithm") != "QMIX":
        raise MarlbenchError(f"{run_dir} is not a QMIX run (algorithm {config.get('algorithm')!r})")
    trainer = config["trainer"]
    curve = read_curve(run_dir / "curve.jsonl")
    spec = get_env(trainer["env"]).spec
    for rec in curve:
        rec["normalised"] = spec.normalise(rec["return_mean"])
    qmix = QMIXConfig(**trainer["qmix"])
    map_name = trainer["env"].split("/")[-1]
    replay = map_name in SMACV2_STYLE_MAPS
    if replay:
        windows = replay_windows(curve, qmix)
        tiers = {REPLAY: {"env_steps": curve[-1]["env_steps"], "episodes": curve[-1]["episodes"],
                          "final_return_mean": curve[-1]["return_mean"], "final_win_rate": curve[-1].get("win_rate")}}
    else:
        tiers = select_smax_tiers(curve, tier_fractions(map_name))
    reached = curve[-1]["env_steps"]
    complete = (run_dir / "final.json").exists()
    argv = list(config.get("command") or [])
    if not complete and "--env-steps" in argv:
        argv[argv.index("--env-steps") + 1] = str(reached)
    out_dir.mkdir(parents=True, exist_ok=True)
    snapshot = lambda name: torch.load(run_dir / "snapshots" / name, weights_only=True)
    if replay:
        torch.save({"agents": [snapshot(w["snapshot"]) for w in windows]}, out_dir / f"{REPLAY}.pt")
        default_episodes = {REPLAY: sum(w["episodes"] for w in windows)}
    else:
        for quality, rec in tiers.items():
            torch.save(snapshot(rec["snapshot"]), out_dir / f"{quality}.pt")
        default_episodes = {q: get_env(trainer["env"]).default_episodes for q in SMAX_TIERS}
    manifest = {
        "env": trainer["env"],
        "algorithm": "QMIX (recurrent agent Q-network shared by the agents, monotonic mixer on the global state)",
        "trainer_config": trainer,
        "state_dim": config["state_dim"],
        "seed": trainer["seed"],
        "code_version": config["versions"],
        "command": command or reproduce_command(argv),
        "env_steps": reached,
        "run_complete": complete,
        "planned_env_steps": trainer["env_steps"],
        "train_seconds": curve[-1]["train_seconds"],
        "eval": {"episodes": trainer["eval_episodes"], "seed": config["eval_seed"], "policy": "greedy (epsilon 0)"},
        "behaviour_epsilon": BEHAVIOUR_EPSILON,
        "tier_rule": REPLAY_RULE if replay else tier_rule(map_name),
        "tiers": tiers,
        **({"replay_windows": windows} if replay else {}),
        "default_episodes": default_episodes,
        "learning_curve": [{k: r.get(k) for k in ("env_steps", "return_mean", "win_rate", "normalised",
                                                  "train_seconds")} for r in curve],
    }
    (out_dir / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    _read_manifest.cache_clear()
    return manifest


class QMIXBehaviour:
    """A shipped QMIX agent network as a behaviour policy for ``rollout``: recurrent state and last actions carried
    over steps, epsilon-greedy among the legal actions from its own seeded generator, single-threaded so the output
    does not depend on the thread count."""

    def __init__(self, spec, qmix_cfg: dict, state_dim: int, weights: dict, epsilon: float, seed: int):
        self.learner = QMIX(spec, QMIXConfig(**qmix_cfg), state_dim)
        self.learner.agent.load_state_dict(weights)
        self.n_agents, self.n_actions, self.epsilon = spec.n_agents, spec.action_dim, epsilon
        self.gen = torch.Generator().manual_seed(seed)

    def reset(self, num_envs: int) -> None:
        self.hidden = self.learner.initial_hidden(num_envs)
        self.last = torch.full((num_envs, self.n_agents), -1, dtype=torch.long)

    @torch.no_grad()
    def __call__(self, step) -> np.ndarray:
        with one_thread():
            actions, self.hidden = self.learner.act(torch.tensor(step.obs), self.last,
                                                    torch.from_numpy(legal_mask(step, self.n_actions)), self.hidden,
                                                    self.epsilon, self.gen)
        self.last = actions
        return actions.numpy()


def generate_smax_tier(env_name: str, quality: str, episodes: int | None = None, seed: int = 0,
                       task: str | None = None, weights: Path | None = None):
    """Roll the shipped QMIX policy of ``quality`` through ``env_name`` for ``episodes`` episodes (the manifest's
    default without it); bit-reproducible per arguments. ``weights`` points at another exported directory."""
    manifest = load_manifest(env_name, weights)
    if manifest is None:
        raise UnavailableError(f"no shipped behaviour weights for {env_name!r} (expected "
                               f"{weights_dir(env_name) / MANIFEST}); train them with `marlbench behaviour train "
                               f"{env_name}` and export them with `marlbench behaviour export RUN`")
    if quality not in manifest["tiers"]:
        raise MarlbenchError(f"unknown SMAX tier {quality!r}; these weights have {', '.join(manifest['tiers'])}")
    if episodes is not None and int(episodes) < 1:
        raise MarlbenchError(f"--episodes must be at least 1, got {episodes}")
    episodes = int(episodes or manifest["default_episodes"][quality])
    env_def = get_env(env_name)
    wdir = Path(weights) if weights is not None else weights_dir(env_name)
    behaviour = lambda weights, epsilon, stream: QMIXBehaviour(
        env_def.spec, manifest["trainer_config"]["qmix"], manifest["state_dim"], weights, epsilon,
        derive_seed(seed, 1, stream))
    if quality == REPLAY:
        windows = manifest["replay_windows"]
        agents = torch.load(wdir / f"{REPLAY}.pt", weights_only=True)["agents"]
        counts = allocate([w["episodes"] for w in windows], episodes)
        env = env_def.make(min(env_def.chunk, int(counts.max())))  # one batch size: JAX compiles once
        parts = [rollout(env, behaviour(agents[w["agent"]], w["epsilon"], k), int(c), derive_seed(seed, 2, k))
                 for k, (w, c) in enumerate(zip(windows, counts)) if c > 0]
        data = combine(parts)
        if "episodes_won" in parts[0].metadata:
            won = sum(p.metadata["episodes_won"] for p in parts)
            data.metadata.update({"episodes_won": won, "win_rate": won / data.n_episodes})
        tier = {**manifest["tiers"][REPLAY], "windows": [{**w, "episodes_generated": int(c)}
                                                          for w, c in zip(windows, counts)]}
    else:
        policy = behaviour(torch.load(wdir / f"{quality}.pt", weights_only=True), manifest["behaviour_epsilon"], 0)
        data = rollout(env_def.make(min(env_def.chunk, episodes)), policy, episodes, seed)
        tier = manifest["tiers"][quality]
    data.metadata.update({
        "task": task or f"{env_name}-{quality}",
        "source": "generated",
        "quality": quality,
        "behaviour_policy": {"algorithm": manifest["algorithm"], "weights": f"marlbench/behaviour/weights/"
                             f"{env_name.split('/')[-1]}", "trainer_seed": manifest["seed"],
                             "epsilon": "per window" if quality == REPLAY else manifest["behaviour_epsilon"],
                             "tier_rule": manifest["tier_rule"],
                             **tier},
        "generator_seed": seed,
        "episodes": data.n_episodes,
        "return_definition": env_def.spec.return_definition,
    })
    return data

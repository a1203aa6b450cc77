"""Tier selection from a behaviour-training run, following the public conventions (OMAR, D4RL):

- Expert: the final policy.
- Medium: the evaluated checkpoint whose score on the fixed evaluation set is closest to half-way between the
  uniform-random policy's score and the Expert's (ties: the earlier checkpoint; the final policy is excluded).
- Medium-Replay: every episode in the replay history up to the Medium checkpoint.
- Medium-Expert: the Medium and Expert datasets together.
- Random: the uniform-random policy.
"""
from __future__ import annotations

import json
from contextlib import contextmanager
from functools import lru_cache, partial
from importlib import resources
from pathlib import Path

import numpy as np
import torch

from marlbench.behaviour.envs import actor_observations, actor_spec, get_env
from marlbench.behaviour.history import load_replay, read_curve
from marlbench.behaviour.matd3 import make_actor, squash
from marlbench.data.dataset import Dataset
from marlbench.data.tools import combine
from marlbench.envs.rollout import rollout, rollout_transitions
from marlbench.errors import DatasetError, MarlbenchError, UnavailableError
from marlbench.seeding import derive_seed


def select_tiers(curve: list[dict], random_return: float) -> dict:
    """Pick the tiers from a learning curve (records with env_steps, return_mean, snapshot)."""
    if len(curve) < 2:
        raise ValueError("tier selection needs at least one evaluated checkpoint before the final policy")
    expert = curve[-1]
    target = 0.5 * (random_return + expert["return_mean"])
    candidates = curve[:-1]
    medium = min(candidates, key=lambda r: (abs(r["return_mean"] - target), r["env_steps"]))
    return {
        "random_return": random_return,
        "medium_target_return": target,
        "expert": {k: expert[k] for k in ("env_steps", "return_mean", "normalised", "snapshot")},
        "medium": {k: medium[k] for k in ("env_steps", "return_mean", "normalised", "snapshot")},
        "medium_replay": {"env_steps": medium["env_steps"]},
    }


# ---------------------------------------------------------------------------------------------- shipped weights
TIERS = ("expert", "medium", "medium-replay", "medium-expert", "random")
MANIFEST = "manifest.json"
# Medium-Replay's default size is the number of episodes the training run had collected by the Medium checkpoint.
# Episodes stepped together come from the environment (BehaviourEnv.chunk) and are fixed per environment, so fewer
# episodes give a prefix of more episodes.


def weights_dir(env: str) -> Path:
    """Where the shipped behaviour weights of ``env`` live inside the installed package."""
    scenario = env.split("/")[-1]
    return Path(str(resources.files("marlbench.behaviour").joinpath("weights", scenario)))


def load_manifest(env: str, weights: Path | None = None) -> dict | None:
    """The manifest of the shipped weights of ``env`` (or of the weights directory ``weights``), None if absent."""
    return _read_manifest(str(Path(weights) if weights is not None else weights_dir(env)))


@lru_cache(maxsize=None)
def _read_manifest(wdir: str) -> dict | None:
    path = Path(wdir) / MANIFEST
    return json.loads(path.read_text()) if path.exists() else None


def _actor_state(run_dir: Path, snapshot: str) -> dict:
    return torch.load(run_dir / "snapshots" / snapshot, weights_only=True)


def export_weights(run_dir: Path, out_dir: Path, command: str | None = None) -> dict:
    """Copy a finished run's tier policies into ``out_dir`` (expert.pt, medium.pt, medium_replay.pt) with a
    manifest: trainer config, seed, code version, measured scores, the schedule that rebuilds Medium-Replay and the
    command that reproduces the run."""
    run_dir, out_dir = Path(run_dir), Path(out_dir)
    final = json.loads((run_dir / "final.json").read_text())
    config = json.loads((run_dir / "config.json").read_text())
    curve = read_curve(run_dir / "curve.jsonl")
    trainer = config["trainer"]
    # normalised scores from the environment's current references (a run resumed across a change of references
    # would otherwise mix them)
    spec = get_env(trainer["env"]).spec
    for rec in [*curve, final["tiers"]["expert"], final["tiers"]["medium"]]:
        rec["normalised"] = spec.normalise(rec["return_mean"])
    tiers = final["tiers"]
    out_dir.mkdir(parents=True, exist_ok=True)
    torch.save(_actor_state(run_dir, tiers["expert"]["snapshot"]), out_dir / "expert.pt")
    torch.save(_actor_state(run_dir, tiers["medium"]["snapshot"]), out_dir / "medium.pt")
    # Medium-Replay: the episodes of each evaluation interval up to Medium were collected by the actor being
    # trained in that interval; the rebuild uses the snapshot at the interval's start (uniform during warm-up).
    # Windows are episode ranges (each round collects num_envs episodes); runs from before episode counts were
    # logged had full-length episodes only, so env_steps / episode_limit recovers them.
    limit = config["spec"]["episode_limit"]

    def episodes_at(rec: dict) -> int:
        return rec["episodes"] if "episodes" in rec else rec["env_steps"] // limit

    warmup = final.get("warmup_episodes", -(-trainer["warmup_steps"] // config["round_steps"]) * trainer["num_envs"])
    medium_rec = next(r for r in curve if r["env_steps"] == tiers["medium"]["env_steps"])
    points = [r for r in curve if r["env_steps"] < tiers["medium"]["env_steps"]]
    windows, actors = [], []
    for i, rec in enumerate(points):
        start, end = episodes_at(rec), episodes_at(points[i + 1] if i + 1 < len(points) else medium_rec)
        for lo, hi, uniform in ((start, min(end, warmup), True), (max(start, warmup), end, False)):
            if hi > lo:
                if not uniform:
                    actors.append(_actor_state(run_dir, rec["snapshot"]))
                windows.append({"start_episode": lo, "end_episode": hi, "episodes": hi - lo,
                                "policy": "uniform" if uniform else f"actor {len(actors) - 1} "
                                f"(snapshot at {rec['env_steps']} env steps)",
                                "actor": None if uniform else len(actors) - 1})
    torch.save({"actors": actors}, out_dir / "medium_replay.pt")
    manifest = {
        "env": trainer["env"],
        "algorithm": "MATD3 (decentralised actors, " + ("one centralised twin critic of the team reward)"
                                                         if trainer["matd3"].get("team_critic")
                                                         else "centralised twin critics)"),
        "trainer_config": trainer,
        "seed": trainer["seed"],
        "code_version": config["versions"],
        "command": command or reproduce_command(config.get("command") or []),
        "env_steps": final["env_steps"],
        "train_seconds": final["train_seconds"],
        "eval": {"episodes": trainer["eval_episodes"], "seed": config["eval_seed"],
                 "policy": "deterministic actor (no noise)"},
        "behaviour_noise_std": trainer["explore_std"],
        "tiers": tiers,
        "medium_replay_windows": windows,
        **default_sizes(trainer["env"], sum(w["episodes"] for w in windows)),
        "learning_curve": [{k: r[k] for k in ("env_steps", "return_mean", "normalised", "train_seconds")}
                           for r in curve],
    }
    (out_dir / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    _read_manifest.cache_clear()
    return manifest


def default_sizes(env_name: str, replay_episodes: int) -> dict:
    """Default dataset sizes for the manifest, from the environment's ``BehaviourEnv`` (in episodes, or in
    transitions where episodes may end early, as MA-MuJoCo's). Medium-Replay is always the training history up to
    Medium, in episodes."""
    env = get_env(env_name)
    if env.default_transitions is None:
        n = env.default_episodes
        return {"default_episodes": {"expert": n, "medium": n, "random": n, "medium-replay": replay_episodes,
                                     "medium-expert": 2 * n}}
    total = env.default_transitions
    return {"default_episodes": {"medium-replay": replay_episodes},
            "default_transitions": {"expert": total, "medium": total, "random": total, "medium-expert": 2 * total}}


def allocate(sizes: list[int], total: int) -> np.ndarray:
    """Split ``total`` episodes over windows in proportion to their ``sizes`` (largest remainder, ties to the earlier
    window): how a replay history is rebuilt at another size than it had."""
    share = np.array(sizes, dtype=np.float64) * total / sum(sizes)
    counts = np.floor(share).astype(int)
    counts[np.argsort(-(share - counts), kind="stable")[:total - counts.sum()]] += 1
    return counts


def reproduce_command(argv: list[str]) -> str:
    """The training command line without its output options (--out, --export), which do not change the result."""
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
            continue
        if a in ("--out", "--export"):
            skip = True
            continue
        if a.startswith(("--out=", "--export=")):
            continue
        out.append(a)
    return " ".join(out)


def _cut_replay(data: dict[str, np.ndarray]):
    """Episode-major replay arrays -> the Dataset layout (time-major, episodes back to back)."""
    lengths = data["lengths"].astype(np.int64)
    e, lim = data["actions"].shape[:2]
    mask = np.arange(lim)[None, :] < lengths[:, None]
    terminals = data["terminals"][mask]
    ends = np.cumsum(lengths) - 1
    truncations = np.zeros_like(terminals)
    truncations[ends] = ~terminals[ends]
    return Dataset(obs=data["obs"][:, :lim][mask], actions=data["actions"][mask], rewards=data["rewards"][mask],
                   terminals=terminals, truncations=truncations)


def medium_replay_from_run(run_dir: Path):
    """The exact Medium-Replay dataset of a training run: its replay history up to the Medium checkpoint."""
    final = json.loads((Path(run_dir) / "final.json").read_text())
    upto = final["tiers"]["medium_replay"]["env_steps"]
    data = _cut_replay(load_replay(Path(run_dir), upto))
    data.metadata.update({"source": "replay history", "quality": "medium-replay", "run": str(run_dir),
                          "env_steps": upto})
    return data


# ---------------------------------------------------------------------------------------------- generation
@contextmanager
def one_thread():
    """Run a behaviour policy single-threaded, so generated datasets do not depend on the thread count."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


class ActorPolicy:
    """A shipped actor as a behaviour policy for ``rollout``: deterministic actions plus Gaussian noise drawn from
    its own seeded generator, evaluated single-threaded so the output does not depend on the thread count."""

    def __init__(self, spec, matd3_cfg: dict, state: dict, noise_std: float, seed: int, observation: str = "env"):
        self.observe = partial(actor_observations, how=observation)
        self.actor = make_actor(actor_spec(spec, observation), tuple(matd3_cfg["hidden_dims"]),
                                matd3_cfg["layer_norm"])
        self.actor.load_state_dict(state)
        self.actor.requires_grad_(False)
        self.squash, self.spec, self.noise_std = squash, spec, noise_std
        self.gen = torch.Generator().manual_seed(seed)

    @torch.no_grad()
    def __call__(self, step) -> np.ndarray:
        with one_thread():
            pre = self.actor(torch.from_numpy(self.observe(step)))[0]
        lo, hi = float(self.spec.action_low), float(self.spec.action_high)
        a = self.squash(pre, lo, hi)
        noise = torch.randn(a.shape, generator=self.gen)
        return (a + self.noise_std * 0.5 * (hi - lo) * noise).clamp(lo, hi).numpy()


class UniformPolicy:
    def __init__(self, spec, seed: int):
        self.spec, self.rng = spec, np.random.default_rng(seed)

    def __call__(self, step) -> np.ndarray:
        b, n = step.obs.shape[:2]
        return self.rng.uniform(self.spec.action_low, self.spec.action_high,
                                (b, n, self.spec.action_dim)).astype(np.float32)


def generate_tier(env_name: str, quality: str, episodes: int | None = None, seed: int = 0, task: str | None = None,
                  weights: Path | None = None):
    """Roll the shipped behaviour policy of ``quality`` through ``env_name`` (bit-reproducible per arguments).

    Without ``episodes`` the manifest's default size is used: a number of episodes, or for environments whose
    episodes can end early a number of transitions (whole episodes until at least that many). ``weights`` points
    at another exported weights directory (``marlbench behaviour export``) instead of the shipped one."""
    if quality not in TIERS:
        raise MarlbenchError(f"unknown tier {quality!r}; tiers are {', '.join(TIERS)}")
    manifest = load_manifest(env_name, weights)
    if manifest is None:
        raise UnavailableError(f"no shipped behaviour weights for {env_name!r} (expected "
                               f"{weights_dir(env_name) / MANIFEST}); train them with `marlbench behaviour train "
                               f"{env_name}`")
    transitions = None
    if episodes is not None and int(episodes) < 1:
        raise MarlbenchError(f"--episodes must be at least 1, got {episodes}")
    if not episodes and quality in manifest.get("default_transitions", {}):
        transitions = int(manifest["default_transitions"][quality])
    else:
        episodes = int(episodes or manifest["default_episodes"][quality])
    env_def = get_env(env_name)
    spec = env_def.spec
    wdir = Path(weights) if weights is not None else weights_dir(env_name)
    mcfg, noise = manifest["trainer_config"]["matd3"], manifest["behaviour_noise_std"]

    def roll(policy) -> object:
        env = env_def.make(min(env_def.chunk, episodes or env_def.chunk))
        if transitions is None:
            return rollout(env, policy, episodes, seed)
        return rollout_transitions(env, policy, transitions, seed)

    def actor(state, stream: int) -> ActorPolicy:
        return ActorPolicy(spec, mcfg, state, noise, derive_seed(seed, 1, stream),
                           manifest["trainer_config"].get("actor_observation", "env"))

    behaviour: dict = {"noise_std": noise}
    if quality in ("expert", "medium"):
        state = torch.load(wdir / f"{quality}.pt", weights_only=True)
        data = roll(actor(state, 0))
        behaviour.update(manifest["tiers"][quality])
    elif quality == "random":
        data = roll(UniformPolicy(spec, derive_seed(seed, 1, 0)))
        behaviour = {"policy": "uniform random over the action box"}
    elif quality == "medium-expert":  # the Medium and Expert sets together (by default each at its default size)
        half = None if transitions else episodes // 2
        if half is not None and half < 1:
            raise MarlbenchError("medium-expert needs at least 2 episodes")
        parts = [generate_tier(env_name, q, k, seed, weights=weights)
                 for q, k in (("medium", half), ("expert", None if half is None else episodes - half))]
        data = combine(parts)
        behaviour = {"medium": manifest["tiers"]["medium"], "expert": manifest["tiers"]["expert"],
                     "episodes": {"medium": parts[0].n_episodes, "expert": parts[1].n_episodes}}
    else:  # medium-replay: the training's replay history rebuilt window by window from the actor snapshots
        windows = manifest["medium_replay_windows"]
        actors = torch.load(wdir / "medium_replay.pt", weights_only=True)["actors"]
        total = sum(w["episodes"] for w in windows)
        if total == 0:
            raise MarlbenchError("these weights have an empty Medium-Replay history (the Medium checkpoint is the "
                                 "initial policy); train longer")
        counts = allocate([w["episodes"] for w in windows], episodes)
        parts = []
        for k, (w, c) in enumerate(zip(windows, counts)):
            if c == 0:
                continue
            pol = UniformPolicy(spec, derive_seed(seed, 1, k)) if w["actor"] is None else \
                actor(actors[w["actor"]], k)
            parts.append(rollout(env_def.make(min(env_def.chunk, int(c))), pol, int(c), derive_seed(seed, 2, k)))
        data = combine(parts)
        behaviour = {"windows": [{**w, "episodes_generated": int(c)} for w, c in zip(windows, counts)],
                     "medium": manifest["tiers"]["medium"]}
    data.metadata.update({
        "task": task or f"{env_name}-{quality}",
        "source": "generated",
        "quality": quality,
        "behaviour_policy": {"algorithm": manifest["algorithm"], "weights": f"marlbench/behaviour/weights/"
                             f"{env_name.split('/')[-1]}", "trainer_seed": manifest["seed"], **behaviour},
        "generator_seed": seed,
        "episodes": data.n_episodes,
        **({"transitions_target": transitions} if transitions else {}),
        "return_definition": spec.return_definition,
    })
    if transitions is None and data.n_episodes != episodes:
        raise DatasetError(f"internal error: generated {data.n_episodes} episodes, expected {episodes}")
    return data

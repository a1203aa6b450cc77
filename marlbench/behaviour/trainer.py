"""Online training of behaviour policies (MATD3) on a batched environment, with checkpoints, a learning curve,
actor snapshots scored on a fixed evaluation set, and the complete replay history on disk.

Run directory (``marlbench behaviour train ENV --out DIR``)::

    config.json          trainer + MATD3 config, task spec, versions, the command line
    curve.jsonl          one line per evaluation: env steps, return/normalised score on the fixed eval set, losses
    snapshots/actor_<env_steps>.pt   actor weights at every evaluation (tier selection picks among them)
    replay/part_<k>.npz  every episode collected, in order, one file per checkpoint interval (the replay history)
    checkpoint.pt        networks, optimisers, generator state, round counter, wall-clock
    final.json           written at the end: final score, tier selection (see ``tiers.py``)

Rounds: every round resets all ``num_envs`` environments and runs one episode in each, so a round collects at most
``num_envs * episode_limit`` transitions (fewer where episodes terminate early, as Hopper's and Ant's do). Budgets
(``env_steps``, ``warmup_steps``, ``eval_every``) count the transitions actually collected, and gradient steps are
taken per live transition (``updates_per_step`` per ``num_envs`` live ones).

Determinism and resume: all training randomness (exploration and target noise, warm-up actions, batch indices)
comes from one seeded ``torch.Generator``; the environment is reset at the start of every collection round with a
seed derived from (seed, round), so no environment state needs saving. Checkpoints are taken at round boundaries
after the replay part of that interval is on disk; on resume later parts are deleted and the in-memory replay buffer
is rebuilt by re-inserting the saved parts in order. With ``threads=1`` on CPU, a resumed run ends bit-identical to
an uninterrupted one (timings aside).
"""
from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch

from marlbench.behaviour import qmix_trainer
from marlbench.behaviour.envs import ACTOR_OBSERVATIONS, BehaviourEnv, actor_observations, actor_spec, get_env
from marlbench.behaviour.history import RunFiles, read_curve, save_part
from marlbench.behaviour.matd3 import MATD3, MATD3Config
from marlbench.behaviour.tiers import select_tiers
from marlbench.config import apply_overrides
from marlbench.errors import ConfigError, MarlbenchError, UnknownNameError
from marlbench.results import atomic_torch_save, atomic_write_json, loaded_versions, truncate_jsonl
from marlbench.seeding import derive_seed

EVAL_SEED = 987_654_321  # the fixed evaluation set: the same episodes for every run, seed and checkpoint


@dataclass
class TrainerConfig:
    """The online loop. Env steps count joint transitions (one per episode per time step)."""

    env: str = "mpe/spread"
    seed: int = 0
    env_steps: int = 600_000  # joint transitions collected in total
    num_envs: int = 50  # episodes stepped together; one collection round = num_envs * episode_limit transitions
    warmup_steps: int = 50_000  # uniform-random actions and no updates for the first transitions
    updates_per_step: int = 4  # gradient steps after every batched env step (i.e. per num_envs transitions)
    explore_std: float = 0.1  # Gaussian exploration noise (units of a [-1, 1] box), as OMAR's MATD3
    buffer_capacity: int = 1_000_000  # transitions sampled from (FIFO); the whole history stays on disk
    eval_every: int = 10_000  # env steps between evaluations, snapshots and checkpoints (rounded to rounds)
    eval_episodes: int = 500  # size of the fixed evaluation set (seed EVAL_SEED)
    threads: int = 1
    actor_observation: str = "env"  # "env" (the task's observations) or "state" (global state + agent id)
    matd3: MATD3Config = field(default_factory=MATD3Config)

    def to_dict(self) -> dict:
        d = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "matd3"}
        d["matd3"] = self.matd3.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "TrainerConfig":
        d = dict(d)
        m = dict(d.pop("matd3", {}))
        if "hidden_dims" in m:
            m["hidden_dims"] = tuple(m["hidden_dims"])
        return cls(**d, matd3=MATD3Config(**m))

    def round_steps(self, limit: int) -> int:
        return self.num_envs * limit

    def validate(self, limit: int) -> None:
        if self.num_envs < 1 or self.env_steps < 1 or self.updates_per_step < 0 or self.eval_episodes < 1:
            raise ConfigError("num_envs, env_steps and eval_episodes must be positive, updates_per_step >= 0")
        if self.actor_observation not in ACTOR_OBSERVATIONS:
            raise ConfigError(f"actor_observation must be one of {ACTOR_OBSERVATIONS}, "
                              f"got {self.actor_observation!r}")
        if self.eval_every < self.round_steps(limit):
            raise ConfigError(f"eval_every ({self.eval_every}) must be at least one collection round "
                              f"(num_envs * episode_limit = {self.round_steps(limit)} env steps)")


def config_with_overrides(overrides: dict[str, Any]):
    """TrainerConfig defaults, then the environment's own defaults (``BehaviourEnv.defaults``), then ``key=value``
    overrides; MATD3 keys (``actor_lr``, ...) are accepted too. A discrete-action environment gets the QMIX trainer's
    config instead (``qmix_trainer.config_with_overrides``)."""
    env_name = overrides.get("env", TrainerConfig.env)
    if not get_env(env_name).spec.continuous:
        return qmix_trainer.config_with_overrides(overrides)
    overrides = {**get_env(env_name).defaults, **overrides, "env": get_env(env_name).name}
    cfg = TrainerConfig()
    tnames = {f.name for f in fields(TrainerConfig)} - {"matd3"}
    mnames = {f.name for f in fields(MATD3Config)}
    t = {k: v for k, v in overrides.items() if k in tnames}
    m = {k: v for k, v in overrides.items() if k in mnames}
    rest = [k for k in overrides if k not in t and k not in m]
    if rest:
        valid = sorted(tnames | mnames)
        raise UnknownNameError("behaviour config key", rest[0], valid, hint="Valid keys: " + ", ".join(valid))
    cfg = apply_overrides(cfg, t, "--set")
    return TrainerConfig(**{**{f.name: getattr(cfg, f.name) for f in fields(cfg)},
                            "matd3": apply_overrides(cfg.matd3, m, "--set")})


# ---------------------------------------------------------------------------------------------- replay buffer
class EpisodeReplay:
    """FIFO buffer of whole episodes stored episode-major as torch tensors (obs has limit + 1 rows per episode).

    ``sample`` draws transitions uniformly: an episode in proportion to its length (uniformly when all have full
    length, as Spread's do), then a valid step of it uniformly.
    """

    def __init__(self, capacity_episodes: int, limit: int, n: int, do: int, da: int):
        self.cap, self.limit = capacity_episodes, limit
        self.obs = torch.zeros(capacity_episodes, limit + 1, n, do)
        self.actions = torch.zeros(capacity_episodes, limit, n, da)
        self.rewards = torch.zeros(capacity_episodes, limit, n)
        self.terminals = torch.zeros(capacity_episodes, limit)
        self.lengths = torch.zeros(capacity_episodes, dtype=torch.long)
        self.size, self.ptr = 0, 0

    def add(self, part: dict[str, np.ndarray]) -> None:
        e = len(part["lengths"])
        idx = (self.ptr + torch.arange(e)) % self.cap
        self.obs[idx] = torch.from_numpy(part["obs"])
        self.actions[idx] = torch.from_numpy(part["actions"])
        self.rewards[idx] = torch.from_numpy(part["rewards"])
        self.terminals[idx] = torch.from_numpy(part["terminals"].astype(np.float32))
        self.lengths[idx] = torch.from_numpy(part["lengths"].astype(np.int64))
        self.ptr = (self.ptr + e) % self.cap
        self.size = min(self.size + e, self.cap)

    def sample(self, batch: int, gen: torch.Generator) -> tuple[torch.Tensor, ...]:
        lengths = self.lengths[:self.size]
        if bool((lengths == self.limit).all()):
            e = torch.randint(self.size, (batch,), generator=gen)
        else:  # episodes of unequal length: pick them in proportion to length, i.e. transitions uniformly
            e = torch.multinomial(lengths.double(), batch, replacement=True, generator=gen)
        t = (torch.rand(batch, generator=gen) * self.lengths[e]).long()
        return (self.obs[e, t], self.actions[e, t], self.rewards[e, t], self.obs[e, t + 1], self.terminals[e, t])


# ---------------------------------------------------------------------------------------------- evaluation
@torch.no_grad()
def evaluate_actor(actor_fn: Callable[[torch.Tensor], torch.Tensor], env: BehaviourEnv, episodes: int,
                   seed: int = EVAL_SEED, observation: str = "env") -> np.ndarray:
    """Returns of the deterministic policy on ``episodes`` fixed episodes (sum over steps of the agent mean)."""
    e = env.make(episodes)
    step = e.reset(seed)
    returns = np.zeros(episodes)
    done = np.zeros(episodes, dtype=bool)
    for _ in range(env.spec.episode_limit):
        step = e.step(actor_fn(torch.from_numpy(actor_observations(step, observation))).numpy())
        returns += step.rewards.mean(-1)
        done |= step.terminated | step.truncated
        if done.all():
            break
    return returns


def uniform_returns(env: BehaviourEnv, episodes: int, seed: int = EVAL_SEED) -> np.ndarray:
    """Returns of the uniform-random policy on the fixed evaluation episodes (actions drawn from ``seed``)."""
    rng = np.random.default_rng(seed)
    spec = env.spec

    def uniform(obs: torch.Tensor) -> torch.Tensor:
        shape = (*obs.shape[:2], spec.action_dim)
        return torch.from_numpy(rng.uniform(spec.action_low, spec.action_high, shape).astype(np.float32))

    return evaluate_actor(uniform, env, episodes, seed)


# ---------------------------------------------------------------------------------------------- the loop
def make_trainer(cfg, out: Path, log: Callable[[str], None] = print, command: list[str] | None = None):
    """The trainer for a config from ``config_with_overrides``: MATD3 (continuous actions) or QMIX (discrete)."""
    if isinstance(cfg, qmix_trainer.QMIXTrainerConfig):
        return qmix_trainer.QMIXTrainer(cfg, out, log=log, command=command)
    return Trainer(cfg, out, log=log, command=command)


class Trainer(RunFiles):
    algorithm = "MATD3"

    def __init__(self, cfg: TrainerConfig, out: Path, log: Callable[[str], None] = print,
                 command: list[str] | None = None):
        self.cfg, self.out, self.log = cfg, Path(out), log
        self.env = get_env(cfg.env)
        spec = self.env.spec
        if not spec.continuous:
            raise ConfigError(f"MATD3 trains continuous-action policies; {self.env.name} has discrete actions: train "
                              f"it with QMIX (`marlbench behaviour train {self.env.name}` picks it)")
        cfg.validate(spec.episode_limit)
        self.spec = actor_spec(spec, cfg.actor_observation)
        self.limit = spec.episode_limit
        self.round_steps = cfg.round_steps(self.limit)  # the most one round can collect
        self.command = command

    def saved_trainer_config(self, saved: dict) -> dict:
        return TrainerConfig.from_dict(saved["trainer"]).to_dict()  # normalised through the dataclass

    def _run(self, final_path: Path) -> dict:
        cfg, spec = self.cfg, self.spec
        torch.manual_seed(cfg.seed)
        agent = MATD3(spec, cfg.matd3)
        gen = torch.Generator().manual_seed(cfg.seed)
        n, do, da = spec.n_agents, spec.obs_dim, spec.action_dim
        replay = EpisodeReplay(max(1, cfg.buffer_capacity // self.limit), self.limit, n, do, da)
        start_round, parts, train_seconds, resumes, collected, warm_rounds = 0, 0, 0.0, [], 0, 0
        curve_path = self.out / "curve.jsonl"
        if self.checkpoint_path.exists():
            ckpt = torch.load(self.checkpoint_path, weights_only=True)
            if ckpt["config"] != cfg.to_dict():
                raise MarlbenchError(f"{self.out}: its checkpoint was made with a different config; use another "
                                     f"--out or the same options")
            agent.load_state_dict(ckpt["agent"])
            agent.load_optimizer_state(ckpt["optimizers"])
            gen.set_state(ckpt["generator"])
            torch.set_rng_state(ckpt["torch_rng"])
            start_round, parts, train_seconds = ckpt["round"], ckpt["parts"], ckpt["train_seconds"]
            collected = ckpt.get("env_steps", start_round * self.round_steps)
            warm_rounds = ckpt.get("warm_rounds", 0)
            resumes = ckpt["resumes"] + [collected]
            for k in range(parts):
                with np.load(self.part_path(k)) as z:
                    replay.add(dict(z))
            for stale in sorted((self.out / "replay").glob("part_*.npz")):
                if int(stale.stem.split("_")[1]) >= parts:
                    stale.unlink()
            truncate_jsonl(curve_path, collected, key="env_steps")
            self.log(f"resumed {self.out} at {collected} env steps")
        else:
            ours = (self.out / "config.json").exists()  # same config (checked above), killed before a checkpoint
            if self.out.exists() and any(self.out.iterdir()) and not ours:
                raise MarlbenchError(f"{self.out} exists and holds no run of this trainer; choose an empty --out "
                                     f"directory")
            for sub in ("replay", "snapshots"):
                if (self.out / sub).exists():
                    for f in (self.out / sub).iterdir():
                        f.unlink()
            (self.out / "replay").mkdir(parents=True, exist_ok=True)
            (self.out / "snapshots").mkdir(parents=True, exist_ok=True)
            atomic_write_json(self.out / "config.json", {
                "trainer": cfg.to_dict(), "spec": spec.to_dict(), "versions": loaded_versions(),
                "command": self.command, "eval_seed": EVAL_SEED, "round_steps": self.round_steps,
            })
            curve_path.unlink(missing_ok=True)
            self._evaluate(agent, 0, 0, train_seconds, {}, curve_path)  # the initial actor, step 0

        env = self.env.make(cfg.num_envs)
        pending: list[dict[str, np.ndarray]] = []
        losses: dict[str, list[float]] = {}
        seg = time.perf_counter()
        rnd, next_eval = start_round, (collected // cfg.eval_every + 1) * cfg.eval_every
        while collected < cfg.env_steps:
            warm = collected < cfg.warmup_steps
            warm_rounds += warm
            part = self._collect(env, agent, replay, gen, rnd, losses, warm=warm)
            pending.append(part)
            replay.add(part)
            collected += int(part["lengths"].sum())
            rnd += 1
            if collected >= next_eval or collected >= cfg.env_steps:
                next_eval = (collected // cfg.eval_every + 1) * cfg.eval_every
                train_seconds += time.perf_counter() - seg
                merged = {k: np.concatenate([p[k] for p in pending]) for k in pending[0]}
                save_part(self.part_path(parts), merged)
                parts += 1
                pending = []
                mean_losses = {k: float(np.mean(v)) for k, v in losses.items()}
                losses = {}
                self._evaluate(agent, collected, rnd * cfg.num_envs, train_seconds, mean_losses, curve_path)
                atomic_torch_save({
                    "round": rnd, "env_steps": collected, "warm_rounds": warm_rounds, "parts": parts,
                    "train_seconds": train_seconds, "resumes": resumes,
                    "config": cfg.to_dict(), "agent": agent.state_dict(), "optimizers": agent.optimizer_state(),
                    "generator": gen.get_state(), "torch_rng": torch.get_rng_state(),
                }, self.checkpoint_path)
                seg = time.perf_counter()
        curve = read_curve(curve_path)
        random_return = float(uniform_returns(self.env, cfg.eval_episodes).mean())
        record = {
            "env": cfg.env, "seed": cfg.seed, "env_steps": collected, "rounds": rnd,
            "episodes": rnd * cfg.num_envs, "warmup_episodes": warm_rounds * cfg.num_envs,
            "train_seconds": train_seconds, "resumed_at_env_steps": resumes,
            "final": curve[-1], "tiers": select_tiers(curve, random_return),
        }
        atomic_write_json(final_path, record)
        return record

    def _collect(self, env, agent: MATD3, replay: EpisodeReplay, gen: torch.Generator, rnd: int,
                 losses: dict[str, list[float]], warm: bool) -> dict[str, np.ndarray]:
        """One round: reset every env, run one episode each (updating the agent after every step)."""
        cfg, spec = self.cfg, self.spec
        b, n, do, da, lim = cfg.num_envs, spec.n_agents, spec.obs_dim, spec.action_dim, self.limit
        obs = np.zeros((b, lim + 1, n, do), np.float32)
        acts = np.zeros((b, lim, n, da), np.float32)
        rews = np.zeros((b, lim, n), np.float32)
        terms = np.zeros((b, lim), bool)
        alive = np.zeros((b, lim), bool)  # set step by step: steps after every episode ended stay False
        step = env.reset(derive_seed(cfg.seed, 0, rnd))
        obs[:, 0] = actor_observations(step, cfg.actor_observation)
        done, credit = np.zeros(b, bool), 0
        for t in range(lim):
            live = int((~done).sum())
            if warm:
                u = torch.rand((b, n, da), generator=gen)
                a = (spec.action_low + u * (spec.action_high - spec.action_low)).numpy()
            else:
                a = agent.act(torch.from_numpy(obs[:, t]), cfg.explore_std, gen).numpy()
            step = env.step(a)
            acts[:, t], rews[:, t] = np.where(done[:, None, None], 0.0, a), step.rewards  # ended: nothing acted
            obs[:, t + 1] = actor_observations(step, cfg.actor_observation)
            terms[:, t] = step.terminated & ~done
            alive[:, t] = ~done
            done |= step.terminated | step.truncated
            if not warm and replay.size > 0:
                # updates_per_step per num_envs live transitions; the fraction carries over to the next step
                credit += cfg.updates_per_step * live
                for _ in range(credit // b):
                    out = agent.update(*replay.sample(cfg.matd3.batch_size, gen), generator=gen)
                    for k, v in out.items():
                        losses.setdefault(k, []).append(float(v))
                credit %= b
            if done.all():
                break
        return {"obs": obs, "actions": acts, "rewards": rews, "terminals": terms,
                "lengths": alive.sum(1).astype(np.int32)}

    def _evaluate(self, agent: MATD3, steps: int, episodes: int, train_seconds: float, losses: dict,
                  curve_path: Path) -> None:
        spec = self.env.spec
        returns = evaluate_actor(lambda o: agent.act(o), self.env, self.cfg.eval_episodes,
                                 observation=self.cfg.actor_observation)
        mean = float(returns.mean())
        norm = spec.normalise(mean)
        snap = self.snapshot_path(steps)
        atomic_torch_save({k: v.clone() for k, v in agent.actor.state_dict().items()}, snap)
        rec = {"env_steps": steps, "episodes": episodes, "return_mean": mean, "return_std": float(returns.std()),
               "normalised": norm, "train_seconds": round(train_seconds, 2), "snapshot": snap.name, **losses}
        with open(curve_path, "a") as f:
            f.write(json.dumps(rec, sort_keys=True) + "\n")
        self.log(f"  env steps {steps:>9}  return {mean:7.1f}  normalised "
                 f"{'n/a' if norm is None else f'{norm:6.1f}'}  train {train_seconds:7.1f}s")


def default_command(argv: list[str] | None = None) -> list[str]:
    return ["marlbench", *(argv if argv is not None else sys.argv[1:])]

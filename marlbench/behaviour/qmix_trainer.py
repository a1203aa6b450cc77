"""Online QMIX training of discrete behaviour policies (SMAX), with checkpoints, a learning curve with win rates,
agent snapshots scored on a fixed evaluation set, and the replay history on disk. The discrete counterpart of
``trainer.py`` (MATD3); ``marlbench behaviour train ENV`` picks the trainer by the environment's action kind.

Run directory (``marlbench behaviour train smax/3m --out DIR``)::

    config.json          trainer + QMIX config, task spec, versions, the command line
    curve.jsonl          one line per evaluation: env steps, greedy return / win rate / normalised score on the fixed
                         eval set, epsilon, training return / win rate since the last evaluation, losses
    snapshots/agent_<env_steps>.pt   agent Q-network weights at every evaluation (tiers pick among them by return)
    replay/part_<k>.npz  every episode collected, in order, one compressed file per checkpoint interval
    checkpoint.pt        networks, optimiser, generator state, round counter, wall-clock
    final.json           written at the end: final evaluation, best evaluation, the curve's return range

Rounds: every round resets all ``num_envs`` environments (seed derived from (seed, round)) and plays one episode in
each with epsilon-greedy legal actions; the round's episodes enter the replay buffer and, once ``learning_starts``
env steps are collected and the buffer holds ``batch_size`` episodes, ``updates_per_round`` gradient steps follow,
each on ``batch_size`` episodes drawn uniformly. Budgets count the transitions actually collected (episodes end
early when a team dies).

Determinism and resume: exploration, random legal actions and batch indices come from one seeded
``torch.Generator``; checkpoints are taken at round boundaries after that interval's replay part is on disk; on resume
later parts are deleted and the buffer is rebuilt from the saved parts. With ``threads=1`` on CPU a resumed run ends
bit-identical to an uninterrupted one (timings aside).
"""
from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch

from marlbench.behaviour.envs import BehaviourEnv, get_env
from marlbench.behaviour.history import RunFiles, read_curve
from marlbench.behaviour.qmix import QMIX, QMIXConfig
from marlbench.config import apply_overrides
from marlbench.errors import ConfigError, MarlbenchError, UnknownNameError
from marlbench.results import atomic_torch_save, atomic_write_bytes, atomic_write_json, loaded_versions, truncate_jsonl
from marlbench.seeding import derive_seed

EVAL_SEED = 987_654_321  # the fixed evaluation set (as the MATD3 trainer's)
ALGORITHM = "QMIX"


@dataclass
class QMIXTrainerConfig:
    """The online loop. Env steps count joint transitions (one per episode per time step)."""

    env: str = "smax/3m"
    seed: int = 0
    env_steps: int = 2_000_000
    num_envs: int = 32  # episodes stepped together; one collection round = one episode in each
    updates_per_round: int = 8  # gradient steps after every round
    learning_starts: int = 10_000  # env steps collected before the first gradient step
    buffer_episodes: int = 5000  # FIFO replay capacity in episodes; the whole history stays on disk
    eval_every: int = 20_000  # env steps between evaluations, snapshots and checkpoints (rounded up to rounds)
    eval_episodes: int = 256  # size of the fixed evaluation set (seed EVAL_SEED), greedy actions
    threads: int = 1
    save_replay: bool = True  # keep replay/part_<k>.npz (the replay history, and what a resume rebuilds from)
    qmix: QMIXConfig = field(default_factory=QMIXConfig)

    def to_dict(self) -> dict:
        d = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "qmix"}
        d["qmix"] = self.qmix.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "QMIXTrainerConfig":
        d = dict(d)
        return cls(**{k: v for k, v in d.items() if k != "qmix"}, qmix=QMIXConfig(**d.get("qmix", {})))

    def validate(self) -> None:
        if min(self.num_envs, self.env_steps, self.eval_episodes, self.eval_every, self.buffer_episodes) < 1:
            raise ConfigError("num_envs, env_steps, eval_every, eval_episodes and buffer_episodes must be positive")
        if self.updates_per_round < 0 or self.learning_starts < 0:
            raise ConfigError("updates_per_round and learning_starts must be >= 0")
        if self.qmix.batch_size > self.buffer_episodes:
            raise ConfigError(f"batch_size ({self.qmix.batch_size} episodes) exceeds buffer_episodes "
                              f"({self.buffer_episodes})")


def config_with_overrides(overrides: dict[str, Any]) -> QMIXTrainerConfig:
    """QMIXTrainerConfig defaults, then the environment's defaults (``BehaviourEnv.defaults``), then ``key=value``
    overrides; QMIX keys (``lr``, ``hidden_dim``, ...) are accepted too."""
    env = get_env(overrides.get("env", QMIXTrainerConfig.env))
    overrides = {**env.defaults, **overrides, "env": env.name}
    tnames = {f.name for f in fields(QMIXTrainerConfig)} - {"qmix"}
    qnames = {f.name for f in fields(QMIXConfig)}
    t = {k: v for k, v in overrides.items() if k in tnames}
    q = {k: v for k, v in overrides.items() if k in qnames}
    rest = [k for k in overrides if k not in t and k not in q]
    if rest:
        valid = sorted(tnames | qnames)
        raise UnknownNameError("QMIX behaviour config key", rest[0], valid, hint="Valid keys: " + ", ".join(valid))
    cfg = apply_overrides(QMIXTrainerConfig(), t, "--set")
    return QMIXTrainerConfig(**{**{f.name: getattr(cfg, f.name) for f in fields(cfg)},
                                "qmix": apply_overrides(cfg.qmix, q, "--set")})


# ---------------------------------------------------------------------------------------------- replay buffer
EPISODE_KEYS = ("obs", "state", "legal", "actions", "rewards", "terminals", "lengths", "won")


class EpisodeBuffer:
    """FIFO buffer of whole episodes (obs/state/legal have limit + 1 rows per episode); ``sample`` draws episodes
    uniformly and trims the batch to its longest episode."""

    def __init__(self, capacity: int, limit: int, n: int, do: int, ds: int, na: int):
        self.cap, self.limit = capacity, limit
        self.obs = torch.zeros(capacity, limit + 1, n, do)
        self.state = torch.zeros(capacity, limit + 1, ds)
        self.legal = torch.ones(capacity, limit + 1, n, na, dtype=torch.bool)
        self.actions = torch.zeros(capacity, limit, n, dtype=torch.long)
        self.rewards = torch.zeros(capacity, limit)
        self.terminals = torch.zeros(capacity, limit)
        self.lengths = torch.zeros(capacity, dtype=torch.long)
        self.size = self.ptr = 0

    def add(self, part: dict[str, np.ndarray]) -> None:
        e = len(part["lengths"])
        if e > self.cap:  # only the newest episodes fit
            part = {k: v[-self.cap:] for k, v in part.items()}
            e = self.cap
        idx = (self.ptr + torch.arange(e)) % self.cap
        self.obs[idx] = torch.from_numpy(part["obs"])
        self.state[idx] = torch.from_numpy(part["state"])
        self.legal[idx] = torch.from_numpy(part["legal"])
        self.actions[idx] = torch.from_numpy(part["actions"].astype(np.int64))
        self.rewards[idx] = torch.from_numpy(part["rewards"])
        self.terminals[idx] = torch.from_numpy(part["terminals"].astype(np.float32))
        self.lengths[idx] = torch.from_numpy(part["lengths"].astype(np.int64))
        self.ptr = (self.ptr + e) % self.cap
        self.size = min(self.size + e, self.cap)

    TENSORS = ("obs", "state", "legal", "actions", "rewards", "terminals", "lengths")

    def arrays(self) -> dict[str, np.ndarray]:
        """The filled storage as it lies (with ``ptr``): what ``load_arrays`` restores exactly."""
        out = {k: getattr(self, k)[:self.size].numpy() for k in self.TENSORS}
        return {**out, "ptr": np.array(self.ptr)}

    def load_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        self.size, self.ptr = len(arrays["lengths"]), int(arrays["ptr"])
        for k in self.TENSORS:
            getattr(self, k)[:self.size] = torch.from_numpy(arrays[k])

    def sample(self, batch: int, gen: torch.Generator) -> dict[str, torch.Tensor]:
        e = torch.randint(self.size, (batch,), generator=gen)
        lengths = self.lengths[e]
        t = max(1, int(lengths.max()))
        return {"obs": self.obs[e, :t + 1], "state": self.state[e, :t + 1], "legal": self.legal[e, :t + 1],
                "actions": self.actions[e, :t], "rewards": self.rewards[e, :t], "terminals": self.terminals[e, :t],
                "mask": (torch.arange(t)[None, :] < lengths[:, None]).float()}


def save_part(path: Path, arrays: dict[str, np.ndarray]) -> None:
    import io

    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    atomic_write_bytes(path, buf.getvalue())


# ---------------------------------------------------------------------------------------------- acting
def mixer_states(step) -> np.ndarray:
    """The mixer's input: the global state, or the joint observation where the environment has none."""
    return step.state if step.state is not None else step.obs.reshape(step.obs.shape[0], -1)


def legal_mask(step, n_actions: int) -> np.ndarray:
    if step.legals is not None:
        return np.array(step.legals, dtype=bool)
    return np.ones((*step.obs.shape[:2], n_actions), bool)


def play(agent: QMIX, env, seed: int, epsilon: float = 0.0, generator: torch.Generator | None = None,
         record: bool = False) -> dict[str, np.ndarray]:
    """One episode in each of ``env.num_envs`` environments reset with ``seed``; returns per-episode ``returns``
    (sum over steps of the agent-mean reward), ``won`` (where the environment reports wins, else False) and, with
    ``record``, the episodes in buffer layout."""
    spec = agent.spec
    b, n, na, lim = env.num_envs, spec.n_agents, spec.action_dim, spec.episode_limit
    step = env.reset(seed)
    ds = agent.state_dim
    if record:
        obs = np.zeros((b, lim + 1, n, spec.obs_dim), np.float32)
        state = np.zeros((b, lim + 1, ds), np.float32)
        legal = np.ones((b, lim + 1, n, na), bool)
        acts = np.zeros((b, lim, n), np.int16)
        rews = np.zeros((b, lim), np.float32)
        terms = np.zeros((b, lim), bool)
        obs[:, 0], state[:, 0], legal[:, 0] = step.obs, mixer_states(step), legal_mask(step, na)
    alive = np.zeros((b, lim), bool)
    returns = np.zeros(b)
    done = np.zeros(b, bool)
    hidden = agent.initial_hidden(b)
    last = torch.full((b, n), -1, dtype=torch.long)
    for t in range(lim):
        mask = legal_mask(step, na)
        a, hidden = agent.act(torch.tensor(step.obs), last, torch.from_numpy(mask), hidden, epsilon, generator)
        last = a
        step = env.step(a.numpy())
        r = step.rewards.mean(-1)
        returns += r
        alive[:, t] = ~done
        if record:
            acts[:, t] = np.where(done[:, None], 0, a.numpy())
            rews[:, t] = r
            terms[:, t] = step.terminated & ~done
            obs[:, t + 1], state[:, t + 1], legal[:, t + 1] = step.obs, mixer_states(step), \
                legal_mask(step, na)
        done |= step.terminated | step.truncated
        if done.all():
            break
    won = np.asarray(getattr(env, "won", np.zeros(b, bool)), bool).copy()
    out = {"returns": returns, "won": won, "lengths": alive.sum(1).astype(np.int32)}
    if record:
        out.update(obs=obs, state=state, legal=legal, actions=acts, rewards=rews, terminals=terms)
    return out


def load_agent(path: Path, spec, cfg: QMIXConfig, state_dim: int | None = None) -> QMIX:
    """A QMIX learner whose agent network holds a snapshot's weights (for evaluation or tier generation)."""
    agent = QMIX(spec, cfg, state_dim)
    agent.agent.load_state_dict(torch.load(path, weights_only=True))
    return agent


# ---------------------------------------------------------------------------------------------- the loop
class QMIXTrainer(RunFiles):
    algorithm = ALGORITHM
    snapshot_name = "agent"

    def __init__(self, cfg: QMIXTrainerConfig, out: Path, log: Callable[[str], None] = print,
                 command: list[str] | None = None, env: BehaviourEnv | None = None, progress: bool | None = None):
        self.cfg, self.out, self.log, self.command = cfg, Path(out), log, command
        self.env = env or get_env(cfg.env)
        self.spec = self.env.spec
        if self.spec.continuous:
            raise ConfigError(f"QMIX trains discrete-action policies; {self.env.name} has continuous actions: "
                              f"train it with MATD3 (`marlbench behaviour train {self.env.name}` picks it)")
        cfg.validate()
        self.limit = self.spec.episode_limit
        self.progress = progress

    def _state_dim(self) -> int:
        return self.spec.state_dim or self.spec.n_agents * self.spec.obs_dim

    def _run(self, final_path: Path) -> dict:
        from tqdm.auto import tqdm

        cfg, spec = self.cfg, self.spec
        torch.manual_seed(cfg.seed)
        agent = QMIX(spec, cfg.qmix, self._state_dim())
        gen = torch.Generator().manual_seed(cfg.seed)
        buffer = EpisodeBuffer(cfg.buffer_episodes, self.limit, spec.n_agents, spec.obs_dim, self._state_dim(),
                               spec.action_dim)
        rnd, parts, collected, train_seconds, resumes = 0, 0, 0, 0.0, []
        curve_path = self.out / "curve.jsonl"
        if self.checkpoint_path.exists():
            ckpt = torch.load(self.checkpoint_path, weights_only=True)
            if ckpt["config"] != cfg.to_dict():
                raise MarlbenchError(f"{self.out}: its checkpoint was made with a different config; use another "
                                     f"--out or the same options")
            agent.load_state_dict(ckpt["learner"])
            agent.load_optimizer_state(ckpt["optimizer"])
            gen.set_state(ckpt["generator"])
            torch.set_rng_state(ckpt["torch_rng"])
            rnd, parts, collected, train_seconds = ckpt["round"], ckpt["parts"], ckpt["env_steps"], \
                ckpt["train_seconds"]
            resumes = ckpt["resumes"] + [collected]
            if cfg.save_replay:
                for k in range(parts):
                    with np.load(self.part_path(k)) as z:
                        buffer.add(dict(z))
                for stale in sorted((self.out / "replay").glob("part_*.npz")):
                    if int(stale.stem.split("_")[1]) >= parts:
                        stale.unlink()
            else:
                with np.load(self.out / "buffer.npz") as z:
                    buffer.load_arrays(dict(z))
            truncate_jsonl(curve_path, collected, key="env_steps")
            self.log(f"resumed {self.out} at {collected} env steps")
        else:
            if self.out.exists() and any(self.out.iterdir()) and not (self.out / "config.json").exists():
                raise MarlbenchError(f"{self.out} exists and holds no run of this trainer; choose an empty --out "
                                     f"directory")
            for sub in ("replay", "snapshots"):
                if (self.out / sub).exists():
                    for f in (self.out / sub).iterdir():
                        f.unlink()
                (self.out / sub).mkdir(parents=True, exist_ok=True)
            atomic_write_json(self.out / "config.json", {
                "algorithm": ALGORITHM, "trainer": cfg.to_dict(), "spec": spec.to_dict(), "versions": loaded_versions(),
                "command": self.command, "eval_seed": EVAL_SEED, "state_dim": self._state_dim(),
            })
            curve_path.unlink(missing_ok=True)
            self._evaluate(agent, 0, 0, train_seconds, {}, curve_path)

        env = self.env.make(cfg.num_envs)
        pending: list[dict[str, np.ndarray]] = []
        stats: dict[str, list[float]] = {}
        next_eval = (collected // cfg.eval_every + 1) * cfg.eval_every
        bar = tqdm(total=cfg.env_steps, initial=min(collected, cfg.env_steps), unit="steps", dynamic_ncols=True,
                   desc=f"{ALGORITHM} {self.env.name} seed {cfg.seed}", disable=self.progress is False or None)
        seg = time.perf_counter()
        try:
            while collected < cfg.env_steps:
                eps = cfg.qmix.epsilon(collected)
                ep = play(agent, env, derive_seed(cfg.seed, 0, rnd), eps, gen, record=True)
                part = {k: ep[k] for k in EPISODE_KEYS}
                pending.append(part)
                buffer.add(part)
                steps = int(ep["lengths"].sum())
                collected += steps
                rnd += 1
                bar.update(min(steps, max(0, cfg.env_steps - bar.n)))
                stats.setdefault("train_return", []).extend(ep["returns"].tolist())
                stats.setdefault("train_win_rate", []).extend(ep["won"].astype(float).tolist())
                if collected >= cfg.learning_starts and buffer.size >= cfg.qmix.batch_size:
                    if int(agent.updates) == 0:  # the mixer's state scale, fixed from the data before learning
                        agent.set_state_scale(buffer.state[:buffer.size])
                    for _ in range(cfg.updates_per_round):
                        for k, v in agent.update(buffer.sample(cfg.qmix.batch_size, gen)).items():
                            stats.setdefault(k, []).append(v)
                if collected >= next_eval or collected >= cfg.env_steps:
                    next_eval = (collected // cfg.eval_every + 1) * cfg.eval_every
                    train_seconds += time.perf_counter() - seg
                    merged = {k: np.concatenate([p[k] for p in pending]) for k in pending[0]}
                    pending = []
                    if cfg.save_replay:
                        save_part(self.part_path(parts), merged)
                    else:  # the buffer itself (only what a resume needs)
                        save_part(self.out / "buffer.npz", buffer.arrays())
                    parts += 1
                    means = {k: float(np.mean(v)) for k, v in stats.items()}
                    stats = {}
                    means["epsilon"] = eps
                    means["updates"] = int(agent.updates)
                    rec = self._evaluate(agent, collected, rnd * cfg.num_envs, train_seconds, means, curve_path)
                    bar.set_postfix(win=f"{rec['win_rate']:.2f}", ret=f"{rec['return_mean']:.3f}", eps=f"{eps:.2f}")
                    atomic_torch_save({
                        "round": rnd, "env_steps": collected, "parts": parts, "train_seconds": train_seconds,
                        "resumes": resumes, "config": cfg.to_dict(), "learner": agent.state_dict(),
                        "optimizer": agent.optimizer_state(), "generator": gen.get_state(),
                        "torch_rng": torch.get_rng_state(),
                    }, self.checkpoint_path)
                    seg = time.perf_counter()
        finally:
            bar.close()
        curve = read_curve(curve_path)
        best = max(curve, key=lambda r: (r["return_mean"], -r["env_steps"]))
        record = {
            "algorithm": ALGORITHM, "env": cfg.env, "seed": cfg.seed, "env_steps": collected, "rounds": rnd,
            "episodes": rnd * cfg.num_envs, "updates": int(agent.updates), "train_seconds": train_seconds,
            "resumed_at_env_steps": resumes, "final": curve[-1],
            "best": {k: best[k] for k in ("env_steps", "return_mean", "win_rate", "normalised", "snapshot")},
            "return_range": [min(r["return_mean"] for r in curve), max(r["return_mean"] for r in curve)],
        }
        record["summary"] = (f"done in {train_seconds:.0f}s: final greedy return {curve[-1]['return_mean']:.3f}, win "
                             f"rate {curve[-1]['win_rate']:.2f}; best return {best['return_mean']:.3f} (win rate "
                             f"{best['win_rate']:.2f}) at {best['env_steps']} env steps")
        atomic_write_json(final_path, record)
        return record

    def _evaluate(self, agent: QMIX, steps: int, episodes: int, train_seconds: float, stats: dict,
                  curve_path: Path) -> dict:
        """Greedy actions on the fixed evaluation episodes; snapshot the agent network."""
        ep = play(agent, self.env.make(self.cfg.eval_episodes), EVAL_SEED)
        mean = float(ep["returns"].mean())
        norm = self.spec.normalise(mean)
        snap = self.snapshot_path(steps)
        atomic_torch_save({k: v.clone() for k, v in agent.agent.state_dict().items()}, snap)
        rec = {"env_steps": steps, "episodes": episodes, "return_mean": mean, "return_std": float(ep["returns"].std()),
               "win_rate": float(ep["won"].mean()), "normalised": norm, "train_seconds": round(train_seconds, 2),
               "snapshot": snap.name, **stats}
        with open(curve_path, "a") as f:
            f.write(json.dumps(rec, sort_keys=True) + "\n")
        self.log(f"  env steps {steps:>9}  greedy return {mean:7.3f}  win rate {rec['win_rate']:5.2f}  normalised "
                 f"{'n/a' if norm is None else f'{norm:6.1f}'}  train {train_seconds:7.1f}s")
        return rec

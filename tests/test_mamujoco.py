"""MA-MuJoCo (6halfcheetah, 3hopper, 2ant): the batched environment against the maintained wrapper, OMIGA's
observation layout, the shipped behaviour tiers' scores, and a tiny MAC-Flow run with vectorised evaluation."""
from __future__ import annotations

import numpy as np
import pytest

from marlbench.envs.mamujoco import SCENARIOS, MaMuJoCoEnv, _make_wrapper, omiga_observations
from marlbench.errors import ConfigError, UnknownNameError

# The least Expert return the shipped behaviour policies must reach (OMIGA's cards: 2785, 2452, 2055)
EXPERT_MIN = {"6halfcheetah": 2500.0, "3hopper": 2000.0, "2ant": 1800.0}


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_batched_env_steps_like_the_wrapper(scenario):
    """Env 0 of the batch and the wrapper's own ``step`` (dict actions by agent) see the same states and rewards."""
    env = MaMuJoCoEnv(3, scenario)
    step = env.reset(5)
    wrapper = _make_wrapper(scenario)
    wrapper.reset(seed=int(np.random.SeedSequence(5).generate_state(3)[0]))
    np.testing.assert_allclose(wrapper.state(), step.state[0], rtol=1e-6, atol=1e-6)
    rng = np.random.default_rng(0)
    for _ in range(60):
        actions = rng.uniform(-1, 1, (3, env.n, env.spec.action_dim))
        step = env.step(actions)
        _, rewards, term, trunc, _ = wrapper.step({a: actions[0, i] for i, a in enumerate(wrapper.possible_agents)})
        agent0 = wrapper.possible_agents[0]
        assert step.rewards[0, 0] == pytest.approx(rewards[agent0], abs=1e-5)
        assert (step.rewards[0] == step.rewards[0, 0]).all()  # the team reward, copied to every agent
        assert bool(step.terminated[0]) == bool(term[agent0])
        if step.terminated[0]:
            break
        np.testing.assert_allclose(wrapper.state(), step.state[0], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("scenario,obs_dim", [("6halfcheetah", 23), ("3hopper", 14), ("2ant", 107)])
def test_omiga_observations(scenario, obs_dim):
    env = MaMuJoCoEnv(2, scenario)
    obs = env.reset(0).obs
    assert obs.shape == (2, env.n, obs_dim) and env.spec.obs_dim == obs_dim
    np.testing.assert_allclose(obs.mean(-1), 0.0, atol=1e-5)  # each vector z-scored over its own entries
    np.testing.assert_allclose(obs.std(-1), 1.0, atol=1e-4)
    # the agent id: rows differ only in their last n entries, and agent i's largest id entry is at i
    assert np.allclose(obs[:, 0, :-env.n] != 0, obs[:, 1, :-env.n] != 0)
    assert (obs[0, :, -env.n:].argmax(-1) == np.arange(env.n)).all()
    state = env.last.state.astype(np.float64)
    np.testing.assert_allclose(omiga_observations(state, env.n), obs, atol=1e-5)


def test_local_observations_are_padded_to_the_longest_agent():
    env = MaMuJoCoEnv(2, "6halfcheetah", observation="local")
    obs = env.reset(0).obs
    assert env.local_dims == [9, 9, 8, 9, 9, 8] and obs.shape == (2, 6, 9)
    assert (obs[:, 2, 8:] == 0).all() and (obs[:, 0] != 0).any()


def test_ended_episodes_stay_ended_and_bad_input_is_named():
    env = MaMuJoCoEnv(4, "3hopper")
    env.reset(0)
    ended_at = None
    for t in range(300):  # full-force random actions topple the hopper within a few dozen steps
        step = env.step(np.random.default_rng(t).choice([-1.0, 1.0], (4, 3, 1)))
        if step.terminated[0] and ended_at is None:
            ended_at, frozen = t, step.obs[0].copy()
        if ended_at is not None and t > ended_at:
            assert step.rewards[0].sum() == 0 and step.terminated[0] and not step.truncated[0]
            np.testing.assert_array_equal(step.obs[0], frozen)
        if step.terminated.all():
            break
    assert ended_at is not None
    with pytest.raises(ConfigError, match=r"expected \(4, 3, 1\)"):
        env.step(np.zeros((4, 3)))
    with pytest.raises(UnknownNameError, match="2ant"):
        MaMuJoCoEnv(1, "2antt")
    with pytest.raises(ConfigError, match="before reset"):
        MaMuJoCoEnv(1, "3hopper").step(np.zeros((1, 3, 1)))


def test_episode_limit_truncates():
    env = MaMuJoCoEnv(2, "6halfcheetah", episode_limit=5)
    env.reset(0)
    for _ in range(5):
        step = env.step(np.zeros((2, 6, 1)))
    assert step.truncated.all() and not step.terminated.any()


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_shipped_tiers_reach_their_scores(scenario):
    """The shipped weights' datasets: Expert above EXPERT_MIN, Medium within 35-75% of Expert (mean
    return of a few generated episodes, behaviour noise included)."""
    from marlbench.behaviour.tiers import generate_tier

    env_name = f"mamujoco/{scenario}"
    expert = generate_tier(env_name, "expert", 4, seed=0).episode_returns().mean()
    medium = generate_tier(env_name, "medium", 4, seed=0).episode_returns().mean()
    assert expert >= EXPERT_MIN[scenario], (expert, medium)
    assert 0.35 * expert <= medium <= 0.75 * expert, (expert, medium)


def test_generation_is_deterministic_and_sized_in_transitions():
    from marlbench.behaviour.tiers import UniformPolicy, generate_tier
    from marlbench.envs.rollout import rollout_transitions

    a = generate_tier("mamujoco/3hopper", "medium", 3, seed=1)
    b = generate_tier("mamujoco/3hopper", "medium", 3, seed=1)
    assert a.checksum() == b.checksum() and a.n_episodes == 3
    env = MaMuJoCoEnv(4, "3hopper")
    data = rollout_transitions(env, UniformPolicy(env.spec, 0), 150, seed=0)
    lengths = data.episode_lengths
    assert lengths.sum() >= 150 and lengths[:-1].sum() < 150  # whole episodes, the last one crossing the target


@pytest.mark.parametrize("task_name", ["mamujoco/6halfcheetah-medium", "mamujoco/3hopper-medium",
                                       "mamujoco/2ant-medium"])
def test_tiny_macflow_run_with_vectorised_evaluation(task_name, tmp_path, one_thread):
    """A few MAC-Flow steps on a 2-episode generated set, then the protocol's batched evaluation (2 episodes of up
    to 1,000 steps, one act() call per step for both)."""
    from marlbench.config import resolve
    from marlbench.data.formats.native import save_native
    from marlbench.executors import run_local
    from marlbench.registry import ALGORITHMS
    from marlbench.tasks import get_task

    task = get_task(task_name)
    save_native(task.generate(2, 0), task.dataset_path)
    resolved = resolve(ALGORITHMS.get("macflow"), task.benchmark, "quick", steps=20,
                       overrides={"eval_every": 20, "eval_episodes": 2, "curve_eval_episodes": 2,
                                  "checkpoint_every": 20, "latency_calls": 5, "latency_warmup": 1,
                                  "hidden_dims": [32, 32]})
    (record,) = run_local("macflow", task_name, [0], resolved, tmp_path, show_progress=False)
    assert len(record["returns"]) == 2 and np.isfinite(record["returns"]).all()
    assert record["normalised_score"] is not None


def _write_omiga_from_env(path, scenario: str, episodes: int, obs_pad: int = 0):
    """OMIGA's HDF5 layout (o, s, a, r, d; one extra d=1 row per episode holding the final observation), written
    from this suite's environment with uniform actions; ``obs_pad`` appends zeros (Ant-v2's 6 extra dims)."""
    import h5py

    env = MaMuJoCoEnv(1, scenario)
    rng = np.random.default_rng(0)
    rows = {k: [] for k in "osard"}
    for e in range(episodes):
        step = env.reset(e)
        for _ in range(40):
            a = rng.uniform(-1, 1, (1, env.n, env.spec.action_dim))
            nxt = env.step(a)
            for k, v in zip("osard", (step.obs[0], np.repeat(step.state, env.n, 0), a[0], nxt.rewards[0, :1], [0])):
                rows[k].append(np.asarray(v, np.float32))
            step = nxt
            if nxt.terminated[0]:
                break
        for k, v in zip("osard", (step.obs[0], np.repeat(step.state, env.n, 0), np.zeros_like(a[0]), [0.0], [1])):
            rows[k].append(np.asarray(v, np.float32))
    with h5py.File(path, "w") as f:
        for k, v in rows.items():
            arr = np.stack(v)
            if k == "o" and obs_pad:
                arr = np.concatenate([arr, np.zeros((*arr.shape[:2], obs_pad), np.float32)], -1)
            f[k] = arr.reshape(len(arr), -1) if k in "rd" else arr
    return np.stack(rows["o"])[np.stack(rows["d"])[:, 0] == 0]


def test_omiga_layout_trains_and_evaluates_in_the_environment(tmp_path, capsys, one_thread, isolated_tasks):
    """OMIGA-layout MA-MuJoCo data (observation = state + one-hot id, z-scored per vector) converts, binds to the
    suite's environment through `run --dataset` with no adapter, and evaluates there; Ant-v2's 113-d observations
    are refused against Ant-v5's 107 with the field and both shapes named."""
    from marlbench.cli import main
    from marlbench.data.formats.native import load_native

    src, out = tmp_path / "Hopper-v2-3x1-medium.hdf5", tmp_path / "hopper.h5"
    obs = _write_omiga_from_env(src, "3hopper", episodes=3)
    assert main(["data", "convert", str(src), "--out", str(out)]) == 0
    np.testing.assert_array_equal(load_native(out).obs, obs)
    code = main(["run", "--algo", "bc", "--task", "mamujoco/3hopper-medium", "--dataset", str(out), "--profile",
                 "quick", "--steps", "20", "--set", "eval_episodes=2", "--set", "latency_calls=5", "--results",
                 str(tmp_path / "res"), "--workers", "1", "--no-progress"])
    assert code == 0, capsys.readouterr().err
    src, out = tmp_path / "Ant-v2-2x4-medium.hdf5", tmp_path / "ant.h5"
    _write_omiga_from_env(src, "2ant", episodes=1, obs_pad=6)
    assert main(["data", "convert", str(src), "--out", str(out)]) == 0
    capsys.readouterr()
    code = main(["run", "--algo", "bc", "--task", "mamujoco/2ant-medium", "--dataset", str(out), "--profile", "quick",
                 "--results", str(tmp_path / "res"), "--workers", "1"])
    assert code == 2 and "obs_dim expected 107, found 113" in capsys.readouterr().err


@pytest.mark.slow
def test_behaviour_trainer_budgets_count_collected_transitions(tmp_path, one_thread):
    """Hopper episodes end early: the trainer's budgets, curve and replay history count the transitions actually
    collected (not rounds x episode_limit), and nothing past an episode's end is stored."""
    from marlbench.behaviour.history import load_replay, read_curve
    from marlbench.behaviour.trainer import Trainer, config_with_overrides

    cfg = config_with_overrides({"env": "mamujoco/3hopper", "env_steps": 3000, "num_envs": 2, "warmup_steps": 1000,
                                 "eval_every": 2000, "eval_episodes": 2, "hidden_dims": (16, 16), "batch_size": 32})
    assert cfg.actor_observation == "state" and cfg.matd3.team_critic  # the environment's own defaults
    record = Trainer(cfg, tmp_path / "run", log=lambda msg: None).run()
    data = load_replay(tmp_path / "run")
    lengths = data["lengths"]
    assert record["env_steps"] == lengths.sum() >= 3000 and (lengths < 1000).all()
    assert record["episodes"] == len(lengths) and record["warmup_episodes"] > 0
    for e, length in enumerate(lengths):
        assert not data["actions"][e, length:].any() and not data["rewards"][e, length:].any()
    curve = read_curve(tmp_path / "run" / "curve.jsonl")
    assert [r["env_steps"] for r in curve][-1] == record["env_steps"]
    assert all(lengths[:r["episodes"]].sum() == r["env_steps"] for r in curve)
    assert data["obs"].shape[-1] == 11 + 3  # the actors saw the global state + agent id

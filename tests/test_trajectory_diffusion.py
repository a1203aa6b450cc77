"""MADiff-C, MADiff-D and DoF (marlbench/trajectory.py, baselines/madiff.py, baselines/dof.py): the U-Net's shapes,
cross-agent mixing, guidance, inpainting, the DoF noise factorisation, decentralisation, cost per joint action,
act() on both action kinds, runs through the protocol and learning tests."""
import itertools
import json
import math

import pytest
import torch
from learning import train_and_score

from marlbench.baselines.dof import DoF
from marlbench.baselines.madiff import MADiffC, MADiffD
from marlbench.cli import main
from marlbench.config import resolve
from marlbench.data.sampler import SegmentBatch
from marlbench.errors import ConfigError
from marlbench.registry import ALGORITHMS
from marlbench.spec import TaskSpec
from marlbench.trajectory import TemporalUnet

CONT = TaskSpec(name="t/c", n_agents=3, obs_dim=4, action_kind="continuous", action_dim=2, episode_limit=5,
                action_low=-0.5, action_high=0.5)
DISC = TaskSpec(name="t/d", n_agents=3, obs_dim=4, action_kind="discrete", action_dim=5, episode_limit=5)
SMALL = dict(dim=8, dim_mults=(1, 2), groups=4, heads=2, diffusion_steps=6, horizon=4, hidden_dims=(32, 32))
CLASSES = (MADiffC, MADiffD, DoF)

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def build(cls, spec=CONT, **kw):
    torch.manual_seed(0)
    return cls(spec, cls.Config(**{**SMALL, **kw}))


def segment_batch(spec, b=8, length=4, mask=None):
    g = torch.Generator().manual_seed(3)
    obs = torch.randn(b, length, spec.n_agents, spec.obs_dim, generator=g)
    if spec.continuous:
        actions = torch.rand(b, length, spec.n_agents, spec.action_dim, generator=g) - 0.5
        legals = None
    else:
        actions = torch.randint(0, spec.action_dim, (b, length, spec.n_agents), generator=g)
        legals = torch.ones(b, length, spec.n_agents, spec.action_dim, dtype=torch.bool)
    return SegmentBatch(obs=obs, actions=actions, mask=torch.ones(b, length) if mask is None else mask,
                        returns=torch.rand(b, generator=g), legals=legals)


# -- the U-Net
@pytest.mark.parametrize("horizon,history", [(24, 0), (10, 18), (4, 20)])
@pytest.mark.parametrize("mults", [(1, 2, 4, 8), (1, 2, 4)])
def test_unet_shapes_for_the_published_horizons(horizon, history, mults):
    """L = 24, 28 (not divisible by 8: padded inside the U-Net) and 24, with 3 or 2 down-samplings."""
    net = TemporalUnet(5, 3, 8, mults, groups=4, attention=True, heads=2)
    length = horizon + history
    x = torch.randn(2, length, 3, 5)
    out = net(x, torch.tensor([0, 7]), torch.rand(2))
    assert out.shape == x.shape and torch.isfinite(out).all()


@pytest.mark.parametrize("attention", [True, False])
def test_cross_agent_attention_mixes_agents_and_dof_does_not(attention):
    torch.manual_seed(0)
    net = TemporalUnet(4, 3, 8, (1, 2), groups=4, attention=attention, heads=2).eval()
    x, t, r = torch.randn(2, 8, 3, 4), torch.tensor([3, 5]), torch.rand(2)
    changed = x.clone()
    changed[:, :, 2] += 1.0  # agent 2's whole trajectory
    a, b = net(x, t, r), net(changed, t, r)
    other_agents_equal = torch.allclose(a[:, :, :2], b[:, :, :2], atol=1e-6)
    assert other_agents_equal != attention  # MADiff: agents 0, 1 see agent 2; DoF's U-Net: they do not
    assert not torch.allclose(a[:, :, 2], b[:, :, 2])


def test_the_null_return_embedding_and_guidance_weight_zero_is_the_unconditional_model():
    algo = build(MADiffC)
    x, returns = torch.randn(5, 4, 3, 4), torch.rand(5)
    uncond = algo.model.unet(x, torch.full((5,), 3), returns, torch.ones(5, dtype=torch.bool))
    # the dropped rows ignore the return they are given
    assert torch.allclose(uncond, algo.model.unet(x, torch.full((5,), 3), returns * 0 + 0.3,
                                                  torch.ones(5, dtype=torch.bool)))
    cond = algo.model.unet(x, torch.full((5,), 3), returns, torch.zeros(5, dtype=torch.bool))
    assert not torch.allclose(cond, uncond)
    algo.cfg.guidance_weight = 0.0
    assert torch.allclose(algo.guided(algo.model, x, 3, returns), uncond, atol=1e-6)
    algo.cfg.guidance_weight = 1.0
    assert torch.allclose(algo.guided(algo.model, x, 3, returns), cond, atol=1e-5)


def test_dof_combined_noise_is_the_weighted_concat_of_per_agent_noises():
    algo = build(DoF)
    with torch.no_grad():
        algo.model.noise_rho.copy_(torch.tensor([0.3, -1.0, 2.0]))
    x, t, r = torch.randn(4, 4, 3, 4), torch.full((4,), 2), torch.rand(4)
    per_agent = algo.model.unet(x, t, r, None)
    w = torch.nn.functional.softplus(torch.tensor([0.3, -1.0, 2.0]))
    by_hand = torch.stack([w[i] * per_agent[:, :, i] / w.sum() for i in range(3)], 2)
    assert torch.allclose(algo.eps(algo.model, x, t, r, None), by_hand, atol=1e-6)
    assert (algo.model.noise_weights() > 0).all()
    # the weights are trained by the loss (they receive a gradient)
    diffusion, _ = algo.loss(segment_batch(CONT))
    diffusion.backward()
    assert algo.model.noise_rho.grad is not None and algo.model.noise_rho.grad.abs().sum() > 0


# -- sampling and acting
@pytest.mark.parametrize("cls", CLASSES)
def test_history_inpainting_keeps_the_observed_positions(cls):
    algo = build(cls, history=3)
    window = torch.rand(2, 4, 3, 4) * 2 - 1  # history 3 + the current step
    values = torch.zeros(2, 7, 3, 4)
    values[:, :4] = window
    mask = torch.zeros(2, 7, 3, dtype=torch.bool)
    mask[:, :4] = True
    x = algo.sample(values, mask, generator=torch.Generator().manual_seed(0))
    assert torch.equal(x[:, :4], window) and not torch.equal(x[:, 4:], torch.zeros_like(x[:, 4:]))


def test_act_remembers_history_and_restarts_it():
    algo = build(MADiffC, history=2)
    seen = []
    algo.plan = lambda window, model=None, generator=None: seen.append(window.clone()) or window[:, -1]
    first, second = torch.rand(4, 3, 4), torch.rand(4, 3, 4)
    algo.start_episodes(4)
    algo.act(first)
    algo.act(second)
    n = algo.normaliser
    assert torch.allclose(seen[0], n(first)[:, None].expand(-1, 3, -1, -1))  # padded with the first step
    assert torch.allclose(seen[1][:, 1:], torch.stack([n(first), n(second)], 1))
    algo.act(torch.rand(1, 3, 4))  # batch 1 (the latency timing) without start_episodes: a fresh history
    assert seen[2].shape[0] == 1 and torch.equal(seen[2][:, 0], seen[2][:, 2])
    algo.start_episodes(4)
    algo.act(second)
    assert torch.allclose(seen[3], n(second)[:, None].expand(-1, 3, -1, -1))


@pytest.mark.parametrize("cls", CLASSES)
def test_act_shapes_and_box_clipping(cls):
    algo = build(cls)
    a = algo.act(torch.randn(5, 3, 4))
    assert a.shape == (5, 3, 2) and a.dtype == torch.float32 and a.min() >= -0.5 and a.max() <= 0.5
    with torch.no_grad():  # an inverse model stuck far outside the box: act() clips
        algo.ema.inverse.net.out.weight.zero_()
        algo.ema.inverse.net.out.bias.fill_(5.0)
    assert torch.equal(algo.act(torch.randn(5, 3, 4)), torch.full((5, 3, 2), 0.5))


@pytest.mark.parametrize("cls", CLASSES)
def test_discrete_act_plays_only_legal_actions(cls):
    algo = build(cls, DISC)
    obs = torch.randn(16, 3, 4)
    a = algo.act(obs)
    assert a.shape == (16, 3) and a.dtype == torch.long and 0 <= a.min() and a.max() < 5
    only = torch.randint(0, 5, (16, 3))
    assert torch.equal(algo.act(obs, torch.nn.functional.one_hot(only, 5).bool()), only)


@pytest.mark.parametrize("cls,decentralised", [(MADiffC, False), (MADiffD, True), (DoF, True)])
def test_decentralisation(cls, decentralised):
    """With a fixed generator, agent 0's action ignores agent 1's observation under DoF and MADiff-D, not under
    MADiff-C (whose joint chain conditions on every agent)."""
    algo = build(cls)
    obs = torch.randn(4, 3, 4)
    changed = obs.clone()
    changed[:, 1] += 2.0
    a = algo.act(obs, generator=torch.Generator().manual_seed(0))
    b = algo.act(changed, generator=torch.Generator().manual_seed(0))
    assert torch.equal(a[:, 0], b[:, 0]) == decentralised and torch.equal(a[:, 2], b[:, 2]) == decentralised
    assert not torch.allclose(a[:, 1], b[:, 1])


def unet_rows_per_joint_action(algo, envs=2):
    """(U-Net calls, conv rows = windows x agents summed over calls) of one act() on ``envs`` environments."""
    calls, rows = [], []

    def count(module, inputs, output):
        calls.append(1)
        rows.append(inputs[0].shape[0] * inputs[0].shape[2])

    handle = algo.ema.unet.register_forward_hook(count)
    algo.act(torch.randn(envs, 3, 4))
    handle.remove()
    return len(calls), sum(rows)


def test_cost_per_joint_action_madiff_d_is_n_times_madiff_c():
    """One network call per denoising step for every variant (agents and the N chains batched, conditional and
    unconditional rows together); MADiff-D processes N times MADiff-C's rows (N^2 K vs N K); DoF as MADiff-C."""
    k = SMALL["diffusion_steps"]
    calls_c, rows_c = unet_rows_per_joint_action(build(MADiffC))
    calls_d, rows_d = unet_rows_per_joint_action(build(MADiffD))
    calls_dof, rows_dof = unet_rows_per_joint_action(build(DoF))
    assert calls_c == calls_d == calls_dof == k
    assert rows_c == k * 2 * 2 * 3  # K steps x (cond + uncond) x 2 envs x N agents
    assert rows_d == 3 * rows_c and rows_dof == rows_c
    assert MADiffC.inference_complexity == "O(N K)" and MADiffD.inference_complexity == "O(N^2 K)"
    assert DoF.inference_complexity == "O(K)"


# -- training
@pytest.mark.parametrize("cls", CLASSES)
@pytest.mark.parametrize("spec", [CONT, DISC], ids=["continuous", "discrete"])
def test_update_lowers_both_losses_and_masks_padding(cls, spec):
    algo = build(cls, spec, lr=2e-3)
    batch = segment_batch(spec)
    first = algo.update(batch)
    assert set(first) == {"diffusion_loss", "inverse_loss"} and all(v.dim() == 0 for v in first.values())
    for _ in range(60):
        last = algo.update(batch)
    assert last["inverse_loss"] < 0.7 * first["inverse_loss"]
    diag = algo.diagnostics(batch)
    assert {"denoise_mse_k10", "denoise_mse_k50", "denoise_mse_k90", "guidance_gap"} <= set(diag)
    assert ("inverse_mse" if spec.continuous else "inverse_accuracy") in diag
    # padding positions do not train the model: no gradient reaches the noise predicted there, nor the inverse
    # dynamics' pairs touching them; the inpainted positions (0..history) get no gradient either
    mask = torch.ones(8, 4)
    mask[:, 3] = 0
    padded = segment_batch(spec, mask=mask)
    held, forward = {}, algo.model.unet.forward

    def keep(*args, **kw):
        held["eps"] = out = forward(*args, **kw)
        out.retain_grad()
        return out

    algo.model.unet.forward = keep
    diffusion, inverse = algo.loss(padded)
    diffusion.backward()
    grad = held["eps"].grad
    assert grad[:, 3].abs().sum() == 0 and grad[:, 1:3].abs().sum() > 0
    inpainted = grad[:, 0].abs().sum((-1,)) == 0  # [B, N]
    assert inpainted.all() if cls is not MADiffD else (inpainted.sum(1) == 1).all()  # D: one random agent
    dirty = segment_batch(spec, mask=mask)
    dirty.obs[:, 3] += 100.0
    if spec.continuous:
        dirty.actions[:, 3] = 0.4
    else:
        dirty.actions[:, 3] = 4 - dirty.actions[:, 3]
    assert torch.allclose(algo.inverse_error(algo.model, padded)[0], algo.inverse_error(algo.model, dirty)[0])


def test_madiff_d_down_weights_the_teammates_loss_and_the_quick_profile_uses_it():
    """Issue 16: trained with one agent inpainted per window, MADiff-D's U-Net barely used the agent's own clean
    observation (the two unconditioned teammates' loss dominates), so its planned own o_t+1 erred far more than the
    one-step change. ``opponent_loss_weight`` w (the published code's) scales the loss of the agents whose current
    step is not inpainted: per unit of error, a teammate's prediction gets w times the conditioned agent's gradient."""
    batch = segment_batch(CONT)
    mask = torch.zeros(8, 4, 3, dtype=torch.bool)
    mask[:, 0, 0] = True  # agent 0 conditioned
    for w in (1.0, 0.1):
        algo = build(MADiffD, opponent_loss_weight=w, prediction="x0")  # target x_0 = obs (normaliser unfitted)
        algo.condition_mask = lambda *args: mask
        out = torch.zeros_like(batch.obs, requires_grad=True)
        algo.model.unet.forward = lambda *args, **kw: out
        algo.denoise_error(algo.model, batch, torch.full((8,), 2), None).backward()
        per_error = out.grad / -batch.obs  # proportional to the loss weight of each element
        assert per_error[:, 0, 0].abs().max() == 0  # inpainted: no loss
        assert torch.allclose(per_error[:, 1:, 1:], w * per_error[:, 1:, :1].expand(-1, -1, 2, -1), rtol=1e-4)
        assert torch.allclose(per_error[:, 0, 1:], w * per_error[:, 1, :1].expand(-1, 2, -1), rtol=1e-4)
    assert MADiffD.Config().opponent_loss_weight == 1.0  # the published default (None), kept by the paper profile
    assert resolve(MADiffD, "games", "quick").algorithm.opponent_loss_weight == 0.1
    assert resolve(MADiffC, "games", "quick").algorithm.opponent_loss_weight == 1.0
    # the published agent_condition_type="random": each agent's observed positions inpainted with probability 1/2
    drawn = build(MADiffD, condition_agents="random").condition_mask(4000, 4, 3, "cpu")
    assert abs(float(drawn[:, 0].float().mean()) - 0.5) < 0.03 and not drawn[:, 1:].any()
    with pytest.raises(ConfigError):
        resolve(MADiffD, "games", "quick", overrides={"opponent_loss_weight": -1.0})


def test_normaliser_is_fitted_by_prepare_and_checkpointed(spread_dataset):
    from marlbench.data.formats.native import load_native
    from marlbench.tasks import get_task

    task = get_task("mpe/spread-scripted")
    dataset = load_native(task.dataset_path, task.spec)
    algo = build(MADiffC, task.spec)
    x = algo.normaliser(torch.as_tensor(dataset.obs))
    assert torch.allclose(x, torch.as_tensor(dataset.obs), atol=1e-6)  # identity before prepare
    algo.prepare(dataset)
    x = algo.normaliser(torch.as_tensor(dataset.obs))
    assert x.min() >= -1 - 1e-5 and x.max() <= 1 + 1e-5 and x.min() < -0.99 and x.max() > 0.99
    other = build(MADiffC, task.spec)
    other.load_checkpoint_state(algo.checkpoint_state())
    assert torch.equal(other.normaliser.low, algo.normaliser.low)


def test_registration_and_config_validation():
    for name, cls in (("madiff-c", MADiffC), ("madiff-d", MADiffD), ("dof", DoF)):
        assert ALGORITHMS.get(name) is cls and cls.continuous and cls.discrete
    cfg = MADiffC.Config()
    assert (cfg.horizon, cfg.history, cfg.dim, cfg.dim_mults, cfg.diffusion_steps) == (24, 0, 128, (1, 2, 4, 8), 200)
    assert (cfg.condition_dropout, cfg.guidance_weight, cfg.target_return) == (0.25, 1.2, 1.0)
    assert MADiffD.Config().condition_agents == "single" and DoF.Config().agent_id
    for bench, expected in (("mpe", (24, 0)), ("mamujoco", (10, 18)), ("smacv1", (4, 20)), ("smacv2", (4, 20)),
                            ("smax", (4, 20))):  # SMAX: SMAC's sizes, its closest published analogue
        for cls, profile in itertools.product(CLASSES, ("paper", "quick", "standard")):
            c = resolve(cls, bench, profile).algorithm
            assert (c.horizon, c.history) == (expected if bench != "mpe" or profile == "paper" else (8, 0))
    assert (resolve(DoF, "mamujoco", "quick").algorithm.history, resolve(DoF, "smacv1", "quick").algorithm.horizon) \
        == (18, 4)
    for bad in ({"horizon": 1}, {"dim": 10, "groups": 4}, {"kernel_size": 4}, {"condition_dropout": 1.0}):
        with pytest.raises(ConfigError):
            resolve(MADiffC, "mpe", "quick", overrides=bad)


# -- through the protocol
SMOKE = ["--seeds", "1", "--profile", "quick", "--steps", "20", "--set", "eval_episodes=4",
         "--set", "latency_calls=2", "--set", "latency_warmup=0", "--set", "log_every=10",
         "--set", "diagnostic_batch=64", "--workers", "1"]


@pytest.mark.parametrize("algorithm", ["madiff-c", "madiff-d", "dof"])
def test_runs_through_the_cli(algorithm, tmp_path, spread_dataset, capsys):
    for task in ("mpe/spread-scripted", "mpe/spread-discrete-scripted"):
        assert main(["run", "--algo", algorithm, "--task", task, *SMOKE, "--set", "diffusion_steps=3",
                     "--results", str(tmp_path)]) == 0
        (record,) = (tmp_path / task).rglob("final.json")
        final = json.loads(record.read_text())
        assert final["algorithm"] == algorithm and final["steps"] == 20
        assert math.isfinite(final["normalised_score"])
        lines = [json.loads(x) for x in (record.parent / "metrics.jsonl").read_text().splitlines()]
        logged = [x for x in lines if "diffusion_loss" in x]
        assert logged and "denoise_mse_k50" in logged[0] and "inverse_loss" in logged[0]


# Learning, on the paper's landmark covering game with 3 agents (App. H.4): the position moves by 0.1 a, so a planned
# next observation reads off the action directly. On Spread the quick budget does not teach observation planning
# well enough to act (the planned o_t+1 errs by more than the one-step change; docs/ALGORITHMS.md "MADiff and DoF").
# Measured (seed 0, quick profile, 32 evaluation episodes, random 0.7): MADiff-C 65.5 at 1000 steps (76.2 at 2000);
# DoF 32.3 at 1000 and 35.3 at 2000, as decentralised BC (36.2): the landmark partition needs the other agents'
# positions, which only MADiff-C's joint chain conditions on. MADiff-D (each agent's own chain, conditioned on its own
# observation) scored 24.0 at 2000 steps; with the quick profile's opponent_loss_weight=0.1 (issue 16) its plan error
# falls 7x but it scores 27.7, below random + 30. Trained with condition_agents=random (the published alternative:
# each agent's observation inpainted with probability 1/2) for 4000 steps it scores 28.3 / 27.7 / 32.5 / 34.2 at
# 1k-4k, DoF's level; with the default single-agent conditioning 27.7 / 27.7 / 30.2 / 31.9 (the two differ by less
# than the evaluation's standard error, about 7; docs/ALGORITHMS.md "MADiff and DoF"). About 4 minutes on one core.
LEARN = {"latency_calls": 2, "latency_warmup": 0, "eval_every": 100_000, "log_every": 250, "diagnostic_batch": 256}
LANDMARKS = {"madiff-c": (1000, {}), "dof": (2000, {}), "madiff-d": (4000, {"condition_agents": "random"})}


@pytest.mark.slow
@pytest.mark.parametrize("algorithm", list(LANDMARKS))
def test_learns_landmark_covering(algorithm, tmp_path):
    steps, options = LANDMARKS[algorithm]
    score, random = train_and_score(algorithm, "games/landmarks-3", tmp_path, steps=steps,
                                    overrides={**LEARN, **options})
    (metrics,) = tmp_path.rglob("metrics.jsonl")
    logged = [json.loads(x) for x in metrics.read_text().splitlines() if "plan_obs_mse" in x]
    first, last = logged[0], logged[-1]
    assert last["inverse_mse"] < 0.1 * last["action_var"]  # positions reveal the action
    assert last["denoise_mse_k90"] < first["denoise_mse_k90"]
    assert last["plan_obs_mse"] < first["plan_obs_mse"]  # the planner's next observation improves
    if algorithm == "madiff-c":  # the joint plan's action beats the mean action (decentralised plans are multimodal)
        assert last["plan_action_mse"] < 0.5 * last["action_var"]
    assert score > random + 30

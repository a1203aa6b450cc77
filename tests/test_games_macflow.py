"""The paper's didactic claims on the games (App. H.5, H.6), with fixed seeds and the quick profile."""
import numpy as np
import pytest

from marlbench.analysis.games import expected_reward, policy_samples
from marlbench.analysis.games import train_macflow as train
from marlbench.envs.games import joint_action_frequencies

pytestmark = pytest.mark.slow  # every test trains MAC-Flow on a game (plot games trains the landmark runs too)


def tv(p, q):
    return 0.5 * float(np.abs(p - q).sum())


@pytest.fixture(scope="module")
def coordination(data_dir):
    macflow, dataset = train("games/coordination")
    no_guidance, _ = train("games/coordination", q_guidance=False)
    return {
        "data": joint_action_frequencies(dataset.actions),
        "flow": joint_action_frequencies(policy_samples(macflow, "flow")),
        "macflow": joint_action_frequencies(policy_samples(macflow, "onestep")),
        "no_guidance": joint_action_frequencies(policy_samples(no_guidance, "onestep")),
    }


def test_joint_flow_reproduces_the_dataset(coordination):
    assert tv(coordination["flow"], coordination["data"]) <= 0.1, coordination


def test_value_guidance_amplifies_the_rare_optimal_joint_action(coordination):
    c = coordination
    assert c["macflow"][1, 1] > max(c["data"][1, 1], c["flow"][1, 1]), c
    assert expected_reward(c["macflow"]) > max(expected_reward(c["data"]), expected_reward(c["flow"])), c


def test_without_value_guidance_the_policy_is_the_product_of_marginals(coordination):
    c = coordination
    product = np.outer(c["data"].sum(1), c["data"].sum(0))  # near uniform: both marginals are ~50/50
    assert tv(c["no_guidance"], product) <= 0.1, c
    assert c["no_guidance"][1, 1] < c["macflow"][1, 1] - 0.05, c


def test_xor_joint_flow_keeps_the_anti_aligned_modes_and_the_factorised_policy_does_not(data_dir):
    algo, _ = train("games/xor")

    def near_modes(actions):  # both agents within 0.5 of +-1 and opposite in sign
        a = actions[..., 0]
        return float(np.mean((np.abs(a) > 0.5).all(-1) & (a[:, 0] * a[:, 1] < 0)))

    flow, factorised = near_modes(policy_samples(algo, "flow")), near_modes(policy_samples(algo, "onestep"))
    assert flow > 0.8, (flow, factorised)
    assert factorised < 0.6 and factorised < flow - 0.25, (flow, factorised)


def test_plot_games_writes_every_figure(tmp_path, capsys, data_dir):
    from marlbench.cli import main

    assert main(["plot", "games", "--out", str(tmp_path), "--steps", "20"]) == 0  # smoke budget: files, not claims
    for name in ("games.json", "fig03_distillation_bounds.png", "fig13_landmark_trajectories.png",
                 "fig14_coordination.png", "fig15_xor.png", "fig16_payoff.png"):
        assert (tmp_path / name).stat().st_size > 1000, name


def test_landmarks_3_value_gap_within_lipschitz_w2_bound(data_dir):
    """Prop. 4.3 at every checkpoint of the 3-agent run `marlbench plot games` makes (same budget and seed)."""
    from marlbench.analysis.games import landmarks

    result = landmarks(3, no_guidance=True)
    for log in (result["checkpoints"], result["checkpoints_no_guidance"]):
        assert len(log) == 8
        assert all(c["bound_holds_everywhere"] and c["value_gap"] <= c["lq_w2_bound"] + 1e-6 for c in log)
    # the one-step policies are independent given o: their MI is the estimator's bias floor, below the flow's
    assert all(c["mi_onestep"] < c["mi_flow"] for c in result["checkpoints"])

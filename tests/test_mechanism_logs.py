"""The mechanism measurements reach the run records, config.json names the algorithm, presets resolve per task."""
import json

import pytest

from marlbench.config import resolve
from marlbench.errors import ConfigError, UnknownNameError
from marlbench.executors import run_local
from marlbench.registry import ALGORITHMS


def test_run_records_carry_the_mechanism(tmp_path, spread_dataset):
    overrides = {"hidden_dims": [32], "log_every": 100, "eval_every": 200, "eval_episodes": 4, "latency_calls": 4,
                 "diagnostic_batch": 256}
    resolved = resolve(ALGORITHMS.get("macflow"), "mpe", "quick", steps=200, overrides=overrides)
    (record,) = run_local("macflow", "mpe/spread-scripted", [0], resolved, tmp_path, show_progress=False)
    (seed_dir,) = tmp_path.rglob("seed_0")
    config = json.loads((seed_dir / "config.json").read_text())
    assert config["algorithm"] == "macflow" and config["config"]["algorithm"]["alpha"] == 3.0
    lines = [json.loads(line) for line in (seed_dir / "metrics.jsonl").read_text().splitlines()]
    training = [line for line in lines if not line.get("curve")]
    assert [line["step"] for line in training] == [100, 200]
    for line in training:
        assert line["grad_ratio_distill_q"] > 0 and "q_pi_minus_q_data" in line and "q_pi" in line
        assert line["q_loss"] != -1.0  # the raw Q term is logged, not a normalised constant
    assert set(record["diagnostics"]) >= {"grad_ratio_distill_q", "q_pi_minus_q_data", "q_flow_minus_q_data"}


def test_diagnostics_do_not_change_training(tmp_path, spread_dataset):
    """The diagnostic batches come from their own stream: switching them off leaves the trained policy's score and
    losses unchanged."""
    records = []
    for batch in (0, 128):
        overrides = {"hidden_dims": [32], "log_every": 50, "eval_every": 100, "eval_episodes": 4,
                     "latency_calls": 4, "diagnostic_batch": batch}
        resolved = resolve(ALGORITHMS.get("macflow"), "mpe", "quick", steps=100, overrides=overrides)
        (record,) = run_local("macflow", "mpe/spread-scripted", [0], resolved, tmp_path / str(batch),
                              show_progress=False)
        records.append(record)
    assert records[0]["returns"] == records[1]["returns"]
    assert records[0]["diagnostics"] == {} and records[1]["diagnostics"]


def test_preset_applies_per_task_values_before_set():
    omar = ALGORITHMS.get("omar")
    cfg = resolve(omar, "mpe", "quick", preset="omar-reference-spread", task="mpe/spread-random").algorithm
    assert (cfg.mix, cfg.grad_clip, cfg.cql_alpha) == (1.0, 0.5, 0.5)
    cfg = resolve(omar, "mpe", "quick", preset="omar-reference-spread", task="omar/spread-expert").algorithm
    assert cfg.cql_alpha == 5.0
    cfg = resolve(omar, "mpe", "quick", overrides={"cql_alpha": 2.0}, preset="omar-reference-spread",
                  task="mpe/spread-random").algorithm
    assert cfg.cql_alpha == 2.0  # --set wins
    resolved = resolve(ALGORITHMS.get("icq"), "mpe", "quick", preset="icq-reference", task="mpe/spread-expert")
    assert resolved.algorithm.weight_scale == "raw" and resolved.to_dict()["preset"] == "icq-reference"
    assert "preset" not in resolve(omar, "mpe", "quick").to_dict()  # no preset, unchanged run ids


def test_preset_errors_name_the_fix():
    with pytest.raises(UnknownNameError, match="omar-reference-spread"):
        resolve(ALGORITHMS.get("omar"), "mpe", "quick", preset="omar-reference-sprad", task="mpe/spread-random")
    with pytest.raises(ConfigError, match="is for algorithm 'omar'"):
        resolve(ALGORITHMS.get("bc"), "mpe", "quick", preset="omar-reference-spread", task="mpe/spread-random")
    with pytest.raises(ConfigError, match="no setting for task 'games/xor'"):
        resolve(ALGORITHMS.get("omar"), "mpe", "quick", preset="omar-reference-spread", task="games/xor")

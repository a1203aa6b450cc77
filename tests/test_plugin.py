"""An algorithm from a separate module, registered by subclassing alone, runs through the normal run path."""
import json

from marlbench.cli import main


def test_plugin_algorithm_runs_through_cli(capsys, tmp_path, spread_dataset):
    import tiny_plugin  # noqa: F401  (tests/plugins/tiny_plugin.py: no edit anywhere in marlbench)

    # two seeds on two worker processes: the spawned workers must import the plugin's module themselves
    code = main(["run", "--algo", "tiny-linear", "--task", "mpe/spread-scripted", "--seeds", "2", "--workers", "2",
                 "--profile", "quick", "--steps", "300", "--set", "eval_episodes=8", "--set", "scale=0.5",
                 "--results", str(tmp_path), "--json", "--no-progress"])
    assert code == 0
    records = json.loads(capsys.readouterr().out)
    assert [r["seed"] for r in records] == [0, 1]
    assert all(r["algorithm"] == "tiny-linear" and r["config"]["algorithm"]["scale"] == 0.5 for r in records)
    assert all(len(r["returns"]) == 8 and r["inference_ms"] > 0 for r in records)
    assert len(list(tmp_path.rglob("final.json"))) == 2

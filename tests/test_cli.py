"""Usage errors: one clear message, exit code 2, no traceback."""
import subprocess
import sys

import pytest

from marlbench.cli import main


def run_cli(capsys, *argv):
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_unknown_algorithm_lists_close_names(capsys, spread_dataset):
    code, _, err = run_cli(capsys, "run", "--algo", "macflw", "--task", "mpe/spread-scripted")
    assert code == 2
    assert "unknown algorithm 'macflw'" in err and "macflow" in err


def test_unknown_task_lists_close_names(capsys):
    code, _, err = run_cli(capsys, "run", "--algo", "macflow", "--task", "spread-scripte")
    assert code == 2
    assert "unknown task" in err and "spread-scripted" in err


def test_unknown_set_key_names_valid_keys(capsys, spread_dataset):
    code, _, err = run_cli(capsys, "run", "--algo", "macflow", "--task", "mpe/spread-scripted",
                           "--profile", "quick", "--set", "alpah=1.0")
    assert code == 2
    assert "alpah" in err and "alpha" in err and "flow_steps" in err  # names the valid keys


def test_bad_set_value_names_the_key(capsys, spread_dataset):
    code, _, err = run_cli(capsys, "run", "--algo", "macflow", "--task", "mpe/spread-scripted",
                           "--set", "flow_steps=ten")
    assert code == 2 and "flow_steps" in err and "int" in err


def test_impossible_pairing(capsys, spread_dataset):
    import tiny_plugin  # noqa: F401  registers a discrete-only algorithm

    code, _, err = run_cli(capsys, "run", "--algo", "tiny-discrete", "--task", "mpe/spread-scripted")
    assert code == 2
    assert "discrete actions only" in err and "continuous" in err


def test_paper_task_not_runnable_yet_says_why(capsys):
    code, _, err = run_cli(capsys, "run", "--algo", "macflow", "--task", "3m-good")
    assert code == 2
    assert "smacv1/3m-good" in err and "StarCraft II" in err


def test_corrupt_dataset_file(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("MARLBENCH_DATA_DIR", str(tmp_path))
    from marlbench.tasks import get_task

    path = get_task("mpe/spread-scripted").dataset_path
    path.parent.mkdir(parents=True)
    path.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\x00garbage" * 100)
    # `run` regenerates a damaged cache file (tests/test_bad_input.py); reading it names the file and the fix
    code, _, err = run_cli(capsys, "data", "info", "mpe/spread-scripted")
    assert code == 2
    assert str(path) in err and "marlbench data generate mpe/spread-scripted" in err


def test_argparse_usage_error_exits_2(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "marlbench.cli", "run", "--task", "x"], capture_output=True,
                          text=True, cwd=tmp_path)  # cwd: test the installed package, not the source folder
    assert proc.returncode == 2 and "--algo" in proc.stderr


def test_list_shows_availability(capsys):
    code, out, _ = run_cli(capsys, "list")
    assert code == 0
    assert "macflow" in out and "bc" in out
    assert "mpe/spread-scripted" in out and "ready" in out
    assert "6halfcheetah-expert" in out and "needs StarCraft II" in out


def test_list_prints_repeated_install_text_once(capsys):
    code, out, _ = run_cli(capsys, "list", "tasks")
    assert code == 0
    line = next(x for x in out.splitlines() if " smacv1/3m-good " in x)
    assert "needs StarCraft II [" in line and "SC2PATH" not in line  # the install commands moved to a note
    notes = out[out.index("\nNotes:"):]
    assert out.count("unzip -P iagreetotheeula") == notes.count("unzip -P iagreetotheeula") == 2  # smac, smacv2


def test_footnoted_replaces_only_repeated_long_parentheses():
    from marlbench.cli import footnoted

    long = "x" * 70
    short, notes = footnoted([f"a ({long}) b (short)", f"c ({long})", f"d ({'y' * 70})"])
    assert short == ["a [1] b (short)", "c [1]", f"d ({'y' * 70})"] and notes == [long]


def test_missing_extra_names_the_pip_install():
    from marlbench.errors import MarlbenchError, require

    with pytest.raises(MarlbenchError, match=r"pip install 'marlbench-suite\[plot\]'"):
        require("surely_not_an_installed_module", "plot")


DATA_ACTIONS = ("generate", "path", "info", "download", "convert", "subsample", "combine")


def test_data_actions_are_subcommands_with_their_own_options(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["data", "--help"])
    out = capsys.readouterr().out
    assert exit_.value.code == 0 and all(f"\n    {action} " in out or f"\n    {action}\n" in out
                                          for action in DATA_ACTIONS)
    code, out, err = run_cli(capsys, "data")  # no action: the same list, as a usage error
    assert code == 2 and not out and all(action in err for action in DATA_ACTIONS)

    with pytest.raises(SystemExit) as exit_:
        main(["data", "convert", "--help"])
    out = capsys.readouterr().out
    assert exit_.value.code == 0 and "--uid" in out and "--episodes" not in out and "--archive" not in out

    for argv, option in ((("data", "generate", "games/xor", "--uid", "Good"), "--uid"),  # an info/convert option
                         (("data", "path", "games/xor", "--force"), "--force"),
                         (("data", "combine", "a.h5", "b.h5", "--out", "c.h5", "--episodes", "3"), "--episodes")):
        with pytest.raises(SystemExit) as exit_:
            main(list(argv))
        err = capsys.readouterr().err
        assert exit_.value.code == 2
        assert f"usage: marlbench data {argv[1]}" in err and f"unrecognized arguments: {option}" in err


def test_data_commands_take_typed_arguments(tmp_path, capsys):
    """The functions behind `marlbench data` are called with typed arguments, without a command line."""
    import inspect
    import json

    from marlbench.cli import data as commands
    from marlbench.errors import MarlbenchError

    for name in ("generate", "show_path", "info", "download", "convert", "subsample", "combine"):
        params = list(inspect.signature(getattr(commands, name)).parameters.values())
        assert params[0].name == "names" and all(p.kind is p.KEYWORD_ONLY for p in params[1:]), name

    out = tmp_path / "xor.h5"
    assert commands.generate(["games/xor"], seed=1, out=out) == 0  # a non-default seed goes to a file of its own
    assert f"wrote {out}" in capsys.readouterr().out
    assert commands.subsample([str(out)], out=tmp_path / "few.h5", episodes=3, seed=2, task="games/xor") == 0
    capsys.readouterr()
    assert commands.info([str(tmp_path / "few.h5")], task="games/xor", as_json=True) == 0
    card = json.loads(capsys.readouterr().out)
    assert card["task"] == "games/xor" and card["size"]["episodes"] == 3
    with pytest.raises(MarlbenchError, match="combine needs two or more sources and --out FILE"):
        commands.combine([str(out)], out=tmp_path / "c.h5")
    with pytest.raises(MarlbenchError, match="a non-default --episodes or --seed needs --out FILE"):
        commands.generate(["games/xor"], seed=3)

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
    assert "6halfcheetah-expert" in out and "not runnable yet" in out


def test_missing_extra_names_the_pip_install():
    from marlbench.errors import MarlbenchError, require

    with pytest.raises(MarlbenchError, match=r"pip install 'marlbench-suite\[plot\]'"):
        require("surely_not_an_installed_module", "plot")

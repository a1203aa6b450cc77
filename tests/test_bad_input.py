"""Bad input a new user meets (found by an outside audit): each case is one error line, exit code 2, and the fix
that fits it; no traceback. Case 8 is a crash that must not happen at all."""
from __future__ import annotations

import collections
import os
from pathlib import Path

import h5py
import numpy as np
import pytest

from marlbench.cli import main
from marlbench.errors import DatasetError

QUICK_RUN = ("--profile", "quick", "--steps", "2", "--set", "eval_episodes=1", "--set", "latency_calls=2",
             "--set", "latency_warmup=0", "--workers", "1", "--no-progress")


@pytest.fixture(autouse=True)
def private_data_dir(tmp_path, monkeypatch, isolated_tasks):
    monkeypatch.setenv("MARLBENCH_DATA_DIR", str(tmp_path / "data"))
    return tmp_path / "data"


def run_cli(capsys, *argv):
    code = main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def one_error(capsys, *argv) -> str:
    """Run the CLI and return its error line, after checking exit code 2, one line on stderr, no traceback."""
    code, out, err = run_cli(capsys, *argv)
    assert code == 2, (out, err)
    assert "Traceback" not in out + err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("marlbench: error: "), err
    return lines[0]


# ------------------------------------------------------------------------------------ 1-2. --set values
def tiny_run(tmp_path, *extra, algo="bc", task="games/xor"):
    """`run` argv that, should a check be missing, fails or finishes in seconds instead of training for hours."""
    return ("run", "--algo", algo, "--task", task, *QUICK_RUN, "--results", tmp_path / "res", *extra)


def test_malformed_list_names_key_and_type(capsys, tmp_path):
    line = one_error(capsys, *tiny_run(tmp_path, "--set", "hidden_dims=[256,"))
    assert "'hidden_dims'" in line and "list of int" in line and "[256," in line


@pytest.mark.parametrize("setting,expected", [
    ("lr=-1", "'lr' must be a finite number > 0"),
    ("adam_eps=0", "'adam_eps' must be a finite number > 0"),
    ("batch_size=0", "'batch_size' must be an int >= 1"),
    ("gamma=1.5", "'gamma' must be in [0, 1]"),
    ("tau=0", "'tau' must be in (0, 1]"),
    ("hidden_dims=[]", "'hidden_dims' must be a non-empty list"),
    ("hidden_dims=[64,0]", "'hidden_dims' must be a non-empty list of positive"),
    ("eval_every=0", "'eval_every' must be an int >= 1"),
    ("eval_episodes=0", "'eval_episodes' must be an int >= 1"),
    ("latency_calls=1", "'latency_calls' must be an int >= 2"),
])
def test_out_of_range_value_is_refused(capsys, tmp_path, setting, expected):
    assert expected in one_error(capsys, *tiny_run(tmp_path, "--set", setting))  # the last --set wins


def test_steps_zero_is_refused(capsys, tmp_path):
    assert "'steps' must be an int >= 1" in one_error(capsys, *tiny_run(tmp_path, "--steps", "0"))


def test_shared_ranges_hold_for_every_algorithm_and_any_validate():
    """Checked in resolve(), so algorithms with their own validate() (macflow, icq, ...) and a subclass that
    overrides validate() without calling super() are covered alike."""
    from dataclasses import dataclass

    from marlbench.config import AlgoConfig, resolve
    from marlbench.errors import ConfigError
    from marlbench.registry import ALGORITHMS

    builtin = [n for n in ALGORITHMS.names() if ALGORITHMS.get(n).__module__.startswith("marlbench.")]
    assert {"macflow", "bc", "icq", "omiga"} <= set(builtin)
    for name in builtin:
        with pytest.raises(ConfigError, match="'lr' must be"):
            resolve(ALGORITHMS.get(name), "games", "quick", overrides={"lr": -1})

    @dataclass
    class LaxConfig(AlgoConfig):
        def validate(self) -> None:  # checks nothing
            pass

    class Lax:
        name, Config = "lax", LaxConfig

    with pytest.raises(ConfigError, match="'tau' must be"):
        resolve(Lax, "games", "quick", overrides={"tau": 2.0})


# ------------------------------------------------------------------------------------ 3. unwritable data dir
def test_data_dir_that_is_a_file(capsys, tmp_path, monkeypatch):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    monkeypatch.setenv("MARLBENCH_DATA_DIR", str(blocker))
    for argv in (("data", "generate", "games/xor"), tiny_run(tmp_path)):
        line = one_error(capsys, *argv)
        assert f"cannot write the dataset cache {blocker}" in line and "is a file" in line
        assert "set MARLBENCH_DATA_DIR to a writable directory" in line
    monkeypatch.setenv("MARLBENCH_DATA_DIR", str(blocker / "below"))  # a path under a file
    assert "set MARLBENCH_DATA_DIR to a writable directory" in one_error(capsys, "data", "generate", "games/xor")


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root writes into read-only directories")
def test_data_dir_under_a_read_only_directory(capsys, tmp_path, monkeypatch):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    monkeypatch.setenv("MARLBENCH_DATA_DIR", str(locked / "data"))
    try:
        line = one_error(capsys, "data", "generate", "games/xor")
    finally:
        locked.chmod(0o755)
    assert str(locked / "data") in line and "set MARLBENCH_DATA_DIR to a writable directory" in line


# ------------------------------------------------------------------------------------ 4. byte-flipped OMIGA file
def write_omiga(path: Path, rng, lengths=(3, 2), n=2, obs=3, state=None) -> Path:
    """OMIGA's layout: each episode's steps (d=0) plus one closing row (d=1); ``s`` per agent."""
    rows = sum(lengths) + len(lengths)
    d = np.concatenate([[0] * length + [1] for length in lengths]).astype(np.float32)[:, None]
    with h5py.File(path, "w") as f:
        f["o"] = rng.normal(size=(rows, n, obs)).astype(np.float32)
        f["s"] = rng.normal(size=(rows, n, state or obs)).astype(np.float32)
        f["a"] = rng.uniform(-1, 1, (rows, n, 1)).astype(np.float32)
        f["r"] = rng.normal(size=(rows, 1)).astype(np.float32)
        f["d"] = d
    return path


def test_flipped_bytes_in_an_omiga_file(tmp_path, capsys):
    """Every byte flip either still loads or is a DatasetError naming the file; h5py's own failures (KeyError,
    RuntimeError, OSError, ... depending on where the flip lands, which differs between HDF5 versions) all say
    "corrupt"/"truncated" with the fix. Flipping every third byte reaches several of those paths anywhere."""
    from marlbench.data.formats.detect import load_any

    path = write_omiga(tmp_path / "HalfCheetah-v2-6x1-expert.hdf5", np.random.default_rng(0))
    good = path.read_bytes()
    causes = collections.Counter()
    with open(path, "r+b") as f:  # flip in place: rewriting the file each time is slow on some filesystems
        for position in range(0, len(good), 3):
            f.seek(position)
            f.write(bytes([good[position] ^ 0xFF]))
            f.flush()
            try:
                load_any(path)
            except DatasetError as e:
                message = str(e)
                assert str(path) in message and "\n" not in message, message
                if isinstance(e.__cause__, DatasetError):  # the content: NaN from a flipped float
                    assert "NaN or inf" in message, message
                    continue
                assert "corrupt" in message or "truncated" in message, message
                assert "download or copy HalfCheetah-v2-6x1-expert.hdf5 again" in message, message
                causes[type(e.__cause__).__name__] += 1
            f.seek(position)
            f.write(good[position:position + 1])
            f.flush()
    assert len(causes) >= 2, causes  # different h5py failure paths were exercised
    assert sum(causes.values()) >= 10, causes


@pytest.mark.parametrize("position", [8, 9])  # the superblock (version bytes) sits at byte 0 of every h5py file
def test_damaged_omiga_file_through_the_cli(tmp_path, capsys, position):
    path = write_omiga(tmp_path / "HalfCheetah-v2-6x1-expert.hdf5", np.random.default_rng(0))
    data = bytearray(path.read_bytes())
    data[position] ^= 0xFF
    path.write_bytes(bytes(data))
    for argv in (("data", "convert", path, "--out", tmp_path / "out.h5"), ("data", "info", path),
                 tiny_run(tmp_path, "--dataset", path, task="mamujoco/6halfcheetah-expert")):
        line = one_error(capsys, *argv)
        assert f"{path} cannot be read as HDF5: it is corrupt" in line
        assert "download or copy HalfCheetah-v2-6x1-expert.hdf5 again" in line
        assert "marlbench data download omiga/6halfcheetah-expert" in line  # the published copy
    assert not (tmp_path / "out.h5").exists()


# ------------------------------------------------------------------------------------ 5. truncated native file
def native_file(path: Path, episodes: int = 300) -> Path:
    from marlbench.data.formats.native import save_native
    from marlbench.tasks import get_task

    return save_native(get_task("games/xor").generate(episodes, 0), path)


def test_truncated_dataset_file_is_called_truncated(tmp_path, capsys):
    path = native_file(tmp_path / "mine.h5")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    for argv in (tiny_run(tmp_path, "--dataset", path), ("data", "info", path)):
        line = one_error(capsys, *argv)
        assert f"{path} cannot be read as HDF5: it is truncated ({len(data) // 2} bytes, its header says " \
               f"{len(data)})" in line
        assert "regenerate or re-export mine.h5" in line and "copy it again" in line
        assert "neither an HDF5 file" not in line


# ------------------------------------------------------------------------------------ 6. NaN in the data
def put_nan(path: Path, name: str, index: tuple) -> None:
    with h5py.File(path, "r+") as f:
        f[name][index] = np.nan


def test_nan_in_a_users_file_names_file_array_index(tmp_path, capsys):
    path = native_file(tmp_path / "mine.h5")
    put_nan(path, "rewards", (7, 1))
    line = one_error(capsys, *tiny_run(tmp_path, "--dataset", path))
    assert str(path) in line and "rewards: 1 of" in line and "the first at rewards[7, 1]" in line
    assert "fix the data, or re-export mine.h5" in line
    assert "data generate" not in line and "delete" not in line  # not advice for a cached dataset

    source = write_omiga(tmp_path / "HalfCheetah-v2-6x1-medium.hdf5", np.random.default_rng(1))
    put_nan(source, "o", (4, 1, 2))  # row 4 starts episode 2: step 3 once the closing d=1 row 3 is dropped
    line = one_error(capsys, "data", "convert", source, "--out", tmp_path / "out.h5")
    assert str(source) in line and "the first at obs[3, 1, 2]" in line and "fix the data" in line
    assert "data generate" not in line


def test_nan_in_a_cached_generated_dataset_suggests_generate_force(capsys):
    from marlbench.tasks import get_task

    assert run_cli(capsys, "data", "generate", "games/xor")[0] == 0
    put_nan(get_task("games/xor").dataset_path, "obs", (5, 0, 0))
    line = one_error(capsys, "data", "info", "games/xor")
    assert "the first at obs[5, 0, 0]" in line and "`marlbench data generate games/xor --force` rebuilds it" in line


# ------------------------------------------------------------------------------------ 7. damaged cached file
def cut(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def task_line(capsys, name: str) -> str:
    code, out, _ = run_cli(capsys, "list", "tasks")
    assert code == 0
    return next(line for line in out.splitlines() if f" {name} " in line)


def test_damaged_cache_is_listed_and_rebuilt(capsys, tmp_path):
    from marlbench.tasks import get_task

    path = get_task("games/xor").dataset_path
    assert run_cli(capsys, "data", "generate", "games/xor")[0] == 0
    cut(path)
    line = task_line(capsys, "games/xor")
    assert "cached file damaged: truncated" in line and "`marlbench data generate games/xor` rebuilds it" in line
    code, out, _ = run_cli(capsys, "data", "generate", "games/xor")  # no --force needed for a damaged file
    assert code == 0 and "is damaged: truncated" in out and "wrote" in out
    assert "ready (dataset cached)" in task_line(capsys, "games/xor")
    code, out, _ = run_cli(capsys, "data", "generate", "games/xor")  # a good one is kept without --force
    assert code == 0 and "already exists (use --force to regenerate)" in out

    cut(path)
    code, out, err = run_cli(capsys, *tiny_run(tmp_path))
    assert code == 0, err
    assert f"cached dataset {path} is damaged: truncated" in out and "regenerating it" in out
    assert "ready (dataset cached)" in task_line(capsys, "games/xor")


def test_damaged_public_cache_cannot_run_and_says_how_to_rebuild(capsys, tmp_path):
    from marlbench.registry import TASKS

    task = TASKS.get("omar/spread-expert")
    native_file(task.dataset_path)  # any native file; only its damage matters here
    cut(task.dataset_path)
    assert "`marlbench data download omar/spread-expert` rebuilds it" in task_line(capsys, "omar/spread-expert")
    line = one_error(capsys, *tiny_run(tmp_path, task="omar/spread-expert"))
    assert "cached file damaged: truncated" in line and "marlbench data download omar/spread-expert" in line


# ------------------------------------------------------------------------------------ 8. state dropped on binding
@pytest.mark.parametrize("algo", ["omiga", "icq"])
def test_state_conditioned_algorithms_run_on_data_whose_state_was_dropped(tmp_path, capsys, one_thread, algo):
    """OMIGA's per-agent s (26 dims here) is not HalfCheetah's 17-d state: dropped on conversion. The bound task
    then has no state_dim, so the mixers take the concatenated observations instead of a 17-d input."""
    from marlbench.tasks import get_task

    base = get_task("mamujoco/6halfcheetah-medium")
    assert base.spec.state_dim == 17
    source = write_omiga(tmp_path / "HalfCheetah-v2-6x1-medium.hdf5", np.random.default_rng(2), lengths=(6, 5),
                         n=6, obs=23, state=26)
    out_file = tmp_path / "cheetah.h5"
    code, out, err = run_cli(capsys, "data", "convert", source, "--out", out_file, "--task", base.name)
    assert code == 0, err
    assert "state dropped" in out and "use the concatenated observations instead" in out
    code, out, err = run_cli(capsys, *tiny_run(tmp_path, "--dataset", out_file, "--set", "hidden_dims=[16]",
                                               algo=algo, task=base.name))
    assert code == 0, err
    assert "the data has no global state" in out and "concatenated observations (6 x 23)" in out
    from marlbench.registry import TASKS

    assert TASKS.get(f"{base.name}@cheetah").spec.state_dim is None

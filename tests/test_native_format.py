"""Native HDF5 format: round trip, atomic writes, and clear errors for damaged or mismatched files."""
from __future__ import annotations

import json
import os

import h5py
import numpy as np
import pytest

from marlbench.data.dataset import Dataset
from marlbench.data.formats import load_native, read_native_metadata, save_native
from marlbench.errors import DatasetError
from marlbench.spec import TaskSpec

METADATA = {"task": "toy", "source": "synthetic", "quality": "medium", "generator_seed": 3}


def make_dataset(discrete: bool = False) -> Dataset:
    """Three episodes (terminal, truncated, terminal) of 2 agents; discrete data carries legals and no state."""
    rng = np.random.default_rng(0)
    T, N = 9, 2
    terminals, truncations = np.zeros(T, bool), np.zeros(T, bool)
    terminals[[2, 8]], truncations[5] = True, True
    if discrete:
        legals = rng.random((T, N, 4)) < 0.7
        legals[..., 0] = True
        extra = dict(actions=np.zeros((T, N), np.int64), legals=legals)
    else:
        extra = dict(actions=rng.uniform(-1, 1, (T, N, 2)), state=rng.normal(size=(T, 5)))
    return Dataset(obs=rng.normal(size=(T, N, 3)), rewards=rng.normal(size=(T, N)), terminals=terminals,
                   truncations=truncations, **extra, metadata=dict(METADATA))


def spec(**changes) -> TaskSpec:
    fields = dict(name="toy", n_agents=2, obs_dim=3, action_kind="continuous", action_dim=2, episode_limit=5,
                  state_dim=5)
    return TaskSpec(**{**fields, **changes})


@pytest.fixture(params=[False, True], ids=["continuous", "discrete"])
def dataset(request):
    return make_dataset(request.param)


def test_round_trip_is_identical(tmp_path, dataset):
    path = save_native(dataset, tmp_path / "nested" / "dir" / "toy.h5")  # parent dirs are created
    loaded = load_native(path)
    for name in ("obs", "actions", "rewards", "terminals", "truncations", "legals", "state"):
        x, y = getattr(dataset, name), getattr(loaded, name)
        assert (x is None) == (y is None)
        if x is not None:
            assert x.dtype == y.dtype
            np.testing.assert_array_equal(x, y)
    assert loaded.metadata == METADATA
    assert loaded.checksum() == dataset.checksum()
    assert os.listdir(path.parent) == ["toy.h5"]  # no temporary file left behind


def test_compressed_round_trip(tmp_path, dataset):
    path = save_native(dataset, tmp_path / "toy.h5", compression="gzip")
    assert load_native(path).checksum() == dataset.checksum()


def test_metadata_reads_attributes_with_statistics(tmp_path, dataset):
    path = save_native(dataset, tmp_path / "toy.h5")
    meta = read_native_metadata(path)
    assert meta["task"] == "toy" and meta["schema_version"] == 1 and meta["format"] == "marlbench-native"
    assert meta["checksum"] == dataset.checksum()
    assert meta["statistics"]["return_mean"] == pytest.approx(dataset.statistics()["return_mean"])
    with h5py.File(path) as f:
        assert json.loads(f.attrs["metadata"])["statistics"]["episodes"] == dataset.n_episodes


def test_failed_write_leaves_previous_file_intact(tmp_path, dataset):
    path = save_native(dataset, tmp_path / "toy.h5")
    before = path.read_bytes()
    dataset.metadata["bad"] = object()  # fails while writing attributes, after the arrays
    with pytest.raises(TypeError):
        save_native(dataset, path)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["toy.h5"]


def test_missing_file(tmp_path):
    with pytest.raises(DatasetError, match=r"does not exist.*marlbench data generate 3m"):
        load_native(tmp_path / "nope.h5", spec(name="3m"))


def test_truncated_file_is_reported(tmp_path, dataset):
    path = save_native(dataset, tmp_path / "toy.h5")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DatasetError, match=r"toy\.h5 is truncated \(\d+ bytes, its header says \d+\).*re-export toy"):
        load_native(path)


def test_random_bytes_are_reported(tmp_path):
    path = tmp_path / "junk.h5"
    path.write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(DatasetError, match=r"junk\.h5 is corrupt"):
        load_native(path)
    with pytest.raises(DatasetError, match=r"junk\.h5 is corrupt"):
        read_native_metadata(path)


def test_altered_array_fails_checksum(tmp_path, dataset):
    path = save_native(dataset, tmp_path / "toy.h5")
    with h5py.File(path, "r+") as f:
        f["rewards"][4, 1] += 1.0
    with pytest.raises(DatasetError, match=r"checksum mismatch.*re-export toy\.h5"):  # a user's file, not a cache
        load_native(path)
    assert load_native(path, verify=False).rewards[4, 1] == dataset.rewards[4, 1] + 1.0


def test_wrong_format_version_and_missing_field(tmp_path, dataset):
    path = save_native(dataset, tmp_path / "toy.h5")
    with h5py.File(path, "r+") as f:
        f.attrs["schema_version"] = 99
    with pytest.raises(DatasetError, match="schema_version 99"):
        load_native(path)

    with h5py.File(path, "r+") as f:
        f.attrs["schema_version"] = 1
        del f["rewards"]
    with pytest.raises(DatasetError, match="lacks required field.*rewards"):
        load_native(path)

    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f["x"] = np.zeros(3)
    with pytest.raises(DatasetError, match="not a marlbench native dataset"):
        load_native(other)


def test_invalid_arrays_in_file_name_path_and_field(tmp_path, dataset):
    path = save_native(dataset, tmp_path / "toy.h5")
    with h5py.File(path, "r+") as f:
        f["obs"][0, 0, 0] = np.nan
    with pytest.raises(DatasetError, match=r"toy\.h5: obs: 1 of .* NaN"):
        load_native(path)


def test_spec_mismatch(tmp_path):
    path = save_native(make_dataset(), tmp_path / "toy.h5")
    load_native(path, spec())
    with pytest.raises(DatasetError, match=r"toy\.h5: .*n_agents expected 5, found 2"):
        load_native(path, spec(n_agents=5))

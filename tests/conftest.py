import os
import sys
from pathlib import Path

import pytest
import torch

from marlbench import catalog

TESTS = Path(__file__).parent

if os.environ.get("PYTEST_XDIST_WORKER"):  # one single-threaded worker per core, never oversubscribed
    torch.set_num_threads(1)
sys.path.insert(0, str(TESTS / "plugins"))  # separate modules that register algorithms by subclassing
catalog.load()  # the built-in families and tasks, as the command line registers them


@pytest.fixture(scope="session", autouse=True)
def data_dir(tmp_path_factory):
    """Every test session generates its datasets into a private cache (never the user's)."""
    path = tmp_path_factory.mktemp("marlbench-data")
    os.environ["MARLBENCH_DATA_DIR"] = str(path)
    yield path


@pytest.fixture(scope="session")
def spread_dataset(data_dir):
    from marlbench.protocol import ensure_dataset
    from marlbench.tasks import get_task

    return ensure_dataset(get_task("mpe/spread-scripted"), log=lambda msg: None)


@pytest.fixture
def one_thread():
    """Tiny networks outside the protocol: one torch thread (two threads on a loaded 2-core machine are many
    times slower). Restores the previous count afterwards."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def isolated_tasks(monkeypatch):
    """Tasks bound by `run --dataset` (and public datasets a test places) must not change the registry or alias
    resolution for the other tests of the worker."""
    from marlbench.registry import TASKS

    monkeypatch.setattr(TASKS, "_items", dict(TASKS._items))
    monkeypatch.setattr(TASKS, "_aliases", dict(TASKS._aliases))

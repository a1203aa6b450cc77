import sys
import textwrap

import pytest

from marlbench.errors import UnknownNameError
from marlbench.registry import ALGORITHMS, TASKS, Registry


def test_paper_aliases_resolve():
    assert TASKS.canonical("3m-good") == "smacv1/3m-good"
    assert TASKS.canonical("6halfcheetah-expert") == "mamujoco/6halfcheetah-expert"
    assert TASKS.canonical("spread-expert") == "mpe/spread-expert"
    assert TASKS.canonical("terran_5_vs_5-replay") == "smacv2/terran_5_vs_5-replay"
    paper = [n for n in TASKS.names() if n.split("/")[0] in ("smacv1", "smacv2", "mamujoco")
             or n.startswith("mpe/spread-") and not n.endswith("scripted")]
    assert len(paper) == 34  # the paper's datasets


def test_lookup_error_lists_closest():
    with pytest.raises(UnknownNameError) as e:
        ALGORITHMS.get("macflo")
    assert e.value.close[0] == "macflow"


def test_subclassing_registers(tmp_path):
    import tiny_plugin

    assert ALGORITHMS.get("tiny-linear") is tiny_plugin.TinyLinear


def test_entry_point_group_registers(tmp_path, monkeypatch):
    """A third-party distribution declaring the entry point group is loaded on first lookup."""
    (tmp_path / "ep_plugin_mod.py").write_text(textwrap.dedent("""
        from marlbench.algorithm import Algorithm
        class EntryPointAlgo(Algorithm, name="ep-algo", continuous=True):
            def update(self, batch): return {}
            def act(self, obs, legals=None): return obs[..., :2] * 0
    """))
    dist = tmp_path / "ep_plugin-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: ep-plugin\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[marlbench.algorithms]\nep-algo = ep_plugin_mod\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    registry = Registry("algorithm", "marlbench.algorithms")
    monkeypatch.setattr("marlbench.algorithm.ALGORITHMS", registry)
    assert "ep-algo" in registry.names()
    sys.modules.pop("ep_plugin_mod", None)


def test_errors_survive_the_trip_from_a_seed_worker():
    """Seed workers send exceptions back pickled; one that cannot be rebuilt breaks the whole process pool."""
    import pickle

    from marlbench import errors

    for err in (errors.UnknownNameError("task", "sprd", ["spread", "xor"], hint="See `marlbench list`."),
                errors.ConfigError("bad"), errors.DatasetError("worse"), errors.UnavailableError("no SC2")):
        back = pickle.loads(pickle.dumps(err))
        assert type(back) is type(err) and str(back) == str(err)
    assert pickle.loads(pickle.dumps(errors.UnknownNameError("task", "sprd", ["spread"]))).close == ["spread"]

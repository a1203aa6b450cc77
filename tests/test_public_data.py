"""Public dataset layouts (OG-MARL vault, OMIGA HDF5, OMAR npy), the manifest, tasks and aliases, dataset tools and
`run --dataset`. Fixtures are written with the libraries the public layouts come from (tensorstore, h5py, numpy)."""
from __future__ import annotations

import io
import json
import struct

import h5py
import numpy as np
import pytest

from marlbench.cli import main
from marlbench.data.dataset import Dataset
from marlbench.errors import DatasetError

ts = pytest.importorskip("tensorstore")


@pytest.fixture(autouse=True)
def private_data_dir(tmp_path, monkeypatch, isolated_tasks):
    """Public datasets placed by a test go to a private data directory (and the registry is restored afterwards)."""
    monkeypatch.setenv("MARLBENCH_DATA_DIR", str(tmp_path / "data"))
    return tmp_path / "data"


def run_cli(capsys, *argv):
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def episodes_flags(lengths, terminal_last=True):
    T = sum(lengths)
    ends = np.cumsum(lengths) - 1
    term, trunc = np.zeros(T, bool), np.zeros(T, bool)
    (term if terminal_last else trunc)[ends] = True
    return term, trunc


def smac_like(rng, lengths=(5, 7, 4), n=3, n_actions=9, obs=30, state=48) -> Dataset:
    T = sum(lengths)
    legals = rng.random((T, n, n_actions)) < 0.6
    legals[..., 1] = True
    actions = np.where(legals[..., 2], 2, 1).astype(np.int64)
    term, trunc = episodes_flags(lengths)
    trunc[np.cumsum(lengths)[0] - 1], term[np.cumsum(lengths)[0] - 1] = True, False  # one time-limit end
    team = rng.normal(size=(T, 1)).astype(np.float32)
    return Dataset(obs=rng.normal(size=(T, n, obs)), actions=actions, rewards=np.repeat(team, n, 1),
                   terminals=term, truncations=trunc, legals=legals, state=rng.normal(size=(T, state)))


def mujoco_like(rng, lengths=(6, 6), n=6, obs=23) -> Dataset:
    T = sum(lengths)
    term, trunc = episodes_flags(lengths, terminal_last=False)
    return Dataset(obs=rng.normal(size=(T, n, obs)), actions=rng.uniform(-1, 1, (T, n, 1)),
                   rewards=np.repeat(rng.normal(size=(T, 1)), n, 1), terminals=term, truncations=trunc,
                   state=rng.normal(size=(T, 17)))


def assert_same(a: Dataset, b: Dataset) -> None:
    for name in ("obs", "actions", "rewards", "terminals", "truncations", "legals", "state"):
        x, y = getattr(a, name), getattr(b, name)
        assert (x is None) == (y is None), name
        if x is not None:
            np.testing.assert_array_equal(x, y, err_msg=name)


# ---------------------------------------------------------------------------------------------- OG-MARL vaults
@pytest.mark.parametrize("kind", ["discrete", "continuous"])
def test_vault_layout_and_round_trip(tmp_path, kind):
    from marlbench.data.formats.vault import read_vault, write_vault

    rng = np.random.default_rng(0)
    data = smac_like(rng) if kind == "discrete" else mujoco_like(rng)
    uid_dir = write_vault(data, tmp_path / "og_marl" / "smac_v1" / "3m.vlt", "Good")
    # the layout OG-MARL publishes, read with tensorstore alone as docs/DATASETS.md describes it
    assert sorted(p.name for p in uid_dir.iterdir()) == ["d", "manifest.ocdbt", "metadata.json"]
    meta = json.loads((uid_dir / "metadata.json").read_text())
    assert {"version", "structure_shape", "structure_dtype"} <= set(meta)
    spec = {"driver": "zarr", "kvstore": {"driver": "ocdbt", "base": f"file://{uid_dir}", "path": "observations."}}
    obs = ts.open(spec).result()
    assert obs.shape[0] == 1 and obs.shape[1] > data.n_transitions  # the time axis is allocated long
    T = int(ts.open({**spec, "kvstore": {**spec["kvstore"], "path": "vault_index"}}).result().read().result()[0])
    np.testing.assert_array_equal(obs[:, :T].read().result()[0], data.obs)
    leaf = "infos.legals." if kind == "discrete" else "actions."
    ts.open({**spec, "kvstore": {**spec["kvstore"], "path": leaf}}).result()
    assert_same(read_vault(uid_dir.parent, "good"), data)  # uid matched case-insensitively from the .vlt dir


def test_vault_honours_vault_index_and_drops_unfinished_tail(tmp_path):
    from marlbench.data.formats.vault import read_vault, write_vault

    rng = np.random.default_rng(1)
    data = smac_like(rng, lengths=(4, 6, 5))
    uid_dir = write_vault(data, tmp_path / "x.vlt", "Poor")
    index = {"driver": "zarr", "kvstore": {"driver": "ocdbt", "base": f"file://{uid_dir}", "path": "vault_index"}}
    ts.open(index).result().write(np.array([12], np.int32)).result()  # steps 10, 11 start an unfinished episode
    loaded = read_vault(uid_dir)
    assert loaded.n_transitions == 10 and loaded.metadata["dropped_tail_steps"] == 2
    np.testing.assert_array_equal(loaded.obs, data.obs[:10])


def test_vault_episode_ends_need_all_agents(tmp_path):
    """A terminal set for one agent only (it died) does not end the episode."""
    from marlbench.data.formats.vault import read_vault

    rng = np.random.default_rng(2)
    T, n = 6, 2
    uid = tmp_path / "v.vlt" / "Good"
    uid.mkdir(parents=True)
    terminals = np.zeros((1, T, n), np.float32)
    terminals[0, 2, 0] = 1  # agent 0 dies at t=2
    terminals[0, 5] = 1  # the episode ends at t=5
    leaves = {"observations.": rng.normal(size=(1, T, n, 4)).astype(np.float32),
              "actions.": rng.integers(0, 3, (1, T, n)).astype(np.int32),
              "rewards.": np.ones((1, T, n), np.float32), "terminals.": terminals,
              "truncations.": np.zeros((1, T, n), np.float32),
              "infos.legals.": np.ones((1, T, n, 3), np.float32)}
    shapes = {"observations": str((1, T, n, 4)), "actions": str((1, T, n)), "rewards": str((1, T, n)),
              "terminals": str((1, T, n)), "truncations": str((1, T, n)), "infos": {"legals": str((1, T, n, 3))}}
    (uid / "metadata.json").write_text(json.dumps({"version": 1.1, "structure_shape": shapes,
                                                   "structure_dtype": {}}))
    for path, x in {**leaves, "vault_index": np.array([T], np.int32)}.items():
        spec = {"driver": "zarr", "kvstore": {"driver": "ocdbt", "base": f"file://{uid}", "path": path},
                "metadata": {"compressor": {"id": "gzip", "level": 5}}}
        shape = x.shape if path == "vault_index" else (1, 10**13, *x.shape[2:])
        store = ts.open(spec, shape=shape, dtype=x.dtype.name, create=True).result()
        (store if path == "vault_index" else store[:, :T]).write(x).result()
    loaded = read_vault(uid)
    assert loaded.n_episodes == 1 and loaded.terminals.tolist() == [False] * 5 + [True]
    assert loaded.actions.dtype == np.int64 and loaded.legals.all()


# ---------------------------------------------------------------------------------------------- OMIGA HDF5
def write_omiga(path, rng, lengths=(5, 3), n=3, obs=14, act=1, tail=0):
    """OMIGA's layout: each episode's steps (d=0) plus one extra row (d=1) carrying the final observation."""
    rows = [(rng.normal(size=(n, obs)), rng.uniform(-1, 1, (n, act)), rng.normal(), d)
            for length in lengths for d in [0] * length + [1]]
    rows += [(rng.normal(size=(n, obs)), rng.uniform(-1, 1, (n, act)), rng.normal(), 0) for _ in range(tail)]
    o = np.stack([r[0] for r in rows]).astype(np.float32)
    with h5py.File(path, "w") as f:
        f["o"], f["s"] = o, o + 1.0  # OMIGA's s is per agent: [R, n_agents, dim]
        f["a"] = np.stack([r[1] for r in rows]).astype(np.float32)
        f["r"] = np.array([[r[2]] for r in rows], np.float32)
        f["d"] = np.array([[r[3]] for r in rows], np.float32)
    return o, np.array([r[3] for r in rows]), np.array([r[2] for r in rows], np.float32)


def test_omiga_keeps_d0_rows_and_masks_with_next_d(tmp_path):
    from marlbench.data.formats.omiga import parse_name, read_omiga

    path = tmp_path / "Hopper-v2-3x1-medium-replay.hdf5"
    o, d, r = write_omiga(path, np.random.default_rng(3), tail=2)
    data = read_omiga(path)
    keep = np.flatnonzero(d == 0)[:-2]  # the 2 unfinished tail rows are dropped
    np.testing.assert_array_equal(data.obs, o[keep])
    np.testing.assert_array_equal(data.state, o[keep, 0] + 1.0)
    np.testing.assert_array_equal(data.rewards, np.repeat(r[keep, None], 3, 1))
    assert data.terminals.tolist() == (d[keep + 1] == 1).tolist()  # mask = 1 - d[t+1]
    assert data.episode_lengths.tolist() == [5, 3] and data.metadata["dropped_tail_steps"] == 2
    assert parse_name(path) == {"scenario": "Hopper", "conf": "3x1", "quality": "medium-replay"}


def test_omiga_wrong_layout_names_the_field(tmp_path):
    from marlbench.data.formats.omiga import read_omiga

    path = tmp_path / "bad.hdf5"
    with h5py.File(path, "w") as f:
        f["o"], f["a"], f["r"], f["d"] = np.zeros((4, 2, 3)), np.zeros((4, 2)), np.zeros((4, 1)), np.ones((4, 1))
    with pytest.raises(DatasetError, match=r"a expected shape \[4, n_agents, dim\], found \(4, 2\)"):
        read_omiga(path)


# ---------------------------------------------------------------------------------------------- OMAR npy + Spread
def omar_observation(env, i):
    """OMAR's simple_spread observation of agent i, built from the environment's state as OMAR's scenario does:
    own velocity, own position, landmark positions relative to the agent, other agents relative to it, their
    (silent, zero) communication."""
    pos, vel, land = env.pos[0], env.vel[0], env.landmarks[0]
    others = [j for j in range(env.n_agents) if j != i]
    parts = [vel[i], pos[i]] + [land[k] - pos[i] for k in range(len(land))] + [pos[j] - pos[i] for j in others]
    return np.concatenate(parts + [np.zeros(2) for _ in others])


def test_omar_layout_matches_the_spread_environment():
    """Evaluation compatibility: OMAR-layout observations built from the env's states are the env's observations,
    and an OMAR action a in [-1, 1] moves an agent as force 5a (sensitivity 5, mass 1, damping 0.25, dt 0.1)."""
    from marlbench.envs.mpe import SpreadEnv

    env = SpreadEnv(1)
    step = env.reset(7)
    rng = np.random.default_rng(0)
    for _ in range(5):
        for i in range(3):
            np.testing.assert_allclose(step.obs[0, i], omar_observation(env, i), atol=1e-6)
        assert step.obs.shape == (1, 3, 18)
        step = env.step(rng.uniform(-1, 1, (1, 3, 2)))
    env = SpreadEnv(1)
    env.reset(0)
    env.pos = np.array([[[-0.9, -0.9], [0.0, 0.0], [0.9, 0.9]]])  # far apart: no contact force
    a = np.array([[[1.0, -0.5], [0.2, 0.0], [-1.0, 1.0]]])
    before = env.pos.copy()
    env.step(a)
    np.testing.assert_allclose(env.vel, 5.0 * a * 0.1, atol=1e-12)
    np.testing.assert_allclose(env.pos, before + 5.0 * a * 0.1 * 0.1, atol=1e-12)


def write_omar_from_env(directory, episodes=6, seed=0, obs_noise=0.0):
    """OMAR's per-agent files from random-policy Spread episodes (25 steps, dones always 0 as in MPE)."""
    from marlbench.envs.mpe import SpreadEnv

    env, rng = SpreadEnv(episodes), np.random.default_rng(seed)
    step = env.reset(seed)
    obs, acs, rews, nxt = [], [], [], []
    for _ in range(25):
        a = rng.uniform(-1, 1, (episodes, 3, 2))
        new = env.step(a)
        obs.append(step.obs), acs.append(a), rews.append(new.rewards), nxt.append(new.obs)
        step = new
    # time-major per episode: [episodes, 25, N, ...] -> rows
    rows = {k: np.swapaxes(np.stack(v), 0, 1).reshape(episodes * 25, 3, -1) for k, v in
            (("obs", obs), ("acs", acs), ("rews", rews), ("next_obs", nxt))}
    directory.mkdir(parents=True)
    for i in range(3):
        np.save(directory / f"obs_{i}.npy", rows["obs"][:, i] + obs_noise)
        np.save(directory / f"acs_{i}.npy", rows["acs"][:, i])
        np.save(directory / f"rews_{i}.npy", rows["rews"][:, i, 0])
        np.save(directory / f"next_obs_{i}.npy", rows["next_obs"][:, i] + obs_noise)
        np.save(directory / f"dones_{i}.npy", np.zeros(episodes * 25))
    return rows


def test_omar_npy_loads_with_episode_boundaries(tmp_path):
    from marlbench.data.formats.omar import read_omar
    from marlbench.families.public import task_for_source

    rows = write_omar_from_env(tmp_path / "simple_spread" / "expert" / "seed_0_data")
    data = read_omar(tmp_path / "simple_spread" / "expert")  # the quality dir: lowest seed
    assert task_for_source(tmp_path / "simple_spread" / "expert" / "seed_0_data").name == "omar/spread-expert"
    assert task_for_source(tmp_path / "simple_spread" / "expert").name == "omar/spread-expert"
    assert task_for_source(tmp_path / "x" / "HalfCheetah-v2-6x1-medium-expert.hdf5").name == \
        "omiga/6halfcheetah-medium-expert"
    assert task_for_source(tmp_path / "og_marl" / "smac_v1" / "3m.vlt" / "Good").name == "og_marl/3m-good"
    assert task_for_source(tmp_path / "elsewhere.hdf5") is None
    np.testing.assert_allclose(data.obs, rows["obs"], rtol=0, atol=1e-6)
    np.testing.assert_allclose(data.actions, rows["acs"], rtol=0, atol=1e-6)
    assert data.n_episodes == 6 and set(data.episode_lengths) == {25}
    assert data.truncations.sum() == 6 and not data.terminals.any()
    np.testing.assert_allclose(data.episode_returns(), rows["rews"][..., 0].mean(1).reshape(6, 25).sum(1),
                               rtol=1e-5)


def test_dataset_not_fitting_the_task_is_refused_with_shapes(tmp_path, capsys):
    """An OMAR file converted for a task of another shape is refused, naming field, expected and found."""
    write_omar_from_env(tmp_path / "omar" / "seed_0_data", episodes=2)
    code, _, err = run_cli(capsys, "data", "convert", str(tmp_path / "omar"), "--task", "games/landmarks-10",
                           "--out", str(tmp_path / "x.h5"))
    assert code == 2 and "n_agents expected 10, found 3" in err
    assert not (tmp_path / "x.h5").exists()


def test_convert_omar_then_run_bc_in_spread(tmp_path, capsys, one_thread):
    """The OMAR fixture, converted, trains BC through `run --dataset` and evaluates in the Spread environment; a
    file whose shapes do not fit the task is refused."""
    write_omar_from_env(tmp_path / "omar" / "seed_0_data", episodes=8)
    out = tmp_path / "omar-expert.h5"
    code, _, err = run_cli(capsys, "data", "convert", str(tmp_path / "omar"), "--out", str(out))
    assert code == 0, err
    code, stdout, err = run_cli(capsys, "run", "--algo", "bc", "--task", "mpe/spread-expert", "--dataset", str(out),
                                "--profile", "quick", "--steps", "50", "--set", "eval_episodes=4",
                                "--set", "latency_calls=5", "--results", str(tmp_path / "res"), "--workers", "1",
                                "--no-progress", "--json")
    assert code == 0, err
    record = json.loads(stdout)[0]
    assert record["task"] == "mpe/spread-expert@omar-expert" and record["dataset"]["path"] == str(out)
    assert len(record["returns"]) == 4 and record["normalised_score"] is not None
    bad = tmp_path / "bad.h5"
    code, _, err = run_cli(capsys, "data", "convert", str(tmp_path / "omar"), "--out", str(bad))
    from marlbench.data.formats.native import load_native, save_native

    d = load_native(bad)
    save_native(Dataset(obs=d.obs[..., :16], actions=d.actions, rewards=d.rewards, terminals=d.terminals,
                        truncations=d.truncations), bad)
    code, _, err = run_cli(capsys, "run", "--algo", "bc", "--task", "mpe/spread-expert", "--dataset", str(bad),
                           "--profile", "quick", "--results", str(tmp_path / "res"), "--workers", "1")
    assert code == 2 and "obs_dim expected 18, found 16" in err


# ---------------------------------------------------------------------------------------------- manifest, tasks
def test_manifest_lists_the_papers_34_datasets():
    from marlbench.families.public import manifest, public_tasks

    paper = [t for t in public_tasks() if t.paper]
    assert len(paper) == 34
    by_source = {}
    for t in paper:
        by_source.setdefault(t.vault_id.rsplit("/", 1)[0], []).append(t)
        assert t.url.startswith("https://huggingface.co/datasets/InstaDeepAI/og-marl/resolve/main/")
        assert t.card and t.card["transitions"] > 0
    assert {k: len(v) for k, v in by_source.items()} == {"og_marl/smac_v1": 12, "omiga/smac_v1": 3,
                                                         "og_marl/smac_v2": 3, "omiga/mamujoco": 12,
                                                         "omar/mpe": 4}
    assert all(set(v) >= {"id", "url", "size", "sha256"} for v in manifest()["vaults"])


def test_status_and_alias_follow_the_downloaded_data(private_data_dir, capsys):
    from marlbench.registry import TASKS

    assert TASKS.canonical("spread-expert") == "mpe/spread-expert"
    assert TASKS.canonical("3m-good") == "smacv1/3m-good"
    code, out, _ = run_cli(capsys, "list", "tasks")
    line = next(x for x in out.splitlines() if " og_marl/3m-good " in x)
    assert "needs download" in line and "StarCraft II" in line
    public = TASKS.get("omar/spread-expert")
    data = read_fixture_spread(private_data_dir)
    from marlbench.data.formats.native import save_native

    save_native(data, public.dataset_path)
    assert TASKS.canonical("spread-expert") == "omar/spread-expert"
    assert public.status() == (True, "ready (public dataset downloaded)")
    assert TASKS.aliases_of("omar/spread-expert") == ["spread-expert"]


def read_fixture_spread(tmp):
    from marlbench.data.formats.omar import read_omar

    write_omar_from_env(tmp / "fixture" / "seed_0_data", episodes=2)
    return read_omar(tmp / "fixture")


def test_info_compares_with_the_published_card(tmp_path, capsys):
    from marlbench.data.formats.native import save_native

    data = read_fixture_spread(tmp_path)
    save_native(data, tmp_path / "s.h5")
    code, out, err = run_cli(capsys, "data", "info", str(tmp_path / "s.h5"), "--task", "omar/spread-medium",
                             "--json")
    assert code == 0, err
    card = json.loads(out)
    assert card["published"]["published"]["return_mean"] == 273.39
    assert card["published"]["this"]["episodes"] == 2
    code, out, _ = run_cli(capsys, "data", "info", str(tmp_path / "fixture"))  # an OMAR directory, no task
    assert code == 0 and "2 episodes, 50 transitions" in out


# ---------------------------------------------------------------------------------------------- tools
def test_subsample_and_combine(tmp_path, capsys):
    from marlbench.data.tools import combine, subsample

    rng = np.random.default_rng(4)
    data = smac_like(rng, lengths=tuple(rng.integers(2, 6, 40)))
    sub = subsample(data, episodes=10, seed=1)
    assert sub.n_episodes == 10 and sub.metadata["subsampled"]["episodes"] == 10
    sub = subsample(data, transitions=30, seed=1)
    assert 25 <= sub.n_transitions <= 30
    both = combine([data, sub])
    assert both.n_episodes == data.n_episodes + sub.n_episodes
    np.testing.assert_array_equal(both.episode_returns()[:40], data.episode_returns())
    # matching a return distribution: target = the top half of the returns
    returns = data.episode_returns()
    target = np.sort(returns)[20:]
    matched = subsample(data, episodes=10, match_returns=target, bins=4)
    assert matched.episode_returns().min() >= np.quantile(returns, 0.25) - 1e-9
    with pytest.raises(DatasetError, match="state_dim"):
        combine([data, smac_like(rng, state=50)])


# ---------------------------------------------------------------------------------------------- download
class VaultServer:
    """A loopback HTTP server for one archive, honouring Range; ``cut_after`` bytes ends the first transfer early."""

    def __init__(self, payload: bytes, cut_after: int | None = None):
        import http.server
        import threading

        self.payload, self.cut_after, self.requests = payload, cut_after, []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                rng = self.headers.get("Range")
                server.requests.append(rng)
                start = int(rng.split("=")[1].split("-")[0]) if rng else 0
                body = server.payload[start:]
                self.send_response(206 if rng else 200)
                if rng:
                    self.send_header("Content-Range", f"bytes {start}-{len(server.payload) - 1}/{len(server.payload)}")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if server.cut_after is not None and len(server.requests) == 1:
                    self.wfile.write(body[:server.cut_after])  # then the connection drops
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/simple_spread.zip"

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def zipped_vault(tmp_path) -> tuple[bytes, Dataset]:
    """A zip laid out as OG-MARL publishes it: simple_spread.vlt/<uid>/... for the Expert dataset."""
    import shutil

    from marlbench.data.formats.vault import write_vault

    data = read_fixture_spread(tmp_path)
    write_vault(data, tmp_path / "zip_root" / "simple_spread.vlt", "Expert")
    archive = shutil.make_archive(str(tmp_path / "simple_spread"), "zip", tmp_path / "zip_root")
    return open(archive, "rb").read(), data


def inside_largest_member(payload: bytes) -> int:
    """The offset of a byte in the middle of the archive's largest member's data. A fixed fraction of the archive
    may land in a local header field that nothing checks (a modification time), which made the test flaky."""
    import zipfile

    with zipfile.ZipFile(io.BytesIO(payload)) as zf:
        info = max(zf.infolist(), key=lambda i: i.compress_size)
    name_len, extra_len = struct.unpack("<HH", payload[info.header_offset + 26:info.header_offset + 30])
    return info.header_offset + 30 + name_len + extra_len + info.compress_size // 2


def leftovers(root):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if ".part" in p.name or ".unpack" in p.name
                  or ".tmp" in p.name)


def download(capsys, url, *extra):
    return run_cli(capsys, "data", "download", "omar/spread-expert", "--url", url, "--retries", "2",
                   "--timeout", "5", "--no-progress", *extra)


def test_download_fetches_verifies_unpacks_and_converts(tmp_path, capsys, private_data_dir, monkeypatch):
    monkeypatch.setattr("marlbench.data.download.time.sleep", lambda s: None)
    payload, data = zipped_vault(tmp_path)
    server = VaultServer(payload, cut_after=len(payload) // 2)
    try:
        code, out, err = download(capsys, server.url)
    finally:
        server.close()
    assert code == 0, err
    # the cut transfer resumed: the second request asked only for the missing half
    assert server.requests == [None, f"bytes={len(payload) // 2}-"]
    from marlbench.data.formats.native import load_native
    from marlbench.registry import TASKS

    task = TASKS.get("omar/spread-expert")
    assert_same(load_native(task.dataset_path), data)
    assert (private_data_dir / "vaults" / "omar" / "mpe" / "simple_spread.vlt" / "Expert" / "metadata.json").exists()
    recorded = json.loads((private_data_dir / "checksums.json").read_text())[server.url]
    import hashlib

    assert recorded == {**recorded, "sha256": hashlib.sha256(payload).hexdigest(), "size": len(payload)}
    assert TASKS.canonical("spread-expert") == "omar/spread-expert" and leftovers(private_data_dir) == []


def test_corrupt_archive_leaves_nothing(tmp_path, capsys, private_data_dir, monkeypatch):
    monkeypatch.setattr("marlbench.data.download.time.sleep", lambda s: None)
    payload, _ = zipped_vault(tmp_path)
    bad = bytearray(payload)
    bad[inside_largest_member(payload)] ^= 0xFF  # one flipped byte inside the compressed data
    server = VaultServer(bytes(bad))
    try:
        code, _, err = download(capsys, server.url)
        assert code == 2 and "corrupt" in err
        assert not (private_data_dir / "vaults" / "omar" / "mpe" / "simple_spread.vlt").exists()
        assert not (private_data_dir / "datasets").exists() and leftovers(private_data_dir) == []
        # trust on first use: a good first download records the checksum; a changed file later is refused
        server.payload = payload
        assert download(capsys, server.url)[0] == 0
        server.payload = bytes(bad[:-10]) + payload[-10:]
        code, _, err = download(capsys, server.url, "--force")
        assert code == 2 and "expected" in err and "first download" in err
        assert leftovers(private_data_dir) == []
        assert not (private_data_dir / "downloads" / "omar__mpe__simple_spread.zip").exists()
    finally:
        server.close()


def test_unpack_names_every_kind_of_damage(tmp_path):
    """A flipped byte may break the deflate stream (zlib.error) or only the CRC; either is a DatasetError."""
    import zipfile

    from marlbench.data.download import unpack

    payload, _ = zipped_vault(tmp_path)
    with zipfile.ZipFile(io.BytesIO(payload)) as zf:
        info = max(zf.infolist(), key=lambda i: i.compress_size)
    name_len, extra_len = struct.unpack_from("<HH", payload, info.header_offset + 26)  # local file header
    start = info.header_offset + 30 + name_len + extra_len
    for position in range(start, start + info.compress_size, max(1, info.compress_size // 16)):
        bad = bytearray(payload)
        bad[position] ^= 0xFF
        archive = tmp_path / f"bad_{position}.zip"
        archive.write_bytes(bytes(bad))
        target = tmp_path / "out" / "simple_spread.vlt"
        with pytest.raises(DatasetError, match="corrupt"):
            unpack(archive, "omar/mpe/simple_spread", target)
        assert not target.exists()
        assert not (tmp_path / "out").exists() or leftovers(tmp_path / "out") == []


def test_unreachable_host_one_line_error(capsys, monkeypatch):
    import socket

    monkeypatch.setattr("marlbench.data.download.time.sleep", lambda s: None)
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    code, _, err = download(capsys, f"http://127.0.0.1:{port}/simple_spread.zip")
    assert code == 2
    line = err.strip()
    assert "\n" not in line and "cannot download from 127.0.0.1" in line
    assert "download it manually" in line and "--archive FILE" in line


def test_download_from_a_manual_archive(tmp_path, capsys, private_data_dir):
    payload, data = zipped_vault(tmp_path)
    (tmp_path / "manual.zip").write_bytes(payload)
    code, _, err = run_cli(capsys, "data", "download", "spread-expert", "--archive", str(tmp_path / "manual.zip"))
    assert code == 0, err
    from marlbench.registry import TASKS

    assert TASKS.get("omar/spread-expert").dataset_path.exists()


def test_convert_omiga_file_into_its_public_task(tmp_path, capsys):
    """An OMIGA file converted with --task lands in the task's cache, so the paper alias resolves to it; a state
    whose size is not the task's is dropped with a note (OMIGA's s is per-agent and observation-like)."""
    from marlbench.data.formats.native import load_native
    from marlbench.registry import TASKS

    path = tmp_path / "Hopper-v2-3x1-medium-replay.hdf5"
    o, d, _ = write_omiga(path, np.random.default_rng(5), lengths=(4, 6))
    assert TASKS.canonical("3hopper-medium-replay") != "omiga/3hopper-medium-replay"
    code, out, err = run_cli(capsys, "data", "convert", str(path), "--task", "3hopper-medium-replay")
    assert code == 0, err  # for convert (and download) the paper alias names the public dataset
    code, _, err = run_cli(capsys, "data", "convert", str(path), "--task", "mpe/spread-expert")
    assert code == 2 and "--out FILE is required" in err  # a generated task's cache is never overwritten
    task = TASKS.get("omiga/3hopper-medium-replay")
    data = load_native(task.dataset_path)
    np.testing.assert_array_equal(data.obs, o[d == 0])
    spec_state = task.spec.state_dim
    if spec_state not in (None, 14):
        assert data.state is None and "state dropped" in out and "state_dropped" in data.metadata
    assert TASKS.canonical("3hopper-medium-replay") == "omiga/3hopper-medium-replay"  # now that the data is there
    task.dataset_path.unlink()
    code, out, err = run_cli(capsys, "data", "convert", str(path))  # the task from OMIGA's published file name
    assert code == 0 and "is omiga/3hopper-medium-replay" in out and task.dataset_path.exists(), err


def test_info_reads_a_vault_directory(tmp_path, capsys):
    from marlbench.data.formats.vault import write_vault

    data = smac_like(np.random.default_rng(6))
    write_vault(data, tmp_path / "3m.vlt", "Good")
    write_vault(data, tmp_path / "3m.vlt", "Poor")
    code, _, err = run_cli(capsys, "data", "info", str(tmp_path / "3m.vlt"))
    assert code == 2 and "several datasets (Good, Poor); choose one with --uid" in err
    code, out, err = run_cli(capsys, "data", "info", str(tmp_path / "3m.vlt"), "--uid", "Good", "--task",
                             "og_marl/3m-good", "--json")
    assert code == 0, err
    card = json.loads(out)
    assert card["size"]["episodes"] == 3 and card["dimensions"]["action_kind"] == "discrete"
    assert card["published"]["published"]["return_mean"] == 16.49


def test_subsample_and_combine_commands(tmp_path, capsys):
    from marlbench.data.formats.native import load_native, save_native

    rng = np.random.default_rng(7)
    save_native(smac_like(rng, lengths=tuple(rng.integers(2, 6, 30))), tmp_path / "a.h5")
    code, _, err = run_cli(capsys, "data", "subsample", str(tmp_path / "a.h5"), "--episodes", "12", "--seed", "2",
                           "--out", str(tmp_path / "b.h5"))
    assert code == 0, err
    code, _, err = run_cli(capsys, "data", "subsample", str(tmp_path / "a.h5"), "--episodes", "5", "--match",
                           str(tmp_path / "b.h5"), "--out", str(tmp_path / "m.h5"))
    assert code == 0, err
    code, _, err = run_cli(capsys, "data", "combine", str(tmp_path / "a.h5"), str(tmp_path / "b.h5"), "--out",
                           str(tmp_path / "c.h5"))
    assert code == 0, err
    a, b, c, m = (load_native(tmp_path / f"{x}.h5") for x in "abcm")
    assert b.n_episodes == 12 and m.n_episodes == 5 and c.n_episodes == 42
    assert [x["transitions"] for x in c.metadata["combined_from"]] == [a.n_transitions, b.n_transitions]
    code, _, err = run_cli(capsys, "data", "subsample", str(tmp_path / "a.h5"), "--episodes", "3")
    assert code == 2 and "--out" in err


def test_corrupt_vault_names_the_vault_and_the_fix(tmp_path):
    from marlbench.data.formats.vault import read_vault, write_vault

    uid = write_vault(smac_like(np.random.default_rng(8)), tmp_path / "3m.vlt", "Good")
    for f in (uid / "d").iterdir():
        raw = bytearray(f.read_bytes())
        raw[len(raw) // 2] ^= 0xFF
        f.write_bytes(bytes(raw))
    with pytest.raises(DatasetError, match=r"vault .*Good is corrupt or incomplete .*re-download it"):
        read_vault(uid)

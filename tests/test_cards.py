"""Dataset cards: numbers, Markdown and PNG, and the `marlbench data info` options."""
import json
import subprocess
import sys

import numpy as np
import pytest

from marlbench.data.cards import card_markdown, card_text, make_card
from marlbench.envs.mpe import generate_spread_scripted, spread_spec


@pytest.fixture(scope="module")
def small():
    return generate_spread_scripted(episodes=120, seed=0)


def test_card_numbers(small):
    spec = spread_spec("mpe/spread-scripted")
    card = make_card(small, spec, "mpe/spread-scripted")
    returns = small.episode_returns()
    assert card["size"]["episodes"] == 120 and card["size"]["transitions"] == 3000
    assert card["dimensions"] == {"n_agents": 3, "obs_dim": 18, "action_kind": "continuous", "action_dim": 2,
                                  "state_dim": None}
    r, rn = card["returns"], card["returns_normalised"]
    assert r["mean"] == pytest.approx(returns.mean()) and r["std"] == pytest.approx(returns.std())
    assert r["min"] <= r["q25"] <= r["median"] <= r["q75"] <= r["max"] == pytest.approx(returns.max())
    assert rn["mean"] == pytest.approx(spec.normalise(returns.mean()))
    a = card["actions_per_agent"]
    assert np.allclose(a["mean"], small.actions.mean(0), atol=1e-6) and np.array(a["std"]).shape == (3, 2)
    c = card["coverage"]
    assert 0 < c["joint_coverage"] <= 1 and c["joint_cells"] <= 3000
    json.dumps(card)  # JSON-ready


def test_coverage_separates_narrow_and_broad_data(small):
    spec = spread_spec()
    from marlbench.data.dataset import Dataset

    narrow = Dataset(obs=np.repeat(small.obs[:25], 40, axis=0), actions=np.repeat(small.actions[:25], 40, axis=0),
                     rewards=np.repeat(small.rewards[:25], 40, axis=0), terminals=np.zeros(1000, bool),
                     truncations=np.arange(1000) % 25 == 24)
    assert make_card(narrow, spec)["coverage"]["joint_cells"] <= 25
    assert make_card(small, spec)["coverage"]["joint_cells"] > 100


def test_markdown_sections(small):
    md = card_markdown(make_card(small, spread_spec(), "mpe/spread-scripted"), "card.png")
    for needle in ("# Dataset card: mpe/spread-scripted", "## Episode returns", "| normalised |",
                   "## Actions per agent", "## State-action coverage", "![mpe/spread-scripted](card.png)"):
        assert needle in md


def test_card_of_a_cached_file_names_no_absolute_path(small, tmp_path, monkeypatch):
    """A file inside the data directory is named relative to it, so a committed card holds no machine's paths; a
    file elsewhere keeps the path it was given."""
    monkeypatch.setenv("MARLBENCH_DATA_DIR", str(tmp_path / "data"))
    cached = tmp_path / "data" / "datasets" / "mpe" / "spread-scripted.h5"
    card = make_card(small, spread_spec(), "mpe/spread-scripted", str(cached))
    assert card["path"] == "<data>/datasets/mpe/spread-scripted.h5"
    for text in (card_markdown(card), card_text(card), json.dumps(card)):
        assert str(tmp_path) not in text and "<data>/datasets/mpe/spread-scripted.h5" in text
    assert "MARLBENCH_DATA_DIR" in card_markdown(card)  # the Markdown says what <data> stands for
    elsewhere = tmp_path / "mine.h5"
    assert make_card(small, spread_spec(), path=str(elsewhere))["path"] == str(elsewhere)


def test_data_info_writes_markdown_and_png(tmp_path, spread_dataset):
    proc = subprocess.run([sys.executable, "-m", "marlbench.cli", "data", "info", "spread-scripted",
                           "--card-dir", str(tmp_path / "cards")], capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "normalised" in proc.stdout and "coverage" in proc.stdout
    md, png = tmp_path / "cards" / "mpe_spread-scripted.md", tmp_path / "cards" / "mpe_spread-scripted.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    assert "](mpe_spread-scripted.png)" in md.read_text()
    assert str(spread_dataset) not in md.read_text() and "`<data>/datasets/" in md.read_text()
    js = subprocess.run([sys.executable, "-m", "marlbench.cli", "data", "info", "spread-scripted", "--json"],
                        capture_output=True, text=True, cwd=tmp_path, check=True)
    assert json.loads(js.stdout)["size"]["episodes"] == 4000


def test_data_info_without_dataset_says_how(tmp_path, monkeypatch, capsys):
    from marlbench.cli import main

    monkeypatch.setenv("MARLBENCH_DATA_DIR", str(tmp_path))
    assert main(["data", "info", "mpe/spread-scripted"]) == 2
    assert "marlbench data generate mpe/spread-scripted" in capsys.readouterr().err

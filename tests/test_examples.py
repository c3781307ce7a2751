"""The examples of examples/ run through the CLI, every party its own process, and match plain numpy."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from tests.conftest import free_ports

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "examples" / "data"


def _config(tmp_path: Path, name: str) -> Path:
    data = yaml.safe_load((ROOT / "configs" / f"{name}.yaml").read_text())
    parties = data["deployment"]["parties"]
    for party, port in zip(parties, free_ports(len(parties)), strict=True):
        party["port"] = port
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def launch(config: Path, program: str, *params: str) -> dict[str, object]:
    args = [sys.executable, "-m", "parties", "launch", str(config), "--program", program, "--json"]
    for p in params:
        args += ["-p", p]
    res = subprocess.run(args, capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert res.returncode == 0, res.stderr
    return {p["name"]: p["result"] for p in json.loads(res.stdout)["parties"]}


def _amounts(bank: str) -> np.ndarray:
    return np.loadtxt(DATA / f"{bank}.csv", delimiter=",", skiprows=1, usecols=1)


@pytest.mark.parametrize("config", ["local-2banks-helper", "local-3banks-helper"])
def test_joint_statistics(tmp_path: Path, config: str) -> None:
    out = launch(_config(tmp_path, config), "examples/joint_stats.py:joint_stats", f"data_dir={DATA}")
    banks = [name for name in out if name != "helper"]
    x = np.concatenate([_amounts(b) for b in banks])
    got = out[banks[0]]
    assert isinstance(got, dict) and all(out[b] == got for b in banks) and out["helper"] is None
    assert got["count"] == x.size
    assert got["sum"] == pytest.approx(x.sum(), abs=x.size * 2**-16)
    assert got["mean"] == pytest.approx(x.mean(), abs=1e-4)
    assert got["variance"] == pytest.approx(x.var(), rel=1e-3)
    edges = np.array([0, 1, 5, 20, 100])
    expected = np.histogram(x, bins=np.concatenate([[-np.inf], edges, [np.inf]]))[0]
    assert list(got["histogram"].values()) == expected.tolist()


def test_sealed_bid_auction(tmp_path: Path) -> None:
    out = launch(_config(tmp_path, "local-3banks-helper"), "examples/auction.py:auction", f"data_dir={DATA}")
    bids = {b: float((DATA / f"{b}_bid.txt").read_text()) for b in ("bank_a", "bank_b", "bank_c")}
    winner = max(bids, key=lambda b: bids[b])
    for bank in bids:
        assert out[bank] == {"winner": winner, "winning_bid": bids[winner]}
    assert out["helper"] is None


def test_credit_scoring_with_a_lenders_secret_model(tmp_path: Path) -> None:
    from protocols.applications.models import Model

    out = launch(_config(tmp_path, "local-3banks-helper"), "examples/credit_scoring.py:credit_scoring",
                 f"data_dir={DATA}")
    model = Model.load(DATA / "credit_model.npz")
    x = np.hstack([np.loadtxt(DATA / f"credit_{b}.csv", delimiter=",", skiprows=1, usecols=(1, 2, 3))
                   for b in ("bank_a", "bank_b")])
    scores = model.predict(x)
    got = out["bank_a"]
    assert isinstance(got, dict) and out["bank_b"] == got and out["bank_c"] is None and out["helper"] is None
    decisions = np.array(got["decisions"])
    clear = np.abs(scores - 0.5) > model.error_bound(float(np.abs(x).max()), 16)
    assert clear.sum() > 40  # most applicants are far from the threshold
    np.testing.assert_array_equal(decisions[clear], (scores >= 0.5)[clear].astype(int))

"""`mpc bench` under emulated latency, and the emulation against real delayed links."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
KEYS = {"op", "n", "method", "parties", "latency_ms", "bandwidth_mbps", "rounds", "bytes_online", "bytes_offline",
        "messages", "wall_s", "correct"}


def run(*args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=timeout, cwd=ROOT)


@pytest.fixture(scope="module")
def records() -> list[dict]:
    res = run("-m", "parties", "bench", "--op", "mul,lt", "--method", "bits", "--n", "1000", "--repeat", "2",
              "--latency-ms", "0,40", "--json")
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)


def test_arithmetic_ops_with_parties_as_processes() -> None:
    """mul, matmul and trunc with every party a process on real sockets (their maths: test_arithmetic.py)."""
    res = run("-m", "parties", "bench", "--op", "mul,matmul,trunc", "--n", "100", "--repeat", "1", "--json")
    assert res.returncode == 0, res.stderr
    got = {r["op"]: r for r in json.loads(res.stdout)}
    assert set(got) == {"mul", "matmul", "trunc"}
    assert all(r["correct"] and r["rounds"] == 1 for r in got.values()), got


def test_bench_json_schema(records: list[dict]) -> None:
    assert len(records) == 4
    for r in records:
        assert set(r) >= KEYS, KEYS - set(r)
        assert isinstance(r["wall_s"], float) and r["wall_s"] > 0
        assert r["correct"] is True and r["parties"] == 2 and r["n"] == 1000
        assert r["wall_s_min"] <= r["wall_s"] <= r["wall_s_max"]
    assert sorted({r["latency_ms"] for r in records}) == [0, 40]


def test_wall_time_follows_rounds_times_latency(records: list[dict]) -> None:
    by = {(r["op"], r["latency_ms"]): r for r in records}
    for op, rounds in (("mul", 1), ("lt", 8)):
        slow, fast = by[(op, 40)], by[(op, 0)]
        assert slow["rounds"] == fast["rounds"] == rounds
        added = slow["wall_s"] - fast["wall_s"]
        expected = rounds * 0.040
        assert expected * 0.9 <= added <= expected + 0.25, (op, added)
        # the fitted model puts the slope near the round count
        assert abs(slow["fitted_s_per_ms"] * 1000 - rounds) < max(1.0, 0.25 * rounds)


def test_bench_plot_renders(tmp_path: Path) -> None:
    png = tmp_path / "bench.png"
    res = run("-m", "parties", "bench", "--op", "mul", "--n", "100", "--repeat", "1", "--latency-ms", "0,5",
              "--plot", str(png))
    assert res.returncode == 0, res.stderr
    assert png.stat().st_size > 10_000 and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "rounds" in res.stdout and "plot written" in res.stdout


def test_real_delayed_links_agree_with_emulation() -> None:
    """Namespaces where allowed (root), else delay proxies on loopback: real links within 20 %."""
    res = run("scripts/netns_bench.py", "--op", "lt", "--method", "bits", "--n", "200", "--latency-ms", "20",
              "--repeat", "2", "--json")
    assert res.returncode == 0, res.stderr
    result = json.loads(res.stdout)
    assert result["mode"] in ("namespaces", "loopback")
    (row,) = result["rows"]
    assert row["rounds"] == row["rounds_emulated"] == 8 and row["correct"]
    assert abs(row["difference"]) <= 0.20, row
    if shutil.which("ip"):
        leftover = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
        assert "mpcbench" not in leftover

"""`mpc bench` over a latency sweep: auto resolved once per op, rough slopes marked, a line per method."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import parties.bench_driver
from parties.bench_driver import fit_latency_model, resolve_auto
from parties.cli import cli

CALLS: list[tuple[tuple[str, ...], tuple[float | None, ...], str]] = []


def _fake_run_bench(topo: Any, ops: list[str], n: int, repeat: int, latencies: list[float | None],
                    bandwidth_mbps: float | None, method: str, **kwargs: Any) -> list[dict[str, Any]]:
    """auto picks bits at 0 ms and dcf above (as the cost model would), arithmetic is beaver."""
    CALLS.append((tuple(ops), tuple(latencies), method))
    out = []
    for lat in latencies:
        for op in ops:
            chosen = "beaver" if op == "mul" else method if method != "auto" else "bits" if not lat else "dcf"
            rounds = {"beaver": 1, "bits": 8, "dcf": 1, "compact": 2}[chosen]
            wall = 0.01 + rounds * (lat or 0) / 1000
            out.append({"op": op, "n": n, "method": chosen, "parties": 2, "latency_ms": lat or 0.0,
                        "bandwidth_mbps": None, "rounds": rounds, "bytes_online": 100, "bytes_offline": 100,
                        "messages": rounds, "wall_s": wall, "wall_s_min": wall, "wall_s_max": wall, "offline_s": 0.01,
                        "ops_per_s": n / wall, "correct": True})
    return out


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> None:
    CALLS.clear()
    monkeypatch.setattr(parties.bench_driver, "run_bench", _fake_run_bench)


def test_auto_is_resolved_once_per_op_for_the_whole_sweep(fake: None, tmp_path: Path) -> None:
    res = CliRunner().invoke(cli, ["bench", "--op", "mul,lt,relu", "--latency-ms", "0,10,50", "--n", "10",
                                   "--plot", str(tmp_path / "p.png")])
    assert res.exit_code == 0, res.output
    assert CALLS[0] == (("mul", "lt", "relu"), (0.0,), "auto")
    assert (("lt", "relu"), (10.0, 50.0), "bits") in CALLS and (("mul",), (10.0, 50.0), "auto") in CALLS
    assert "auto resolved once per op at 0 ms for the whole sweep: lt bits, relu bits" in res.output
    assert "dcf" not in res.output  # auto would have switched to dcf at 10 ms
    assert (tmp_path / "p.png").stat().st_size > 0


def test_a_slope_from_two_latencies_is_marked_rough(fake: None) -> None:
    two = CliRunner().invoke(cli, ["bench", "--op", "lt", "--method", "dcf", "--latency-ms", "0,10", "--n", "10"])
    assert two.exit_code == 0 and "from 2 latencies only: rough" in two.output
    three = CliRunner().invoke(cli, ["bench", "--op", "lt", "--method", "dcf", "--latency-ms", "0,10,20", "--n", "10"])
    assert three.exit_code == 0 and "rough" not in three.output and "wall grows 1.00 ms per ms" in three.output


def test_resolution_keeps_arithmetic_ops_on_auto() -> None:
    records = [{"op": "mul", "method": "beaver"}, {"op": "lt", "method": "compact"}]
    assert resolve_auto(records, {"mul": False, "lt": True}) == {"mul": "auto", "lt": "compact"}
    fitted = fit_latency_model([{"op": "lt", "method": "dcf", "latency_ms": lat, "rounds": 1,
                                 "wall_s": 0.01 + lat / 1000, "bytes_online": 1} for lat in (0.0, 10.0)])
    assert {r["fitted_points"] for r in fitted} == {2}

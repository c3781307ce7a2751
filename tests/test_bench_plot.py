"""`mpc bench --plot` and --latency-ms: what can be checked is checked before the benchmark runs, and the
results are printed before the plot is drawn, so a failing plot never loses them."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import parties.bench_driver
from parties.cli import cli


def _no_bench(*args: Any, **kwargs: Any) -> list[dict[str, Any]]:
    raise AssertionError("the benchmark ran although its --plot could not be written")


@pytest.fixture
def fake_bench(monkeypatch: pytest.MonkeyPatch) -> None:
    """A benchmark that returns at once with one record."""
    record = {"op": "mul", "n": 10, "method": "beaver", "parties": 2, "latency_ms": 0.0, "bandwidth_mbps": None,
              "rounds": 1, "bytes_online": 272, "bytes_offline": 192, "messages": 2, "wall_s": 0.001,
              "wall_s_min": 0.001, "wall_s_max": 0.002, "offline_s": 0.001, "ops_per_s": 10_000.0, "correct": True}
    monkeypatch.setattr(parties.bench_driver, "run_bench", lambda *a, **k: [dict(record)])


@pytest.mark.parametrize("where", ["missing directory", "a directory", "read-only directory"])
def test_unwritable_plot_path_is_refused_before_running(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                        where: str) -> None:
    monkeypatch.setattr(parties.bench_driver, "run_bench", _no_bench)
    path = {"missing directory": tmp_path / "no" / "such" / "plot.png", "a directory": tmp_path,
            "read-only directory": tmp_path / "ro" / "plot.png"}[where]
    if where == "read-only directory":
        path.parent.mkdir(mode=0o500)
        if sys.platform != "win32" and __import__("os").access(path.parent, __import__("os").W_OK):
            pytest.skip("running as a user who can write anywhere (root)")
    res = CliRunner().invoke(cli, ["bench", "--op", "mul", "--n", "10", "--plot", str(path)])
    assert res.exit_code == 2, res.output
    assert "--plot" in res.output and str(path) in res.output and "Traceback" not in res.output


def test_missing_matplotlib_is_refused_before_running(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(parties.bench_driver, "run_bench", _no_bench)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib raises ImportError
    res = CliRunner().invoke(cli, ["bench", "--op", "mul", "--n", "10", "--plot", str(tmp_path / "p.png")])
    assert res.exit_code == 2 and "needs matplotlib: pip install 'mpc[plot]'" in res.output


@pytest.mark.parametrize("as_json", [False, True])
def test_results_are_printed_before_a_failing_plot(fake_bench: None, monkeypatch: pytest.MonkeyPatch,
                                                   tmp_path: Path, as_json: bool) -> None:
    def disk_full(records: list[dict[str, Any]], path: str) -> None:
        raise RuntimeError(f"--plot: cannot write {path}: No space left on device")

    monkeypatch.setattr(parties.bench_driver, "plot", disk_full)
    res = CliRunner().invoke(cli, ["bench", "--op", "mul", "--n", "10", "--plot", str(tmp_path / "p.png"),
                                   *(["--json"] if as_json else [])])
    assert res.exit_code == 1
    assert ('"bytes_online": 272' if as_json else "mpc bench (medians") in res.output
    assert res.output.index("272") < res.output.index("No space left on device (the results are above)")


def test_plot_is_written(fake_bench: None, tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    res = CliRunner().invoke(cli, ["bench", "--op", "mul", "--n", "10", "--plot", str(tmp_path / "p.png")])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "p.png").stat().st_size > 0 and "plot written to" in res.output


def test_latency_out_of_range_or_above_the_timeout_is_refused_before_running(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(parties.bench_driver, "run_bench", _no_bench)
    res = CliRunner().invoke(cli, ["bench", "--op", "mul", "--latency-ms", "0,200000"])
    assert res.exit_code == 2
    assert "network_emulation.latency_ms: Input should be less than or equal to 60000" in res.output
    config = tmp_path / "t.yaml"
    config.write_text("session: {timeout_s: 1}\ndeployment:\n  parties:\n"
                      "    - {name: bank_a, role: compute, port: 7001}\n"
                      "    - {name: bank_b, role: compute, port: 7002}\n"
                      "    - {name: helper, role: helper, port: 7003}\n")
    res = CliRunner().invoke(cli, ["bench", "--config", str(config), "--op", "mul", "--latency-ms", "0,1500"])
    assert res.exit_code == 2 and "1500 ms one-way is not below the timeout (1 s)" in res.output
    res = CliRunner().invoke(cli, ["run", str(config), "--party", "bank_a", "--latency-ms", "70000"])
    assert res.exit_code == 2 and "command line: network_emulation.latency_ms: Input should be less" in res.output

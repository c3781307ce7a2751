"""End to end through the CLI: every party a real OS process on real sockets."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import free_ports

ROOT = Path(__file__).resolve().parent.parent


def _config(tmp_path: Path, name: str = "local-2banks-helper") -> Path:
    """A shipped config moved to free ports, so tests never collide with a running deployment."""
    data = yaml.safe_load((ROOT / "configs" / f"{name}.yaml").read_text())
    for party, port in zip(data["parties"], free_ports(len(data["parties"])), strict=True):
        party["port"] = port
    data["timeout_s"] = 20
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def mpc(*args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mpc", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT)


def test_launch_json_reports_every_party(tmp_path: Path) -> None:
    res = mpc("launch", str(_config(tmp_path)), "--json")
    assert res.returncode == 0, res.stderr
    report = json.loads(res.stdout)
    assert report["ok"] is True
    names = [p["name"] for p in report["parties"]]
    assert names == ["bank_a", "bank_b", "helper"]
    for p in report["parties"]:
        assert p["rounds"] == 1
        assert p["messages"] == 4 and p["bytes_sent"] > 0 and p["wall_s"] >= 0
    assert len({p["session_id"] for p in report["parties"]}) == 1
    # logs are prefixed with the party name
    assert any(line.startswith("bank_b") for line in res.stderr.splitlines())
    # a key-less local topology runs with ephemeral CURVE keys, not in the clear
    assert "NOT encrypted" not in res.stderr


def test_launch_pingpong_with_latency_override(tmp_path: Path) -> None:
    res = mpc("launch", str(_config(tmp_path, "local-3banks-helper")), "--program", "pingpong",
              "-p", "steps=9", "--latency-ms", "10", "--json")
    assert res.returncode == 0, res.stderr
    report = json.loads(res.stdout)
    assert report["rounds"] == 9
    assert max(p["wall_s"] for p in report["parties"]) >= 9 * 0.010


def test_failing_party_stops_the_launch(tmp_path: Path) -> None:
    config = _config(tmp_path)
    res = mpc("launch", str(config), "--program", "crash", "-p", "who=bank_b", "-p", "after_s=0.5", "--json")
    assert res.returncode != 0
    assert "bank_b crashed on purpose" in res.stderr
    assert "launch failed" in res.stderr
    assert "Traceback" not in res.stderr
    report = json.loads(res.stdout)
    assert report["ok"] is False
    assert all(p["exit_code"] != 0 for p in report["parties"])
    # no party process is left behind (their command lines name the launch's temporary topology)
    if shutil.which("pgrep"):
        left = subprocess.run(["pgrep", "-f", f"mpc-launch-.*|{tmp_path}"], capture_output=True, text=True).stdout
        assert not [pid for pid in left.split() if int(pid) != os.getpid()]


@pytest.mark.parametrize("how", ["ctrl-c", "sigterm"])
def test_interrupted_launch_stops_every_party(tmp_path: Path, how: str) -> None:
    """Ctrl-C reaches the whole process group; SIGTERM only the launcher, which must stop its children."""
    config = _config(tmp_path)
    proc = subprocess.Popen([sys.executable, "-m", "mpc", "launch", str(config), "--program", "pingpong",
                             "-p", "steps=2000", "--latency-ms", "20"], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    assert proc.stderr is not None
    started = 0
    while started < 3:  # every party has its session: the run is under way
        line = proc.stderr.readline()
        assert line, "the launch ended before every party started"
        started += "started with" in line
    if how == "ctrl-c":
        os.killpg(proc.pid, signal.SIGINT)
    else:
        proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert "interrupted" in err and "Traceback" not in err and "never retrieved" not in err
    if shutil.which("pgrep"):
        left = subprocess.run(["pgrep", "-f", f"mpc-launch-.*|{tmp_path}"], capture_output=True, text=True).stdout
        assert not [pid for pid in left.split() if int(pid) != os.getpid()]


def test_run_single_party_reports_missing_peer(tmp_path: Path) -> None:
    res = mpc("run", str(_config(tmp_path)), "--party", "bank_a", "--timeout-s", "1")
    assert res.returncode == 1
    assert "NOT encrypted" in res.stderr  # `mpc run` of a key-less topology says so
    assert "bank_b" in res.stderr and "timed out" in res.stderr
    assert "Traceback" not in res.stderr


def test_bad_config_exit_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("parties: [{name: a, role: compute, port: 0}]\n")
    for cmd in (["check"], ["launch"]):
        res = mpc(*cmd, str(bad))
        assert res.returncode == 2
        assert f"{bad}: parties[0] (a).port" in res.stderr
        assert "Traceback" not in res.stderr


def test_launch_arith_demo_matches_plaintext(tmp_path: Path) -> None:
    res = mpc("launch", str(_config(tmp_path)), "--program", "arith", "-p", "n=7", "--json")
    assert res.returncode == 0, res.stderr
    report = json.loads(res.stdout)
    for p in report["parties"]:
        if p["role"] == "compute":
            assert {k: v["match"] for k, v in p["result"].items()} == {"product": True, "matmul": True,
                                                                       "expression": True}
            assert len(p["result"]["product"]["secure"]) == 7
    helper = next(p for p in report["parties"] if p["name"] == "helper")
    assert helper["phases"]["offline"]["bytes_sent"] > 0 and "online" not in helper["phases"]


def test_bench_json_records(tmp_path: Path) -> None:
    res = mpc("bench", "--op", "mul,matmul,trunc", "--n", "400", "--repeat", "2", "--json")
    assert res.returncode == 0, res.stderr
    records = json.loads(res.stdout)
    keys = {"op", "n", "method", "parties", "latency_ms", "rounds", "bytes_online", "bytes_offline", "messages",
            "wall_s", "correct"}
    assert [r["op"] for r in records] == ["mul", "matmul", "trunc"]
    for r in records:
        assert keys <= set(r)
        assert r["correct"] is True and r["rounds"] == 1 and r["parties"] == 2
    mul, matmul, trunc = records
    from mpc.transport.frames import HEADER_SIZE

    assert mul["bytes_online"] == 16 * 400 + HEADER_SIZE and mul["bytes_offline"] == 8 * 400 + HEADER_SIZE
    assert matmul["bytes_online"] == 16 * 400 + HEADER_SIZE  # two 20 x 20 operands
    assert trunc["bytes_online"] == 8 * 400 + HEADER_SIZE


def test_program_parameters_are_checked_before_any_party_starts(tmp_path: Path) -> None:
    from parties.programs import bind_params

    res = mpc("launch", str(_config(tmp_path)), "--program", "pingpong", "-p", "stepz=3")
    assert res.returncode == 2 and "pingpong has no parameter 'stepz'; its parameters: steps=10" in res.stderr
    assert "session" not in res.stderr  # no party was started
    # text from the command line takes each parameter's type from its default
    assert bind_params("fraud", {"data_dir": "d", "query": "12345", "reveal_scores": "true"}) == {
        "data_dir": "d", "query": "12345", "reveal_scores": True}
    with pytest.raises(ValueError, match="pingpong parameter steps: expected int"):
        bind_params("pingpong", {"steps": "x"})
    with pytest.raises(ValueError, match="fraud needs data_dir"):
        bind_params("fraud", {})

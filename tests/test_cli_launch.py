"""End to end through the CLI: every party a real OS process on real sockets."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.conftest import free_ports

ROOT = Path(__file__).resolve().parent.parent


def _config(tmp_path: Path, name: str = "local-2banks-helper") -> Path:
    """A shipped config moved to free ports, so tests never collide with a running deployment."""
    data = yaml.safe_load((ROOT / "configs" / f"{name}.yaml").read_text())
    parties = data["deployment"]["parties"]
    for party, port in zip(parties, free_ports(len(parties)), strict=True):
        party["port"] = port
    data["session"]["timeout_s"] = 20
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def mpc(*args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "parties", *args], capture_output=True, text=True,
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


def children(pid: int) -> dict[int, str]:
    """The processes whose parent is `pid` (a process this test started), with their command lines."""
    out = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) == pid:
                out[int(stat.parent.name)] = (stat.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (OSError, IndexError, ValueError):
            continue  # it ended meanwhile
    return out


def assert_gone(pids: list[int], marker: str) -> None:
    """None of these processes (recognised by `marker` in their command line) is still running."""
    for pid in pids:
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        assert marker not in cmdline, f"party process {pid} left behind: {cmdline}"


def summary_lines(stderr: str) -> list[str]:
    return stderr[stderr.index("error: launch failed"):].splitlines()


def test_failing_party_stops_the_launch(tmp_path: Path) -> None:
    config = _config(tmp_path)
    args = ("launch", str(config), "--program", "crash", "-p", "who=bank_b", "-p", "after_s=0.5")
    res = mpc(*args, "--json")
    assert res.returncode == 1
    assert "Traceback" not in res.stderr
    # one line per party, the root cause first; the others stopped by themselves, naming it
    first, *others = summary_lines(res.stderr)
    assert first == "error: launch failed: bank_b: bank_b crashed on purpose (program 'crash')"
    assert sorted(line.split(":")[0].strip() for line in others) == ["bank_a", "helper"]
    assert all("bank_b" in line and "launcher" not in line for line in others), others
    assert res.stderr.count("crashed on purpose") == 1 and "exit -15" not in res.stderr
    report = json.loads(res.stdout)
    assert report["ok"] is False
    assert all(p["exit_code"] == 1 and p["ok"] is False for p in report["parties"])
    assert [p["cause"] for p in report["parties"]][1] is None  # bank_b's own error
    # no party process is left behind (their command lines name the launch's temporary topology)
    assert_gone([p["pid"] for p in report["parties"]], "mpc-launch-")
    text = mpc(*args)
    assert text.returncode == 1 and text.stdout == ""  # no table of placeholders for a failed run
    assert summary_lines(text.stderr)[0] == first


def test_a_killed_party_is_named_by_every_other_and_the_launch(tmp_path: Path) -> None:
    """bank_b killed while the helper deals 10^6 DCF keys: the others stop by themselves, within seconds,
    naming bank_b (not `interrupted`); the launcher never has to stop them."""
    proc = subprocess.Popen([sys.executable, "-m", "parties", "launch", str(_config(tmp_path)), "--program", "bench",
                             "-p", "ops=lt", "-p", "n=1000000", "-p", "method=dcf", "-p", "repeat=1"],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stderr is not None
        while "generating DCF keys" not in (line := proc.stderr.readline()):  # the helper is dealing
            assert line, "the launch ended before the helper started dealing"
        parties = children(proc.pid)
        bank_b = next(pid for pid, cmd in parties.items() if "--party bank_b" in cmd)
        os.kill(bank_b, signal.SIGKILL)
        t0 = time.monotonic()
        out, err = proc.communicate(timeout=60)
        assert time.monotonic() - t0 < 5, err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 1 and out == ""
    first, *others = summary_lines(err)
    assert first == "error: launch failed: bank_b: killed by SIGKILL (not by the launcher)"
    assert len(others) == 2 and all("bank_b" in line for line in others), err
    assert "interrupted" not in err and "launcher" not in "".join(others) and "Traceback" not in err
    assert_gone(list(parties), "mpc-launch-")


@pytest.mark.parametrize("how", ["ctrl-c", "sigterm", "sigterm-while-dealing"])
def test_interrupted_launch_stops_every_party(tmp_path: Path, how: str) -> None:
    """Ctrl-C reaches the whole process group; SIGTERM only the launcher, which must stop its children,
    promptly even while the helper generates 10^6 DCF keys in worker threads (no SIGKILL needed)."""
    config = _config(tmp_path)
    dealing = ["--program", "bench", "-p", "ops=lt", "-p", "n=1000000", "-p", "method=dcf", "-p", "repeat=1"]
    pingpong = ["--program", "pingpong", "-p", "steps=2000", "--latency-ms", "20"]
    program = dealing if how == "sigterm-while-dealing" else pingpong
    proc = subprocess.Popen([sys.executable, "-m", "parties", "launch", str(config), *program], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    assert proc.stderr is not None
    started = 0
    ready = 4 if how == "sigterm-while-dealing" else 3
    while started < ready:  # every party has its session (and the helper deals): the run is under way
        line = proc.stderr.readline()
        assert line, "the launch ended before every party started"
        started += "started with" in line or "generating DCF keys" in line
    parties = list(children(proc.pid))
    assert len(parties) == 3
    if how == "ctrl-c":
        os.killpg(proc.pid, signal.SIGINT)
    else:
        proc.send_signal(signal.SIGTERM)
    t0 = time.monotonic()
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert time.monotonic() - t0 < 4.5, err  # every party stopped on SIGTERM, none needed the SIGKILL
    assert "interrupted" in err and "Traceback" not in err and "never retrieved" not in err
    assert_gone(parties, "mpc-launch-")


def test_leftover_tasks_failing_as_they_are_cancelled_print_no_traceback(capsys: pytest.CaptureFixture[str],
                                                                         caplog: pytest.LogCaptureFixture) -> None:
    """A party's process ends with tasks still pending (after a peer's abort): they are cancelled and
    awaited quietly, not reported by asyncio.run's shutdown with tracebacks."""
    import asyncio
    import logging

    from parties.commands.run import run_party_process as _run_party_process

    async def stubborn() -> None:
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            raise RuntimeError("failed while being cancelled") from None

    async def program() -> None:
        asyncio.get_running_loop().create_task(stubborn())
        await asyncio.sleep(0)
        raise ValueError("the party's own error")

    caplog.set_level(logging.DEBUG, logger="asyncio")
    with pytest.raises(ValueError, match="the party's own error"):
        _run_party_process(program, debug=False)
    assert "unhandled exception" not in caplog.text + capsys.readouterr().err


def test_run_single_party_reports_missing_peer(tmp_path: Path) -> None:
    res = mpc("run", str(_config(tmp_path)), "--party", "bank_a", "--timeout-s", "1")
    assert res.returncode == 1
    assert "NOT encrypted" in res.stderr  # `mpc run` of a key-less topology says so
    assert "bank_b" in res.stderr and "timed out" in res.stderr
    assert "Traceback" not in res.stderr


def test_bad_config_exit_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("deployment: {parties: [{name: a, role: compute, port: 0}]}\n")
    for cmd in (["check"], ["launch"]):
        res = mpc(*cmd, str(bad))
        assert res.returncode == 2
        assert f"{bad}: deployment.parties[0] (a).port" in res.stderr
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
    assert res.returncode == 2 and "pingpong has no parameter stepz (did you mean steps?); its parameters: steps=10" \
        in res.stderr
    assert "session" not in res.stderr  # no party was started
    # text from the command line takes each parameter's type from its default
    assert bind_params("fraud", {"data_dir": "d", "query": "12345", "reveal_scores": "true"}) == {
        "data_dir": "d", "query": "12345", "reveal_scores": True}
    with pytest.raises(ValueError, match="pingpong parameter steps: expected int, got x$"):  # as typed
        bind_params("pingpong", {"steps": "x"})
    with pytest.raises(ValueError, match="fraud needs data_dir"):
        bind_params("fraud", {})

"""Failures found by testing from outside (issue 19): each named, promptly, the way the user needs."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
import zmq

from mpc.records import PartyRecord
from mpc.runtime import PartyFailed, run_on
from mpc.stats import Stats
from mpc.transport import MemoryNetwork, PeerAborted, ZmqTransport
from mpc.workers import WorkerPool
from protocols.applications import training as tr
from protocols.interface.context import Context, run_local, secure
from protocols.interface.emulation import emulate
from protocols.primitives.shared import Shares, split
from tests.test_cli_launch import ROOT, _config, children, mpc, summary_lines


async def _run_every_party(topo, program) -> dict[str, BaseException | None]:
    """Each party's run in one loop (memory transport): its error, or None."""
    network = MemoryNetwork(topo)
    runs = {}
    for name in topo.names:
        stats = Stats()
        runs[name] = asyncio.create_task(run_on(network.transport(name, stats), topo, name, secure(program), stats))
    await asyncio.wait(runs.values())
    return {name: t.exception() for name, t in runs.items()}


@pytest.mark.parametrize("links", [3000])
def test_a_helper_failing_under_a_long_chain_of_pending_operations_is_named(make_topology, links: int) -> None:
    """Thousands of local operations issued ahead on a value still waiting for material (a training loop):
    the helper fails; each bank names it, with no RecursionError (cancelling the chain recursed)."""

    async def program(ctx: Context) -> object:
        x = await ctx.input("bank_a", np.ones(4) if ctx.name == "bank_a" else None)
        if ctx.is_dealer:
            raise RuntimeError("the helper fails before dealing")
        y = x * x  # waits for the helper's material, which never comes
        for _ in range(links):
            y = y + x
        return await ctx.reveal(y)

    errors = asyncio.run(_run_every_party(make_topology(2), program))
    assert isinstance(errors["helper"], RuntimeError)
    for bank in ("bank_a", "bank_b"):
        assert isinstance(errors[bank], PeerAborted) and errors[bank].peer == "helper", repr(errors[bank])


async def test_the_reader_lets_the_event_loop_run_between_queued_messages(make_topology) -> None:
    """pyzmq hands over a queued message without suspending: a backlog (the helper's material) must not
    hold the event loop, or a peer's death and every timer wait until it is drained."""
    transport = ZmqTransport(make_topology(2, helper=False), "bank_a", Stats())
    ticks = 0
    seen: list[int] = []

    class Backlog:  # a socket with 50 messages queued: each recv returns at once, as pyzmq's does
        async def recv_multipart(self, copy: bool = False) -> list[zmq.Frame]:
            if len(seen) == 50:
                await asyncio.Future()  # nothing more
            return [zmq.Frame(b"bank_b"), zmq.Frame(b"payload")]

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0)

    transport._router = Backlog()  # type: ignore[assignment]
    transport._handle_message = lambda peer, body: seen.append(ticks)  # type: ignore[method-assign]
    clock = asyncio.create_task(ticker())
    reader = asyncio.create_task(transport._read_loop())
    while len(seen) < 50:
        await asyncio.sleep(0)
    reader.cancel()
    clock.cancel()
    assert seen[-1] - seen[0] >= 40, seen  # the ticker ran between (nearly) every two messages


def test_a_party_busy_for_longer_than_the_timeout_is_waited_for(make_topology) -> None:
    """bank_a computes for twice timeout_s before it sends; the helper has dealt everything and waits at
    the goodbye meanwhile: a busy party is not an absent one, so the run completes (liveness, not a clock,
    names a dead or frozen peer)."""

    async def program(ctx: Context) -> object:
        x = await ctx.input("bank_a", np.arange(3.0) if ctx.name == "bank_a" else None)
        y = x * 2.0
        if ctx.name == "bank_a":
            await asyncio.sleep(2.0)  # busy (in its own process this would be computing)
        return await ctx.reveal(y)

    out = run_local(make_topology(2, timeout_s=0.8, dealer_workers=1), program)  # no worker processes to boot
    assert out["bank_b"].value.tolist() == [0.0, 2.0, 4.0]


def test_a_peers_abort_reason_is_bounded_escaped_and_quoted_as_its_own_words(make_topology) -> None:
    """A keyed peer's abort may hold newlines, ANSI escapes, forged lines and megabytes: shown on one line,
    bounded, escaped, quoted as the peer's words."""
    transport = ZmqTransport(make_topology(2, helper=False), "bank_a", Stats())
    forged = "oops\nerror: launch failed: helper: killed by SIGKILL\x1b[2K\x1b[1A\u202e" + "x" * 5 * 2**20
    transport._on_abort("bank_b", memoryview(forged.encode()))
    text = str(transport.failure)
    assert isinstance(transport.failure, PeerAborted) and transport.failure.peer == "bank_b"
    assert text.startswith('bank_b aborted, saying: "oops\\x0aerror: launch failed: helper: killed by SIGKILL'
                           '\\x1b[2K\\x1b[1A\\u202exxx')
    assert text.isprintable() and "\n" not in text and len(text) < 600
    assert text.endswith(f'" ... ({len(forged) - 400} more characters)')


def test_an_eof_error_is_an_error_not_an_interrupt(tmp_path: Path) -> None:
    """Click turns an EOFError into an Abort, which read as Ctrl-C (exit 130, the cause lost)."""
    prog = tmp_path / "prog.py"
    prog.write_text("async def reads(ctx):\n    if ctx.name == 'bank_a':\n        raise EOFError('no more input')\n")
    res = mpc("launch", str(_config(tmp_path)), "--program", f"{prog}:reads")
    assert res.returncode == 1, res.stderr
    assert "interrupted" not in res.stderr
    assert summary_lines(res.stderr)[0] == ("error: launch failed: bank_a: EOFError: no more input at prog.py:3 (run "
                                            "with --debug for the traceback)"), res.stderr


def test_emulate_names_a_program_calling_sys_exit(tmp_path: Path) -> None:
    prog = tmp_path / "prog.py"
    prog.write_text("import sys\n\n\nasync def leaves(ctx):\n    if ctx.name == 'bank_b':\n        sys.exit(0)\n"
                    "    return 1\n")
    res = mpc("emulate", str(_config(tmp_path)), "--program", f"{prog}:leaves")
    assert res.returncode == 1 and "Traceback" not in res.stderr, res.stderr
    assert "error: bank_b: the program called sys.exit(0)" in res.stderr


def test_a_program_calling_sys_exit_fails_its_party_and_the_run(make_topology) -> None:
    async def leaves(ctx: Context) -> int:
        if ctx.name == "bank_b":
            sys.exit(0)
        return 1

    with pytest.raises(PartyFailed) as info:
        run_local(make_topology(2), leaves, transport="memory")
    assert info.value.party == "bank_b" and "called sys.exit(0)" in str(info.value)


def test_emulate_names_a_program_whose_calls_differ_on_the_helper(make_topology) -> None:
    """The secure run stops such a program (the helper deals for other operations); emulation said ok."""

    async def diverging(ctx: Context) -> object:
        x = await ctx.input("bank_a", np.array([1.0, 2.0]) if ctx.name == "bank_a" else None)
        return await ctx.reveal(x + x if ctx.is_dealer else x * x)

    with pytest.raises(ValueError, match="the parties' programs diverge at operation 2: bank_a calls mul"):
        emulate(make_topology(2), diverging)


def test_a_nan_input_names_its_index_as_plain_integers(make_topology) -> None:
    async def program(ctx: Context) -> object:
        return await ctx.input("bank_a", np.array([[1.0, 2.0], [3.0, np.nan]]) if ctx.name == "bank_a" else None)

    with pytest.raises(PartyFailed, match=r"not finite \(NaN or infinite\) at index \(1, 1\)$"):
        run_local(make_topology(2), program, transport="memory")


def _share_file(path: Path, **changes: object) -> Path:
    """A model share file of bank_a for '2-1-logistic' with its metadata changed (None: field removed)."""
    arch, cfg = "2-1-logistic", tr.TrainConfig().to_json()
    arrays = {"w0": np.zeros((2, 1), np.uint64), "b0": np.zeros(1, np.uint64)}
    meta: dict[str, object] = {"format": tr.SHARE_FORMAT, "party": "bank_a", "architecture": arch, "frac_bits": 16,
                               "model_id": "00", "config": cfg, "digest": tr._digest(arch, 16, "00", cfg),
                               "checksum": tr._checksum(arrays)}
    meta.update(changes)
    np.savez(path, meta=np.array(json.dumps({k: v for k, v in meta.items() if v is not None})), **arrays)
    return path


@pytest.mark.parametrize(("changes", "message"), [
    ({}, None),
    ({"party": None}, "meta.party: missing"),
    ({"config": "{not json"}, "meta.config: not valid JSON"),
    ({"config": json.dumps({**json.loads(tr.TrainConfig().to_json()), "momentum": 0.9})},
     "meta.config.momentum: not a field of a model share file"),
    ({"frac_bits": "16"}, "meta.frac_bits: expected int, got '16'"),
    ({"checksum": 5}, "meta.checksum: expected str, got 5"),
    ({"config": json.dumps({**json.loads(tr.TrainConfig().to_json()), "epochs": True})},
     "meta.config.epochs: expected int, got True"),
])
def test_a_bad_model_share_file_is_named_with_its_field(tmp_path: Path, changes: dict[str, object],
                                                        message: str | None) -> None:
    path = _share_file(tmp_path / "bank_a.npz", **changes)
    if message is None:
        assert tr.read_shares(path, "bank_a", "2-1-logistic", 16).config == tr.TrainConfig()
        return
    with pytest.raises(tr.TrainingError) as info:
        tr.read_shares(path, "bank_a", "2-1-logistic", 16)
    assert str(info.value).startswith(f"{path}: {message}") and "\n" not in str(info.value)


def test_a_truncated_model_share_file_is_named(tmp_path: Path) -> None:
    path = _share_file(tmp_path / "bank_a.npz")
    path.write_bytes(path.read_bytes()[:300])
    with pytest.raises(tr.TrainingError, match=f"^{path}: not a model share file, or a truncated one"):
        tr.read_shares(path, "bank_a", "2-1-logistic", 16)


def spin_range(out: np.ndarray, n: int, lo: int, hi: int, marker: str) -> None:
    """Run in a worker process: say it has started (a file), then compute far longer than any test waits."""
    Path(f"{marker}.{lo}").touch()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        sum(range(10_000))


def test_a_frozen_worker_process_fails_the_job_naming_it(tmp_path: Path) -> None:
    """A worker of the helper's pool SIGSTOPped during a job: named once it has used no CPU time for
    frozen_after_s (the helper waited for it forever, its peers until their timeout)."""
    workers = WorkerPool(2, "helper", frozen_after_s=1.0).start()
    errors: list[BaseException] = []

    def job() -> None:
        try:
            workers.fill(spin_range, 10, 10, [], (str(tmp_path / "started"),))
        except BaseException as exc:  # noqa: BLE001 - checked below
            errors.append(exc)

    thread = threading.Thread(target=job)
    thread.start()
    try:
        while len(list(tmp_path.iterdir())) < 2:  # both workers are computing (readiness, not time)
            assert thread.is_alive(), errors
            time.sleep(0.01)
        os.kill(workers.pids[0], signal.SIGSTOP)
        thread.join(60)
        assert not thread.is_alive()
        assert "helper: a worker process is frozen: helper-worker-0" in str(errors[0]), errors
        assert "stopped (SIGSTOP?)" in str(errors[0])
    finally:
        workers.close()
        thread.join()
    assert not workers.alive


PARKED = '''
import asyncio
import logging

import numpy as np


async def parked(ctx):
    x = await ctx.input("bank_a", np.ones(3) if ctx.name == "bank_a" else None)
    y = await ctx.reveal(x * x)
    if ctx.is_dealer:
        await asyncio.sleep(600)  # frozen by the test before it says goodbye
    logging.getLogger("test").warning("program done")
    return None if y is None else y.tolist()
'''


def _start_parties(tmp_path: Path, program: str, **fields: object) -> tuple[Path, dict[str, subprocess.Popen[str]]]:
    """Every party of a 2-bank topology (with `fields`) as an `mpc run` process running `program`."""
    prog = tmp_path / "prog.py"
    prog.write_text(program)
    config = _config(tmp_path)
    data = yaml.safe_load(config.read_text())
    data.setdefault("session", {}).update(fields)
    config.write_text(yaml.safe_dump(data))
    name = program.split("async def ")[1].split("(")[0]
    procs = {p: subprocess.Popen([sys.executable, "-m", "parties", "run", str(config), "--party", p, "--program",
                                  f"{prog}:{name}"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                 cwd=tmp_path)
             for p in ("bank_a", "bank_b", "helper")}
    return config, procs


def test_a_helper_frozen_while_the_banks_say_goodbye_is_named_without_lingering(tmp_path: Path) -> None:
    """The banks have finished and wait for the helper's goodbye when it freezes: named by heartbeats
    (heartbeat_timeout_s) and the 0.5 s grace, not 5 s later (closing lingered on the socket to it)."""
    _, procs = _start_parties(tmp_path, PARKED, heartbeat_s=0.2, heartbeat_timeout_s=2.0)
    try:
        for bank in ("bank_a", "bank_b"):  # both banks' programs are done: they are in the goodbye phase
            stream = procs[bank].stderr
            assert stream is not None
            while "program done" not in (line := stream.readline()):
                assert line, f"{bank} ended before its program was done"
        os.kill(procs["helper"].pid, signal.SIGSTOP)
        t0 = time.monotonic()
        for bank in ("bank_a", "bank_b"):
            _, err = procs[bank].communicate(timeout=60)
            assert procs[bank].returncode == 1
            assert f"error: {bank}: lost the connection to helper" in err, err
        assert time.monotonic() - t0 < 2.0 + 0.5 + 2.5, "the banks lingered on the socket to the frozen helper"
    finally:
        for proc in procs.values():
            proc.kill()
            proc.communicate()


def test_a_party_out_of_memory_is_named_as_such(tmp_path: Path) -> None:
    prog = tmp_path / "prog.py"
    prog.write_text("import numpy as np\n\n\nasync def hungry(ctx):\n    if ctx.name == 'bank_a':\n"
                    "        np.ones(2**50)\n    return await ctx.reveal(await ctx.input('bank_b', np.ones(2) if "
                    "ctx.name == 'bank_b' else None))\n")
    res = mpc("launch", str(_config(tmp_path)), "--program", f"{prog}:hungry")
    assert res.returncode == 1
    first, *others = summary_lines(res.stderr)
    assert first.startswith("error: launch failed: bank_a: out of memory (MemoryError: Unable to allocate"), first
    assert sorted(line.split(":")[0].strip() for line in others) == ["bank_b", "helper"]
    assert all('bank_a aborted, saying: "bank_a ran out of memory (MemoryError)"' in line for line in others), others


def test_a_party_killed_by_the_out_of_memory_killer_is_named_as_such(tmp_path: Path, monkeypatch) -> None:
    """The kernel's OOM killer SIGKILLs a party: the launch says so (its count of kills rose meanwhile)."""
    from parties import launcher

    kills = iter([7, 8])
    monkeypatch.setattr(launcher, "oom_kills", lambda: next(kills))
    prog = tmp_path / "prog.py"
    prog.write_text("import os\nimport signal\n\n\nasync def killed(ctx):\n    if ctx.name == 'bank_b':\n"
                    "        os.kill(os.getpid(), signal.SIGKILL)\n    return await ctx.reveal(await ctx.input("
                    "'bank_b', None))\n")
    results = launcher.launch(str(_config(tmp_path)), ["bank_a", "bank_b", "helper"],
                              ["--program", f"{prog}:killed"], sink=None)
    first = launcher.failure_summary(results).splitlines()[0]
    assert first == ("launch failed: bank_b: killed by SIGKILL (not by the launcher): out of memory (the kernel's "
                     "out-of-memory killer killed processes on this host meanwhile)")


def test_bench_reports_a_failed_party_as_launch_does(monkeypatch, make_topology) -> None:
    from parties import bench_driver
    from parties.launcher import ChildResult, failure_summary

    lost = "bank_a: lost the connection to bank_b (its process died, froze, or the network failed)"
    record = PartyRecord("bank_a", "compute", ok=False, error_class="PeerGone", error=lost, cause="bank_b")
    results = [ChildResult("bank_a", 1, record, ["INFO progress: dealing"], error=lost),
               ChildResult("bank_b", -9, None, ["INFO bank_b: session 1234 started"]),
               ChildResult("helper", 1, None, ["INFO x", "Traceback (most recent call last):", "  File ...",
                                               "MemoryError", "INFO y"])]
    monkeypatch.setattr(bench_driver, "launch", lambda *args, **kwargs: results)
    with pytest.raises(RuntimeError) as info:
        bench_driver.run_bench(make_topology(2), ["mul"], 10, 1)
    assert str(info.value) == failure_summary(results)
    assert str(info.value).splitlines() == [
        "launch failed: bank_b: killed by SIGKILL (not by the launcher)",
        "  helper: exit 1: MemoryError",  # its own failure (no error line: its last words, no log line)
        "  bank_a: lost the connection to bank_b (its process died, froze, or the network failed)"]


@pytest.mark.parametrize("victim", ["bank_b", "helper"])
def test_demo_reports_a_killed_party_as_launch_does(tmp_path: Path, victim: str) -> None:
    """A party SIGKILLed while the helper deals (the banks' event loops held by issuing the whole training):
    every other stops by itself naming it, and the demo reports one line per party, the root cause first,
    no log lines."""
    proc = subprocess.Popen([sys.executable, "-m", "parties", "demo", "fraud", "--accounts", "3000"], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stderr is not None
        while "dealing:" not in (line := proc.stderr.readline()):
            assert line, "the demo ended before the helper dealt"
        pid = next(pid for pid, cmd in children(proc.pid).items() if f"--party {victim}" in cmd)
        os.kill(pid, signal.SIGKILL)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 1
    first, *others = summary_lines(err)
    assert first == f"error: launch failed: {victim}: killed by SIGKILL (not by the launcher)", err
    assert len(others) == 2 and all(f"lost the connection to {victim}" in line for line in others), err
    assert " INFO " not in err and "exit -9" not in err and "Recursion" not in err


async def test_a_result_cancelled_meanwhile_is_left_alone_when_its_operation_fails() -> None:
    """A run stopping cancels what awaits an operation's results; the operation then fails: its results
    were set anyway, InvalidStateError in a callback (116 tracebacks under --debug)."""
    loop = asyncio.get_running_loop()
    errors: list[dict[str, object]] = []
    loop.set_exception_handler(lambda _, context: errors.append(context))
    task: asyncio.Future[tuple[Shares, ...]] = loop.create_future()
    first, second = split(Stub(), task, [((2,), 0), ((2,), 0)])  # type: ignore[arg-type]
    first._fut.cancel()
    task.set_exception(PeerAborted("helper", "helper aborted"))
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert not errors, errors
    assert first._fut.cancelled() and isinstance(second._fut.exception(), PeerAborted)


class Stub:
    """A context for shared arrays that are never computed on."""

"""Secure links, failures and bad input: keys, rogue sockets, killed parties, stale or malformed frames."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
import yaml
import zmq
from hypothesis import given, settings
from hypothesis import strategies as st

from mpc import keys as mpc_keys
from mpc.config import FLAT_FIELDS, ConfigError, load_topology, parse_topology
from mpc.runtime import Party, run_local, run_local_async, run_party
from mpc.stats import Stats
from mpc.transport import PeerAborted, PeerRefused, PeerTimeout, ProtocolViolation, ZmqTransport
from mpc.transport.frames import HEADER_SIZE, MAX_NDIM, VERSION, Header, Kind, encode_header
from mpc.transport.zmq_transport import _NO_SESSION
from parties.diagnostics import mesh, pingpong
from tests.conftest import free_ports

ROOT = Path(__file__).resolve().parent.parent


def keyed_config(tmp_path: Path, names: tuple[str, ...] = ("bank_a", "bank_b", "helper"), **extra: object) -> Path:
    paths = mpc_keys.generate(tmp_path / "keys", list(names))
    parties = [{"name": n, "role": "helper" if n == "helper" else "compute", "host": "127.0.0.1", "port": port,
                "public_key": str(paths[n][0]), "secret_key": str(paths[n][1])}
               for n, port in zip(names, free_ports(len(names)), strict=True)]
    path = tmp_path / "topology.yaml"
    data: dict[str, dict[str, object]] = {"deployment": {"parties": parties}, "session": {"timeout_s": 10}}
    for key, value in extra.items():  # flat keys into their sections
        data.setdefault(FLAT_FIELDS[key], {})[key] = value
    path.write_text(yaml.safe_dump({"name": "keyed", **data}))
    return path


# -- keys ------------------------------------------------------------------------------------------------

def test_key_files_and_modes(tmp_path: Path) -> None:
    cfg = load_topology(keyed_config(tmp_path))
    secret = Path(cfg.party("bank_a").secret_key or "")
    assert secret.stat().st_mode & 0o777 == 0o600
    k = mpc_keys.load(cfg, "bank_a")
    assert k is not None and set(k.public) == {"bank_a", "bank_b", "helper"}
    os.chmod(secret, 0o644)
    with pytest.raises(ConfigError, match="readable by others"):
        mpc_keys.load(cfg, "bank_a")


def test_keyed_topology_runs_over_curve(tmp_path: Path) -> None:
    topo = load_topology(keyed_config(tmp_path))
    out = run_local(topo, mesh)
    assert all(o.value["checked"] for o in out.values())


async def test_wrong_key_is_refused_on_both_sides(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    topo = load_topology(keyed_config(tmp_path, ("bank_a", "bank_b")))
    good = mpc_keys.load(topo, "bank_a")
    new_public, new_secret = zmq.curve_keypair()  # bank_b presents a keypair that is not in the topology
    impostor = mpc_keys.CurveKeys({**good.public, "bank_b": new_public}, new_secret)
    caplog.set_level(logging.ERROR)
    a = asyncio.create_task(run_party(topo, "bank_a", mesh, timeout_s=3))
    with pytest.raises(PeerRefused, match="bank_a refused our CURVE key"):
        await run_party(topo, "bank_b", mesh, timeout_s=3, keys=impostor)
    with pytest.raises(PeerTimeout, match="secure handshakes with bank_b failed"):
        await a
    assert "refused a connection presenting an unknown CURVE key" in caplog.text


def test_non_local_hosts_need_keys_or_insecure(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    parties = [{"name": "bank_a", "role": "compute", "host": "10.1.2.3", "port": 7001},
               {"name": "bank_b", "role": "compute", "host": "bank-b.example", "port": 7001}]
    with pytest.raises(ConfigError, match="non-local hosts but no keys"):
        parse_topology({"deployment": {"parties": parties}})
    assert parse_topology({"deployment": {"parties": parties, "insecure": True}}).insecure
    caplog.set_level(logging.WARNING)
    topo = parse_topology({"deployment": {"parties": [{"name": "bank_a", "role": "compute", "port": free_ports(1)[0]}],
                                          "insecure": True}})
    run_local(topo, mesh, curve=False)
    assert "NOT encrypted" in caplog.text and "insecure: true" in caplog.text


# -- rogue sockets ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("curve", [True, False])
async def test_rogue_socket_changes_nothing(make_topology, curve: bool, caplog: pytest.LogCaptureFixture) -> None:
    # a small frame bound, so that the rogue's oversized frame trips ZMQ_MAXMSGSIZE
    topo = make_topology(2, helper=False, network={"latency_ms": 20}, max_message_mb=1)
    target = topo.party("bank_a")
    oversized = bytes(int(1.1 * 1024 * 1024))
    stop = asyncio.Event()

    async def rogue() -> int:
        ctx = zmq.Context()  # blocking sockets used with NOBLOCK: zmq.Again is raised here, not in a future
        sent = 0
        socks = []
        # a stranger, and (with CURVE) one claiming to be a party. Without keys, names are not authenticated:
        # a process that claims bank_b's name first takes its place on bank_a's socket (README, threat model)
        for identity in (b"mallory", b"bank_b") if curve else (b"mallory",):
            s = ctx.socket(zmq.DEALER)
            s.setsockopt(zmq.ROUTING_ID, identity)
            s.setsockopt(zmq.LINGER, 0)
            s.connect(f"tcp://127.0.0.1:{target.port}")
            socks.append(s)
        junk = Header(Kind.DATA, bytes(16), 1, 0, 1, np.dtype("<u8"), (1,), 0, 1)
        cycles = 0
        while not stop.is_set() and sent < 600:
            cycles += 1
            for s in socks:
                big = [[encode_header(junk), oversized]] if cycles <= 3 else []  # a few MB, not hundreds
                for parts in ([os.urandom(HEADER_SIZE), os.urandom(8)],
                              [encode_header(junk), np.zeros(1, np.uint64).tobytes()], [b"garbage"], *big):
                    # never block: against a CURVE server this socket never completes a handshake
                    with contextlib.suppress(zmq.Again):
                        s.send_multipart(parts, flags=zmq.NOBLOCK)
                    sent += 1
            await asyncio.sleep(0.005)
        for s in socks:
            s.close(0)
        ctx.term()
        return sent

    caplog.set_level(logging.WARNING)
    attacker = asyncio.create_task(rogue())
    out = await run_local_async(topo, lambda p: pingpong(p, steps=12), curve=curve)
    stop.set()
    assert await attacker > 0
    assert out["bank_a"].value["token"] == 12 or out["bank_b"].value["token"] == 12
    assert max(o.stats.rounds for o in out.values()) == 12
    if curve:  # the rogue speaks no CURVE: ZeroMQ drops its connections, and says so in our log
        assert "bank_a: dropped a connection that failed the CURVE handshake" in caplog.text


def wait_for_session(proc: subprocess.Popen[str]) -> None:
    """Readiness, not a guessed time: the party logs that its session started (it then runs its program)."""
    for line in proc.stderr or ():
        if "session" in line and "started" in line:
            return
    raise AssertionError(f"the party exited (code {proc.wait()}) before its session started")


# -- a killed party ---------------------------------------------------------------------------------------

def start_parties(config: Path, *args: str, names: tuple[str, ...] = ("bank_a", "bank_b", "helper"),
                  ready: str = "started with") -> dict[str, subprocess.Popen[str]]:
    """One `mpc run` process per party; returns once every party has its session (its log says so), and
    the helper has logged `ready`."""
    procs = {name: subprocess.Popen([sys.executable, "-m", "parties", "run", str(config), "--party", name, *args],
                                    cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for name in names}
    for name, proc in procs.items():
        assert proc.stderr is not None
        seen = []
        wait_for = ready if name == "helper" else "started with"
        while wait_for not in (line := proc.stderr.readline()):  # readiness: a log line, not a delay
            assert line, f"{name} ended before its session started: {''.join(seen)[-500:]}"
            seen.append(line)
    return procs


def stop_all(procs: dict[str, subprocess.Popen[str]]) -> None:
    for p in procs.values():
        if p.poll() is None:
            p.send_signal(signal.SIGKILL)
        p.communicate()  # reaps it and closes its pipes


def assert_stop_naming(procs: dict[str, subprocess.Popen[str]], dead: str, within_s: float, t0: float) -> None:
    """Every other party exits non-zero within `within_s` of t0, its last line naming `dead`, no traceback."""
    for name in procs:
        if name == dead:
            continue
        _, err = procs[name].communicate(timeout=30)
        took = time.monotonic() - t0
        assert procs[name].returncode != 0, err
        assert dead in err.splitlines()[-1] and "interrupted" not in err, err[-500:]
        assert "Traceback" not in err and "unhandled exception" not in err
        assert took < within_s, f"{name} stopped {took:.1f} s after {dead} died"


@pytest.mark.parametrize("how", ["kill", "freeze"])
def test_dead_or_frozen_party_stops_the_others_naming_it(tmp_path: Path, how: str) -> None:
    """SIGKILL (the connection drops) or SIGSTOP (it stays open; ZeroMQ heartbeats go unanswered)."""
    # 3000 hops of 10 ms: still under way whenever the kill lands, however busy this machine is
    procs = start_parties(keyed_config(tmp_path, heartbeat_timeout_s=3), "--program", "pingpong", "-p",
                          "steps=3000", "--latency-ms", "10", "--timeout-s", "8")
    try:
        procs["bank_b"].send_signal(signal.SIGKILL if how == "kill" else signal.SIGSTOP)
        # within the 8 s timeout: heartbeats and disconnects notice it
        assert_stop_naming(procs, "bank_b", 7.5, time.monotonic())
    finally:
        stop_all(procs)


@pytest.mark.parametrize("workers", [1, 2])
def test_party_busy_dealing_stops_at_once_when_a_bank_dies(tmp_path: Path, workers: int) -> None:
    """The helper generating DCF keys for 10^6 comparisons (about 20 s of work; in a worker thread, or in
    2 worker processes) stops within 2 s of learning that a bank died (it learns within a second), as does
    the other bank; and no process the helper started (its workers) outlives it."""
    procs = start_parties(keyed_config(tmp_path, dealer_workers=workers), "--program", "bench", "-p", "ops=lt",
                          "-p", "n=1000000", "-p", "method=dcf", "-p", "repeat=1", ready="generating DCF keys")
    children = _children(procs["helper"].pid)  # read from /proc, nothing signalled
    try:
        assert len([c for c in children.values() if "mpc.workers" in c[1]]) == (workers if workers > 1
                                                                                           else 0), children
        procs["bank_b"].send_signal(signal.SIGKILL)
        assert_stop_naming(procs, "bank_b", 4.0, time.monotonic())
        deadline = time.monotonic() + 2.0  # the helper has exited: its workers were stopped before it did
        while (left := {pid: c for pid, c in children.items() if _same_process(pid, c[0])}) and \
                time.monotonic() < deadline:
            time.sleep(0.05)
        assert not left, f"the helper's processes outlived it: {left}"
    finally:
        stop_all(procs)
        for pid, (started, _) in children.items():  # only if the assertion failed: the helper's own children
            if _same_process(pid, started):
                os.kill(pid, signal.SIGKILL)


def _children(pid: int) -> dict[int, tuple[str, str]]:
    """The processes whose parent is `pid`: their start time (to tell them from a later process given the
    same pid) and command line."""
    found = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, ValueError, IndexError):
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                if int(fields[1]) == pid:
                    cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
                    found[int(entry.name)] = (fields[19], cmdline)
    return found


def _same_process(pid: int, started: str) -> bool:
    """Whether `pid` is still the process that started at `started` (and not a zombie)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return False
    return fields[19] == started and fields[0] != "Z"


def test_a_secret_key_that_is_not_the_partys_own_is_refused_at_start(tmp_path: Path) -> None:
    config = keyed_config(tmp_path)
    cfg = load_topology(config)
    with pytest.raises(ConfigError, match="this secret key is not bank_a's"):
        mpc_keys.load(cfg, "bank_a", cfg.party("bank_b").secret_key)
    t0 = time.monotonic()
    res = subprocess.run([sys.executable, "-m", "parties", "run", str(config), "--party", "bank_a", "--program", "mesh",
                          "--secret-key", str(cfg.party("bank_b").secret_key)], cwd=ROOT, capture_output=True,
                         text=True, timeout=60)
    assert res.returncode == 1 and time.monotonic() - t0 < 8  # at start, not after the 10 s timeout
    assert res.stderr.strip().splitlines() == [
        f"error: {cfg.party('bank_b').secret_key}: this secret key is not bank_a's: its public half is not "
        f"bank_a's public_key in the topology ({cfg.party('bank_a').public_key}); is it bank_a's own .key_secret "
        "file?"]


# -- private values stay with their party ------------------------------------------------------------------

PLANTED = "-31337.77"


def test_a_private_value_in_an_error_never_reaches_another_party(tmp_path: Path) -> None:
    """bank_a's own CSV has a bad amount: bank_a reports it (row, column, value); the others learn only that
    bank_a failed and with which class of error, never the value or bank_a's local path."""
    from parties.fraud import data

    directory = data.write(data.generate(60, seed=5), tmp_path / "data")
    bank_a_csv = directory / "bank_a.csv"
    lines = bank_a_csv.read_text().splitlines()
    fields = lines[4].split(",")
    fields[3] = PLANTED  # row 5, column amount
    lines[4] = ",".join(fields)
    bank_a_csv.write_text("\n".join(lines) + "\n")
    res = subprocess.run([sys.executable, "-m", "parties", "launch", str(keyed_config(tmp_path)), "--program", "fraud",
                          "-p", f"data_dir={directory}", "--json"], cwd=ROOT, capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 1, res.stderr
    summary = res.stderr[res.stderr.index("error: launch failed"):].splitlines()
    assert summary[0].startswith("error: launch failed: bank_a: ") and PLANTED in summary[0]  # its own detail
    others = [line for line in res.stderr.splitlines() if line.startswith(("bank_b", "helper", "  bank_b", "  helper"))]
    others += [json.dumps(p) for p in json.loads(res.stdout)["parties"] if p["name"] != "bank_a"]
    assert len(others) >= 4 and any("bank_a" in line and "DataError" in line for line in others), res.stderr
    for line in others:
        assert "31337" not in line and str(bank_a_csv) not in line and "bank_a.csv" not in line, line


def test_a_party_paused_for_longer_than_the_old_heartbeat_limit_is_waited_for(tmp_path: Path) -> None:
    """A saturated host can starve a party for seconds: with the default heartbeat (15 s) a 4 s pause
    (SIGSTOP, then SIGCONT) does not stop the run. The old fixed limit, 3 x 0.8 s here, did."""
    config = keyed_config(tmp_path, ("bank_a", "bank_b"))
    procs = {
        name: subprocess.Popen([sys.executable, "-m", "parties", "run", str(config), "--party", name, "--program",
                                "pingpong", "-p", "steps=400", "--latency-ms", "10", "--timeout-s", "8"],
                               cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for name in ("bank_a", "bank_b")
    }
    try:
        wait_for_session(procs["bank_b"])
        procs["bank_b"].send_signal(signal.SIGSTOP)
        time.sleep(4.0)  # the pause under test, not a wait for readiness
        procs["bank_b"].send_signal(signal.SIGCONT)
        for name, p in procs.items():
            _, err = p.communicate(timeout=30)
            assert p.returncode == 0, f"{name}: {err[-800:]}"
    finally:
        for p in procs.values():
            if p.poll() is None:
                p.send_signal(signal.SIGCONT)
                p.send_signal(signal.SIGKILL)
            p.communicate()


# -- frames a party must reject ---------------------------------------------------------------------------

@pytest.fixture
async def transport(make_topology):
    """bank_a's transport, not started: frames are fed to its validation directly."""
    topo = make_topology(3, helper=False)
    t = ZmqTransport(topo, "bank_a", Stats(), timeout_s=5)
    t.session = b"S" * 16
    t._hello_done = asyncio.get_running_loop().create_future()
    t._bye_done = asyncio.get_running_loop().create_future()
    return t


def frame(seq: int, *, session: bytes = b"S" * 16, sender: int = 1, op: int = 7, step: int = 0,
          payload: np.ndarray | None = None, kind: Kind = Kind.DATA) -> tuple[bytes, bytes]:
    payload = np.arange(3, dtype=np.uint64) if payload is None else payload
    h = Header(kind, session, op, step, sender, payload.dtype, payload.shape, 0, seq)
    return encode_header(h), payload.tobytes()


async def test_valid_frame_is_buffered_by_key(transport: ZmqTransport) -> None:
    assert transport._handle_frame("bank_b", *frame(0))
    msg = await transport.recv("bank_b", 7, 0, tag="t")
    assert msg.array.tolist() == [0, 1, 2]


async def test_stale_session_is_dropped(transport: ZmqTransport, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    assert not transport._handle_frame("bank_b", *frame(0, session=b"O" * 16))
    assert "stale session" in caplog.text
    assert transport.failure is None and not transport._inbox


async def test_replayed_or_lost_messages_abort(transport: ZmqTransport) -> None:
    transport._handle_frame("bank_b", *frame(0))
    transport._handle_frame("bank_b", *frame(0, op=8))  # the same sequence number again: a replay
    assert transport.failure is not None and "lost or replayed" in str(transport.failure)
    assert transport.failure.peer == "bank_b"


async def test_duplicate_key_aborts(transport: ZmqTransport) -> None:
    transport._handle_frame("bank_b", *frame(0))
    transport._handle_frame("bank_b", *frame(1))  # next sequence number, same op and step
    assert "twice" in str(transport.failure)


async def test_sender_mismatch_and_malformed_are_dropped(transport: ZmqTransport) -> None:
    assert not transport._handle_frame("bank_b", *frame(0, sender=2))  # claims bank_c's index
    header, payload = frame(0)
    assert not transport._handle_frame("bank_b", header, payload[:-1])  # payload shorter than claimed
    assert not transport._handle_frame("bank_b", header[:-1], payload)  # truncated header
    assert transport.failure is None and not transport._inbox
    assert transport._handle_frame("bank_b", *frame(0))  # the link is still usable


async def test_a_large_frame_in_pieces_is_delivered_once_whole(transport: ZmqTransport) -> None:
    limit = transport.message_limit
    big = np.arange(limit // 4, dtype=np.uint64)  # two messages' worth
    header, payload = frame(0, payload=big)
    wire = header + payload
    pieces = [wire[lo:lo + limit] for lo in range(0, len(wire), limit)]
    assert len(pieces) == 3
    for piece in pieces[:-1]:
        transport._handle_message("bank_b", memoryview(piece))
        assert not transport._inbox  # nothing before the last piece
        assert transport.inbox.buffered["bank_b"] == big.nbytes  # but counted against the bound from the first
    transport._handle_message("bank_b", memoryview(pieces[-1]))
    msg = await transport.recv("bank_b", 7, 0, tag="t")
    np.testing.assert_array_equal(msg.array, big)
    assert transport.failure is None


async def test_a_bad_piece_drops_the_frame_and_the_next_frame_is_seen_as_lost(transport: ZmqTransport) -> None:
    limit = transport.message_limit
    header, payload = frame(0, payload=np.arange(limit // 4, dtype=np.uint64))
    wire = header + payload
    transport._handle_message("bank_b", memoryview(wire[:limit]))
    transport._handle_message("bank_b", memoryview(wire[limit:2 * limit - 8]))  # short: not the last piece
    assert transport.failure is None and not transport._inbox and not transport._partial
    assert transport.inbox.buffered["bank_b"] == 0
    transport._handle_message("bank_b", memoryview(b"".join(frame(1, op=8))))  # the sender's next frame
    assert transport.failure is not None and "lost or replayed" in str(transport.failure)


async def test_malformed_or_oversized_hello_is_dropped(transport: ZmqTransport,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    garbage = np.frombuffer(b"{not json", dtype=np.uint8)
    huge = np.frombuffer(b'{"a": "' + b"x" * 70_000 + b'"}', dtype=np.uint8)
    assert transport._handle_frame("bank_b", *frame(0, kind=Kind.HELLO, payload=garbage))
    assert transport._handle_frame("bank_b", *frame(1, kind=Kind.HELLO, payload=huge))
    assert caplog.text.count("malformed hello") == 2
    assert transport.failure is None and "bank_b" not in transport._hello
    settings = np.frombuffer(b'{"frac_bits": "20"}', dtype=np.uint8)  # well formed, but not ours
    transport._handle_frame("bank_b", *frame(2, kind=Kind.HELLO, payload=settings))
    assert isinstance(transport.failure, ProtocolViolation) and "frac_bits: - here, 20 at bank_b" in str(
        transport.failure)


async def test_wrong_dtype_or_shape_is_a_protocol_violation(transport: ZmqTransport) -> None:
    transport._handle_frame("bank_b", *frame(0))
    with pytest.raises(Exception, match="shape"):
        await transport.recv("bank_b", 7, 0, tag="t", shape=(4,))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.binary(max_size=2 * HEADER_SIZE), st.binary(max_size=64),
                          st.sampled_from(["bank_b", "bank_c"])), max_size=8),
       st.booleans())
def test_fuzzed_frames_never_crash_or_deliver_garbage(frames: list[tuple[bytes, bytes, str]], prefix: bool) -> None:
    """Random frames (after a valid one, or not) never raise, and anything accepted is self-consistent."""
    from mpc.config import localhost_topology

    async def feed() -> None:
        t = ZmqTransport(localhost_topology(3, helper=False), "bank_a", Stats(), timeout_s=5)
        t.session = b"S" * 16
        t._hello_done = asyncio.get_running_loop().create_future()
        t._bye_done = asyncio.get_running_loop().create_future()
        if prefix:
            assert t._handle_frame("bank_b", *frame(0))
        for header, payload, peer in frames:
            t._handle_frame(peer, header, payload)
        for (sender, _, _), fut in t._inbox.items():
            if fut.done() and fut.exception() is None:
                assert sender in (1, 2) and fut.result().array.dtype.kind in "uifb"

    asyncio.run(feed())


def test_party_runs_keep_working_after_fuzzing(make_topology) -> None:
    async def program(party: Party) -> int:
        return party.index

    assert {o.value for o in run_local(make_topology(2), program).values()} == {0, 1, 2}


# -- the whole header -> payload -> inbox path, and a real keyed peer sending what decode must refuse -----

RAW = struct.Struct(f"<2sBB16sQIHBBIQQ{MAX_NDIM}Q")


def raw_frame(shape: tuple[int, ...], *, seq: int, session: bytes = b"S" * 16, sender: int = 1, code: int = 1,
              kind: int = int(Kind.DATA), payload: bytes = b"") -> tuple[bytes, bytes]:
    """A header packed by hand, so that encode_header's own checks cannot stop a malformed one."""
    slots = (*shape, *(0,) * (MAX_NDIM - len(shape)))[:MAX_NDIM]
    return RAW.pack(b"MP", VERSION, kind, session, 7, 0, sender, code, len(shape), 0, seq, 0, *slots), payload


dims = st.one_of(st.integers(0, 3), st.sampled_from([2**32, 2**62, 2**63, 2**64 - 1]))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.lists(dims, max_size=MAX_NDIM + 1).map(tuple), st.integers(0, 9), st.integers(0, 6),
                          st.integers(0, 64), st.integers(0, 3)), min_size=1, max_size=6),
       st.booleans())
def test_fuzzed_headers_reach_the_inbox_or_are_dropped(frames: list[tuple[tuple[int, ...], int, int, int, int]],
                                                       early: bool) -> None:
    """Shapes, dims, sizes, dtypes and kinds: before or after the session is agreed, every frame is dropped,
    stops the run naming its sender, or lands consistent in the inbox; nothing raises, and the link works on."""
    from mpc.config import localhost_topology

    async def feed() -> None:
        t = ZmqTransport(localhost_topology(2, helper=False), "bank_a", Stats(), timeout_s=5)
        t.session = _NO_SESSION if early else b"S" * 16
        t._hello_done = asyncio.get_running_loop().create_future()
        t._bye_done = asyncio.get_running_loop().create_future()
        for shape, code, kind, size, seq in frames:
            header, payload = raw_frame(shape, seq=seq, code=code, kind=kind, payload=bytes(size))
            t._handle_frame("bank_b", header, payload)
            t._handle_message("bank_b", memoryview(header + payload))
        if early:  # what start() does once every hello is in
            t.session = b"S" * 16
            for peer, header, array in t._early:
                t._accept_data(peer, header, array)
        assert t.failure is None or t.failure.peer == "bank_b"
        for fut in t._inbox.values():
            if fut.done() and fut.exception() is None:
                assert fut.result().array.dtype.kind in "uifb"
        if t.failure is None:
            seq = t._next_seq_in["bank_b"]
            assert t._handle_frame("bank_b", *frame(seq, op=99))  # the link still works

    asyncio.run(feed())


@pytest.mark.parametrize("when", ["before the session", "mid-run"])
async def test_keyed_peer_sending_an_overflowing_empty_shape_is_dropped(tmp_path: Path, when: str,
                                                                       caplog: pytest.LogCaptureFixture) -> None:
    """bank_b holds a real key and sends a DATA header of shape (0, 2**63), which numpy cannot build: dropped
    with a warning naming bank_b, and the run goes on (before: the victim failed, or its reader died)."""
    topo = load_topology(keyed_config(tmp_path, ("bank_a", "bank_b")))
    caplog.set_level(logging.WARNING)

    def inject(party: Party | ZmqTransport) -> None:
        t = party if isinstance(party, ZmqTransport) else party._transport
        header, _ = raw_frame((0, 2**63), seq=t._next_seq_out["bank_a"], session=t.session, sender=1)
        t._queue_frames("bank_a", header, memoryview(b""))  # its sequence number is not taken: the link goes on
        t._flush()  # a message of its own (a bad frame drops the rest of its message: a sequence gap, an abort)

    async def program(party: Party) -> dict[str, object]:
        if party.name == "bank_b" and when == "mid-run":
            inject(party)
        return await mesh(party)

    original_start = ZmqTransport.start

    async def start(self: ZmqTransport) -> bytes:
        if self.me == "bank_b" and when == "before the session":
            self._links = {}
            task = asyncio.create_task(original_start(self))
            while "bank_a" not in self._links:  # the sockets exist once start() has created its links
                await asyncio.sleep(0.001)
            inject(self)
            return await task
        return await original_start(self)

    with mock.patch.object(ZmqTransport, "start", start):
        out = await run_local_async(topo, program)
    assert all(o.value["checked"] for o in out.values())
    assert "bank_a: dropped a frame from bank_b: claimed shape (0, 9223372036854775808) exceeds" in caplog.text


async def test_buffered_bytes_from_a_peer_are_bounded(make_topology) -> None:
    """Messages under op ids nobody awaits: over max_buffered_mb the run stops naming the sender."""
    topo = make_topology(2, helper=False, max_message_mb=1, max_buffered_mb=4, timeout_s=20)

    async def program(party: Party) -> None:
        op = party.new_op("flood")
        if party.name == "bank_b":
            for step in range(40):  # 40 MiB under keys bank_a never awaits
                party.send("bank_a", op, np.zeros(2**17, dtype=np.uint64), step=step)
        await party.recv("bank_b" if party.name == "bank_a" else "bank_a", party.new_op("never"))

    t0 = time.monotonic()
    a, b = await asyncio.gather(run_party(topo, "bank_a", program), run_party(topo, "bank_b", program),
                                return_exceptions=True)
    assert time.monotonic() - t0 < 10  # not the 20 s timeout
    assert isinstance(a, ProtocolViolation) and a.peer == "bank_b", a
    assert "bank_b sent 5 MiB that this party has not used yet, over the max_buffered_mb bound of 4 MiB" in str(a)
    assert isinstance(b, PeerAborted) and "max_buffered_mb" in str(b)


async def test_abort_before_the_session_is_heard(transport: ZmqTransport) -> None:
    """A party that failed before agreeing the session (say, its start timed out) still stops the others."""
    reason = np.frombuffer(b"bank_b stopped because of something", dtype=np.uint8)
    transport._handle_frame("bank_b", *frame(5, kind=Kind.ABORT, session=_NO_SESSION, payload=reason))
    assert isinstance(transport.failure, PeerAborted) and "stopped because of something" in str(transport.failure)


async def test_stale_session_is_dropped_whatever_its_sequence(transport: ZmqTransport,
                                                               caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    assert not transport._handle_frame("bank_b", *frame(17, session=b"O" * 16))  # a previous session's frame
    assert "stale session" in caplog.text and transport.failure is None
    assert transport._handle_frame("bank_b", *frame(0))  # and it took no sequence number

def test_work_in_worker_threads_is_abandoned_once_the_run_stops(make_topology) -> None:
    """Blocking work (say, dealing) in worker threads: once a peer fails, queued work never starts and
    the party does not wait for work under way; long work sees the stop signal between its chunks."""
    import threading

    from mpc.runtime import MAX_WORKERS, PartyFailed

    started, chunks_after_stop = [], []
    release = threading.Event()

    def chunked(party: Party) -> None:
        started.append(1)
        while not party.stop.is_set():  # one chunk of work, then look again
            release.wait(0.01)
        chunks_after_stop.append(1)

    async def program(party: Party) -> None:
        op = party.new_op("x")
        if party.name == "bank_b":
            await asyncio.sleep(0.2)
            raise ValueError("bank_b stops")
        if party.name == "bank_a":
            await asyncio.gather(*(party.run_in_worker(chunked, party) for _ in range(3 * MAX_WORKERS)))
        await party.recv("bank_b", op)

    t0 = time.monotonic()
    with pytest.raises(PartyFailed, match="bank_b stops"):
        run_local(make_topology(2), program)
    assert time.monotonic() - t0 < 5
    assert len(started) <= MAX_WORKERS  # the queued rest never started
    deadline = time.monotonic() + 2  # the run did not wait for them: they see the signal on their own
    while len(chunks_after_stop) < len(started) and time.monotonic() < deadline:
        release.wait(0.01)
    assert len(chunks_after_stop) == len(started)  # every running one saw the signal and gave up

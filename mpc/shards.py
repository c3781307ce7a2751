"""A party over many workers (shards): the plumbing, below any protocol (docs/sharding.md).

With `workers: N` in the topology, each party is a coordinator plus N shard workers. Shard i of every
party forms its own session with shard i of the others (its own authenticated links, on the ports of
`shard_topology(topo, i)`), so a shard is an ordinary party process of an ordinary session. What the
shards of ONE party exchange among themselves is not secure traffic: they hold that party's own shares
and data, so the coordinator moves them freely (`Rendezvous`: sum, concatenate, broadcast) over a
private channel of the party's host (a ZeroMQ ipc socket in a directory only the party's user can read),
or through Ray's object store (parties/ray_shards.py). Nothing here ever sends to another party.

The coordinator's supervisor (`supervise`) starts the workers, forwards their logs prefixed with the
shard, reads each one's result, and stops every shard as soon as one fails, naming the party and shard.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import zmq
import zmq.asyncio

from mpc.config import Topology
from mpc.records import PartyRecord
from mpc.transport import PeerError

log = logging.getLogger("mpc.shards")

KINDS = ("sum", "concat", "broadcast")
GRACE_S = 5.0  # SIGTERM, then SIGKILL after this long
# A shard that stopped because of a peer: this long its sibling shards may take to stop by themselves (a peer
# party's coordinator stops all its shards; each of ours notices in its own session within about a second).
SETTLE_S = 4.0
# Fixed-size numeric dtypes a shard may hand to its party's other shards (no objects, nothing pickled).
_DTYPES = frozenset("biuf")


class ShardFailed(PeerError):
    """A shard of a sharded party failed. `peer` is the party at fault (this party's own name when one of
    its own shards failed by itself), `shard` the shard whose failure stopped the party."""

    def __init__(self, party: str, shard: int, peer: str, message: str):
        self.party = party
        self.shard = shard
        super().__init__(peer, message)


class ShardMismatch(RuntimeError):
    """The shards of one party called a collective differently (a program that is not SPMD over shards)."""


# -- which shard a process is ----------------------------------------------------------------------

class ShardLink(Protocol):
    """How a shard reaches its party's other shards: `exchange` hands this shard's contribution to a
    collective and returns the combined array (None where the collective gives this shard nothing)."""

    async def exchange(self, key: int, kind: str, arg: int, array: np.ndarray | None,
                       depth: int) -> tuple[np.ndarray | None, int]: ...


@dataclass
class ShardInfo:
    """This process's place in its party: shard `index` of `count`. Collectives take their key from
    `next_key()` when called (before any await), so every shard of the party, running the same program,
    gives the same collective the same key, whatever the event loop's order."""

    index: int = 0
    count: int = 1
    link: ShardLink | None = None
    _next: int = field(default=0, repr=False)

    def next_key(self) -> int:
        self._next += 1
        return self._next

    @property
    def sharded(self) -> bool:
        return self.count > 1


def row_range(n: int, index: int, count: int) -> tuple[int, int]:
    """Rows [lo, hi) of shard `index` when n rows are split into `count` contiguous blocks whose sizes
    differ by at most one (the same split on every party: it depends on public n only)."""
    if not 0 <= index < count:
        raise ValueError(f"shard {index} of {count} does not exist")
    return n * index // count, n * (index + 1) // count


def shard_topology(topo: Topology, shard: int) -> Topology:
    """The session of shard `shard`: the same parties, each on its shard port (and bind port)."""
    if not 0 <= shard < topo.workers:
        raise ValueError(f"shard {shard} of {topo.workers} does not exist")
    parties = []
    for p in topo.parties:
        port = topo.shard_port(p.name, shard)
        update: dict[str, Any] = {"port": p.port + port - p.listen_address[1]}
        if p.ray is not None and p.ray.hosts:  # its shards on the party's Ray nodes, round robin
            update["host"] = p.ray.hosts[shard % len(p.ray.hosts)]
        if p.bind is not None:
            update["bind"] = f"{p.listen_address[0]}:{port}"
        parties.append(p.model_copy(update=update))
    return topo.model_copy(update={"parties": tuple(parties), "workers": 1})


def agreement(shard: int, count: int) -> dict[str, str]:
    """What the shard sessions' hellos add: which shard of how many (a party with another number of
    workers, or a shard dialling the wrong shard's port, stops the session naming the difference)."""
    return {"shard": f"{shard} of {count}"}


# -- combining the shards' contributions -----------------------------------------------------------

def combine(kind: str, arg: int, arrays: Sequence[np.ndarray | None]) -> np.ndarray | None:
    """The result of a collective from every shard's contribution, in shard order.

    sum: elementwise, wrapping mod 2^64 for ring shares (uint64); concat: along axis `arg`; broadcast: shard
    `arg`'s array. Contributions are all arrays or all None (a shard with nothing, e.g. the helper's).
    `kind` may carry a qualifier after a slash (`sum/frac16`): shards must agree on all of it."""
    kind = kind.split("/")[0]
    if kind not in KINDS:
        raise ShardMismatch(f"unknown collective {kind!r}")
    if kind == "broadcast":
        if not 0 <= arg < len(arrays):
            raise ShardMismatch(f"broadcast from shard {arg}, but the party has {len(arrays)} shards")
        return arrays[arg]
    given = [a is not None for a in arrays]
    if not any(given):
        return None
    if not all(given):
        raise ShardMismatch(f"{kind}: shards {', '.join(str(i) for i, g in enumerate(given) if not g)} gave no "
                            "array where the others did")
    present = [a for a in arrays if a is not None]
    dtypes = {a.dtype.str for a in present}
    if len(dtypes) > 1:
        raise ShardMismatch(f"{kind}: the shards gave arrays of different types ({', '.join(sorted(dtypes))})")
    if kind == "sum":
        shapes = {a.shape for a in present}
        if len(shapes) > 1:
            raise ShardMismatch(f"sum: the shards gave arrays of different shapes {sorted(shapes)}")
        with np.errstate(over="ignore"):
            return np.sum(np.stack(present), axis=0, dtype=present[0].dtype)
    try:
        return np.concatenate(present, axis=arg)
    except (ValueError, np.exceptions.AxisError) as exc:
        raise ShardMismatch(f"concat: {exc}") from None


@dataclass
class _Pending:
    kind: str
    arg: int
    arrays: list[np.ndarray | None]
    depths: list[int]
    arrived: list[bool]
    done: asyncio.Future[tuple[np.ndarray | None, int]]


class Rendezvous:
    """Where the shards of one party meet for each collective: it waits for every shard's contribution
    under a key, combines them once, and gives each shard the result (and the deepest shard's depth)."""

    def __init__(self, count: int):
        self.count = count
        self._pending: dict[int, _Pending] = {}

    async def exchange(self, shard: int, key: int, kind: str, arg: int, array: np.ndarray | None,
                       depth: int) -> tuple[np.ndarray | None, int]:
        if not 0 <= shard < self.count:
            raise ShardMismatch(f"no shard {shard} in a party of {self.count}")
        p = self._pending.get(key)
        if p is None:
            fut = asyncio.get_running_loop().create_future()
            p = self._pending[key] = _Pending(kind, arg, [None] * self.count, [0] * self.count,
                                              [False] * self.count, fut)
        if (p.kind, p.arg) != (kind, arg) or p.arrived[shard]:
            error = ShardMismatch(f"collective {key}: shard {shard} called {kind}({arg}) where another shard called "
                                  f"{p.kind}({p.arg}) (or called it twice): the shards must run the same program")
            if not p.done.done():
                p.done.set_exception(error)
            raise error
        p.arrays[shard], p.depths[shard], p.arrived[shard] = array, depth, True
        if all(p.arrived):
            del self._pending[key]
            try:
                p.done.set_result((combine(kind, arg, p.arrays), max(p.depths)))
            except ShardMismatch as exc:
                p.done.set_exception(exc)
        return await asyncio.shield(p.done)


class LocalLink:
    """Shard `shard`'s link to a rendezvous in its own process (every shard in one event loop: tests)."""

    def __init__(self, rendezvous: Rendezvous, shard: int):
        self.rendezvous = rendezvous
        self.shard = shard

    async def exchange(self, key: int, kind: str, arg: int, array: np.ndarray | None,
                       depth: int) -> tuple[np.ndarray | None, int]:
        return await self.rendezvous.exchange(self.shard, key, kind, arg, array, depth)


# -- the party-local channel on one host (ZeroMQ ipc) ----------------------------------------------

def _pack(header: dict[str, Any], array: np.ndarray | None) -> list[bytes]:
    if array is None:
        return [json.dumps({**header, "none": True}).encode(), b""]
    array = np.require(array, requirements="C")  # (ascontiguousarray would make a 0-d array 1-d)
    if array.dtype.kind not in _DTYPES:
        raise TypeError(f"a shard can hand its party's other shards numbers only, not {array.dtype}")
    return [json.dumps({**header, "dtype": array.dtype.str, "shape": list(array.shape)}).encode(),
            array.tobytes()]


def _unpack(frames: Sequence[bytes]) -> tuple[dict[str, Any], np.ndarray | None]:
    header = json.loads(frames[0])
    if header.get("none"):
        return header, None
    dtype = np.dtype(header["dtype"])
    if dtype.kind not in _DTYPES or dtype.hasobject:
        raise ShardMismatch(f"a shard sent an array of type {dtype}")
    shape = tuple(int(d) for d in header["shape"])
    return header, np.frombuffer(frames[1], dtype=dtype).reshape(shape).copy()


class Hub:
    """The coordinator's end of its shards' channel: a ROUTER on an ipc socket in a private directory."""

    def __init__(self, count: int):
        self.rendezvous = Rendezvous(count)
        self._dir = tempfile.mkdtemp(prefix="mpc-shards-")  # mode 0700: this user's processes only
        self.address = f"ipc://{Path(self._dir) / 'hub'}"
        self._ctx = zmq.asyncio.Context()
        self._sock = self._ctx.socket(zmq.ROUTER)
        self._sock.setsockopt(zmq.LINGER, 0)
        self._sock.bind(self.address)
        self._task: asyncio.Task[None] | None = None
        self._replies: set[asyncio.Task[None]] = set()

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._serve())

    async def _serve(self) -> None:
        while True:
            ident, *frames = await self._sock.recv_multipart()
            try:
                header, array = _unpack(frames)
                shard = int(header["shard"])
            except (ValueError, KeyError, TypeError, ShardMismatch) as exc:
                log.warning("shards: dropped a malformed message from a shard: %s", exc)
                continue
            task = asyncio.get_running_loop().create_task(self._answer(ident, shard, header, array))
            self._replies.add(task)
            task.add_done_callback(self._replies.discard)

    async def _answer(self, ident: bytes, shard: int, header: dict[str, Any], array: np.ndarray | None) -> None:
        key = int(header["key"])
        try:
            out, depth = await self.rendezvous.exchange(shard, key, str(header["kind"]), int(header["arg"]), array,
                                                        int(header["depth"]))
            reply = _pack({"key": key, "depth": depth}, out)
        except ShardMismatch as exc:
            reply = _pack({"key": key, "error": str(exc)}, None)
        await self._sock.send_multipart([ident, *reply])

    def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
        for task in list(self._replies):
            task.cancel()
        self._sock.close(linger=0)
        self._ctx.term()
        with contextlib.suppress(OSError):
            for entry in Path(self._dir).iterdir():
                entry.unlink()
            Path(self._dir).rmdir()


class HubLink:
    """A shard worker's end of its party's channel (a DEALER to the coordinator's hub)."""

    def __init__(self, address: str, shard: int):
        self.shard = shard
        self._ctx = zmq.asyncio.Context()
        self._sock = self._ctx.socket(zmq.DEALER)
        self._sock.setsockopt(zmq.LINGER, 0)
        self._sock.connect(address)
        self._waiting: dict[int, asyncio.Future[tuple[np.ndarray | None, int]]] = {}
        self._reader: asyncio.Task[None] | None = None

    async def exchange(self, key: int, kind: str, arg: int, array: np.ndarray | None,
                       depth: int) -> tuple[np.ndarray | None, int]:
        if self._reader is None:
            self._reader = asyncio.get_running_loop().create_task(self._read())
        fut = self._waiting[key] = asyncio.get_running_loop().create_future()
        await self._sock.send_multipart(_pack({"shard": self.shard, "key": key, "kind": kind, "arg": arg,
                                               "depth": depth}, array))
        return await fut

    async def _read(self) -> None:
        while True:
            header, array = _unpack(await self._sock.recv_multipart())
            fut = self._waiting.pop(int(header["key"]), None)
            if fut is None or fut.done():
                continue
            if "error" in header:
                fut.set_exception(ShardMismatch(str(header["error"])))
            else:
                fut.set_result((array, int(header["depth"])))

    def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
        self._sock.close(linger=0)
        self._ctx.term()


# -- supervising a party's shard workers as local processes ----------------------------------------

@dataclass
class WorkerExit:
    """What became of one shard worker: its exit code and the record it printed (None if it printed none)."""

    shard: int
    returncode: int
    record: PartyRecord | None
    pid: int | None = None
    stopped: bool = False  # stopped by the coordinator after another shard failed


def describe_exit(w: WorkerExit) -> str:
    if w.record is not None and not w.record.ok:
        return w.record.error or "failed"
    if w.returncode < 0:
        try:
            name = signal.Signals(-w.returncode).name
        except ValueError:
            name = f"signal {-w.returncode}"
        return f"died (killed by {name})"
    return f"exited with code {w.returncode} without a result"


def failure(party: str, exits: Sequence[WorkerExit]) -> ShardFailed | None:
    """The party's failure from its shards' exits (None if every shard finished): the first shard that
    failed by itself (died, or its own error) before one that stopped because a peer failed."""
    failed = [w for w in exits if w.returncode != 0 or w.record is None or not w.record.ok]
    if not failed:
        return None

    def blame(w: WorkerExit) -> tuple[int, int]:
        """Its own failure first; then a peer's shard lost (it died or failed by itself); then a peer's shard
        that aborted (its coordinator may have stopped it because of another shard); last, one this
        coordinator stopped that says nothing more than that."""
        if w.stopped and (w.record is None or w.record.error_class == "CancelledError"):
            return 3, w.shard
        if w.record is None or w.record.cause in (None, party):
            return 0, w.shard
        return (2 if w.record.error_class == "PeerAborted" else 1), w.shard

    first = min(failed, key=blame)
    cause = first.record.cause if first.record is not None and first.record.cause else party
    what = describe_exit(first).removeprefix(f"{party}: ")
    where = f"{party} shard {first.shard} of {len(exits)}"
    if cause != party:  # shard i's session is with the other parties' shard i
        where += f" (its session with {cause}'s shard {first.shard})"
    return ShardFailed(party, first.shard, cause, f"{where}: {what}")


async def _pump(stream: asyncio.StreamReader, prefix: str, sink: Any) -> None:
    while line := await stream.readline():
        text = line.decode("utf-8", "replace").rstrip("\n")
        if sink is not None:
            print(f"{prefix}{text}", file=sink, flush=True)


async def _one(shard: int, argv: Sequence[str], env: dict[str, str], sink: Any,
               procs: dict[int, asyncio.subprocess.Process]) -> WorkerExit:
    proc = await asyncio.create_subprocess_exec(*argv, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE, env=env)
    procs[shard] = proc
    assert proc.stdout is not None and proc.stderr is not None
    out = asyncio.create_task(proc.stdout.read())
    await _pump(proc.stderr, f"[shard {shard}] ", sink)
    stdout = await out
    code = await proc.wait()
    record = None
    lines = stdout.decode("utf-8", "replace").strip().splitlines()
    if lines:
        with contextlib.suppress(ValueError):
            record = PartyRecord.from_json(lines[-1])
    return WorkerExit(shard, code, record, proc.pid)


async def _stop(procs: Sequence[asyncio.subprocess.Process], stopped: set[int]) -> None:
    """SIGTERM every worker still running (a shard then aborts its session cleanly), SIGKILL after GRACE_S."""
    alive = [p for p in procs if p.returncode is None]
    for p in alive:
        stopped.add(p.pid)
        with contextlib.suppress(ProcessLookupError):
            p.send_signal(signal.SIGTERM)
    try:
        await asyncio.wait_for(asyncio.gather(*(p.wait() for p in alive)), GRACE_S)
    except TimeoutError:
        for p in alive:
            if p.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    p.kill()
        await asyncio.gather(*(p.wait() for p in alive))


async def supervise(argvs: Sequence[Sequence[str]], env: dict[str, str] | None = None,
                    sink: Any = None) -> list[WorkerExit]:
    """Run one process per shard (argv i: shard i); as soon as one fails, stop the others (they abort
    their sessions, so every other party's same shard stops too). Every process is waited for: none is
    left behind, also when this coordinator is cancelled."""
    procs: dict[int, asyncio.subprocess.Process] = {}
    full_env = {**os.environ, **(env or {})}
    tasks = [asyncio.create_task(_one(i, argv, full_env, sink, procs)) for i, argv in enumerate(argvs)]
    stopped: set[int] = set()
    pending: set[asyncio.Task[WorkerExit]] = set(tasks)
    try:
        while pending:
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            bad = [t for t in done if t.exception() is not None or not _ok(t.result())]
            if bad and pending:
                if all(_peer_caused(t.result()) for t in bad if t.exception() is None) and all(
                        t.exception() is None for t in bad):
                    # a peer failed: its coordinator stops all its shards, so ours see it by themselves, each
                    # naming what it saw (its own session's peer); give them the time to
                    _, pending = await asyncio.wait(pending, timeout=SETTLE_S)
                await _stop(list(procs.values()), stopped)
    except BaseException:
        await _stop(list(procs.values()), stopped)
        await asyncio.gather(*tasks, return_exceptions=True)
        raise
    exits = []
    for i, t in enumerate(tasks):
        exc = t.exception()
        if exc is not None:
            exits.append(WorkerExit(i, -1, PartyRecord("?", "?", ok=False, error=f"could not start: {exc}")))
        else:
            w = t.result()
            w.stopped = w.pid in stopped and not _ok(w)
            exits.append(w)
    return exits


def _peer_caused(w: WorkerExit) -> bool:
    return w.record is not None and w.record.cause not in (None, w.record.name)


def _ok(w: WorkerExit) -> bool:
    return w.returncode == 0 and w.record is not None and w.record.ok


def merge_counters(records: Sequence[PartyRecord]) -> dict[str, Any]:
    """A sharded party's counters: messages and bytes summed over its shards, rounds and wall time the
    largest shard's (they run side by side), each shard's session id and its own summary under `shards`."""
    out: dict[str, Any] = {}
    for key in ("messages", "bytes_sent", "messages_received", "bytes_received", "transport_sends"):
        out[key] = sum(int(r.counters.get(key, 0)) for r in records)
    out["rounds"] = max(int(r.counters.get("rounds", 0)) for r in records)
    out["wall_s"] = max(float(r.counters.get("wall_s", 0.0)) for r in records)
    phases: dict[str, dict[str, int]] = {}
    for r in records:
        for phase, counts in (r.counters.get("phases") or {}).items():
            into = phases.setdefault(phase, {})
            for k, v in counts.items():
                into[k] = into.get(k, 0) + int(v)
    out["phases"] = phases
    out["session_id"] = records[0].counters.get("session_id")
    out["shards"] = [{"shard": i, **{k: r.counters.get(k) for k in ("rounds", "bytes_sent", "wall_s", "session_id")}}
                     for i, r in enumerate(records)]
    return out

"""Runtime: a party's identity, its session, deterministic op ids, and running a program on every party.

A program is an async function `program(party)` that every party runs (SPMD). Messages are keyed by op
ids taken from a deterministic counter at call time, before any `await` (MPyC's rule), so all parties
agree on every key however the event loop interleaves tasks. An operation's sub-messages are told apart
by their step number under the operation's one id.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import threading
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np

from mpc.config import Topology
from mpc.keys import CurveKeys
from mpc.keys import ephemeral as ephemeral_keys
from mpc.keys import load as load_keys
from mpc.library import library_agreement
from mpc.links import AgreedLinks, agree_links
from mpc.memory import RssMonitor
from mpc.shards import ShardInfo
from mpc.stats import Stats
from mpc.transport import (
    MemoryNetwork,
    Message,
    PeerAborted,
    PeerError,
    PeerGone,
    Transport,
    TransportKind,
    ZmqTransport,
)
from mpc.workers import WorkerPool

log = logging.getLogger("mpc.runtime")

T = TypeVar("T")
# Worker threads a party runs blocking work in at once (asyncio's default executor size).
MAX_WORKERS = min(32, (os.cpu_count() or 1) + 4)


class Stopped(RuntimeError):
    """Raised in long local work once its run has stopped (a peer failed, the program raised, an interrupt)."""


class StopSignal:
    """Set once when a run stops. Work in worker threads checks it between chunks and gives up, so a
    party stops promptly whatever it is computing; any number of threads (or pools) may share it."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self.reason: BaseException | None = None

    def set(self, reason: BaseException) -> None:
        if not self._event.is_set():
            self.reason = reason
            self._event.set()

    def is_set(self) -> bool:
        return self._event.is_set()

    def check(self) -> None:
        """Raise `Stopped` if the run has stopped: call between chunks of long work."""
        if self._event.is_set():
            raise Stopped(f"stopped: {type(self.reason).__name__}")


@dataclass(frozen=True, slots=True)
class Op:
    """A message key family: `id` goes on the wire, `label` names the operation in stats and errors."""

    id: int
    label: str

    def child(self, index: int, label: str | None = None) -> Op:
        """A deterministic sub-id: same parent and index give the same id on every party (protocols that
        issue their later steps from a task, after the program has moved on: the sort)."""
        h = hashlib.blake2b(self.id.to_bytes(8, "little") + index.to_bytes(8, "little"), digest_size=8)
        return Op(int.from_bytes(h.digest(), "little"), label or self.label)


class Party:
    """One party's context in a run: who it is, who the others are, and how to talk to them."""

    def __init__(self, topology: Topology, name: str, transport: Transport, stats: Stats,
                 stop: StopSignal | None = None, workers: WorkerPool | None = None,
                 links: AgreedLinks | None = None, shard: ShardInfo | None = None):
        spec = topology.party(name)
        self.topology = topology
        self.name = name
        self.index = topology.index(name)
        self.role = spec.role
        self.stats = stats
        self.session_id = transport.session.hex()
        self.compute_parties: list[str] = [p.name for p in topology.compute_parties]
        helper = topology.helper
        self.helper: str | None = helper.name if helper else None
        self.peers: list[str] = [n for n in topology.names if n != name]
        self._transport = transport
        self._next_op = 1
        self.stop = stop or StopSignal()
        self._slots = asyncio.Semaphore(MAX_WORKERS)
        # The helper's worker processes for heavy dealing (mpc/workers.py), if it has more than one; they
        # live as long as this run (run_on stops them).
        self.workers = workers
        # The links' figures `auto`'s cost model reads, the same on every party (mpc/links.py): measured at
        # the hello or declared; without a network (one process), the declared ones or none.
        self.links = links if links is not None else AgreedLinks.assumed(topology)
        # this party's peak memory with its workers (mpc/memory.py); record() puts it in the stats
        self.memory = RssMonitor(stats, lambda: workers.alive if workers is not None else [])
        # Which shard of its party this process is (mpc/shards.py); one unsharded: shard 0 of 1.
        self.shard = shard or ShardInfo()

    @property
    def is_helper(self) -> bool:
        return self.role == "helper"

    @property
    def frac_bits(self) -> int:
        return self.topology.frac_bits

    def new_op(self, label: str) -> Op:
        """Take the next op id from the program counter. Call before any await (see module doc).

        Raises `Stopped` once the run has stopped: a program issuing thousands of operations without
        awaiting (a whole training) holds the event loop, and learns here that a peer was lost."""
        self.stop.check()
        op = Op(self._next_op, label)
        self._next_op += 1
        return op

    def raise_if_failed(self) -> None:
        """Raise the run's failure, if a peer has failed: lets long local work stop early."""
        if self._transport.failure is not None:
            raise self._transport.failure
        self.stop.check()

    async def run_in_worker(self, fn: Callable[..., T], *args: Any) -> T:
        """`fn(*args)` in a worker thread, off the event loop (at most MAX_WORKERS at once).

        Once the run has stopped, queued work never starts and the caller stops waiting for work under
        way: the thread is a daemon, so the process can exit without it (long work should also take
        `self.stop` and check it between its chunks, to free the core)."""
        async with self._slots:
            self.raise_if_failed()
            loop = asyncio.get_running_loop()
            done: asyncio.Future[T] = loop.create_future()
            stop = self.stop

            def work() -> None:
                try:
                    stop.check()
                    result = fn(*args)
                except BaseException as exc:  # noqa: BLE001 - handed to the awaiting task
                    _resolve(loop, done, None, exc)
                else:
                    _resolve(loop, done, result, None)

            threading.Thread(target=work, name=f"{self.name}-worker", daemon=True).start()
            return await done

    def _phase(self, peer: str) -> str:
        """Traffic to or from the helper is dealer (offline) traffic; all else is online."""
        return "offline" if self.helper in (peer, self.name) else "online"

    def send(self, dst: str, op: Op, array: np.ndarray, *, step: int = 0, depth: int = 0) -> None:
        """Queue `array` for `dst`; `depth` is the round at which the sender had it."""
        self._transport.send(dst, op.id, step, array, depth=depth, tag=op.label, phase=self._phase(dst))

    async def recv(
        self,
        src: str,
        op: Op,
        *,
        step: int = 0,
        dtype: np.dtype | type | None = None,
        shape: Sequence[int] | None = None,
        timeout: float | None = None,
    ) -> Message:
        """Await what `src` sent under (op, step); the message's depth is the sender's + 1. `timeout`:
        instead of the topology's (a long-running service waits for its next request without one)."""
        return await self._transport.recv(
            src, op.id, step, tag=op.label, phase=self._phase(src), dtype=dtype, shape=shape,
            timeout=timeout, what=f"{op.label} step {step}",
        )


def _resolve(loop: asyncio.AbstractEventLoop, fut: asyncio.Future[Any], result: Any,
             exc: BaseException | None) -> None:
    """Complete `fut` from a worker thread; nothing to do if it was cancelled or its loop has closed."""

    def settle() -> None:
        if not fut.done():
            if exc is None:
                fut.set_result(result)
            else:
                fut.set_exception(exc)

    with contextlib.suppress(RuntimeError):  # the loop closed: the run is over, nobody waits any more
        loop.call_soon_threadsafe(settle)


Program = Callable[[Party], Awaitable[T]]


@dataclass
class PartyOutcome:
    """What one party's run produced, with its counters and the program's wall time."""

    name: str
    value: Any
    stats: Stats
    wall_s: float
    session_id: str

    def summary(self) -> dict[str, object]:
        return {"name": self.name, **self.stats.to_dict(), "wall_s": round(self.wall_s, 6),
                "session_id": self.session_id}


class PartyFailed(RuntimeError):
    """A local run failed; `party` is the party whose own error started it."""

    def __init__(self, party: str, error: BaseException):
        self.party = party
        self.error = error
        super().__init__(f"party {party} failed: {type(error).__name__}: {error}")


async def run_party(
    topology: Topology, name: str, program: Program[T], *, timeout_s: float | None = None,
    keys: CurveKeys | None = None, secret_key: str | None = None, setup: Mapping[str, str] | None = None,
    start_timeout_s: float | None = None,
    shard: ShardInfo | None = None,
) -> PartyOutcome:
    """Run `program` as party `name` over ZeroMQ: connect, agree a session, run, say goodbye, close.

    Links use CurveZMQ with `keys`, or with the topology's key files; without keys (an `insecure: true`
    or all-localhost topology) they are plain TCP and a warning says so. If the program raises, every
    peer is told (abort) so it stops at once with the reason. At session start the parties compare the
    topology's session settings, the library's version and code digest, the program's declared
    `agreement` and `setup` (say, the program and its shared parameters): any difference stops every party
    at once, naming the setting. `start_timeout_s` is how long to wait for the others to start (default:
    the timeout; math.inf waits until they come). The helper deals in the topology's
    `dealer_worker_count()` worker processes (1: in this process).
    """
    if keys is None:
        keys = load_keys(topology, name, secret_key)
    if keys is None:
        log.warning("%s: links are NOT encrypted or authenticated (no keys in topology %r)%s", name,
                    topology.name, "; insecure: true" if topology.insecure else "")
    stats = Stats()
    transport = ZmqTransport(topology, name, stats, timeout_s=timeout_s, keys=keys,
                             agreement=_agreement(topology, program, setup), start_timeout_s=start_timeout_s)
    return await run_on(transport, topology, name, program, stats, dealer_workers=topology.dealer_worker_count(),
                        shard=shard)


def _agreement(topology: Topology, program: Program[Any], setup: Mapping[str, str] | None) -> dict[str, str]:
    """What every party must share, compared at session start: the topology's session settings, the
    library's version and code, what the program itself declares in its `agreement` attribute (a secure
    program: the digest of the public tables it uses) and `setup` (say, the program and its parameters)."""
    declared: Mapping[str, str] = getattr(program, "agreement", None) or {}
    return {**topology.agreed_settings(), **library_agreement(), **declared, **(setup or {})}


async def run_on(transport: Transport, topology: Topology, name: str, program: Program[T],
                 stats: Stats, *, dealer_workers: int = 1, measure_links: bool = True,
                 shard: ShardInfo | None = None) -> PartyOutcome:
    """Run `program` as party `name` on a transport not yet started; abort on any error, else goodbye.

    Once the session is agreed, the links `auto`'s cost model reads are measured and their figures agreed
    (mpc/links.py), unless `measure_links` is False (one process, no network: none or the declared ones).

    The helper's worker processes (if dealer_workers > 1) are started first, so they boot while the party
    connects; its program starts once they have. They are terminated and joined when the run ends, however
    it ends: on a failure before the peers are told, so a peer's death stops them at once."""
    stop = StopSignal()
    pool: WorkerPool | None = None
    transport.on_lost_threadsafe(stop.set)  # a peer lost while the loop is held stops the program's next op
    try:
        if dealer_workers > 1 and topology.party(name).role == "helper":
            pool = WorkerPool(dealer_workers, name, stop.check, frozen_after_s=topology.heartbeat_timeout_s)
            pool.start()
        await transport.start()
        links = await agree_links(transport, topology, name, stats) if measure_links else None
        if pool is not None:
            await pool.ready(topology.timeout_s)  # booted meanwhile: the program never waits for them
        party = Party(topology, name, transport, stats, stop, pool, links, shard)
        log.info("%s: session %s started with %s", name, party.session_id[:12], ", ".join(party.peers) or "-")
        t0 = time.perf_counter()
        party.memory.start()
        try:
            value = await _until_failure(program(party), transport, stop)
        finally:
            party.memory.stop()
        wall = time.perf_counter() - t0
    except BaseException as exc:
        stop.set(exc)
        if pool is not None:
            pool.close()
        failure = transport.failure
        if failure is None and isinstance(stop.reason, PeerError):  # the liveness thread's, not yet the loop's
            failure = stop.reason
        await transport.abort(_reason(name, exc, failure))
        if failure is not None and isinstance(exc, asyncio.CancelledError | Stopped):
            raise failure from None  # interrupted after a peer failed: name the peer, not the interrupt
        raise
    if pool is not None:
        pool.close()
    await transport.close()
    return PartyOutcome(name, value, stats, wall, party.session_id)


async def _until_failure(work: Awaitable[T], transport: Transport, stop: StopSignal) -> T:
    """Run the program, but stop it the moment the run fails, whatever it is doing: waits on peers fail
    by themselves; local work (dealing in worker threads) would not notice, so it is cancelled."""
    task = program_task(work)

    def stop_program(error: PeerError) -> None:
        stop.set(error)
        task.cancel()

    transport.on_failure(stop_program)
    if transport.failure is not None:
        stop_program(transport.failure)
    return await task


class ProgramExit(RuntimeError):
    """A program called sys.exit(): the other parties are still running theirs, so it is a failure."""


def program_task(work: Awaitable[T]) -> asyncio.Task[T]:
    """A task running a program, a SystemExit from it turned into ProgramExit (`no_exit`)."""
    task = asyncio.ensure_future(no_exit(work))
    close = getattr(work, "close", None)
    if close is not None:  # cancelled before it started, the program itself was never awaited: no warning
        task.add_done_callback(lambda _: close())
    return task


async def no_exit(work: Awaitable[T]) -> T:
    """`work`, with a SystemExit turned into ProgramExit: escaping a task, it ends the event loop itself."""
    try:
        return await work
    except SystemExit as exc:
        raise ProgramExit(f"the program called sys.exit({exc.code!r}); a program ends by returning or raising, "
                          "on every party") from None


def _reason(name: str, exc: BaseException, failure: PeerError | None = None) -> str:
    """The reason sent to peers in an abort: the party, the error's class and a generic reason.

    Never the error's own text: it may hold this party's private data (a value from its input file, a
    local path). That detail stays here, in this party's own error message and log."""
    if isinstance(exc, PeerError) or (failure is not None and isinstance(exc, asyncio.CancelledError | Stopped)):
        # the runtime's own messages: party names, addresses, op labels, nothing private
        return f"{name} stopped because {exc if isinstance(exc, PeerError) else failure}"
    if isinstance(exc, asyncio.CancelledError | KeyboardInterrupt):
        return f"{name} was interrupted"
    if isinstance(exc, MemoryError):
        return f"{name} ran out of memory (MemoryError)"
    return f"{name} failed with {type(exc).__name__} (the details are in {name}'s own log)"


async def run_local_async(
    topology: Topology, program: Program[T], *, timeout_s: float | None = None, curve: bool = True,
    transport: TransportKind | str = TransportKind.ZMQ,
) -> dict[str, PartyOutcome]:
    """Run every party of `topology` in this process and event loop.

    `transport="zmq"` (the default): over real ZeroMQ sockets on the topology's ports; a topology without
    key files gets ephemeral CURVE keys (encrypted links), unless `curve=False`. `transport="memory"`: no
    sockets, messages handed over in this event loop (protocol tests; the same rounds and bytes)."""
    kind = TransportKind(transport)
    if kind is TransportKind.MEMORY:
        network = MemoryNetwork(topology)
        runs = {}
        for name in topology.names:
            stats = Stats()
            link = network.transport(name, stats, timeout_s=timeout_s, agreement=_agreement(topology, program, None))
            runs[name] = run_on(link, topology, name, program, stats, measure_links=False)
    else:
        keys: dict[str, CurveKeys | None] = dict.fromkeys(topology.names)
        if curve and all(p.public_key is None for p in topology.parties):
            keys.update(ephemeral_keys(topology.names))
        runs = {name: run_party(topology, name, program, timeout_s=timeout_s, keys=keys[name])
                for name in topology.names}
    tasks = {name: asyncio.create_task(run, name=name) for name, run in runs.items()}
    await asyncio.wait(tasks.values())
    errors = {name: exc for name, t in tasks.items() if (exc := t.exception()) is not None}
    if errors:
        culprit = _root_cause(errors)
        raise PartyFailed(culprit, errors[culprit]) from errors[culprit]
    return {name: t.result() for name, t in tasks.items()}


def _root_cause(errors: Mapping[str, BaseException]) -> str:
    """The party whose own error started the failure, not one that stopped because of it."""
    for name, err in errors.items():
        if not isinstance(err, PeerError):
            return name
    for name, err in errors.items():
        if not isinstance(err, PeerAborted | PeerGone):
            return name
    return next(iter(errors))


def run_local(
    topology: Topology, program: Program[T], *, timeout_s: float | None = None, curve: bool = True,
    transport: TransportKind | str = TransportKind.ZMQ,
) -> dict[str, PartyOutcome]:
    """Synchronous `run_local_async`: returns each party's outcome, raises PartyFailed naming the party."""
    return asyncio.run(run_local_async(topology, program, timeout_s=timeout_s, curve=curve, transport=transport))

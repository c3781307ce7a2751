"""An in-memory transport: every party of a run in one process and one event loop, no sockets.

For protocol tests: the same keyed matching, depths, counters (bytes as on the wire: header + payload;
one transport send per peer per event-loop turn), dtype and shape checks, timeouts naming the peer,
goodbye and abort as `ZmqTransport`. Arrays are copied through their wire bytes, so the receiver gets a
read-only little-endian array of its own, as from a socket. Not emulated: latency and bandwidth, lost
connections, CURVE; the transport tests cover those on real sockets.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

from mpc.config import Topology
from mpc.stats import Stats
from mpc.transport import session as agreement_rules
from mpc.transport.base import FirstFailure, wait_for_goodbyes
from mpc.transport.errors import PeerError, PeerGone, PeerTimeout, aborted
from mpc.transport.frames import (
    HEADER_SIZE,
    SESSION_BYTES,
    Kind,
    dtype_code,
    message_limit,
    payload_view,
    plan_messages,
)
from mpc.transport.inbox import Inbox, Receiving

log = logging.getLogger("mpc.transport")


@dataclass(frozen=True, slots=True)
class _Frame:
    """What one party hands another: a data array, a goodbye, or an abort with its reason."""

    kind: Kind
    op: int = 0
    step: int = 0
    array: np.ndarray | None = None
    depth: int = 0
    reason: str = ""

    @property
    def nbytes(self) -> int:
        return HEADER_SIZE + (self.array.nbytes if self.array is not None else len(self.reason.encode()))


class MemoryNetwork:
    """The parties of one run: who has started, and where each one's frames are delivered."""

    def __init__(self, topology: Topology):
        self.topology = topology
        self.session = secrets.token_bytes(SESSION_BYTES)
        self.parties: dict[str, MemoryTransport] = {}  # made: frames reach them, even before they start
        self.started: dict[str, MemoryTransport] = {}

    def transport(self, me: str, stats: Stats, *, timeout_s: float | None = None,
                  agreement: Mapping[str, str] | None = None) -> MemoryTransport:
        """Party `me`'s transport (one per party of the topology)."""
        if me in self.parties or me not in self.topology.names:
            raise ValueError(f"{me!r} is not a party of {self.topology.name!r} without a transport yet")
        made = self.parties[me] = MemoryTransport(self, me, stats, timeout_s=timeout_s, agreement=agreement)
        return made

    def join(self, party: MemoryTransport) -> None:
        """Register a started party; once all have, each one's start completes (or fails on a mismatch)."""
        self.started[party.me] = party
        if len(self.started) < len(self.topology.names):
            return
        for t in self.started.values():
            t.on_everyone_started()


class MemoryTransport(Receiving):
    """One party's links in a `MemoryNetwork`. Create inside the running loop; `start()`, use, `close()`."""

    def __init__(self, network: MemoryNetwork, me: str, stats: Stats, *, timeout_s: float | None = None,
                 agreement: Mapping[str, str] | None = None):
        topology = network.topology
        self.network = network
        self.topology = topology
        self.me = me
        self.peers = [n for n in topology.names if n != me]
        self.stats = stats
        self.timeout_s = timeout_s if timeout_s is not None else topology.timeout_s
        self.max_payload = int(topology.max_message_mb * 1024 * 1024)
        self.agreement = dict(agreement or {})
        self.session = agreement_rules.NO_SESSION
        self.inbox = Inbox(topology, me, stats, self.timeout_s,
                           max(int(topology.max_buffered_mb * 1024 * 1024), self.max_payload), self._fail)
        self._pending: dict[str, list[_Frame]] = {}
        self._flush_scheduled = False
        self._started: asyncio.Future[None] | None = None
        self._bye_done: asyncio.Future[None] | None = None
        self._bye: set[str] = set()
        self._aborted: set[str] = set()
        self._failures = FirstFailure()
        self._closed = False

    # -- lifecycle ------------------------------------------------------------------------------
    async def start(self) -> bytes:
        """Wait until every party of the run has started, then check that all share our settings."""
        loop = asyncio.get_running_loop()
        self._started = loop.create_future()
        self._bye_done = loop.create_future()
        if self._failures.error is not None:
            raise self._failures.error
        self.network.join(self)
        try:
            await asyncio.wait_for(asyncio.shield(self._started), self.timeout_s)
        except TimeoutError:
            missing = [p for p in self.peers if p not in self.network.started]
            raise PeerTimeout(missing[0], f"{self.me}: timed out after {self.timeout_s:g} s waiting for "
                                          f"{', '.join(missing)} to start (in this process)") from None
        return self.session

    def on_everyone_started(self) -> None:
        for peer in self.peers:
            error = agreement_rules.mismatch(self.me, peer, self.agreement, self.network.started[peer].agreement)
            if error is not None:
                self._fail(error)
                return
        self.session = self.network.session
        if self._started is not None and not self._started.done():
            self._started.set_result(None)

    async def close(self) -> None:
        """Goodbye barrier: every peer has received all we sent before we are done."""
        if self._closed:
            return
        try:
            if self._failures.error is None and self.session != agreement_rules.NO_SESSION:
                await self._say_goodbye()
        finally:
            self._shutdown()
        if self._failures.error is not None:
            raise self._failures.error

    async def _say_goodbye(self) -> None:
        for peer in self.peers:
            self._queue(peer, _Frame(Kind.BYE))
        self._flush()
        if not self.peers:
            return
        assert self._bye_done is not None
        await wait_for_goodbyes(self.me, self.peers, self._bye_done, self._bye, self.timeout_s, self._fail)

    async def abort(self, reason: str) -> None:
        """Tell every peer this party is stopping with `reason`, then close."""
        if self._closed:
            return
        text = reason.encode("utf-8", "replace")[:4000].decode("utf-8", "replace")
        for peer in self.peers:
            if peer not in self._aborted:
                self._queue(peer, _Frame(Kind.ABORT, reason=text))
        self._flush()
        self._shutdown()

    def _shutdown(self) -> None:
        self._closed = True
        self.inbox.fail_waits(self._failures.error or PeerGone(self.me, f"{self.me}: transport closed"))

    # -- sending --------------------------------------------------------------------------------
    def send(self, peer: str, op: int, step: int, array: np.ndarray, *, depth: int, tag: str,
             phase: str = "online") -> None:
        """Queue a copy of `array`'s wire bytes for `peer` under key (op, step)."""
        if self._failures.error is not None:
            raise self._failures.error
        if peer not in self.peers:
            raise ValueError(f"{self.me}: no peer named {peer!r}")
        dtype = np.dtype(array.dtype)
        dtype_code(dtype)  # only the wire's dtypes travel, as on sockets
        view = payload_view(array)
        if len(view) > self.max_payload:
            raise ValueError(f"{self.me}: message of {len(view)} bytes exceeds max_message_mb")
        received = np.frombuffer(bytes(view), dtype=dtype.newbyteorder("<")).reshape(array.shape)
        self._queue(peer, _Frame(Kind.DATA, op, step, received, depth))
        self.stats.record_send(phase, tag, HEADER_SIZE + len(view), depth)

    def _queue(self, peer: str, frame: _Frame) -> None:
        """Everything queued for a peer in one event-loop turn is delivered together, as one send."""
        self._pending.setdefault(peer, []).append(frame)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        pending, self._pending = self._pending, {}
        for peer, frames in pending.items():
            self.stats.transport_sends += len(plan_messages([f.nbytes for f in frames],
                                                             message_limit(self.max_payload)))
            receiver = self.network.parties.get(peer)
            for frame in frames:
                if receiver is not None:
                    receiver.deliver(self.me, frame)

    # -- receiving ------------------------------------------------------------------------------
    def deliver(self, peer: str, frame: _Frame) -> None:
        """Act on a frame from `peer`: file data by key, note a goodbye, stop on an abort."""
        if self._closed:
            return
        if frame.kind is Kind.ABORT:
            self._aborted.add(peer)
            self._fail(aborted(peer, frame.reason))
        elif frame.kind is Kind.BYE:
            self._bye.add(peer)
            self.inbox.peer_finished(peer)
            if self._bye_done is not None and not self._bye_done.done() and self._bye >= set(self.peers):
                self._bye_done.set_result(None)
        elif frame.array is not None and self.inbox.hold(peer, frame.array.nbytes):
            self.inbox.put(peer, (self.topology.index(peer), frame.op, frame.step), frame.array, frame.depth)

    def on_lost_threadsafe(self, callback: Callable[[PeerError], None]) -> None:
        """No connections to lose: every failure reaches the parties through their one event loop."""

    # -- failure --------------------------------------------------------------------------------
    def _fail(self, error: PeerError) -> PeerError:
        """Record the first failure and fail every wait with it (the run cannot continue soundly)."""
        return self._failures.record(error, (self._started, self._bye_done), self.inbox)


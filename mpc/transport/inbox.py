"""Keyed buffering of received messages: by (sender, op, step), never by arrival order.

Early arrivals wait in a dict of futures until awaited. What a peer makes this party hold and not yet use
is counted, and bounded by max_buffered_mb: a peer (or a diverged program) cannot exhaust our memory.

How long a wait may last depends on the transport: over ZeroMQ (`bounded=False`) a wait on a peer whose
connection is alive never times out, since a party busy for longer than timeout_s (receiving gigabytes of
material, computing) is not an absent one; liveness (heartbeats, dropped connections) names a dead or
frozen peer, and a wait longer than timeout_s is logged as a warning (once per peer and period), so that a
hang is visible. In memory (`bounded=True`) there are no heartbeats: timeout_s bounds every wait.
What the helper sent (dealer material) is also counted in the stats' "material" level (mpc/window.py).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence

import numpy as np

from mpc.config import Topology
from mpc.stats import Stats
from mpc.transport.base import FirstFailure, Message, consume_exception
from mpc.transport.errors import PeerError, PeerGone, PeerTimeout, ProtocolViolation
from mpc.transport.frames import HEADER_SIZE

log = logging.getLogger("mpc.transport")

Key = tuple[int, int, int]  # (sender index, op, step)


class Inbox:
    """Received arrays by key until awaited; `fail` records a run's failure (and fails every wait)."""

    def __init__(self, topology: Topology, me: str, stats: Stats, timeout_s: float, max_buffered: int,
                 fail: Callable[[PeerError], PeerError], *, bounded: bool = True):
        self.topology = topology
        self.me = me
        self.stats = stats
        self.timeout_s = timeout_s
        self.bounded = bounded
        self._warned: dict[str, float] = {}  # per peer: when a long wait on it was last logged
        self.max_buffered = max_buffered
        self.fail = fail
        self.futures: dict[Key, asyncio.Future[Message]] = {}
        self.buffered: dict[str, int] = {p: 0 for p in topology.names if p != me}  # received, not yet used
        self.finished: set[str] = set()  # peers that said goodbye: nothing more will come from them
        self.dealer = topology.helper.name if topology.helper is not None else None

    def _count(self, peer: str, nbytes: int) -> None:
        self.buffered[peer] += nbytes
        if peer == self.dealer:
            self.stats.change("material", nbytes)

    def hold(self, peer: str, nbytes: int) -> bool:
        """Count what `peer` makes us hold until it is used; over max_buffered_mb the run stops."""
        self._count(peer, nbytes)
        if self.buffered[peer] <= self.max_buffered:
            return True
        self.fail(ProtocolViolation(
            peer, f"{self.me}: {peer} sent {self.buffered[peer] / 2**20:.0f} MiB that this party has not used "
                  f"yet, over the max_buffered_mb bound of {self.max_buffered / 2**20:.0f} MiB; stopping rather "
                  "than running out of memory (raise max_buffered_mb if such a backlog is expected)"))
        return False

    def release(self, peer: str, nbytes: int) -> None:
        """Uncount bytes held and then dropped (a stale frame)."""
        self._count(peer, -nbytes)

    def put(self, peer: str, key: Key, array: np.ndarray, sent_depth: int) -> None:
        """File a held array under its key; the same key twice stops the run."""
        fut = self.futures.get(key)
        if fut is None:
            fut = self.futures[key] = asyncio.get_running_loop().create_future()
        elif fut.done():
            self.fail(ProtocolViolation(peer, f"{self.me}: {peer} sent op {key[1]:#x} step {key[2]} twice"))
            return
        fut.set_result(Message(array, sent_depth + 1))

    async def take(self, peer: str, op: int, step: int, *, tag: str, phase: str,
                   dtype: np.dtype | type | None, shape: Sequence[int] | None, timeout: float | None,
                   what: str) -> Message:
        """Await the message under (peer, op, step), check it, count it as received."""
        key = (self.topology.index(peer), op, step)
        fut = self.futures.get(key)
        if fut is None:
            if peer in self.finished:
                raise self.gone(peer, what or tag)
            fut = self.futures[key] = asyncio.get_running_loop().create_future()
        limit = self.timeout_s if timeout is None else timeout
        try:
            if fut.done():
                msg = fut.result()
            elif timeout is None and not self.bounded:
                msg = await self._patiently(peer, fut, what or tag)
            else:
                msg = await asyncio.wait_for(asyncio.shield(fut), limit)
        except TimeoutError:
            raise PeerTimeout(
                peer,
                f"{self.me}: timed out after {limit:g} s waiting for {peer} ({what or tag}, op {op:#x} step {step}); "
                f"is {peer} alive and running the same program?",
            ) from None
        finally:
            if fut.done():
                self.futures.pop(key, None)
        self._count(peer, -msg.array.nbytes)
        if dtype is not None and msg.array.dtype != np.dtype(dtype):
            raise self.fail(ProtocolViolation(peer, f"{self.me}: {peer} sent dtype {msg.array.dtype} for "
                                                    f"{what or tag}, expected {np.dtype(dtype)}"))
        if shape is not None and tuple(msg.array.shape) != tuple(shape):
            raise self.fail(ProtocolViolation(peer, f"{self.me}: {peer} sent shape {msg.array.shape} for "
                                                    f"{what or tag}, expected {tuple(shape)}"))
        self.stats.record_recv(phase, tag, HEADER_SIZE + msg.array.nbytes, msg.depth)
        return msg

    async def _patiently(self, peer: str, fut: asyncio.Future[Message], what: str) -> Message:
        """Wait as long as the peer is alive (liveness fails `fut` if it dies or freezes); log a long wait."""
        waited = 0.0
        while True:
            try:
                return await asyncio.wait_for(asyncio.shield(fut), self.timeout_s)
            except TimeoutError:
                waited += self.timeout_s
                now = time.monotonic()
                if now - self._warned.get(peer, -self.timeout_s) >= self.timeout_s:
                    self._warned[peer] = now
                    log.warning("%s: still waiting for %s (%s) after %g s; its connection is alive, so it is "
                                "busy, or runs a different program", self.me, peer, what, waited)

    def peer_finished(self, peer: str) -> None:
        """`peer` said goodbye: links are FIFO, so waits on it can never complete; fail them now."""
        self.finished.add(peer)
        index = self.topology.index(peer)
        for (sender, _, _), fut in self.futures.items():
            if sender == index and not fut.done():
                fut.set_exception(self.gone(peer, "a message"))
                fut.add_done_callback(consume_exception)  # a wait given up (cancelled) must not be reported

    def gone(self, peer: str, what: str) -> PeerGone:
        return PeerGone(peer, f"{self.me}: {peer} finished its program without sending {what}; "
                              "do all parties run the same program and config?")

    def fail_waits(self, error: BaseException) -> None:
        """Fail every wait still pending with `error` (the run failed, or the transport closed)."""
        for fut in self.futures.values():
            if not fut.done():
                fut.set_exception(error)
                fut.add_done_callback(consume_exception)


class Receiving:
    """What both transports do alike once their frames are filed in an `Inbox`: `recv` by key and the
    run's first failure. A transport sets `me`, `peers`, `inbox` and `_failures` (base.FirstFailure)."""

    me: str
    peers: list[str]
    inbox: Inbox
    _failures: FirstFailure

    async def recv(self, peer: str, op: int, step: int, *, tag: str, phase: str = "online",
                   dtype: np.dtype | type | None = None, shape: Sequence[int] | None = None,
                   timeout: float | None = None, what: str = "") -> Message:
        """Await the message `peer` sent under key (op, step); check its dtype and shape if given."""
        if self._failures.error is not None:
            raise self._failures.error
        if peer not in self.peers:
            raise ValueError(f"{self.me}: no peer named {peer!r}")
        return await self.inbox.take(peer, op, step, tag=tag, phase=phase, dtype=dtype, shape=shape,
                                     timeout=timeout, what=what)

    @property
    def failure(self) -> PeerError | None:
        return self._failures.error

    def on_failure(self, callback: Callable[[PeerError], None]) -> None:
        """Call `callback(error)` when the run fails (a peer died, aborted, or broke the protocol)."""
        self._failures.on_failure(callback)

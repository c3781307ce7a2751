"""What the runtime needs from a transport, so that a second implementation can stand in for ZeroMQ.

Two implement it: `ZmqTransport` (a party per process, real sockets) and `MemoryTransport` (every party of
a run in one event loop, for protocol tests). Both match messages by key (sender, op, step), count bytes
as they are on the wire (header + payload), give a received value the sender's depth + 1, check dtype and
shape on `recv`, name the peer in every error, and end with a goodbye barrier or an abort.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol

import numpy as np

from mpc.transport.errors import PeerError

log = logging.getLogger("mpc.transport")


class TransportKind(StrEnum):
    """Which transport `run_local` connects the parties with."""

    ZMQ = "zmq"  # real sockets, CurveZMQ: what a deployment runs
    MEMORY = "memory"  # one event loop, no sockets: protocol maths in tests


@dataclass(frozen=True, slots=True)
class Message:
    """A received array and the logical depth (round) at which it is available to the receiver."""

    array: np.ndarray
    depth: int


class Transport(Protocol):
    """The links of one party to all others, as the runtime's `Party` uses them."""

    session: bytes

    @property
    def failure(self) -> PeerError | None:
        """The run's first failure (a peer died, aborted, or broke the protocol), if any."""

    async def start(self) -> bytes:
        """Connect and agree a session id with every peer (waits for late peers up to the timeout)."""

    async def close(self) -> None:
        """Goodbye barrier, then release everything; raise the run's failure if a peer failed meanwhile."""

    async def abort(self, reason: str) -> None:
        """Tell every peer this party is stopping with `reason` (no private data in it), then release."""

    def send(self, peer: str, op: int, step: int, array: np.ndarray, *, depth: int, tag: str,
             phase: str = "online") -> None:
        """Queue `array` for `peer` under key (op, step). Non-blocking; never modify `array` afterwards."""

    async def recv(self, peer: str, op: int, step: int, *, tag: str, phase: str = "online",
                   dtype: np.dtype | type | None = None, shape: Sequence[int] | None = None,
                   timeout: float | None = None, what: str = "") -> Message:
        """Await what `peer` sent under key (op, step); check its dtype and shape if given."""

    def on_failure(self, callback: Callable[[PeerError], None]) -> None:
        """Call `callback(error)` when the run fails."""

    def on_lost_threadsafe(self, callback: Callable[[PeerError], None]) -> None:
        """Call `callback(error)`, from any thread, as soon as a peer is lost, even while the event loop is
        held by long synchronous work (a transport without connections never calls it)."""


class FirstFailure:
    """A run's first failure, kept once: every callback hears it and every wait given fails with it (the
    run cannot continue soundly). Shared by both transports."""

    def __init__(self) -> None:
        self.error: PeerError | None = None
        self._callbacks: list[Callable[[PeerError], None]] = []

    def on_failure(self, callback: Callable[[PeerError], None]) -> None:
        """Call `callback(error)` when the run fails (a peer died, aborted, or broke the protocol)."""
        self._callbacks.append(callback)

    def record(self, error: PeerError, waits: Iterable[asyncio.Future[Any] | None], inbox: Any) -> PeerError:
        if self.error is None:
            self.error = error
            log.debug("%s", error)  # the runtime reports it, once
            for callback in self._callbacks:
                callback(error)
        for fut in waits:
            if fut is not None and not fut.done():
                fut.set_exception(self.error)
                fut.add_done_callback(consume_exception)
        inbox.fail_waits(self.error)
        return self.error


def consume_exception(fut: asyncio.Future[Any]) -> None:
    """Mark a future's exception as retrieved: the run reports its failure once, elsewhere."""
    if not fut.cancelled():
        fut.exception()


async def wait_for_goodbyes(me: str, peers: Sequence[str], done: asyncio.Future[None], seen: Iterable[str],
                            timeout_s: float, fail: Callable[[PeerError], object], *, bounded: bool = True) -> None:
    """Wait for every peer's goodbye (the barrier at the end of a run); a timeout fails the run naming the
    peers still missing. Unbounded (ZeroMQ): a peer still busy is waited for as long as its connection is
    alive (liveness fails `done` if it dies or freezes), with a warning every timeout_s. A failure recorded
    meanwhile has been reported already."""
    from mpc.transport.errors import PeerTimeout

    try:
        while not bounded:
            try:
                await asyncio.wait_for(asyncio.shield(done), timeout_s)
                return
            except TimeoutError:
                arrived = set(seen)
                log.warning("%s: still waiting for %s to finish; its connection is alive, so it is busy", me,
                            ", ".join(p for p in peers if p not in arrived))
        await asyncio.wait_for(asyncio.shield(done), timeout_s)
    except TimeoutError:
        arrived = set(seen)
        missing = [p for p in peers if p not in arrived]
        fail(PeerTimeout(missing[0], f"{me}: timed out after {timeout_s:g} s waiting for {', '.join(missing)} "
                                     "to finish"))
    except PeerError:
        pass  # recorded by the transport's FirstFailure

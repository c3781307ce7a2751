"""What the runtime needs from a transport, so that a second implementation can stand in for ZeroMQ.

Two implement it: `ZmqTransport` (a party per process, real sockets) and `MemoryTransport` (every party of
a run in one event loop, for protocol tests). Both match messages by key (sender, op, step), count bytes
as they are on the wire (header + payload), give a received value the sender's depth + 1, check dtype and
shape on `recv`, name the peer in every error, and end with a goodbye barrier or an abort.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

import numpy as np

from mpc.transport.errors import PeerError


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

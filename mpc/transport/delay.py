"""Emulated one-way latency and bandwidth per link, applied at the receiver.

The sender stamps in each header when the message is due: when its bytes have left at the link's
bandwidth, one latency later (one CLOCK_MONOTONIC for every process on a host). The receiver holds each
link's frames in FIFO order until due. So neither party's CPU work delays the other's messages, as on a
real network. (Emulation therefore assumes the parties share a clock: one host, or its namespaces.)
"""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Callable

import numpy as np

from mpc.config import LinkParams
from mpc.transport.frames import Header

# What a received frame carries once checked: an array for data, the raw bytes for control frames.
Body = np.ndarray | memoryview


class LinkClock:
    """The sending side of one emulated link: when each message sent now is due at the receiver."""

    def __init__(self, params: LinkParams):
        self.latency_ns = int(params.latency_ms * 1e6)
        self.bytes_per_ns = params.bandwidth_mbps * 1e6 / 8 / 1e9 if params.bandwidth_mbps else None
        self.busy_until = 0

    @property
    def emulated(self) -> bool:
        return self.latency_ns > 0 or self.bytes_per_ns is not None

    def due(self, nbytes: int) -> int:
        """When a message of nbytes sent now is delivered on the emulated link (0: not emulated)."""
        if not self.emulated:
            return 0
        start = max(time.monotonic_ns(), self.busy_until)
        self.busy_until = start + (int(nbytes / self.bytes_per_ns) if self.bytes_per_ns else 0)
        return self.busy_until + self.latency_ns


class Inbound:
    """One incoming link's FIFO of frames not yet due: applied in order when due."""

    def __init__(self, apply: Callable[[str, Header, Body], None], peer: str,
                 on_error: Callable[[str, Exception], None]):
        self.apply = apply
        self.on_error = on_error
        self.peer = peer
        self.queue: collections.deque[tuple[Header, Body]] = collections.deque()
        self.wakeup = asyncio.Event()
        self.task = asyncio.get_running_loop().create_task(self.run(), name=f"inbound-{peer}")

    def push(self, header: Header, payload: Body) -> None:
        self.queue.append((header, payload))
        self.wakeup.set()

    async def run(self) -> None:
        while True:
            if not self.queue:
                self.wakeup.clear()
                await self.wakeup.wait()
                continue
            header, payload = self.queue[0]
            wait = (header.due - time.monotonic_ns()) / 1e9
            if wait > 0:
                await asyncio.sleep(wait)
            self.queue.popleft()
            try:
                self.apply(self.peer, header, payload)
            except Exception as exc:  # never a dead task: the run stops naming the peer
                self.on_error(self.peer, exc)

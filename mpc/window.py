"""The dealing window: dealer material is dealt at most `dealer_window_mb` ahead of its consumption.

Without it the helper deals a program's whole material as fast as it can and the compute parties keep it
until used: memory grows with the job. With it (docs/memory.md):

- Every operation that consumes material takes a **ticket** when it is called, in program order, on every
  party alike, with the size of its material (8 bytes per element of every item of its spec: what a
  compute party holds of it, derived and received). Tickets are granted strictly in program order.
- The helper (`DealerWindow`) may deal ticket k when what it has dealt and not yet heard consumed, for
  its furthest-behind compute party, plus k's size stays within the window, or when nothing is
  outstanding (an operation larger than the window is dealt alone).
- A compute party (`MaterialWindow`) derives its own streams for ticket k under the same rule against its
  own consumption, and counts an op's material consumed when the op's online body has finished with it.
  It tells the helper (a **credit**: the cumulative bytes it has consumed, one uint64) only when the
  helper would otherwise be stuck: it replays the helper's rule on its own tickets and the credit it has
  reported, so a run whose material fits the window sends no credit at all.

Why no deadlock: let k be the earliest ticket some party has not consumed. Every earlier ticket is
consumed everywhere; tickets are granted in order, so if k is not granted nothing after it is, nothing is
outstanding, and k is granted. Credit never waits for anything but the consumption it reports.

Everything on the way is bounded by it: the helper's send queue, the sockets and the compute party's inbox
hold only dealt, unconsumed material, which the window bounds. Levels and peaks are measured in
`Stats` ("material" on a compute party: inbox included; "dealt_ahead" on the helper).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Callable
from typing import Protocol

import numpy as np

from mpc.runtime import Op, Party
from mpc.transport import PeerError, PeerTimeout

log = logging.getLogger("mpc.window")

# The key credit messages travel under: a fixed op id no counter reaches (program ids count up from 1,
# child ids are 64-bit hashes), step = the sender's credit sequence number.
CREDIT_OP = Op(0xC4ED_17C4_ED17_C4ED, "credit")
MB = 1 << 20


class Window(Protocol):
    """What operations need from a window, whichever party holds it."""

    def ticket(self, nbytes: int) -> int:
        """Take the next ticket for `nbytes` of material. Call when the op is called (before any await)."""
        ...

    async def acquire(self, ticket: int) -> None:
        """Wait until `ticket` may be dealt (helper) or derived and received (compute party)."""
        ...

    def hold(self, nbytes: int) -> None:
        """Count material now in this party's hands (compute parties)."""
        ...

    def done_dealing(self, ticket: int) -> None:
        """The ticket's material is dealt (helper) or in hand (compute party)."""
        ...

    def consumed(self, ticket: int) -> None:
        """The ticket's op has finished with its material (compute parties)."""
        ...

    async def settled(self) -> None:
        """Wait until every ticket taken is dealt or in hand, or waits for the window to free."""
        ...

    def close(self) -> None:
        """The program has finished: stop listening for credit."""
        ...


class _Tickets:
    """FIFO tickets with sizes: granted in order while `fits` says so."""

    def __init__(self, party: Party, window_bytes: int, gauge: str):
        self.party = party
        self.limit = window_bytes
        self.gauge = gauge
        self.sizes: list[int] = []
        self.granted = 0  # tickets granted so far (always a prefix)
        self.held = 0  # bytes granted and not yet released (compute: consumed; helper: credited)
        self.in_progress = 0  # granted, not yet dealt / in hand
        # the tickets asked for and not yet granted, each with the future its task waits on (one wake-up per
        # grant: waking every waiting task at every grant made a long training quadratic)
        self._waiting: dict[int, asyncio.Future[None]] = {}
        self._wake: asyncio.Event = asyncio.Event()  # for settled(): a grant, or material in hand
        self.progress = 0  # credit received (helper): a wait that sees it move is not stuck
        self.error: BaseException | None = None

    def ticket(self, nbytes: int) -> int:
        self.sizes.append(int(nbytes))
        return len(self.sizes) - 1

    def fits(self, size: int) -> bool:
        return self.held == 0 or self.held + size <= self.limit

    def _take(self) -> None:
        """Grant the next ticket (its waiter wakes)."""
        fut = self._waiting.pop(self.granted)
        if not fut.done():
            fut.set_result(None)
        self.in_progress += 1
        self.granted += 1

    def _grant(self) -> None:
        while self.granted in self._waiting and self.fits(self.sizes[self.granted]):
            self.held += self.sizes[self.granted]
            self._take()
        self._notify()

    def _notify(self) -> None:
        self._wake.set()
        self._wake = asyncio.Event()

    async def _wait_for(self, ticket: int, timeout: Callable[[], PeerError] | None) -> None:
        if self.error is not None:
            raise self.error
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting[ticket] = fut
        self._grant()
        while not fut.done():
            if timeout is None:
                await fut
                break
            seen = self.progress
            try:
                await asyncio.wait_for(asyncio.shield(fut), self.party.topology.timeout_s)
            except TimeoutError:
                if self.progress == seen:  # no credit at all for timeout_s
                    raise timeout() from None
        fut.result()

    def done_dealing(self, ticket: int) -> None:
        self.in_progress -= 1
        self._notify()

    async def settled(self) -> None:
        await asyncio.sleep(0)  # tasks of ops just called start and ask for their tickets
        while True:
            if self.error is not None:
                raise self.error
            waiting = len(self.sizes) - self.granted
            if self.in_progress == 0 and (waiting == 0 or self.granted in self._waiting):
                return
            await self._wake.wait()

    def fail(self, error: BaseException) -> None:
        if self.error is None:
            self.error = error
        for fut in self._waiting.values():
            if not fut.done():
                fut.set_exception(self.error)
                fut.add_done_callback(_retrieved)
        self._notify()


class MaterialWindow(_Tickets):
    """A compute party's window: it derives and receives at most the window ahead of its consumption,
    and reports consumption to the helper (`credit_to`) when the helper would otherwise wait for it."""

    def __init__(self, party: Party, window_bytes: int, credit_to: str | None):
        super().__init__(party, window_bytes, "material")
        self.credit_to = credit_to
        self.consumed_bytes = 0
        self.reported = 0
        self._dealer_at = 0  # how far the helper may deal given the credit reported (its rule, replayed)
        self._cum = [0]  # cumulative ticket sizes
        self._seq = 0
        self._flush_scheduled = False

    def ticket(self, nbytes: int) -> int:
        t = super().ticket(nbytes)
        self._cum.append(self._cum[-1] + int(nbytes))
        self._maybe_credit()
        return t

    async def acquire(self, ticket: int) -> None:
        await self._wait_for(ticket, None)  # waits only for this party's own consumption

    def hold(self, nbytes: int) -> None:
        """Count material now in this party's hands: derived from its streams, or taken from the inbox
        (which counted it while it waited there). An op's derived and received arrays add up to its size."""
        self.party.stats.change(self.gauge, nbytes)

    def consumed(self, ticket: int) -> None:
        size = self.sizes[ticket]
        self.held -= size
        self.consumed_bytes += size
        self.party.stats.change(self.gauge, -size)
        self._grant()
        self._maybe_credit()

    def _dealer_blocked(self) -> bool:
        """Whether the helper, by its rule and our reported credit, cannot deal a ticket we have taken."""
        cum, n = self._cum, len(self.sizes)
        at = self._dealer_at
        while at < n:
            outstanding = cum[at] - self.reported
            if outstanding > 0 and outstanding + self.sizes[at] > self.limit:
                break
            at += 1
        self._dealer_at = at
        return at < n

    def _maybe_credit(self) -> None:
        if self.credit_to is None or self.consumed_bytes == self.reported or self._flush_scheduled:
            return
        if self._dealer_blocked():
            self._flush_scheduled = True  # every consumption of this event-loop turn in one message
            asyncio.get_running_loop().call_soon(self._send_credit)

    def _send_credit(self) -> None:
        self._flush_scheduled = False
        if self.credit_to is None or self.party.stop.is_set():
            return
        self.reported = self.consumed_bytes
        with contextlib.suppress(PeerError):  # the run failed: it is reported elsewhere
            self.party.send(self.credit_to, CREDIT_OP, np.array([self.reported], dtype=np.uint64), step=self._seq)
        self._seq += 1

    def close(self) -> None:
        self.credit_to = None


class DealerWindow(_Tickets):
    """The helper's window: it deals ticket k once every compute party's outstanding material (dealt,
    not yet reported consumed) plus k's size fits the window, or nothing is outstanding."""

    def __init__(self, party: Party, window_bytes: int):
        super().__init__(party, window_bytes, "dealt_ahead")
        self.compute = list(party.compute_parties)
        self.credited = dict.fromkeys(self.compute, 0)
        self.dealt_bytes = 0
        self._readers = [asyncio.get_running_loop().create_task(self._read_credit(p), name=f"credit-{p}")
                         for p in self.compute]
        for task in self._readers:
            task.add_done_callback(_retrieved)

    def _outstanding(self) -> int:
        return self.dealt_bytes - min(self.credited.values())

    def _grant(self) -> None:
        self.held = self._outstanding()
        while self.granted in self._waiting and self.fits(self.sizes[self.granted]):
            self.dealt_bytes += self.sizes[self.granted]
            self.held = self._outstanding()
            self._take()
        self.party.stats.set_level(self.gauge, self.held)
        self._notify()

    async def acquire(self, ticket: int) -> None:
        await self._wait_for(ticket, self._stuck)

    def _stuck(self) -> PeerError:
        slowest = min(self.compute, key=lambda p: self.credited[p])
        return PeerTimeout(slowest, f"{self.party.name}: timed out after {self.party.topology.timeout_s:g} s waiting "
                                    f"for {slowest} to consume dealt material (the dealer window of "
                                    f"{self.limit / MB:g} MiB is full); is {slowest} alive and running the same "
                                    "program?")

    def hold(self, nbytes: int) -> None:
        raise AssertionError("the helper holds no material")

    def consumed(self, ticket: int) -> None:
        raise AssertionError("the helper consumes no material")

    async def _read_credit(self, peer: str) -> None:
        seq = 0
        try:
            while True:
                msg = await self.party.recv(peer, CREDIT_OP, step=seq, dtype=np.uint64, shape=(1,))
                seq += 1
                value = int(msg.array[0])
                if value > self.dealt_bytes or value < self.credited[peer]:
                    raise PeerError(peer, f"{self.party.name}: {peer} reported consuming {value} bytes of "
                                          f"material, but {self.dealt_bytes} were dealt to it; stopping")
                self.credited[peer] = value
                self.progress += 1
                self._grant()
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            self.fail(exc)
            raise

    def close(self) -> None:
        for task in self._readers:
            task.cancel()


class Unbounded:
    """No window: every ticket granted at once (emulation, the in-process test dealer's helper)."""

    def ticket(self, nbytes: int) -> int:
        return 0

    async def acquire(self, ticket: int) -> None:
        return None

    def hold(self, nbytes: int) -> None:
        return None

    def done_dealing(self, ticket: int) -> None:
        return None

    def consumed(self, ticket: int) -> None:
        return None

    async def settled(self) -> None:
        return None

    def close(self) -> None:
        return None


def _retrieved(task: asyncio.Future[None]) -> None:
    if not task.cancelled():
        task.exception()


def window_bytes(mb: float) -> int:
    return max(1, int(math.floor(mb * MB)))


__all__ = ["CREDIT_OP", "DealerWindow", "MaterialWindow", "Unbounded", "Window", "window_bytes"]

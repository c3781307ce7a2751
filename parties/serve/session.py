"""What the three parties run inside one serving session (docs/serve.md, "How it works").

Streams. Each bank owns a stream of secure batches, the batches of its own requests. For each one it sends
the other bank a header (the batch's ids, in order) and the helper a note (only its size class), then both
banks input their features of those ids and score on shares; the flags are opened to the owning bank
only. The two streams run side by side: their batches are told apart by op ids, not by program order.

Op ids. A batch's operations take their ids from a counter that starts at a base derived from (stream,
size class, number of the batch within that class), not from the party's program counter. So the helper
can deal batch j of a class long before any bank issues it, and the banks can run their own and the other
bank's batches concurrently, in whatever order the requests come, and still agree on every message key.

Pools. The helper keeps, per stream and size class, between `low` and `high` batches of material dealt
ahead (refilled to `high` once at or below `low`); a note tells it a batch was taken. After dealing a
batch it sends the owning bank a ready marker (behind the material on the same FIFO link), so the bank
knows its pool's level and whether a batch found its material waiting (a pool hit). The material waits in
the banks' inboxes, bounded by max_buffered_mb; the pool bounds it first (high x size x bytes per score).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, cast

import numpy as np

from mpc.runtime import Op, Party
from mpc.transport import ProtocolViolation
from parties.fraud.model import MLP
from parties.fraud.secure import N_FEATURES, score
from protocols import Context
from protocols.primitives.core import RandomnessProvider

log = logging.getLogger("mpc.serve")

FOREVER = 10.0 * 365 * 86400  # control waits: a service waits for its next request as long as it runs
BATCH_OPS = 1 << 12  # op ids a batch may take (it takes about a dozen)
BATCH, STOP = 1, 2  # header / note kinds
MAX_FOLLOWED = 64  # the other bank's batches in flight here at most (it keeps --max-inflight, at most 64)


def batch_base(stream: int, cls: int, seq: int) -> int:
    """The first op id of batch `seq` of size class `cls` on `stream` (disjoint from the program counter's
    small ids; child ids are hashes, 2^-64 apart)."""
    return (0xA5 << 56) | (stream << 52) | (cls << 48) | (seq * BATCH_OPS)


HEADER, NOTE, READY = 0xA6, 0xA7, 0xA8  # control messages: batch headers, notes to the helper, ready markers
LABELS = {HEADER: "header", NOTE: "note", READY: "ready"}
Opened = asyncio.Task[np.ndarray | None]


def control(kind: int, stream: int, seq: int, cls: int = 0) -> Op:
    """The op of the seq-th control message of a kind on a stream (ready markers: per size class)."""
    return Op((kind << 56) | (stream << 52) | (cls << 48) | seq, LABELS[kind])


class OpView:
    """The party seen through a counter of its own: a batch's Context takes its op ids from `base` on."""

    def __init__(self, party: Party, base: int):
        self._party = party
        self._next = base

    def new_op(self, label: str) -> Op:
        op = Op(self._next, label)
        self._next += 1
        return op

    def __getattr__(self, name: str) -> Any:
        return getattr(self._party, name)


@dataclass(frozen=True)
class Plan:
    """What every party agrees on (compared at session start): size classes, method, model, policy."""

    classes: tuple[int, ...]
    method: str
    model: MLP
    model_digest: str
    reveal_scores: bool

    def class_for(self, n: int) -> int:
        return next(i for i, size in enumerate(self.classes) if size >= n)

    def agreement(self) -> dict[str, str]:
        return {"program": "serve", "serve size classes": ",".join(map(str, self.classes)),
                "serve comparison": self.method, "serve model": self.model_digest,
                "serve reveal scores": "yes" if self.reveal_scores else "no"}


def batch_program(ctx: Context, plan: Plan, banks: Sequence[str], owner: str, size: int,
                  own: np.ndarray | None) -> tuple[Opened, Opened | None]:
    """Issue one batch's operations (every party, the helper too): both banks' inputs, the model, and the
    opening of the flags (and scores, if the policy allows) to the owning bank only."""
    ctx.comparison = plan.method
    me = ctx.name
    x_a = ctx.input(banks[0], own if me == banks[0] else None, shape=(size, N_FEATURES), fixed=True)
    x_b = ctx.input(banks[1], own if me == banks[1] else None, shape=(size, N_FEATURES), fixed=True)
    scores, flags = score(ctx, x_a, x_b, plan.model)
    opened = ctx.reveal(flags, to=[owner])
    return opened, ctx.reveal(scores, to=[owner]) if plan.reveal_scores else None


# -- the banks ---------------------------------------------------------------------------------------------

@dataclass
class Outcome:
    """A batch's answer at its owner: flags (and scores) of its real rows, and whether it was a pool hit."""

    flags: np.ndarray
    scores: np.ndarray | None
    hit: bool
    size: int


class Requests(Protocol):
    """What a bank's session needs from its service: batches of requests, and where answers go."""

    async def next_batch(self) -> list[Any] | None:
        """The next batch's requests (each with `.ids`), at most the largest class in ids; None: stop.
        Cancelling the wait takes nothing."""
        ...

    def deliver(self, batch: list[Any], outcome: Outcome) -> None: ...

    def refuse(self, batch: list[Any], peer: str, reason: str) -> None: ...

    def lookup(self, ids: list[str], size: int) -> np.ndarray:
        """This bank's standardised features of `ids`, padded to `size` rows."""
        ...


@dataclass
class PoolView:
    """The owner's view of its pool of one size class: batches ready (markers in) and taken."""

    ready: int = 0
    taken: int = 0

    @property
    def level(self) -> int:
        return max(0, self.ready - self.taken)


class BankSession:
    """One bank's part of a session: its own stream (batches of its service's requests), the other bank's
    stream (batches announced by headers), and the ready markers of its own pools."""

    def __init__(self, party: Party, provider: RandomnessProvider, plan: Plan, requests: Requests,
                 max_inflight: int = 2):
        self.party = party
        self.provider = provider
        self.plan = plan
        self.requests = requests
        self.banks = list(party.compute_parties)
        self.me = party.name
        self.stream = self.banks.index(self.me)
        self.other = self.banks[1 - self.stream]
        assert party.helper is not None
        self.helper: str = party.helper
        self.pools = [PoolView() for _ in plan.classes]
        self.max_inflight = max_inflight
        self._own: set[asyncio.Task[Any]] = set()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._failed: asyncio.Future[BaseException] = asyncio.get_running_loop().create_future()
        self._peer_stop = asyncio.Event()  # the other bank sent STOP: our stream stops too

    async def run(self) -> None:
        """Until both streams have stopped (this bank drains, or the other one asked to), or a failure."""
        watchers = [self._spawn(self._watch_ready(c)) for c in range(len(self.plan.classes))]
        streams = asyncio.gather(self._spawn(self._own_stream()), self._spawn(self._other_stream()))
        try:
            await asyncio.wait([cast(asyncio.Future[Any], streams), self._failed], return_when=asyncio.FIRST_COMPLETED)
            if self._failed.done():
                raise self._failed.result()
        finally:
            for task in [*watchers, *self._tasks]:
                task.cancel()
            streams.cancel()
            await asyncio.gather(streams, *watchers, *self._tasks, return_exceptions=True)

    def _spawn(self, coro: Awaitable[Any]) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        self._own.discard(task)
        if not task.cancelled() and task.exception() is not None and not self._failed.done():
            self._failed.set_result(cast(BaseException, task.exception()))

    async def _take(self) -> list[Any] | None:
        """The service's next batch, or None once the other bank stops (nothing taken then)."""
        if self._peer_stop.is_set():
            return None
        getter = asyncio.ensure_future(self.requests.next_batch())
        stopper = asyncio.ensure_future(self._peer_stop.wait())
        try:
            await asyncio.wait([getter, stopper], return_when=asyncio.FIRST_COMPLETED)
        except BaseException:  # the session stops: a wait left behind would take the next session's requests
            stopper.cancel()
            getter.cancel()  # a batch it took meanwhile is in the service's in-flight set: refused with the rest
            raise
        stopper.cancel()
        if not getter.done():
            getter.cancel()  # nothing taken
            return None
        return getter.result()

    async def _own_stream(self) -> None:
        seq = 0
        per_class = [0] * len(self.plan.classes)
        while True:
            while len(self._own) >= self.max_inflight:
                await asyncio.wait(set(self._own), return_when=asyncio.FIRST_COMPLETED)
            batch = await self._take()
            if batch is None:
                break
            ids = [i for request in batch for i in request.ids]
            cls = self.plan.class_for(len(ids))
            j = per_class[cls]
            per_class[cls] += 1
            pool = self.pools[cls]
            hit = pool.ready > j
            pool.taken = j + 1
            meta = np.array([BATCH, cls, j, len(ids)], dtype=np.uint64)
            self.party.send(self.other, control(HEADER, self.stream, seq), meta, step=0)
            self.party.send(self.other, control(HEADER, self.stream, seq), _encode_ids(ids), step=1)
            self.party.send(self.helper, control(NOTE, self.stream, seq), meta[:2].copy(), step=0)
            seq += 1
            task = self._spawn(self._own_batch(cls, j, batch, ids, hit))
            self._own.add(task)
        if self._own:  # every batch of ours answered before the others hear that this stream ends
            await asyncio.wait(set(self._own))
        stop = np.array([STOP, 0, 0, 0], dtype=np.uint64)
        self.party.send(self.other, control(HEADER, self.stream, seq), stop, step=0)
        self.party.send(self.helper, control(NOTE, self.stream, seq), stop[:2].copy(), step=0)

    async def _own_batch(self, cls: int, j: int, batch: list[Any], ids: list[str], hit: bool) -> None:
        size = self.plan.classes[cls]
        ctx = Context(cast(Party, OpView(self.party, batch_base(self.stream, cls, j))), self.provider)
        flags, scores = batch_program(ctx, self.plan, self.banks, self.me, size, self.requests.lookup(ids, size))
        flag_values = await flags
        score_values = await scores if scores is not None else None
        await ctx.finish()
        assert flag_values is not None
        self.requests.deliver(batch, Outcome(flag_values[:len(ids)].astype(bool),
                                             None if score_values is None else score_values[:len(ids)], hit, size))

    async def _other_stream(self) -> None:
        stream = 1 - self.stream
        per_class = [0] * len(self.plan.classes)
        seq = 0
        while True:
            op = control(HEADER, stream, seq)
            meta = (await self.party.recv(self.other, op, step=0, dtype=np.uint64, shape=(4,), timeout=FOREVER)).array
            if int(meta[0]) == STOP:
                self._peer_stop.set()
                return
            kind, cls, j, n = (int(v) for v in meta)
            if kind != BATCH or cls >= len(self.plan.classes) or j != per_class[cls] or \
                    not 0 < n <= self.plan.classes[cls]:
                raise ProtocolViolation(self.other, f"{self.me}: {self.other} announced a malformed batch "
                                                    f"(kind {kind}, class {cls}, number {j}, {n} ids)")
            raw = (await self.party.recv(self.other, op, step=1, dtype=np.uint8, timeout=FOREVER)).array
            ids = _decode_ids(raw, n)
            if ids is None:
                raise ProtocolViolation(self.other, f"{self.me}: {self.other} sent malformed ids for a batch")
            per_class[cls] += 1
            seq += 1
            if len(self._tasks) > MAX_FOLLOWED + self.max_inflight + len(self.plan.classes) + 2:
                raise ProtocolViolation(self.other, f"{self.me}: {self.other} has over {MAX_FOLLOWED} batches in "
                                                    "flight at once; stopping rather than growing without bound")
            self._spawn(self._follow_batch(stream, cls, j, ids))

    async def _follow_batch(self, stream: int, cls: int, j: int, ids: list[str]) -> None:
        size = self.plan.classes[cls]
        ctx = Context(cast(Party, OpView(self.party, batch_base(stream, cls, j))), self.provider)
        batch_program(ctx, self.plan, self.banks, self.other, size, self.requests.lookup(ids, size))
        await ctx.finish()

    async def _watch_ready(self, cls: int) -> None:
        pool = self.pools[cls]
        while True:
            await self.party.recv(self.helper, control(READY, self.stream, pool.ready, cls), dtype=np.uint8,
                                  shape=(0,), timeout=FOREVER)
            pool.ready += 1


def _encode_ids(ids: list[str]) -> np.ndarray:
    return np.frombuffer(json.dumps(ids).encode(), dtype=np.uint8)


def _decode_ids(raw: np.ndarray, n: int) -> list[str] | None:
    try:
        ids = json.loads(raw.tobytes().decode())
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None
    if not isinstance(ids, list) or len(ids) != n or not all(isinstance(i, str) for i in ids):
        return None
    return ids


# -- the helper --------------------------------------------------------------------------------------------

@dataclass
class Pool:
    """The helper's count for one (stream, size class): batches dealt and taken; refilling or not."""

    low: int
    high: int
    dealt: int = 0
    taken: int = 0
    refilling: bool = True

    @property
    def level(self) -> int:
        return self.dealt - self.taken

    def wants(self) -> bool:
        """Deal another batch now? Always if a bank waits for one; else refill from `low` up to `high`."""
        if self.level <= 0:
            return True
        if self.level <= self.low:
            self.refilling = True
        if self.level >= self.high:
            self.refilling = False
        return self.refilling


def watermarks(classes: Sequence[int], pool_scores: int) -> list[tuple[int, int]]:
    """(low, high) in batches per size class: about `pool_scores` scores of material per class, at least 2
    batches and at most 64 (a small class's batch costs the helper mostly fixed work)."""
    out = []
    for size in classes:
        high = min(64, max(2, pool_scores // size))
        out.append((max(1, high // 2), high))
    return out


class HelperSession:
    """The helper's part: notes of both streams in, material dealt ahead into every pool, ready markers out."""

    def __init__(self, party: Party, provider: RandomnessProvider, plan: Plan, marks: Sequence[tuple[int, int]]):
        self.party = party
        self.provider = provider
        self.plan = plan
        self.banks = list(party.compute_parties)
        self.pools = [[Pool(low, high) for low, high in marks] for _ in self.banks]
        self.stopped = [False] * len(self.banks)
        self._wake = asyncio.Event()
        self.dealt_batches = 0

    async def run(self) -> None:
        notes = [asyncio.ensure_future(self._notes(s)) for s in range(len(self.banks))]
        dealer = asyncio.ensure_future(self._deal())
        streams = asyncio.gather(*notes)
        try:  # until both streams stop (a failure of the dealer or of a stream ends it at once)
            await asyncio.wait([dealer, cast(asyncio.Future[Any], streams)], return_when=asyncio.FIRST_COMPLETED)
            if dealer.done():
                dealer.result()
            streams.result()
        finally:
            for task in [dealer, *notes]:
                task.cancel()
            await asyncio.gather(dealer, *notes, return_exceptions=True)

    async def _notes(self, stream: int) -> None:
        bank = self.banks[stream]
        seq = 0
        while True:
            note = (await self.party.recv(bank, control(NOTE, stream, seq), dtype=np.uint64, shape=(2,),
                                          timeout=FOREVER)).array
            seq += 1
            if int(note[0]) == STOP:
                self.stopped[stream] = True
                return
            cls = int(note[1])
            if int(note[0]) != BATCH or cls >= len(self.plan.classes):
                raise ProtocolViolation(bank, f"{self.party.name}: {bank} sent a malformed note")
            self.pools[stream][cls].taken += 1
            self._wake.set()

    def _next(self) -> tuple[int, int] | None:
        """The pool to deal into next: one a bank waits on first, then the emptiest one refilling."""
        best, best_key = None, None
        for s, pools in enumerate(self.pools):
            if self.stopped[s]:
                continue
            for c, pool in enumerate(pools):
                if pool.wants():
                    key = (pool.level > 0, pool.level / pool.high)
                    if best_key is None or key < best_key:
                        best, best_key = (s, c), key
        return best

    async def _deal(self) -> None:
        while True:
            target = self._next()
            if target is None:
                self._wake.clear()
                await self._wake.wait()
                continue
            stream, cls = target
            pool = self.pools[stream][cls]
            j = pool.dealt
            ctx = Context(cast(Party, OpView(self.party, batch_base(stream, cls, j))), self.provider)
            batch_program(ctx, self.plan, self.banks, self.banks[stream], self.plan.classes[cls], None)
            await ctx.finish()  # every piece of material handed to the transport
            self.party.send(self.banks[stream], control(READY, stream, j, cls), np.zeros(0, dtype=np.uint8))
            pool.dealt += 1
            self.dealt_batches += 1

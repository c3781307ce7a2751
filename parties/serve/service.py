"""A party's serving process: sessions one after another, and at a bank the requests of its HTTP API.

The session loop: each session is one `run_on` (mpc/runtime.py) of the serving program. When a peer dies,
the session fails at once (naming it), every request waiting or in flight is refused with 503 naming that
peer, and a new session starts, waiting as long as it takes for every peer to be back; the HTTP server
stays up throughout. SIGTERM drains: new requests are refused, those queued and in flight are answered,
the other parties are told this bank's stream ends, and the session closes with the usual goodbyes.

Requests: a bounded queue (in ids, 429 beyond it). A bank's stream takes from it whole requests up to the
largest size class in ids; while a batch is in flight the next one gathers what arrives (micro-batching
without a fixed wait; `batch_wait_ms` adds one). Every request's future is settled exactly once: answered,
or refused (503) when its session ends.
"""

from __future__ import annotations

import asyncio
import collections
import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mpc.config import Topology
from mpc.keys import CurveKeys
from mpc.runtime import Party, run_on
from mpc.stats import Stats
from mpc.transport import PeerError
from parties.fraud.model import MODEL_FILE, load
from parties.serve import metrics as m
from parties.serve.session import BankSession, HelperSession, Outcome, Plan, watermarks
from parties.serve.source import FeatureTable, Source
from parties.serve.transport import ServeTransport
from protocols import Context

log = logging.getLogger("mpc.serve")
RETRY_S = 0.5  # between a failed session and the next start (the peers' old links close meanwhile)


@dataclass
class Options:
    classes: tuple[int, ...] = (1, 8, 64, 256)
    method: str = "dcf"
    model_file: str = str(MODEL_FILE)
    reveal_scores: bool = False
    pool_scores: int = 512
    max_queue: int = 4096
    max_inflight: int = 2
    batch_wait_ms: float = 0.0
    request_timeout_s: float = 10.0
    drain_timeout_s: float = 10.0


class Unavailable(Exception):
    """503: the session is not up (a peer away, named), or this bank drains."""

    def __init__(self, reason: str, peer: str | None = None):
        super().__init__(reason)
        self.peer = peer


class Overloaded(Exception):
    """429: the bounded queue is full."""


@dataclass(eq=False)
class Pending:
    """One HTTP request: its ids, and its answer (flags, scores or None) or its refusal (Unavailable)."""

    ids: list[str]
    future: asyncio.Future[tuple[np.ndarray, np.ndarray | None]]


def make_plan(opts: Options) -> Plan:
    digest = hashlib.sha256(Path(opts.model_file).read_bytes()).hexdigest()[:16]
    return Plan(tuple(sorted(set(opts.classes))), opts.method, load(opts.model_file)["joint"], digest,
                opts.reveal_scores)


class Service:
    """One party's serving process (bank or helper): the session loop and, at a bank, the requests."""

    def __init__(self, topology: Topology, name: str, opts: Options, keys: CurveKeys | None,
                 source: Source | None = None, dealer_workers: int = 1):
        self.topology = topology
        self.name = name
        self.opts = opts
        self.keys = keys
        self.plan = make_plan(opts)
        self.source = source
        self.is_bank = topology.party(name).role != "helper"
        self.dealer_workers = dealer_workers
        self.table: FeatureTable | None = None
        self.queue: collections.deque[Pending] = collections.deque()
        self.queued_ids = 0
        self.inflight: set[Pending] = set()
        self._nonempty = asyncio.Event()
        self.draining = False
        self.up = False
        self.down_peer: str | None = None
        self.down_reason = "starting: no session yet"
        self.transport: ServeTransport | None = None
        self.session: BankSession | None = None
        self.helper_session: HelperSession | None = None
        self.sessions = 0
        self._stats_done = Stats()
        self._stats: Stats | None = None
        self._stop = asyncio.Event()
        self._metrics()

    # -- metrics -------------------------------------------------------------------------------------------
    def _metrics(self) -> None:
        self.requests = m.Counter("mpc_serve_requests_total", "HTTP score requests by status code.")
        self.latency = m.Histogram("mpc_serve_request_seconds", "Latency of answered score requests (200).",
                                   m.LATENCY_BUCKETS)
        self.batch_sizes = m.Histogram("mpc_serve_batch_ids", "Real ids per secure batch of this bank.",
                                       sorted(set(self.plan.classes)))
        self.batches = m.Counter("mpc_serve_batches_total", "Secure batches of this bank by size class.")
        self.pool_hits = m.Counter("mpc_serve_pool_total", "Batches whose material was ready (hit) or not (miss).")
        self.sessions_total = m.Counter("mpc_serve_sessions_total", "Sessions started, by how they ended.")

        def pool_levels() -> dict[tuple[tuple[str, str], ...], float]:
            pools = self.session.pools if self.session is not None else []
            return {(("size", str(size)),): float(p.level) for size, p in zip(self.plan.classes, pools, strict=False)}

        def traffic() -> dict[tuple[tuple[str, str], ...], float]:
            out: dict[tuple[tuple[str, str], ...], float] = {}
            for phase in ("online", "offline"):
                for direction in ("sent", "received"):
                    total = getattr(self._stats_done.total(phase=phase), f"bytes_{direction}")
                    if self._stats is not None:
                        total += getattr(self._stats.total(phase=phase), f"bytes_{direction}")
                    out[(("direction", direction), ("phase", phase))] = float(total)
            return out

        self.gauges = [
            m.Gauge("mpc_serve_up", "1 while the session with every peer is up.", lambda: {(): float(self.up)}),
            m.Gauge("mpc_serve_queue_ids", "Ids waiting in the queue.", lambda: {(): float(self.queued_ids)}),
            m.Gauge("mpc_serve_pool_batches", "Batches of material ready in this bank's pool, per size class.",
                    pool_levels),
            m.Gauge("mpc_serve_rounds", "Online rounds of a secure batch (measured: the deepest message).",
                    lambda: {(): float(self._stats.rounds if self._stats else self._stats_done.rounds)}),
            m.Gauge("mpc_serve_bytes", "Bytes on this party's links since it started (offline: to or from the "
                    "helper).", traffic),
        ]

    def render_metrics(self) -> str:
        return m.render([self.requests, self.latency, self.batch_sizes, self.batches, self.pool_hits,
                         self.sessions_total, *self.gauges])

    def unavailable(self) -> Unavailable:
        """Why no request can be served now, naming the peer that is away."""
        if self.draining:
            return Unavailable(f"{self.name} is draining (stopping)")
        missing = self.transport.missing() if self.transport is not None else []
        if self.down_peer is not None and (self.down_peer in missing or not missing):
            return Unavailable(f"{self.down_reason}; waiting for it to rejoin", self.down_peer)
        if missing:
            return Unavailable(f"waiting for {', '.join(missing)} to join a new session", missing[0])
        return Unavailable(self.down_reason, self.down_peer)

    # -- health ----------------------------------------------------------------------------------------
    def health(self) -> tuple[bool, dict[str, Any]]:
        body: dict[str, Any] = {"party": self.name, "sessions": self.sessions}
        if self.draining:
            return False, {**body, "status": "draining", "reason": "draining: stopping after the requests in flight"}
        if not self.up:
            why = self.unavailable()
            return False, {**body, "status": "unavailable", "reason": str(why), "peer": why.peer}
        if self.session is not None:
            levels = {str(size): p.level for size, p in zip(self.plan.classes, self.session.pools, strict=True)}
            body["pool"] = levels
            if not any(levels.values()):
                return False, {**body, "status": "unavailable", "reason": "no material in the pool yet (the "
                               "helper is dealing)"}
        return True, {**body, "status": "ok"}

    # -- requests (banks) --------------------------------------------------------------------------------
    def submit(self, ids: list[str]) -> Pending:
        """Queue a request, or raise Unavailable (503) / Overloaded (429)."""
        if self.draining or not self.up:
            raise self.unavailable()
        if self.queued_ids + len(ids) > self.opts.max_queue:
            raise Overloaded(f"the queue is full ({self.queued_ids} of {self.opts.max_queue} ids waiting)")
        pending = Pending(ids, asyncio.get_running_loop().create_future())
        self.queue.append(pending)
        self.queued_ids += len(ids)
        self._nonempty.set()
        return pending

    async def next_batch(self) -> list[Pending] | None:
        """Whole requests up to the largest size class in ids; None once draining with nothing left."""
        limit = self.plan.classes[-1]
        while not self.queue:
            if self.draining:
                return None
            self._nonempty.clear()
            await self._nonempty.wait()
        if self.opts.batch_wait_ms > 0 and self.queued_ids < limit:
            await asyncio.sleep(self.opts.batch_wait_ms / 1000)
            if not self.queue:
                return await self.next_batch()
        batch: list[Pending] = []
        n = 0
        while self.queue and n + len(self.queue[0].ids) <= limit:
            pending = self.queue.popleft()
            n += len(pending.ids)
            batch.append(pending)
        self.queued_ids -= n
        self.inflight.update(batch)
        return batch

    def deliver(self, batch: list[Pending], outcome: Outcome) -> None:
        at = 0
        for pending in batch:
            k = len(pending.ids)
            if not pending.future.done():
                scores = outcome.scores[at:at + k] if outcome.scores is not None else None
                pending.future.set_result((outcome.flags[at:at + k], scores))
            at += k
            self.inflight.discard(pending)
        self.batches.inc(size=str(outcome.size))
        self.batch_sizes.observe(at)
        self.pool_hits.inc(result="hit" if outcome.hit else "miss")

    def refuse(self, batch: list[Pending], peer: str | None, reason: str) -> None:
        for pending in batch:
            if not pending.future.done():
                pending.future.set_exception(Unavailable(reason, peer))
                pending.future.exception()  # retrieved: the HTTP handler may have stopped waiting
            self.inflight.discard(pending)

    def refuse_all(self, peer: str | None, reason: str) -> None:
        waiting = list(self.queue)
        self.queue.clear()
        self.queued_ids = 0
        self.refuse(waiting + list(self.inflight), peer, reason)

    def lookup(self, ids: list[str], size: int) -> np.ndarray:
        assert self.table is not None
        return self.table.lookup(ids, size)

    async def reload(self) -> FeatureTable:
        """Read the bank's data again (off the event loop); batches issued after this use it."""
        assert self.source is not None
        table = await asyncio.to_thread(self.source.load)
        self.table = table
        log.info("%s: data loaded from %s: %d accounts listed, %d transactions", self.name,
                 self.source.description, len(table.ids), table.transactions)
        return table

    # -- sessions --------------------------------------------------------------------------------------
    async def drain(self) -> None:
        """Refuse new requests, answer those queued and in flight, end the session, stop the loop."""
        self.draining = True
        self._nonempty.set()
        self._stop.set()

    async def run_sessions(self) -> None:
        """Sessions one after another until drained (or cancelled)."""
        stats = Stats()
        while not self._stop.is_set():
            stats = Stats()
            self._stats = stats
            transport = ServeTransport(self.topology, self.name, stats, keys=self.keys,
                                       agreement={**self.topology.agreed_settings(), **self.plan.agreement()})
            self.transport = transport
            transport.on_failure(self._on_failure)
            try:
                if self.is_bank and not self._stop.is_set():
                    await run_on(transport, self.topology, self.name, self._bank_program, stats)
                elif not self._stop.is_set():
                    await run_on(transport, self.topology, self.name, self._helper_program, stats,
                                 dealer_workers=self.dealer_workers)
                ended, peer = "stopped", (self.session.other if self.session is not None else None)
                reason = f"{peer} stopped its stream (draining or restarting)" if peer else "the session ended"
            except PeerError as exc:
                ended, peer, reason = "peer failed", exc.peer, f"{exc.peer} is away: {exc}"
            except OSError as exc:
                ended, peer, reason = "error", None, f"cannot start a session: {exc}"
            except Exception as exc:  # noqa: BLE001 - a bug in a session must not stop the service
                log.exception("%s: the session failed", self.name)
                ended, peer, reason = "error", None, f"the session failed ({type(exc).__name__})"
            self.up = False
            self.session = None
            self.helper_session = None
            self.down_peer, self.down_reason = peer, reason
            self.refuse_all(peer, reason)
            self._stats_done = _added(self._stats_done, stats)
            self._stats = None
            self.sessions_total.inc(ended=ended)
            if self.draining and ended == "stopped":
                log.info("%s: session closed (drained)", self.name)
            else:
                log.warning("%s: session ended (%s): %s", self.name, ended, reason)
            if not self._stop.is_set():
                await asyncio.sleep(RETRY_S)

    def _on_failure(self, error: PeerError) -> None:
        """The session failed (a peer died, aborted or broke the protocol): refuse now, not once the
        session has finished closing (its abort may wait for the links up to two seconds)."""
        if self.up:
            self.up = False
            self.down_peer, self.down_reason = error.peer, f"{error.peer} is away: {error}"
            self.refuse_all(self.down_peer, self.down_reason)

    async def _bank_program(self, party: Party) -> None:
        ctx = await Context.create(party)
        session = BankSession(party, ctx.provider, self.plan, self, self.opts.max_inflight)
        self._started(party)
        self.session = session
        await session.run()

    async def _helper_program(self, party: Party) -> None:
        ctx = await Context.create(party)
        helper = HelperSession(party, ctx.provider, self.plan, watermarks(self.plan.classes, self.opts.pool_scores))
        self._started(party)
        self.helper_session = helper
        await helper.run()

    def _started(self, party: Party) -> None:
        self.sessions += 1
        self.up = True
        self.down_peer = None
        log.info("%s: session %s up with %s", self.name, party.session_id[:12], ", ".join(party.peers))


def _added(a: Stats, b: Stats) -> Stats:
    out = a.copy()
    for key, counter in b.by_op.items():
        if key in out.by_op:
            out.by_op[key].add(counter)
        else:
            out.by_op[key] = counter
    out.rounds = max(a.rounds, b.rounds)
    return out

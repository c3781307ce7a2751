"""An N-party full mesh over ZeroMQ (zmq.asyncio, TCP). Moves arrays; knows nothing of shares.

This module composes the parts, each in a module of its own: sockets and CURVE (sockets.py), liveness
(liveness.py), session agreement (session.py), keyed buffering (inbox.py), emulated latency and
bandwidth (emulation.py), the wire format (frames.py). What it does itself: checking each frame against
its link, and the order of start, send, receive, goodbye, abort and shutdown.

Guarantees:
- Messages are matched by key (sender, op, step), never by arrival order (inbox.py).
- Every link is FIFO with per-link sequence numbers (exactly previous + 1) and a session id agreed at
  start, so a lost, replayed or stale message is detected, never silently used.
- Start-up waits at most timeout_s for every peer; mid-run a wait lasts as long as the peer is alive (a busy
  peer is not an absent one): a dead or frozen peer is named by liveness (liveness.py), and a peer's abort
  or goodbye fails waits on it at once. Every error names the peer.
"""

from __future__ import annotations

import asyncio
import logging
import math
import secrets
import time
from collections.abc import Callable, Mapping

import numpy as np
import zmq
import zmq.asyncio

from mpc.config import Topology
from mpc.keys import CurveKeys
from mpc.profile import PROFILE
from mpc.stats import Stats
from mpc.transport import session as sessions
from mpc.transport import sockets
from mpc.transport.base import FirstFailure, Message, wait_for_goodbyes
from mpc.transport.delay import Body, Inbound
from mpc.transport.errors import PeerError, PeerGone, PeerTimeout, ProtocolViolation, aborted
from mpc.transport.frames import (
    HEADER_SIZE,
    SESSION_BYTES,
    FrameError,
    Header,
    Kind,
    Partial,
    decode_header,
    decode_payload,
    encode_header,
    message_limit,
    payload_view,
    plan_messages,
    split_frames,
)
from mpc.transport.inbox import Inbox, Receiving
from mpc.transport.liveness import Liveness

log = logging.getLogger("mpc.transport")

_EMPTY = np.zeros(0, dtype=np.uint8)
_NO_SESSION = sessions.NO_SESSION
ABORT_LINGER_MS = 300
# A party still waiting for its peers this long after it started says where it listens and whom it waits for
WAITING_NOTE_S = 2.0

__all__ = ["Message", "ZmqTransport"]


class ZmqTransport(Receiving):
    """The mesh seen from one party. Create inside the running event loop; `start()`, use, `close()`."""

    def __init__(self, topology: Topology, me: str, stats: Stats, *, timeout_s: float | None = None,
                 keys: CurveKeys | None = None, agreement: Mapping[str, str] | None = None,
                 start_timeout_s: float | None = None):
        self.topology = topology
        self.me = me
        self.my_index = topology.index(me)
        self.peers = [n for n in topology.names if n != me]
        self.stats = stats
        self.timeout_s = timeout_s if timeout_s is not None else topology.timeout_s
        # how long start() waits for every peer's hello (math.inf: until they come)
        self.start_timeout_s = start_timeout_s if start_timeout_s is not None else self.timeout_s
        self.max_payload = int(topology.max_message_mb * 1024 * 1024)
        self.max_buffered = max(int(topology.max_buffered_mb * 1024 * 1024), self.max_payload)
        # the largest ZeroMQ message: small frames are joined up to it, larger ones cut into pieces of it
        self.message_limit = message_limit(self.max_payload)
        self._partial: dict[str, Partial] = {}  # per peer: a large frame whose pieces are still arriving
        # Waits mid-run are bounded by liveness, not time: a busy peer is not an absent one (inbox.py).
        self.inbox = Inbox(topology, me, stats, self.timeout_s, self.max_buffered, self._fail, bounded=False)
        self.session = _NO_SESSION
        # Opaque settings every party must share (the runtime fills them in); sent with the hello and
        # compared, so that a mismatch stops the start rather than the middle of a run, or worse.
        self.agreement = dict(agreement or {})
        self.keys = keys
        self.liveness = Liveness(me, keys is not None, self._fail, self._settled,
                                 lambda: self.session != _NO_SESSION, lambda: self._closing)
        self._ctx: zmq.asyncio.Context | None = None
        self._router: zmq.asyncio.Socket | None = None
        self._auth: sockets.PartyAuthenticator | None = None
        self._sockets: list[zmq.asyncio.Socket] = []  # every socket made, so that none outlives the context
        self._monitors: list[asyncio.Task[None]] = []
        self._reader: asyncio.Task[None] | None = None
        self._links: dict[str, sockets.Link] = {}
        self._pending_out: dict[str, list[bytes | memoryview]] = {}
        self._flush_scheduled = False
        self._inbound: dict[str, Inbound] = {}
        self._next_seq_out: dict[str, int] = {p: 0 for p in self.peers}
        self._next_seq_in: dict[str, int] = {p: 0 for p in self.peers}
        self._hello: dict[str, bytes] = {}  # each party's session nonce, once its hello is accepted
        self._hello_done: asyncio.Future[None] | None = None
        self._early: list[tuple[str, Header, np.ndarray]] = []  # data that came before our session was agreed
        self._bye: set[str] = set()
        self._bye_seen: set[str] = set()  # goodbyes arrived, maybe still behind data the emulation holds
        self._aborted: set[str] = set()
        self._bye_done: asyncio.Future[None] | None = None
        self._failures = FirstFailure()
        self._closing = False

    @property
    def _inbox(self) -> dict[tuple[int, int, int], asyncio.Future[Message]]:
        return self.inbox.futures

    # -- lifecycle ------------------------------------------------------------------------------
    async def start(self) -> bytes:
        """Bind, connect, and agree a fresh session id with every peer (waits for late peers)."""
        loop = asyncio.get_running_loop()
        self._hello_done = loop.create_future()
        self._bye_done = loop.create_future()
        self._ctx = zmq.asyncio.Context()
        await self._listen()
        self._connect()
        self.liveness.start()
        self._reader = loop.create_task(self._read_loop(), name=f"{self.me}-reader")
        self._reader.add_done_callback(self._reader_done)
        await self._agree_session()
        early, self._early = self._early, []
        for peer, header, payload in early:
            self._accept_data(peer, header, payload)
        return self.session

    async def _listen(self) -> None:
        assert self._ctx is not None
        router = sockets.router(self._ctx, self.me, self.keys, self.max_payload)
        self._sockets.append(router)
        if self.keys is not None:
            self._auth = sockets.authenticator(self._ctx, self.me, self.keys)
        host, port = self.topology.party(self.me).listen_address
        try:
            router.bind(f"tcp://{sockets.bind_host(host)}:{port}")
        except zmq.ZMQError as exc:
            await self._shutdown()
            raise OSError(f"{self.me}: cannot listen on {host}:{port}: {exc}") from None
        self._router = router
        if self.keys is not None:
            monitor = router.get_monitor_socket(sockets.ROUTER_EVENTS)
            self._sockets.append(monitor)
            self._monitors.append(asyncio.get_running_loop().create_task(
                self.liveness.watch_router(monitor), name=f"{self.me}-watch-in"))

    def _connect(self) -> None:
        assert self._ctx is not None
        loop = asyncio.get_running_loop()
        for peer in self.peers:
            sock = sockets.dealer(self._ctx, self.me, peer, self.keys, linger_s=min(self.timeout_s, 5.0),
                                  heartbeat_s=self.topology.heartbeat_s,
                                  heartbeat_timeout_s=self.topology.heartbeat_timeout_s)
            self._sockets.append(sock)
            self.liveness.monitor(self._ctx, peer, sock, sockets.MONITOR_EVENTS)
            sock.connect(f"tcp://{sockets.address(self.topology.party(peer))}")
            link = sockets.Link(peer, sock, self.topology.link(self.me, peer))
            link.task = loop.create_task(link.run(), name=f"{self.me}->{peer}")
            self._links[peer] = link

    async def _agree_session(self) -> None:
        """Hello to every peer with a fresh nonce and our settings; wait for all of theirs."""
        assert self._hello_done is not None
        nonce = secrets.token_bytes(SESSION_BYTES)
        self._hello[self.me] = nonce
        hello = sessions.hello_payload(self.agreement)
        for peer in self.peers:
            self._send_control(peer, Kind.HELLO, hello, session=nonce)
        if not self.peers:
            self._hello_done.set_result(None)
        limit = self.start_timeout_s
        try:
            try:  # the peers usually come at once; if they do not, say where we listen and whom we wait for
                await asyncio.wait_for(asyncio.shield(self._hello_done), min(limit, WAITING_NOTE_S))
            except TimeoutError:
                if limit <= WAITING_NOTE_S:
                    raise
                self._say_waiting(limit)
                await asyncio.wait_for(asyncio.shield(self._hello_done),
                                       None if limit == math.inf else limit - WAITING_NOTE_S)
        except TimeoutError:
            missing = [p for p in self.peers if p not in self._hello]
            failures = self.liveness.handshake_failures
            hints = [f"{failures[p]} secure handshakes with {p} failed: is {p}'s public key in "
                     "our topology its current one?" for p in missing if failures.get(p)]
            raise PeerTimeout(
                missing[0],
                f"{self.me}: timed out after {limit:g} s waiting for "
                + ", ".join(f"{p} ({sockets.address(self.topology.party(p))})" for p in missing)
                + " to start; is it running and reachable? (--start-timeout waits longer)"
                + "".join(f" ({h})" for h in hints),
            ) from None
        self.session = sessions.session_id([self._hello[name] for name in self.topology.names])

    def _say_waiting(self, limit: float) -> None:
        host, port = self.topology.party(self.me).listen_address
        missing = [p for p in self.peers if p not in self._hello]
        until = "until they come" if limit == math.inf else f"up to {limit:g} s in all"
        log.warning("%s: listening on %s:%s; waiting for %s to start (%s)", self.me, host, port,
                    ", ".join(f"{p} at {sockets.address(self.topology.party(p))}" for p in missing), until)

    async def close(self) -> None:
        """Goodbye barrier, then close: every peer has received all we sent before we tear down."""
        if self._ctx is None:
            return
        try:
            if self._failures.error is None and self.session != _NO_SESSION:
                await self._say_goodbye()
            await self._drain_links(timeout=min(self.timeout_s, 5.0))
        finally:
            await self._shutdown()
        if self._failures.error is not None:
            # A peer failed after our program finished: the run as a whole did not succeed.
            raise self._failures.error

    async def _say_goodbye(self) -> None:
        for peer in self.peers:
            self._send_control(peer, Kind.BYE, _EMPTY)
        self._flush()
        if self.peers:
            assert self._bye_done is not None
            await wait_for_goodbyes(self.me, self.peers, self._bye_done, self._bye, self.timeout_s, self._fail,
                                    bounded=False)

    async def abort(self, reason: str) -> None:
        """Tell every peer this party is stopping with `reason`, then close."""
        if self._ctx is None:
            return
        text = reason.encode("utf-8", "replace")[:4000]
        try:
            for peer in self.peers:
                if peer not in self._aborted:
                    self._send_control(peer, Kind.ABORT, np.frombuffer(text, dtype=np.uint8))
            self._flush()
            await self._drain_links(timeout=min(self.timeout_s, 2.0))
        finally:
            # The abort is best effort: peers may be closing too, so do not linger long for them.
            await self._shutdown(linger_ms=ABORT_LINGER_MS)

    async def _drain_links(self, timeout: float) -> None:
        waits = [link.queue.join() for peer, link in self._links.items()
                 if link.task and not link.task.done() and not self._gone(peer)]
        if waits:
            try:
                await asyncio.wait_for(asyncio.gather(*waits), timeout)
            except TimeoutError:
                log.warning("%s: some messages were still queued at close", self.me)

    async def _shutdown(self, linger_ms: int | None = None) -> None:
        self._closing = True
        try:
            for sock in [*(link.sock for link in self._links.values()), self._router]:
                if sock is not None and not sock.closed:
                    sock.disable_monitor()  # before its monitor socket closes, or closing blocks
            self.liveness.stop()
            tasks = [t for t in [self._reader, *(lk.task for lk in self._links.values()), *self._monitors,
                                 *(ib.task for ib in self._inbound.values())] if t is not None]
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            for peer, link in self._links.items():
                # Nothing more can reach a peer that aborted, died or froze: do not linger for it (closing
                # lingered up to 5 s on the socket to a frozen helper before its failure was reported).
                link.sock.close(0 if self._gone(peer) else linger_ms)
            if self._router is not None:
                self._router.close(0)
        finally:
            self.liveness.stop()  # idempotent; its monitor sockets must be closed before term()
            if self._auth is not None:  # its ZAP socket is one more socket of the context
                self._auth.stop()
                self._auth = None
            ctx, self._ctx = self._ctx, None
            if ctx is not None:
                # Whatever an interrupted shutdown (or a task cancelled before it ran) left open is closed
                # here: an open socket would make term() wait forever, in whichever thread or GC pass ran it.
                for sock in self._sockets:
                    if not sock.closed:
                        sock.close(0)
                # Dealers linger (bounded) to hand the last frames to the kernel; term() waits for that, in a
                # thread of its own: the default executor may be busy with a program's work (dealing).
                await sockets.in_own_thread(ctx.term, f"{self.me}-term")
        self.inbox.fail_waits(self._failures.error or PeerGone(self.me, f"{self.me}: transport closed"))

    # -- sending --------------------------------------------------------------------------------
    def send(
        self, peer: str, op: int, step: int, array: np.ndarray, *, depth: int, tag: str, phase: str = "online"
    ) -> None:
        """Queue `array` for `peer` under key (op, step). Non-blocking; never modify `array` afterwards."""
        with PROFILE.section("transport"):
            self._send(peer, op, step, array, depth=depth, tag=tag, phase=phase)

    def _send(self, peer: str, op: int, step: int, array: np.ndarray, *, depth: int, tag: str, phase: str) -> None:
        if self._failures.error is not None:
            raise self._failures.error
        if peer not in self._links:
            raise ValueError(f"{self.me}: no peer named {peer!r}")
        view = payload_view(array)
        if len(view) > self.max_payload:
            raise ValueError(f"{self.me}: message of {len(view)} bytes exceeds max_message_mb")
        header = Header(Kind.DATA, self.session, op, step, self.my_index, np.dtype(array.dtype),
                        tuple(array.shape), depth, self._take_seq(peer),
                        self._links[peer].due(HEADER_SIZE + len(view)))
        self._queue_frames(peer, encode_header(header), view)
        self.stats.record_send(phase, tag, HEADER_SIZE + len(view), depth)

    def _send_control(self, peer: str, kind: Kind, payload: np.ndarray, session: bytes | None = None) -> None:
        """Hello, goodbye or abort. Goodbyes and aborts are never held by the emulated network: a peer that
        stops must be heard before its disconnect is, or the others would blame the wrong party."""
        link = self._links.get(peer)
        emulated = kind is Kind.HELLO and link is not None
        header = Header(kind, session or self.session, 0, 0, self.my_index, np.dtype(payload.dtype),
                        tuple(payload.shape), 0, self._take_seq(peer),
                        link.due(HEADER_SIZE + payload.nbytes) if emulated and link else 0)
        self._queue_frames(peer, encode_header(header), payload_view(payload))

    def _take_seq(self, peer: str) -> int:
        seq = self._next_seq_out[peer]
        self._next_seq_out[peer] = seq + 1
        return seq

    def _queue_frames(self, peer: str, header: bytes, payload: memoryview) -> None:
        """Coalesce everything queued for a peer in this event-loop turn into one send."""
        self._pending_out.setdefault(peer, []).extend((header, payload))
        if not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        with PROFILE.section("transport"):
            self._flush_pending()

    def _flush_pending(self) -> None:
        self._flush_scheduled = False
        if not self._pending_out:
            return
        pending, self._pending_out = self._pending_out, {}
        for peer, frames in pending.items():
            link = self._links.get(peer)
            if link is not None:  # none yet only if start() failed part-way
                for message in self._pack(frames):
                    link.queue.put_nowait(message)
                    self.stats.transport_sends += 1

    def _pack(self, frames: list[bytes | memoryview]) -> list[list[bytes | memoryview]]:
        """Group (header, payload) pairs into messages (frames.plan_messages): small frames share one up to
        the message limit; a larger frame goes in pieces of the limit, so that large transfers stay
        pipelined (libzmq encrypts, sends and decrypts message by message)."""
        sizes = [len(frames[i]) + len(frames[i + 1]) for i in range(0, len(frames), 2)]
        messages: list[list[bytes | memoryview]] = []
        for plan in plan_messages(sizes, self.message_limit):
            parts: list[bytes | memoryview] = []
            for frame, lo, hi in plan:
                header, payload = frames[2 * frame], memoryview(frames[2 * frame + 1])
                if lo == 0:
                    parts.append(header)
                    parts.append(payload[:hi - HEADER_SIZE])
                else:
                    parts.append(payload[lo - HEADER_SIZE:hi - HEADER_SIZE])
            messages.append(parts)
        return messages

    # -- receiving ------------------------------------------------------------------------------
    async def _read_loop(self) -> None:
        assert self._router is not None
        names = {n.encode(): n for n in self.peers}
        while True:
            # pyzmq returns a queued message without suspending: with a backlog (a helper's gigabytes of
            # material) this loop would hold the event loop until it is drained, and a peer's death, the
            # program and every timer would wait behind it (a dead helper was named 45 s late). So it
            # lets the others run before each message.
            await asyncio.sleep(0)
            parts = await self._router.recv_multipart(copy=False)
            peer = names.get(parts[0].bytes)
            if peer is None:
                log.warning("%s: dropped a message from unknown sender %r", self.me, parts[0].bytes[:40])
                continue
            if self.keys is not None and len(parts) > 1:
                authenticated = parts[1].get("User-Id")
                if authenticated != peer:
                    log.warning("%s: dropped a message claiming to be from %s but authenticated as %s",
                                self.me, peer, authenticated)
                    continue
            if len(parts) != 2:
                log.warning("%s: dropped a malformed message from %s (%d parts)", self.me, peer, len(parts))
                continue
            try:
                with PROFILE.section("transport"):
                    self._handle_message(peer, parts[1].buffer)
            except Exception as exc:  # a bug's last line of defence: never a dead reader
                self._on_handler_error(peer, exc)

    def _reader_done(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None and not self._closing:
            exc = task.exception()
            self._fail(PeerError(self.me, f"{self.me}: the receive path failed ({type(exc).__name__}: {exc})"))

    def _on_handler_error(self, peer: str, exc: Exception) -> None:
        log.debug("%s: error handling a message from %s", self.me, peer, exc_info=exc)
        if isinstance(exc, MemoryError):  # our own failure, not the peer's
            self._fail(PeerError(self.me, f"{self.me}: ran out of memory (MemoryError) receiving from {peer}"))
            return
        self._fail(ProtocolViolation(peer, f"{self.me}: could not handle a message from {peer} "
                                           f"({type(exc).__name__}); stopping"))

    def _handle_message(self, peer: str, body: memoryview) -> None:
        """Route every frame packed in one message, or join the next piece of a large frame; a malformed
        frame drops it and the rest of the message (a malformed piece, the whole frame)."""
        partial = self._partial.pop(peer, None)
        try:
            if partial is not None:
                if not partial.add(body):
                    self._partial[peer] = partial
                elif not self._handle_decoded(peer, partial.header, partial.payload(), held=True):
                    self.inbox.release(peer, partial.header.payload_size)
                return
            for header, payload in split_frames(body, self.max_payload, self.message_limit):
                if len(payload) < header.payload_size:  # the first piece of a large frame: its whole size
                    if self.inbox.hold(peer, header.payload_size):  # counts from now (else the run stops)
                        self._partial[peer] = Partial(header, payload, self.message_limit)
                    return
                if not self._handle_decoded(peer, header, payload):
                    return
        except FrameError as exc:
            if partial is not None:
                self.inbox.release(peer, partial.header.payload_size)
            log.warning("%s: dropped a frame from %s: %s", self.me, peer, exc)

    def _handle_frame(self, peer: str, raw_header: memoryview | bytes, payload: memoryview | bytes) -> bool:
        """Validate one (header, payload) frame and route it; False: dropped or failed."""
        try:
            header = decode_header(raw_header, self.max_payload)
        except FrameError as exc:
            log.warning("%s: dropped a frame from %s: %s", self.me, peer, exc)
            return False
        return self._handle_decoded(peer, header, memoryview(payload))

    def _handle_decoded(self, peer: str, header: Header, payload: memoryview, held: bool = False) -> bool:
        """Check a decoded frame against its link (sender, session, sequence) and route it. `held`: its
        bytes are already counted against max_buffered_mb (a large frame, from its first piece on).

        Order matters: whatever is dropped (malformed, stale) does not take a sequence number; an abort is
        acted on at once, whatever its sequence number and even from a party that never agreed the session.
        """
        body: Body = payload
        try:
            if header.sender != self.topology.index(peer):
                if header.kind is Kind.HELLO:
                    # the peer's own topology lists the parties in another order: nothing could be routed
                    self._fail(ProtocolViolation(
                        peer, f"{self.me}: {peer} numbers the parties differently (it is party {header.sender} in "
                              f"its topology, {self.topology.index(peer)} in ours); every party must use the "
                              "same topology, parties in the same order"))
                    return False
                raise FrameError(f"header claims sender index {header.sender}, socket says {peer}")
            if header.kind is Kind.DATA:
                body = decode_payload(header, payload)  # every check numpy makes, before anything is kept
            elif len(payload) != header.payload_size:
                raise FrameError(f"payload has {len(payload)} bytes, header claims {header.payload_size}")
        except FrameError as exc:
            log.warning("%s: dropped a frame from %s: %s", self.me, peer, exc)
            return False
        if header.kind is Kind.ABORT and (_NO_SESSION in (self.session, header.session)
                                          or header.session == self.session):
            self._on_abort(peer, payload)
            return False
        if header.kind is not Kind.HELLO and self.session != _NO_SESSION and header.session != self.session:
            log.warning("%s: dropped a frame from %s with a stale session id", self.me, peer)
            return False
        expected = self._next_seq_in[peer]
        if header.seq != expected:
            self._fail(ProtocolViolation(
                peer, f"{self.me}: link from {peer} lost or replayed messages (sequence {header.seq}, "
                      f"expected {expected}); stopping rather than computing on incomplete data"))
            return False
        self._next_seq_in[peer] = expected + 1
        if isinstance(body, np.ndarray) and not held and not self.inbox.hold(peer, body.nbytes):
            return False
        if header.kind is Kind.BYE:
            self._bye_seen.add(peer)
        self._deliver_when_due(peer, header, body)
        return True

    def _deliver_when_due(self, peer: str, header: Header, body: Body) -> None:
        """Dispatch now, or behind the link's frames the emulated network still holds."""
        inbound = self._inbound.get(peer)
        if header.due > time.monotonic_ns() or (inbound is not None and inbound.queue):
            if inbound is None:
                inbound = self._inbound[peer] = Inbound(self._dispatch, peer, self._on_handler_error)
            inbound.push(header, body)
        else:
            self._dispatch(peer, header, body)

    def _on_abort(self, peer: str, payload: memoryview) -> None:
        reason = bytes(payload).decode("utf-8", "replace")
        self._aborted.add(peer)
        self._fail(aborted(peer, reason))

    def _dispatch(self, peer: str, header: Header, payload: Body) -> None:
        """Act on a valid frame once it is due: hello, data (buffered by key), goodbye or abort."""
        if header.kind is Kind.HELLO:
            assert isinstance(payload, memoryview)
            self._on_hello(peer, header, payload)
        elif header.kind is Kind.DATA:
            assert isinstance(payload, np.ndarray)
            if self.session == _NO_SESSION:
                self._early.append((peer, header, payload))
            else:
                self._accept_data(peer, header, payload)
        elif header.kind is Kind.BYE:
            self._on_bye(peer)
        elif header.kind is Kind.ABORT:  # a stale abort: sent in a session not agreed, nor yet agreed by us
            log.warning("%s: dropped an abort from %s of another session", self.me, peer)

    def _on_hello(self, peer: str, header: Header, payload: memoryview) -> None:
        if peer in self._hello:
            return
        theirs = sessions.parse_hello(payload)
        if theirs is None:
            log.warning("%s: dropped a malformed hello from %s", self.me, peer)
            return
        error = sessions.mismatch(self.me, peer, self.agreement, theirs)
        if error is not None:
            self._fail(error)
            return
        self._hello[peer] = header.session
        if len(self._hello) == len(self.peers) + 1 and self._hello_done and not self._hello_done.done():
            self._hello_done.set_result(None)

    def _accept_data(self, peer: str, header: Header, array: np.ndarray) -> None:
        if header.session != self.session:
            log.warning("%s: dropped a frame from %s with a stale session id", self.me, peer)
            self.inbox.release(peer, array.nbytes)
            return
        self.inbox.put(peer, (header.sender, header.op, header.step), array, header.depth)

    def _on_bye(self, peer: str) -> None:
        self._bye.add(peer)
        self.inbox.peer_finished(peer)
        if self._bye_done and not self._bye_done.done() and self._bye >= set(self.peers):
            self._bye_done.set_result(None)

    def on_lost_threadsafe(self, callback: Callable[[PeerError], None]) -> None:
        """Call `callback(error)` from the liveness thread the moment a peer is lost mid-run, even while the
        event loop is held (the failure reaches the loop too, once it is free)."""
        self.liveness.on_lost.append(callback)

    def _gone(self, peer: str) -> bool:
        """Nothing sent to `peer` can arrive any more: it aborted, or the run failed because it is lost."""
        failure = self._failures.error
        return peer in self._aborted or (isinstance(failure, PeerGone | PeerTimeout) and failure.peer == peer)

    def _settled(self, peer: str) -> bool:
        """Its goodbye or abort is in: a dropped connection to it is then no failure."""
        return peer in self._bye_seen or peer in self._aborted

    def _fail(self, error: PeerError) -> PeerError:
        """Record the first failure and fail every wait with it (the run cannot continue soundly)."""
        return self._failures.record(error, (self._hello_done, self._bye_done), self.inbox)


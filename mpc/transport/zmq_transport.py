"""An N-party full mesh over ZeroMQ (zmq.asyncio, TCP). Moves arrays; knows nothing of shares.

Socket pattern (ZEROMQ-NOTES.md): each party binds one ROUTER that only receives and connects one DEALER
per peer that only sends, with routing id = its own name. A DEALER blocks rather than drops when a peer
is slow, and the ROUTER tells who sent each message.

Guarantees:
- Messages are matched by key (sender, op, step), never by arrival order; early arrivals wait in a dict
  of futures until awaited.
- Every link is FIFO with per-link sequence numbers (exactly previous + 1) and a session id agreed at
  start, so a lost, replayed or stale message is detected, never silently used.
- Every wait has a timeout whose error names the peer; a peer's abort or goodbye fails waits on it at once.
- Emulated one-way latency and bandwidth per link: the sender stamps when each message is due, the
  receiver holds it until then, one FIFO per link (so neither side's CPU work skews the network).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import hashlib
import ipaddress
import json
import logging
import secrets
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import zmq
import zmq.asyncio
from zmq.auth.asyncio import AsyncioAuthenticator
from zmq.utils.monitor import parse_monitor_message

from mpc.config import LinkParams, Topology
from mpc.keys import CurveKeys
from mpc.stats import Stats
from mpc.transport.base import Message
from mpc.transport.errors import PeerAborted, PeerError, PeerGone, PeerRefused, PeerTimeout, ProtocolViolation
from mpc.transport.frames import (
    HEADER_SIZE,
    SESSION_BYTES,
    FrameError,
    Header,
    Kind,
    decode_header,
    decode_payload,
    encode_header,
    payload_view,
    split_frames,
)

log = logging.getLogger("mpc.transport")

_EMPTY = np.zeros(0, dtype=np.uint8)
_NO_SESSION = bytes(SESSION_BYTES)
ABORT_LINGER_MS = 300
MAX_HELLO_BYTES = 64 * 1024  # a hello carries a few settings; anything larger is malformed
ZAP_DOMAIN = "mpc"
DISCONNECT_GRACE_S = 0.5
MONITOR_EVENTS = (zmq.EVENT_CONNECTED | zmq.EVENT_DISCONNECTED | zmq.EVENT_HANDSHAKE_SUCCEEDED
                  | zmq.EVENT_HANDSHAKE_FAILED_AUTH | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
                  | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL)
# On the listening side: connections that fail the handshake are dropped by ZeroMQ; we log them (unknown
# keys are logged by the ZAP handler, which refuses them).
ROUTER_EVENTS = zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL
# What a received frame carries once checked: an array for data, the raw bytes for control frames.
Body = np.ndarray | memoryview


class _Link:
    """One outgoing link: a FIFO queue drained by one task; stamps the emulated delivery time.

    The emulated network is applied at the receiver, from the `due` time the sender stamps in each header
    (one CLOCK_MONOTONIC for every process on a host): a message is due when its bytes have left at the
    link's bandwidth, one latency later. So neither party's CPU work delays the other's messages, as on a
    real network. (Emulation therefore assumes the parties share a clock: one host, or its namespaces.)
    """

    def __init__(self, peer: str, sock: zmq.asyncio.Socket, params: LinkParams):
        self.peer = peer
        self.sock = sock
        self.latency_ns = int(params.latency_ms * 1e6)
        self.bytes_per_ns = params.bandwidth_mbps * 1e6 / 8 / 1e9 if params.bandwidth_mbps else None
        self.queue: asyncio.Queue[list[bytes | memoryview]] = asyncio.Queue()
        self.busy_until = 0
        self.task: asyncio.Task[None] | None = None

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

    async def run(self) -> None:
        while True:
            frames = await self.queue.get()
            try:
                # One single-part message (see frames.py: why never multipart).
                await self.sock.send(frames[0] if len(frames) == 1 else b"".join(frames), copy=False)
            finally:
                self.queue.task_done()


class _Inbound:
    """One incoming link's FIFO of frames not yet due (emulated network): applied in order when due."""

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


class ZmqTransport:
    """The mesh seen from one party. Create inside the running event loop; `start()`, use, `close()`."""

    def __init__(self, topology: Topology, me: str, stats: Stats, *, timeout_s: float | None = None,
                 keys: CurveKeys | None = None, agreement: Mapping[str, str] | None = None):
        self.topology = topology
        self.me = me
        self.my_index = topology.index(me)
        self.peers = [n for n in topology.names if n != me]
        self.stats = stats
        self.timeout_s = timeout_s if timeout_s is not None else topology.timeout_s
        self.max_payload = int(topology.max_message_mb * 1024 * 1024)
        self.max_buffered = max(int(topology.max_buffered_mb * 1024 * 1024), self.max_payload)
        self._buffered: dict[str, int] = {p: 0 for p in self.peers}  # received bytes not yet used, per peer
        self.session = _NO_SESSION
        # Opaque settings every party must share (the runtime fills them in); sent with the hello and
        # compared, so that a mismatch stops the start rather than the middle of a run, or worse.
        self.agreement = dict(agreement or {})
        self._ctx: zmq.asyncio.Context | None = None
        self._router: zmq.asyncio.Socket | None = None
        self._links: dict[str, _Link] = {}
        self._pending_out: dict[str, list[bytes | memoryview]] = {}
        self._inbound: dict[str, _Inbound] = {}
        self._flush_scheduled = False
        self._inbox: dict[tuple[int, int, int], asyncio.Future[Message]] = {}
        self._next_seq_out: dict[str, int] = {p: 0 for p in self.peers}
        self._next_seq_in: dict[str, int] = {p: 0 for p in self.peers}
        self._hello: dict[str, bytes] = {}
        self._hello_done: asyncio.Future[None] | None = None
        self._early: list[tuple[str, Header, np.ndarray]] = []
        self._bye: set[str] = set()
        self._bye_seen: set[str] = set()  # goodbyes arrived, maybe still behind data the emulation holds
        self._aborted: set[str] = set()
        self._bye_done: asyncio.Future[None] | None = None
        self._failure: PeerError | None = None
        self._failure_callbacks: list[Callable[[PeerError], None]] = []
        self._reader: asyncio.Task[None] | None = None
        self.keys = keys
        self._auth: AsyncioAuthenticator | None = None
        self._monitors: list[asyncio.Task[None]] = []
        self._sockets: list[zmq.asyncio.Socket] = []  # every socket made, so that none outlives the context
        self._connected: set[str] = set()
        self._handshake_failures: dict[str, int] = {}
        self._closing = False

    # -- lifecycle ------------------------------------------------------------------------------
    async def start(self) -> bytes:
        """Bind, connect, and agree a fresh session id with every peer (waits for late peers)."""
        loop = asyncio.get_running_loop()
        self._hello_done = loop.create_future()
        self._bye_done = loop.create_future()
        self._ctx = zmq.asyncio.Context()
        me = self.topology.party(self.me)
        router = self._ctx.socket(zmq.ROUTER)
        self._sockets.append(router)
        router.setsockopt(zmq.LINGER, 0)
        router.setsockopt(zmq.MAXMSGSIZE, self.max_payload + HEADER_SIZE)
        router.setsockopt(zmq.RCVHWM, 0)
        if self.keys is not None:
            # CURVE: encrypted links, and a ZAP handler that admits only the topology's keys and
            # stamps each message with the party name its key belongs to (the User-Id property).
            self._auth = _PartyAuthenticator(self._ctx, self.me, self.keys)
            self._auth.start()
            self._auth.configure_curve_callback(domain=ZAP_DOMAIN, credentials_provider=self._auth)
            router.curve_server = True
            router.curve_publickey = self.keys.public_of(self.me)
            router.curve_secretkey = self.keys.secret
            router.zap_domain = ZAP_DOMAIN.encode()
        host, port = me.listen_address
        try:
            router.bind(f"tcp://{_bind_host(host)}:{port}")
        except zmq.ZMQError as exc:
            await self._shutdown()
            raise OSError(f"{self.me}: cannot listen on {host}:{port}: {exc}") from None
        self._router = router
        if self.keys is not None:
            monitor = router.get_monitor_socket(ROUTER_EVENTS)
            self._sockets.append(monitor)
            self._monitors.append(loop.create_task(self._watch_router(monitor), name=f"{self.me}-watch-in"))
        heartbeat_ms = max(1, int(self.topology.heartbeat_s * 1000))
        heartbeat_timeout_ms = max(1, int(self.topology.heartbeat_timeout_s * 1000))
        for peer in self.peers:
            spec = self.topology.party(peer)
            sock = self._ctx.socket(zmq.DEALER)
            self._sockets.append(sock)
            sock.setsockopt(zmq.ROUTING_ID, self.me.encode())
            sock.setsockopt(zmq.SNDHWM, 0)
            sock.setsockopt(zmq.LINGER, int(min(self.timeout_s, 5.0) * 1000))
            # ZMQ heartbeats: a peer that freezes is noticed heartbeat_timeout_s after it stopped answering.
            sock.setsockopt(zmq.HEARTBEAT_IVL, heartbeat_ms)
            sock.setsockopt(zmq.HEARTBEAT_TIMEOUT, heartbeat_timeout_ms)
            if self.keys is not None:
                sock.curve_serverkey = self.keys.public_of(peer)
                sock.curve_publickey = self.keys.public_of(self.me)
                sock.curve_secretkey = self.keys.secret
            monitor = sock.get_monitor_socket(MONITOR_EVENTS)
            self._sockets.append(monitor)
            self._monitors.append(loop.create_task(self._watch(peer, monitor), name=f"{self.me}-watch-{peer}"))
            sock.connect(f"tcp://{spec.host}:{spec.port}")
            link = _Link(peer, sock, self.topology.link(self.me, peer))
            link.task = loop.create_task(link.run(), name=f"{self.me}->{peer}")
            self._links[peer] = link
        self._reader = loop.create_task(self._read_loop(), name=f"{self.me}-reader")
        self._reader.add_done_callback(self._reader_done)

        nonce = secrets.token_bytes(SESSION_BYTES)
        self._hello[self.me] = nonce
        hello = np.frombuffer(json.dumps(self.agreement, sort_keys=True).encode(), dtype=np.uint8)
        for peer in self.peers:
            self._send_control(peer, Kind.HELLO, hello, session=nonce)
        if not self.peers:
            self._hello_done.set_result(None)
        try:
            await asyncio.wait_for(asyncio.shield(self._hello_done), self.timeout_s)
        except TimeoutError:
            missing = [p for p in self.peers if p not in self._hello]
            hints = [f"{self._handshake_failures[p]} secure handshakes with {p} failed: is {p}'s public key in "
                     "our topology its current one?" for p in missing if self._handshake_failures.get(p)]
            raise PeerTimeout(
                missing[0],
                f"{self.me}: timed out after {self.timeout_s:g} s waiting for "
                + ", ".join(f"{p} ({self._addr(p)})" for p in missing)
                + " to start; is it running and reachable?" + "".join(f" ({h})" for h in hints),
            ) from None
        digest = hashlib.blake2b(digest_size=SESSION_BYTES)
        for name in self.topology.names:
            digest.update(self._hello[name])
        self.session = digest.digest()
        early, self._early = self._early, []
        for peer, header, payload in early:
            self._accept_data(peer, header, payload)
        return self.session

    async def close(self) -> None:
        """Goodbye barrier, then close: every peer has received all we sent before we tear down."""
        if self._ctx is None:
            return
        try:
            if self._failure is None and self.session != _NO_SESSION:
                await self._say_goodbye()
            await self._drain_links(timeout=min(self.timeout_s, 5.0))
        finally:
            await self._shutdown()
        if self._failure is not None:
            # A peer failed after our program finished: the run as a whole did not succeed.
            raise self._failure

    async def _say_goodbye(self) -> None:
        for peer in self.peers:
            self._send_control(peer, Kind.BYE, _EMPTY)
        self._flush()
        if self.peers:
            assert self._bye_done is not None
            try:
                await asyncio.wait_for(asyncio.shield(self._bye_done), self.timeout_s)
            except TimeoutError:
                missing = [p for p in self.peers if p not in self._bye]
                self._fail(PeerTimeout(missing[0], f"{self.me}: timed out after {self.timeout_s:g} s waiting "
                                                   f"for {', '.join(missing)} to finish"))
            except PeerError:
                pass  # recorded in self._failure

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
        waits = [link.queue.join() for link in self._links.values() if link.task and not link.task.done()]
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
            tasks = [t for t in [self._reader, *(lk.task for lk in self._links.values()), *self._monitors,
                                 *(ib.task for ib in self._inbound.values())] if t is not None]
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            for peer, link in self._links.items():
                # Nothing more can reach a peer that said goodbye or aborted: do not linger for it.
                link.sock.close(0 if peer in self._aborted else linger_ms)
            if self._router is not None:
                self._router.close(0)
        finally:
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
                await _in_own_thread(ctx.term, f"{self.me}-term")
        err = self._failure or PeerGone(self.me, f"{self.me}: transport closed")
        for fut in self._inbox.values():
            if not fut.done():
                fut.set_exception(err)
                fut.add_done_callback(_consume_exception)

    # -- sending --------------------------------------------------------------------------------
    def send(
        self, peer: str, op: int, step: int, array: np.ndarray, *, depth: int, tag: str, phase: str = "online"
    ) -> None:
        """Queue `array` for `peer` under key (op, step). Non-blocking; never modify `array` afterwards."""
        if self._failure is not None:
            raise self._failure
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
        """Coalesce everything queued for a peer in this event-loop turn into one multipart send."""
        self._pending_out.setdefault(peer, []).extend((header, payload))
        if not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
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
        """Group (header, payload) pairs into messages no larger than one maximal frame, which is what the
        receiving socket admits (ZMQ_MAXMSGSIZE): many small frames share a message, a large one goes alone."""
        limit = self.max_payload + HEADER_SIZE
        messages: list[list[bytes | memoryview]] = []
        size = limit + 1
        for i in range(0, len(frames), 2):
            pair = frames[i:i + 2]
            nbytes = len(pair[0]) + len(pair[1])
            if size + nbytes > limit:
                messages.append([])
                size = 0
            messages[-1].extend(pair)
            size += nbytes
        return messages

    # -- receiving ------------------------------------------------------------------------------
    async def recv(
        self,
        peer: str,
        op: int,
        step: int,
        *,
        tag: str,
        phase: str = "online",
        dtype: np.dtype | type | None = None,
        shape: Sequence[int] | None = None,
        timeout: float | None = None,
        what: str = "",
    ) -> Message:
        """Await the message `peer` sent under key (op, step); check its dtype and shape if given."""
        if self._failure is not None:
            raise self._failure
        if peer not in self.peers:
            raise ValueError(f"{self.me}: no peer named {peer!r}")
        key = (self.topology.index(peer), op, step)
        fut = self._inbox.get(key)
        if fut is None:
            if peer in self._bye:
                raise self._gone(peer, what or tag)
            fut = self._inbox[key] = asyncio.get_running_loop().create_future()
        limit = self.timeout_s if timeout is None else timeout
        try:
            msg = fut.result() if fut.done() else await asyncio.wait_for(asyncio.shield(fut), limit)
        except TimeoutError:
            raise PeerTimeout(
                peer,
                f"{self.me}: timed out after {limit:g} s waiting for {peer} ({what or tag}, op {op:#x} step {step}); "
                f"is {peer} alive and running the same program?",
            ) from None
        finally:
            if fut.done():
                self._inbox.pop(key, None)
        self._buffered[peer] -= msg.array.nbytes
        if dtype is not None and msg.array.dtype != np.dtype(dtype):
            raise self._fail(ProtocolViolation(peer, f"{self.me}: {peer} sent dtype {msg.array.dtype} for "
                                                     f"{what or tag}, expected {np.dtype(dtype)}"))
        if shape is not None and tuple(msg.array.shape) != tuple(shape):
            raise self._fail(ProtocolViolation(peer, f"{self.me}: {peer} sent shape {msg.array.shape} for "
                                                     f"{what or tag}, expected {tuple(shape)}"))
        self.stats.record_recv(phase, tag, HEADER_SIZE + msg.array.nbytes, msg.depth)
        return msg

    async def _read_loop(self) -> None:
        assert self._router is not None
        names = {n.encode(): n for n in self.peers}
        while True:
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
                self._handle_message(peer, parts[1].buffer)
            except Exception as exc:  # a bug's last line of defence: never a dead reader
                self._on_handler_error(peer, exc)

    def _reader_done(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None and not self._closing:
            exc = task.exception()
            self._fail(PeerError(self.me, f"{self.me}: the receive path failed ({type(exc).__name__}: {exc})"))

    def _on_handler_error(self, peer: str, exc: Exception) -> None:
        log.debug("%s: error handling a message from %s", self.me, peer, exc_info=exc)
        self._fail(ProtocolViolation(peer, f"{self.me}: could not handle a message from {peer} "
                                           f"({type(exc).__name__}); stopping"))

    def _handle_message(self, peer: str, body: memoryview) -> None:
        """Route every frame packed in one message; a malformed one drops it and the rest of the message."""
        try:
            for header, payload in split_frames(body, self.max_payload):
                if not self._handle_decoded(peer, header, payload):
                    return
        except FrameError as exc:
            log.warning("%s: dropped a frame from %s: %s", self.me, peer, exc)

    def _handle_frame(self, peer: str, raw_header: memoryview | bytes, payload: memoryview | bytes) -> bool:
        """Validate one (header, payload) frame and route it; False: dropped or failed."""
        try:
            header = decode_header(raw_header, self.max_payload)
        except FrameError as exc:
            log.warning("%s: dropped a frame from %s: %s", self.me, peer, exc)
            return False
        return self._handle_decoded(peer, header, memoryview(payload))

    def _handle_decoded(self, peer: str, header: Header, payload: memoryview) -> bool:
        """Check a decoded frame against its link (sender, session, sequence) and route it.

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
        if isinstance(body, np.ndarray) and not self._buffer(peer, body.nbytes):
            return False
        if header.kind is Kind.BYE:
            self._bye_seen.add(peer)
        inbound = self._inbound.get(peer)
        if header.due > time.monotonic_ns() or (inbound is not None and inbound.queue):
            if inbound is None:
                inbound = self._inbound[peer] = _Inbound(self._dispatch, peer, self._on_handler_error)
            inbound.push(header, body)
        else:
            self._dispatch(peer, header, body)
        return True

    def _buffer(self, peer: str, nbytes: int) -> bool:
        """Count what `peer` makes us hold until it is used; over max_buffered_mb the run stops."""
        self._buffered[peer] += nbytes
        if self._buffered[peer] <= self.max_buffered:
            return True
        self._fail(ProtocolViolation(
            peer, f"{self.me}: {peer} sent {self._buffered[peer] / 2**20:.0f} MiB that this party has not used "
                  f"yet, over the max_buffered_mb bound of {self.max_buffered / 2**20:.0f} MiB; stopping rather "
                  "than running out of memory (raise max_buffered_mb if such a backlog is expected)"))
        return False

    def _on_abort(self, peer: str, payload: memoryview) -> None:
        reason = bytes(payload).decode("utf-8", "replace")
        self._aborted.add(peer)
        self._fail(PeerAborted(peer, f"{peer} aborted: {reason}"))

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

    async def _watch(self, peer: str, monitor: zmq.asyncio.Socket) -> None:
        """Turn connection events on the link to `peer` into errors that name it."""
        try:
            while True:
                event = parse_monitor_message(await monitor.recv_multipart())
                kind = event["event"]
                if kind == zmq.EVENT_HANDSHAKE_SUCCEEDED or (kind == zmq.EVENT_CONNECTED and self.keys is None):
                    self._connected.add(peer)
                elif kind == zmq.EVENT_HANDSHAKE_FAILED_AUTH:
                    self._fail(PeerRefused(peer, f"{self.me}: {peer} refused our CURVE key: does the topology "
                                                 f"{peer} runs with list {self.me}'s current public key?"))
                elif kind in (zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL, zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL):
                    # Also seen transiently (a proxy in front of a peer that is not up yet): ZeroMQ retries;
                    # if it keeps failing, the start-up timeout reports it.
                    self._handshake_failures[peer] = self._handshake_failures.get(peer, 0) + 1
                elif kind == zmq.EVENT_DISCONNECTED and peer in self._connected and not self._closing:
                    self._connected.discard(peer)
                    # Its goodbye or abort may still be in flight on the other socket: look again shortly.
                    # Mid-run even a quick reconnect is a failure: ZeroMQ does not resend what was in flight.
                    mid_run = self.session != _NO_SESSION
                    asyncio.get_running_loop().call_later(DISCONNECT_GRACE_S, self._check_gone, peer, mid_run)
        except (asyncio.CancelledError, zmq.ZMQError):
            pass
        finally:
            monitor.close(0)

    async def _watch_router(self, monitor: zmq.asyncio.Socket) -> None:
        """Log connections to our socket that fail the CURVE handshake (ZeroMQ drops them by itself)."""
        try:
            while True:
                event = parse_monitor_message(await monitor.recv_multipart())
                log.warning("%s: dropped a connection that failed the CURVE handshake (ZMTP error %#x); a party "
                            "without our key, an old key, or not an mpc party", self.me, event["value"])
        except (asyncio.CancelledError, zmq.ZMQError):
            pass
        finally:
            monitor.close(0)

    def _check_gone(self, peer: str, mid_run: bool = False) -> None:
        if self._closing or peer in self._bye_seen or peer in self._aborted:
            return
        if peer in self._connected and not mid_run:
            return
        self._fail(PeerGone(peer, f"{self.me}: lost the connection to {peer} (its process died, froze, or the "
                                  "network failed)"))

    def _on_hello(self, peer: str, header: Header, payload: memoryview) -> None:
        if peer in self._hello:
            return
        theirs = None
        if len(payload) <= MAX_HELLO_BYTES:
            with contextlib.suppress(ValueError):
                theirs = json.loads(bytes(payload).decode())
        if not isinstance(theirs, dict):
            log.warning("%s: dropped a malformed hello from %s", self.me, peer)
            return
        if theirs != self.agreement:
            keys = sorted(set(theirs) | set(self.agreement))
            diffs = [f"{k}: {self.agreement.get(k, '-')!s} here, {theirs.get(k, '-')!s} at {peer}"
                     for k in keys if theirs.get(k) != self.agreement.get(k)]
            self._fail(ProtocolViolation(peer, f"{self.me}: {peer} runs with different settings ("
                                               + "; ".join(diffs) + "); every party must run the same program "
                                               "and parameters with the same topology"))
            return
        self._hello[peer] = header.session
        if len(self._hello) == len(self.peers) + 1 and self._hello_done and not self._hello_done.done():
            self._hello_done.set_result(None)

    def _accept_data(self, peer: str, header: Header, array: np.ndarray) -> None:
        if header.session != self.session:
            log.warning("%s: dropped a frame from %s with a stale session id", self.me, peer)
            self._buffered[peer] -= array.nbytes
            return
        key = (header.sender, header.op, header.step)
        fut = self._inbox.get(key)
        if fut is None:
            fut = self._inbox[key] = asyncio.get_running_loop().create_future()
        elif fut.done():
            self._fail(ProtocolViolation(peer, f"{self.me}: {peer} sent op {header.op:#x} step {header.step} twice"))
            return
        fut.set_result(Message(array, header.depth + 1))

    def _on_bye(self, peer: str) -> None:
        self._bye.add(peer)
        # FIFO links: nothing more will come from this peer, so waits on it can never complete.
        index = self.topology.index(peer)
        for (sender, _, _), fut in self._inbox.items():
            if sender == index and not fut.done():
                fut.set_exception(self._gone(peer, "a message"))
        if self._bye_done and not self._bye_done.done() and self._bye >= set(self.peers):
            self._bye_done.set_result(None)

    def _gone(self, peer: str, what: str) -> PeerGone:
        return PeerGone(peer, f"{self.me}: {peer} finished its program without sending {what}; "
                              "do all parties run the same program and config?")

    def _fail(self, error: PeerError) -> PeerError:
        """Record the first failure and fail every wait with it (the run cannot continue soundly)."""
        if self._failure is None:
            self._failure = error
            log.debug("%s", error)  # the runtime reports it, once
            for callback in self._failure_callbacks:
                callback(error)
        for fut in (self._hello_done, self._bye_done, *self._inbox.values()):
            if fut is not None and not fut.done():
                fut.set_exception(self._failure)
                fut.add_done_callback(_consume_exception)
        return self._failure

    @property
    def failure(self) -> PeerError | None:
        return self._failure

    def on_failure(self, callback: Callable[[PeerError], None]) -> None:
        """Call `callback(error)` when the run fails (a peer died, aborted, or broke the protocol)."""
        self._failure_callbacks.append(callback)

    def _addr(self, peer: str) -> str:
        spec = self.topology.party(peer)
        return f"{spec.host}:{spec.port}"


class _PartyAuthenticator(AsyncioAuthenticator):
    """ZAP handler: admits only the topology's public keys; User-Id = the key's party name."""

    def __init__(self, context: zmq.asyncio.Context, me: str, keys: CurveKeys):
        super().__init__(context)
        self.me = me
        self.names = {key: name for name, key in keys.public.items() if name != me}

    def callback(self, domain: str, key: bytes) -> bool:
        if key in self.names:
            return True
        log.error("%s: refused a connection presenting an unknown CURVE key %s (not in the topology)",
                  self.me, key.decode(errors="replace"))
        return False

    def curve_user_id(self, client_public_key: bytes) -> str:
        from zmq.utils import z85

        return self.names.get(z85.encode(client_public_key), "?")


async def _in_own_thread(fn: Callable[[], object], name: str) -> None:
    """Run a blocking call in a new thread and wait for it without blocking the event loop."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()

    def run() -> None:
        try:
            fn()
        finally:
            loop.call_soon_threadsafe(_set_done, done)

    threading.Thread(target=run, name=name, daemon=True).start()
    await asyncio.shield(done)


def _set_done(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


def _consume_exception(fut: asyncio.Future[Any]) -> None:
    if not fut.cancelled():
        fut.exception()


def _bind_host(host: str) -> str:
    """Bind to the configured address when it is an IP literal, else to every interface."""
    if host == "localhost":
        return "127.0.0.1"
    if host in ("*", "0.0.0.0"):
        return "*"
    try:
        ipaddress.ip_address(host)
        return host
    except ValueError:
        return "*"

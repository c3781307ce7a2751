"""ZeroMQ sockets of one party: a ROUTER that only receives, one DEALER per peer that only sends.

Routing id = the party's own name, so the ROUTER tells who sent each message; a DEALER blocks rather than
drops when a peer is slow. With keys, links use CURVE, and a ZAP handler admits only the topology's keys
and stamps each message with the party its key belongs to (the User-Id property).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import threading
from collections.abc import Callable

import zmq
import zmq.asyncio
from zmq.auth.asyncio import AsyncioAuthenticator

from mpc.config import LinkParams, PartySpec
from mpc.keys import CurveKeys
from mpc.profile import PROFILE
from mpc.transport.delay import LinkClock
from mpc.transport.frames import HEADER_SIZE

log = logging.getLogger("mpc.transport")

ZAP_DOMAIN = "mpc"
MONITOR_EVENTS = (zmq.EVENT_CONNECTED | zmq.EVENT_DISCONNECTED | zmq.EVENT_HANDSHAKE_SUCCEEDED
                  | zmq.EVENT_HANDSHAKE_FAILED_AUTH | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
                  | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL)
# On the listening side: connections that fail the handshake are dropped by ZeroMQ; we log them (unknown
# keys are logged by the ZAP handler, which refuses them).
ROUTER_EVENTS = zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL


class Link:
    """One outgoing link: a FIFO queue drained by one task; its clock stamps the emulated delivery time."""

    def __init__(self, peer: str, sock: zmq.asyncio.Socket, params: LinkParams):
        self.peer = peer
        self.sock = sock
        self.clock = LinkClock(params)
        self.queue: asyncio.Queue[list[bytes | memoryview]] = asyncio.Queue()
        self.task: asyncio.Task[None] | None = None

    def due(self, nbytes: int) -> int:
        return self.clock.due(nbytes)

    async def run(self) -> None:
        while True:
            frames = await self.queue.get()
            try:
                # One single-part message (see frames.py: why never multipart).
                with PROFILE.section("transport"):
                    sent = self.sock.send(frames[0] if len(frames) == 1 else b"".join(frames), copy=False)
                await sent
            finally:
                self.queue.task_done()


def router(ctx: zmq.asyncio.Context, me: str, keys: CurveKeys | None, max_payload: int) -> zmq.asyncio.Socket:
    """The receiving socket, not yet bound (CURVE server with keys)."""
    sock = ctx.socket(zmq.ROUTER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.MAXMSGSIZE, max_payload + HEADER_SIZE)
    sock.setsockopt(zmq.RCVHWM, 0)
    if keys is not None:
        sock.curve_server = True
        sock.curve_publickey = keys.public_of(me)
        sock.curve_secretkey = keys.secret
        sock.zap_domain = ZAP_DOMAIN.encode()
    return sock


def dealer(ctx: zmq.asyncio.Context, me: str, peer: str, keys: CurveKeys | None, *, linger_s: float,
           heartbeat_s: float, heartbeat_timeout_s: float) -> zmq.asyncio.Socket:
    """The sending socket to `peer`, not yet connected (CURVE client of the peer's key with keys)."""
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.ROUTING_ID, me.encode())
    sock.setsockopt(zmq.SNDHWM, 0)
    sock.setsockopt(zmq.LINGER, int(linger_s * 1000))
    # ZMQ heartbeats: a peer that freezes is noticed heartbeat_timeout_s after it stopped answering.
    sock.setsockopt(zmq.HEARTBEAT_IVL, max(1, int(heartbeat_s * 1000)))
    sock.setsockopt(zmq.HEARTBEAT_TIMEOUT, max(1, int(heartbeat_timeout_s * 1000)))
    if keys is not None:
        sock.curve_serverkey = keys.public_of(peer)
        sock.curve_publickey = keys.public_of(me)
        sock.curve_secretkey = keys.secret
    return sock


def authenticator(ctx: zmq.asyncio.Context, me: str, keys: CurveKeys) -> PartyAuthenticator:
    """The started ZAP handler of this party's CURVE server."""
    auth = PartyAuthenticator(ctx, me, keys)
    auth.start()
    auth.configure_curve_callback(domain=ZAP_DOMAIN, credentials_provider=auth)
    return auth


class PartyAuthenticator(AsyncioAuthenticator):
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


def address(spec: PartySpec) -> str:
    return f"{spec.host}:{spec.port}"


def bind_host(host: str) -> str:
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


async def in_own_thread(fn: Callable[[], object], name: str) -> None:
    """Run a blocking call (a context's term()) in a new thread and wait for it without blocking the loop."""
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

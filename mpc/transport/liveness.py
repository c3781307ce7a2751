"""Liveness: ZeroMQ's connection events on each link turned into errors that name the peer.

A dropped connection is noticed at once, then looked at again after DISCONNECT_GRACE_S (its goodbye or
abort may still be in flight on the other socket); mid-run even a quick reconnect is a failure, since
ZeroMQ does not resend what was in flight. A frozen peer is found by ZeroMQ heartbeats (sockets.py).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import zmq
import zmq.asyncio
from zmq.utils.monitor import parse_monitor_message

from mpc.transport.errors import PeerError, PeerGone, PeerRefused

log = logging.getLogger("mpc.transport")

DISCONNECT_GRACE_S = 0.5


class Liveness:
    """Watches one party's sockets. `settled(peer)`: its goodbye or abort is in (a drop is then no failure);
    `mid_run()`: the session is agreed; `closing()`: we are closing ourselves."""

    def __init__(self, me: str, curve: bool, fail: Callable[[PeerError], object],
                 settled: Callable[[str], bool], mid_run: Callable[[], bool], closing: Callable[[], bool]):
        self.me = me
        self.curve = curve
        self.fail = fail
        self.settled = settled
        self.mid_run = mid_run
        self.closing = closing
        self.connected: set[str] = set()
        self.handshake_failures: dict[str, int] = {}

    async def watch(self, peer: str, monitor: zmq.asyncio.Socket) -> None:
        """Turn connection events on the link to `peer` into errors that name it."""
        try:
            while True:
                event = parse_monitor_message(await monitor.recv_multipart())
                self.on_event(peer, event["event"])
        except (asyncio.CancelledError, zmq.ZMQError):
            pass
        finally:
            monitor.close(0)

    def on_event(self, peer: str, kind: int) -> None:
        if kind == zmq.EVENT_HANDSHAKE_SUCCEEDED or (kind == zmq.EVENT_CONNECTED and not self.curve):
            self.connected.add(peer)
        elif kind == zmq.EVENT_HANDSHAKE_FAILED_AUTH:
            self.fail(PeerRefused(peer, f"{self.me}: {peer} refused our CURVE key: does the topology "
                                        f"{peer} runs with list {self.me}'s current public key?"))
        elif kind in (zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL, zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL):
            # Also seen transiently (a proxy in front of a peer that is not up yet): ZeroMQ retries;
            # if it keeps failing, the start-up timeout reports it.
            self.handshake_failures[peer] = self.handshake_failures.get(peer, 0) + 1
        elif kind == zmq.EVENT_DISCONNECTED and peer in self.connected and not self.closing():
            self.connected.discard(peer)
            asyncio.get_running_loop().call_later(DISCONNECT_GRACE_S, self.check_gone, peer, self.mid_run())

    async def watch_router(self, monitor: zmq.asyncio.Socket) -> None:
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

    def check_gone(self, peer: str, mid_run: bool = False) -> None:
        if self.closing() or self.settled(peer):
            return
        if peer in self.connected and not mid_run:
            return
        self.fail(PeerGone(peer, f"{self.me}: lost the connection to {peer} (its process died, froze, or the "
                                 "network failed)"))

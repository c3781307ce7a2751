"""Liveness: ZeroMQ's connection events on each link turned into errors that name the peer.

A dropped connection is noticed at once, then looked at again after DISCONNECT_GRACE_S (its goodbye or
abort may still be in flight on the other socket); mid-run even a quick reconnect is a failure, since
ZeroMQ does not resend what was in flight. A frozen peer is found by ZeroMQ heartbeats (sockets.py).

The events are read by a thread of their own, not by the event loop: a party whose loop is held for
seconds (a program issuing a whole training's thousands of operations at once) must still learn that a
peer died. The thread hands every event to the loop, and if a peer is lost mid-run it also calls the
thread-safe `on_lost` callbacks at once (the runtime's stop signal, which the program's next operation
checks), so the party stops without waiting for its loop to be free.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
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

        self.on_lost: list[Callable[[PeerError], None]] = []  # thread-safe: called from the watching thread
        self._monitors: dict[str, zmq.Socket] = {}
        self._plain: zmq.Context | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()

    def monitor(self, ctx: zmq.Context, peer: str, sock: zmq.Socket, events: int) -> None:
        """Watch the link `sock` to `peer` (before it connects, so that no event is missed)."""
        address = f"inproc://mpc-monitor-{id(self)}-{peer}"
        sock.monitor(address, events)
        if self._plain is None:  # plain (not asyncio) sockets of the same context, for the thread
            self._plain = zmq.Context.shadow(ctx.underlying)
        reader = self._plain.socket(zmq.PAIR)
        reader.connect(address)
        self._monitors[peer] = reader

    def start(self) -> None:
        """Start the thread that reads every link's events."""
        self._thread = threading.Thread(target=self._watch, args=(asyncio.get_running_loop(),),
                                        name=f"{self.me}-liveness", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread (it closes the monitor sockets); call after disabling the links' monitors."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join()
        for reader in self._monitors.values():  # closed by the thread, unless it never ran
            if not reader.closed:
                reader.close(0)

    def _watch(self, loop: asyncio.AbstractEventLoop) -> None:
        poller = zmq.Poller()
        peers = {}
        for peer, reader in self._monitors.items():
            poller.register(reader, zmq.POLLIN)
            peers[reader] = peer
        connected: set[str] = set()
        lost_at: dict[str, float] = {}  # mid-run disconnects: when each was seen
        try:
            while not self._stopping.is_set():
                for reader, _ in poller.poll(50):
                    peer = peers[reader]  # type: ignore[index]
                    kind = parse_monitor_message(reader.recv_multipart())["event"]  # type: ignore[union-attr]
                    if kind == zmq.EVENT_HANDSHAKE_SUCCEEDED or (kind == zmq.EVENT_CONNECTED and not self.curve):
                        connected.add(peer)
                    elif kind == zmq.EVENT_DISCONNECTED and peer in connected and self.mid_run():
                        lost_at.setdefault(peer, time.monotonic())
                    try:
                        loop.call_soon_threadsafe(self.on_event, peer, kind)
                    except RuntimeError:  # the loop has closed
                        return
                for peer, seen in list(lost_at.items()):
                    if time.monotonic() - seen >= DISCONNECT_GRACE_S:
                        del lost_at[peer]
                        if not self.closing() and not self.settled(peer):
                            for callback in self.on_lost:
                                callback(self.lost(peer))
        except zmq.ZMQError:
            pass
        finally:
            for reader in self._monitors.values():
                reader.close(0)

    def lost(self, peer: str) -> PeerGone:
        return PeerGone(peer, f"{self.me}: lost the connection to {peer} (its process died, froze, or the "
                              "network failed)")

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
        self.fail(self.lost(peer))

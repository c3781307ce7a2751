"""The serving parties' ZeroMQ links: sessions that start again and again while the processes run.

`mpc run` starts each party's transport once, so a hello is sent once per link. A service restarts its
session whenever a peer fails, and a peer that restarts may have sent its hello to our *previous*
transport (still closing when it came), or received ours in its previous life: the base transport would
then wait for that hello forever, or stop on the restarted link's sequence numbers (they start at 0
again). This subclass makes the hello exchange robust to restarts:

- while a session is being agreed, a hello resynchronises its link (the peer's new link starts at its
  sequence number) and replaces an older nonce of the same peer;
- a hello with a nonce new to us is answered with our own hello again (the peer may have missed it);
  a peer ignores a nonce it has already, so this ends after one answer;
- in a session, a hello with a new nonce means the peer restarted: the session fails naming it, at once.

The start itself waits for the peers as long as the service runs; every later wait has the topology's
timeout as usual.
"""

from __future__ import annotations

from mpc.transport import PeerGone, ZmqTransport
from mpc.transport import session as sessions
from mpc.transport.frames import Header, Kind

FOREVER = 10.0 * 365 * 86400


class ServeTransport(ZmqTransport):
    async def start(self) -> bytes:
        limit, self.timeout_s = self.timeout_s, FOREVER
        try:
            return await super().start()
        finally:
            self.timeout_s = limit

    def missing(self) -> list[str]:
        """The peers whose hello has not come yet (while starting)."""
        return [p for p in self.peers if p not in self._hello]

    def _handle_decoded(self, peer: str, header: Header, payload: memoryview, held: bool = False) -> bool:
        if header.kind is Kind.HELLO and header.sender == self.topology.index(peer):
            if self.session == sessions.NO_SESSION:
                self._next_seq_in[peer] = header.seq  # a restarted peer's link starts afresh
            elif header.session != self._hello.get(peer):
                self._fail(PeerGone(peer, f"{self.me}: {peer} restarted (it sent a new hello in our session)"))
                return False
        return super()._handle_decoded(peer, header, payload, held)

    def _on_hello(self, peer: str, header: Header, payload: memoryview) -> None:
        known = self._hello.get(peer)
        if known == header.session:
            return
        if known is not None and self.session == sessions.NO_SESSION:
            del self._hello[peer]  # the peer restarted: its newer hello replaces the older one
        super()._on_hello(peer, header, payload)
        mine = self._hello.get(self.me)
        if self._hello.get(peer) == header.session and mine is not None and not self._closing:
            self._send_control(peer, Kind.HELLO, sessions.hello_payload(self.agreement), session=mine)

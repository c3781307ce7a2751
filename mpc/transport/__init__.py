"""Transport: moves arrays between parties. Knows bytes, shapes and peers, never shares.

`Transport` (base.py) is what the runtime uses; `ZmqTransport` implements it over sockets (a party per
process), `MemoryTransport` in one event loop (tests of protocol maths).
"""

from mpc.transport.base import Message, Transport, TransportKind
from mpc.transport.errors import PeerAborted, PeerError, PeerGone, PeerRefused, PeerTimeout, ProtocolViolation
from mpc.transport.memory import MemoryNetwork, MemoryTransport
from mpc.transport.zmq_transport import ZmqTransport

__all__ = [
    "MemoryNetwork",
    "MemoryTransport",
    "Message",
    "PeerAborted",
    "PeerError",
    "PeerGone",
    "PeerRefused",
    "PeerTimeout",
    "ProtocolViolation",
    "Transport",
    "TransportKind",
    "ZmqTransport",
]

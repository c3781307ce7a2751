"""Transport: moves arrays between parties over ZeroMQ. Knows bytes, shapes and peers, never shares."""

from mpc.transport.errors import PeerAborted, PeerError, PeerGone, PeerRefused, PeerTimeout, ProtocolViolation
from mpc.transport.zmq_transport import Message, ZmqTransport

__all__ = [
    "Message",
    "PeerAborted",
    "PeerError",
    "PeerGone",
    "PeerRefused",
    "PeerTimeout",
    "ProtocolViolation",
    "ZmqTransport",
]

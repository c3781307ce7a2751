"""Errors a party sees when a peer fails; each names the peer so the user knows where to look."""

from __future__ import annotations


class PeerError(RuntimeError):
    """Something went wrong with one named peer."""

    def __init__(self, peer: str, message: str):
        self.peer = peer
        super().__init__(message)


class PeerTimeout(PeerError):
    """A peer did not send what was awaited within the timeout (dead, frozen, unreachable or diverged)."""


class PeerAborted(PeerError):
    """A peer stopped its program with an error and told us why."""


class PeerGone(PeerError):
    """A peer said goodbye (or disconnected) while a message from it was still awaited."""


class ProtocolViolation(PeerError):
    """A peer's frames broke the wire protocol in a way that can lose data (gap or replay in sequence)."""


class PeerRefused(PeerError):
    """The secure handshake with a peer failed: wrong or unknown CURVE key on one side."""

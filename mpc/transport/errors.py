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


MAX_REASON_CHARS = 400
"""How much of a peer's abort reason is shown: a runtime's own reason is one short line."""


def peer_words(text: str, limit: int = MAX_REASON_CHARS) -> str:
    """A peer's own text, quoted so it can be printed safely: bounded in length, and every character that
    is not printable (newlines, ANSI escapes, bidirectional overrides) escaped, so that a keyed peer cannot
    forge lines of our output or rewrite the terminal."""
    shown = text[:limit]
    quoted = "".join(ch if ch.isprintable() and ch not in '"\\' else _escape(ch) for ch in shown)
    more = f" ... ({len(text) - limit} more characters)" if len(text) > limit else ""
    return f'"{quoted}"{more}'


def _escape(ch: str) -> str:
    if ch in '"\\':
        return "\\" + ch
    code = ord(ch)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def aborted(peer: str, reason: str) -> PeerAborted:
    """The error a party stops with when `peer` aborts: its reason shown as its own words, quoted."""
    return PeerAborted(peer, f"{peer} aborted, saying: {peer_words(reason)}")

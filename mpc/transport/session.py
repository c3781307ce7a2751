"""Session agreement: every party says hello with a fresh nonce and the settings all must share.

The session id is a hash of every party's nonce in topology order, so frames of an earlier run are told
apart; differing settings (program, parameters, topology fields) stop the start, naming each difference.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Mapping

import numpy as np

from mpc.transport.errors import ProtocolViolation
from mpc.transport.frames import SESSION_BYTES

NO_SESSION = bytes(SESSION_BYTES)
MAX_HELLO_BYTES = 64 * 1024  # a hello carries a few settings; anything larger is malformed


def hello_payload(agreement: Mapping[str, str]) -> np.ndarray:
    """The settings as the bytes a hello carries."""
    return np.frombuffer(json.dumps(dict(agreement), sort_keys=True).encode(), dtype=np.uint8)


def parse_hello(payload: memoryview | bytes) -> dict[str, object] | None:
    """A peer's settings, or None if its hello is malformed (not JSON, not an object, too large)."""
    if len(payload) > MAX_HELLO_BYTES:
        return None
    theirs = None
    with contextlib.suppress(ValueError):
        theirs = json.loads(bytes(payload).decode())
    return theirs if isinstance(theirs, dict) else None


def mismatch(me: str, peer: str, ours: Mapping[str, object], theirs: Mapping[str, object]) -> ProtocolViolation | None:
    """The error naming every setting that differs between us and `peer` (None: they agree)."""
    if dict(theirs) == dict(ours):
        return None
    keys = sorted(set(theirs) | set(ours))
    diffs = [f"{k}: {ours.get(k, '-')!s} here, {theirs.get(k, '-')!s} at {peer}"
             for k in keys if theirs.get(k) != ours.get(k)]
    return ProtocolViolation(peer, f"{me}: {peer} runs with different settings (" + "; ".join(diffs)
                             + "); every party must run the same program and parameters with the same topology")


def session_id(nonces: list[bytes]) -> bytes:
    """The agreed id: every party's nonce, in topology order."""
    digest = hashlib.blake2b(digest_size=SESSION_BYTES)
    for nonce in nonces:
        digest.update(nonce)
    return digest.digest()

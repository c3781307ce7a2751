"""AES-CTR pseudo-random generator over Z_2^64 (cryptography). Seeds are shared per party pair.

A stream is named by (op id, purpose): the helper and a compute party holding the same seed derive the
same array for the same op without sending it (docs/ARCHITECTURE.md, "Correlated randomness").
"""

from __future__ import annotations

import secrets

import numpy as np
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

SEED_BYTES = 16
# Words of keystream per update_into call: the zero input (64 KiB) stays in L1/L2 and is reused, so each
# call streams only its output; one update() on a fresh multi-MB byte string is several times slower.
CHUNK_WORDS = 8192


def new_seed() -> bytes:
    return secrets.token_bytes(SEED_BYTES)


class PRG:
    """Deterministic uint64 arrays from a 128-bit seed; distinct (op, purpose) give independent streams."""

    def __init__(self, seed: bytes):
        if len(seed) != SEED_BYTES:
            raise ValueError(f"PRG seed must be {SEED_BYTES} bytes")
        self._algo = algorithms.AES(seed)

    def ring(self, shape: tuple[int, ...], op: int, purpose: int) -> np.ndarray:
        """A uniform uint64 array of `shape` for stream (op, purpose)."""
        n = int(np.prod(shape, dtype=np.int64))
        nonce = (op & (2**64 - 1)).to_bytes(8, "little") + purpose.to_bytes(4, "little") + bytes(4)
        enc = Cipher(self._algo, modes.CTR(nonce)).encryptor()
        out = np.empty(n + 2, dtype=np.uint64)  # update_into wants 15 spare bytes after the last block
        zeros = np.zeros(min(n, CHUNK_WORDS), dtype=np.uint64).data.cast("B")
        dest = out.data.cast("B")
        for lo in range(0, n - n % CHUNK_WORDS, CHUNK_WORDS):
            enc.update_into(zeros, dest[8 * lo:8 * (lo + CHUNK_WORDS + 2)])
        tail = n % CHUNK_WORDS
        if tail:
            enc.update_into(zeros[:8 * tail], dest[8 * (n - tail):])
        return out[:n].reshape(shape)


def random_ring(shape: tuple[int, ...]) -> np.ndarray:
    """Fresh uniform ring elements from the OS's cryptographic source (via a fresh AES-CTR seed)."""
    return PRG(new_seed()).ring(shape, 0, 0)

"""AES-CTR pseudo-random generator over Z_2^64 (cryptography). Seeds are shared per party pair.

A stream is named by (op id, purpose): the helper and a compute party holding the same seed derive the
same array for the same op without sending it (docs/ARCHITECTURE.md, "Correlated randomness").
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Literal

import numpy as np
from cryptography.hazmat.primitives.ciphers import Cipher, CipherContext, algorithms, modes

SEED_BYTES = 16
# Words of keystream per update_into call: the zero input (64 KiB) stays in L1/L2 and is reused, so each
# call streams only its output; one update() on a fresh multi-MB byte string is several times slower.
CHUNK_WORDS = 8192
Combine = Literal["set", "add", "sub", "xor"]


def new_seed() -> bytes:
    return secrets.token_bytes(SEED_BYTES)


class PRG:
    """Deterministic uint64 arrays from a 128-bit seed; distinct (op, purpose) give independent streams."""

    def __init__(self, seed: bytes):
        if len(seed) != SEED_BYTES:
            raise ValueError(f"PRG seed must be {SEED_BYTES} bytes")
        self._algo = algorithms.AES(seed)

    def ring(self, shape: tuple[int, ...], op: int, purpose: int, start: int = 0) -> np.ndarray:
        """A uniform uint64 array of `shape` for stream (op, purpose), from its word `start` (even) on."""
        n = int(np.prod(shape, dtype=np.int64))
        out = np.empty(n + 2, dtype=np.uint64)  # update_into wants 15 spare bytes after the last block
        dest = out.data.cast("B")
        for lo, hi, zeros, enc in self._pieces(n, op, purpose, start):
            enc.update_into(zeros, dest[8 * lo:8 * (hi + 2)])
        return out[:n].reshape(shape)

    def combine_into(self, target: np.ndarray, op: int, purpose: int, how: Combine, start: int = 0) -> None:
        """target = / += / -= / ^= the stream (op, purpose) of target's size, in place. The keystream passes
        through one small buffer that stays in cache, so a dealer summing parties' streams allocates (and
        page-faults) no full-size temporary: about half the time of `target += ring(...)`."""
        flat = target.reshape(-1)
        if not flat.flags.c_contiguous or (flat.size and not np.shares_memory(flat, target)):
            raise ValueError("combine_into needs a contiguous target")
        scratch = np.empty(min(flat.size, CHUNK_WORDS) + 2, dtype=np.uint64)
        dest = scratch.data.cast("B")
        apply = {"add": np.add, "sub": np.subtract, "xor": np.bitwise_xor}.get(how)
        for lo, hi, zeros, enc in self._pieces(flat.size, op, purpose, start):
            enc.update_into(zeros, dest)
            part = flat[lo:hi]
            if apply is None:
                part[:] = scratch[:hi - lo]
            else:
                apply(part, scratch[:hi - lo], out=part)

    def _pieces(self, n: int, op: int, purpose: int,
                start: int) -> Iterator[tuple[int, int, memoryview, CipherContext]]:
        """(lo, hi, zero input of hi - lo words, encryptor) per piece of the stream's n words from word `start`
        (even: a stream is AES-CTR, two words per block, so any part of it can be produced alone)."""
        if start % 2:
            raise ValueError("a PRG stream is read from an even word on")
        nonce = (op & (2**64 - 1)).to_bytes(8, "little") + purpose.to_bytes(4, "little") + bytes(4)
        counter = (int.from_bytes(nonce, "big") + start // 2) % 2**128  # CTR counts the block big-endian
        enc = Cipher(self._algo, modes.CTR(counter.to_bytes(16, "big"))).encryptor()
        zeros = np.zeros(min(n, CHUNK_WORDS), dtype=np.uint64).data.cast("B")
        for lo in range(0, n, CHUNK_WORDS):
            hi = min(n, lo + CHUNK_WORDS)
            yield lo, hi, zeros[:8 * (hi - lo)], enc


def random_ring(shape: tuple[int, ...]) -> np.ndarray:
    """Fresh uniform ring elements from the OS's cryptographic source (via a fresh AES-CTR seed)."""
    return PRG(new_seed()).ring(shape, 0, 0)

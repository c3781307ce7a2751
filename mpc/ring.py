"""The ring Z_2^64 as numpy uint64 (wrap-around is the reduction) and fixed-point encoding.

numpy trap (STYLE.md): a uint64 array mixed with a Python or int64 scalar can become float64. Every
function here takes and returns uint64 arrays and casts public constants explicitly.
"""

from __future__ import annotations

import numpy as np

RING = np.uint64
BITS = 64


def ring(value: object) -> np.ndarray:
    """Integers (any sign, any int dtype) to ring elements, two's complement."""
    arr = np.asarray(value)
    if arr.dtype == np.uint64:
        return arr
    if arr.dtype.kind == "b":
        return arr.astype(np.uint64)
    if arr.dtype.kind not in "iu":
        raise TypeError(f"expected integers, got {arr.dtype}; use encode_fixed for reals")
    return arr.astype(np.int64).view(np.uint64) if arr.dtype.kind == "i" else arr.astype(np.uint64)


def signed(x: np.ndarray) -> np.ndarray:
    """Ring elements read as two's-complement int64."""
    return np.asarray(x, dtype=np.uint64).view(np.int64)


def encode_fixed(value: object, frac_bits: int) -> np.ndarray:
    """Reals to fixed point: round(value * 2^f) in two's complement. Raises if out of the int64 range."""
    arr = np.asarray(value, dtype=np.float64)
    scaled = np.rint(arr * float(1 << frac_bits))
    if scaled.size and (not np.all(np.isfinite(scaled)) or np.abs(scaled).max() >= 2.0**63):
        raise OverflowError(f"value out of fixed-point range (|x| < 2^{63 - frac_bits}, finite)")
    return scaled.astype(np.int64).view(np.uint64)


def decode_fixed(x: np.ndarray, frac_bits: int) -> np.ndarray:
    """Fixed point to float64; negatives decode exactly (two's complement, not offset)."""
    return signed(x).astype(np.float64) / float(1 << frac_bits)


def shift_right(x: np.ndarray, bits: int) -> np.ndarray:
    """Logical right shift of ring elements."""
    return np.right_shift(x, np.uint64(bits))

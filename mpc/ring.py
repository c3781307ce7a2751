"""The ring Z_2^64 as numpy uint64 (wrap-around is the reduction) and fixed-point encoding.

numpy trap: a uint64 array mixed with a Python or int64 scalar can become float64 (numpy's promotion
rules before NEP 50, and still for some calls). Every
function here takes and returns uint64 arrays and casts public constants explicitly.
"""

from __future__ import annotations

import numpy as np

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


LIMB_BITS = 16
_LIMBS = BITS // LIMB_BITS
_MAX_EXACT_K = 1 << (53 - 2 * LIMB_BITS)  # a sum of k products of two 16-bit limbs is exact in float64
_LIMB_MIN_WORK = 1 << 27  # below ~500^3 multiply-adds numpy's integer matmul is as fast (measured)


def matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a @ b mod 2^64 (numpy matmul semantics); large products through float64 BLAS on 16-bit limbs.

    numpy's integer matmul uses no BLAS (it is a plain loop in numpy's C code). Each operand is split into four 16-bit
    limbs; a limb product summed over k <= 2^21 terms is below 2^53, hence exact in float64, and only
    the 10 limb pairs whose shift is below 64 bits matter. Measured here with one BLAS thread: 0.37 s
    against 0.76 s at 1000 x 1000; no gain below ~500^3 multiply-adds, where integer matmul is kept.
    """
    a = np.asarray(a, dtype=np.uint64)
    b = np.asarray(b, dtype=np.uint64)
    if a.ndim < 2 or b.ndim < 2 or a.shape[-1] > _MAX_EXACT_K or a.size * b.shape[-1] < _LIMB_MIN_WORK:
        with np.errstate(over="ignore"):
            return np.asarray(np.matmul(a, b, dtype=np.uint64))
    mask = np.uint64((1 << LIMB_BITS) - 1)
    la = [((a >> np.uint64(LIMB_BITS * i)) & mask).astype(np.float64) for i in range(_LIMBS)]
    lb = [((b >> np.uint64(LIMB_BITS * j)) & mask).astype(np.float64) for j in range(_LIMBS)]
    out: np.ndarray | None = None
    for i in range(_LIMBS):
        for j in range(_LIMBS - i):
            term = np.matmul(la[i], lb[j]).astype(np.uint64) << np.uint64(LIMB_BITS * (i + j))
            out = term if out is None else np.add(out, term, out=out)
    assert out is not None
    return out

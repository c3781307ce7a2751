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


LIMB_WIDTHS = (22, 20, 22)  # every ring element is l0 + l1 2^22 + l2 2^42 (mod 2^64), each limb balanced (signed)
LIMBS = len(LIMB_WIDTHS)
MAX_CHUNK_K = 1 << 10  # inner dimension whose limb products sum exactly in float64 (see _limb_matmul)
_LIMB_MIN_WORK = 1 << 24  # below ~250^3 multiply-adds numpy's integer matmul is as fast (measured)
_S1, _S2 = np.uint64(LIMB_WIDTHS[0]), np.uint64(LIMB_WIDTHS[0] + LIMB_WIDTHS[1])


def limbs(x: np.ndarray) -> list[np.ndarray]:
    """x as balanced limbs in float64: x = l0 + l1 2^22 + l2 2^42 mod 2^64, |l0|, |l2| <= 2^21, |l1| <= 2^19.

    Balanced (signed) limbs keep the products small enough for float64 with 3 limbs (2 limbs of 32 bits
    never fit its 53 bits). Each step takes the next w bits as a value in [-2^(w-1), 2^(w-1)) and carries
    the rest."""
    out = []
    v = np.asarray(x, dtype=np.uint64)
    for i, width in enumerate(LIMB_WIDTHS):
        half, low = np.uint64(1 << (width - 1)), np.uint64((1 << width) - 1)
        limb = ((v + half) & low).view(np.int64) - np.int64(half)
        out.append(limb.astype(np.float64))
        if i + 1 < LIMBS:
            v = (v - limb.view(np.uint64)) >> np.uint64(width)  # exact: v - limb is a multiple of 2^w (mod 2^64)
    return out


def _exact(p: np.ndarray) -> np.ndarray:
    """An exact float64 integer (|p| <= 2^53) as a ring element."""
    return p.astype(np.int64).view(np.uint64)


def _limb_matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a @ b mod 2^64 for an inner dimension k <= MAX_CHUNK_K: 4 BLAS calls, the work of 5 limb products.

    With limb shifts 0, 22 and 42, only pairs of total shift below 64 count ((1,2) is at 64):
      shift 0:  a0 b0
      shift 22: a0 b1 + a1 b0 = (a0 + a1)(b0 + b1) - a0 b0 - a1 b1  (Karatsuba: one product, not two)
      shift 42: a0 b2 + a2 b0 = [a0 a2] @ [b2; b0]  (one product of inner dimension 2k)
      shift 44: a1 b1 (already computed)
    Exact: the terms are at most 2^42 ((0,0), and (0,2), (2,0) over 2k terms: 2k <= 2^11) or
    (2^21 + 2^19)^2 < 2^42.7 (Karatsuba's, over k terms), so every sum stays within 2^53 for k <= 2^10."""
    a0, a1, a2 = limbs(a)
    b0, b1, b2 = limbs(b)
    p00 = _exact(np.matmul(a0, b0))
    p11 = _exact(np.matmul(a1, b1))
    mid = _exact(np.matmul(a0 + a1, b0 + b1))
    top = _exact(np.matmul(np.concatenate([a0, a2], axis=-1), np.concatenate([b2, b0], axis=-2)))
    mid -= p00
    mid -= p11
    top += p11 << np.uint64(2)
    top <<= _S2
    mid <<= _S1
    p00 += mid
    p00 += top
    return p00


def matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a @ b mod 2^64 (numpy matmul semantics); large products through float64 BLAS on 22-bit limbs.

    numpy's integer matmul uses no BLAS (a plain loop in numpy's C code). Here each operand is split into 3
    balanced limbs of 22, 20 and 22 bits (`limbs`) and the limb products that matter (`_limb_matmul`) run
    on BLAS, exact in float64 for an inner dimension up to MAX_CHUNK_K = 1024; a longer one is cut into
    chunks of that size,
    whose exact results are added in the ring. Small products (under ~250^3 multiply-adds) and
    matrix-vector products stay on numpy's integer matmul. Threads: whatever the party set (one per
    compute party by default: parties/cli.py)."""
    a = np.asarray(a, dtype=np.uint64)
    b = np.asarray(b, dtype=np.uint64)
    if a.ndim < 2 or b.ndim < 2 or a.size * b.shape[-1] < _LIMB_MIN_WORK:
        with np.errstate(over="ignore"):
            return np.asarray(np.matmul(a, b, dtype=np.uint64))
    k = a.shape[-1]
    if k != b.shape[-2]:
        raise ValueError(f"matmul: shapes {a.shape} and {b.shape} do not align ({k} != {b.shape[-2]})")
    out: np.ndarray | None = None
    for lo in range(0, k, MAX_CHUNK_K):
        part = _limb_matmul(a[..., lo:lo + MAX_CHUNK_K], b[..., lo:lo + MAX_CHUNK_K, :])
        out = part if out is None else np.add(out, part, out=out)
    assert out is not None
    return out


def matmul_sum(pairs: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """sum of a_i @ b_i mod 2^64. 2-D operands of one outer shape are joined along the inner dimension
    (one product of inner dimension sum k_i, BLAS's best case); anything else is summed product by product."""
    arrays = [(np.asarray(a, dtype=np.uint64), np.asarray(b, dtype=np.uint64)) for a, b in pairs]
    if all(a.ndim == 2 and b.ndim == 2 for a, b in arrays) and len({(a.shape[0], b.shape[1]) for a, b in arrays}) == 1:
        return matmul(np.concatenate([a for a, _ in arrays], axis=1), np.concatenate([b for _, b in arrays], axis=0))
    out = matmul(*arrays[0])
    with np.errstate(over="ignore"):
        for a, b in arrays[1:]:
            out = np.add(out, matmul(a, b), dtype=np.uint64)
    return np.asarray(out, dtype=np.uint64)

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


LIMB_BITS = 22
LIMBS = 3  # 3 x 22 >= 64: every ring element is l0 + l1 2^22 + l2 2^44 (mod 2^64), each limb in [-2^21, 2^21)
MAX_CHUNK_K = 1 << (53 - 2 * (LIMB_BITS - 1))  # 2^11: k limb products of magnitude <= 2^42 sum exactly in float64
_LIMB_MIN_WORK = 1 << 24  # below ~250^3 multiply-adds numpy's integer matmul is as fast (measured)
_HALF = np.uint64(1 << (LIMB_BITS - 1))
_LOW = np.uint64((1 << LIMB_BITS) - 1)
_SHIFT = np.uint64(LIMB_BITS)


def limbs(x: np.ndarray) -> list[np.ndarray]:
    """x as LIMBS balanced (signed) limbs in float64: x = sum_i limb_i 2^(22 i) mod 2^64, |limb_i| <= 2^21.

    Balanced limbs are why 3 suffice: a product of two is at most 2^42 in magnitude, so sums of up to 2^11
    of them are exact in float64 (below 2^53); unsigned 22-bit limbs would allow only 2^9, and 2 limbs of
    32 bits never fit. Each step takes the low 22 bits as a value in [-2^21, 2^21) and carries the rest."""
    out = []
    v = np.asarray(x, dtype=np.uint64)
    for i in range(LIMBS):
        limb = ((v + _HALF) & _LOW).view(np.int64) - np.int64(_HALF)
        out.append(limb.astype(np.float64))
        if i + 1 < LIMBS:
            v = (v - limb.view(np.uint64)) >> _SHIFT  # exact: v - limb is a multiple of 2^22 (mod 2^64)
    return out


def _exact(p: np.ndarray) -> np.ndarray:
    """An exact float64 integer (|p| <= 2^53) as a ring element."""
    return p.astype(np.int64).view(np.uint64)


def _limb_matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a @ b mod 2^64 for an inner dimension of at most MAX_CHUNK_K, in 3 BLAS calls (6 limb products).

    Only the limb pairs of shift below 64 count: (0,0) at 0; (0,1), (1,0) at 22; (0,2), (1,1), (2,0) at 44.
    Stacking a's limbs along the rows computes the pairs that share b's limb in one product."""
    la, lb = limbs(a), limbs(b)
    m = a.shape[-2]
    p = np.matmul(np.concatenate(la, axis=-2), lb[0])  # a0 b0, a1 b0, a2 b0
    q = np.matmul(np.concatenate(la[:2], axis=-2), lb[1])  # a0 b1, a1 b1
    r = np.matmul(la[0], lb[2])  # a0 b2
    out = _exact(p[..., :m, :])
    mid = _exact(p[..., m:2 * m, :])
    mid += _exact(q[..., :m, :])
    top = _exact(p[..., 2 * m:, :])
    top += _exact(q[..., m:, :])
    top += _exact(r)
    mid += top << _SHIFT
    out += mid << _SHIFT
    return out


def matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a @ b mod 2^64 (numpy matmul semantics); large products through float64 BLAS on 22-bit limbs.

    numpy's integer matmul uses no BLAS (a plain loop in numpy's C code). Here each operand is split into 3
    balanced 22-bit limbs (`limbs`) and the 6 limb products that matter run on BLAS, exact in float64 for
    an inner dimension up to MAX_CHUNK_K = 2048; a longer inner dimension is cut into chunks of that size,
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

"""Fixed-point truncation: divide a shared value by 2^bits after a product.

Two methods:

`dealer` (default, any number of compute parties). Probabilistic truncation with a dealer pair, after
Escudero, Ghosh, Keller, Rachuri, Scholl, "Improved Primitives for MPC over Mixed Arithmetic-Binary
Circuits" (CRYPTO 2020): for |x| < 2^62, let x' = x + 2^62 (so 0 <= x' < 2^63). The helper deals shares of
a uniform r, of msb(r), and of (r mod 2^63) >> bits. The parties open c = x' + r (1 round, 8 bytes per
element to each peer; perfectly hiding since r is uniform) and compute locally
  b = msb(c) XOR msb(r),     x' >> bits = (c mod 2^63) >> bits + b * 2^(63-bits) - (r mod 2^63) >> bits,
then subtract 2^(62-bits). Result: floor(x / 2^bits) or one more, never less: (c mod 2^63) >> bits minus
(r mod 2^63) >> bits is floor of the difference plus the borrow of the dropped low bits, which is 1 with
probability (x mod 2^bits) / 2^bits. So x / 2^bits is rounded down or up at random, unbiased, and exact
when the dropped bits are zero; never a large error while |x| < 2^62.

`local` (two compute parties only; SecureML, Mohassel and Zhang, S&P 2017): party 0 shifts its share,
party 1 shifts the negation of its share. 0 rounds, floor(x / 2^bits) or one more (the same borrow, from
the two shares' low bits) except with probability about 2^(k + 1 - 64) for |x| < 2^k, when the result is
wrong by about 2^(64-bits): see README.
"""

from __future__ import annotations

import numpy as np

from mpc.ring import signed as ring_signed
from protocols.primitives.core import Cost, Engine, Exchange, Material, Spec, run_protocol
from protocols.primitives.shared import SharedArray

OFFSET_BITS = 62
TOP = np.uint64(63)
LOW_MASK = np.uint64(2**63 - 1)


def truncate(ctx: Engine, x: SharedArray, bits: int, method: str | None = None) -> SharedArray:
    """Shared floor(x / 2^bits) or one more (see above). Collective; dealer: 1 round, local: 0 rounds."""
    method = method or ctx.truncation
    if bits == 0:
        return x
    if method == "local":
        return _local(ctx, x, bits)
    if method == "dealer":
        return _dealer(ctx, x, bits)
    raise ValueError(f"unknown truncation method {method!r} (dealer | local)")


def _local(ctx: Engine, x: SharedArray, bits: int) -> SharedArray:
    if len(ctx.compute_parties) != 2:
        raise ValueError("local truncation is only sound for two compute parties; use 'dealer'")
    shift = np.uint64(bits)

    async def body(io: Exchange, mat: Material, xs: np.ndarray) -> np.ndarray:
        return np.right_shift(xs, shift) if io.first else np.negative(np.right_shift(np.negative(xs), shift))

    def plain(xv: np.ndarray) -> np.ndarray:  # the whole value: floor (the rare large error is not emulated)
        return (ring_signed(xv) >> np.int64(bits)).view(np.uint64)

    return run_protocol(ctx, "trunc_local", None, body, [x], [(x.shape, x.frac_bits - bits)], plain=plain,
                        cost=Cost(0, 0, 0))[0]


def pair_spec(shape: tuple[int, ...], bits: int) -> Spec:
    """A truncation pair: uniform r, shares of msb(r) and of (r mod 2^63) >> bits."""
    return (Spec(elementwise=True).random("r", shape)
            .shared("msb", shape, lambda env: np.right_shift(env["r"], TOP))
            .shared("low", shape, lambda env: np.right_shift(env["r"] & LOW_MASK, np.uint64(bits))))


def _dealer(ctx: Engine, x: SharedArray, bits: int) -> SharedArray:
    shift = np.uint64(bits)

    async def body(io: Exchange, mat: Material, xs: np.ndarray) -> np.ndarray:
        # 1-d throughout (a 0-d value too): numpy scalars would warn on the ring's wrap-around
        masked = np.add(xs.ravel(), mat.r.ravel(), dtype=np.uint64)
        if io.first:
            masked += np.uint64(1 << OFFSET_BITS)
        c = await io.open(masked)
        c_msb = np.right_shift(c, TOP)
        # [b] = c_msb + [msb] - 2 c_msb [msb]: linear in the shared bit since c_msb is public.
        out = mat.msb.ravel() * (np.uint64(1) - np.uint64(2) * c_msb)
        if io.first:
            out += c_msb
        out *= np.uint64(1 << (63 - bits))
        out -= mat.low.ravel()
        if io.first:
            out += np.right_shift(c & LOW_MASK, shift)
            out -= np.uint64(1 << (OFFSET_BITS - bits))
        return out

    def plain(xv: np.ndarray) -> np.ndarray:
        check_magnitude(ctx, "trunc", xv, OFFSET_BITS, x.frac_bits, "before truncation")
        return round_randomly(ctx, xv, bits)

    return run_protocol(ctx, "trunc", pair_spec(x.shape, bits), body, [x], [(x.shape, x.frac_bits - bits)],
                        plain=plain, cost=Cost(1, 1, 8 * x.size))[0]


def round_randomly(ctx: Engine, xv: np.ndarray, bits: int) -> np.ndarray:
    """Emulation's truncation: floor(x / 2^bits), one more with probability (x mod 2^bits) / 2^bits, as the
    secure truncation does (the draw is the emulator's, the same on every emulated party)."""
    low = (xv & np.uint64((1 << bits) - 1)).astype(np.float64) / 2.0**bits
    up = (ctx.backend.uniform(xv.shape) < low).astype(np.uint64)
    return (ring_signed(xv) >> np.int64(bits)).view(np.uint64) + up


def check_magnitude(ctx: Engine, label: str, xv: np.ndarray, log2_limit: int, frac: int, what: str) -> None:
    """Emulation: report ring values of magnitude 2^log2_limit or more (the operation is wrong there)."""
    big = np.abs(ring_signed(xv).astype(np.float64))
    worst = float(np.max(big, initial=0.0))
    if worst >= 2.0**log2_limit:
        ctx.backend.report(ctx, label, f"a value of magnitude {worst / 2.0**frac:.4g} {what} is beyond "
                            f"2^{log2_limit - frac} = {2.0**(log2_limit - frac):.4g}: the secure result would be wrong")


def divisor_spec(shape: tuple[int, ...], d: np.ndarray) -> Spec:
    """A pair for division by a public integer d > 0: uniform r, msb(r), (r mod 2^63) // d, and d itself
    (sent back so each party checks that the dealer divided by its own d: a divisor computed differently on
    the helper would otherwise give a wrong result silently)."""
    return (Spec().random("r", shape)
            .shared("msb", shape, lambda env: np.right_shift(env["r"], TOP))
            .shared("low", shape, lambda env: (env["r"] & LOW_MASK) // np.broadcast_to(d, shape))
            .public("d", d.shape, lambda env: d))


def divide_public(ctx: Engine, x: SharedArray, divisor: np.ndarray) -> SharedArray:
    """floor(x / d) for a public integer d > 0 (an array broadcasting with x, or a scalar) within 3 units in
    the last place, one round, for |x| < 2^62 in ring units: the truncation above with d for 2^bits
    (Escudero et al. divide by any public d the same way). The error does not grow with x / d, unlike
    multiplying by a rounded 1/d."""
    given = np.asarray(divisor)
    if given.dtype.kind not in "iu" and not (given.dtype.kind == "f" and np.all(given == np.rint(given))):
        raise TypeError(f"divide_public: the divisor must be a public integer, not {given.dtype}")
    if np.any(given == 0):
        raise ZeroDivisionError("division of a shared value by a public zero")
    if np.any(given < 0) or np.any(given >= 2.0**63):
        raise ValueError("divide_public: the divisor must lie in [1, 2^63) (divide by -d and negate for a negative d)")
    d = given.astype(np.uint64)
    shape = tuple(np.broadcast_shapes(x.shape, d.shape))
    dd = np.broadcast_to(d, shape).ravel()
    offset = np.uint64(1 << OFFSET_BITS)

    async def body(io: Exchange, mat: Material, xs: np.ndarray) -> np.ndarray:
        if not np.array_equal(mat.d, d):
            raise ValueError("divide: the helper divided by another public divisor than this party: every party "
                             "must compute the same public values (as it does shapes)")
        masked = np.add(np.broadcast_to(xs, shape).ravel(), mat.r.ravel(), dtype=np.uint64)
        if io.first:
            masked += offset
        c = await io.open(masked)
        c_msb = np.right_shift(c, TOP)
        wrap = mat.msb.ravel() * (np.uint64(1) - np.uint64(2) * c_msb)  # [b] = c_msb XOR [msb]
        if io.first:
            wrap += c_msb
        out = wrap * (np.uint64(1 << 63) // dd) - mat.low.ravel()
        if io.first:
            out += (c & LOW_MASK) // dd - offset // dd
        return out

    def plain(xv: np.ndarray) -> np.ndarray:
        check_magnitude(ctx, "div_public", xv, OFFSET_BITS, x.frac_bits, "divided")
        q = np.floor_divide(np.broadcast_to(ring_signed(xv), shape), d.astype(np.int64))
        return np.asarray(q, dtype=np.int64).view(np.uint64)

    return run_protocol(ctx, "div_public", divisor_spec(shape, d), body, [x], [(shape, x.frac_bits)],
                        plain=plain, cost=Cost(1, 1, 8 * int(np.prod(shape, dtype=np.int64))))[0]

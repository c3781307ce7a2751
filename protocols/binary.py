"""Sign by bit decomposition: the comparison method for any number of compute parties ("bits").

Protocol (arithmetic-to-binary with dealer randomness and a log-depth adder, as in CrypTen's
`circuit.py`/`converters.py`, written for packed words):
  1. open x^ = x + r (1 round); the helper has dealt r both as arithmetic and as XOR shares of its bits;
  2. x = x^ + ~r + 1: the carry into bit 63 of that sum by a Kogge-Stone parallel prefix over packed
     64-bit words, generate G and propagate P, 6 levels of 2 word-ANDs each (6 rounds; AND by binary
     Beaver triples from the helper): msb(x) = x^_63 XOR ~r_63 XOR carry_63, XOR-shared;
  3. to arithmetic: open c = msb XOR rho for a dealt random bit rho held in both forms (1 round),
     [msb] = c + (1 - 2c)[rho].
Cost: 8 online rounds; per party and peer 8 + 6 * 32 + 8 = 208 bytes per element (+ headers);
dealer: 8 (2 * 6 + 2) = 112 bytes per element to the last party.

Equality, [x == 0], the same way but simpler: x == 0 iff x^ == r, iff every bit of x^ XOR r is 0. The
parties hold XOR shares of its complement ~(x^ XOR r) locally and AND its 64 bits together by folding
(w & w >> 32, then >> 16, ...: 6 levels of one word-AND each), then convert bit 0 to arithmetic.
Exact for every ring value. Cost: 8 online rounds, 8 + 6 * 16 + 8 = 112 bytes per element per peer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from protocols.shared import SharedArray, Shares

if TYPE_CHECKING:
    from protocols.context import Context

SHIFTS = (1, 2, 4, 8, 16, 32)
ALL_ONES = np.uint64(2**64 - 1)
ONE = np.uint64(1)


async def _and(ctx: Context, op, step: int, x: np.ndarray, y: np.ndarray, a: np.ndarray, b: np.ndarray,
               c: np.ndarray, depth: int, first: bool) -> tuple[np.ndarray, int]:
    """XOR-shared x & y with a binary Beaver triple (a, b, c = a & b): 1 round."""
    opened, depth = await ctx.open_shares(op, np.concatenate([(x ^ a).ravel(), (y ^ b).ravel()]), depth,
                                          step=step, xor=True)
    d = opened[: x.size].reshape(x.shape)
    e = opened[x.size:].reshape(y.shape)
    z = c ^ (d & b) ^ (e & a)
    if first:
        z ^= d & e
    return z, depth


async def _to_arithmetic(ctx: Context, op, bit: np.ndarray, mat, depth: int, first: bool,
                         shape: tuple[int, ...]) -> Shares:
    """XOR-shared bits to arithmetic shares: open c = bit XOR rho (1 round), [bit] = c + (1 - 2c)[rho]."""
    c, depth = await ctx.open_shares(op, bit ^ mat.rho_bits, depth, step=1 + len(SHIFTS), xor=True)
    out = (ONE - np.uint64(2) * c) * mat.rho
    if first:
        out += c
    return Shares(out.reshape(shape), depth)


def msb_bits(ctx: Context, x: SharedArray) -> SharedArray:
    """Arithmetic shares of msb(x) (= [x < 0] as two's complement). Collective, 8 rounds."""
    op = ctx.party.new_op("bits")
    n = x.size
    material = ctx.deal(ctx.material.bits(op, n, len(SHIFTS)))
    first = ctx.name == ctx.compute_parties[0]

    async def run() -> Shares:
        xs = await x.resolve()
        mat = await material
        await ctx.online_gate()
        if mat is None:
            return Shares(None, 0)
        assert xs.share is not None
        xhat, depth = await ctx.open_shares(op, xs.share.ravel() + mat.r, xs.depth)
        b = mat.r_bits ^ ALL_ONES if first else mat.r_bits  # XOR shares of ~r
        g = xhat & b
        p = b ^ xhat if first else b
        gen = g ^ (p & ONE)  # carry-in of 1 at bit 0
        prop = p & ~ONE
        for level, shift in enumerate(SHIFTS):
            s = np.uint64(shift)
            z, depth = await _and(ctx, op, 1 + level, np.stack([prop, prop]), np.stack([gen << s, prop << s]),
                                  mat.and_a[level], mat.and_b[level], mat.and_c[level], depth, first)
            gen, prop = gen ^ z[0], z[1]
        top = (xhat ^ b) if first else b
        bit = ((top >> np.uint64(63)) ^ (gen >> np.uint64(62))) & ONE
        return await _to_arithmetic(ctx, op, bit, mat, depth, first, x.shape)

    return SharedArray(ctx, x.shape, 0, ctx.spawn(run()))


def is_zero_bits(ctx: Context, x: SharedArray) -> SharedArray:
    """Arithmetic shares of [x == 0], exact for every ring value. Collective, 8 rounds."""
    op = ctx.party.new_op("eq_bits")
    n = x.size
    # the sign's material, of which the fold uses one of the two triples per level
    material = ctx.deal(ctx.material.bits(op, n, len(SHIFTS)))
    first = ctx.name == ctx.compute_parties[0]

    async def run() -> Shares:
        xs = await x.resolve()
        mat = await material
        await ctx.online_gate()
        if mat is None:
            return Shares(None, 0)
        assert xs.share is not None
        xhat, depth = await ctx.open_shares(op, xs.share.ravel() + mat.r, xs.depth)
        w = mat.r_bits ^ ~xhat if first else mat.r_bits  # XOR shares of ~(x^ XOR r): all ones iff x == 0
        for level, shift in enumerate(reversed(SHIFTS)):
            w, depth = await _and(ctx, op, 1 + level, w, w >> np.uint64(shift), mat.and_a[level, 0],
                                  mat.and_b[level, 0], mat.and_c[level, 0], depth, first)
        return await _to_arithmetic(ctx, op, w & ONE, mat, depth, first, x.shape)

    return SharedArray(ctx, x.shape, 0, ctx.spawn(run()))

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
Exact for every ring value. Cost: 8 online rounds, 8 + 6 * 16 + 8 = 112 bytes per element per peer;
dealer: 8 (6 + 2) = 64 bytes per element.
"""

from __future__ import annotations

import numpy as np

from protocols.primitives.core import Cost, Engine, Exchange, Material, Spec, run_protocol
from protocols.primitives.shared import SharedArray

SHIFTS = (1, 2, 4, 8, 16, 32)
ALL_ONES = np.uint64(2**64 - 1)
ONE = np.uint64(1)


async def _and(io: Exchange, step: int, x: np.ndarray, y: np.ndarray, a: np.ndarray, b: np.ndarray,
               c: np.ndarray) -> np.ndarray:
    """XOR-shared x & y with a binary Beaver triple (a, b, c = a & b): 1 round."""
    opened = await io.open(np.concatenate([(x ^ a).ravel(), (y ^ b).ravel()]), step=step, xor=True)
    d = opened[: x.size].reshape(x.shape)
    e = opened[x.size:].reshape(y.shape)
    z = c ^ (d & b) ^ (e & a)
    if io.first:
        z ^= d & e
    return z


async def _to_arithmetic(io: Exchange, mat: Material, bit: np.ndarray) -> np.ndarray:
    """XOR-shared bits to arithmetic shares: open c = bit XOR rho (1 round), [bit] = c + (1 - 2c)[rho]."""
    c = await io.open(bit ^ (mat.rho_bits & ONE), step=1 + len(SHIFTS), xor=True)
    out = (ONE - np.uint64(2) * c) * mat.rho
    if io.first:
        out += c
    return out


def bits_spec(n: int, levels: int) -> Spec:
    """r in both forms (arithmetic, XOR of its bits), `levels` x 2 binary AND triples, and a random bit
    rho in both forms (its XOR shares are bit 0 of each party's draw). Dealer: 8 (2 levels + 2) words
    per element to the last party."""
    return _spec(n, (levels, 2, n))


def _spec(n: int, and_shape: tuple[int, ...]) -> Spec:
    shape = (n,)
    return (Spec().random("r", shape)
            .shared("r_bits", shape, lambda env: env["r"], sharing="xor")
            .random("and_a", and_shape, sharing="xor")
            .random("and_b", and_shape, sharing="xor")
            .shared("and_c", and_shape, lambda env: env["and_a"] & env["and_b"], sharing="xor")
            .random("rho_bits", shape, sharing="xor")
            .shared("rho", shape, lambda env: env["rho_bits"] & ONE))


def msb_bits(ctx: Engine, x: SharedArray) -> SharedArray:
    """Arithmetic shares of msb(x) (= [x < 0] as two's complement). Collective, 8 rounds."""

    async def body(io: Exchange, mat: Material, xs: np.ndarray) -> np.ndarray:
        xhat = await io.open(xs.ravel() + mat.r)
        b = mat.r_bits ^ ALL_ONES if io.first else mat.r_bits  # XOR shares of ~r
        g = xhat & b
        p = b ^ xhat if io.first else b
        gen = g ^ (p & ONE)  # carry-in of 1 at bit 0
        prop = p & ~ONE
        for level, shift in enumerate(SHIFTS):
            s = np.uint64(shift)
            z = await _and(io, 1 + level, np.stack([prop, prop]), np.stack([gen << s, prop << s]),
                           mat.and_a[level], mat.and_b[level], mat.and_c[level])
            gen, prop = gen ^ z[0], z[1]
        top = (xhat ^ b) if io.first else b
        bit = ((top >> np.uint64(63)) ^ (gen >> np.uint64(62))) & ONE
        return await _to_arithmetic(io, mat, bit)

    def plain(xv: np.ndarray) -> np.ndarray:
        return (xv >> np.uint64(63)).astype(np.uint64)

    cost = Cost(2 + len(SHIFTS), 2 + len(SHIFTS), (8 + 2 * 16 * len(SHIFTS) + 8) * x.size)
    return run_protocol(ctx, "bits", bits_spec(x.size, len(SHIFTS)), body, [x], [(x.shape, 0)],
                        plain=plain, cost=cost)[0]


def is_zero_bits(ctx: Engine, x: SharedArray) -> SharedArray:
    """Arithmetic shares of [x == 0], exact for every ring value. Collective, 8 rounds."""

    async def body(io: Exchange, mat: Material, xs: np.ndarray) -> np.ndarray:
        xhat = await io.open(xs.ravel() + mat.r)
        w = mat.r_bits ^ ~xhat if io.first else mat.r_bits  # XOR shares of ~(x^ XOR r): all ones iff x == 0
        for level, shift in enumerate(reversed(SHIFTS)):
            w = await _and(io, 1 + level, w, w >> np.uint64(shift), mat.and_a[level], mat.and_b[level],
                           mat.and_c[level])
        return await _to_arithmetic(io, mat, w & ONE)

    def plain(xv: np.ndarray) -> np.ndarray:
        return (xv == 0).astype(np.uint64)

    spec = _spec(x.size, (len(SHIFTS), x.size))  # one word-AND per level
    cost = Cost(2 + len(SHIFTS), 2 + len(SHIFTS), (8 + 16 * len(SHIFTS) + 8) * x.size)
    return run_protocol(ctx, "eq_bits", spec, body, [x], [(x.shape, 0)], plain=plain, cost=cost)[0]

"""Smooth functions of shared fixed-point values: sigmoid, tanh, exp, log, reciprocal, division, sqrt,
rsqrt and softmax, all built on one primitive, a piecewise polynomial (spline) of a shared x.

A spline (`gates.Piecewise`) has K public breakpoints and a polynomial of degree <= 3 on each interval, in
local coordinates t = x - c_j (c_j public) so that fixed-point magnitudes stay small; its coefficients are
encoded so that every term of the ring sum has one common scale S (the output's fractional bits), and one
dealer truncation brings it back to f. Outside its interval a piece's value is garbage, but it is
multiplied by an interval indicator that is exactly 0 in the ring, so it never matters.

- method `dcf` (two compute parties): the one-round gate `gates.spline_gate`, one DCF key per element
  evaluated at every breakpoint; the truncation is a second round.
- method `bits` (any number of compute parties): the K comparisons [x < a_k] in one batched call (8
  rounds), the powers x^2, x^3 meanwhile (exact ring products), the pieces selected with one product
  (the ring sum P_K + sum_k [x < a_k] (P_(k-1) - P_k), exact), then the truncation: 10 rounds.

Functions with a wide range (log, reciprocal, division, sqrt, rsqrt) first normalise: one spline over the
powers of 4 gives m = x 4^-k in [1, 4) (exact, at f + Z bits, then truncated) and a function of k (4^-k,
2^-k, 2^k or k ln 4); a second spline evaluates g(m) on [1, 4); one product combines them. The error
bounds stated in the docstrings are measured over the documented domain (tests/test_functions.py).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from functools import cache

import numpy as np

from mpc.settings import MAX_FRAC_BITS, MIN_FRAC_BITS
from protocols.interface.function_tables import TABLES
from protocols.primitives import arithmetic, binary, comparison, gates, truncation
from protocols.primitives.core import Engine
from protocols.primitives.gates import Piecewise, shifted
from protocols.primitives.shared import SharedArray, derive, rescale

MIN_FRAC, MAX_FRAC = MIN_FRAC_BITS, MAX_FRAC_BITS
"""frac_bits the function tables support: cubic pieces need 3 f + a few bits of coefficient below 2^61."""

# -- the tables: exact integers, fitted once (scripts/function_tables.py), never here ------------------
# Parties on hosts whose BLAS or libm differ by one ulp would fit different coefficients and multiply them
# into their shares; shipped constants are the same everywhere, and their digest is compared at the hello.


def _table(name: str, frac: int) -> Piecewise:
    try:
        return TABLES[(name, frac)]
    except KeyError:
        raise ValueError(f"sigmoid, tanh, exp, log, reciprocal, sqrt, rsqrt and softmax need frac_bits between "
                         f"{MIN_FRAC} and {MAX_FRAC}; the topology's frac_bits is {frac}") from None


@cache
def public_tables() -> dict[str, str]:
    """What every party must hold identically, compared at the hello (`secure` declares it): a digest of
    each function's tables (all frac_bits) and of the comparison cost model `auto` chooses by."""
    families: dict[str, list[tuple[int, Piecewise]]] = {}
    for (name, frac), table in sorted(TABLES.items()):
        families.setdefault(name, []).append((frac, table))
    out = {f"table {name}": "sha256 " + hashlib.sha256(repr(tables).encode()).hexdigest()[:16]
           for name, tables in families.items()}
    costs = repr(sorted((m.value, c) for m, c in comparison.COSTS.items()))
    out["table comparison costs"] = "sha256 " + hashlib.sha256(costs.encode()).hexdigest()[:16]
    return out


def sigmoid_table(frac: int) -> Piecewise:
    """1 / (1 + e^-x): saturates to 0 / 1 outside [-8, 8]. 6 breakpoints (each one DCF evaluation) keep the
    error at 7.2e-4 (8 would give 3.4e-4: the saturation's)."""
    return _table("sigmoid", frac)


def tanh_table(frac: int) -> Piecewise:
    """tanh: saturates to -1 / 1 outside [-4.5, 4.5]; 8 breakpoints, error 3.6e-4 (6 would give 1.4e-3)."""
    return _table("tanh", frac)


def exp_table(frac: int, high: int = 8) -> Piecewise:
    """e^x on [-11, high] (high 8, or 0 for softmax): 0 below (e^-11 = 1.7e-5, about one LSB at f = 16),
    e^high above. Unit-width pieces; one output band per factor 16 of the value."""
    return _table(f"exp{high}", frac)


def _octaves(frac: int) -> tuple[int, int]:
    """The exponents k of the powers of 4 covering the domain [2^-f, 2^(46 - f))."""
    return -(frac // 2), (46 - frac) // 2 - 1


def norm_table(kind: str, frac: int, signed: bool = False) -> Piecewise:
    """x = 4^k m with m in [1, 4): outputs m at f + Z bits (exactly: x times the integer 2^(Z - 2k)) and a
    function of k (4^-k, 2^-k, 2^k or k ln 4, by `kind`). Inputs below 2^-f (0 and negatives too) take
    k = -f/2. `signed` (reciprocal and division): negative x as -(4^k m), the breakpoints mirrored (twice
    the key evaluations)."""
    return _table(f"norm_{kind}{'_signed' if signed else ''}", frac)


def mantissa_table(kind: str, frac: int) -> Piecewise:
    """g(m) on [1, 4) for kind reciprocal, rsqrt, sqrt or log: relative error <= 3.5e-5 (log: absolute)."""
    return _table(f"{kind}_m", frac)


def plain(table: Piecewise, x: np.ndarray) -> list[np.ndarray]:
    """The exact ring value of every output for ring inputs x (int64), as floats: the reference that the
    secure evaluation reproduces before its truncation (for tests and error bounds)."""
    xs = [int(v) for v in np.asarray(x, dtype=np.int64).ravel()]
    idx = np.searchsorted(np.array(table.breaks, dtype=np.int64), np.asarray(xs, dtype=np.int64), side="right")
    outs = []
    for coeffs, scale in zip(table.coeffs, table.scales, strict=True):
        vals = []
        for v, j in zip(xs, idx, strict=True):
            t = v - table.centers[j]
            ring = sum(c * t**i for i, c in enumerate(coeffs[j]))
            ring = (ring + 2**63) % 2**64 - 2**63
            vals.append(ring / 2.0**scale)
        outs.append(np.array(vals).reshape(np.shape(x)))
    return outs


# -- evaluation --------------------------------------------------------------------------------------

def piecewise(ctx: Engine, table: Piecewise, x: SharedArray, method: str | None = None) -> list[SharedArray]:
    """Every output of `table` at x (x at frac_bits), untruncated (at the table's scales). dcf: 1 round;
    bits: 9 rounds."""
    return comparison.by_method(
        ctx, table.name, x.size * max(1, len(table.breaks)), method,
        keyed=lambda compact: gates.evaluate(ctx, gates.spline_gate(table), x, 0, list(table.scales), table.name,
                                             compact),
        bits=lambda: _piecewise_bits(ctx, table, x))


def _piecewise_bits(ctx: Engine, table: Piecewise, x: SharedArray) -> list[SharedArray]:
    """P_K(x) + sum_k [x < a_k] (P_(k-1) - P_k)(x), exact in the ring: the K comparisons in one batch
    (8 rounds), x^2 and x^3 meanwhile, one product selecting the pieces. 9 rounds."""
    flat = x.reshape(-1)
    n, k_count, outs = flat.size, len(table.breaks), len(table.coeffs)
    first = ctx.holds_public  # whoever adds public constants (every emulated party holds the whole value)
    a = np.array([b % 2**64 for b in table.breaks], dtype=np.uint64)[:, None]
    diffs = flat.local(lambda s: s[None, :] - a if first else np.repeat(s[None, :], k_count, 0), (k_count, n))
    below = binary.msb_bits(ctx, diffs)
    powers = [flat]
    for _ in range(table.degree - 1):  # exact ring products (no truncation)
        powers.append(arithmetic.beaver(ctx, powers[-1], flat, "mul"))
    steps, last = _bits_coefficients(table)

    def ring_poly(cs: np.ndarray, s: Sequence[np.ndarray]) -> np.ndarray:
        """sum_e cs[..., e] x^e from this party's shares of x^e (the constant at the first party)."""
        out = sum((cs[..., e, None] * s[e - 1] for e in range(1, cs.shape[-1])), np.zeros(1, np.uint64))
        return out + cs[..., 0, None] if first else out

    diff = derive(ctx, powers, lambda s: ring_poly(steps, s), (outs, k_count, n), 0)
    chosen = arithmetic.beaver(ctx, below.reshape(1, k_count, n).broadcast_to((outs, k_count, n)), diff, "mul")
    total = derive(ctx, [chosen, *powers],
                   lambda s: np.sum(s[0], axis=1, dtype=np.uint64) + ring_poly(last, s[1:]), (outs, n), 0)
    return [_at_scale(total[o].reshape(x.shape), scale) for o, scale in enumerate(table.scales)]


@cache
def _bits_coefficients(table: Piecewise) -> tuple[np.ndarray, np.ndarray]:
    """In powers of x (mod 2^64): each step P_(k-1) - P_k, (outputs, K, d + 1), and the last piece P_K."""
    d = table.degree

    def in_x(coeffs: Sequence[int], center: int) -> np.ndarray:
        parts = shifted(coeffs, np.array([(-center) % 2**64], dtype=np.uint64))
        return np.concatenate([*parts, np.zeros(d + 1 - len(coeffs), np.uint64)])

    steps, last = [], []
    for coeffs in table.coeffs:
        pieces = [in_x(c, ctr) for c, ctr in zip(coeffs, table.centers, strict=True)]
        steps.append(np.stack([pieces[k] - pieces[k + 1] for k in range(len(table.breaks))]))
        last.append(pieces[-1])
    return np.stack(steps), np.stack(last)


def _at_scale(x: SharedArray, frac: int) -> SharedArray:
    """The same shares read at another scale (the ring value is already encoded at `frac` bits)."""
    return x.local(lambda s: s, x.shape, frac=frac)


def _prepare(ctx: Engine, x: SharedArray) -> SharedArray:
    """x at exactly frac_bits: integers are scaled (exact), values with more bits truncated (1 round)."""
    f = ctx.frac_bits
    if not MIN_FRAC <= f <= MAX_FRAC:
        raise ValueError(f"sigmoid, tanh, exp, log, reciprocal, sqrt, rsqrt and softmax need frac_bits between "
                         f"{MIN_FRAC} and {MAX_FRAC}; the topology's frac_bits is {f}")
    if x.frac_bits < f:
        return rescale(x, f)
    if x.frac_bits > f:
        return truncation.truncate(ctx, x, x.frac_bits - f, "dealer")
    return x


def _down(ctx: Engine, y: SharedArray) -> SharedArray:
    """Back to frac_bits by dealer truncation (1 round): values here use up to 2^61, far beyond what
    local truncation tolerates."""
    return truncation.truncate(ctx, y, y.frac_bits - ctx.frac_bits, "dealer")


def _spline_value(ctx: Engine, table: Piecewise, x: SharedArray, method: str | None) -> SharedArray:
    """One spline with its outputs (bands) truncated and added: dcf 2 rounds, bits 10."""
    outs = [_down(ctx, o) for o in piecewise(ctx, table, _prepare(ctx, x), method)]
    total = outs[0]
    for o in outs[1:]:
        total = total + o
    return total


# -- the functions -----------------------------------------------------------------------------------

def sigmoid(ctx: Engine, x: SharedArray, method: str | None = None) -> SharedArray:
    """1 / (1 + e^-x) on the whole real line, abs error <= 7.5e-4 (the spline's 7.2e-4 and one LSB).
    dcf: 2 rounds (the spline gate, its truncation); bits: 10."""
    return _spline_value(ctx, sigmoid_table(ctx.frac_bits), x, method)


def tanh(ctx: Engine, x: SharedArray, method: str | None = None) -> SharedArray:
    """tanh(x) on the whole real line, abs error <= 3.7e-4 (the spline's 3.6e-4, one LSB). dcf: 2 rounds;
    bits: 10."""
    return _spline_value(ctx, tanh_table(ctx.frac_bits), x, method)


def exp(ctx: Engine, x: SharedArray, method: str | None = None) -> SharedArray:
    """e^x for x <= 8 (x > 8 gives e^8), error <= 4e-4 e^x + 2^-(f-1) (x < -11 gives 0).
    dcf: 2 rounds; bits: 10."""
    return _spline_value(ctx, exp_table(ctx.frac_bits), x, method)


def _normalise(ctx: Engine, kind: str, x: SharedArray, method: str | None,
               signed: bool = False) -> tuple[SharedArray, SharedArray]:
    """(g(m) untruncated, the function of k) for x = 4^k m: the norm spline, m's truncation, g's spline."""
    big_m, pk = piecewise(ctx, norm_table(kind, ctx.frac_bits, signed), _prepare(ctx, x), method)
    g = piecewise(ctx, mantissa_table(kind, ctx.frac_bits), _down(ctx, big_m), method)[0]
    return g, pk


def log(ctx: Engine, x: SharedArray, method: str | None = None) -> SharedArray:
    """Natural log for x in [2^-f, 2^(46-f)), abs error <= 1e-4; x < 2^-f gives log(2^-f).
    dcf: 4 rounds (norm spline, truncation, mantissa spline, truncation); bits: 20."""
    g, k_ln4 = _normalise(ctx, "log", x, method)
    return _down(ctx, g + k_ln4)


def _scaled(ctx: Engine, kind: str, x: SharedArray, method: str | None, signed: bool = False) -> SharedArray:
    g, pk = _normalise(ctx, kind, x, method, signed)
    return _down(ctx, arithmetic.beaver(ctx, _down(ctx, g), pk, "mul"))


def reciprocal(ctx: Engine, x: SharedArray, method: str | None = None, positive: bool = False) -> SharedArray:
    """1 / x for 2^-f <= |x| < 2^(46-f), error <= 1.5e-4 / |x| + 2^-(f-1); 0 gives 2^f. dcf: 6 rounds (norm
    spline, truncation, mantissa spline, truncation, product, truncation); bits: 22. `positive=True`
    promises x > 0 and halves the norm spline's key evaluations (x <= 0 then gives 2^f)."""
    return _scaled(ctx, "reciprocal", x, method, signed=not positive)


def rsqrt(ctx: Engine, x: SharedArray, method: str | None = None) -> SharedArray:
    """1 / sqrt(x) for x in [2^-f, 2^(46-f)), error <= 1.5e-4 / sqrt(x) + 2^-(f-1). dcf: 6 rounds; bits: 22."""
    return _scaled(ctx, "rsqrt", x, method)


def sqrt(ctx: Engine, x: SharedArray, method: str | None = None) -> SharedArray:
    """sqrt(x) for x in [2^-f, 2^(46-f)) (and 0 for x <= 0), error <= 1.5e-4 sqrt(x) + 2^-(f-1).
    dcf: 6 rounds; bits: 22."""
    return _scaled(ctx, "sqrt", x, method)


def div(ctx: Engine, x: SharedArray | object, y: SharedArray, method: str | None = None,
        positive: bool = False) -> SharedArray:
    """x / y for a shared y with 2^-f <= |y| < 2^(46-f) and |x / y| < 2^(f-3), error <= 1.5e-4 |x / y| +
    2^-(f-2). x times the normaliser runs beside the mantissa's spline, so dcf: 6 rounds; bits: 22.
    `positive=True` as for `reciprocal`."""
    g, pk = _normalise(ctx, "reciprocal", y, method, signed=not positive)
    if isinstance(x, SharedArray):
        xs = arithmetic.beaver(ctx, _prepare(ctx, x), pk, "mul")
    else:
        xs = arithmetic.public_product(x, pk, "mul", ctx.frac_bits)
    return _down(ctx, arithmetic.beaver(ctx, _down(ctx, xs), _down(ctx, g), "mul"))


def softmax(ctx: Engine, x: SharedArray, axis: int = -1, method: str | None = None) -> SharedArray:
    """exp(x - max) / sum along `axis`; abs error <= 2e-4 per entry (measured). dcf: ceil(log2 k) rounds
    for the max, 2 for exp on (-inf, 0], 6 for the division: 8 + ceil(log2 k)."""
    if not -x.ndim <= axis < x.ndim:
        raise ValueError(f"softmax: axis {axis} does not exist for a shared array of shape {x.shape}")
    ax = axis % x.ndim
    if x.shape[ax] == 0:
        raise ValueError(f"softmax of an empty axis: axis {ax} of shape {x.shape} has no elements")
    x = _prepare(ctx, x)
    top = comparison.max_along(ctx, x, axis, method)
    keep = x.shape[:ax] + (1,) + x.shape[ax + 1:]
    e = _spline_value(ctx, exp_table(ctx.frac_bits, 0), x - top.reshape(keep), method)
    return div(ctx, e, e.sum(axis=ax, keepdims=True), method, positive=True)  # the sum is >= 1

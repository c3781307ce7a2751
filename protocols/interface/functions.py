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

import math
from collections.abc import Callable, Sequence
from functools import cache

import numpy as np

from protocols.primitives import arithmetic, binary, comparison, gates, truncation
from protocols.primitives.core import Engine
from protocols.primitives.gates import Piecewise, shifted
from protocols.primitives.shared import SharedArray, derive, rescale

MIN_FRAC, MAX_FRAC = 10, 16
"""frac_bits the function tables support: cubic pieces need 3 f + a few bits of coefficient below 2^61."""
Fn = Callable[[np.ndarray], np.ndarray]

# -- fitting and encoding the tables (public, computed once per frac_bits) ----------------------------


def _fit(fn: Fn, lo: float, hi: float, center: float, degree: int, relative: bool = False) -> list[float]:
    """Least-squares polynomial in t = x - center on Chebyshev nodes of [lo, hi] (close to minimax), of
    the absolute or (for a positive fn) the relative error."""
    nodes = (lo + hi) / 2 + (hi - lo) / 2 * np.cos(np.pi * (np.arange(64) + 0.5) / 64)
    weights = 1 / np.abs(fn(nodes)) if relative else None
    return list(np.polyfit(nodes - center, fn(nodes), degree, w=weights)[::-1])


def _encode(coeffs: Sequence[float], scale: int, frac: int) -> tuple[int, ...]:
    """Real coefficients of t^i (t at frac bits) as ring integers such that the sum is at `scale` bits."""
    return tuple(int(round(p * 2.0 ** (scale - i * frac))) for i, p in enumerate(coeffs))


def _q(value: float, frac: int) -> float:
    """A public point on the fixed-point grid (centres and breakpoints are exact ring values)."""
    return round(value * 2**frac) / 2**frac


def spline(name: str, frac: int, breaks: Sequence[float], fn: Fn, lo: float, hi: float, *, low: float,
           high: float | None, scale: int, degree: int = 3,
           bands: Sequence[tuple[float, int]] = (), relative: bool = False) -> Piecewise:
    """A spline of fn: cubic pieces between the breakpoints (the first and last extend to lo and hi),
    the constant `low` below breaks[0] and `high` from breaks[-1] on (None: the last piece continues).

    `bands` [(upper x, scale), ...] put the pieces below each upper x on their own output at that scale
    (exp: e^x spans 2^-16 to 2^12, and each band keeps ~14 bits of relative precision); the outputs are
    truncated apart and added."""
    pts = [_q(b, frac) for b in breaks]
    edges = [lo, *pts, hi]
    rows: list[tuple[float, list[float]]] = [(pts[0], [low])]
    for j in range(len(pts) - 1 + (high is None)):
        a, b = pts[j], edges[j + 2]
        c = _q((a + b) / 2, frac)
        rows.append((c, _fit(fn, a, b, c, degree, relative)))
    if high is not None:
        rows.append((pts[-1], [high]))
    limits = [*bands] or [(math.inf, scale)]
    outputs, scales = [], []
    for band, (upper, band_scale) in enumerate(limits):
        under = limits[band - 1][0] if band else -math.inf
        out = []
        for j, (_, coeffs) in enumerate(rows):
            start = -math.inf if j == 0 else pts[j - 1]
            out.append(_encode(coeffs, band_scale, frac) if under <= start < upper else (0,))
        outputs.append(tuple(out))
        scales.append(band_scale)
    centers = tuple(int(round(c * 2**frac)) for c, _ in rows)
    return Piecewise(name, tuple(int(round(p * 2**frac)) for p in pts), centers, tuple(outputs), tuple(scales))


@cache
def sigmoid_table(frac: int) -> Piecewise:
    """1 / (1 + e^-x): saturates to 0 / 1 outside [-8, 8]. 6 breakpoints (each one DCF evaluation) keep the
    error at 7.2e-4 (8 would give 3.4e-4: the saturation's)."""
    breaks = [-8, -4, -1.5, 1.5, 4, 8]
    return spline("sigmoid", frac, breaks, lambda x: 1 / (1 + np.exp(-x)), -8, 8, low=0.0, high=1.0, scale=60)


@cache
def tanh_table(frac: int) -> Piecewise:
    """tanh: saturates to -1 / 1 outside [-4.5, 4.5]; 8 breakpoints, error 3.6e-4 (6 would give 1.4e-3)."""
    breaks = [-4.5, -2.5, -1.5, -0.5, 0.5, 1.5, 2.5, 4.5]
    return spline("tanh", frac, breaks, np.tanh, -4.5, 4.5, low=-1.0, high=1.0, scale=60)


EXP_LOW = -11.0
EXP_HIGH = 8.0


@cache
def exp_table(frac: int, high: float = EXP_HIGH) -> Piecewise:
    """e^x on [-11, high]: 0 below (e^-11 = 1.7e-5, about one LSB at f = 16), e^high above. Unit-width
    pieces; one output band per factor 16 of the value (scale 60 for e^x <= 1, then 56, 52, 48)."""
    steps = int(high - EXP_LOW)
    breaks = [EXP_LOW + i for i in range(steps + 1)]
    bands = [(0.0, 60)] + [(math.log(16.0**b), 60 - 4 * b) for b in range(1, 4) if math.log(16.0**(b - 1)) < high]
    bands[-1] = (math.inf, bands[-1][1])
    if any(s - 3 * frac < 0 for _, s in bands):
        raise AssertionError("exp table: a band's cubic coefficient has no bits left")
    return spline(f"exp{int(high)}", frac, breaks, np.exp, EXP_LOW, high, low=0.0, high=math.exp(high),
                  scale=60, bands=bands, relative=True)


def _octaves(frac: int) -> tuple[int, int]:
    """The exponents k of the powers of 4 covering the domain [2^-f, 2^(46 - f))."""
    return -(frac // 2), (46 - frac) // 2 - 1


NORM_SCALES = {"reciprocal": lambda f: 60 - 2 * f, "rsqrt": lambda f: 60 - f - (f + 1) // 2,
               "sqrt": lambda f: 60 - f - (48 - f) // 2, "log": lambda f: 56}
NORM_VALUES: dict[str, Callable[[int], float]] = {
    "reciprocal": lambda k: 4.0**-k, "rsqrt": lambda k: 2.0**-k, "sqrt": lambda k: 2.0**k,
    "log": lambda k: k * math.log(4.0)}


@cache
def norm_table(kind: str, frac: int, signed: bool = False) -> Piecewise:
    """x = 4^k m with m in [1, 4): outputs m at f + Z bits (exactly: x times the integer 2^(Z - 2k)) and
    NORM_VALUES[kind](k). Inputs below 2^-f (0 and negatives too) take k = -f/2. `signed` (reciprocal
    and division): negative x as -(4^k m), m = |x| 4^-k and the value negated, with the breakpoints
    mirrored (twice the key evaluations)."""
    k_lo, k_hi = _octaves(frac)
    z = 2 * k_hi
    ks = range(k_lo, k_hi + 1)
    value, scale = NORM_VALUES[kind], NORM_SCALES[kind](frac)
    m_rows = [(0, 2 ** (z - 2 * k)) for k in ks]
    p_rows = [(int(round(value(k) * 2.0**scale)),) for k in ks]
    breaks = [4 ** k * 2**frac if k >= 0 else 2**frac // 4 ** -k for k in ks[1:]]
    if signed:  # intervals [-4^(k+1), -4^k) for k = k_hi .. k_lo, then [0, ...) as above
        m_rows = [(0, -c) for _, c in reversed(m_rows)] + m_rows
        p_rows = [(-c,) for (c,) in reversed(p_rows)] + p_rows
        breaks = [-b for b in reversed(breaks)] + [0] + breaks
    return Piecewise(f"norm_{kind}{'_signed' if signed else ''}", tuple(breaks), (0,) * len(m_rows),
                     (tuple(m_rows), tuple(p_rows)), (frac + z, scale))


G_BREAKS = [1, 1.25, 1.6, 2, 2.5, 3.2]  # relative error <= 3.5e-5 for every g (8 give 2e-5)
G_FUNCS: dict[str, tuple[Fn, float, int]] = {  # g(m) on [1, 4), its value below 1, its scale
    "reciprocal": (lambda m: 1 / m, 1.0, 60), "rsqrt": (lambda m: 1 / np.sqrt(m), 1.0, 60),
    "sqrt": (np.sqrt, 0.0, 59), "log": (np.log, 0.0, 56)}


@cache
def mantissa_table(kind: str, frac: int) -> Piecewise:
    fn, low, scale = G_FUNCS[kind]
    return spline(f"{kind}_m", frac, G_BREAKS, fn, 1.0, 4.0, low=low, high=None, scale=scale)


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
    e = _spline_value(ctx, exp_table(ctx.frac_bits, 0.0), x - top.reshape(keep), method)
    return div(ctx, e, e.sum(axis=ax, keepdims=True), method, positive=True)  # the sum is >= 1

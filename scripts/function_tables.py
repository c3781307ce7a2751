"""Generates protocols/interface/function_tables.py: the spline tables of protocols/interface/functions.py
(sigmoid, tanh, exp, and the normalisation and mantissa tables of log, reciprocal, sqrt and rsqrt) for
every supported frac_bits, as exact integers.

The tables are fitted here in floating point (numpy's least squares, libm's exp and log), once, and shipped
as integer constants: parties on hosts whose BLAS or libm differ by one ulp would otherwise compute
different coefficients and multiply them into their shares, giving garbage with no error. The parties also
compare a digest of the shipped tables at the hello. tests/test_function_tables.py recomputes them with
this script and checks that the shipped module is what it writes.

Usage: python scripts/function_tables.py   (rewrites protocols/interface/function_tables.py)
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mpc.settings import MAX_FRAC_BITS, MIN_FRAC_BITS  # noqa: E402
from protocols.primitives.gates import Piecewise  # noqa: E402

OUT = ROOT / "protocols" / "interface" / "function_tables.py"

Fn = Callable[[np.ndarray], np.ndarray]



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


def sigmoid_table(frac: int) -> Piecewise:
    """1 / (1 + e^-x): saturates to 0 / 1 outside [-8, 8]. 6 breakpoints (each one DCF evaluation) keep the
    error at 7.2e-4 (8 would give 3.4e-4: the saturation's)."""
    breaks = [-8, -4, -1.5, 1.5, 4, 8]
    return spline("sigmoid", frac, breaks, lambda x: 1 / (1 + np.exp(-x)), -8, 8, low=0.0, high=1.0, scale=60)


def tanh_table(frac: int) -> Piecewise:
    """tanh: saturates to -1 / 1 outside [-4.5, 4.5]; 8 breakpoints, error 3.6e-4 (6 would give 1.4e-3)."""
    breaks = [-4.5, -2.5, -1.5, -0.5, 0.5, 1.5, 2.5, 4.5]
    return spline("tanh", frac, breaks, np.tanh, -4.5, 4.5, low=-1.0, high=1.0, scale=60)


EXP_LOW = -11.0
EXP_HIGH = 8.0


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


def mantissa_table(kind: str, frac: int) -> Piecewise:
    fn, low, scale = G_FUNCS[kind]
    return spline(f"{kind}_m", frac, G_BREAKS, fn, 1.0, 4.0, low=low, high=None, scale=scale)


EXP_HIGHS = {"exp8": EXP_HIGH, "exp0": 0.0}  # e^x up to 8 (exp), and on (-inf, 0] (softmax)
NORM_KINDS = tuple(NORM_VALUES)


def compute_tables() -> dict[tuple[str, int], Piecewise]:
    """Every table functions.py evaluates, keyed by (name, frac_bits)."""
    tables: dict[tuple[str, int], Piecewise] = {}
    for frac in range(MIN_FRAC_BITS, MAX_FRAC_BITS + 1):
        tables[("sigmoid", frac)] = sigmoid_table(frac)
        tables[("tanh", frac)] = tanh_table(frac)
        for name, high in EXP_HIGHS.items():
            tables[(name, frac)] = exp_table(frac, high)
        for kind in NORM_KINDS:
            for signed in (False, True):
                tables[(f"norm_{kind}{'_signed' if signed else ''}", frac)] = norm_table(kind, frac, signed)
            tables[(f"{kind}_m", frac)] = mantissa_table(kind, frac)
    return tables


def render(tables: dict[tuple[str, int], Piecewise]) -> str:
    """The module's text: one Piecewise per line, integers only."""
    lines = [
        '"""The spline tables of protocols/interface/functions.py as exact integers, for every supported frac_bits.',
        "",
        "GENERATED by scripts/function_tables.py from floating-point fits, once; do not edit (tests/",
        "test_function_tables.py recomputes them). Shipped as constants so that every party multiplies the very",
        'same integers into its shares, whatever its BLAS or libm; the parties compare digests of them at the',
        'hello (functions.public_tables)."""',
        "",
        "# ruff: noqa: E501",
        "from __future__ import annotations",
        "",
        "from protocols.primitives.gates import Piecewise",
        "",
        "# fmt: off",
        "TABLES: dict[tuple[str, int], Piecewise] = {",
    ]
    for (name, frac), t in sorted(tables.items()):
        lines.append(f"    ({name!r}, {frac}): Piecewise({t.name!r}, {t.breaks!r}, {t.centers!r},")
        lines.append(f"        {t.coeffs!r},")
        lines.append(f"        {t.scales!r}),")
    lines += [
        "}",
        "# fmt: on",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    OUT.write_text(render(compute_tables()))
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()

"""numpy on shared values: what `np.sum(x)`, `np.maximum(x, 0)`, `x / 2`, `abs(x)`, `x ** 2` do.

`SharedArray` implements numpy's dispatch protocols (`__array_ufunc__`, `__array_function__`) by handing
the call to its context, which comes here. A numpy function either computes securely with the same
result as numpy (exact for integers, within the stated bound for fixed point, 0-d, empty and broadcast
shapes included) or raises a TypeError naming the operation and what to use instead. Nothing is ever
computed on a revealed value behind the user's back.

Costs (online rounds, dcf / bits): linear operations 0; `*`, `@` with a shared operand 1 (+1 truncation
for fixed point); comparisons 1 / 8; `abs` 1 / 9 (one ReLU gate on x and -x side by side); `x / c` and
`np.mean` by public values: 1 (a truncation); `x // d` (integers, public d > 0): 2 / 9, exact; `x ** k` for a
small public k: one product level per bit of k; `& | ^` on comparison bits: 1 (a product), `~`: 0.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from protocols.primitives import arithmetic, comparison, truncation
from protocols.primitives.shared import SharedArray, stack

if TYPE_CHECKING:
    from protocols.primitives.core import Engine

MAX_POWER = 64  # x ** k for 0 <= k <= MAX_POWER: ceil(log2 k) + popcount(k) - 1 products


# -- arithmetic beyond the operators ------------------------------------------------------------

def divide(ctx: Engine, x: Any, y: Any) -> SharedArray:
    """x / y. By a public y: one round, within 3 units in the last place whatever x / y for an integer y
    (the division of protocols/primitives/truncation.py, for every representable x); any other y is k / 2^e, the same
    division by the integer k after a local scaling by 2^e (valid while |x| 2^e < 2^(62 - f)). By a shared
    y: ctx.div (a reciprocal, protocols/interface/functions.py). Public / shared: y's reciprocal times x."""
    if isinstance(y, SharedArray):
        if not isinstance(x, SharedArray):
            return ctx.mul(ctx.reciprocal(y), np.asarray(x, dtype=np.float64))  # type: ignore[attr-defined]
        return ctx.div(x, y)  # type: ignore[attr-defined, no-any-return]
    divisor = np.asarray(y, dtype=np.float64)
    if np.any(divisor == 0) or not np.all(np.isfinite(divisor)):
        raise ZeroDivisionError("division of a shared value by a public zero (or a non-finite value)")
    x = x if x.frac_bits else x * 1.0  # an integer divided gives a real, as in numpy: to fixed point (local)
    sign = np.where(divisor < 0, -1, 1).astype(np.int64)
    magnitude = np.abs(divisor)
    if np.any(magnitude < 1):
        # 1/|y| = K + g with K an integer and 0 <= g < 1: x K is exact (an integer product, local) and x g is
        # one fixed-point product, so the result is within one LSB plus |x| 2^-(f+1) (g's rounding)
        inverse = 1.0 / magnitude
        whole = np.floor(inverse)
        if np.any(whole >= 2.0**62):
            raise ValueError("division by a public value below 2^-62: the result cannot be represented")
        return x * (whole.astype(np.int64) * sign) + x * ((inverse - whole) * sign)
    e = 0
    if not np.all(magnitude == np.rint(magnitude)):
        # |y| ~ k / 2^e with k >= 2^(f+2): x / y = (x 2^e) // k, 1/8 unit of relative error at most, for
        # |x| 2^e < 2^(62 - f) in ring units (e = f + 2 - floor(log2 |y|) <= f + 2)
        e = max(0, ctx.frac_bits + 2 - int(np.floor(np.log2(magnitude.min()))))
    k = np.rint(magnitude * 2.0**e).astype(np.int64)
    scaled = x if not e else x.local(lambda s: np.multiply(s, np.uint64(1 << e), dtype=np.uint64), x.shape)
    q = truncation.divide_public(ctx, scaled, k)
    return q if np.all(sign == 1) else q * sign


def floor_divide(ctx: Engine, x: SharedArray, d: Any) -> SharedArray:
    """x // d for a shared integer x and a public integer d > 0, exact as numpy's for |x| < 2^62: the
    one-round division of protocols/primitives/truncation.py (off by -1..2), then the remainder x - q d compared with
    -d, 0 and d in one batched comparison fixes it (dcf: 2 rounds; bits: 9)."""
    if isinstance(d, SharedArray):
        raise TypeError("x // y with a shared y is not supported; use x / y (fixed point)")
    if x.frac_bits:
        raise TypeError("// of a fixed-point shared value is not supported; use x / d (numpy's floor of a "
                        "float has no exact secure counterpart here)")
    div = np.asarray(d)
    if div.dtype.kind not in "iu" or np.any(div <= 0):
        raise TypeError("x // d needs a public positive integer d")
    q0 = truncation.divide_public(ctx, x, div)
    rem = x - q0 * div
    below = comparison.less_than(ctx, stack([rem + div, rem, rem - div]), 0)  # [rem < -d], [rem < 0], [rem < d]
    return q0 - below[0] - below[1] + (1 - below[2])


def power(ctx: Engine, x: SharedArray, k: Any) -> SharedArray:
    """x ** k for a small public integer k >= 0 by square-and-multiply (x ** 0 is ones)."""
    if isinstance(k, SharedArray) or np.ndim(k) or not float(k).is_integer():
        raise TypeError("x ** k needs a public integer k; use ctx.exp(k * ctx.log(x)) for other powers")
    k = int(k)
    if not 0 <= k <= MAX_POWER:
        raise TypeError(f"x ** k supports 0 <= k <= {MAX_POWER}; use ctx.reciprocal for negative powers")
    if k == 0:
        ones = np.ones(x.shape, dtype=np.float64 if x.frac_bits else np.int64)
        return x * 0 + ones
    result: SharedArray | None = None
    base = x
    while k:
        if k & 1:
            result = base if result is None else result * base
        k >>= 1
        if k:
            base = base * base
    assert result is not None
    return result


def absolute(ctx: Engine, x: SharedArray, method: str | None = None) -> SharedArray:
    """|x| = relu(x) + relu(-x): both in one batched gate (dcf: 1 round)."""
    both = comparison.relu(ctx, stack([x, -x]), method)
    return both[0] + both[1]


def bit_and(ctx: Engine, a: Any, b: Any) -> SharedArray:
    """a AND b for comparison bits (shared 0/1 integers): a * b, 1 round."""
    return _bits_product(ctx, a, b)


def bit_or(ctx: Engine, a: Any, b: Any) -> SharedArray:
    """a OR b for comparison bits: a + b - ab, 1 round."""
    return ctx.add(ctx.add(a, b), -_bits_product(ctx, a, b))


def bit_xor(ctx: Engine, a: Any, b: Any) -> SharedArray:
    """a XOR b for comparison bits: a + b - 2ab, 1 round."""
    return ctx.add(ctx.add(a, b), -2 * _bits_product(ctx, a, b))


def bit_not(x: SharedArray) -> SharedArray:
    _check_bits(x)
    return 1 - x


def _check_bits(x: Any) -> None:
    if isinstance(x, SharedArray) and x.frac_bits:
        raise TypeError("& | ^ ~ work on comparison bits (shared 0/1 integers), not on fixed-point values")


def _bits_product(ctx: Engine, a: Any, b: Any) -> SharedArray:
    _check_bits(a)
    _check_bits(b)
    return arithmetic.product(ctx, a, b, "mul", frac_bits=ctx.frac_bits, truncate=False)


# -- reductions ---------------------------------------------------------------------------------

def mean(ctx: Engine, x: SharedArray, axis: int | tuple[int, ...] | None = None,
         keepdims: bool = False) -> SharedArray:
    """The mean along `axis` (None: all): a local sum, then one division by the public count."""
    reduced = np.empty(x.shape, np.bool_).sum(axis=axis, keepdims=keepdims)
    total = x.sum(axis=axis, keepdims=keepdims)
    if reduced.size == 0:
        return total if total.frac_bits else total * 1.0  # no mean to take: numpy gives an empty result too
    count = x.size // reduced.size
    if count == 0:
        raise ValueError(f"mean of an empty axis (shape {x.shape}): numpy would give NaN, which fixed point has not")
    return divide(ctx, total, count)


def reduce_max(ctx: Engine, x: SharedArray, axis: int | None = None, which: str = "max",
               method: str | None = None) -> SharedArray:
    """max / min / argmax / argmin along `axis` (None: over the flattened array, as numpy)."""
    if axis is None:
        x, axis = x.reshape(-1), 0
    if which == "max":
        return comparison.max_along(ctx, x, axis, method)
    if which == "min":
        return -comparison.max_along(ctx, -x, axis, method)
    if which == "argmax":
        return comparison.argmax_along(ctx, x, axis, method)
    return comparison.argmax_along(ctx, -x, axis, method)


def clip(ctx: Engine, x: SharedArray, lo: Any = None, hi: Any = None, method: str | None = None) -> SharedArray:
    """np.clip: max(lo, min(x, hi)); each bound costs one ReLU gate (dcf: 1 round each)."""
    out = x
    if hi is not None:
        out = comparison.minimum(ctx, out, hi, method)
    if lo is not None:
        out = comparison.maximum(ctx, out, lo, method)
    return out

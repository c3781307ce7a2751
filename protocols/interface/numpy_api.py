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

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from protocols.interface import analytics
from protocols.primitives import arithmetic, comparison, truncation
from protocols.primitives import sort as sorting
from protocols.primitives.shared import SharedArray, concatenate, constant, stack

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


# -- numpy's dispatch ---------------------------------------------------------------------------

def _ufuncs(ctx: Engine) -> dict[Any, Callable[..., Any]]:
    def sub(a: Any, b: Any) -> SharedArray:
        return a - b if isinstance(a, SharedArray) else ctx.add(-b, a)

    return {
        np.add: ctx.add,
        np.subtract: sub,
        np.multiply: ctx.mul,
        np.matmul: ctx.matmul,
        np.negative: lambda a: -a,
        np.positive: lambda a: a,
        np.true_divide: lambda a, b: divide(ctx, a, b),
        np.floor_divide: lambda a, b: floor_divide(ctx, a, b),
        np.power: lambda a, b: power(ctx, a, b),
        np.square: lambda a: a * a,
        np.absolute: lambda a: absolute(ctx, a),
        np.less: lambda a, b: ctx.less(a, b),
        np.greater: lambda a, b: ctx.less(b, a),
        np.less_equal: lambda a, b: 1 - ctx.less(b, a),
        np.greater_equal: lambda a, b: 1 - ctx.less(a, b),
        np.equal: lambda a, b: ctx.equal(a, b),
        np.not_equal: lambda a, b: 1 - ctx.equal(a, b),
        np.maximum: lambda a, b: comparison.maximum(ctx, a, b),
        np.minimum: lambda a, b: comparison.minimum(ctx, a, b),
        np.sign: lambda a: comparison.sign(ctx, a),
        np.bitwise_and: lambda a, b: bit_and(ctx, a, b),
        np.bitwise_or: lambda a, b: bit_or(ctx, a, b),
        np.bitwise_xor: lambda a, b: bit_xor(ctx, a, b),
        np.invert: bit_not,
        np.logical_not: bit_not,
        np.exp: lambda a: ctx.exp(a),  # type: ignore[attr-defined]
        np.log: lambda a: ctx.log(a),  # type: ignore[attr-defined]
        np.sqrt: lambda a: ctx.sqrt(a),  # type: ignore[attr-defined]
        np.tanh: lambda a: ctx.tanh(a),  # type: ignore[attr-defined]
        np.reciprocal: lambda a: ctx.reciprocal(a),  # type: ignore[attr-defined]
    }


_INSTEAD = {
    "sin": "a polynomial of x", "cos": "a polynomial of x", "floor": "x // d on integers",
    "ceil": "x // d on integers", "round": "nothing: a fixed-point value is already a multiple of 2^-frac_bits",
    "rint": "nothing: a fixed-point value is already a multiple of 2^-frac_bits",
    "prod": "products along the axis (x[..., 0] * x[..., 1] * ...)", "average": "np.sum(x * w) / np.sum(w)",
    "norm": "ctx.sqrt(np.sum(x * x))", "cumprod": "products step by step", "power": "x ** k with a public integer k",
    "unique": "ctx.unique(x, return_counts=True, reveal_distinct=True) (their number becomes public)",
    "nonzero": "np.count_nonzero or ctx.where (positions would reveal the data)",
    "argwhere": "np.count_nonzero or ctx.where (positions would reveal the data)",
    "flatnonzero": "np.count_nonzero or ctx.where (positions would reveal the data)",
    "isnan": "nothing: shared values are always finite", "isfinite": "nothing: shared values are finite",
    "isinf": "nothing: shared values are finite", "nansum": "np.sum (shared values are never NaN)",
    "nanmean": "np.mean (shared values are never NaN)", "nanmedian": "np.median (shared values are never NaN)",
    "nanmax": "np.max (shared values are never NaN)", "nanmin": "np.min (shared values are never NaN)",
    "lexsort": "ctx.sort(key, *columns) on one key (combine keys into one: k1 * K + k2)",
    "argpartition": "ctx.top_k(x, k) or np.argsort(x)", "bincount": "ctx.group_count(keys, groups)",
    "searchsorted": "np.digitize(x, public_bins)", "in1d": "np.isin", "intersect1d": "ctx.psi (ids of two banks)",
    "histogram2d": "ctx.group_count on combined bin codes (np.digitize of each axis)",
    "histogramdd": "ctx.group_count on combined bin codes (np.digitize of each axis)",
    "ptp": "np.max(x) - np.min(x)", "diff": "x[1:] - x[:-1]", "outer": "x.reshape(-1, 1) * y.reshape(1, -1)",
    "trace": "sum of x[i, i]", "log2": "np.log(x) / np.log(2)", "log10": "np.log(x) / np.log(10)",
    "exp2": "np.exp(x * np.log(2))", "log1p": "np.log(1 + x)", "expm1": "np.exp(x) - 1",
    "cbrt": "ctx.exp(ctx.log(x) / 3) for x > 0", "fmax": "np.maximum", "fmin": "np.minimum",
    "mod": "x - d * (x // d) on integers", "remainder": "x - d * (x // d) on integers",
    "heaviside": "x >= 0 (a shared 0/1)", "logical_and": "a & b on comparison bits",
    "logical_or": "a | b on comparison bits", "logical_xor": "a ^ b on comparison bits",
    "array_equal": "np.all(x == y)", "allclose": "np.all(np.abs(x - y) <= tol)",
    "einsum": "x @ y and sums", "inner": "np.dot", "tensordot": "x @ y after a reshape",
    "cross": "products of the components", "convolve": "products of shifted slices",
    "sort_complex": "not offered (no complex shared values)",
}


def array_ufunc(ctx: Engine, ufunc: Any, method: str, inputs: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """numpy.<ufunc>(...) with a shared operand."""
    name = getattr(ufunc, "__name__", str(ufunc))
    if method == "reduce" and ufunc is np.add:
        extra = sorted(k for k in kwargs if k not in ("axis", "keepdims"))
        if extra:
            raise TypeError(f"numpy.add.reduce({', '.join(f'{k}=' for k in extra)}) is not supported on shared "
                            "values")
        return inputs[0].sum(axis=kwargs.get("axis", 0), keepdims=kwargs.get("keepdims", False))
    if method != "__call__":
        raise TypeError(f"numpy.{name}.{method} is not supported on shared values")
    if kwargs.get("out") is not None or kwargs.get("where", True) is not True:
        raise TypeError(f"numpy.{name}: out= and where= are not supported on shared values")
    handler = _ufuncs(ctx).get(ufunc)
    if handler is None:
        raise TypeError(f"numpy.{name} is not supported on shared values; {_instead(name)}")
    try:
        return handler(*inputs)
    except AttributeError as exc:  # a function family not available in this version
        raise TypeError(f"numpy.{name} is not supported on shared values ({exc})") from None


def _axis(kwargs: dict[str, Any], args: tuple[Any, ...], position: int) -> Any:
    return kwargs.get("axis", args[position] if len(args) > position else None)


_KEYWORDS = {
    "sum": {"axis", "keepdims"}, "mean": {"axis", "keepdims"}, "var": {"axis", "keepdims"},
    "std": {"axis", "keepdims"}, "max": {"axis", "keepdims"}, "amax": {"axis", "keepdims"},
    "min": {"axis", "keepdims"}, "amin": {"axis", "keepdims"}, "argmax": {"axis"}, "argmin": {"axis"},
    "concatenate": {"axis"}, "stack": {"axis"}, "hstack": set(), "vstack": set(),
    "clip": {"a_min", "a_max", "min", "max"},
    "reshape": {"newshape", "shape"}, "transpose": {"axes"}, "cumsum": {"axis"}, "ravel": set(),
    "squeeze": {"axis"}, "expand_dims": {"axis"},
}


def _flat_axis(args: tuple[Any, ...], kwargs: dict[str, Any], what: str, default: Any = -1) -> SharedArray:
    """The 1-D array a sort-like function works on: x itself, or x flattened for axis=None."""
    x = args[0]
    axis = kwargs.get("axis", default)
    if axis is None:
        return x.reshape(-1)
    if x.ndim != 1 or axis not in (0, -1):
        raise TypeError(f"numpy.{what} on shared values works on 1-D arrays (or axis=None), not shape {x.shape} "
                        f"along axis {axis}")
    return x


def _sort_kind(kwargs: dict[str, Any], what: str) -> None:
    if kwargs.get("kind") not in (None, "stable", "mergesort", "quicksort") or kwargs.get("order") is not None:
        raise TypeError(f"numpy.{what}: kind= other than stable and order= are not supported on shared values")


def _np_sort(ctx: Engine, args: tuple[Any, ...], kwargs: dict[str, Any]) -> SharedArray:
    _sort_kind(kwargs, "sort")
    return sorting.sort(ctx, _flat_axis(args, kwargs, "sort"))


def _np_argsort(ctx: Engine, args: tuple[Any, ...], kwargs: dict[str, Any]) -> SharedArray:
    _sort_kind(kwargs, "argsort")
    return sorting.argsort(ctx, _flat_axis(args, kwargs, "argsort"))


def _np_partition(ctx: Engine, args: tuple[Any, ...], kwargs: dict[str, Any]) -> SharedArray:
    kth = kwargs.get("kth", args[1] if len(args) > 1 else None)
    if kth is None:
        raise TypeError("numpy.partition needs kth")
    return sorting.partition(ctx, _flat_axis(args[:1], kwargs, "partition"), kth)


def _np_quantile(scale: float, what: str) -> Callable[[Engine, tuple[Any, ...], dict[str, Any]], SharedArray]:
    def run(ctx: Engine, args: tuple[Any, ...], kwargs: dict[str, Any]) -> SharedArray:
        q = kwargs.get("q", args[1] if len(args) > 1 else None)
        if q is None:
            raise TypeError(f"numpy.{what} needs q")
        if kwargs.get("method", "linear") != "linear" or kwargs.get("interpolation") not in (None, "linear"):
            raise TypeError(f"numpy.{what}: only method='linear' (numpy's default) is supported on shared values")
        return sorting.quantile(ctx, _flat_axis(args[:1], kwargs, what, None), np.asarray(q, dtype=np.float64) / scale)
    return run


def _np_median(ctx: Engine, args: tuple[Any, ...], kwargs: dict[str, Any]) -> SharedArray:
    return sorting.median(ctx, _flat_axis(args, kwargs, "median", None))


def _np_take(ctx: Engine, args: tuple[Any, ...], kwargs: dict[str, Any]) -> SharedArray:
    z, idx = args[0], kwargs.get("indices", args[1] if len(args) > 1 else None)
    if isinstance(idx, SharedArray):
        if not isinstance(z, SharedArray):
            z = constant(ctx, z)
        return sorting.take(ctx, z, idx)
    axis = kwargs.get("axis")
    if axis not in (None, 0) or z.ndim != 1 and axis is None:
        raise TypeError("numpy.take with a public index works on 1-D shared arrays here; index x[idx] instead")
    return z[np.asarray(idx)]


def _np_counting(name: str) -> Callable[[Engine, tuple[Any, ...], dict[str, Any]], Any]:
    def run(ctx: Engine, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        x, rest = args[0], args[1:]
        allowed = {"histogram": {"bins"}, "digitize": {"bins", "right"}, "count_nonzero": {"axis"},
                   "any": {"axis"}, "all": {"axis"}, "isin": {"test_elements"}, "cov": {"rowvar", "ddof"},
                   "corrcoef": {"rowvar"}}[name]
        extra = sorted(k for k in kwargs if k not in allowed)
        if extra:
            raise TypeError(f"numpy.{name}({', '.join(f'{k}=' for k in extra)}) is not supported on shared values")
        if name in ("cov", "corrcoef") and rest:
            raise TypeError(f"numpy.{name}(x, y): stack them first, np.{name}(np.stack([x, y]))")
        fns: dict[str, Callable[..., Any]] = {"histogram": analytics.histogram, "digitize": analytics.digitize,
              "count_nonzero": analytics.count_nonzero, "any": analytics.any_, "all": analytics.all_,
              "isin": analytics.isin, "cov": analytics.cov, "corrcoef": analytics.corrcoef}
        fn = fns[name]
        if not isinstance(x, SharedArray):
            raise TypeError(f"numpy.{name} with a shared second argument only: make the first shared "
                            "(ctx.constant) or use public values throughout")
        return fn(ctx, x, *rest, **kwargs)

    return run


_ANALYTICS: dict[str, Callable[[Engine, tuple[Any, ...], dict[str, Any]], Any]] = {
    **{name: _np_counting(name) for name in ("histogram", "digitize", "count_nonzero", "any", "all", "isin",
                                             "cov", "corrcoef")},
    "sort": _np_sort, "argsort": _np_argsort, "partition": _np_partition, "median": _np_median,
    "percentile": _np_quantile(100.0, "percentile"), "quantile": _np_quantile(1.0, "quantile"), "take": _np_take,
}


def _qualified(func: Any) -> str:
    module = getattr(func, "__module__", "numpy") or "numpy"
    return f"{module.replace('numpy._core.', 'numpy.').replace('numpy.core.', 'numpy.')}.{func.__name__}"


def array_function(ctx: Engine, func: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """numpy.<function>(...) with a shared argument. A keyword this module does not honour (out=, where=,
    initial=, dtype=, ...) is refused rather than silently ignored."""
    name = func.__name__
    if name in _KEYWORDS:
        extra = sorted(k for k in kwargs if k not in _KEYWORDS[name])
        if extra:
            raise TypeError(f"{_qualified(func)}({', '.join(f'{k}=' for k in extra)}) is not supported on shared "
                            "values")
    x: Any = args[0] if args else None
    if name in ("var", "std"):
        axis, keepdims = _axis(kwargs, args, 1), kwargs.get("keepdims", False)
        centred = x - mean(ctx, x, axis, True)
        variance = mean(ctx, centred * centred, axis, keepdims)
        return variance if name == "var" else ctx.sqrt(variance)  # type: ignore[attr-defined]
    if name == "cumsum":
        axis = _axis(kwargs, args, 1)
        flat = x.reshape(-1) if axis is None else x
        return flat.local(lambda s: np.cumsum(s, axis=0 if axis is None else axis, dtype=np.uint64), flat.shape)
    if name in ("hstack", "vstack"):
        items = [a if isinstance(a, SharedArray) else constant(ctx, a) for a in args[0]]
        if name == "vstack":
            items = [a.reshape(1, -1) if a.ndim == 1 else a for a in items]
            return concatenate(items, 0)
        return concatenate(items, 0 if all(a.ndim == 1 for a in items) else 1)
    if name == "ravel":
        return x.reshape(-1)
    if name in ("squeeze", "expand_dims"):
        probe = func(np.broadcast_to(np.empty((), np.bool_), x.shape), *args[1:], **kwargs)
        return x.reshape(probe.shape)
    if name == "sum":
        return x.sum(axis=_axis(kwargs, args, 1), keepdims=kwargs.get("keepdims", False))
    if name == "mean":
        return mean(ctx, x, _axis(kwargs, args, 1), kwargs.get("keepdims", False))
    if name in ("max", "amax", "min", "amin", "argmax", "argmin"):
        which = {"amax": "max", "amin": "min"}.get(name, name)
        axis = _axis(kwargs, args, 1)
        out = reduce_max(ctx, x, axis, which)
        if kwargs.get("keepdims"):
            kept = np.broadcast_to(np.empty((), np.bool_), x.shape).max(axis=axis, keepdims=True).shape
            out = out.reshape(kept)
        return out
    if name in ("dot", "matmul"):
        return ctx.matmul(args[0], args[1])
    if name in ("concatenate", "stack"):
        items = [a if isinstance(a, SharedArray) else constant(ctx, a) for a in args[0]]  # public parts too
        join = concatenate if name == "concatenate" else stack
        return join(items, kwargs.get("axis", args[1] if len(args) > 1 else 0))
    if name == "where":
        if len(args) != 3:
            raise TypeError("numpy.where on shared values needs all three arguments: np.where(bit, a, b)")
        cond = args[0]
        if not isinstance(cond, SharedArray):
            raise TypeError("numpy.where with a public condition and shared values: index them instead")
        return comparison.where(ctx, cond, args[1], args[2])
    if name == "clip":
        lo = kwargs.get("a_min", kwargs.get("min", args[1] if len(args) > 1 else None))
        hi = kwargs.get("a_max", kwargs.get("max", args[2] if len(args) > 2 else None))
        return clip(ctx, x, lo, hi)
    if name == "reshape":
        return x.reshape(kwargs.get("newshape", kwargs.get("shape", args[1] if len(args) > 1 else None)))
    if name == "transpose":
        axes = kwargs.get("axes", args[1] if len(args) > 1 else None)
        return x.transpose() if axes is None else x.transpose(*axes)
    if name == "abs":
        return absolute(ctx, x)
    if name in ("square",):
        return x * x
    if name in _ANALYTICS:
        return _ANALYTICS[name](ctx, args, kwargs)
    if name == "shape":
        return x.shape
    if name == "ndim":
        return x.ndim
    if name == "size":
        return x.size
    raise TypeError(f"{_qualified(func)} is not supported on shared values; {_instead(name)}")


def _instead(name: str) -> str:
    """What to use instead of numpy's `name`, or that it is not offered (docs/analytics.md lists what is)."""
    hint = _INSTEAD.get(name)
    if hint is None:
        return "it is not offered (docs/analytics.md and the README list what is)"
    return hint if hint.startswith(("nothing", "not offered", "it is not")) else f"use {hint}"

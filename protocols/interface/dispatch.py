"""numpy's dispatch for shared values: `np.maximum(x, 0)`, `np.sum(x)`, `x / 2`, `abs(x)` reach here.

Two tables, built once at import: the ufuncs and the functions that shared values support, from the
local (linear) operations below and from every registered operation's numpy aliases
(protocols/interface/operations.py). A numpy call either computes securely with numpy's result (exact
for integers, within the stated bound for fixed point, 0-d, empty and broadcast shapes included) or
raises a TypeError naming the operation and what to use instead. Nothing is ever computed on a revealed
value behind the user's back.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from protocols.interface import numpy_api
from protocols.interface.operations import OPERATIONS
from protocols.interface.registry import Adapter
from protocols.primitives.core import Engine
from protocols.primitives.shared import SharedArray, concatenate, constant, stack

# -- local ufuncs (0 rounds) and the bit operations of comparison results ---------------------------


def _subtract(ctx: Engine, a: Any, b: Any) -> SharedArray:
    return a - b if isinstance(a, SharedArray) else ctx.add(-b, a)


_LOCAL_UFUNCS: dict[Any, Adapter] = {
    np.add: lambda ctx, a, b: ctx.add(a, b),
    np.subtract: _subtract,
    np.negative: lambda ctx, a: -a,
    np.positive: lambda ctx, a: a,
    np.square: lambda ctx, a: a * a,
    np.bitwise_and: numpy_api.bit_and,
    np.bitwise_or: numpy_api.bit_or,
    np.bitwise_xor: numpy_api.bit_xor,
    np.invert: lambda ctx, a: numpy_api.bit_not(a),
    np.logical_not: lambda ctx, a: numpy_api.bit_not(a),
}
UFUNCS: dict[Any, Adapter] = {**_LOCAL_UFUNCS, **OPERATIONS.ufunc_table()}


# -- functions ---------------------------------------------------------------------------------------

def _axis(kwargs: dict[str, Any], args: tuple[Any, ...], position: int) -> Any:
    return kwargs.get("axis", args[position] if len(args) > position else None)


def _moments(which: str) -> Adapter:
    def adapt(ctx: Engine, args: tuple[Any, ...], kwargs: dict[str, Any]) -> SharedArray:
        x, axis, keepdims = args[0], _axis(kwargs, args, 1), kwargs.get("keepdims", False)
        centred = x - numpy_api.mean(ctx, x, axis, True)
        variance = numpy_api.mean(ctx, centred * centred, axis, keepdims)
        return variance if which == "var" else ctx.sqrt(variance)  # type: ignore[attr-defined, no-any-return]

    return adapt


def _cumsum(ctx: Engine, args: tuple[Any, ...], kwargs: dict[str, Any]) -> SharedArray:
    x, axis = args[0], _axis(kwargs, args, 1)
    flat = x.reshape(-1) if axis is None else x
    return flat.local(lambda s: np.cumsum(s, axis=0 if axis is None else axis, dtype=np.uint64), flat.shape)


def _public_too(ctx: Engine, items: Any) -> list[SharedArray]:
    return [a if isinstance(a, SharedArray) else constant(ctx, a) for a in items]


def _hstack(ctx: Engine, args: tuple[Any, ...], kwargs: dict[str, Any]) -> SharedArray:
    items = _public_too(ctx, args[0])
    return concatenate(items, 0 if all(a.ndim == 1 for a in items) else 1)


def _vstack(ctx: Engine, args: tuple[Any, ...], kwargs: dict[str, Any]) -> SharedArray:
    items = [a.reshape(1, -1) if a.ndim == 1 else a for a in _public_too(ctx, args[0])]
    return concatenate(items, 0)


def _join(how: Callable[..., SharedArray]) -> Adapter:
    def adapt(ctx: Engine, args: tuple[Any, ...], kwargs: dict[str, Any]) -> SharedArray:
        return how(_public_too(ctx, args[0]), kwargs.get("axis", args[1] if len(args) > 1 else 0))

    return adapt


def _by_probe(func: Callable[..., Any]) -> Adapter:
    """squeeze / expand_dims: numpy computes the new shape on an empty probe of the same shape."""

    def adapt(ctx: Engine, args: tuple[Any, ...], kwargs: dict[str, Any]) -> SharedArray:
        x = args[0]
        probe = func(np.broadcast_to(np.empty((), np.bool_), x.shape), *args[1:], **kwargs)
        return x.reshape(probe.shape)  # type: ignore[no-any-return]

    return adapt


def _transpose(ctx: Engine, args: tuple[Any, ...], kwargs: dict[str, Any]) -> SharedArray:
    axes = kwargs.get("axes", args[1] if len(args) > 1 else None)
    return args[0].transpose() if axes is None else args[0].transpose(*axes)  # type: ignore[no-any-return]


_LOCAL_FUNCTIONS: dict[str, Adapter] = {
    "sum": lambda ctx, a, kw: a[0].sum(axis=_axis(kw, a, 1), keepdims=kw.get("keepdims", False)),
    "var": _moments("var"),
    "std": _moments("std"),
    "cumsum": _cumsum,
    "hstack": _hstack,
    "vstack": _vstack,
    "concatenate": _join(concatenate),
    "stack": _join(stack),
    "ravel": lambda ctx, a, kw: a[0].reshape(-1),
    "squeeze": _by_probe(np.squeeze),
    "expand_dims": _by_probe(np.expand_dims),
    "reshape": lambda ctx, a, kw: a[0].reshape(kw.get("newshape", kw.get("shape", a[1] if len(a) > 1 else None))),
    "transpose": _transpose,
    "square": lambda ctx, a, kw: a[0] * a[0],
    "shape": lambda ctx, a, kw: a[0].shape,
    "ndim": lambda ctx, a, kw: a[0].ndim,
    "size": lambda ctx, a, kw: a[0].size,
}
FUNCTIONS: dict[str, Adapter] = {**_LOCAL_FUNCTIONS, **OPERATIONS.function_table()}

_KEYWORDS = {  # the keywords each function honours; any other (out=, where=, dtype=, ...) is refused
    "sum": {"axis", "keepdims"}, "mean": {"axis", "keepdims"}, "var": {"axis", "keepdims"},
    "std": {"axis", "keepdims"}, "max": {"axis", "keepdims"}, "amax": {"axis", "keepdims"},
    "min": {"axis", "keepdims"}, "amin": {"axis", "keepdims"}, "argmax": {"axis"}, "argmin": {"axis"},
    "concatenate": {"axis"}, "stack": {"axis"}, "hstack": set(), "vstack": set(),
    "clip": {"a_min", "a_max", "min", "max"},
    "reshape": {"newshape", "shape"}, "transpose": {"axes"}, "cumsum": {"axis"}, "ravel": set(),
    "squeeze": {"axis"}, "expand_dims": {"axis"},
}

INSTEAD = {  # what to use for a numpy function that shared values do not support
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


def instead(name: str) -> str:
    """What to use instead of numpy's `name`, or that it is not offered (docs/analytics.md and the README's
    numpy table list what is)."""
    hint = INSTEAD.get(name)
    if hint is None:
        return "it is not offered (the README's numpy table and docs/analytics.md list what is)"
    return hint if hint.startswith(("nothing", "not offered")) else f"use {hint}"


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
    handler = UFUNCS.get(ufunc)
    if handler is None:
        raise TypeError(f"numpy.{name} is not supported on shared values; {instead(name)}")
    return handler(ctx, *inputs)


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
    handler = FUNCTIONS.get(name)
    if handler is None:
        raise TypeError(f"{_qualified(func)} is not supported on shared values; {instead(name)}")
    return handler(ctx, args, kwargs)

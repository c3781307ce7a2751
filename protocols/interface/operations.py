"""Every secure operation of the programming interface, declared once (protocols/interface/registry.py).

Each entry names the function that computes it (below, or in its protocol family's module), its numpy
aliases, its sample for the bench and the test matrix, and its online rounds on that sample. `ctx.<name>`
calls it; `mpc bench --op <bench name>` measures it. To add an operation: write its protocol (one module),
then add one `Operation` to `OPERATIONS` (docs/ARCHITECTURE.md, "Adding an operation").
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mpc import ring
from protocols.interface import functions, numpy_api, samples
from protocols.interface.analytics_ops import ANALYTICS
from protocols.interface.registry import Operation, Registry, Sample
from protocols.primitives import arithmetic, comparison, truncation
from protocols.primitives.core import Engine
from protocols.primitives.shared import SharedArray, rescale

# -- the operations' functions (ctx.<name>; their docstrings are the methods') -----------------------


def mul(ctx: Engine, x: Any, y: Any, truncate: bool = True) -> SharedArray:
    """Elementwise x * y. Shared by shared: 1 round (Beaver); by public: local. Then truncation, unless
    `truncate=False` (the result keeps 2f fractional bits, e.g. for a fused ReLU)."""
    return arithmetic.product(ctx, x, y, "mul", frac_bits=ctx.frac_bits, truncate=truncate)


def matmul(ctx: Engine, x: Any, y: Any, truncate: bool = True) -> SharedArray:
    """x @ y. Shared by shared: 1 round (matrix triple); by public: local. Then truncation, unless
    `truncate=False`."""
    return arithmetic.product(ctx, x, y, "matmul", frac_bits=ctx.frac_bits, truncate=truncate)


def truncate(ctx: Engine, x: SharedArray, bits: int, method: str | None = None) -> SharedArray:
    """floor(x / 2^bits) or one more; dealer: 1 round, local: 0 (see protocols/primitives/truncation.py)."""
    return truncation.truncate(ctx, x, bits, method)


def less(ctx: Engine, x: Any, y: Any, method: str | None = None) -> SharedArray:
    """[x < y] as a shared 0/1 integer. dcf: 1 round; compact: 2; bits: 8."""
    return comparison.less_than(ctx, x, y, method)


def equal(ctx: Engine, x: Any, y: Any, method: str | None = None) -> SharedArray:
    """[x == y] as a shared 0/1 integer, same rounds as `less`."""
    return comparison.equal(ctx, x, y, method)


def sign(ctx: Engine, x: SharedArray, method: str | None = None) -> SharedArray:
    """-1, 0 or 1 like numpy.sign, for every value: [x < 0] and [x == 0] side by side, same rounds as `<`."""
    return comparison.sign(ctx, x, method)


def relu(ctx: Engine, x: SharedArray, method: str | None = None) -> SharedArray:
    """max(x, 0). dcf: 1 round; compact: 2; bits: 9.

    A value with more than `frac_bits` fractional bits (a product taken with `truncate=False`) is
    truncated back in the same gate: relu(x) >> extra bits, still one round with dcf."""
    if x.frac_bits > ctx.frac_bits:
        return comparison.relu_truncate(ctx, x, x.frac_bits - ctx.frac_bits, method)
    return comparison.relu(ctx, x, method)


def maximum(ctx: Engine, x: Any, y: Any, method: str | None = None) -> SharedArray:
    """Elementwise max(x, y) = y + relu(x - y): the rounds of relu."""
    return comparison.maximum(ctx, x, y, method)


def minimum(ctx: Engine, x: Any, y: Any, method: str | None = None) -> SharedArray:
    """Elementwise min(x, y) = x - relu(x - y): the rounds of relu."""
    return comparison.minimum(ctx, x, y, method)


def max_along(ctx: Engine, x: SharedArray, axis: int = -1, method: str | None = None) -> SharedArray:
    """Maximum along `axis` (a tree: ceil(log2 k) ReLU gates for k entries)."""
    return comparison.max_along(ctx, x, axis, method)


def argmax(ctx: Engine, x: SharedArray, axis: int = -1, method: str | None = None) -> SharedArray:
    """Shared index of the first maximum along `axis` (per tree level a sign gate and a product: 2 rounds
    per level with dcf)."""
    return comparison.argmax_along(ctx, x, axis, method)


def where(ctx: Engine, bit: SharedArray, a: Any, b: Any) -> SharedArray:
    """bit ? a : b for a shared 0/1 integer `bit`. 1 round."""
    return comparison.where(ctx, bit, a, b)


def divide(ctx: Engine, x: Any, y: Any) -> SharedArray:
    """x / y: by a public y, 1 round (a truncation); by a shared y, a reciprocal (ctx.div)."""
    return numpy_api.divide(ctx, x, y)


def floor_divide(ctx: Engine, x: SharedArray, d: Any) -> SharedArray:
    """x // d for a shared integer x and a public integer d > 0, exact as numpy's for |x| < 2^62 (dcf: 2
    rounds; bits: 9)."""
    return numpy_api.floor_divide(ctx, x, d)


def power(ctx: Engine, x: SharedArray, k: Any) -> SharedArray:
    """x ** k for a small public integer k >= 0 by square-and-multiply (one product level per bit of k)."""
    return numpy_api.power(ctx, x, k)


def absolute(ctx: Engine, x: SharedArray, method: str | None = None) -> SharedArray:
    """|x|: one ReLU gate on x and -x together (dcf: 1 round)."""
    return numpy_api.absolute(ctx, x, method)


def clip(ctx: Engine, x: SharedArray, lo: Any = None, hi: Any = None, method: str | None = None) -> SharedArray:
    """np.clip: max(lo, min(x, hi)); each bound one ReLU gate."""
    return numpy_api.clip(ctx, x, lo, hi, method)


def mean(ctx: Engine, x: SharedArray, axis: int | tuple[int, ...] | None = None) -> SharedArray:
    """The mean along `axis` (None: all): a local sum, then one division by the public count (1 round)."""
    return numpy_api.mean(ctx, x, axis)


def _shared(x: Any, what: str) -> SharedArray:
    if not isinstance(x, SharedArray):
        raise TypeError(f"ctx.{what} takes a shared value (from ctx.input or an operation), not a "
                        f"{type(x).__name__}; on public values use numpy")
    return x


def sigmoid(ctx: Engine, x: SharedArray, method: str | None = None) -> SharedArray:
    """1 / (1 + e^-x), abs error <= 7.5e-4 on the real line. dcf: 2 rounds; bits: 10."""
    return functions.sigmoid(ctx, _shared(x, "sigmoid"), method)


def tanh(ctx: Engine, x: SharedArray, method: str | None = None) -> SharedArray:
    """tanh(x), abs error <= 3.7e-4 on the real line. dcf: 2 rounds; bits: 10."""
    return functions.tanh(ctx, _shared(x, "tanh"), method)


def exp(ctx: Engine, x: SharedArray, method: str | None = None) -> SharedArray:
    """e^x for x <= 8 (e^8 above). dcf: 2 rounds; bits: 10."""
    return functions.exp(ctx, _shared(x, "exp"), method)


def log(ctx: Engine, x: SharedArray, method: str | None = None) -> SharedArray:
    """Natural log for x in [2^-f, 2^(46-f)). dcf: 4 rounds; bits: 20."""
    return functions.log(ctx, _shared(x, "log"), method)


def reciprocal(ctx: Engine, x: SharedArray, method: str | None = None, positive: bool = False) -> SharedArray:
    """1 / x for 2^-f <= |x| < 2^(46-f). dcf: 6 rounds; bits: 22. `positive=True`: x > 0, less compute."""
    return functions.reciprocal(ctx, _shared(x, "reciprocal"), method, positive)


def div(ctx: Engine, x: Any, y: Any, method: str | None = None, positive: bool = False) -> SharedArray:
    """x / y for a shared y, 2^-f <= |y| < 2^(46-f), |x / y| < 2^(f-3). dcf: 6 rounds; bits: 22."""
    if not isinstance(y, SharedArray):
        return numpy_api.divide(ctx, _shared(x, "div"), y)  # by a public value: its own protocol
    return functions.div(ctx, x, y, method, positive)


def sqrt(ctx: Engine, x: SharedArray, method: str | None = None) -> SharedArray:
    """sqrt(x) for x in [2^-f, 2^(46-f)), 0 for x <= 0. dcf: 6 rounds; bits: 22."""
    return functions.sqrt(ctx, _shared(x, "sqrt"), method)


def rsqrt(ctx: Engine, x: SharedArray, method: str | None = None) -> SharedArray:
    """1 / sqrt(x) for x in [2^-f, 2^(46-f)). dcf: 6 rounds; bits: 22."""
    return functions.rsqrt(ctx, _shared(x, "rsqrt"), method)


def softmax(ctx: Engine, x: SharedArray, axis: int = -1, method: str | None = None) -> SharedArray:
    """exp(x - max) / sum along `axis`. dcf: 8 + ceil(log2 k) rounds for k entries."""
    return functions.softmax(ctx, _shared(x, "softmax"), axis, method)


# -- numpy's functions on shared values, by name: adapter(ctx, args, kwargs) -------------------------


def _axis(kwargs: dict[str, Any], args: tuple[Any, ...], position: int) -> Any:
    return kwargs.get("axis", args[position] if len(args) > position else None)


def _reduction(which: str) -> Any:
    def adapt(ctx: Engine, args: tuple[Any, ...], kwargs: dict[str, Any]) -> SharedArray:
        x, axis = args[0], _axis(kwargs, args, 1)
        out = numpy_api.reduce_max(ctx, x, axis, which)
        if kwargs.get("keepdims"):
            kept = np.broadcast_to(np.empty((), np.bool_), x.shape).max(axis=axis, keepdims=True).shape
            out = out.reshape(kept)
        return out

    return adapt


def _np_where(ctx: Engine, args: tuple[Any, ...], kwargs: dict[str, Any]) -> SharedArray:
    if len(args) != 3:
        raise TypeError("numpy.where on shared values needs all three arguments: np.where(bit, a, b)")
    if not isinstance(args[0], SharedArray):
        raise TypeError("numpy.where with a public condition and shared values: index them instead")
    return comparison.where(ctx, args[0], args[1], args[2])


def _np_clip(ctx: Engine, args: tuple[Any, ...], kwargs: dict[str, Any]) -> SharedArray:
    lo = kwargs.get("a_min", kwargs.get("min", args[1] if len(args) > 1 else None))
    hi = kwargs.get("a_max", kwargs.get("max", args[2] if len(args) > 2 else None))
    return numpy_api.clip(ctx, args[0], lo, hi)


# -- samples: the secure call on the two sample operands --------------------------------------------

def _method_call(fn: Any) -> Any:
    return lambda ctx, x, y, m: fn(ctx, x, m)



_F = samples.unary

OPERATIONS = Registry([
    Operation("mul", mul, Sample(samples.ints, lambda ctx, x, y, m: x * y, samples.wrap(np.multiply)),
              ufuncs={np.multiply: mul}, rounds={"": 1}),
    Operation("matmul", matmul, Sample(samples.square, lambda ctx, x, y, m: x @ y, samples.wrap(ring.matmul)),
              ufuncs={np.matmul: matmul},
              functions={"dot": lambda ctx, a, kw: matmul(ctx, a[0], a[1]),
                         "matmul": lambda ctx, a, kw: matmul(ctx, a[0], a[1])}, rounds={"": 1}),
    Operation("truncate", truncate,  # x*y held at 2f fractional bits: the truncation alone
              Sample(samples.reals, lambda ctx, x, y, m: truncate(ctx, rescale(x, 2 * ctx.frac_bits), ctx.frac_bits),
                     lambda a, b: a, 2.0**-14), bench="trunc", rounds={"": 1}),
    Operation("less", less, Sample(samples.close, lambda ctx, x, y, m: less(ctx, x, y, m),
                                   lambda a, b: (a < b).astype(np.int64), methods=True),
              bench="lt", rounds={"dcf": 1, "compact": 2, "bits": 8},
              ufuncs={np.less: less, np.greater: lambda ctx, a, b: less(ctx, b, a),
                      np.less_equal: lambda ctx, a, b: 1 - less(ctx, b, a),
                      np.greater_equal: lambda ctx, a, b: 1 - less(ctx, a, b)}),
    Operation("equal", equal, Sample(samples.close, lambda ctx, x, y, m: equal(ctx, x, y, m),
                                     lambda a, b: (a == b).astype(np.int64), methods=True),
              bench="eq", rounds={"dcf": 1, "compact": 2, "bits": 8},
              ufuncs={np.equal: equal, np.not_equal: lambda ctx, a, b: 1 - equal(ctx, a, b)}),
    Operation("sign", sign, Sample(samples.close, _method_call(sign), lambda a, b: np.sign(a).astype(np.int64),
                                   methods=True),
              rounds={"dcf": 1, "compact": 2, "bits": 8}, ufuncs={np.sign: sign}),
    Operation("relu", relu, Sample(samples.close, _method_call(relu), lambda a, b: np.maximum(a, 0), methods=True),
              rounds={"dcf": 1, "compact": 2, "bits": 9}),
    Operation("maximum", maximum, Sample(samples.close, lambda ctx, x, y, m: maximum(ctx, x, y, m), np.maximum,
                                         methods=True),
              bench="max", rounds={"dcf": 1, "compact": 2, "bits": 9}, ufuncs={np.maximum: maximum}),
    Operation("minimum", minimum, Sample(samples.close, lambda ctx, x, y, m: minimum(ctx, x, y, m), np.minimum,
                                         methods=True),
              bench="min", rounds={"dcf": 1, "compact": 2, "bits": 9}, ufuncs={np.minimum: minimum}),
    Operation("max", max_along, Sample(samples.rows(4), lambda ctx, x, y, m: max_along(ctx, x, -1, m),
                                       lambda a, b: a.max(axis=-1), methods=True),
              bench="max_along", rounds={"dcf": 2, "compact": 4, "bits": 18},
              functions={"max": _reduction("max"), "amax": _reduction("max"), "min": _reduction("min"),
                         "amin": _reduction("min")}),
    Operation("argmax", argmax, Sample(samples.rows(4), lambda ctx, x, y, m: argmax(ctx, x, -1, m),
                                       lambda a, b: a.argmax(axis=-1), methods=True),
              rounds={"dcf": 3, "compact": 5, "bits": 18},
              functions={"argmax": _reduction("argmax"), "argmin": _reduction("argmin")}),
    Operation("where", where, Sample(samples.bits_and_reals, lambda ctx, x, y, m: where(ctx, x, y, 0.0),
                                     lambda a, b: np.where(a == 1, b, 0.0)),
              functions={"where": _np_where}, rounds={"": 1}),
    Operation("divide", divide, Sample(samples.reals, lambda ctx, x, y, m: divide(ctx, x, 7.0),
                                       lambda a, b: a / 7.0, 2.0**-14),
              ufuncs={np.true_divide: divide}, rounds={"": 1}),
    Operation("floor_divide", floor_divide, Sample(samples.small_ints, lambda ctx, x, y, m: floor_divide(ctx, x, 7),
                                                   lambda a, b: a // 7),
              ufuncs={np.floor_divide: floor_divide}, rounds={"": 9}),
    Operation("power", power, Sample(_F(-10, 10), lambda ctx, x, y, m: power(ctx, x, 3), lambda a, b: a**3,
                                     2.0**-10, 1e-4),
              ufuncs={np.power: power}, rounds={"": 4}),
    Operation("abs", absolute, Sample(samples.close, _method_call(absolute), lambda a, b: np.abs(a), methods=True),
              ufuncs={np.absolute: absolute}, functions={"abs": lambda ctx, a, kw: absolute(ctx, a[0])},
              rounds={"dcf": 1, "compact": 2, "bits": 9}),
    Operation("clip", clip, Sample(samples.close, lambda ctx, x, y, m: clip(ctx, x, -100.0, 100.0, m),
                                   lambda a, b: np.clip(a, -100.0, 100.0), methods=True),
              functions={"clip": _np_clip}, rounds={"dcf": 2, "compact": 4, "bits": 18}),
    Operation("mean", mean, Sample(samples.rows(8), lambda ctx, x, y, m: mean(ctx, x, -1),
                                   lambda a, b: a.mean(axis=-1), 2.0**-14),
              functions={"mean": lambda ctx, a, kw: numpy_api.mean(ctx, a[0], _axis(kw, a, 1),
                                                                   kw.get("keepdims", False))},
              rounds={"": 1}),
    Operation("sigmoid", sigmoid, Sample(_F(-10, 10), _method_call(sigmoid), lambda a, b: 1 / (1 + np.exp(-a)),
                                         7.5e-4, methods=True), rounds={"dcf": 2, "compact": 3, "bits": 10}),
    Operation("tanh", tanh, Sample(_F(-6, 6), _method_call(tanh), lambda a, b: np.tanh(a), 3.7e-4, methods=True),
              ufuncs={np.tanh: tanh}, rounds={"dcf": 2, "compact": 3, "bits": 10}),
    Operation("exp", exp, Sample(_F(-12, 8), _method_call(exp), lambda a, b: np.exp(a), 2**-15, 4e-4, methods=True),
              ufuncs={np.exp: exp}, rounds={"dcf": 2, "compact": 3, "bits": 10}),
    Operation("log", log, Sample(_F(-16, 30, log2=True), _method_call(log), lambda a, b: np.log(a), 1e-4, methods=True),
              ufuncs={np.log: log}, rounds={"dcf": 4, "compact": 6, "bits": 20}),
    Operation("reciprocal", reciprocal, Sample(_F(-16, 30, log2=True), _method_call(reciprocal), lambda a, b: 1 / a,
                                               2**-15, 1.5e-4, methods=True),
              ufuncs={np.reciprocal: reciprocal}, rounds={"dcf": 6, "compact": 8, "bits": 22}),
    Operation("sqrt", sqrt, Sample(_F(-16, 30, log2=True), _method_call(sqrt), lambda a, b: np.sqrt(a), 2**-15,
                                   1.5e-4, methods=True),
              ufuncs={np.sqrt: sqrt}, rounds={"dcf": 6, "compact": 8, "bits": 22}),
    Operation("rsqrt", rsqrt, Sample(_F(-16, 30, log2=True), _method_call(rsqrt), lambda a, b: 1 / np.sqrt(a),
                                     2**-15, 1.5e-4, methods=True), rounds={"dcf": 6, "compact": 8, "bits": 22}),
    Operation("div", div, Sample(samples.quotients, lambda ctx, x, y, m: div(ctx, x, y, m), lambda a, b: a / b,
                                 2**-14, 1.5e-4, methods=True), rounds={"dcf": 6, "compact": 8, "bits": 22}),
    *ANALYTICS,  # sort, rank, group and count: protocols/interface/analytics_ops.py
    Operation("softmax", softmax, Sample(samples.rows(10, -5, 5), lambda ctx, x, y, m: softmax(ctx, x, -1, m),
                                         lambda a, b: samples.softmax(a), 2e-4, methods=True),
              rounds={"dcf": 12, "compact": 19, "bits": 68}),
])

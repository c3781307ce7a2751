"""Comparison, sign, ReLU, max and where: everything reduces to the sign gate msb(x) = [x < 0].

Method "dcf" (two compute parties): one online round per gate, by the one-round gates of
protocols/primitives/gates.py (SIGN, RELU, SIGN_RELU, RELU_TRUNC). Method "bits" (any number of compute parties):
protocols/primitives/binary.py, 8 rounds; ReLU adds a product. Method "auto" picks per batch by a cost model.

Results of comparisons are shared integers 0/1 (frac 0), usable in further arithmetic.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import numpy as np

from mpc.settings import Comparison, check_parties, choices
from protocols.primitives import arithmetic, binary, gates, truncation
from protocols.primitives.core import Engine
from protocols.primitives.shared import SharedArray, concatenate, constant


@dataclass(frozen=True)
class MethodCost:
    """What one comparison costs per element: seconds of online compute and of dealer work, bytes each
    compute party sends online, rounds per batch, and the bytes the helper sends the last compute party
    (its busiest link: keys and corrections)."""

    online_s: float
    dealer_s: float
    bytes: float
    rounds: int
    dealer_bytes: float


# Cost model of `auto`, measured with `mpc bench --op lt,relu,eq --method dcf,compact,bits --n 100000 --repeat 5`
# on this project's 2-vCPU machine, quiet (lt: dcf 0.107 s online, 0.521 s dealing; compact 0.067 s, 0.304 s;
# bits 0.074 s, 0.034 s). Per ms of one-way latency, dcf wins below ~380 elements per batch, compact up to
# ~2,300, bits above (README, "Comparison methods").
COSTS = {
    Comparison.DCF: MethodCost(1.07e-6, 5.21e-6, 8, 1, 1_544),
    Comparison.COMPACT: MethodCost(0.67e-6, 3.04e-6, 8 + 1 / 8, 2, 960),
    Comparison.BITS: MethodCost(0.74e-6, 0.34e-6, 208, 8, 112),
}


def choose_method(ctx: Engine, n: int, method: str | None = None) -> Comparison:
    """The comparison method for a batch of n: explicit, the topology's, or `auto` by the cost model
    rounds x latency + bytes / bandwidth + n x compute (online and dealer)."""
    try:
        chosen = Comparison(method or ctx.comparison)
    except ValueError:
        raise ValueError(f"unknown comparison method {method!r} ({choices(Comparison)})") from None
    n_compute = len(ctx.compute_parties)
    if chosen != Comparison.AUTO:
        problem = check_parties(n_compute, comparison=chosen)
        if problem:
            raise ValueError(problem)
        return chosen
    if n_compute != 2:
        return Comparison.BITS
    return min(COSTS, key=lambda m: estimate(ctx, n, m))


T = TypeVar("T")


def by_method(ctx: Engine, label: str, n: int, method: str | None, *, keyed: Callable[[bool], T],
              bits: Callable[[], T]) -> T:
    """The one place a comparison method is chosen: explicit, the topology's, or `auto` for a batch of n
    gates; the choice is recorded in this party's stats under the operation's label; then `keyed(compact)`
    runs a one-key gate (dcf, or compact when compact is True) or `bits()` the bit-decomposition protocol."""
    chosen = choose_method(ctx, n, method)
    ctx.party.stats.record_method(label, chosen.value)
    return keyed(chosen == Comparison.COMPACT) if chosen.one_key else bits()


def estimate(ctx: Engine, n: int, method: Comparison) -> float:
    """Seconds a batch of n comparisons takes by `method` (cost model): the compute parties' link for the
    online rounds and bytes, the helper's link to the last compute party for the dealer's bytes."""
    links = ctx.party.links  # agreed by every party: measured at the hello or declared (mpc/links.py)
    link = links.between(*ctx.compute_parties[:2])
    helper = ctx.party.helper
    dealer_link = links.between(helper, ctx.compute_parties[-1]) if helper is not None else None
    cost = COSTS[method]
    dealer_transfer = cost.dealer_bytes * n / _bytes_per_s(dealer_link.bandwidth_mbps) if dealer_link else 0.0
    return (cost.rounds * link.latency_ms / 1000 + cost.bytes * n / _bytes_per_s(link.bandwidth_mbps)
            + dealer_transfer + n * (cost.online_s + cost.dealer_s))


def _bytes_per_s(mbps: float | None) -> float:
    return mbps * 1e6 / 8 if mbps else float("inf")


def _mul_bit(ctx: Engine, bit: SharedArray, x: SharedArray | object) -> SharedArray:
    """A shared 0/1 integer times x keeps x's scale: no truncation. 1 round."""
    return arithmetic.product(ctx, bit, x, "mul", frac_bits=ctx.frac_bits, truncate=False)


def sign_gate(ctx: Engine, x: SharedArray, relu: bool = False,
              method: str | None = None) -> tuple[SharedArray, SharedArray | None]:
    """([x < 0], relu(x) if asked). Collective. dcf: 1 round for both; bits: 8 rounds, 9 with ReLU."""

    def keyed(compact: bool) -> tuple[SharedArray, SharedArray | None]:
        if relu:
            msb, out = gates.evaluate(ctx, gates.SIGN_RELU, x, 0, [0, x.frac_bits], "sign_relu", compact)
            return msb, out
        return gates.evaluate(ctx, gates.SIGN, x, 0, [0], "sign", compact)[0], None

    def by_bits() -> tuple[SharedArray, SharedArray | None]:
        msb = binary.msb_bits(ctx, x)
        return msb, (x - _mul_bit(ctx, msb, x)) if relu else None

    return by_method(ctx, "sign_relu" if relu else "sign", x.size, method, keyed=keyed, bits=by_bits)


def relu(ctx: Engine, x: SharedArray, method: str | None = None) -> SharedArray:
    """max(x, 0). dcf: 1 round (one key with a two-word payload); bits: 9 rounds."""
    return by_method(ctx, "relu", x.size, method,
                     keyed=lambda compact: gates.evaluate(ctx, gates.RELU, x, 0, [x.frac_bits], "relu", compact)[0],
                     bits=lambda: x - _mul_bit(ctx, binary.msb_bits(ctx, x), x))


def relu_truncate(ctx: Engine, x: SharedArray, bits: int, method: str | None = None) -> SharedArray:
    """relu(x) >> bits (within one unit), e.g. after a product at 2f fractional bits.

    dcf: one round for both, by the fused gate RELU_TRUNC; bits: ReLU (9 rounds), then truncation
    (1 round with the dealer, 0 with local truncation)."""
    if bits == 0:
        return relu(ctx, x, method)
    return by_method(
        ctx, "relu_trunc", x.size, method,
        keyed=lambda compact: gates.evaluate(ctx, gates.RELU_TRUNC, x, bits, [x.frac_bits - bits], "relu_trunc",
                                             compact)[0],
        bits=lambda: truncation.truncate(ctx, relu(ctx, x, Comparison.BITS), bits))


# -- operations built on the sign gate ---------------------------------------------------------------

def less_than(ctx: Engine, x: SharedArray | object, y: SharedArray | object, method: str | None = None) -> SharedArray:
    """[x < y] = msb(x - y), exact while |x - y| < 2^63 in ring units. 1 round (dcf) / 8 (bits)."""
    return sign_gate(ctx, _diff(ctx, x, y), method=method)[0]


def equal(ctx: Engine, x: SharedArray | object, y: SharedArray | object, method: str | None = None) -> SharedArray:
    """[x == y] = [x - y == 0], exact for every pair of ring values, so always 0 or 1 (1 - [d < 0] - [-d < 0]
    would give -1 for d = 2^63, where d and -d are both negative). dcf: 1 round; bits: 8 rounds."""
    d = _diff(ctx, x, y)
    return by_method(ctx, "eq", d.size, method,
                     keyed=lambda compact: gates.evaluate(ctx, gates.IS_ZERO, d, 0, [0], "eq", compact)[0],
                     bits=lambda: binary.is_zero_bits(ctx, d))


def sign(ctx: Engine, x: SharedArray, method: str | None = None) -> SharedArray:
    """-1, 0 or 1 as numpy.sign, for every ring value: 1 - 2 [x < 0] - [x == 0], both gates in one round
    (not [x > 0] - [x < 0] by the sign of -x, which is negative too for x = -2^63)."""
    return 1 - 2 * sign_gate(ctx, x, method=method)[0] - equal(ctx, x, 0, method)


def maximum(ctx: Engine, x: SharedArray | object, y: SharedArray | object, method: str | None = None) -> SharedArray:
    """Elementwise max(x, y) = y + relu(x - y)."""
    xs, ys = _both_shared(ctx, x, y)
    return ys + relu(ctx, xs - ys, method)


def minimum(ctx: Engine, x: SharedArray | object, y: SharedArray | object, method: str | None = None) -> SharedArray:
    """Elementwise min(x, y) = x - relu(x - y)."""
    xs, ys = _both_shared(ctx, x, y)
    return xs - relu(ctx, xs - ys, method)


def where(ctx: Engine, bit: SharedArray, a: SharedArray | object, b: SharedArray | object) -> SharedArray:
    """bit ? a : b for a shared 0/1 `bit`: b + bit * (a - b). 1 round (a Beaver product)."""
    if bit.frac_bits:
        raise ValueError("where: the condition must be a shared 0/1 integer (the result of a comparison)")
    if isinstance(a, SharedArray) or isinstance(b, SharedArray):
        a_minus_b = ctx.add(a, -b if isinstance(b, SharedArray) else -np.asarray(b))
    else:
        a_minus_b = np.asarray(a) - np.asarray(b)
    return ctx.add(_mul_bit(ctx, bit, a_minus_b), b)


def max_along(ctx: Engine, x: SharedArray, axis: int = -1, method: str | None = None) -> SharedArray:
    """max over `axis` by a tree of maximums: ceil(log2 k) gates (dcf: that many rounds)."""
    x = _reduction_axis_last(x, axis, "max")
    while x.shape[-1] > 1:
        a, b, rest = _pairs(x)
        top = maximum(ctx, a, b, method)
        x = concatenate([top, rest], axis=-1) if rest is not None else top
    return x[..., 0]


def argmax_along(ctx: Engine, x: SharedArray, axis: int = -1, method: str | None = None) -> SharedArray:
    """Shared index of the first maximum along `axis`, as numpy's argmax: per tree level one sign gate on
    a - b giving both [a < b] and relu(a - b), then one product to select the index (dcf: 2 rounds per
    level). Neighbours are paired, so each node covers a contiguous run and a tie keeps the left one."""
    x = _reduction_axis_last(x, axis, "argmax")
    idx = constant(ctx, np.broadcast_to(np.arange(x.shape[-1], dtype=np.int64), x.shape))
    while x.shape[-1] > 1:
        a, b, rest = _pairs(x)
        ia, ib, irest = _pairs(idx)
        a_lt_b, gap = sign_gate(ctx, a - b, relu=True, method=method)
        assert gap is not None
        top = b + gap
        top_idx = ia + _mul_bit(ctx, a_lt_b, ib - ia)
        if rest is not None and irest is not None:
            x, idx = concatenate([top, rest], axis=-1), concatenate([top_idx, irest], axis=-1)
        else:
            x, idx = top, top_idx
    return idx[..., 0]


def _pairs(x: SharedArray) -> tuple[SharedArray, SharedArray, SharedArray | None]:
    """Elements 0, 2, 4, ... and 1, 3, 5, ... of the last axis, and the odd one out at the end (or None):
    neighbours, so that the tree keeps the order of the elements (the first of equal maxima wins)."""
    pairs = x.shape[-1] // 2
    rest = x[..., 2 * pairs:] if x.shape[-1] % 2 else None
    return x[..., 0:2 * pairs:2], x[..., 1:2 * pairs:2], rest


def _diff(ctx: Engine, x: object, y: object) -> SharedArray:
    _check_difference(ctx, x, y)
    if isinstance(x, SharedArray):
        return x - y
    if isinstance(y, SharedArray):
        return ctx.add(-y, x)
    raise TypeError("a comparison needs at least one shared operand")


def _check_difference(ctx: Engine, x: object, y: object) -> None:
    """On cleartext values (emulation): a comparison is exact while |x - y| < 2^63 ring units; report
    operands further apart."""
    shared = [a for a in (x, y) if isinstance(a, SharedArray)]
    frac = max(a.frac_bits for a in shared)

    def values(v: object, got: list[np.ndarray]) -> np.ndarray:
        if isinstance(v, SharedArray):
            return got.pop(0).view(np.int64).astype(np.float64) * 2.0 ** (frac - v.frac_bits)
        return np.asarray(v, dtype=np.float64) * 2.0**frac

    def check(*got_values: np.ndarray) -> None:
        got = list(got_values)
        gap = np.abs(values(x, got) - values(y, got))
        if float(np.max(gap, initial=0.0)) >= 2.0**63:
            ctx.backend.report(ctx, "compare", f"operands {float(np.max(gap)) / 2.0**frac:.4g} apart: a comparison "
                            f"is exact only while |x - y| < 2^{63 - frac}")

    ctx.backend.check_later(ctx, "compare", shared, check)


def _both_shared(ctx: Engine, x: object, y: object) -> tuple[SharedArray, SharedArray]:
    if not isinstance(x, SharedArray) and not isinstance(y, SharedArray):
        raise TypeError("needs at least one shared operand")
    xs = x if isinstance(x, SharedArray) else constant(ctx, x)
    ys = y if isinstance(y, SharedArray) else constant(ctx, y)
    return xs, ys


def _reduction_axis_last(x: SharedArray, axis: int, what: str) -> SharedArray:
    """x with `axis` moved last, after checking it exists and is not empty (a clear error, not numpy's)."""
    if not -x.ndim <= axis < x.ndim:
        raise ValueError(f"{what}: axis {axis} does not exist for a shared array of shape {x.shape}")
    axis = axis % x.ndim
    if x.shape[axis] == 0:
        raise ValueError(f"{what} of an empty axis: axis {axis} of shape {x.shape} has no elements")
    if axis == x.ndim - 1:
        return x
    order = [i for i in range(x.ndim) if i != axis] + [axis]
    return x.transpose(*order)

"""Comparison, sign and ReLU: everything reduces to the sign gate msb(x) = [x < 0].

Method "dcf" (two compute parties; default there): one online round. After Boyle et al. (Eurocrypt
2021) and AriaNN (PETS 2022): the helper deals r, DCF keys for alpha = r mod 2^63 and shares of msb(r).
The parties open x^ = x + r (8 bytes per element each way) and evaluate their key at x^ mod 2^63:
    msb(x) = msb(x^) XOR msb(r) XOR [x^ mod 2^63 < r mod 2^63],
with payload 1 - 2 msb(r) so that the XOR with msb(r) is linear in the DCF's output; msb(x^) is public.
ReLU in the same single round: relu(x) = x - x msb(x), and with x = x^ - r every term of x msb(x) is
public, dealt, or the DCF's output for a second payload word r (1 - 2 msb(r)):
    x msb(x) = x^ m + x^ (1 - 2m) t - m r - (1 - 2m) (r msb(r) + [lt] r (1 - 2 msb(r))),
where m = msb(x^), t = msb(r) XOR lt shared. Exact for every ring value (no range assumption).

Method "bits" (any number of compute parties): protocols/binary.py, 8 rounds; ReLU adds a product.

Results of comparisons are shared integers 0/1 (frac 0), usable in further arithmetic.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from protocols import binary, gates
from protocols.dcf import eval_dcf
from protocols.material import GateSpec
from protocols.shared import SharedArray, Shares, split

if TYPE_CHECKING:
    from protocols.context import Context

DCF_CHUNK = 1 << 15
TOP = np.uint64(63)
LOW63 = np.uint64(2**63 - 1)
ONE = np.uint64(1)
TWO = np.uint64(2)

# Cost model of `auto`: seconds per element of online compute and of dealer work, measured in one run of
# `mpc bench --op lt --method dcf,bits --n 100000 --repeat 5` on this project's 2-vCPU machine (dcf:
# 0.129 s online, 0.865 s dealing; bits: 0.090 s online, 0.059 s dealing), and bytes per element each
# party sends. Crossover: dcf wins when 7 x latency > n x 8.5 us, i.e. below ~820 elements per ms one-way.
DCF_S, DCF_DEALER_S, DCF_BYTES, DCF_ROUNDS = 1.3e-6, 8.7e-6, 8, 1
BITS_S, BITS_DEALER_S, BITS_BYTES, BITS_ROUNDS = 0.9e-6, 0.6e-6, 208, 8


def choose_method(ctx: Context, n: int, method: str | None = None) -> str:
    """The comparison method for a batch of n: explicit, the topology's, or `auto` by the cost model
    rounds x latency + bytes / bandwidth + n x compute (online and dealer)."""
    method = method or ctx.comparison
    if method not in ("auto", "dcf", "bits"):
        raise ValueError(f"unknown comparison method {method!r} (auto | dcf | bits)")
    if method != "auto":
        if method == "dcf" and len(ctx.compute_parties) != 2:
            raise ValueError("the dcf comparison needs exactly two compute parties; use 'bits'")
        return method
    if len(ctx.compute_parties) != 2:
        return "bits"
    return "dcf" if estimate(ctx, n, "dcf") <= estimate(ctx, n, "bits") else "bits"


def estimate(ctx: Context, n: int, method: str) -> float:
    link = ctx.party.topology.link(*ctx.compute_parties[:2])
    latency = link.latency_ms / 1000
    bandwidth = link.bandwidth_mbps * 1e6 / 8 if link.bandwidth_mbps else float("inf")
    if method == "dcf":
        return DCF_ROUNDS * latency + DCF_BYTES * n / bandwidth + n * (DCF_S + DCF_DEALER_S)
    return BITS_ROUNDS * latency + BITS_BYTES * n / bandwidth + n * (BITS_S + BITS_DEALER_S)


def sign_gate(ctx: Context, x: SharedArray, relu: bool = False,
              method: str | None = None) -> tuple[SharedArray, SharedArray | None]:
    """([x < 0], relu(x) if asked). Collective. dcf: 1 round for both; bits: 8 rounds, 9 with ReLU."""
    chosen = choose_method(ctx, x.size, method)
    ctx.last_comparison_method = chosen
    if chosen == "dcf":
        return _dcf_gate(ctx, x, relu)
    msb = binary.msb_bits(ctx, x)
    # a 0/1 integer times x keeps x's scale: no truncation
    return msb, (x - ctx.mul(msb, x, truncate=False)) if relu else None


def _sign_payload(r: np.ndarray) -> np.ndarray:
    return (ONE - TWO * (r >> TOP))[:, None]


def _relu_payload(r: np.ndarray) -> np.ndarray:
    sign = ONE - TWO * (r >> TOP)
    return np.stack([sign, r * sign], axis=1)


# Hand-fused payloads (fewer words than one per monomial): msb(r) XOR lt = msb(r) + lt (1 - 2 msb(r)).
SIGN = GateSpec("sign", 1, 1, _sign_payload, lambda r: [r >> TOP])
RELU = GateSpec("relu", 2, 2, _relu_payload, lambda r: [r >> TOP, r * (r >> TOP)])


def _dcf_gate(ctx: Context, x: SharedArray, relu: bool) -> tuple[SharedArray, SharedArray | None]:
    def finish(xhat: np.ndarray, r: np.ndarray, y: np.ndarray, dealt: list[np.ndarray], first: bool) -> list:
        m = xhat >> TOP
        flip = ONE - TWO * m  # (1 - 2m): XOR with the public bit m, linearly
        t = dealt[0] + y[:, 0]
        msb = flip * t
        if first:
            msb += m
        if not relu:
            return [msb]
        x_msb = xhat * flip * t - m * r - flip * (dealt[1] + y[:, 1])
        x_share = -r
        if first:
            x_msb += xhat * m
            x_share += xhat
        return [msb, x_share - x_msb]

    outs = run_dcf_gate(ctx, x, RELU if relu else SIGN, finish, [0, x.frac] if relu else [0])
    return outs[0], outs[1] if relu else None


def relu_truncate(ctx: Context, x: SharedArray, bits: int, method: str | None = None) -> SharedArray:
    """relu(x) >> bits (floor, or one more), e.g. after a product at 2f fractional bits.

    dcf: one round for both, by the fused gate of protocols/gates.py; bits: ReLU (9 rounds), then
    truncation (1 round with the dealer, 0 with local truncation)."""
    if bits == 0:
        return relu(ctx, x, method)
    if choose_method(ctx, x.size, method) == "bits":
        ctx.last_comparison_method = "bits"
        return ctx.truncate(relu(ctx, x, "bits"), bits)
    ctx.last_comparison_method = "dcf"
    spec = gates.RELU_TRUNC.spec(bits)

    def finish(xhat: np.ndarray, r: np.ndarray, y: np.ndarray, dealt: list[np.ndarray], first: bool) -> list:
        return [gates.RELU_TRUNC.combine(xhat, bits, first, y, dealt)]

    return run_dcf_gate(ctx, x, spec, finish, [x.frac - bits], label="relu_trunc")[0]


def run_dcf_gate(ctx: Context, x: SharedArray, spec: GateSpec, finish, fracs: list[int],
                 label: str = "dcf", points: int = 1) -> list[SharedArray]:
    """Deal a DCF gate for every element of x (in chunks), open x^ = x + r in one round, evaluate the
    keys at z = x^ mod 2^63 (and at z - 1, ..., z - points + 1 mod 2^63, side by side along the payload
    axis), and let `finish(x^, r, dcf_out, dealt, first)` combine this party's shares."""
    op = ctx.party.new_op(label)
    n = x.size
    # Keys are dealt in chunks: bounded messages (~50 MB) and bounded temporaries at both ends.
    bounds = [(lo, min(n, lo + DCF_CHUNK)) for lo in range(0, n, DCF_CHUNK)] or [(0, 0)]
    chunks = [ctx.deal(ctx.material.dcf_gate(op.child(i), hi - lo, spec)) for i, (lo, hi) in enumerate(bounds)]
    first = ctx.name == ctx.compute_parties[0]
    index = ctx.compute_parties.index(ctx.name) if ctx.name in ctx.compute_parties else -1

    async def run() -> tuple[Shares, ...]:
        xs = await x.resolve()
        dealt_chunks = [await c for c in chunks]
        await ctx.online_gate()
        mats = [m for m in dealt_chunks if m is not None]
        if not mats:  # the helper: dealt, nothing more to do
            return tuple(Shares(None, 0) for _ in fracs)
        assert xs.share is not None and len(mats) == len(bounds)
        r = np.concatenate([m.r for m in mats])
        dealt = [np.concatenate([m.dealt[k] for m in mats]) for k in range(spec.n_dealt)]
        xhat, depth = await ctx.open_shares(op, xs.share.ravel() + r, xs.depth)
        low = xhat & LOW63

        def evaluate(z: np.ndarray) -> np.ndarray:
            if not n:
                return np.zeros((0, spec.width), np.uint64)
            return np.concatenate([eval_dcf(index, mat.keys, z[lo:hi])
                                   for mat, (lo, hi) in zip(mats, bounds, strict=True)])

        y = np.concatenate([evaluate((low - np.uint64(k)) & LOW63) for k in range(points)], axis=1)
        return tuple(Shares(out.reshape(x.shape), depth) for out in finish(xhat, r, y, dealt, first))

    return split(ctx, ctx.spawn(run()), [(x.shape, f) for f in fracs])


# -- operations built on the sign gate ---------------------------------------------------------------

def less_than(ctx: Context, x: SharedArray | object, y: SharedArray | object, method: str | None = None) -> SharedArray:
    """[x < y] = msb(x - y), exact while |x - y| < 2^63 in ring units. 1 round (dcf) / 8 (bits)."""
    return sign_gate(ctx, _diff(ctx, x, y), method=method)[0]


def equal(ctx: Context, x: SharedArray | object, y: SharedArray | object, method: str | None = None) -> SharedArray:
    """[x == y] = [x - y == 0], exact for every pair of ring values, so always 0 or 1 (1 - [d < 0] - [-d < 0]
    would give -1 for d = 2^63, where d and -d are both negative). dcf: 1 round; bits: 8 rounds."""
    d = _diff(ctx, x, y)
    chosen = choose_method(ctx, d.size, method)
    ctx.last_comparison_method = chosen
    return _dcf_is_zero(ctx, d) if chosen == "dcf" else binary.is_zero_bits(ctx, d)


def sign(ctx: Context, x: SharedArray, method: str | None = None) -> SharedArray:
    """-1, 0 or 1 as numpy.sign, for every ring value: 1 - 2 [x < 0] - [x == 0], both gates in one round
    (not [x > 0] - [x < 0] by the sign of -x, which is negative too for x = -2^63)."""
    return 1 - 2 * sign_gate(ctx, x, method=method)[0] - equal(ctx, x, 0, method)


def _is_zero_payload(r: np.ndarray) -> np.ndarray:
    return np.stack([np.ones_like(r), r >> TOP], axis=1)


IS_ZERO = GateSpec("eq", 2, 1, _is_zero_payload, lambda r: [r >> TOP])


def _dcf_is_zero(ctx: Context, x: SharedArray) -> SharedArray:
    """[x == 0] in one round with one DCF key evaluated at two points.

    x == 0 iff x^ == r, iff z == alpha (z = x^ mod 2^63, alpha = r mod 2^63) and m == m_r (their top bits).
    With payload (1, m_r): [z == alpha] (1, m_r) = [z - 1 < alpha] (1, m_r) - [z < alpha] (1, m_r), and
    where z = 0 the first term is (1, m_r) itself; then [m == m_r] = (1 - m) + (2m - 1) m_r is linear."""
    def finish(xhat: np.ndarray, r: np.ndarray, y: np.ndarray, dealt: list[np.ndarray], first: bool) -> list:
        m = xhat >> TOP
        at_z, below_z = y[:, :2], y[:, 2:].copy()
        zero = (xhat & LOW63) == 0
        below_z[zero, 0] = ONE if first else np.uint64(0)
        below_z[zero, 1] = dealt[0][zero]
        eq_low = below_z - at_z  # shares of [z == alpha] and [z == alpha] m_r
        return [(ONE - m) * eq_low[:, 0] + (TWO * m - ONE) * eq_low[:, 1]]

    return run_dcf_gate(ctx, x, IS_ZERO, finish, [0], label="eq", points=2)[0]


def relu(ctx: Context, x: SharedArray, method: str | None = None) -> SharedArray:
    """max(x, 0). dcf: 1 round (one gate with a two-word payload); bits: 9 rounds."""
    out = sign_gate(ctx, x, relu=True, method=method)[1]
    assert out is not None
    return out


def maximum(ctx: Context, x: SharedArray | object, y: SharedArray | object, method: str | None = None) -> SharedArray:
    """Elementwise max(x, y) = y + relu(x - y)."""
    xs, ys = _both_shared(ctx, x, y)
    return ys + relu(ctx, xs - ys, method)


def minimum(ctx: Context, x: SharedArray | object, y: SharedArray | object, method: str | None = None) -> SharedArray:
    """Elementwise min(x, y) = x - relu(x - y)."""
    xs, ys = _both_shared(ctx, x, y)
    return xs - relu(ctx, xs - ys, method)


def where(ctx: Context, bit: SharedArray, a: SharedArray | object, b: SharedArray | object) -> SharedArray:
    """bit ? a : b for a shared 0/1 `bit`: b + bit * (a - b). 1 round (a Beaver product)."""
    if bit.frac:
        raise ValueError("where: the condition must be a shared 0/1 integer (the result of a comparison)")
    if isinstance(a, SharedArray) or isinstance(b, SharedArray):
        a_minus_b = ctx.add(a, -b if isinstance(b, SharedArray) else -np.asarray(b))
    else:
        a_minus_b = np.asarray(a) - np.asarray(b)
    return ctx.add(ctx.mul(bit, a_minus_b, truncate=False), b)


def max_along(ctx: Context, x: SharedArray, axis: int = -1, method: str | None = None) -> SharedArray:
    """max over `axis` by a tree of maximums: ceil(log2 k) gates (dcf: that many rounds)."""
    x = _reduction_axis_last(x, axis, "max")
    while x.shape[-1] > 1:
        a, b, rest = _pairs(x)
        top = maximum(ctx, a, b, method)
        x = ctx.concatenate([top, rest], axis=-1) if rest is not None else top
    return x[..., 0]


def argmax_along(ctx: Context, x: SharedArray, axis: int = -1, method: str | None = None) -> SharedArray:
    """Shared index of the first maximum along `axis`, as numpy's argmax: per tree level one sign gate on
    a - b giving both [a < b] and relu(a - b), then one product to select the index (dcf: 2 rounds per
    level). Neighbours are paired, so each node covers a contiguous run and a tie keeps the left one."""
    x = _reduction_axis_last(x, axis, "argmax")
    idx = ctx.constant(np.broadcast_to(np.arange(x.shape[-1], dtype=np.int64), x.shape))
    while x.shape[-1] > 1:
        a, b, rest = _pairs(x)
        ia, ib, irest = _pairs(idx)
        a_lt_b, gap = sign_gate(ctx, a - b, relu=True, method=method)
        assert gap is not None
        top = b + gap
        top_idx = ia + ctx.mul(a_lt_b, ib - ia, truncate=False)
        if rest is not None and irest is not None:
            x, idx = ctx.concatenate([top, rest], axis=-1), ctx.concatenate([top_idx, irest], axis=-1)
        else:
            x, idx = top, top_idx
    return idx[..., 0]


def _pairs(x: SharedArray) -> tuple[SharedArray, SharedArray, SharedArray | None]:
    """Elements 0, 2, 4, ... and 1, 3, 5, ... of the last axis, and the odd one out at the end (or None):
    neighbours, so that the tree keeps the order of the elements (the first of equal maxima wins)."""
    pairs = x.shape[-1] // 2
    rest = x[..., 2 * pairs:] if x.shape[-1] % 2 else None
    return x[..., 0:2 * pairs:2], x[..., 1:2 * pairs:2], rest


def _diff(ctx: Context, x: object, y: object) -> SharedArray:
    if isinstance(x, SharedArray):
        return x - y
    if isinstance(y, SharedArray):
        return ctx.add(-y, x)
    raise TypeError("a comparison needs at least one shared operand")


def _both_shared(ctx: Context, x: object, y: object) -> tuple[SharedArray, SharedArray]:
    if not isinstance(x, SharedArray) and not isinstance(y, SharedArray):
        raise TypeError("needs at least one shared operand")
    xs = x if isinstance(x, SharedArray) else ctx.constant(x)
    ys = y if isinstance(y, SharedArray) else ctx.constant(y)
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

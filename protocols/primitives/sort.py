"""Sort, rank and select on shares: a secure shuffle, then a quicksort whose comparisons are revealed.

Why revealing comparisons is safe here (docs/analytics.md, "Sort"): the rows are first shuffled by the
helper-dealt shuffle of protocols/primitives/shuffle.py (no compute party knows the permutation), then
permuted locally by a permutation the compute parties agree without the helper (so the helper does not
know the whole either). Every key is made distinct, x * 2^B + i with i the row's original index (B bits
hold n), which also makes ties keep their original order (a stable sort). The outcome of any comparison
between the shuffled keys is then a function of a uniformly random permutation only, for everybody: the
compute parties open them, and the first sends them to the helper, which needs the batch sizes to deal
the next comparisons (it learns nothing either: it does not know the second permutation).

The quicksort runs level by level: every segment not yet sorted compares all its members with its first
element (a random one) in one batched comparison, opened, and splits into [less, pivot, greater]; all
segments of a level share that batch. Expected levels ~ 2 ln n (at most ~4.3 ln n with high
probability), so rounds are O(log n): per level the comparison's rounds (dcf 1, compact 2, bits 8) plus 1
to open; comparisons ~ 2 n ln n in all. Selection (median, percentiles, top-k, np.partition) refines
only the segments holding a wanted rank: ~ 2-4 n comparisons.

Range: keys compare exactly while |x_i - x_j| < 2^(63 - B) ring units (B = bits of n); with 16 fractional
bits and n = 10^5, |x_i - x_j| < 2^30.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from mpc.runtime import Op
from protocols.primitives import comparison
from protocols.primitives.core import SECURE, Cost, Engine
from protocols.primitives.shared import SharedArray, Shares, constant, derive, placeholder, resolved, split
from protocols.primitives.shuffle import Shuffle, common_key, common_permutation, rebind, scoped

BITS_STEP = 0xE3  # the opened comparison bits, from the first compute party to the helper


def _check(ctx: Engine, x: Any, what: str) -> SharedArray:
    if not isinstance(x, SharedArray):
        raise TypeError(f"{what} takes a shared value; on public values use numpy")
    if x.ndim != 1:
        raise ValueError(f"{what}: a 1-D shared array (flatten it first: x.reshape(-1)), not shape {x.shape}")
    if len(ctx.compute_parties) < 2:
        raise ValueError(f"{what} needs at least two compute parties (it shuffles)")
    return x


def ranked(ctx: Engine, x: SharedArray, others: Sequence[SharedArray] = (), wanted: Sequence[int] | None = None,
           method: str | None = None, label: str = "sort") -> list[SharedArray]:
    """[x sorted, the original index of each sorted element (argsort), each of `others` in the same order].
    With `wanted` (ranks), only those ranks are guaranteed in place; every element below a wanted rank is
    before it and every element above after it (np.partition's contract). Collective; returns at once."""
    x = _check(ctx, x, label)
    n = x.shape[0]
    for o in others:
        if not o.ndim or o.shape[0] != n:
            raise ValueError(f"{label}: every column sorted along needs {n} rows, not shape {o.shape}")
    want = None if wanted is None else np.unique(np.asarray(wanted, dtype=np.int64))
    if want is not None and want.size and (want[0] < 0 or want[-1] >= n):
        raise ValueError(f"{label}: rank out of range for {n} elements")
    outputs = [((n,), x.frac_bits), ((n,), 0)] + [(o.shape, o.frac_bits) for o in others]
    if ctx.backend is not SECURE:
        return _emulated(ctx, label, x, list(others), outputs, method)
    base = ctx.party.new_op(label)
    task = ctx.spawn(_run(ctx, base, x, list(others), want, method))
    if ctx.is_dealer:
        return [placeholder(ctx, shape, frac) for shape, frac in outputs]
    return split(ctx, task, outputs)


PER_COMPARISON = {"dcf": 1, "compact": 2, "bits": 8}


def expected_rounds(ctx: Engine, n: int, method: str | None) -> tuple[int, int]:
    """(expected levels, rounds) of a sort of n: 2 for the shuffle, then per level the comparison's rounds and
    one to open; about 2 ln n + 1 levels on average (the random quicksort's expected depth is smaller than
    its maximum, ~4.3 ln n, so a given run may take more)."""
    chosen = method or ctx.comparison
    if chosen == "auto":
        chosen = "dcf" if len(ctx.compute_parties) == 2 else "bits"
    levels = int(np.ceil(2 * np.log(max(n, 2)))) + 1 if n > 1 else 0
    return levels, 2 + levels * (PER_COMPARISON.get(chosen, 8) + 1)


def _emulated(ctx: Engine, label: str, x: SharedArray, others: list[SharedArray],
              outputs: list[tuple[tuple[int, ...], int]], method: str | None) -> list[SharedArray]:
    """The sort's meaning on cleartext (a stable argsort) with its expected cost: its rounds depend on the
    shuffle, which emulation does not draw, so the prediction is the average (expected_rounds)."""
    n = x.shape[0]
    levels, rounds = expected_rounds(ctx, n, method)
    width = 2 + sum(int(np.prod(o.shape[1:], dtype=np.int64)) for o in others)

    def plain(xv: np.ndarray, *rest: np.ndarray) -> tuple[np.ndarray, ...]:
        order = np.argsort(xv.view(np.int64), kind="stable")
        return (xv[order], order.astype(np.uint64), *(r[order] for r in rest))

    async def body(*_: Any) -> Any:
        raise AssertionError("the sort's secure path does not run through run_protocol")

    per_comparison = 8 * PER_COMPARISON.get(method or "dcf", 8)
    cost = Cost(rounds, 2 + 2 * levels, 8 * n * width + int(2 * n * np.log(max(n, 2))) * (per_comparison + 1))
    return ctx.backend.run(ctx, label, None, body, [x, *others], outputs, plain, cost)


async def _run(ctx: Engine, base: Op, x: SharedArray, others: list[SharedArray], wanted: np.ndarray | None,
               method: str | None) -> tuple[Shares, ...]:
    view = scoped(ctx, base)
    n = x.shape[0]
    key_op = view.party.new_op("sort-key")
    key_task = ctx.spawn(common_key(view, key_op))
    index = constant(view, np.arange(n, dtype=np.int64))
    columns = Shuffle(view, n).apply([x, index, *others])
    shared_key = await key_task
    if shared_key is not None:  # compute parties: the second permutation, unknown to the helper
        local = common_permutation(shared_key, n, key_op)
        columns = [_gather(c, local) for c in columns]
    bits = max(1, int(n - 1).bit_length())
    scale = np.uint64(1 << bits)
    key = derive(view, columns[:2], lambda s: s[0] * scale + s[1], (n,), 0)
    order, depth = await _quicksort(view, key, n, wanted, method)
    out = [_gather(c, order) for c in columns]
    if view.is_dealer:
        return ()
    return tuple([Shares(r.share, max(r.depth, depth)) for r in [await c.resolve() for c in out]])


def _gather(x: SharedArray, rows: np.ndarray) -> SharedArray:
    """x's rows in the public order `rows` (local)."""
    def pick(share: np.ndarray) -> np.ndarray:
        return share[rows]
    return x.local(pick, x.shape)


async def _quicksort(ctx: Engine, key: SharedArray, n: int, wanted: np.ndarray | None,
                     method: str | None) -> tuple[np.ndarray, int]:
    """The public order of the (shuffled, distinct) keys: order[r] is the position of rank r (see module
    doc); ranks outside wanted segments are left partitioned, not sorted. And the round at which it is
    known: each level's comparisons wait for the previous level's opening, so they start at its depth (the
    depth of shares alone would not see that dependency)."""
    depth = 0 if ctx.is_dealer else (await key.resolve()).depth
    order = np.arange(n, dtype=np.int64)
    bounds = np.array([0, n], dtype=np.int64) if n else np.array([0], dtype=np.int64)
    first = ctx.compute_parties[0]
    while True:
        starts, ends = bounds[:-1], bounds[1:]
        active = ends - starts >= 2
        if wanted is not None:
            active &= np.searchsorted(wanted, starts) < np.searchsorted(wanted, ends)
        if not active.any():
            return order, depth
        seg_start, seg_end = starts[active], ends[active]
        members = seg_end - seg_start - 1  # every member but the pivot
        offsets = np.concatenate([[0], np.cumsum(members)[:-1]])
        total = int(members.sum())
        pos = np.arange(total, dtype=np.int64) - np.repeat(offsets, members) + np.repeat(seg_start + 1, members)
        pivot_pos = np.repeat(seg_start, members)
        elems, pivots = order[pos], order[pivot_pos]
        start = key if ctx.is_dealer else resolved(ctx, key.shape, 0, (await key.resolve()).share, depth)
        less = comparison.less_than(ctx, start[elems], start[pivots], method)
        bits_op = ctx.party.new_op("sort-bits")
        opened = ctx.reveal(less)  # type: ignore[attr-defined]
        if ctx.is_dealer:
            helper_bits = await ctx.party.recv(first, bits_op, step=BITS_STEP, dtype=np.uint8, shape=(total,))
            lt = helper_bits.array.astype(np.int64)
        else:
            lt = np.asarray(await opened, dtype=np.int64)
            depth = await less.depth() + 1
            if ctx.name == first:
                assert ctx.party.helper is not None
                ctx.party.send(ctx.party.helper, bits_op, lt.astype(np.uint8), step=BITS_STEP)
        # within each segment: [members less than the pivot, in order], the pivot, [the others, in order]
        less_before = np.cumsum(lt) - np.repeat(np.cumsum(lt)[offsets] - lt[offsets], members)
        more_before = np.arange(total) - np.repeat(offsets, members) - less_before + (1 - lt)
        n_less = np.add.reduceat(lt, offsets) if total else np.zeros(0, dtype=np.int64)
        start_of = np.repeat(seg_start, members)
        new_pos = np.where(lt == 1, start_of + less_before - 1, start_of + np.repeat(n_less, members) + more_before)
        new_order = order.copy()
        new_order[new_pos] = elems
        new_order[seg_start + n_less] = order[seg_start]
        order = new_order
        bounds = np.unique(np.concatenate([bounds, seg_start + n_less, seg_start + n_less + 1]))


# -- what is built on it -------------------------------------------------------------------------------

def sort(ctx: Engine, x: Any, method: str | None = None) -> SharedArray:
    """np.sort of a 1-D shared array (stable for ties)."""
    return ranked(ctx, x, method=method)[0]


def argsort(ctx: Engine, x: Any, method: str | None = None) -> SharedArray:
    """np.argsort(x, kind='stable') as shared indices; `ctx.take(z, p)` applies it to another column."""
    out = ranked(ctx, x, method=method, label="argsort")[1]
    out.permutation = True  # type: ignore[attr-defined]
    return out


def sort_by(ctx: Engine, key: Any, columns: Sequence[SharedArray], method: str | None = None) -> list[SharedArray]:
    """The key sorted and every column in the key's order (one shuffle carries them all)."""
    return ranked(ctx, key, columns, method=method, label="sort")


def partition(ctx: Engine, x: Any, kth: Any, method: str | None = None) -> SharedArray:
    """np.partition: the elements of ranks `kth` in place, smaller ones before, larger after."""
    x = _check(ctx, x, "partition")
    ranks = np.atleast_1d(np.asarray(kth, dtype=np.int64)) % max(x.shape[0], 1)
    return ranked(ctx, x, wanted=ranks.tolist(), method=method, label="partition")[0]


def top_k(ctx: Engine, x: Any, k: int, method: str | None = None) -> tuple[SharedArray, SharedArray]:
    """The k largest values, largest first, and their original indices (ties: the later index first)."""
    x = _check(ctx, x, "top_k")
    n = x.shape[0]
    if not 0 <= k <= n:
        raise ValueError(f"top_k: k={k} for {n} elements")
    values, indices = ranked(ctx, x, wanted=range(n - k, n), method=method, label="top_k")[:2]
    return values[n - k:][::-1], indices[n - k:][::-1]


def quantile(ctx: Engine, x: Any, q: Any, method: str | None = None) -> SharedArray:
    """np.quantile(x, q) with numpy's default ('linear') interpolation, q public in [0, 1] (scalar or 1-D)."""
    x = _check(ctx, x, "quantile")
    n = x.shape[0]
    if n == 0:
        raise ValueError("quantile of an empty shared array")
    qs = np.asarray(q, dtype=np.float64)
    if qs.ndim > 1 or np.any((qs < 0) | (qs > 1)) or not np.all(np.isfinite(qs)):
        raise ValueError("quantile: q must be a number or a 1-D list of numbers in [0, 1]")
    position = np.atleast_1d(qs) * (n - 1)
    lo = np.floor(position).astype(np.int64)
    hi = np.minimum(lo + 1, n - 1)
    weight = position - lo
    ordered = ranked(ctx, x, wanted=np.concatenate([lo, hi]).tolist(), method=method, label="quantile")[0]
    low, high = ordered[lo], ordered[hi]
    fixed = low if low.frac_bits else low * 1.0
    exact = weight == 0
    if np.all(exact):
        out = fixed
    else:
        out = fixed + (high - low) * np.where(exact, 0.0, weight)
    return out.reshape(()) if qs.ndim == 0 else out


def median(ctx: Engine, x: Any, method: str | None = None) -> SharedArray:
    """np.median: the middle element, or the mean of the two middle ones."""
    x = _check(ctx, x, "median")
    n = x.shape[0]
    if n == 0:
        raise ValueError("median of an empty shared array")
    ordered = ranked(ctx, x, wanted=[(n - 1) // 2, n // 2], method=method, label="median")[0]
    middle = ordered[(n - 1) // 2] + ordered[n // 2]
    return middle * 0.5


def take(ctx: Engine, z: SharedArray, perm: SharedArray) -> SharedArray:
    """z[perm] for a shared permutation (an argsort's result): shuffle perm by a fresh secret permutation
    t, open perm[t] (uniformly random), take z at those public positions and undo t. 5 rounds."""
    if not getattr(perm, "permutation", False):
        raise TypeError("take with a shared index needs a shared permutation from np.argsort / ctx.argsort "
                        "(opening any other shared index would reveal it)")
    n = perm.shape[0]
    if z.ndim < 1 or z.shape[0] != n:
        raise ValueError(f"take: {n} indices for an array of shape {z.shape}")
    if ctx.backend is not SECURE:
        def plain(zv: np.ndarray, pv: np.ndarray) -> np.ndarray:
            return zv[pv.view(np.int64)]

        async def body(*_: Any) -> Any:
            raise AssertionError("take's secure path does not run through run_protocol")

        cost = Cost(5, 5, 8 * (n + 2 * z.size))
        return ctx.backend.run(ctx, "take", None, body, [z, perm], [(z.shape, z.frac_bits)], plain, cost)[0]
    base = ctx.party.new_op("take")

    async def run() -> tuple[Shares, ...]:
        view = scoped(ctx, base)
        s = Shuffle(view, n)
        mixed = s.apply([perm])[0]
        opened = await view.reveal(mixed)  # type: ignore[attr-defined]
        if view.is_dealer:
            picked = placeholder(view, z.shape, z.frac_bits)
        else:
            where = np.asarray(opened, dtype=np.int64)
            picked = z.local(lambda v: v[where], z.shape)
            picked = SharedArray(view, z.shape, z.frac_bits, picked._fut)
        out = s.invert([picked])[0]
        if view.is_dealer:
            return ()
        return (await out.resolve(),)

    task = ctx.spawn(run())
    if ctx.is_dealer:
        return placeholder(ctx, z.shape, z.frac_bits)
    return rebind(ctx, split(ctx, task, [(z.shape, z.frac_bits)])[0])

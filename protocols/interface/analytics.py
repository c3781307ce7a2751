"""Group, count and disclosure control on shares: group-by, histograms, digitize, counts, any/all, isin,
covariance and correlation, unique with counts, and revealing only cells with enough members.

Everything here is built from comparisons (protocols/primitives/comparison.py), products, the one-round
group sums of protocols/primitives/grouping.py and the sort of protocols/primitives/sort.py. Rounds are
those of the pieces (docs/analytics.md has the table).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from protocols.primitives import comparison, grouping
from protocols.primitives import sort as sorting
from protocols.primitives.core import SECURE, Cost
from protocols.primitives.shared import SharedArray, concatenate, constant, stack
from protocols.primitives.shuffle import Shuffle, rebind, scoped

if TYPE_CHECKING:
    from protocols.primitives.core import Engine


# -- group-by ---------------------------------------------------------------------------------------

def group(ctx: Engine, values: SharedArray | None, keys: Any, groups: int) -> tuple[Any, ...]:
    """(counts, sums) per key code in [0, groups): keys shared (1 round) or public (local, public counts)."""
    if isinstance(keys, SharedArray):
        return grouping.group_sums(ctx, keys, values, groups)
    return grouping.public_group_sums(ctx, keys, values, groups)


def group_mean(ctx: Engine, values: SharedArray, keys: Any, groups: int, method: str | None = None) -> SharedArray:
    """Per-group means; an empty group gives 0. Shared counts: a division by a shared count (ctx.div)."""
    counts, sums = group(ctx, values, keys, groups)
    sums = sums if sums.frac_bits else sums * 1.0
    if not isinstance(counts, SharedArray):
        return sums / np.maximum(counts, 1).reshape((-1,) + (1,) * (sums.ndim - 1))
    safe = comparison.maximum(ctx, counts, 1, method) * 1.0
    if sums.ndim == 2:
        safe = stack([safe] * sums.shape[1], axis=1)
    return ctx.div(sums, safe, method, positive=True)  # type: ignore[attr-defined, no-any-return]


# -- counting ---------------------------------------------------------------------------------------

def _edges(bins: Any, what: str) -> np.ndarray:
    if isinstance(bins, SharedArray):
        raise TypeError(f"{what}: the bin edges must be public")
    edges = np.asarray(bins, dtype=np.float64)
    if edges.ndim != 1 or edges.size < 1 or np.any(np.diff(edges) < 0):
        raise ValueError(f"{what}: bins must be a 1-D increasing array of public edges (an int needs the data's "
                         "range, which is secret: pass the edges)")
    return edges


def _at_least(ctx: Engine, x: SharedArray, edges: np.ndarray, strict: bool = False,
              method: str | None = None) -> SharedArray:
    """[x >= e] (or [x > e]) for every element and edge, shape x.shape + (edges,): one batched comparison."""
    grid = stack([x] * edges.size, axis=-1)
    e = edges if x.frac_bits else np.ceil(edges) if not strict else np.floor(edges)
    public = np.broadcast_to(e if x.frac_bits else e.astype(np.int64), grid.shape)
    if strict:
        return comparison.less_than(ctx, public, grid, method)
    return 1 - comparison.less_than(ctx, grid, public, method)


def histogram(ctx: Engine, x: SharedArray, bins: Any, method: str | None = None) -> tuple[SharedArray, np.ndarray]:
    """np.histogram(x, bins=edges) with public edges: (shared counts, edges). Bins are half-open but the last,
    closed, as numpy's. One batched comparison (dcf: 1 round)."""
    edges = _edges(bins, "histogram")
    flat = x.reshape(-1)
    ge = _at_least(ctx, flat, edges[:-1], method=method) if edges.size > 1 else None
    beyond = _at_least(ctx, flat, edges[-1:], strict=True, method=method)  # above the last edge: outside
    if ge is None:
        return constant(ctx, np.zeros(0, dtype=np.int64)), edges
    upper = concatenate([ge[:, 1:], beyond], axis=1)
    return (ge - upper).sum(axis=0), edges


def digitize(ctx: Engine, x: SharedArray, bins: Any, right: bool = False, method: str | None = None) -> SharedArray:
    """np.digitize for increasing public bins: the number of edges <= x (right: < x). 1 comparison batch."""
    edges = _edges(bins, "digitize")
    return _at_least(ctx, x, edges, strict=right, method=method).sum(axis=-1)


def count_nonzero(ctx: Engine, x: SharedArray, axis: Any = None, method: str | None = None) -> SharedArray:
    """np.count_nonzero: the number of elements not equal to 0 (an equality batch, then a local sum)."""
    nonzero = 1 - comparison.equal(ctx, x, 0, method)
    return nonzero.sum(axis=axis)


def any_(ctx: Engine, x: SharedArray, axis: Any = None, method: str | None = None) -> SharedArray:
    """np.any as a shared 0/1: [count_nonzero > 0]. Two equality batches."""
    return 1 - comparison.equal(ctx, count_nonzero(ctx, x, axis, method), 0, method)


def all_(ctx: Engine, x: SharedArray, axis: Any = None, method: str | None = None) -> SharedArray:
    """np.all as a shared 0/1: [count of zeros == 0]."""
    return comparison.equal(ctx, comparison.equal(ctx, x, 0, method).sum(axis=axis), 0, method)


def isin(ctx: Engine, x: SharedArray, test: Any, method: str | None = None) -> SharedArray:
    """np.isin(x, test) as shared 0/1, test public or shared: equalities against every test element."""
    if isinstance(test, SharedArray):
        t = test.reshape(-1)
        hits = comparison.equal(ctx, stack([x] * t.size, axis=-1), t.broadcast_to(x.shape + (t.size,)),
                                method).sum(axis=-1)
        return 1 - comparison.equal(ctx, hits, 0, method)  # test may hold duplicates: [hits > 0]
    values = np.unique(np.asarray(test).reshape(-1))
    if values.size == 0:
        return constant(ctx, np.zeros(x.shape, dtype=np.int64))
    grid = stack([x] * values.size, axis=-1)
    return comparison.equal(ctx, grid, np.broadcast_to(values, grid.shape), method).sum(axis=-1)  # distinct: 0 or 1


# -- covariance and correlation ---------------------------------------------------------------------

def cov(ctx: Engine, m: SharedArray, rowvar: bool = True, ddof: int = 1) -> SharedArray:
    """np.cov: rows are variables (rowvar) and columns observations. One product round (+ truncation)."""
    data = m.reshape(1, -1) if m.ndim == 1 else (m if rowvar else m.T)
    observations = data.shape[1]
    if observations - ddof <= 0:
        raise ValueError(f"cov: {observations} observations with ddof={ddof}")
    data = data if data.frac_bits else data * 1.0
    centred = data - data.mean(axis=1, keepdims=True)
    out = (centred @ centred.T) / (observations - ddof)
    return out.reshape(()) if m.ndim == 1 else out


def corrcoef(ctx: Engine, m: SharedArray, rowvar: bool = True, method: str | None = None) -> SharedArray:
    """np.corrcoef: cov / sqrt(var_i var_j), by one inverse square root of the variances."""
    c = cov(ctx, m, rowvar)
    if c.ndim == 0:
        return c * 0 + 1.0
    k = c.shape[0]
    inv = ctx.rsqrt(stack([c[i, i] for i in range(k)]), method)  # type: ignore[attr-defined]
    return c * inv.reshape(k, 1).broadcast_to((k, k)) * inv.reshape(1, k).broadcast_to((k, k))


# -- distinct values --------------------------------------------------------------------------------

def unique(ctx: Engine, x: SharedArray, return_counts: bool = False, reveal_distinct: bool = False) -> Any:
    """The distinct values, sorted, and optionally their counts, all shared; the number of distinct values
    becomes public (hence `reveal_distinct=True` is required). Sort, mark each run's last element by an
    equality with its successor, shuffle (value, run end, mark), open the marks only (their number is the
    number of distinct values; the shuffle hides where they were) and sort the few kept rows by run end:
    counts are differences of consecutive run ends."""
    if not reveal_distinct:
        raise TypeError("unique reveals how many distinct values there are: call ctx.unique(x, "
                        "reveal_distinct=True) to accept that (np.unique cannot say so)")
    x = sorting._check(ctx, x.reshape(-1) if isinstance(x, SharedArray) else x, "unique")
    n = x.shape[0]
    if n == 0:
        empty = constant(ctx, np.zeros(0, dtype=np.float64 if x.frac_bits else np.int64))
        return (empty, constant(ctx, np.zeros(0, dtype=np.int64))) if return_counts else empty
    ordered = sorting.sort(ctx, x)
    if ctx.backend is not SECURE:
        return _unique_emulated(ctx, ordered, return_counts)
    ends = constant(ctx, np.arange(1, n + 1, dtype=np.int64))  # a run ending at i holds ranks < i + 1
    last = concatenate([1 - comparison.equal(ctx, ordered[:-1], ordered[1:]), constant(ctx, np.ones(1, np.int64))])
    base = ctx.party.new_op("unique")

    async def run() -> tuple[SharedArray, SharedArray]:
        view = scoped(ctx, base)
        mixed = Shuffle(view, n).apply([ordered, ends, last])
        marks = await view.reveal(mixed[2])  # type: ignore[attr-defined]
        # the number of distinct values, public: the helper needs it too
        count = np.array([0 if marks is None else int(np.sum(marks))], dtype=np.int64)
        op = view.party.new_op("unique-count")
        first = view.compute_parties[0]
        if view.name == first and view.party.helper is not None:
            view.party.send(view.party.helper, op, count)
        if view.is_dealer:
            d = int((await view.party.recv(first, op, dtype=np.int64, shape=(1,))).array[0])
            keep = np.arange(d)  # shapes only
        else:
            keep = np.flatnonzero(np.asarray(marks) == 1)
        kept_ends, kept_values = sorting.sort_by(view, mixed[1][keep], [mixed[0][keep]])[0::2]
        counts = kept_ends - concatenate([constant(view, np.zeros(1, np.int64)), kept_ends[:-1]])
        return rebind(ctx, kept_values), rebind(ctx, counts)

    async def result() -> Any:
        values, counts = await run()
        return (values, counts) if return_counts else values

    return ctx.spawn(result())  # type: ignore[attr-defined]


def _unique_emulated(ctx: Engine, ordered: SharedArray, return_counts: bool) -> Any:
    """unique's meaning on cleartext, for emulation: the number of distinct values is known once the sorted
    values are (each emulated party holds them whole), then the runs' ends and lengths by numpy."""
    base = ctx.party.new_op("unique")

    async def result() -> Any:
        values = (await ordered.resolve()).share.view(np.int64)
        distinct = int(np.unique(values).size)
        view = scoped(ctx, base)

        def plain(sv: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            kept, counts = np.unique(sv.view(np.int64), return_counts=True)
            return kept.astype(np.uint64), counts.astype(np.uint64)

        async def body(*_: Any) -> Any:
            raise AssertionError("unique's secure path does not run through run_protocol")

        n = ordered.shape[0]
        cost = Cost(4 + 2 * int(np.ceil(2 * np.log(max(distinct, 2)))), 8, 8 * 4 * n)
        kept, counts = view.backend.run(view, "unique", None, body, [ordered],
                                        [((distinct,), ordered.frac_bits), ((distinct,), 0)], plain, cost)
        return (rebind(ctx, kept), rebind(ctx, counts)) if return_counts else rebind(ctx, kept)

    return ctx.spawn(result())  # type: ignore[attr-defined]


# -- disclosure control -----------------------------------------------------------------------------

def reveal_suppressed(ctx: Engine, x: SharedArray, counts: Any, min_count: int, to: Any = None) -> Any:
    """Open x where its cell's count is at least min_count; the decision [count >= k] is taken on shares
    and opened (which cells were suppressed is public), the suppressed cells' values never are. Await a
    numpy masked array: masked cells are the suppressed ones (`.mask` says which)."""
    c = counts if isinstance(counts, SharedArray) else constant(ctx, np.asarray(counts))
    if c.frac_bits:
        raise TypeError("reveal(min_count=): counts must be integers")
    if tuple(c.shape) != tuple(x.shape[:c.ndim]):
        raise ValueError(f"reveal(min_count=): counts of shape {c.shape} for values of shape {x.shape}")
    keep = 1 - comparison.less_than(ctx, c, int(min_count))
    keep_cells = keep.reshape(keep.shape + (1,) * (x.ndim - keep.ndim)).broadcast_to(x.shape) if x.ndim > c.ndim \
        else keep
    kept = comparison.where(ctx, keep_cells, x, 0)
    opened_keep = ctx.reveal(keep, to)  # type: ignore[attr-defined]
    opened = ctx.reveal(kept, to)  # type: ignore[attr-defined]

    async def run() -> Any:
        k, v = await opened_keep, await opened
        if v is None:
            return None
        mask = np.broadcast_to((np.asarray(k) == 0).reshape(k.shape + (1,) * (np.ndim(v) - np.ndim(k))), np.shape(v))
        return np.ma.masked_array(np.asarray(v), mask=mask.copy())

    return ctx.spawn(run())  # type: ignore[attr-defined]

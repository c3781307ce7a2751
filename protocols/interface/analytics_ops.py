"""The analytics operations in the registry (protocols/interface/registry.py): sort, rank and select
(protocols/primitives/sort.py), group and count (protocols/interface/analytics.py). Each one's function
(its docstring is ctx.<name>'s), numpy aliases, sample and rounds; protocols/interface/operations.py adds
`ANALYTICS` to the project's registry. docs/analytics.md has the table of rounds and bytes."""

from __future__ import annotations

from typing import Any

import numpy as np

from protocols.interface import analytics
from protocols.interface.registry import Adapter, Operation, Sample
from protocols.primitives import sort as sorting
from protocols.primitives.core import Engine
from protocols.primitives.shared import SharedArray, constant, stack

GROUPS = 7  # the samples' number of groups


# -- the operations' functions -------------------------------------------------------------------------

def sort(ctx: Engine, x: SharedArray, *columns: SharedArray, method: str | None = None) -> Any:
    """np.sort of a 1-D shared array, stable; with columns, (sorted x, each column in x's order). Shuffle
    (2 rounds), then per quicksort level one comparison batch and one opening (~2 ln n levels)."""
    if columns:
        out = sorting.sort_by(ctx, x, columns, method)
        return (out[0], *out[2:])
    return sorting.sort(ctx, x, method)


def argsort(ctx: Engine, x: SharedArray, method: str | None = None) -> SharedArray:
    """np.argsort(x, kind='stable') as shared indices: a shared permutation `ctx.take(z, p)` applies."""
    return sorting.argsort(ctx, x, method)


def take(ctx: Engine, z: SharedArray, perm: SharedArray) -> SharedArray:
    """z[perm] for a shared permutation from argsort: shuffle, open the shuffled permutation (uniformly
    random), take, unshuffle. 5 rounds."""
    return sorting.take(ctx, z, perm)


def top_k(ctx: Engine, x: SharedArray, k: int, method: str | None = None) -> tuple[SharedArray, SharedArray]:
    """The k largest values (largest first) and their original indices: a quickselect refining only the
    segments that hold the top k ranks (~2-4 n comparisons)."""
    return sorting.top_k(ctx, x, k, method)


def partition(ctx: Engine, x: SharedArray, kth: Any, method: str | None = None) -> SharedArray:
    """np.partition: the elements of ranks kth in place, smaller before, larger after (a quickselect)."""
    return sorting.partition(ctx, x, kth, method)


def median(ctx: Engine, x: SharedArray, method: str | None = None) -> SharedArray:
    """np.median: a quickselect of the middle ranks, then their mean (one more round)."""
    return sorting.median(ctx, x, method)


def quantile(ctx: Engine, x: SharedArray, q: Any, method: str | None = None) -> SharedArray:
    """np.quantile with numpy's default linear interpolation, q public in [0, 1]: a quickselect."""
    return sorting.quantile(ctx, x, q, method)


def percentile(ctx: Engine, x: SharedArray, q: Any, method: str | None = None) -> SharedArray:
    """np.percentile (linear interpolation), q public in [0, 100]: a quickselect."""
    return sorting.quantile(ctx, x, np.asarray(q, dtype=np.float64) / 100, method)


def group_count(ctx: Engine, keys: Any, groups: int) -> Any:
    """Rows per key code in [0, groups): shared keys, 1 round (shared counts); public keys, public counts."""
    return analytics.group(ctx, None, keys, groups)[0]


def group_sum(ctx: Engine, values: SharedArray, keys: Any, groups: int) -> SharedArray:
    """Sums of values (1-D, or 2-D rows) per key code in [0, groups): shared keys 1 round (one-hot vectors
    dealt by the helper), public keys local."""
    return analytics.group(ctx, values, keys, groups)[1]  # type: ignore[no-any-return]


def group_mean(ctx: Engine, values: SharedArray, keys: Any, groups: int, method: str | None = None) -> SharedArray:
    """Means per key code (0 for an empty group): shared keys, a division by the shared counts (ctx.div)."""
    return analytics.group_mean(ctx, values, keys, groups, method)


def histogram(ctx: Engine, x: SharedArray, bins: Any, method: str | None = None) -> tuple[SharedArray, np.ndarray]:
    """np.histogram with public edges: (shared counts, edges); one batch of comparisons with every edge."""
    return analytics.histogram(ctx, x, bins, method)


def digitize(ctx: Engine, x: SharedArray, bins: Any, right: bool = False, method: str | None = None) -> SharedArray:
    """np.digitize with public increasing bins: the number of edges <= x (right: < x), one comparison batch."""
    return analytics.digitize(ctx, x, bins, right, method)


def count_nonzero(ctx: Engine, x: SharedArray, axis: Any = None, method: str | None = None) -> SharedArray:
    """np.count_nonzero: an equality batch with 0, then a local sum."""
    return analytics.count_nonzero(ctx, x, axis, method)


def any_(ctx: Engine, x: SharedArray, axis: Any = None, method: str | None = None) -> SharedArray:
    """np.any as a shared 0/1: two equality batches."""
    return analytics.any_(ctx, x, axis, method)


def all_(ctx: Engine, x: SharedArray, axis: Any = None, method: str | None = None) -> SharedArray:
    """np.all as a shared 0/1: two equality batches."""
    return analytics.all_(ctx, x, axis, method)


def isin(ctx: Engine, x: SharedArray, test: Any, method: str | None = None) -> SharedArray:
    """np.isin against a public set (one equality batch) or a shared one (two)."""
    return analytics.isin(ctx, x, test, method)


def cov(ctx: Engine, m: SharedArray, rowvar: bool = True, ddof: int = 1) -> SharedArray:
    """np.cov: centre (a division by the public count), one product, one division."""
    return analytics.cov(ctx, m, rowvar, ddof)


def corrcoef(ctx: Engine, m: SharedArray, rowvar: bool = True, method: str | None = None) -> SharedArray:
    """np.corrcoef: the covariance scaled by the inverse square roots of the variances."""
    return analytics.corrcoef(ctx, m, rowvar, method)


def unique(ctx: Engine, x: SharedArray, return_counts: bool = False, reveal_distinct: bool = False) -> Any:
    """The distinct values (sorted) and their counts, shared; their number becomes public, so it needs
    reveal_distinct=True. A sort, an equality batch, a shuffle, an opening, a small sort. Await it."""
    return analytics.unique(ctx, x, return_counts, reveal_distinct)


# -- numpy's functions on shared values -----------------------------------------------------------------

def _flat(args: tuple[Any, ...], kwargs: dict[str, Any], what: str, default: Any = -1) -> SharedArray:
    """The 1-D array a sort-like function works on: x itself, or x flattened for axis=None."""
    x = args[0]
    axis = kwargs.get("axis", default)
    if axis is None:
        return x.reshape(-1)  # type: ignore[no-any-return]
    if x.ndim != 1 or axis not in (0, -1):
        raise TypeError(f"numpy.{what} on shared values works on 1-D arrays (or axis=None), not shape {x.shape} "
                        f"along axis {axis}")
    return x  # type: ignore[no-any-return]


def _check(kwargs: dict[str, Any], allowed: set[str], what: str) -> None:
    extra = sorted(k for k in kwargs if k not in allowed)
    if extra:
        raise TypeError(f"numpy.{what}({', '.join(f'{k}=' for k in extra)}) is not supported on shared values")


def _sorting(what: str, fn: Any) -> Adapter:
    def adapt(ctx: Engine, args: tuple[Any, ...], kwargs: dict[str, Any]) -> SharedArray:
        _check(kwargs, {"axis", "kind"}, what)
        if kwargs.get("kind") not in (None, "stable", "mergesort", "quicksort"):
            raise TypeError(f"numpy.{what}: kind={kwargs['kind']!r} is not supported on shared values (stable)")
        return fn(ctx, _flat(args, kwargs, what))  # type: ignore[no-any-return]
    return adapt


def _np_partition(ctx: Engine, args: tuple[Any, ...], kwargs: dict[str, Any]) -> SharedArray:
    _check(kwargs, {"kth", "axis"}, "partition")
    kth = kwargs.get("kth", args[1] if len(args) > 1 else None)
    if kth is None:
        raise TypeError("numpy.partition needs kth")
    return sorting.partition(ctx, _flat(args[:1], kwargs, "partition"), kth)


def _np_quantile(scale: float, what: str) -> Adapter:
    def adapt(ctx: Engine, args: tuple[Any, ...], kwargs: dict[str, Any]) -> SharedArray:
        _check(kwargs, {"q", "axis", "method"}, what)
        q = kwargs.get("q", args[1] if len(args) > 1 else None)
        if q is None:
            raise TypeError(f"numpy.{what} needs q")
        if kwargs.get("method", "linear") != "linear":
            raise TypeError(f"numpy.{what}: only method='linear' (numpy's default) is supported on shared values")
        return sorting.quantile(ctx, _flat(args[:1], kwargs, what, None), np.asarray(q, dtype=np.float64) / scale)
    return adapt


def _np_median(ctx: Engine, args: tuple[Any, ...], kwargs: dict[str, Any]) -> SharedArray:
    _check(kwargs, {"axis"}, "median")
    return sorting.median(ctx, _flat(args, kwargs, "median", None))


def _np_take(ctx: Engine, args: tuple[Any, ...], kwargs: dict[str, Any]) -> SharedArray:
    _check(kwargs, {"indices", "axis"}, "take")
    z, idx = args[0], kwargs.get("indices", args[1] if len(args) > 1 else None)
    if isinstance(idx, SharedArray):
        return sorting.take(ctx, z if isinstance(z, SharedArray) else constant(ctx, z), idx)
    if kwargs.get("axis") not in (None, 0) or (z.ndim != 1 and kwargs.get("axis") is None):
        raise TypeError("numpy.take with a public index works on 1-D shared arrays here; index x[idx] instead")
    return z[np.asarray(idx)]  # type: ignore[no-any-return]


def _counting(what: str, fn: Any, allowed: set[str]) -> Adapter:
    def adapt(ctx: Engine, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        _check(kwargs, allowed, what)
        if what in ("cov", "corrcoef") and len(args) > 1:
            raise TypeError(f"numpy.{what}(x, y): stack them first, np.{what}(np.stack([x, y]))")
        if not isinstance(args[0], SharedArray):
            raise TypeError(f"numpy.{what} needs its first argument shared (ctx.constant makes a public one shared)")
        return fn(ctx, *args, **kwargs)
    return adapt


# -- samples --------------------------------------------------------------------------------------------

def _halves(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Reals on a half grid with many ties, and a second column."""
    return rng.integers(-20, 20, n) * 0.5, rng.uniform(-100, 100, n).round(3)


def _keyed(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Key codes in [0, GROUPS) and real values."""
    return rng.integers(0, GROUPS, n), rng.uniform(-100, 100, n).round(3)


def _small(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Small integers with zeros and repeats."""
    return rng.integers(-3, 4, n), rng.integers(-3, 4, n)


def _pairs(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    a = rng.normal(size=n) * 3
    return a.round(3), (0.5 * a + rng.normal(size=n)).round(3)


def _two(a: SharedArray, b: SharedArray) -> SharedArray:
    return stack([a, b])


EDGES = [-8.0, -2.5, 0.0, 1.0, 6.0]
TEST_SET = [0, 2, -3]
PER_LEVEL = {"dcf": 2, "compact": 3, "bits": 9}  # rounds_vary: rounds per quicksort level (comparison + opening)

ANALYTICS = [
    Operation("sort", sort, Sample(_halves, lambda ctx, x, y, m: sort(ctx, x, method=m), lambda a, b: np.sort(a),
                                   methods=True),
              functions={"sort": _sorting("sort", sorting.sort)}, rounds=PER_LEVEL, rounds_vary=True),
    Operation("argsort", argsort, Sample(_halves, lambda ctx, x, y, m: argsort(ctx, x, m),
                                         lambda a, b: np.argsort(a, kind="stable"), methods=True),
              functions={"argsort": _sorting("argsort", sorting.argsort)}, rounds=PER_LEVEL, rounds_vary=True),
    Operation("take", take, Sample(_halves, lambda ctx, x, y, m: take(ctx, y, argsort(ctx, x, m)),
                                   lambda a, b: b[np.argsort(a, kind="stable")], 1e-4, methods=True),
              functions={"take": _np_take}, rounds=PER_LEVEL, rounds_vary=True),
    Operation("top_k", top_k, Sample(_halves, lambda ctx, x, y, m: top_k(ctx, x, 5, m)[0],
                                     lambda a, b: np.sort(a)[::-1][:5], methods=True),
              rounds=PER_LEVEL, rounds_vary=True),
    Operation("partition", partition, Sample(_halves, lambda ctx, x, y, m: partition(ctx, x, 7, m)[7],
                                             lambda a, b: np.partition(a, 7)[7], methods=True),
              functions={"partition": _np_partition}, rounds=PER_LEVEL, rounds_vary=True),
    Operation("median", median, Sample(_halves, lambda ctx, x, y, m: median(ctx, x, m), lambda a, b: np.median(a),
                                       1e-4, methods=True),
              functions={"median": _np_median}, rounds=PER_LEVEL, rounds_vary=True),
    Operation("quantile", quantile, Sample(_halves, lambda ctx, x, y, m: quantile(ctx, x, [0.1, 0.75], m),
                                           lambda a, b: np.quantile(a, [0.1, 0.75]), 1e-3, methods=True),
              functions={"quantile": _np_quantile(1.0, "quantile")}, rounds=PER_LEVEL, rounds_vary=True),
    Operation("percentile", percentile, Sample(_halves, lambda ctx, x, y, m: percentile(ctx, x, 90, m),
                                               lambda a, b: np.percentile(a, 90), 1e-3, methods=True),
              functions={"percentile": _np_quantile(100.0, "percentile")}, rounds=PER_LEVEL, rounds_vary=True),
    Operation("group_count", group_count, Sample(_keyed, lambda ctx, x, y, m: group_count(ctx, x, GROUPS),
                                                 lambda a, b: np.bincount(a, minlength=GROUPS)), rounds={"": 1}),
    Operation("group_sum", group_sum, Sample(_keyed, lambda ctx, x, y, m: group_sum(ctx, y, x, GROUPS),
                                             lambda a, b: np.bincount(a, b, GROUPS), 1e-3), rounds={"": 1}),
    Operation("group_mean", group_mean,
              Sample(_keyed, lambda ctx, x, y, m: group_mean(ctx, y, x, GROUPS, m),
                     lambda a, b: np.bincount(a, b, GROUPS) / np.maximum(np.bincount(a, minlength=GROUPS), 1),
                     2e-2, 1e-3, methods=True),
              rounds={"dcf": 8, "compact": 11, "bits": 32}),
    Operation("histogram", histogram, Sample(_halves, lambda ctx, x, y, m: histogram(ctx, x, EDGES, m)[0],
                                             lambda a, b: np.histogram(a, EDGES)[0], methods=True),
              functions={"histogram": _counting("histogram", analytics.histogram, {"bins"})},
              rounds={"dcf": 1, "compact": 2, "bits": 8}),
    Operation("digitize", digitize, Sample(_halves, lambda ctx, x, y, m: digitize(ctx, x, EDGES, method=m),
                                           lambda a, b: np.digitize(a, EDGES), methods=True),
              functions={"digitize": _counting("digitize", analytics.digitize, {"bins", "right"})},
              rounds={"dcf": 1, "compact": 2, "bits": 8}),
    Operation("count_nonzero", count_nonzero,
              Sample(_small, lambda ctx, x, y, m: count_nonzero(ctx, x, method=m),
                     lambda a, b: np.asarray(np.count_nonzero(a)), methods=True),
              functions={"count_nonzero": _counting("count_nonzero", analytics.count_nonzero, {"axis"})},
              rounds={"dcf": 1, "compact": 2, "bits": 8}),
    Operation("any", any_, Sample(_small, lambda ctx, x, y, m: any_(ctx, x * 0 + y, method=m),
                                  lambda a, b: np.asarray(np.any(b), dtype=np.int64), methods=True),
              functions={"any": _counting("any", analytics.any_, {"axis"})},
              rounds={"dcf": 2, "compact": 4, "bits": 16}),
    Operation("all", all_, Sample(_small, lambda ctx, x, y, m: all_(ctx, x, method=m),
                                  lambda a, b: np.asarray(np.all(a), dtype=np.int64), methods=True),
              functions={"all": _counting("all", analytics.all_, {"axis"})},
              rounds={"dcf": 2, "compact": 4, "bits": 16}),
    Operation("isin", isin, Sample(_small, lambda ctx, x, y, m: isin(ctx, x, TEST_SET, m),
                                   lambda a, b: np.isin(a, TEST_SET).astype(np.int64), methods=True),
              functions={"isin": _counting("isin", analytics.isin, {"test_elements"})},
              rounds={"dcf": 1, "compact": 2, "bits": 8}),
    Operation("cov", cov, Sample(_pairs, lambda ctx, x, y, m: cov(ctx, _two(x, y)),
                                 lambda a, b: np.cov(np.stack([a, b])), 2e-2, 1e-3),
              functions={"cov": _counting("cov", analytics.cov, {"rowvar", "ddof"})}, rounds={"": 4}),
    Operation("corrcoef", corrcoef, Sample(_pairs, lambda ctx, x, y, m: corrcoef(ctx, _two(x, y), method=m),
                                           lambda a, b: np.corrcoef(np.stack([a, b])), 2e-2, methods=True),
              functions={"corrcoef": _counting("corrcoef", analytics.corrcoef, {"rowvar"})},
              rounds={"dcf": 14, "compact": 16, "bits": 30}),
]

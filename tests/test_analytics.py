"""Group and count on shares against numpy and pandas: group-by over secret and public keys, histogram,
digitize, count_nonzero, any/all, isin, cov, corrcoef, unique with counts, reveal(min_count=), and the
refusals of numpy functions that are not offered (each names an alternative or says so)."""

from __future__ import annotations

import functools

import numpy as np
import pandas as pd
import pytest

from protocols.interface import context
from protocols.interface.context import Context
from protocols.primitives.grouping import _by_shift, buckets

run_local = functools.partial(context.run_local, transport="memory")
RNG = np.random.default_rng(11)


def _run(topology, inputs: dict[str, np.ndarray], program) -> list:
    """Input each array (owner: bank_a for names starting with k or x, else bank_b), run, reveal all."""
    async def run(ctx: Context):
        shared = {}
        for name, value in inputs.items():
            owner = "bank_a" if name[0] in "kx" else "bank_b"
            shared[name] = await ctx.input(owner, value if ctx.name == owner else None)
        outs = program(ctx, **shared)
        return [await o if not hasattr(o, "shape") else await ctx.reveal(o) for o in outs]

    return run_local(topology, run)["bank_a"].value


@pytest.mark.parametrize("n_compute", [2, 3])
@pytest.mark.parametrize("case", ["random", "one_group", "empty_groups", "one_row", "no_rows"])
def test_group_by_matches_pandas(make_topology, n_compute: int, case: str) -> None:
    n, groups = {"one_row": (1, 5), "no_rows": (0, 4)}.get(case, (400, 13))
    keys = RNG.integers(0, groups, n) if case != "one_group" else np.full(n, 3)
    if case == "empty_groups":
        keys = RNG.choice([0, 5, 12], n)
    values = RNG.normal(size=n) * 100
    two = RNG.integers(-50, 50, (n, 2))
    counts, sums, means, pub_counts, pub_sums, cols = _run(make_topology(n_compute), {"k": keys, "v": values, "w": two},
        lambda ctx, k, v, w: (ctx.group_count(k, groups), ctx.group_sum(v, k, groups), ctx.group_mean(v, k, groups),
                              ctx.constant(ctx.group_count(keys, groups)), ctx.group_sum(v, keys, groups),
                              ctx.group_sum(w, k, groups)))
    frame = pd.DataFrame({"k": keys, "v": values, "a": two[:, 0], "b": two[:, 1]}).groupby("k")
    want_counts = frame.size().reindex(range(groups), fill_value=0).to_numpy()
    want_sums = frame["v"].sum().reindex(range(groups), fill_value=0).to_numpy()
    np.testing.assert_array_equal(counts, want_counts)
    np.testing.assert_array_equal(pub_counts, want_counts)
    np.testing.assert_allclose(sums, want_sums, atol=1e-3)
    np.testing.assert_allclose(pub_sums, want_sums, atol=1e-3)
    np.testing.assert_allclose(means, np.where(want_counts, want_sums / np.maximum(want_counts, 1), 0), atol=2e-2)
    np.testing.assert_array_equal(cols, frame[["a", "b"]].sum().reindex(range(groups), fill_value=0).to_numpy())


def test_shift_sums_and_buckets() -> None:
    table = RNG.integers(0, 9, (50, 8)).astype(np.uint64)
    shift = RNG.integers(0, 8, 50)
    want = sum(np.roll(table[i], shift[i]) for i in range(50))
    np.testing.assert_array_equal(_by_shift(table, shift), want)
    assert [buckets(g) for g in (1, 2, 3, 100, 128, 129)] == [2, 2, 4, 128, 128, 256]


@pytest.mark.parametrize("case", ["reals", "ints", "edges"])
def test_counting_matches_numpy(make_topology, case: str) -> None:
    x = {"reals": RNG.normal(size=300) * 3, "ints": RNG.integers(-4, 5, 300),
         "edges": np.array([-2.0, -1.0, 0.0, 1.0, 2.0, 2.0, 0.5, -3.0, 3.0])}[case]
    edges = [-2, -1, 0, 1, 2]
    test = [0, 1, 1, -3]
    hist, dig, digr, nz, anyv, allv, isin = _run(make_topology(2), {"x": x}, lambda ctx, x: (
        np.histogram(x, bins=edges)[0], np.digitize(x, edges), np.digitize(x, edges, right=True),
        np.count_nonzero(x), np.any(x), np.all(x), np.isin(x, test)))
    np.testing.assert_array_equal(hist, np.histogram(x, bins=edges)[0])  # the last bin closed, as numpy's
    np.testing.assert_array_equal(dig, np.digitize(x, edges))
    np.testing.assert_array_equal(digr, np.digitize(x, edges, right=True))
    assert nz == np.count_nonzero(x) and anyv == np.any(x) and allv == np.all(x)
    np.testing.assert_array_equal(isin, np.isin(x, test))


def test_any_all_isin_against_shared_sets_and_zeros(make_topology) -> None:
    x = np.array([0, 0, 3, 0])
    s = np.array([3, 3, 7])  # a shared test set with duplicates
    out = _run(make_topology(2), {"x": x, "s": s}, lambda ctx, x, s: (
        np.any(x), np.all(x), np.any(x * 0), np.all(x + 1), np.isin(x, s), np.count_nonzero(x.reshape(2, 2), axis=1)))
    assert out[:4] == [1, 0, 0, 1]
    np.testing.assert_array_equal(out[4], [0, 0, 1, 0])
    np.testing.assert_array_equal(out[5], [0, 1])


def test_cov_and_corrcoef_match_numpy(make_topology) -> None:
    a, b = RNG.normal(size=200) * 2, RNG.normal(size=200)
    b = 0.6 * a + b
    c, r, v = _run(make_topology(2), {"x": a, "y": b}, lambda ctx, x, y: (
        np.cov(np.stack([x, y])), np.corrcoef(np.stack([x, y])), np.cov(x)))
    np.testing.assert_allclose(c, np.cov(np.stack([a, b])), atol=1e-2)
    np.testing.assert_allclose(r, np.corrcoef(np.stack([a, b])), atol=1e-2)
    np.testing.assert_allclose(v, np.cov(a), atol=1e-2)


@pytest.mark.parametrize("case", ["ints", "reals", "one_value", "one"])
def test_unique_with_counts(make_topology, case: str) -> None:
    x = {"ints": RNG.integers(-3, 6, 120), "reals": RNG.choice([0.5, -1.25, 7.0], 60),
         "one_value": np.full(20, 4), "one": np.array([9])}[case]

    def program(ctx: Context, x):
        async def both():
            values, counts = await ctx.unique(x, return_counts=True, reveal_distinct=True)
            return [await ctx.reveal(values), await ctx.reveal(counts)]
        return (both(),)

    (values, counts), = _run(make_topology(2), {"x": x}, program)
    want_values, want_counts = np.unique(x, return_counts=True)
    np.testing.assert_allclose(values, want_values)
    np.testing.assert_array_equal(counts, want_counts)


def test_reveal_suppresses_small_cells_decided_on_shares(make_topology) -> None:
    keys = np.repeat(np.arange(5), [1, 4, 5, 9, 0])
    values = np.arange(keys.size) * 1.5

    def program(ctx: Context, k, y):
        counts, sums = ctx.group_count(k, 5), ctx.group_sum(y, k, 5)
        return ctx.reveal(counts, min_count=5), ctx.reveal(sums, min_count=5, counts=counts)

    counts, sums = _run(make_topology(2), {"k": keys, "y": values}, program)
    assert counts.mask.tolist() == [True, True, False, False, True]
    assert counts.compressed().tolist() == [5, 9]
    np.testing.assert_allclose(sums.compressed(), [np.sum(values[keys == 2]), np.sum(values[keys == 3])])
    assert sums.mask.tolist() == counts.mask.tolist()


def test_bad_arguments_get_clear_errors(make_topology) -> None:
    def program(ctx: Context, x):
        errors = []
        for call in (lambda: np.histogram(x, bins=5), lambda: ctx.unique(x), lambda: ctx.group_sum(x, x * 1.0, 3),
                     lambda: ctx.group_count(np.array([0, 7]), 3)):
            try:
                call()
            except (TypeError, ValueError) as exc:
                errors.append(str(exc))
        return [ctx.constant(np.zeros(1))] if len(errors) == 4 else []

    assert len(_run(make_topology(2), {"x": np.arange(2)}, program)) == 1


COMMON = ["sort", "argsort", "median", "percentile", "quantile", "histogram", "corrcoef", "cov", "count_nonzero",
          "any", "all", "isin", "unique", "partition", "argpartition", "lexsort", "nonzero", "bincount", "searchsorted",
          "ptp", "diff", "nanmean", "log2", "round", "floor", "prod", "average", "cumprod", "trace", "einsum",
          "outer", "mod", "fmax", "logical_and", "array_equal", "allclose", "argwhere", "intersect1d", "histogram2d",
          "digitize", "take", "gradient", "interp", "polyfit", "fft"]


def test_every_numpy_function_works_or_names_an_alternative(make_topology) -> None:
    """The functions an analyst reaches for: each runs, or refuses with 'use ...' or 'not offered'."""
    def program(ctx: Context, x):
        verdicts = {}
        for name in COMMON:
            fn = np.fft.fft if name == "fft" else getattr(np, name)
            args = {"percentile": (50,), "quantile": (0.5,), "histogram": ([0, 1],), "isin": ([1],),
                    "partition": (1,), "argpartition": (1,), "digitize": ([0, 1],), "take": ([0],),
                    "searchsorted": (1,), "mod": (2,), "fmax": (1,), "logical_and": (x,), "array_equal": (x,),
                    "allclose": (x,), "intersect1d": (x,), "outer": (x,), "einsum": None, "interp": ([0], [1]),
                    "polyfit": (x, 1), "histogram2d": (x,)}.get(name, ())
            try:
                if name == "einsum":
                    np.einsum("i,i", x, x)
                elif name == "lexsort":
                    np.lexsort((x,))
                elif name in ("cov", "corrcoef"):
                    fn(np.stack([x * 1.0, x * 1.0]))
                else:
                    fn(x, *args)
                verdicts[name] = "runs"
            except TypeError as exc:
                verdicts[name] = str(exc)
        return [verdicts]

    async def run(ctx: Context):
        x = await ctx.input("bank_a", np.arange(4) if ctx.name == "bank_a" else None)
        return program(ctx, x)[0]

    verdicts = run_local(make_topology(2), run)["bank_a"].value
    for name, verdict in verdicts.items():
        assert verdict == "runs" or "; use " in verdict or "not offered" in verdict or "nothing:" in verdict, \
            (name, verdict)
    for name in ("sort", "argsort", "median", "percentile", "histogram", "corrcoef", "cov", "count_nonzero", "any",
                 "isin", "partition", "digitize", "take"):
        assert verdicts[name] == "runs", (name, verdicts[name])
    assert "reveal_distinct=True" in verdicts["unique"]


def test_common_customers_example_as_processes(tmp_path) -> None:
    """examples/common_customers.py: PSI (size only), a join on shares, suppressed cells, median, top-10."""
    from tests.test_examples import DATA, _config, launch

    out = launch(_config(tmp_path, "local-2banks-helper"), "examples/common_customers.py:common_customers",
                 f"data_dir={DATA}")
    a = pd.read_csv(DATA / "customers_bank_a.csv")
    b = pd.read_csv(DATA / "customers_bank_b.csv")
    joined = pd.merge(a, b, on="customer_id")
    got = out["bank_a"]
    assert got == out["bank_b"] and out["helper"] == {"common customers": len(joined)}
    assert got["common customers"] == len(joined)
    counts = np.histogram(joined["balance_k"], bins=[0, 5, 10, 20, 40, 80])[0]
    assert got["balance histogram"] == [int(c) if c >= 10 else None for c in counts]
    per = joined.groupby("segment")["monthly_spend_k"].agg(["sum", "size"]).reindex(range(4), fill_value=0)
    for have, (total, size) in zip(got["spend per segment"], per.to_numpy(), strict=True):
        assert (have is None) == (size < 10) and (have is None or abs(have - total) < 0.02)
    assert abs(got["median spend"] - joined["monthly_spend_k"].median()) < 1e-3
    top = np.sort(joined["balance_k"] + joined["monthly_spend_k"])[::-1][:10]
    np.testing.assert_allclose(got["top 10"], top, atol=0.01)

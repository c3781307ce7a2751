"""Shuffle, sort, argsort, take, top-k, partition, median and quantiles on shares against numpy (ties, one
element, empty, negatives, 2 and 3 compute parties); one test with the parties as processes."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import numpy as np
import pytest

from protocols.interface import context
from protocols.interface.context import Context
from protocols.primitives.shuffle import Shuffle
from tests.test_programs import _topology, mpc

run_local = functools.partial(context.run_local, transport="memory")
RNG = np.random.default_rng(7)


def _values(case: str) -> np.ndarray:
    return {
        "reals": RNG.normal(size=200) * 1000,
        "ties": RNG.integers(-3, 4, 150).astype(np.float64),
        "ints": RNG.integers(-10**6, 10**6, 120),
        "all_equal": np.full(40, 2.5),
        "sorted": np.arange(60.0),
        "reversed": np.arange(60.0)[::-1].copy(),
        "one": np.array([3.25]),
        "two": np.array([5, -5]),
    }[case]


def _opened(topology, x: np.ndarray, program) -> list:
    async def run(ctx: Context):
        a = await ctx.input("bank_a", x if ctx.name == "bank_a" else None)
        outs = program(ctx, a)
        return [await ctx.reveal(o) for o in outs]

    return run_local(topology, run)["bank_a"].value


@pytest.mark.parametrize("case", ["reals", "ties", "ints", "all_equal", "sorted", "reversed", "one", "two"])
def test_sort_argsort_and_take_match_numpy(make_topology, case: str) -> None:
    x = _values(case)
    s, p, t, sx = _opened(make_topology(2), x, lambda ctx, a: (
        np.sort(a), (p := np.argsort(a)), np.take(a * 3, p), ctx.sort(a, a * 2)[1]))
    want = np.argsort(x, kind="stable")
    np.testing.assert_allclose(s, np.sort(x), atol=1e-4)
    np.testing.assert_array_equal(p, want)  # stable: ties keep their order
    np.testing.assert_allclose(t, 3 * x[want], atol=1e-4)
    np.testing.assert_allclose(sx, 2 * x[want], atol=1e-4)


@pytest.mark.parametrize("case", ["reals", "ties", "ints", "one", "two"])
def test_selection_matches_numpy(make_topology, case: str) -> None:
    x = _values(case)
    n = x.size
    k = min(5, n)
    kth = n // 3
    med, pct, q0, values, idx, part = _opened(make_topology(2), x, lambda ctx, a: (
        np.median(a), np.percentile(a, [0, 12.5, 50, 90, 100]), np.quantile(a, 0.3), *ctx.top_k(a, k),
        np.partition(a, kth)))
    np.testing.assert_allclose(med, np.median(x), atol=1e-3)
    np.testing.assert_allclose(pct, np.percentile(x, [0, 12.5, 50, 90, 100]), rtol=1e-6, atol=1e-3)
    np.testing.assert_allclose(q0, np.quantile(x, 0.3), rtol=1e-6, atol=1e-3)
    order = np.lexsort((-np.arange(n), -x))  # largest first; among equals the later index first
    np.testing.assert_allclose(values, x[order[:k]], atol=1e-4)
    np.testing.assert_array_equal(idx, order[:k])
    np.testing.assert_allclose(part[kth], np.sort(x)[kth], atol=1e-4)
    assert np.all(part[:kth] <= part[kth] + 1e-9) and np.all(part[kth + 1:] >= part[kth] - 1e-9)


def test_three_compute_parties_sort_and_shuffle(make_topology) -> None:
    x = _values("ties")

    def program(ctx: Context, a):
        shuffled = Shuffle(ctx, a.shape[0])
        mixed = shuffled.apply([a])[0]
        return np.sort(a), np.argsort(a), mixed, shuffled.invert([mixed])[0]

    s, p, mixed, back = _opened(make_topology(3), x, program)
    np.testing.assert_allclose(s, np.sort(x))
    np.testing.assert_array_equal(p, np.argsort(x, kind="stable"))
    np.testing.assert_allclose(np.sort(mixed), np.sort(x))  # a permutation of x
    np.testing.assert_allclose(back, x)


def test_shuffle_permutes_and_no_party_sees_the_permutation_alone(make_topology) -> None:
    """Each compute party holds one factor only: the composition differs from either factor."""
    x = np.arange(64)

    async def program(ctx: Context):
        a = await ctx.input("bank_a", x if ctx.name == "bank_a" else None)
        s = Shuffle(ctx, 64)
        mixed = await ctx.reveal(s.apply([a])[0])
        factors = {p: await s._factor(p)() for p in s.permuters if ctx.name in (p, "helper")}
        return mixed, factors

    out = run_local(make_topology(2), program)
    mixed, helper_factors = out["bank_a"].value[0], out["helper"].value[1]
    assert sorted(mixed.tolist()) == x.tolist() and not np.array_equal(mixed, x)
    own_a = out["bank_a"].value[1]["bank_a"]
    np.testing.assert_array_equal(mixed, own_a[helper_factors["bank_b"]])  # x[pi0][pi1]
    assert not np.array_equal(mixed, own_a) and not np.array_equal(mixed, helper_factors["bank_b"])


def test_empty_and_bad_inputs(make_topology) -> None:
    assert _opened(make_topology(2), np.zeros(0), lambda ctx, a: (np.sort(a), np.argsort(a)))[0].shape == (0,)
    for program, message in [
        (lambda ctx, a: (np.median(a),), "median of an empty"),
        (lambda ctx, a: (np.sort(a.reshape(1, 3)),), "works on 1-D arrays"),
        (lambda ctx, a: (ctx.take(a, a),), "needs a shared permutation"),
        (lambda ctx, a: (np.percentile(a, 120),), "q must be"),
    ]:
        with pytest.raises(Exception) as err:
            _opened(make_topology(2), np.zeros(0) if "median" in message else np.ones(3), program)
        assert message in str(err.value.__cause__ or err.value)


PROGRAM = '''
import numpy as np


async def ranked(ctx, n: int = 3000):
    x = np.random.default_rng(3).integers(-50, 50, n) * 0.5
    a = await ctx.input("bank_a", x if ctx.name == "bank_a" else None)
    s, p = np.sort(a), np.argsort(a)
    med, (top, _) = np.median(a), ctx.top_k(a, 10)
    got = [await ctx.reveal(v) for v in (s, p, med, top)]
    if got[0] is None:
        return None
    return [bool(np.array_equal(got[0], np.sort(x))), bool(np.array_equal(got[1], np.argsort(x, kind="stable"))),
            float(got[2]) == float(np.median(x)), got[3].tolist() == np.sort(x)[::-1][:10].tolist()]
'''


def test_sort_with_parties_as_processes(tmp_path: Path) -> None:
    prog = tmp_path / "sort_prog.py"
    prog.write_text(PROGRAM)
    res = mpc("launch", str(_topology(tmp_path)), "--program", f"{prog}:ranked", "--json", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    results = {p["name"]: p["result"] for p in json.loads(res.stdout)["parties"]}
    assert results["bank_a"] == results["bank_b"] == [True, True, True, True]
    assert results["helper"] is None

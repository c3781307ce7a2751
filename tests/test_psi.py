"""Private set intersection (helper-aided) and aligned inputs, against Python's sets and pandas' merge; one
test with the parties as processes (test_psi_with_parties_as_processes)."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from protocols.interface import context
from protocols.interface.context import Context
from protocols.primitives.psi import check_ids, match, tags
from tests.test_programs import _topology, mpc

run_local = functools.partial(context.run_local, transport="memory")
RNG = np.random.default_rng(23)


def _ids(n: int, prefix: str = "DE") -> list[str]:
    return [f"{prefix}{v:020d}" for v in RNG.choice(10 * n + 10, size=n, replace=False)]


def _run(topology, sets: dict[str, list[str]], reveal: str = "both", columns: bool = True,
         method: str = "helper") -> dict:
    """PSI of the banks' sets, then each bank's values (a function of its ids) input aligned and revealed."""
    def value(ids: list[str]) -> np.ndarray:
        return np.array([float(sum(map(ord, i)) % 1000) + 0.5 for i in ids])

    async def program(ctx: Context):
        al = await ctx.psi(sets.get(ctx.name), reveal=reveal, method=method)
        out = {"size": al.size, "ids": al.ids}
        if columns:
            for bank in ("bank_a", "bank_b"):
                x = await ctx.input(bank, value(sets[bank]) if ctx.name == bank else None, align=al)
                assert x.shape == (al.size,)
                out[bank] = await ctx.reveal(x)
        return out

    results = {name: o.value for name, o in run_local(topology, program).items()}
    return results, value


@pytest.mark.parametrize("method", ["helper", "ecdh"])
@pytest.mark.parametrize("case", ["random", "empty", "one_empty", "disjoint", "identical", "one", "unicode"])
def test_psi_matches_set_intersection_and_aligns_rows(make_topology, case: str, method: str) -> None:
    a, b = _ids(300), _ids(200, "FR")
    b[:120] = a[50:170]
    if case == "empty":
        a, b = [], []
    elif case == "one_empty":
        b = []
    elif case == "disjoint":
        b = [i + "x" for i in a[:100]]
    elif case == "identical":
        b = list(reversed(a))
    elif case == "one":
        a, b = ["only"], ["only"]
    elif case == "unicode":
        a = ["Zoë", "日本-001", "ΑΒΓ", "a\u0301", "á", "😀", "x" * 500, ""]
        b = ["á", "😀", "日本-001", "zoë", "", "x" * 499]
    res, value = _run(make_topology(2), {"bank_a": a, "bank_b": b}, method=method)
    common = set(a) & set(b)
    ids = res["bank_a"]["ids"]
    assert res["bank_a"]["size"] == res["bank_b"]["size"] == res["helper"]["size"] == len(common)
    assert sorted(ids) == sorted(common) and ids == res["bank_b"]["ids"] and res["helper"]["ids"] is None
    if common:  # the rows of both banks line up on the common ids, in the common order
        np.testing.assert_array_equal(res["bank_a"]["bank_a"], value(ids))
        np.testing.assert_array_equal(res["bank_b"]["bank_b"], value(ids))
    assert res["bank_a"]["bank_b"].shape == (len(common),)


@pytest.mark.parametrize("reveal", ["size", "bank_b"])
def test_psi_reveals_the_ids_only_to_whom_it_is_told(make_topology, reveal: str) -> None:
    a, b = _ids(50), _ids(40, "FR")
    b[:10] = a[:10]
    res, value = _run(make_topology(2), {"bank_a": a, "bank_b": b}, reveal=reveal)
    assert res["bank_a"]["ids"] is None
    assert (res["bank_b"]["ids"] is None) == (reveal == "size")
    # the aligned rows still agree: both banks' values are the same function of the id, so row by row equal
    assert res["bank_a"]["size"] == 10
    np.testing.assert_array_equal(res["bank_a"]["bank_a"], res["bank_b"]["bank_b"])
    assert sorted(res["bank_a"]["bank_a"]) == sorted(value(a[:10]))


def test_ecdh_psi_gives_the_intersection_to_the_receiver_only(make_topology) -> None:
    a, b = _ids(30), _ids(20, "FR")
    b[:7] = a[3:10]
    res, _ = _run(make_topology(3), {"bank_a": a, "bank_b": b}, reveal="bank_b", columns=False, method="ecdh")
    assert sorted(res["bank_b"]["ids"]) == sorted(a[3:10])
    assert res["bank_a"]["ids"] is None and res["bank_c"]["ids"] is None and res["bank_a"]["size"] == 7
    with pytest.raises(Exception) as err:
        _run(make_topology(2), {"bank_a": a, "bank_b": b}, reveal="size", method="ecdh")
    assert "needs the helper" in str(err.value.__cause__ or err.value)
    with pytest.raises(Exception) as err:  # bank_a does not know the intersection: it cannot align its rows
        _run(make_topology(2), {"bank_a": a, "bank_b": b}, reveal="bank_b", method="ecdh")
    assert "needs the owner to know the intersection" in str(err.value.__cause__ or err.value)


def test_psi_with_three_compute_parties_and_a_dataframe(make_topology) -> None:
    a, b = _ids(80), _ids(60, "FR")
    b[5:35] = a[20:50]
    fa = pd.DataFrame({"id": a, "amount": RNG.normal(size=80), "count": RNG.integers(0, 9, 80)})
    fb = pd.DataFrame({"id": b, "score": RNG.normal(size=60)})

    async def program(ctx: Context):
        mine = {"bank_a": fa, "bank_b": fb}.get(ctx.name)
        al = await ctx.psi(None if mine is None else mine["id"].tolist())
        xa = await ctx.input("bank_a", fa[["amount", "count"]] if ctx.name == "bank_a" else None, align=al)
        xb = await ctx.input("bank_b", fb[["score"]] if ctx.name == "bank_b" else None, align=al)
        return al.ids, await ctx.reveal(xa["amount"] * xb["score"]), xa.columns

    res = run_local(make_topology(3), program)
    ids, product, names = res["bank_a"].value
    joined = pd.merge(fa, fb, on="id").set_index("id").loc[ids]
    np.testing.assert_allclose(product, joined["amount"] * joined["score"], atol=1e-3)
    assert names == ("amount", "count") and res["bank_c"].value[0] is None
    np.testing.assert_allclose(res["bank_c"].value[1], product)


def test_bad_ids_are_refused_before_anything_is_sent() -> None:
    with pytest.raises(ValueError, match=r"bank_a: psi: duplicate ids \(positions 0 and 2 are equal\)"):
        check_ids("bank_a", ["x", "y", "x"])
    with pytest.raises(TypeError, match="bank_b: psi: ids must be strings; the id at position 1 is a int"):
        check_ids("bank_b", ["x", 3])
    with pytest.raises(TypeError, match="not one str"):
        check_ids("bank_a", "abc")
    with pytest.raises(ValueError, match="needs this bank's ids"):
        check_ids("bank_a", None)
    assert check_ids("bank_a", np.array(["a", "b"])) == ["a", "b"]


def test_duplicate_ids_stop_the_run_naming_the_bank(make_topology) -> None:
    async def program(ctx: Context):
        await ctx.psi({"bank_a": ["a", "b", "a"], "bank_b": ["a"]}.get(ctx.name))

    with pytest.raises(Exception, match="bank_a") as err:
        run_local(make_topology(2), program)
    assert "duplicate ids" in str(err.value.__cause__ or err.value)


def test_tags_are_keyed_and_matching_is_exact() -> None:
    ids = ["a", "b", "c"]
    t1, t2 = tags(b"k" * 32, ids), tags(b"j" * 32, ids)
    assert t1.shape == (3, 2) and not np.array_equal(t1, t2)  # another key, other tags
    ia, ib = match(t1, tags(b"k" * 32, ["c", "x", "a"]))
    assert sorted(zip(ia.tolist(), ib.tolist(), strict=True)) == [(0, 2), (2, 0)]


def test_aligned_input_checks_the_rows_and_the_owner(make_topology) -> None:
    async def program(ctx: Context):
        al = await ctx.psi({"bank_a": ["a", "b"], "bank_b": ["b"]}.get(ctx.name))
        await ctx.input("bank_a", np.ones(3) if ctx.name == "bank_a" else None, align=al)

    with pytest.raises(Exception) as err:
        run_local(make_topology(2), program)
    assert "3 rows, but 2 ids were given to psi" in str(err.value.__cause__ or err.value)


PROGRAM = '''
import numpy as np


async def joined(ctx, n: int = 2000, method: str = "helper"):
    ids = [f"cust-{i}" for i in range(2 * n)]
    mine = {"bank_a": ids[:n], "bank_b": ids[n // 2:n // 2 + n]}.get(ctx.name)
    al = await ctx.psi(mine, reveal="size" if method == "helper" else "both", method=method)
    x = await ctx.input("bank_a", np.arange(n) * 1.0 if ctx.name == "bank_a" else None, align=al)
    y = await ctx.input("bank_b", np.arange(n) if ctx.name == "bank_b" else None, align=al)
    diff = await ctx.reveal(x - y)
    return [al.size, None if diff is None else sorted(set(np.round(diff, 6).tolist()))]
'''


@pytest.mark.parametrize("method", ["helper", "ecdh"])
def test_psi_with_parties_as_processes(tmp_path: Path, method: str) -> None:
    prog = tmp_path / "psi_prog.py"
    prog.write_text(PROGRAM)
    res = mpc("launch", str(_topology(tmp_path)), "--program", f"{prog}:joined", "-p", f"method={method}", "--json",
              cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    results = {p["name"]: p["result"] for p in json.loads(res.stdout)["parties"]}
    # bank_a's row i is customer i, bank_b's row j customer j + n/2: every common pair differs by n/2
    assert results["bank_a"] == results["bank_b"] == [1000, [1000.0]]
    assert results["helper"] == [1000, None]

"""A bank's pandas DataFrame as a secret input: numeric columns, names kept (public, like the shape)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from protocols.interface.context import Context, run_local
from protocols.interface.testing import run_local_with_test_dealer

FRAME = pd.DataFrame({"amount": [120.5, -3.25, 0.0, 99.0], "count": [3, 1, 0, 7], "flag": [True, False, True, False]})


def test_a_dataframe_is_input_with_its_column_names(make_topology) -> None:
    async def program(ctx: Context):
        x = await ctx.input("bank_a", FRAME if ctx.name == "bank_a" else None)
        totals = np.sum(x, axis=0)
        by_name = x["amount"] * 2 + x["count"]
        pair = x[["count", "flag"]]
        return x.columns, pair.columns, await ctx.reveal(totals), await ctx.reveal(by_name)

    out = run_local(make_topology(2), program)
    for name in ("bank_a", "bank_b", "helper"):
        columns, pair, _, _ = out[name].value
        assert columns == ("amount", "count", "flag") and pair == ("count", "flag")
    _, _, totals, by_name = out["bank_b"].value
    np.testing.assert_allclose(totals, FRAME.to_numpy(dtype=float).sum(axis=0), atol=1e-4)
    np.testing.assert_allclose(by_name, FRAME["amount"] * 2 + FRAME["count"], atol=1e-4)


def test_integer_columns_stay_integers(make_topology) -> None:
    ints = pd.DataFrame({"a": [1, -2, 3], "b": [10, 20, 30]})

    async def program(ctx: Context):
        x = await ctx.input("bank_b", ints if ctx.name == "bank_b" else None)
        return await ctx.reveal(x["b"] // 7)

    out = run_local_with_test_dealer(make_topology(2, helper=False), program, transport="memory")
    assert out["bank_a"].value.tolist() == [1, 2, 4]


def test_a_column_that_is_not_numeric_is_named(make_topology) -> None:
    bad = FRAME.assign(branch=["north", "south", "east", "west"])

    async def program(ctx: Context):
        return await ctx.input("bank_a", bad if ctx.name == "bank_a" else None)

    with pytest.raises(Exception, match=r"column 'branch' is not numeric \((object|str)\)"):
        run_local_with_test_dealer(make_topology(2, helper=False), program, transport="memory")


def test_unknown_column_names_say_which_exist(make_topology) -> None:
    async def program(ctx: Context):
        x = await ctx.input("bank_a", FRAME if ctx.name == "bank_a" else None)
        with pytest.raises(KeyError, match="no column 'amt'; columns: amount, count, flag"):
            x["amt"]
        y = x * 1.0
        with pytest.raises(KeyError, match="has no column names"):
            y["amount"]
        return True

    assert run_local_with_test_dealer(make_topology(2, helper=False), program, transport="memory")["bank_a"].value

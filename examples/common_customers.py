"""Statistics of the customers two banks have in common, without either bank showing its customer list.

bank_a has customer_id, segment, balance_k (DATA_DIR/customers_bank_a.csv); bank_b has customer_id,
monthly_spend_k (DATA_DIR/customers_bank_b.csv). A private set intersection finds the common customers
(the helper matches keyed tags and learns only how many; `reveal=size`: neither bank learns who), each
bank inputs its columns for them in one common order, and on the joined rows the banks learn:

- a histogram of balances, with every bin of fewer than `min_count` customers suppressed (decided on
  shares: a suppressed bin's count is never opened);
- the total monthly spend per segment (segments are bank_a's, secret), suppressed likewise;
- the median monthly spend, and the ten largest balance + spend totals.

    mpc launch configs/local-2banks-helper.yaml --program examples/common_customers.py:common_customers \
        -p data_dir=examples/data
"""

import asyncio
import csv
from pathlib import Path

import numpy as np

SEGMENTS = 4


def read(path: Path) -> tuple[list[str], dict[str, np.ndarray]]:
    with path.open(newline="", encoding="utf-8-sig") as f:
        rows = list(csv.DictReader(f))
    ids = [r["customer_id"] for r in rows]
    columns = {name: np.array([float(r[name]) for r in rows]) for name in rows[0] if name != "customer_id"}
    return ids, columns


async def common_customers(ctx, data_dir: Path = Path("examples/data"), min_count: int = 10,
                           edges: str = "0,5,10,20,40,80", reveal: str = "size"):
    """PSI, join on shares, suppressed histogram and segment sums, median, top-10."""
    mine = read(data_dir / f"customers_{ctx.name}.csv") if ctx.name in ("bank_a", "bank_b") else None
    common = await ctx.psi(mine[0] if mine else None, reveal=reveal)

    def column(bank: str, name: str, integer: bool = False):
        value = None
        if ctx.name == bank:
            value = mine[1][name].astype(np.int64) if integer else mine[1][name]
        return ctx.input(bank, value, align=common)

    balance, segment, spend = await asyncio.gather(
        column("bank_a", "balance_k"), column("bank_a", "segment", integer=True), column("bank_b", "monthly_spend_k"))
    counts, _ = np.histogram(balance, bins=[float(e) for e in edges.split(",")])
    per_segment = ctx.group_sum(spend, segment, SEGMENTS)
    members = ctx.group_count(segment, SEGMENTS)
    top, _ = ctx.top_k(balance + spend, min(10, common.size))
    hist, sums, median, top = await asyncio.gather(
        ctx.reveal(counts, min_count=min_count), ctx.reveal(per_segment, min_count=min_count, counts=members),
        ctx.reveal(np.median(spend)), ctx.reveal(top))
    if hist is None:
        return {"common customers": common.size}  # the helper: only the sizes
    return {"common customers": common.size,
            "balance histogram": [None if masked else int(v) for v, masked in zip(hist.data, hist.mask, strict=True)],
            "spend per segment": [None if masked else round(float(v), 2)
                                  for v, masked in zip(sums.data, sums.mask, strict=True)],
            "median spend": round(float(median), 3), "top 10": [round(float(v), 2) for v in top]}


common_customers.own_params = ("data_dir",)

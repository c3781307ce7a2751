"""A sealed-bid auction: the highest bid and its bidder are revealed, the losing bids never are.

Each bidder (every compute party of the topology) reads its bid from DATA_DIR/<name>_bid.txt and inputs
it secretly; the parties find the maximum and its position on shares and open only those two values.
Ties go to the first bidder in the topology's order.

    mpc launch configs/local-3banks-helper.yaml --program examples/auction.py:auction -p data_dir=examples/data
"""

import asyncio
from pathlib import Path

import numpy as np


async def auction(ctx, data_dir: Path = Path("examples/data")):
    """The winning bidder and its bid."""
    bids = [ctx.input(bidder, np.array(float((data_dir / f"{bidder}_bid.txt").read_text()))
                      if ctx.name == bidder else None)
            for bidder in ctx.compute_parties]
    all_bids = ctx.stack(await asyncio.gather(*bids))
    best, winner = await asyncio.gather(ctx.reveal(ctx.max(all_bids)), ctx.reveal(ctx.argmax(all_bids)))
    if best is None:
        return None  # the helper learns nothing
    return {"winner": ctx.compute_parties[int(winner)], "winning_bid": round(float(best), 2)}


auction.own_params = ("data_dir",)

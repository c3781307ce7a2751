"""Programs the sharding tests run as real processes (`mpc launch --program tests/shard_programs.py:NAME`)."""

from __future__ import annotations

import os
import signal
from typing import Any

import numpy as np

from protocols import Context
from protocols.interface.collectives import shards

COLUMNS = 3


def data(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Both banks' rows: negatives, zeros, a row of extremes (|x| near 2^13, so x * y stays in range)."""
    rng = np.random.default_rng(seed)
    a, b = rng.normal(0, 3, (n, COLUMNS)), rng.normal(0, 3, (n, COLUMNS))
    if n > 2:
        a[1], b[1] = 0.0, 5.0
        a[2], b[2] = [8000.0, -8000.0, 0.5], [0.25, 0.25, -8000.0]
    return a, b


async def collectives(ctx: Context, n: int = 11, seed: int = 1, die: str = "") -> dict[str, Any]:
    """Every party-local collective on shared values and on a party's own cleartext, with the plaintext
    answers beside them. `die=PARTY:SHARD`: that shard kills itself (SIGKILL) after its first collective."""
    sh = shards(ctx)
    lo, hi = sh.rows(n)
    a, b = data(n, seed)
    xa = ctx.input("bank_a", a[lo:hi] if ctx.name == "bank_a" else None, shape=(hi - lo, COLUMNS), fixed=True)
    xb = ctx.input("bank_b", b[lo:hi] if ctx.name == "bank_b" else None, shape=(hi - lo, COLUMNS), fixed=True)
    product = ctx.mul(xa, xb)
    total = sh.sum(product.sum(axis=0))  # shared, fixed point
    count = sh.sum(ctx.less(0.0, product).sum())  # shared integer: how many products are positive
    joined = sh.concat(product, sizes=sh.sizes(n))
    wide = sh.concat(xa + xb, sizes=sh.sizes(n))
    first = sh.broadcast(ctx.constant(np.full(2, float(sh.index))), root=sh.count - 1)
    rows = await sh.sum_own(np.array([hi - lo]))
    if die and die == f"{ctx.name}:{sh.index}":  # its other shard now waits for it in the next collective
        os.kill(os.getpid(), signal.SIGKILL)
    order = await sh.concat_own(np.array([sh.index]) if not ctx.is_dealer else None)
    copy = await sh.broadcast_own(np.array([7 * sh.index + 1]), root=0)
    out = {"total": await ctx.reveal(total), "count": await ctx.reveal(count), "joined": await ctx.reveal(joined),
           "wide": await ctx.reveal(wide), "first": await ctx.reveal(first), "rows": rows, "order": order,
           "copy": copy, "shard": sh.index, "workers": sh.count}
    if not ctx.is_dealer:
        out["want"] = {"total": (a * b).sum(axis=0), "count": int(((a * b) > 0).sum()), "joined": a * b,
                       "wide": a + b, "first": np.full(2, float(sh.count - 1))}
    return out


collectives.shardable = True  # type: ignore[attr-defined]

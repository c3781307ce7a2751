"""The floors `mpc bench --profile` compares each op with, measured in the run itself (docs/performance.md).

- the link: the compute parties exchange an empty array (both ways at once, as an opening does) to time
  one round, and 16 MB to time the bulk throughput, through the same transport every op uses (CurveZMQ
  when the topology has keys);
- the arithmetic: the op's plaintext computation in numpy (`plain_s`, timed by the bench on the very
  inputs).

An op's floor is rounds x round_s + bytes sent per party / throughput + plain_s: what the wire and numpy
would take if the protocol added nothing of its own.
"""

from __future__ import annotations

import statistics
import time

import numpy as np

from protocols.interface.context import Context

PROBE_WORDS = 2_000_000  # 16 MB, the size of mul's opening at 10^6
SMALL_REPEAT = 20
BULK_REPEAT = 4


async def _exchange(ctx: Context, array: np.ndarray) -> float:
    """One opening-like exchange of `array` between the compute parties; its wall time here."""
    op = ctx.party.new_op("probe")
    if ctx.is_dealer:
        return 0.0
    t0 = time.perf_counter()
    peers = [p for p in ctx.compute_parties if p != ctx.name]
    for peer in peers:
        ctx.party.send(peer, op, array)
    for peer in peers:
        await ctx.party.recv(peer, op, dtype=array.dtype, shape=array.shape)
    return time.perf_counter() - t0


async def probe_link(ctx: Context) -> dict[str, float]:
    """round_s (median of small exchanges) and throughput_Bps (best of 16 MB exchanges), per compute party."""
    await ctx.release()
    small = np.zeros(0, dtype=np.uint64)
    rounds = [await _exchange(ctx, small) for _ in range(SMALL_REPEAT)]
    bulk = np.arange(PROBE_WORDS, dtype=np.uint64)
    bulks = []
    for _ in range(BULK_REPEAT):
        await ctx.release()  # each transfer starts together on both ends
        bulks.append(await _exchange(ctx, bulk))
    if ctx.is_dealer:
        return {}
    return {"round_s": statistics.median(rounds), "throughput_Bps": bulk.nbytes / min(bulks)}

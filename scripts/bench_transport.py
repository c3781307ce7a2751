#!/usr/bin/env python
"""Transport benchmark: two parties, each its own OS process, over TCP on loopback.

Measures bulk throughput (8 MiB uint64 arrays), small-message rate (64 B, one per event-loop turn and
coalesced 100 per turn), and the latency of a 1-round exchange (both parties send, then await the other),
as medians over repeats, over CurveZMQ links (or plain TCP with --plain).
Usage: python scripts/bench_transport.py [--repeat R] [--plain] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import platform
import statistics
import time

import numpy as np

from mpc.config import localhost_topology
from mpc.keys import CurveKeys, ephemeral
from mpc.localhost import free_ports
from mpc.runtime import Party, run_party

BULK_BYTES = 8 * 1024 * 1024
BULK_COUNT = 16
SMALL_COUNT = 20_000
ROUNDS = 300


async def bench(party: Party, repeat: int) -> dict[str, list[float]]:
    other = "bank_b" if party.name == "bank_a" else "bank_a"
    sender = party.name == "bank_a"
    out: dict[str, list[float]] = {"bulk_MBps": [], "small_1_per_turn_msgps": [], "small_100_per_turn_msgps": [],
                                   "round_us": []}
    bulk = np.arange(BULK_BYTES // 8, dtype=np.uint64)
    small = np.arange(8, dtype=np.uint64)
    for _ in range(repeat):
        # bulk: A streams arrays, B acknowledges after the last one
        op = party.new_op("bulk")
        t0 = time.perf_counter()
        if sender:
            for i in range(BULK_COUNT):
                party.send(other, op, bulk, step=i)
            await party.recv(other, op, step=BULK_COUNT)
            out["bulk_MBps"].append(BULK_COUNT * BULK_BYTES / (time.perf_counter() - t0) / 1e6)
        else:
            for i in range(BULK_COUNT):
                await party.recv(other, op, step=i)
            party.send(other, op, small, step=BULK_COUNT)
        for per_turn, key in ((1, "small_1_per_turn_msgps"), (100, "small_100_per_turn_msgps")):
            op = party.new_op("small")
            t0 = time.perf_counter()
            if sender:
                for i in range(SMALL_COUNT):
                    party.send(other, op, small, step=i)
                    if (i + 1) % per_turn == 0:
                        await asyncio.sleep(0)
                await party.recv(other, op, step=SMALL_COUNT)
                out[key].append(SMALL_COUNT / (time.perf_counter() - t0))
            else:
                for i in range(SMALL_COUNT):
                    await party.recv(other, op, step=i)
                party.send(other, op, small, step=SMALL_COUNT)
        op = party.new_op("round")
        times = []
        for i in range(ROUNDS):
            t0 = time.perf_counter()
            party.send(other, op, small[:1], step=i)
            await party.recv(other, op, step=i)
            times.append((time.perf_counter() - t0) * 1e6)
        out["round_us"].append(statistics.median(times))
    return out


def _child(topo_json: str, name: str, repeat: int, keys: CurveKeys | None, queue: mp.Queue) -> None:
    from mpc.config import Topology

    topo = Topology.model_validate_json(topo_json)
    outcome = asyncio.run(run_party(topo, name, lambda p: bench(p, repeat), keys=keys))
    queue.put((name, outcome.value))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--plain", action="store_true", help="plain TCP instead of CurveZMQ (the default)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    topo = localhost_topology(2, helper=False, ports=free_ports(2), timeout_s=120)
    keys = dict.fromkeys(topo.names) if args.plain else ephemeral(topo.names)
    ctx = mp.get_context("spawn")
    queue: mp.Queue = ctx.Queue()
    procs = [ctx.Process(target=_child, args=(topo.model_dump_json(), n, args.repeat, keys[n], queue))
             for n in topo.names]
    for p in procs:
        p.start()
    results = dict(queue.get() for _ in procs)
    for p in procs:
        p.join()
    a, b = results["bank_a"], results["bank_b"]
    summary = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "links": "plain TCP" if args.plain else "CurveZMQ",
        "bulk_MBps_8MiB": statistics.median(a["bulk_MBps"]),
        "small_msgps_1_per_turn": statistics.median(a["small_1_per_turn_msgps"]),
        "small_msgps_100_per_turn": statistics.median(a["small_100_per_turn_msgps"]),
        "one_round_exchange_us": statistics.median(a["round_us"] + b["round_us"]),
        "repeat": args.repeat,
    }
    if args.json:
        print(json.dumps(summary))
        return
    print(f"machine: {summary['machine']}; {summary['links']}; medians over {args.repeat} repeats")
    print(f"  8 MiB arrays:                     {summary['bulk_MBps_8MiB']:,.0f} MB/s")
    print(f"  64 B messages, 1 per loop turn:   {summary['small_msgps_1_per_turn']:,.0f} msg/s")
    print(f"  64 B messages, 100 per loop turn: {summary['small_msgps_100_per_turn']:,.0f} msg/s")
    print(f"  1-round exchange:                 {summary['one_round_exchange_us']:,.0f} us")


if __name__ == "__main__":
    main()

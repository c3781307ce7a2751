"""Load benchmark of `mpc serve`: open-loop Poisson arrivals against both banks, latency percentiles.

    python scripts/bench_serve.py                      # starts the service locally (0 and 25 ms), runs all
    python scripts/bench_serve.py --latency-ms 0 --scenario rate --rate 200 --count 2000
    python scripts/bench_serve.py --url http://127.0.0.1:8081 --url http://127.0.0.1:8082 --accounts-csv F

Method. Each scenario sends requests at the times of a Poisson process of the given rate (open loop: a
send never waits for an earlier answer), alternating between the two banks, until `count` requests or
`seconds` have passed; then it waits for the answers still out. A request's latency runs from the time it
was *due* to be sent, not from when the client got round to it, so a slow client or server cannot hide
delay (no coordinated omission). Latencies go into an HDR-style histogram (log-linear buckets, under 1 %
relative error, bounded memory) for p50/p90/p99/max. `one-at-a-time` is closed loop with one client,
`saturation` closed loop with 16 clients of 32 ids each (what the service sustains, micro-batched). The
pool hit rate is the share of the banks' secure batches whose material was dealt before they were issued
(from /metrics, before and after). The client runs on the same machine as the three parties: its CPU
counts against the service's, and the figures are those of a busy shared machine; state its load.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import random
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from parties.fraud import data  # noqa: E402
from parties.serve import metrics  # noqa: E402
from parties.serve.local import start_service  # noqa: E402


class Histogram:
    """HDR-style: values in microseconds, 2^7 linear sub-buckets per power of two (< 0.8 % error)."""

    SUB = 7

    def __init__(self) -> None:
        self.counts: dict[int, int] = {}
        self.total = 0
        self.max = 0.0

    def _index(self, us: int) -> int:
        if us < (1 << self.SUB):
            return us
        exp = us.bit_length() - self.SUB
        return (exp << self.SUB) + (us >> exp)

    def record(self, seconds: float) -> None:
        us = max(0, int(seconds * 1e6))
        i = self._index(us)
        self.counts[i] = self.counts.get(i, 0) + 1
        self.total += 1
        self.max = max(self.max, seconds)

    def percentile(self, p: float) -> float:
        """Seconds below which a share p of the values lie (a bucket's upper edge)."""
        if not self.total:
            return math.nan
        rank = math.ceil(p / 100 * self.total)
        seen = 0
        for i in sorted(self.counts):
            seen += self.counts[i]
            if seen >= rank:
                return min(self._upper(i), self.max * 1e6) / 1e6
        return self.max

    def _upper(self, index: int) -> float:
        if index < (1 << self.SUB):
            return float(index + 1)
        exp = index >> self.SUB
        return float(((index - (exp << self.SUB)) + 1) << exp)


@dataclass
class Result:
    scenario: str
    latency_ms: float
    offered: float
    sent: int
    ok: int
    other: dict[int, int]
    seconds: float
    hist: Histogram
    ids_per_request: int
    hits: float
    misses: float
    rounds: float

    def row(self) -> dict[str, object]:
        batches = self.hits + self.misses
        return {
            "scenario": self.scenario, "latency_ms": self.latency_ms, "offered_rps": round(self.offered, 1),
            "requests": self.sent, "ok": self.ok, "refused": self.other,
            "throughput_rps": round(self.ok / self.seconds, 1),
            "scores_per_s": round(self.ok * self.ids_per_request / self.seconds, 1),
            "p50_ms": round(self.hist.percentile(50) * 1e3, 2), "p90_ms": round(self.hist.percentile(90) * 1e3, 2),
            "p99_ms": round(self.hist.percentile(99) * 1e3, 2), "max_ms": round(self.hist.max * 1e3, 2),
            "pool_hit_rate": round(self.hits / batches, 4) if batches else None, "batches": int(batches),
            "rounds": int(self.rounds),
        }


def scrape(urls: list[str]) -> dict[str, float]:
    out: dict[str, float] = {}
    for url in urls:
        with urllib.request.urlopen(f"{url}/metrics", timeout=10) as r:
            for key, value in metrics.parse(r.read().decode()).items():
                out[key] = out.get(key, 0.0) + value if key != "mpc_serve_rounds" else max(out.get(key, 0.0), value)
    return out


async def run_scenario(name: str, urls: list[str], ids: list[str], latency_ms: float, rate: float | None,
                       count: int, seconds: float, ids_per_request: int, clients: int = 1, seed: int = 1) -> Result:
    rng = random.Random(seed)
    hist = Histogram()
    other: dict[int, int] = {}
    ok = 0
    before = scrape(urls)
    connector = aiohttp.TCPConnector(limit=512)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one(k: int, due: float) -> None:
            nonlocal ok
            url = urls[k % len(urls)]
            pick = [ids[rng.randrange(len(ids))] for _ in range(ids_per_request)]
            body = {"account_id": pick[0]} if ids_per_request == 1 else {"account_ids": list(dict.fromkeys(pick))}
            try:
                async with session.post(f"{url}/v1/score", data=json.dumps(body),
                                        timeout=aiohttp.ClientTimeout(total=60)) as r:
                    await r.read()
                    status = r.status
            except aiohttp.ClientError:
                status = 0
            if status == 200:
                ok += 1
                hist.record(time.perf_counter() - due)
            else:
                other[status] = other.get(status, 0) + 1

        t0 = time.perf_counter()
        tasks = []
        if rate is None:  # closed loop: `clients` requests at a time (1: one at a time)
            next_k = 0

            async def client() -> None:
                nonlocal next_k
                while next_k < count and time.perf_counter() - t0 < seconds:
                    k, next_k = next_k, next_k + 1
                    await one(k, time.perf_counter())

            await asyncio.gather(*(client() for _ in range(clients)))
            sent = next_k
        else:
            due = t0
            for k in range(count):
                due += rng.expovariate(rate)
                if due - t0 > seconds:
                    break
                delay = due - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                tasks.append(asyncio.create_task(one(k, due)))
            sent = len(tasks)
            await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - t0
    after = scrape(urls)
    hits = after.get('mpc_serve_pool_total{result="hit"}', 0) - before.get('mpc_serve_pool_total{result="hit"}', 0)
    misses = after.get('mpc_serve_pool_total{result="miss"}', 0) - before.get('mpc_serve_pool_total{result="miss"}', 0)
    return Result(name, latency_ms, rate or sent / elapsed, sent, ok, other, elapsed, hist, ids_per_request, hits,
                  misses, after.get("mpc_serve_rounds", 0))


SCENARIOS = {
    # name: (arrival rate per s, or None for closed loop; ids per request; clients of a closed loop)
    "one-at-a-time": (None, 1, 1),
    "rate": (200.0, 1, 0),
    "rate-50": (50.0, 1, 0),  # a rate this busy 2-core machine sustains
    "saturation": (None, 32, 16),  # closed loop: as many scores as the service gives, micro-batched
}


async def settle(urls: list[str], timeout_s: float = 120) -> None:
    """Wait until every size class's pool is full again (after start-up or an earlier scenario)."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout_s:
        levels = [v for k, v in scrape(urls).items() if k.startswith("mpc_serve_pool_batches")]
        if levels and min(levels) >= 2:
            await asyncio.sleep(1.0)
            return
        await asyncio.sleep(0.5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency-ms", type=float, action="append", help="emulated one-way latency (repeatable; "
                        "default 0 and 25)")
    parser.add_argument("--scenario", action="append", choices=list(SCENARIOS), help="default: all")
    parser.add_argument("--rate", type=float, help="override the scenario's arrival rate (requests/s)")
    parser.add_argument("--ids-per-request", type=int, help="override the scenario's ids per request")
    parser.add_argument("--count", type=int, default=2000, help="requests at most per scenario")
    parser.add_argument("--seconds", type=float, default=15.0, help="seconds of arrivals at most per scenario")
    parser.add_argument("--accounts", type=int, default=5000)
    parser.add_argument("--url", action="append", help="bench running banks instead of starting them")
    parser.add_argument("--accounts-csv", help="with --url: the accounts.csv to draw ids from")
    parser.add_argument("--serve-arg", action="append", default=[], help="extra `mpc serve` argument (repeatable)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    scenarios = args.scenario or list(SCENARIOS)
    results: list[Result] = []

    def bench(urls: list[str], ids: list[str], latency: float) -> None:
        for name in scenarios:
            rate, per, clients = SCENARIOS[name]
            rate = args.rate if args.rate is not None and rate is not None else rate
            per = args.ids_per_request or per
            asyncio.run(settle(urls))
            count = min(args.count, 500) if name == "one-at-a-time" else args.count
            r = asyncio.run(run_scenario(name, urls, ids, latency, rate, count, args.seconds, per, clients))
            results.append(r)
            if not args.json:
                print(json.dumps(r.row()), flush=True)

    if args.url:
        ids = data.read_accounts(args.accounts_csv).tolist()
        bench(args.url, ids, (args.latency_ms or [0.0])[0])
    else:
        for latency in args.latency_ms or [0.0, 25.0]:
            with tempfile.TemporaryDirectory(prefix="bench-serve-") as tmp:
                dataset = data.generate(args.accounts, 7)
                csv = data.write(dataset, Path(tmp) / "data")
                svc = start_service(Path(tmp), {"bank_a": str(csv), "bank_b": str(csv)}, args.serve_arg,
                                    latency_ms=latency)
                try:
                    svc.wait_healthy()
                    bench([svc.url(b) for b in svc.banks], dataset.accounts.tolist(), latency)
                finally:
                    svc.stop()
    load = os.getloadavg()
    if args.json:
        print(json.dumps({"load_avg": load, "results": [r.row() for r in results]}))
        return
    print(f"\nload average during the run: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} ({os.cpu_count()} cpus)")
    head = f"{'scenario':<14}{'lat ms':>7}{'offered/s':>10}{'ok':>7}{'req/s':>9}{'scores/s':>10}{'p50':>8}{'p90':>8}" \
           f"{'p99':>8}{'max':>8}{'hit':>7}{'rounds':>7}  refused"
    print(head)
    for r in results:
        row = r.row()
        hit = f"{row['pool_hit_rate']:.1%}" if row["pool_hit_rate"] is not None else "-"
        print(f"{r.scenario:<14}{r.latency_ms:>7g}{row['offered_rps']:>10}{r.ok:>7}{row['throughput_rps']:>9}"
              f"{row['scores_per_s']:>10}{row['p50_ms']:>8}{row['p90_ms']:>8}{row['p99_ms']:>8}{row['max_ms']:>8}"
              f"{hit:>7}{row['rounds']:>7}  {r.other or ''}")
    print("latencies in ms from each request's due time (open loop); one-at-a-time is closed loop")


if __name__ == "__main__":
    main()

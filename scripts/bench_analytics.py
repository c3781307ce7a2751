"""Benchmarks of the analytics protocols with the parties as processes over CurveZMQ (docs/analytics.md).

    python scripts/bench_analytics.py psi -p n=1000000 [-p method=ecdh]
    python scripts/bench_analytics.py sort -p n=100000
    python scripts/bench_analytics.py groupby -p n=100000 -p groups=100

Launches `python -m parties launch` on a localhost topology (ephemeral CURVE keys) with this file's program
of that name; prints each party's time inside the program (`seconds`: from the protocol's call to its
result, input sharing of the data included), the whole launch's wall time (process start-up included),
and the rounds and bytes the runtime measured.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parent.parent


async def psi(ctx, n: int = 1000000, reveal: str = "both", method: str = "helper"):  # type: ignore[no-untyped-def]
    """n ids per bank, half of them common; the intersection, then one column of each bank aligned."""
    half = n // 2
    ids = {"bank_a": [f"DE{i:020d}" for i in range(n)],
           "bank_b": [f"DE{i:020d}" for i in range(half, half + n)]}.get(ctx.name)
    start = time.perf_counter()
    al = await ctx.psi(ids, reveal=reveal, method=method)
    found = time.perf_counter() - start
    x = await ctx.input("bank_a", np.ones(n) if ctx.name == "bank_a" else None, align=al)
    y = await ctx.input("bank_b", np.ones(n) if ctx.name == "bank_b" else None, align=al)
    total = await ctx.reveal((x + y).sum())
    return {"seconds_psi": round(found, 3), "seconds": round(time.perf_counter() - start, 3), "size": al.size,
            "check": None if total is None else float(total)}


async def sort(ctx, n: int = 100000):  # type: ignore[no-untyped-def]
    """np.sort of n shared fixed-point values from bank_a, revealed."""
    values = np.random.default_rng(1).normal(size=n) * 1000
    x = await ctx.input("bank_a", values if ctx.name == "bank_a" else None)
    start = time.perf_counter()
    s = np.sort(x)
    await s
    seconds = time.perf_counter() - start
    out = await ctx.reveal(s)
    ok = None if out is None else bool(np.allclose(out, np.sort(values), atol=1e-4))
    return {"seconds": round(seconds, 3), "correct": ok}


async def groupby(ctx, n: int = 100000, groups: int = 100):  # type: ignore[no-untyped-def]
    """Sums of n values into `groups` secret keys (bank_a's keys, bank_b's values)."""
    rng = np.random.default_rng(2)
    keys, values = rng.integers(0, groups, n), rng.normal(size=n)
    k = await ctx.input("bank_a", keys if ctx.name == "bank_a" else None)
    v = await ctx.input("bank_b", values if ctx.name == "bank_b" else None)
    start = time.perf_counter()
    sums = ctx.group_sum(v, k, groups)
    await sums
    seconds = time.perf_counter() - start
    out = await ctx.reveal(sums)
    ok = None if out is None else bool(np.allclose(out, np.bincount(keys, values, groups), atol=1e-2))
    return {"seconds": round(seconds, 3), "correct": ok}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("program", choices=["psi", "sort", "groupby"])
    parser.add_argument("-p", "--param", action="append", default=[], help="KEY=VALUE for the program")
    parser.add_argument("--compute", type=int, default=2)
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    from mpc.localhost import free_ports

    names = [f"bank_{chr(ord('a') + i)}" for i in range(args.compute)] + ["helper"]
    parties = [{"name": n, "role": "helper" if n == "helper" else "compute", "host": "127.0.0.1", "port": p}
               for n, p in zip(names, free_ports(len(names)), strict=True)]
    with tempfile.TemporaryDirectory() as tmp:
        topo = Path(tmp) / "topology.yaml"
        topo.write_text(yaml.safe_dump({"name": "bench", "timeout_s": 120, "parties": parties}))
        cmd = [sys.executable, "-m", "parties", "launch", str(topo), "--program",
               f"{Path(__file__).resolve()}:{args.program}", "--json"]
        for p in args.param:
            cmd += ["-p", p]
        start = time.perf_counter()
        res = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
        wall = time.perf_counter() - start
    if res.returncode:
        sys.exit(res.stderr)
    report = json.loads(res.stdout)
    summary = {p["name"]: {"result": p.get("result"), "wall_s": p.get("wall_s"), "rounds": p.get("rounds"),
                           "bytes_sent": p.get("bytes_sent"), "phases": p.get("phases")}
               for p in report["parties"]}
    print(json.dumps({"launch_wall_s": round(wall, 2), "parties": summary}, indent=1))


if __name__ == "__main__":
    main()

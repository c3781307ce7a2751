#!/usr/bin/env python
"""Rerun the mpc side of issue 25's table (docs/performance.md), optionally with CrypTen beside it.

For each row: `mpc bench` on this host (two banks and the helper as processes, CurveZMQ), medians over
repeats: online seconds, dealing seconds, end to end = online + dealing, rounds. With --crypten-python
(a Python that has CrypTen, e.g. the venv /work/shared/anchors/crypten/setup.sh builds), CrypTen's own
benchmark (its bench.py there, trusted third party dealing on demand) runs each row right after mpc's,
and the ratio CrypTen / mpc end to end is printed. The machine's 1-minute load is printed with each row:
on a shared host, compare only figures of one run.

Usage: python scripts/compare_crypten.py [--rows mul,matmul,lt,relu,lt_dcf,lt_compact] [--repeat 3]
           [--scale 1] [--crypten-python PATH] [--crypten-bench PATH] [--json]
--scale 10 runs the comparisons at 10^6 instead of 10^5.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
from typing import Any

from mpc.localhost import default_topology
from parties.bench_driver import run_bench

# name: (mpc op, method, n, CrypTen op, CrypTen n)
ROWS: dict[str, tuple[str, str, int, str, int]] = {
    "mul": ("mul", "auto", 1_000_000, "mul", 1_000_000),
    "matmul": ("matmul", "auto", 1_000_000, "matmul", 1000),
    "lt": ("lt", "auto", 100_000, "lt", 100_000),
    "relu": ("relu", "auto", 100_000, "relu", 100_000),
    "lt_bits": ("lt", "bits", 100_000, "lt", 100_000),
    "relu_bits": ("relu", "bits", 100_000, "relu", 100_000),
    "lt_dcf": ("lt", "dcf", 100_000, "lt", 100_000),
    "lt_compact": ("lt", "compact", 100_000, "lt", 100_000),
}
DEFAULT_BENCH = "/work/shared/anchors/crypten/bench.py"


def mpc_row(op: str, method: str, n: int, repeat: int) -> dict[str, Any]:
    [rec] = run_bench(default_topology(), [op], n, repeat, method=method)
    return {"online_s": rec["wall_s"], "dealing_s": rec["offline_s"], "e2e_s": rec["wall_s"] + rec["offline_s"],
            "rounds": rec["rounds"], "method": rec["method"], "correct": rec["correct"],
            "bytes_online": rec["bytes_online"], "bytes_offline": rec["bytes_offline"]}


def crypten_row(python: str, bench: str, op: str, n: int, repeat: int) -> dict[str, Any]:
    res = subprocess.run([python, bench, "--provider", "TTP", "--op", op, "--n", str(n), "--reps", str(repeat),
                          "--threads", "1"], capture_output=True, text=True, timeout=1800)
    line = next((ln for ln in res.stdout.splitlines() if ln.startswith("RESULT ")), None)
    if res.returncode != 0 or line is None:
        raise RuntimeError(f"CrypTen {op} {n} failed: {res.stderr[-2000:]}")
    out: dict[str, Any] = json.loads(line.removeprefix("RESULT "))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", default="mul,matmul,lt,relu,lt_dcf,lt_compact")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--scale", type=int, default=1, help="multiply the comparisons' n (10: 10^6)")
    ap.add_argument("--crypten-python", default=None)
    ap.add_argument("--crypten-bench", default=DEFAULT_BENCH)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    results = []
    for name in args.rows.split(","):
        op, method, n, c_op, c_n = ROWS[name]
        if op in ("lt", "relu"):
            n, c_n = n * args.scale, c_n * args.scale
        row: dict[str, Any] = {"row": name, "op": op, "n": n, "load_1m": os.getloadavg()[0],
                               **mpc_row(op, method, n, args.repeat)}
        if args.crypten_python:
            c = crypten_row(args.crypten_python, args.crypten_bench, c_op, c_n, args.repeat)
            row.update(crypten_s=c["median_s"], crypten_rounds=c["rounds_total"][0],
                       ratio=c["median_s"] / row["e2e_s"])
        results.append(row)
        if not args.json:
            extra = (f" | CrypTen TTP {row['crypten_s']:.3f} s | ratio {row['ratio']:.2f}x"
                     if "crypten_s" in row else "")
            print(f"{name:<11} n={n:>9,} {row['method']:<8} rounds {row['rounds']:>2} | online {row['online_s']:.3f} s"
                  f" | dealing {row['dealing_s']:.3f} s | e2e {row['e2e_s']:.3f} s{extra} | load {row['load_1m']:.1f}"
                  f"{'' if row['correct'] else ' | WRONG'}", flush=True)
    if args.json:
        print(json.dumps(results))
    else:
        print(f"(medians over {args.repeat} repeats; e2e = online + dealing; CrypTen: op and reveal, TTP dealing)")


if __name__ == "__main__":
    main()

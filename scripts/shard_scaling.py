"""Sharded parties on this host: 1 against N workers per party, the coordination overhead, a cost model.

    python scripts/shard_scaling.py [--accounts 4000,16000] [--workers 1,2] [--epochs 2] [--json]

Measures, printing the machine (CPU, cores, load average) first:

1. The party-local collectives through a coordinator's hub (mpc/shards.py: ZeroMQ ipc, the arrays
   serialised both ways), 2 shards, per size: the median seconds of one `sum` (what data-parallel
   training does twice per step, on ~400 gradient or weight words) and of a `concat` of a shard's flags
   and score shares (what sharded scoring does once, 16 bytes per row).
2. `mpc demo fraud --plaintext-model` (scoring) for every --accounts x --workers: online and dealer time,
   end to end; and `mpc demo fraud` (training on shares, then scoring) at the first --accounts.
3. A cost model from (1) and (2): scoring costs s0 + n c / W + hub(n / W) on W = K x C shards per party
   (c: core-seconds per row of one shard, dealing and online; s0: start-up), training with the global
   batch growing with the shards (B = 128 per shard, the usual data-parallel rule) costs
   s0 + epochs n_train / (128 W) (t_step + 2 hub(417 words)). It predicts 10^7 and 10^8 accounts on K hosts
   x C cores per bank, and is checked against the largest run here (fitted on the smallest).

What two shared cores can and cannot show: every party (2 banks and the helper) runs its N shards as
processes on the same 2 cores, so N = 2 cannot run faster than N = 1 here (6 busy processes on 2 cores
instead of 3); what it shows is that the sharded run gives the same results, what the coordination costs,
and how the per-shard work divides (each shard's rows and traffic are half).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from mpc.shards import Hub, HubLink

ROOT = Path(__file__).resolve().parent.parent
GRAD_WORDS = 417  # the fraud MLP's weights and biases: (16 + 1) 16 + (16 + 1) 8 + (8 + 1) 1


def machine() -> dict[str, Any]:
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor())
    return {"cpu": model, "cores": os.cpu_count(), "load_avg": os.getloadavg()}


async def _hub_seconds(kind: str, words: int, repeat: int) -> float:
    hub = Hub(2)
    hub.start()
    links = [HubLink(hub.address, i) for i in range(2)]
    times = []
    try:
        for key in range(1, repeat + 1):
            arrays = [np.arange(words, dtype=np.uint64) + i for i in range(2)]
            t0 = time.perf_counter()
            await asyncio.gather(*(link.exchange(key, kind, 0, a, 0) for link, a in zip(links, arrays, strict=True)))
            times.append(time.perf_counter() - t0)
    finally:
        for link in links:
            link.close()
        hub.close()
    return statistics.median(times)


def hub_costs(repeat: int) -> list[dict[str, Any]]:
    out = []
    for kind, words in (("sum", GRAD_WORDS), ("broadcast", GRAD_WORDS), ("concat", 2 * 10**4), ("concat", 2 * 10**5),
                        ("concat", 2 * 10**6)):
        out.append({"kind": kind, "words": words, "bytes": 8 * words,
                    "seconds": asyncio.run(_hub_seconds(kind, words, repeat))})
    return out


def demo(accounts: int, workers: int, train: bool, epochs: int) -> dict[str, Any]:
    args = [sys.executable, "-m", "parties", "demo", "fraud", "--accounts", str(accounts), "--workers", str(workers),
            "--json"]
    args += ["--epochs", str(epochs)] if train else ["--plaintext-model"]
    t0 = time.perf_counter()
    res = subprocess.run(args, capture_output=True, text=True, cwd=ROOT, timeout=3600)
    if res.returncode != 0:
        raise RuntimeError(f"demo failed ({accounts} accounts, {workers} workers): {res.stderr[-2000:]}")
    report = json.loads(res.stdout)
    report["measured_s"] = time.perf_counter() - t0
    report["load_avg"] = os.getloadavg()
    return report


def per_hub_second(hub: list[dict[str, Any]]) -> float:
    """Seconds per byte of a concat through the hub (the largest size measured)."""
    big = max((h for h in hub if h["kind"] == "concat"), key=lambda h: h["bytes"])
    return float(big["seconds"] / big["bytes"])


def model(scoring: list[dict[str, Any]], training: list[dict[str, Any]], hub: list[dict[str, Any]]) -> dict[str, Any]:
    """Fit the cost model on the smallest unsharded run; predict the others and 10^7 / 10^8 accounts."""
    one = sorted((r for r in scoring if r["workers"] == 1), key=lambda r: r["accounts"])
    small = one[0]
    work = small["wall_s"] + small["dealer_s"]
    c_row = work / small["accounts"]  # seconds per row for one shard of each party (one core each)
    s0 = max(small["end_to_end_s"] - work, 0.0)
    per_byte = per_hub_second(hub)
    grad = next(h["seconds"] for h in hub if h["kind"] == "sum")
    bcast = next(h["seconds"] for h in hub if h["kind"] == "broadcast")

    def score_s(n: float, w: int) -> float:
        return s0 + n * c_row / w + (16 * n / w * per_byte if w > 1 else 0.0)

    checks = [{"accounts": r["accounts"], "workers": r["workers"], "measured_s": r["end_to_end_s"],
               "predicted_s": score_s(r["accounts"], r["workers"])} for r in scoring]
    out: dict[str, Any] = {"c_row_s": c_row, "startup_s": s0, "hub_s_per_byte": per_byte, "hub_sum_s": grad,
                           "hub_broadcast_s": bcast, "checks": checks}
    t1 = next((t for t in training if t["workers"] == 1), None)
    if t1 is not None:
        t_step = (t1["train_online_s"] + t1["train_dealer_s"]) / t1["train_steps"]
        out["train_step_s"] = t_step
        out["train_coordination_per_step_s"] = grad + bcast
        out["train_coordination_share"] = (grad + bcast) / (t_step + grad + bcast)
    predictions = []
    for n in (10**7, 10**8):
        for hosts, cores in ((1, 8), (4, 16), (16, 32)):
            w = hosts * cores
            row: dict[str, Any] = {"accounts": n, "hosts": hosts, "cores": cores, "shards": w,
                                   "score_s": score_s(n, w)}
            if t1 is not None:
                steps = 5 * (n / 2) / (128 * w)  # 5 epochs on half the accounts, 128 rows per shard and step
                row["train_s"] = s0 + steps * (out["train_step_s"] + grad + bcast)
            predictions.append(row)
    out["predictions"] = predictions
    # a shard's work at 10^6 rows against what coordinating it costs (the scoring's one concat; training's
    # two collectives per step against the step)
    out["overhead_at_1e6_rows_scoring"] = 16e6 * per_byte / (1e6 * c_row)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--accounts", default="4000,16000")
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=9)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    sizes = [int(a) for a in args.accounts.split(",")]
    workers = [int(w) for w in args.workers.split(",")]
    report: dict[str, Any] = {"machine": machine(), "hub": hub_costs(args.repeat)}
    if not args.json:
        print(json.dumps(report["machine"]))
        for h in report["hub"]:
            print(f"hub {h['kind']:<9} {h['bytes']:>12,} bytes: {h['seconds'] * 1000:8.2f} ms")
    scoring, training = [], []
    for n in sizes:
        for w in workers:
            r = demo(n, w, False, args.epochs)
            scoring.append({"accounts": n, "workers": w, "wall_s": r["wall_s"], "dealer_s": r["dealer_s"],
                            "end_to_end_s": r["end_to_end_s"], "flags_match_plaintext": r["flags_match_plaintext"],
                            "load_avg": r["load_avg"]})
            if not args.json:
                print(f"scoring {n:>7,} accounts, {w} workers: online {r['wall_s']:.2f} s, "
                      f"dealer {r['dealer_s']:.2f} s, end to end {r['end_to_end_s']:.1f} s, "
                      f"flags match: {r['flags_match_plaintext']}, "
                      f"load {r['load_avg'][0]:.1f}")
    for w in workers:
        r = demo(sizes[0], w, True, args.epochs)
        training.append({"accounts": sizes[0], "workers": w, "auc": r["auc_secure"], "train_steps": r["train_steps"],
                         "train_online_s": r["train_online_s"], "train_dealer_s": r["train_dealer_s"],
                         "end_to_end_s": r["end_to_end_s"], "load_avg": r["load_avg"]})
        if not args.json:
            print(f"training {sizes[0]:,} accounts, {w} workers: AUC {r['auc_secure']:.4f}, {r['train_steps']} steps, "
                  f"online {r['train_online_s']:.2f} s, dealer {r['train_dealer_s']:.2f} s, "
                  f"end to end {r['end_to_end_s']:.1f} s, load {r['load_avg'][0]:.1f}")
    report.update(scoring=scoring, training=training, model=model(scoring, training, report["hub"]))
    if args.json:
        print(json.dumps(report))
        return
    m = report["model"]
    print(f"model: {m['c_row_s'] * 1e6:.1f} us per row per shard, start-up {m['startup_s']:.1f} s, hub "
          f"{m['hub_s_per_byte'] * 1e9:.2f} ns per byte; scoring's coordination at 10^6 rows per shard: "
          f"{100 * m['overhead_at_1e6_rows_scoring']:.3f} % of the shard's work")
    if "train_step_s" in m:
        coordination = m["train_coordination_per_step_s"] * 1000
        print(f"training: {m['train_step_s'] * 1000:.1f} ms per step, coordination {coordination:.2f} ms per step"
              f" ({100 * m['train_coordination_share']:.1f} %)")
    for c in m["checks"]:
        print(f"check {c['accounts']:>7,} accounts x {c['workers']}: measured {c['measured_s']:.1f} s, "
              f"predicted {c['predicted_s']:.1f} s")
    for p in m["predictions"]:
        print(f"predict {p['accounts']:.0e} accounts on {p['hosts']} x {p['cores']} cores per bank: scoring "
              f"{p['score_s'] / 60:.1f} min" + (f", training {p['train_s'] / 3600:.2f} h" if "train_s" in p else ""))


if __name__ == "__main__":
    main()

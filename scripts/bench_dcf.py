"""DCF key generation and evaluation speed beside the AES floor, measured in the same run.

    python scripts/bench_dcf.py [--n 10000,100000,1000000] [--repeat 5] [--width 1] [--json]
    python scripts/bench_dcf.py --workers 1,2 [--n 100000] [--repeat 5] [--width 1] [--json]

Prints, per n: keys/s for gen (both parties' keys) and for eval (one party), in the dealer's chunks of
DCF_CHUNK keys as `mpc` deals and evaluates them, the AES-128 rate in blocks/s
through the same `cryptography` call pattern (one ECB encryptor, update_into on preallocated buffers of
the size one level of one block of keys uses), and the ratio of each to the AES floor: the keys/s the
construction would reach if AES were the only cost (blocks per key from the construction). Medians over
repeats (wall clock; per CPU-second of this process beside it, less disturbed on a shared machine); the
machine (CPU model, cores, load average) is printed first.

Beside them, the same for the compact DCF (dcf.gen_bit / eval_bit: XOR shares of [x < alpha], early
termination; its key size and AES blocks per key do not depend on --width), on the same alphas and xs.

With --workers, instead: gen keys/s per number of worker processes (mpc/workers.py; 1 = in this process),
in the dealer's chunks as the helper with `dealer_workers` generates them (wall clock: the work is in other
processes), and how long the workers took to boot (not in the keys/s).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time

import numpy as np

from mpc.prg import random_ring
from mpc.workers import WorkerPool
from protocols.primitives import dcf
from protocols.primitives.gates import DCF_CHUNK

BITS = 63


def machine() -> str:
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            model = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    return (f"{model}, {os.cpu_count()} cores, Python {platform.python_version()}, numpy {np.__version__}, "
            f"load average {load[0]:.2f}")


def aes_blocks_per_s(repeat: int) -> float:
    """Blocks/s of fixed-key AES-ECB as dcf uses it: one encryptor, update_into, one level's buffer."""
    mmo = dcf._Mmo()
    x = random_ring((3 * 2 * dcf.BLOCK, 2))
    out = np.empty(x.size + 2, dtype=np.uint64)
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        for _ in range(64):
            mmo(x, out)
        times.append(time.perf_counter() - t0)
    return 64 * x.shape[0] / statistics.median(times)


def blocks_per_key(width: int) -> tuple[int, int]:
    """AES blocks per key: gen (both parties, every level, convert), eval (one party, its path)."""
    per_level = 2 + (1 if width == 1 else width)
    convert = max(1, (width + 1) // 2)
    gen = 2 * (BITS * per_level + convert)
    evaluation = BITS * (1 + dcf._payload_blocks(width)) + convert
    return gen, evaluation


def bit_blocks_per_key() -> tuple[int, int]:
    """AES blocks per compact key: gen (both parties, two children per level, convert), eval (one party)."""
    depth = BITS - dcf.NU
    return 2 * (2 * depth + 1), depth + 1


def run(n: int, width: int, repeat: int) -> dict[str, float]:
    alpha = random_ring((n,)) >> np.uint64(1)
    beta = random_ring((n, width))
    seeds = random_ring((n, 2)), random_ring((n, 2))
    x = random_ring((n,)) >> np.uint64(1)
    chunks = [slice(lo, min(n, lo + DCF_CHUNK)) for lo in range(0, n, DCF_CHUNK)]
    gen_t: list[float] = []
    eval_t: list[float] = []
    gen_cpu: list[float] = []
    eval_cpu: list[float] = []
    bit_gen_t: list[float] = []
    bit_eval_t: list[float] = []
    for _ in range(repeat):
        times = np.zeros(4)
        bit_times = np.zeros(2)
        for c in chunks:  # one chunk's keys alive at a time, as the dealer sends and drops them
            t0, c0 = time.perf_counter(), time.process_time()
            k0, k1 = dcf.gen(alpha[c], beta[c], BITS, seeds[0][c], seeds[1][c])
            t1, c1 = time.perf_counter(), time.process_time()
            y0 = dcf.eval_dcf(0, k0, x[c])
            times += (t1 - t0, time.perf_counter() - t1, c1 - c0, time.process_time() - c1)
            if not np.array_equal(y0 + dcf.eval_dcf(1, k1, x[c]), np.where((x[c] < alpha[c])[:, None], beta[c], 0)):
                raise SystemExit("DCF output wrong: the benchmark measured a broken build")
            del k0, k1
            t0 = time.perf_counter()
            b0, b1 = dcf.gen_bit(alpha[c], BITS, seeds[0][c], seeds[1][c])
            t1 = time.perf_counter()
            z0 = dcf.eval_bit(0, b0, x[c])
            bit_times += (t1 - t0, time.perf_counter() - t1)
            if not np.array_equal(z0 ^ dcf.eval_bit(1, b1, x[c]), x[c] < alpha[c]):
                raise SystemExit("compact DCF output wrong: the benchmark measured a broken build")
            del b0, b1
        for acc, value in zip((gen_t, eval_t, gen_cpu, eval_cpu), times, strict=True):
            acc.append(float(value))
        bit_gen_t.append(float(bit_times[0]))
        bit_eval_t.append(float(bit_times[1]))
    return {"n": n, "gen_keys_per_s": n / statistics.median(gen_t), "eval_per_s": n / statistics.median(eval_t),
            "gen_keys_per_cpu_s": n / statistics.median(gen_cpu), "eval_per_cpu_s": n / statistics.median(eval_cpu),
            "bit_gen_keys_per_s": n / statistics.median(bit_gen_t),
            "bit_eval_per_s": n / statistics.median(bit_eval_t)}


def run_workers(n: int, width: int, repeat: int, counts: list[int]) -> list[dict[str, float]]:
    """gen keys/s with each number of worker processes, on the same inputs; the words checked against the
    in-process gen's (one chunk)."""
    alpha = random_ring((n,)) >> np.uint64(1)
    beta = random_ring((n, width))
    seeds = random_ring((n, 2)), random_ring((n, 2))
    chunks = [slice(lo, min(n, lo + DCF_CHUNK)) for lo in range(0, n, DCF_CHUNK)]
    want = dcf.gen(alpha[chunks[0]], beta[chunks[0]], BITS, seeds[0][chunks[0]], seeds[1][chunks[0]])[0].words
    rows = []
    for count in counts:
        pool = WorkerPool(count, "bench").start() if count > 1 else None
        boot = 0.0
        try:
            if pool is not None:
                pool.warm(dcf.gen)
                boot = pool.wait_ready()
            times = []
            for _ in range(repeat):
                t0 = time.perf_counter()
                for c in chunks:  # one chunk's keys alive at a time, as the dealer sends and drops them
                    k0, _ = dcf.gen(alpha[c], beta[c], BITS, seeds[0][c], seeds[1][c], workers=pool)
                    if c is chunks[0] and not np.array_equal(k0.words, want):
                        raise SystemExit(f"DCF keys from {count} workers differ: the benchmark measured a broken build")
                    del k0
                times.append(time.perf_counter() - t0)
        finally:
            if pool is not None:
                pool.close()
        rows.append({"n": n, "workers": count, "gen_keys_per_s": n / statistics.median(times), "boot_s": boot})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", default="10000,100000,1000000")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--width", type=int, default=1, help="payload words: 1 comparison, 2 relu")
    ap.add_argument("--workers", default=None, help="e.g. 1,2: gen keys/s per number of worker processes")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if args.workers:
        rows = [row for n in (int(v) for v in args.n.split(","))
                for row in run_workers(n, args.width, args.repeat, [int(w) for w in args.workers.split(",")])]
        if args.json:
            print(json.dumps({"machine": machine(), "rows": rows}))
            return
        print(f"machine: {machine()}")
        print(f"{'n':>10} {'workers':>8} {'gen keys/s':>12} {'boot s':>8}")
        for r in rows:
            print(f"{r['n']:>10,} {r['workers']:>8} {r['gen_keys_per_s'] / 1e3:>10.0f} k {r['boot_s']:>8.2f}")
        return
    aes = aes_blocks_per_s(args.repeat)
    gen_blocks, eval_blocks = blocks_per_key(args.width)
    bit_gen_blocks, bit_eval_blocks = bit_blocks_per_key()
    rows = []
    for n in (int(v) for v in args.n.split(",")):
        row = run(n, args.width, max(1, args.repeat if n < 10**6 else min(args.repeat, 3)))
        row["gen_ratio_to_aes_floor"] = row["gen_keys_per_s"] / (aes / gen_blocks)
        row["eval_ratio_to_aes_floor"] = row["eval_per_s"] / (aes / eval_blocks)
        row["bit_gen_ratio_to_aes_floor"] = row["bit_gen_keys_per_s"] / (aes / bit_gen_blocks)
        row["bit_eval_ratio_to_aes_floor"] = row["bit_eval_per_s"] / (aes / bit_eval_blocks)
        rows.append(row)
    key_bytes = 8 * dcf.words_per_key(BITS, args.width)
    bit_key_bytes = 8 * dcf.bit_words_per_key(BITS)
    if args.json:
        print(json.dumps({"machine": machine(), "aes_blocks_per_s": aes, "key_bytes_per_party": key_bytes,
                          "bit_key_bytes_per_party": bit_key_bytes, "rows": rows}))
        return
    print(f"machine: {machine()}")
    print(f"AES-128 (cryptography, ECB update_into, one core): {aes / 1e6:.0f} M blocks/s; {BITS}-bit keys, "
          f"payload {args.width} word(s), {key_bytes} B per party; AES blocks per key: gen {gen_blocks} "
          f"(floor {aes / gen_blocks / 1e3:.0f} k keys/s), eval {eval_blocks} "
          f"(floor {aes / eval_blocks / 1e3:.0f} k/s)")
    print(f"compact DCF (1-bit XOR output, early termination): {bit_key_bytes} B per party; AES blocks per key: "
          f"gen {bit_gen_blocks} (floor {aes / bit_gen_blocks / 1e3:.0f} k keys/s), eval {bit_eval_blocks} "
          f"(floor {aes / bit_eval_blocks / 1e3:.0f} k/s)")
    print(f"{'n':>10} {'gen keys/s':>12} {'of floor':>9} {'eval /s':>12} {'of floor':>9}   "
          f"{'gen /cpu-s':>11} {'eval /cpu-s':>11}   {'bit gen/s':>11} {'of floor':>9} {'bit eval/s':>11} "
          f"{'of floor':>9}")
    for r in rows:
        print(f"{r['n']:>10,} {r['gen_keys_per_s'] / 1e3:>10.0f} k {r['gen_ratio_to_aes_floor']:>8.1%} "
              f"{r['eval_per_s'] / 1e3:>10.0f} k {r['eval_ratio_to_aes_floor']:>8.1%}   "
              f"{r['gen_keys_per_cpu_s'] / 1e3:>9.0f} k {r['eval_per_cpu_s'] / 1e3:>9.0f} k   "
              f"{r['bit_gen_keys_per_s'] / 1e3:>9.0f} k {r['bit_gen_ratio_to_aes_floor']:>8.1%} "
              f"{r['bit_eval_per_s'] / 1e3:>9.0f} k {r['bit_eval_ratio_to_aes_floor']:>8.1%}")


if __name__ == "__main__":
    main()

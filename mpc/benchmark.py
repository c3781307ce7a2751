"""`mpc bench`: run the bench program on every party as separate processes and summarise the records.

Aggregation (per op and repeat): rounds = deepest output depth minus the depth at which every party had
the inputs; bytes_online and messages = the largest compute party's; bytes_offline = what the helper
sent; wall_s = the slowest compute party's online time. Medians (and min, max) over repeats.
"""

from __future__ import annotations

import statistics
import tempfile
from collections import defaultdict
from pathlib import Path
from typing import Any

import yaml

from mpc.config import Topology, localhost_topology
from mpc.launcher import launch


def free_ports(n: int) -> list[int]:
    import socket

    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def default_topology() -> Topology:
    """The built-in localhost topology of two banks and the helper, on free ports."""
    return localhost_topology(2, helper=True, ports=free_ports(3), timeout_s=120)


def run_bench(topology: Topology, ops: list[str], n: int, repeat: int, latency_ms: float | None = None,
              bandwidth_mbps: float | None = None, method: str = "auto", debug: bool = False) -> list[dict[str, Any]]:
    """Launch every party of `topology` on this host with the bench program; return one record per op."""
    topo = topology.with_network(latency_ms, bandwidth_mbps)
    with tempfile.TemporaryDirectory(prefix="mpc-bench-") as tmp:
        path = Path(tmp) / "topology.yaml"
        path.write_text(yaml.safe_dump(topo.model_dump(mode="json"), sort_keys=False))
        args = ["--program", "bench", "-p", f"ops={','.join(ops)}", "-p", f"n={n}", "-p", f"repeat={repeat}",
                "-p", f"method={method}"]
        results = launch(str(path), topo.names, args, global_args=["--debug"] if debug else [], sink=None)
    failed = [r for r in results if r.returncode != 0 or r.output is None]
    if failed:
        detail = "\n".join(f"{r.name} (exit {r.returncode}): " + "\n  ".join(r.stderr_tail[-5:]) for r in failed)
        raise RuntimeError(f"benchmark parties failed:\n{detail}")
    per_party = {r.name: r.output["result"] for r in results if r.output is not None}
    return summarise(per_party, topo)


def summarise(per_party: dict[str, list[dict[str, Any]]], topo: Topology) -> list[dict[str, Any]]:
    by_op: dict[str, list[list[dict[str, Any]]]] = defaultdict(list)
    n_records = len(next(iter(per_party.values())))
    for i in range(n_records):
        group = [records[i] for records in per_party.values()]
        by_op[group[0]["op"]].append(group)
    out = []
    link = topo.link(topo.names[0], topo.names[1])
    for op, reps in by_op.items():
        rounds, walls, online, offline, messages, correct, offline_s = [], [], [], [], [], [], []
        for group in reps:
            compute = [r for r in group if r["role"] == "compute"]
            helper = [r for r in group if r["role"] == "helper"]
            rounds.append(max(r["end_depth"] for r in compute) - max(r["start_depth"] for r in compute))
            walls.append(max(r["wall_s"] for r in compute))
            online.append(max(r["bytes_online"] for r in compute))
            messages.append(max(r["messages"] for r in compute))
            offline.append(sum(r["bytes_offline_sent"] for r in helper))
            offline_s.append(max(r["offline_s"] for r in group))
            correct.append(all(r["correct"] for r in compute))
        wall = statistics.median(walls)
        n = reps[0][0]["n"]
        offline_med = statistics.median(offline_s)
        out.append({
            "op": op, "n": n, "method": reps[0][0]["method"], "parties": len(topo.compute_parties),
            "latency_ms": link.latency_ms, "bandwidth_mbps": link.bandwidth_mbps,
            "rounds": max(rounds), "bytes_online": max(online), "bytes_offline": max(offline),
            "messages": max(messages), "wall_s": wall, "wall_s_min": min(walls), "wall_s_max": max(walls),
            "offline_s": offline_med, "ops_per_s": n / wall if wall > 0 else None,
            "dealer_per_s": n / offline_med if offline_med > 0 else None,
            "dealer_bytes_per_op": max(offline) / n if n else None,
            "repeat": len(reps), "correct": all(correct),
        })
    return out

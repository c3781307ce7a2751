"""`mpc bench`: run the bench program on every party as separate processes and summarise the records.

Aggregation (per op and repeat): rounds = deepest output depth minus the depth at which every party had
the inputs; bytes_online and messages = the largest compute party's; bytes_offline = what the helper
sent; wall_s = from the moment the last compute party started the online phase to the moment the last
one finished (wall-clock stamps; all parties run on this host). Medians (and min, max) over repeats.

Latency model: across the latencies run, wall = a + rounds x L + bytes / bandwidth, with the intercept a
(local compute) fitted per op and method as the mean residual; `predicted_wall_s` is the model's value and
`fitted_s_per_ms` the least-squares slope of wall against L, which should equal rounds / 1000.
"""

from __future__ import annotations

import os
import statistics
import tempfile
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from mpc.config import Topology
from mpc.localhost import secured, write_topology
from mpc.settings import Comparison
from parties.launcher import failure_summary, launch
from parties.profile_report import summarise_profile

Record = dict[str, Any]


def run_bench(topology: Topology, ops: Sequence[str], n: int, repeat: int, latencies: Sequence[float | None] = (None,),
              bandwidth_mbps: float | None = None, method: str = Comparison.AUTO, debug: bool = False,
              prefixes: Mapping[str, Sequence[str]] | None = None,
              on_progress: Callable[[float | None], None] | None = None, profile: bool = False) -> list[Record]:
    """Launch every party of `topology` on this host with the bench program, once per latency."""
    records: list[Record] = []
    for latency in latencies:
        topo = topology.with_network(latency, bandwidth_mbps)
        with tempfile.TemporaryDirectory(prefix="mpc-bench-") as tmp:
            path = write_topology(secured(topo, Path(tmp)), Path(tmp) / "topology.yaml")
            args = ["--program", "bench", "-p", f"ops={','.join(ops)}", "-p", f"n={n}", "-p", f"repeat={repeat}",
                    "-p", f"method={method}", *(["-p", "profile=1"] if profile else [])]
            results = launch(str(path), topo.names, args, global_args=["--debug"] if debug else [], sink=None,
                             prefixes=prefixes)
        if any(not r.ok for r in results):
            raise RuntimeError(failure_summary(results))  # as `mpc launch` reports it
        per_party = {r.name: r.output.result for r in results if r.output is not None}
        records += summarise(per_party, topo)
        if on_progress is not None:
            on_progress(latency)
    return fit_latency_model(records)


def summarise(per_party: dict[str, list[Record]], topo: Topology) -> list[Record]:
    by_op: dict[str, list[list[Record]]] = defaultdict(list)
    n_records = len(next(iter(per_party.values())))
    for i in range(n_records):
        group = [records[i] for records in per_party.values()]
        by_op[group[0]["op"]].append(group)
    out = []
    compute = [p.name for p in topo.compute_parties]
    link = topo.link(compute[0], compute[1 % len(compute)])
    for op, reps in by_op.items():
        rounds, walls, online, offline, messages, correct, offline_s = [], [], [], [], [], [], []
        for group in reps:
            parties = [r for r in group if r["role"] == "compute"]
            helper = [r for r in group if r["role"] == "helper"]
            rounds.append(max(r["end_depth"] for r in parties) - max(r["start_depth"] for r in parties))
            walls.append(max(r["t_end"] for r in parties) - max(r["t_start"] for r in parties))
            online.append(max(r["bytes_online"] for r in parties))
            messages.append(max(r["messages"] for r in parties))
            offline.append(sum(r["bytes_offline_sent"] for r in helper))
            offline_s.append(max(r["offline_s"] for r in group))
            correct.append(all(r["correct"] for r in parties))
        wall = statistics.median(walls)
        offline_med = statistics.median(offline_s)
        n = reps[0][0]["n"]
        out.append({
            "op": op, "n": n, "method": reps[0][0]["method"], "parties": len(compute),
            "latency_ms": link.latency_ms, "bandwidth_mbps": link.bandwidth_mbps,
            "rounds": max(rounds), "bytes_online": max(online), "bytes_offline": max(offline),
            "messages": max(messages), "wall_s": wall, "wall_s_min": min(walls), "wall_s_max": max(walls),
            "offline_s": offline_med, "ops_per_s": n / wall if wall > 0 else None,
            "dealer_per_s": n / offline_med if offline_med > 0 else None,
            "dealer_bytes_per_op": max(offline) / n if n else None,
            "repeat": len(reps), "correct": all(correct),
        })
        out[-1]["peak_rss_mb"] = {r["party"]: max(g[j]["peak_rss_mb"] for g in reps)
                                  for j, r in enumerate(reps[0]) if "peak_rss_mb" in r}
        out[-1]["peak_material_mb"] = {r["party"]: max(g[j]["peak_material_mb"] for g in reps)
                                       for j, r in enumerate(reps[0]) if "peak_material_mb" in r}
        if "online_serial_s" in reps[0][0]:  # streamed in chunks (parties/bench.py): the overlap of dealing
            online_serial = statistics.median(max(r["online_serial_s"] for r in g) for g in reps)
            out[-1].update({"chunks": reps[0][0]["chunks"], "online_serial_s": online_serial,
                            "end_to_end_s": wall,
                            "overlap_ratio": wall / max(online_serial, offline_med)})
        if "profile" in reps[0][0] or "profile" in reps[0][-1]:  # --profile (parties/profile_report.py)
            out[-1]["profile"] = summarise_profile(reps, max(rounds), max(online))
        steps = reps[0][0].get("steps")
        if steps:  # training ops (parties/bench.py): per SGD step
            out[-1].update({"steps": steps, "rounds_per_step": max(rounds) / steps, "steps_per_s": steps / wall,
                            "bytes_online_per_step": max(online) / steps,
                            "bytes_offline_per_step": max(offline) / steps})
    return out


def _transfer_s(r: Record) -> float:
    bw = r.get("bandwidth_mbps")
    return r["bytes_online"] * 8 / (bw * 1e6) if bw else 0.0


def fit_latency_model(records: list[Record]) -> list[Record]:
    """Add predicted_wall_s (a + rounds x L + bytes / bandwidth) and fitted_s_per_ms to each record."""
    groups: dict[tuple[str, str], list[Record]] = defaultdict(list)
    for r in records:
        groups[(r["op"], r["method"])].append(r)
    for rs in groups.values():
        residuals = [r["wall_s"] - r["rounds"] * r["latency_ms"] / 1000 - _transfer_s(r) for r in rs]
        intercept = statistics.fmean(residuals)
        slope = None
        lats = [r["latency_ms"] for r in rs]
        if len(set(lats)) > 1:
            mean_l, mean_w = statistics.fmean(lats), statistics.fmean(r["wall_s"] for r in rs)
            num = sum((r["latency_ms"] - mean_l) * (r["wall_s"] - mean_w) for r in rs)
            slope = num / sum((lat - mean_l) ** 2 for lat in lats)
        for r in rs:
            r["fitted_points"] = len(set(lats))  # a slope from fewer than 3 latencies is marked rough
            r["model_intercept_s"] = intercept
            r["predicted_wall_s"] = intercept + r["rounds"] * r["latency_ms"] / 1000 + _transfer_s(r)
            r["fitted_s_per_ms"] = slope
    return records


def resolve_auto(records: Sequence[Record], has_methods: Mapping[str, bool]) -> dict[str, str]:
    """Per op, the method `auto` chose in `records` (ops that take a comparison method), or auto (the
    others): what the rest of a latency sweep runs, so that each op's line is one method."""
    chosen = {r["op"]: r["method"] for r in records}
    return {op: chosen[op] if has_methods[op] and chosen.get(op) in set(Comparison) else Comparison.AUTO
            for op in has_methods}


# Line style of each method in the plot (the model's lines are thin and dashed)
LINE_STYLES = {"dcf": "-", "compact": "-.", "bits": ":"}
MARKERS = {"dcf": "o", "compact": "s", "bits": "^"}


def check_plot(path: str) -> None:
    """Raise RuntimeError now if `plot` could not write `path` later: before a long benchmark, not after."""
    _pyplot()
    target = Path(path)
    if target.is_dir():
        raise RuntimeError(f"--plot: {path} is a directory; give a file name such as {target / 'latency.png'}")
    parent = target.parent
    if not parent.is_dir():
        raise RuntimeError(f"--plot: {path}: the directory {parent} does not exist")
    if not os.access(parent, os.W_OK | os.X_OK) or (target.exists() and not os.access(target, os.W_OK)):
        raise RuntimeError(f"--plot: {path}: not writable (permission denied)")


def _pyplot() -> Any:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise RuntimeError("--plot needs matplotlib: pip install 'mpc[plot]'") from exc
    return plt


def plot(records: list[Record], path: str) -> None:
    """Wall time against latency per op and method, labelled with the measured rounds, with the model."""
    plt = _pyplot()
    groups: dict[tuple[str, str], list[Record]] = defaultdict(list)
    for r in records:
        groups[(r["op"], r["method"])].append(r)
    fig, ax = plt.subplots(figsize=(8, 5), dpi=110)
    for (op, method), rs in sorted(groups.items()):
        rs = sorted(rs, key=lambda r: r["latency_ms"])
        lats = [r["latency_ms"] for r in rs]
        rough = " (2 points)" if len(lats) == 2 else ""
        line = ax.plot(lats, [r["wall_s"] * 1000 for r in rs], marker=MARKERS.get(method, "o"),
                       linestyle=LINE_STYLES.get(method, "-"),
                       label=f"{op} ({method}): {rs[0]['rounds']} round{'s' if rs[0]['rounds'] != 1 else ''}{rough}")[0]
        ax.errorbar(lats, [r["wall_s"] * 1000 for r in rs], color=line.get_color(), fmt="none",
                    yerr=[[1000 * (r["wall_s"] - r["wall_s_min"]) for r in rs],
                          [1000 * (r["wall_s_max"] - r["wall_s"]) for r in rs]], capsize=3)
        ax.plot(lats, [r["predicted_wall_s"] * 1000 for r in rs], linestyle="--", linewidth=0.8,
                color=line.get_color(), alpha=0.5)
    n = records[0]["n"] if records else 0
    ax.set_xlabel("emulated one-way latency L (ms)")
    ax.set_ylabel("online wall time (ms), median over repeats")
    ax.set_title(f"mpc bench, n = {n:,}: measured (line style: method) and a + rounds x L (thin dashed)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    try:
        fig.savefig(path)
    except OSError as exc:
        raise RuntimeError(f"--plot: cannot write {path}: {exc.strerror or exc}") from None
    finally:
        plt.close(fig)

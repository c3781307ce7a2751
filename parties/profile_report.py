"""`mpc bench --profile`: each op's online time per compute party split by where it went, against its floor.

The parties measure (mpc/profile.py, parties/profile_probe.py); this module summarises their records
(medians over repeats) and prints them. Columns, in ms of the online window of one party:
compute (protocol bodies: numpy and their Python), transport (this party's loop thread framing, sending,
receiving), idle (the loop waiting for peers and the wire), overhead (the rest: event loop, tasks, glue),
CPU of the other threads (libzmq: CurveZMQ encryption and the socket calls, in parallel), and the floor:
rounds x round + bytes / throughput (both measured on the run's own link) + the plaintext numpy time.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import Any

Record = dict[str, Any]
SPLIT = ("wall", "compute", "transport", "idle", "overhead", "cpu_loop", "cpu_other")


def summarise_profile(reps: Sequence[Sequence[Record]], rounds: int, bytes_online: int) -> Record:
    """The profile of one op over its repeats: per compute party the median of each split, and the floor."""
    parties: dict[str, Record] = {}
    compute = [r for r in reps[0] if r["role"] == "compute"]
    for first in compute:
        mine = [r for group in reps for r in group if r["party"] == first["party"]]
        parties[first["party"]] = {k: statistics.median(r["profile"][k] for r in mine) for k in SPLIT}
    link = compute[0].get("link") or {}
    plain = statistics.median(r["plain_s"] for group in reps for r in group if r["role"] == "compute")
    wire = rounds * link.get("round_s", 0.0) + bytes_online / link["throughput_Bps"] if link else None
    return {"parties": parties, "link": link, "plain_s": plain, "wire_floor_s": wire,
            "floor_s": None if wire is None else wire + plain}


def print_profile(records: Sequence[Record], console: Any) -> None:
    from rich.table import Table

    first = next((r for r in records if r.get("profile")), None)
    if first is None:
        return
    link = first["profile"]["link"]
    table = Table(title=f"where the online time goes (ms, medians per compute party); link: one round "
                        f"{link['round_s'] * 1e3:.2f} ms, {link['throughput_Bps'] / 1e6:,.0f} MB/s each way")
    for col in ("op", "method", "n", "party", "online", "compute", "transport", "idle", "overhead",
                "cpu other thr", "wire floor", "numpy floor", "floor", "online/floor"):
        table.add_column(col, justify="right")
    for r in records:
        prof = r.get("profile")
        if not prof:
            continue
        for party, split in prof["parties"].items():
            ms = {k: f"{v * 1e3:.1f}" for k, v in split.items()}
            table.add_row(r["op"], r["method"], f"{r['n']:,}", party, f"{r['wall_s'] * 1e3:.1f}", ms["compute"],
                          ms["transport"], ms["idle"], ms["overhead"], ms["cpu_other"],
                          f"{prof['wire_floor_s'] * 1e3:.1f}", f"{prof['plain_s'] * 1e3:.1f}",
                          f"{prof['floor_s'] * 1e3:.1f}", f"{r['wall_s'] / prof['floor_s']:.2f}")
    console.print(table)

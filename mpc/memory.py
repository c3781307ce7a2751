"""A party's peak memory, measured: its own process and its worker processes (docs/memory.md).

The kernel keeps a process's own peak resident set (getrusage's ru_maxrss, exact). The helper's worker
processes run beside it and are still alive when the party reports, so their resident sets are sampled
(every SAMPLE_S, from /proc) and the peak of their sum kept. A party's `peak_rss` is its own peak plus the
workers' summed peak: an upper bound when the two peaks fall at different moments, never an under-count.
Both are kept in the party's Stats peaks ("rss", "workers_rss", in bytes).
"""

from __future__ import annotations

import os
import resource
import threading
from collections.abc import Callable
from typing import Any

from mpc.stats import Stats

SAMPLE_S = 0.2
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def own_peak_bytes() -> int:
    """This process's peak resident set so far (Linux reports kibibytes)."""
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024


def rss_bytes(pid: int) -> int:
    """A live process's resident set now; 0 if it is gone (or /proc is not there)."""
    try:
        with open(f"/proc/{pid}/statm", "rb") as f:
            return int(f.read().split()[1]) * _PAGE
    except (OSError, ValueError, IndexError):
        return 0


class RssMonitor:
    """Samples the worker processes' memory in a daemon thread while the run lasts; `record()` puts the
    peaks into the party's stats (call it whenever a figure is reported, and at the end)."""

    def __init__(self, stats: Stats, worker_pids: Callable[[], list[int]] = list):
        self.stats = stats
        self.worker_pids = worker_pids
        self.workers_peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-monitor", daemon=True)

    def start(self) -> RssMonitor:
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(SAMPLE_S):
            self.sample()

    def sample(self) -> None:
        pids = self.worker_pids()
        if pids:
            self.workers_peak = max(self.workers_peak, sum(rss_bytes(p) for p in pids))

    def record(self) -> int:
        """The party's peak resident bytes (own peak + workers' summed peak), also kept in its stats."""
        self.sample()
        own = own_peak_bytes()
        self.stats.set_level("workers_rss", self.workers_peak)
        self.stats.set_level("rss", own + self.workers_peak)
        return own + self.workers_peak

    def stop(self) -> None:
        self.record()
        self._stop.set()


def peak_rss_mb(stats: Stats) -> float:
    """The party's peak resident set in MiB, as far as measured (its own process now, at the least)."""
    return round(max(stats.peak.get("rss", 0), own_peak_bytes()) / 2**20, 1)


def party_memory(party: Any) -> dict[str, float]:
    """What a program reports of a party's memory (mpc.runtime.Party): its peak RSS with its workers, its
    peak of dealer material (held by a compute party, its inbox included; dealt ahead by the helper) and
    the window, in MiB."""
    party.memory.record()
    peak = party.stats.peak
    held = peak.get("dealt_ahead" if party.is_helper else "material", 0)
    return {"peak_rss_mb": peak_rss_mb(party.stats), "peak_material_mb": round(held / 2**20, 1),
            "window_mb": party.topology.dealer_window_mb}

"""Link figures for `comparison: auto`'s cost model: declared in the topology, or measured at the hello.

The cost model (protocols/primitives/comparison.py, `estimate`) weighs rounds against bytes, so it needs
each link's latency and bandwidth. The emulated network (network_emulation) is a test device and never a
source: a real link's figures are either declared under `cost_model` or measured here, right after the
session is agreed, on the links the model reads (`Topology.cost_links`).

Every party must choose the same method for every batch (the helper deals for the method chosen, the
compute parties wait for its messages), so the figures are agreed, not merely measured: the first of a
link's two parties (in topology order) measures it and sends its figures to every party; everyone then
holds the same numbers. Measuring: PINGS round trips of a small message, the fastest kept (scheduling
noise on a busy host only adds), then PROBES messages of PROBE_BYTES, each answered by a small one; the
fastest probe's time beyond that round trip gives the bandwidth. The links are measured at once: on a WAN
this costs about 6.5 round trips and two probes' transfer (0.4 s at 25 ms one-way), once per run. The
messages go through the transport like any other (the emulated delay applies to them as to the
program's), under op id 0, which no program uses (`Party.new_op` starts at 1); the program's counters
start after them.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from mpc.config import Topology
from mpc.stats import Stats
from mpc.transport import Transport

log = logging.getLogger("mpc.links")

OP = 0  # reserved: Party.new_op hands out ids from 1
PINGS = 4
PROBES = 2
PROBE_BYTES = 256 * 1024  # 21 ms at 100 Mbit/s: short, and well above one round trip's noise on a LAN
STEPS_PER_LINK = 16  # ping i at step base + i, probe j at base + PINGS + j
FIGURES_STEP = 1 << 20  # + link index: the measurer's figures, sent to every party
TAG, PHASE = "link probe", "hello"


@dataclass(frozen=True)
class LinkFigures:
    """One link's figures as the cost model reads them: one-way latency, bandwidth (None: unlimited, or
    faster than the probe could tell), and where they come from (declared, measured or in-process)."""

    latency_ms: float
    bandwidth_mbps: float | None
    source: str

    def describe(self) -> str:
        bandwidth = f"{self.bandwidth_mbps:,.0f} Mbit/s" if self.bandwidth_mbps else "unlimited"
        return f"{self.latency_ms:.3g} ms one-way, {bandwidth} ({self.source})"


class AgreedLinks:
    """The figures of the links the cost model reads, the same on every party of a run."""

    def __init__(self, figures: Mapping[frozenset[str], LinkFigures]):
        self._figures = dict(figures)

    def between(self, a: str, b: str) -> LinkFigures:
        """The agreed figures of the link between a and b (either order)."""
        try:
            return self._figures[frozenset((a, b))]
        except KeyError:
            raise KeyError(f"no agreed figures for the link {a}-{b}: the cost model reads only "
                           "Topology.cost_links()") from None

    def items(self) -> list[tuple[tuple[str, ...], LinkFigures]]:
        return [(tuple(sorted(k)), v) for k, v in self._figures.items()]

    @classmethod
    def assumed(cls, topology: Topology) -> AgreedLinks:
        """Without measuring (one process: the in-memory transport, emulation): the declared figures,
        else no latency and no bandwidth limit, the same on every party."""
        figures = {}
        for a, b in topology.cost_links():
            declared = topology.declared_link(a, b)
            figures[frozenset((a, b))] = (
                LinkFigures(declared.latency_ms, declared.bandwidth_mbps, "declared") if declared is not None
                else LinkFigures(0.0, None, "in-process"))
        return cls(figures)


async def agree_links(transport: Transport, topology: Topology, me: str, stats: Stats) -> AgreedLinks:
    """Measure (or take as declared) every link the cost model reads and agree the figures with every
    party; call right after the session is agreed, before the program. The counters in `stats` are reset
    afterwards, so a program's rounds and bytes are its own."""
    links = topology.cost_links()
    figures: dict[frozenset[str], LinkFigures] = {}
    measured: list[tuple[int, str, str]] = []
    for i, (a, b) in enumerate(links):
        declared = topology.declared_link(a, b)
        if declared is not None:
            figures[frozenset((a, b))] = LinkFigures(declared.latency_ms, declared.bandwidth_mbps, "declared")
        else:
            first, second = sorted((a, b), key=topology.index)
            measured.append((i, first, second))
    if not measured:
        return AgreedLinks(figures)

    async def one_link(i: int, first: str, second: str) -> None:
        if me == first:
            figures[frozenset((first, second))] = await _measure(transport, topology, me, i, second)
            return
        if me == second:
            await _answer(transport, i, first)
        figures[frozenset((first, second))] = await _receive_figures(transport, i, first)

    await asyncio.gather(*(one_link(*link) for link in measured))  # the links at once: a WAN's round trips overlap
    await asyncio.sleep(0)  # the last sends leave in this turn: counted before the reset below
    stats.reset()
    log.info("%s: links for the cost model: %s", me,
             "; ".join(f"{a}-{b} {f.describe()}" for (a, b), f in AgreedLinks(figures).items()))
    return AgreedLinks(figures)


async def _measure(transport: Transport, topology: Topology, me: str, index: int,
                   peer: str) -> LinkFigures:
    """Round trips and one probe to `peer`; then the figures go to every other party."""
    base = index * STEPS_PER_LINK
    ping = np.zeros(8, dtype=np.uint8)
    round_trips = []
    for i in range(PINGS):
        t0 = time.perf_counter()
        transport.send(peer, OP, base + i, ping, depth=0, tag=TAG, phase=PHASE)
        await transport.recv(peer, OP, base + i, tag=TAG, phase=PHASE, dtype=np.uint8, what="a link probe")
        round_trips.append(time.perf_counter() - t0)
    rtt = min(round_trips)
    probes = []
    for j in range(PROBES):
        t0 = time.perf_counter()
        transport.send(peer, OP, base + PINGS + j, np.zeros(PROBE_BYTES, dtype=np.uint8), depth=0, tag=TAG,
                       phase=PHASE)
        await transport.recv(peer, OP, base + PINGS + j, tag=TAG, phase=PHASE, dtype=np.uint8, what="a link probe")
        probes.append(time.perf_counter() - t0)
    extra = min(probes) - rtt
    bandwidth = PROBE_BYTES * 8 / extra / 1e6 if extra > 0 else None
    figures = LinkFigures(rtt / 2 * 1000, bandwidth, "measured")
    wire = np.array([figures.latency_ms, -1.0 if bandwidth is None else bandwidth], dtype=np.float64)
    for party in topology.names:
        if party != me:
            transport.send(party, OP, FIGURES_STEP + index, wire, depth=0, tag=TAG, phase=PHASE)
    return figures


async def _answer(transport: Transport, index: int, peer: str) -> None:
    """Echo each ping and answer the probe at once."""
    base = index * STEPS_PER_LINK
    for step in range(base, base + PINGS + PROBES):
        await transport.recv(peer, OP, step, tag=TAG, phase=PHASE, dtype=np.uint8, what="a link probe")
        transport.send(peer, OP, step, np.zeros(8, dtype=np.uint8), depth=0, tag=TAG, phase=PHASE)


async def _receive_figures(transport: Transport, index: int, measurer: str) -> LinkFigures:
    msg = await transport.recv(measurer, OP, FIGURES_STEP + index, tag=TAG, phase=PHASE, dtype=np.float64,
                               shape=(2,), what="the measured link figures")
    latency, bandwidth = (float(v) for v in msg.array)
    if not (np.isfinite(latency) and latency >= 0 and np.isfinite(bandwidth)):
        raise ValueError(f"{measurer} sent malformed link figures")
    return LinkFigures(latency, None if bandwidth < 0 else bandwidth, "measured")

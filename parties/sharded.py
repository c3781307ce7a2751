"""A party over N shard workers (docs/sharding.md): its coordinator, and what makes a process a shard.

`mpc run CONFIG --party P --workers N` (or `workers: N` in the topology) makes this process P's
coordinator. It starts N shard workers, each `mpc run ... --shard i --hub ADDR` on this host (or, with
`ray:` in P's entry of the topology, N Ray actors on P's own cluster: parties/ray_shards.py). Shard i
plays the program with shard i of every other party in its own session (mpc/shards.py: its own ports,
links and session id; its hello says `shard: i of N`, so every party must run the same N). The program
reads its own rows (`shards(ctx).rows(n)`) and combines across the party's shards with the party-local
collectives (protocols/interface/collectives.py); the party's result is its shard 0's, its counters the
sum (traffic) and maximum (rounds, wall time) over its shards.

A program says it runs sharded with `fn.shardable = True`; any other program refuses --workers, since
each shard would run all of it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from mpc.config import Topology
from mpc.keys import CurveKeys
from mpc.records import PartyRecord
from mpc.runtime import PartyOutcome, run_party
from mpc.shards import (
    Hub,
    HubLink,
    ShardFailed,
    ShardInfo,
    ShardLink,
    agreement,
    failure,
    merge_counters,
    shard_topology,
    supervise,
)
from parties.launcher import CHILD_ENV, PARTY_COMMAND
from parties.programs import find_program

T = TypeVar("T")
PARENT_POLL_S = 0.5  # how often a shard worker checks that its coordinator still lives


def check_shardable(program: str, workers: int) -> None:
    """ValueError unless `program` runs sharded (or workers is 1)."""
    if workers > 1 and not getattr(find_program(program).run, "shardable", False):
        raise ValueError(f"{program} does not run sharded (--workers {workers}): a program splits its rows over "
                         "shards with protocols.interface.collectives and says so with `fn.shardable = True`")


def with_workers(topo: Topology, workers: int | None) -> Topology:
    """The topology with the command line's --workers, checked like the file's field."""
    if workers is None or workers == topo.workers:
        return topo
    from mpc.config import parse_topology

    data = topo.model_dump(mode="json", exclude_none=True)
    data["deployment"]["workers"] = workers
    return parse_topology(data, "--workers")


@dataclass(frozen=True)
class ShardJob:
    """What each shard of a party runs: the options of the coordinator's `mpc run`, the same for every shard."""

    program: str
    params: tuple[str, ...] = ()  # KEY=VALUE
    timeout_s: float | None = None
    latency_ms: float | None = None
    bandwidth_mbps: float | None = None
    secret_key: str | None = None

    def argv(self) -> list[str]:
        """As `mpc run` options, for a shard worker process."""
        options = (("--program", self.program), ("--timeout-s", self.timeout_s), ("--latency-ms", self.latency_ms),
                   ("--bandwidth-mbps", self.bandwidth_mbps), ("--secret-key", self.secret_key))
        return [a for flag, value in options if value is not None for a in (flag, str(value))] + \
            [a for p in self.params for a in ("-p", p)]


def shard_session(topo: Topology, shard: int) -> tuple[Topology, dict[str, str]]:
    """Shard `shard`'s session topology and what its hello adds."""
    session = shard_topology(topo, shard)
    if topo.dealer_workers is None:  # the helper's shards share its host's cores: each its part of the default
        session = session.model_copy(update={"dealer_workers": max(1, topo.dealer_worker_count() // topo.workers)})
    return session, agreement(shard, topo.workers)


def worker_setup(topo: Topology, shard: int, hub: str) -> tuple[Topology, dict[str, str], ShardInfo]:
    """What makes a process shard `shard` of its party: the shard's session topology, what its hello adds,
    and its link to the party's other shards (through the coordinator's hub)."""
    session, extra = shard_session(topo, shard)
    return session, extra, ShardInfo(shard, topo.workers, HubLink(hub, shard))


async def run_shard(topo: Topology, party: str, shard: int, job: ShardJob, link: ShardLink,
                    keys: CurveKeys | None) -> PartyOutcome:
    """Shard `shard` of `party` in this process (a Ray actor): the program of `job` in the shard's session."""
    from parties.programs import get_program, program_setup

    params = dict(p.split("=", 1) for p in job.params)
    session, extra = shard_session(topo, shard)
    return await run_party(session, party, get_program(job.program, params), timeout_s=job.timeout_s, keys=keys,
                           setup={**program_setup(job.program, params), **extra},
                           shard=ShardInfo(shard, topo.workers, link))


async def as_worker(work: Awaitable[T]) -> T:
    """Run a shard's party; if its coordinator dies (the worker is orphaned), stop it, which aborts its
    session so the other parties' same shard stop too, instead of running on unsupervised."""
    task = asyncio.ensure_future(work)
    parent = os.getppid()

    async def watch() -> None:
        while os.getppid() == parent:
            await asyncio.sleep(PARENT_POLL_S)
        task.cancel()

    watcher = asyncio.create_task(watch())
    try:
        return await task
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher


async def coordinate(config: str, topo: Topology, party: str, job: ShardJob,
                     global_args: Sequence[str] = (), sink: Any = sys.stderr) -> PartyRecord:
    """Run party `party` as topo.workers shards of this host's processes (or Ray actors, with `ray:`);
    return the party's record, or raise ShardFailed naming the party and shard that failed."""
    spec = topo.party(party)
    if spec.ray is not None:
        from parties.ray_shards import coordinate_on_ray

        return await coordinate_on_ray(topo, party, job)
    hub = Hub(topo.workers)
    hub.start()
    try:
        argvs = [[*PARTY_COMMAND, *global_args, "run", config, "--party", party, "--json", "--workers",
                  str(topo.workers), "--shard", str(i), "--hub", hub.address, *job.argv()]
                 for i in range(topo.workers)]
        exits = await supervise(argvs, env=CHILD_ENV, sink=sink)
    finally:
        hub.close()
    return combine_records(party, spec.role, [(w.returncode, w.record, w.stopped) for w in exits])


def combine_records(party: str, role: str,
                    outcomes: Sequence[tuple[int, PartyRecord | None, bool]]) -> PartyRecord:
    """The party's record from its shards' (exit code, record, stopped by the coordinator)."""
    from mpc.shards import WorkerExit

    exits = [WorkerExit(i, code, record, stopped=stopped) for i, (code, record, stopped) in enumerate(outcomes)]
    failed: ShardFailed | None = failure(party, exits)
    if failed is not None:
        raise failed
    records = [w.record for w in exits if w.record is not None]
    return PartyRecord(party, role, result=records[0].result, counters=merge_counters(records))

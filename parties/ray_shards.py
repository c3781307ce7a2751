"""A sharded party's shard workers as Ray actors on the party's own Ray cluster (docs/sharding.md).

With `ray: {address: ...}` (or `ray: auto`) in a party's entry of the topology, its coordinator connects
to that party's own cluster (each organisation runs its own, as it runs its own hosts; `local` starts a
private single-host instance for this run and stops it after) and starts one actor per shard, plus one
rendezvous actor through which the shards' party-local collectives pass: arrays given to and returned
by actor calls travel through Ray's object store (numpy arrays are read from it without a copy where Ray
allows). Each shard actor runs its shard's session in its own process, exactly as a local shard worker
does; the links between parties are still this runtime's own authenticated ZeroMQ links.

Ray is an optional extra (`pip install -e '.[ray]'`): nothing else imports this module.

Faults: actors are created with max_restarts=0 and their calls with max_task_retries=0, and an actor
refuses to run a second time: Ray never re-runs a shard's protocol behind the party's back (its
material would be used twice, its rows counted twice). A dead actor stops the party naming the party
and shard; every actor is killed and a `local` instance shut down when the run ends, however it ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np

from mpc.config import Topology
from mpc.keys import load as load_keys
from mpc.records import PartyRecord
from mpc.shards import GRACE_S, Rendezvous
from parties.sharded import ShardJob, combine_records, run_shard

INSTALL = "pip install -e '.[ray]'"


def ray_module() -> Any:
    """The `ray` package, or a RuntimeError saying how to install it."""
    try:
        import ray
    except ImportError:
        raise RuntimeError(f"this topology runs shard workers on Ray (ray: in a party's entry), but Ray is not "
                           f"installed: {INSTALL}") from None
    return ray


class _RendezvousActor:
    """The party's rendezvous as an async actor: every shard's `exchange` call waits in it for the others."""

    def __init__(self, count: int):
        self.rendezvous = Rendezvous(count)

    async def exchange(self, shard: int, key: int, kind: str, arg: int, array: np.ndarray | None,
                       depth: int) -> tuple[np.ndarray | None, int]:
        return await self.rendezvous.exchange(shard, key, kind, arg, array, depth)


class _RayLink:
    """A shard actor's link to its party's rendezvous actor."""

    def __init__(self, hub: Any, shard: int):
        self.hub = hub
        self.shard = shard

    async def exchange(self, key: int, kind: str, arg: int, array: np.ndarray | None,
                       depth: int) -> tuple[np.ndarray | None, int]:
        out: tuple[np.ndarray | None, int] = await self.hub.exchange.remote(self.shard, key, kind, arg, array, depth)
        return out


class _ShardActor:
    """One shard worker. `run` runs its shard's session once; a second call is refused (a restarted or
    retried call must never play the protocol again). `stop` cancels a run under way (the shard then
    aborts its session, so the other parties' same shard stop at once)."""

    def __init__(self) -> None:
        self._ran = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[Any] | None = None
        self._lock = threading.Lock()

    def pid(self) -> int:
        return os.getpid()

    def run(self, topo: Topology, party: str, shard: int, job: ShardJob, keys: Any, hub: Any) -> str:
        with self._lock:
            if self._ran:
                raise RuntimeError(f"{party} shard {shard}: this actor already ran its shard once; a shard's protocol "
                                   "is never run again (its material would be used twice)")
            self._ran = True
        from mpc.transport import PeerError

        role = topo.party(party).role

        async def main() -> Any:
            self._loop = asyncio.get_running_loop()
            self._task = asyncio.current_task()
            return await run_shard(topo, party, shard, job, _RayLink(hub, shard), keys)

        try:
            outcome = asyncio.run(main())
        except BaseException as exc:  # reported as the shard's record, as a local worker prints it
            cause = exc.peer if isinstance(exc, PeerError) else None
            return PartyRecord(party, role, ok=False, error_class=type(exc).__name__,
                               error="interrupted" if isinstance(exc, asyncio.CancelledError) else str(exc),
                               cause=cause).to_json()
        return PartyRecord(party, role, result=outcome.value, counters=outcome.summary()).to_json(default=_jsonable)

    def stop(self) -> None:
        loop, task = self._loop, self._task
        if loop is not None and task is not None:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(task.cancel)


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _connect(ray: Any, address: str) -> bool:
    """Join the party's cluster (True if this call started a private local instance to stop after)."""
    if ray.is_initialized():
        return False
    quiet = {"include_dashboard": False, "logging_level": "WARNING"}
    if address == "local":
        ray.init(num_cpus=len(os.sched_getaffinity(0)), _node_ip_address="127.0.0.1", **quiet)
        return True
    ray.init(address=address, **quiet)
    return True


async def coordinate_on_ray(topo: Topology, party: str, job: ShardJob) -> PartyRecord:
    """Run `party` as topo.workers shard actors on its Ray cluster; the party's record, or ShardFailed."""
    ray = ray_module()
    spec = topo.party(party).ray
    assert spec is not None
    keys = load_keys(topo, party, job.secret_key)  # read here, handed to the party's own actors
    started = _connect(ray, spec.address)  # in the main thread, as Ray wants (a few seconds, once)
    hub_cls = ray.remote(num_cpus=0, max_restarts=0)(_RendezvousActor)
    shard_cls = ray.remote(num_cpus=0, max_restarts=0, max_task_retries=0, max_concurrency=2)(_ShardActor)
    actors: list[Any] = []
    hub = None
    try:
        hub = hub_cls.remote(topo.workers)
        hosts = spec.hosts  # shard i on the node the other parties' shard i dial
        actors = [shard_cls.options(resources={f"node:{hosts[i % len(hosts)]}": 0.001} if hosts else {}).remote()
                  for i in range(topo.workers)]
        refs = [a.run.remote(topo, party, i, job, keys, hub) for i, a in enumerate(actors)]
        outcomes = await _wait(ray, actors, refs, party)
        return combine_records(party, topo.party(party).role, outcomes)
    finally:
        for actor in [*actors, *([hub] if hub is not None else [])]:
            with contextlib.suppress(Exception):
                ray.kill(actor, no_restart=True)
        if started:
            await asyncio.to_thread(ray.shutdown)


async def _wait(ray: Any, actors: Sequence[Any], refs: Sequence[Any],
                party: str) -> list[tuple[int, PartyRecord | None, bool]]:
    """Every shard's (exit code, record, stopped); as soon as one fails, the others are stopped."""
    futures = [asyncio.wrap_future(ref.future()) for ref in refs]
    pending = set(futures)
    stopped: set[int] = set()
    while pending:
        done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
        if any(not _ok(f) for f in done) and pending:
            for i, f in enumerate(futures):
                if f in pending:
                    stopped.add(i)
                    actors[i].stop.remote()
            _, pending = await asyncio.wait(pending, timeout=GRACE_S)
            for i, f in enumerate(futures):
                if f in pending:
                    ray.kill(actors[i], no_restart=True)
            if pending:
                await asyncio.wait(pending)
            pending = set()
    return [_outcome(f, i in stopped, party) for i, f in enumerate(futures)]


def _ok(fut: asyncio.Future[Any]) -> bool:
    if fut.cancelled() or fut.exception() is not None:
        return False
    return PartyRecord.from_json(fut.result()).ok


def _outcome(fut: asyncio.Future[Any], stopped: bool, party: str) -> tuple[int, PartyRecord | None, bool]:
    """A shard actor's result as a local worker's exit: 0 and its record, or 1 and why its actor died."""
    if fut.cancelled() or fut.exception() is not None:
        why = "cancelled" if fut.cancelled() else type(fut.exception()).__name__
        return 1, PartyRecord(party, "?", ok=False, error=f"its Ray actor died ({why})"), stopped
    record = PartyRecord.from_json(fut.result())
    return (0 if record.ok else 1), record, stopped

"""Party-local collectives: sum, concatenate and broadcast across the shards of ONE party.

A party run with `workers: N` (docs/sharding.md) is N shard workers; shard i of every party forms its own
session with shard i of the others, and each shard runs the same program on its own rows (SPMD twice
over: every party, every shard). The shares of one party belong to that party, so its shards may add,
join and copy them among themselves freely: nothing a collective moves leaves the party, it costs no
secure traffic and no round, and it never mixes two parties' shares. The rule that makes it sound: a
collective combines THIS party's shares across ITS shards; the other parties' shards do the same with
theirs, so the shared value of the result is the sum (concatenation, copy) of the shards' shared values.

    sh = shards(ctx)
    lo, hi = sh.rows(n)              # this shard's rows of n (the same split on every party)
    g = sh.sum(grad)                 # every shard gets the sum over shards of grad (shared)
    w = sh.broadcast(w_new, root=0)  # every shard gets shard 0's value
    flags = await sh.concat_own(opened_flags)  # a party's own cleartext, joined in shard order

Shared-value collectives return a SharedArray at once (their shapes are known), so the helper deals
what follows without waiting; on the helper (which holds no shares) they cost nothing. The `*_own`
variants move a party's own cleartext (its data, what was opened to it) and are awaited; the helper's
shards take part with None. Every shard of a party must call the same collectives in the same order
(each takes a key when called); a shard that calls another one stops the party with ShardMismatch. With
one worker every collective is the identity, so a program written with them runs unsharded unchanged.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import numpy as np

from mpc.config import Topology
from mpc.keys import ephemeral
from mpc.runtime import PartyFailed, PartyOutcome, run_on, run_party
from mpc.shards import LocalLink, Rendezvous, ShardInfo, ShardMismatch, agreement, row_range, shard_topology
from mpc.stats import Stats
from mpc.transport import MemoryNetwork, PeerError
from protocols.interface.context import Context, secure
from protocols.primitives.shared import SharedArray, Shares, placeholder

T = TypeVar("T")


class Shards:
    """This party's shards as seen from one of them (`shards(ctx)`)."""

    def __init__(self, ctx: Context):
        self.ctx = ctx
        self.info: ShardInfo = ctx.party.shard

    @property
    def index(self) -> int:
        """Which shard this is (0 .. count - 1); shard 0 is the one whose result the party reports."""
        return self.info.index

    @property
    def count(self) -> int:
        return self.info.count

    @property
    def root(self) -> bool:
        return self.info.index == 0

    def rows(self, n: int) -> tuple[int, int]:
        """This shard's rows [lo, hi) of n, contiguous, sizes differing by at most one."""
        return row_range(n, self.index, self.count)

    def sizes(self, n: int) -> list[int]:
        """Every shard's number of rows of n, in shard order."""
        return [hi - lo for lo, hi in (row_range(n, i, self.count) for i in range(self.count))]

    # -- shared values (this party's shares; 0 rounds, no secure traffic) --------------------------
    def sum(self, x: SharedArray) -> SharedArray:
        """The sum over this party's shards of x (same shape and scale on every shard)."""
        return self._shared("sum", x, 0, x.shape)

    def concat(self, x: SharedArray, sizes: Sequence[int] | None = None, axis: int = 0) -> SharedArray:
        """The shards' x joined along `axis` in shard order. `sizes`: each shard's length along `axis`
        (default: all as long as this one's), e.g. `sh.sizes(n)` for rows split by `rows(n)`."""
        if not x.shape:
            raise ValueError("concat: a 0-d shared value has no axis to join along")
        axis = axis % len(x.shape)
        lengths = list(sizes) if sizes is not None else [x.shape[axis]] * self.count
        if len(lengths) != self.count or lengths[self.index] != x.shape[axis]:
            raise ValueError(f"concat: sizes {lengths} for {self.count} shards, but shard {self.index} holds "
                             f"{x.shape[axis]} along axis {axis}")
        shape = tuple(sum(lengths) if d == axis else n for d, n in enumerate(x.shape))
        return self._shared("concat", x, axis, shape)

    def broadcast(self, x: SharedArray, root: int = 0) -> SharedArray:
        """Shard `root`'s x on every shard (the others pass a value of the same shape, which is not read)."""
        if not 0 <= root < self.count:
            raise ValueError(f"broadcast: no shard {root} among {self.count}")
        return self._shared("broadcast", x, root, x.shape)

    def _shared(self, kind: str, x: SharedArray, arg: int, shape: tuple[int, ...]) -> SharedArray:
        if not isinstance(x, SharedArray):
            raise TypeError(f"shards.{kind} takes a shared value; for this party's own cleartext use {kind}_own")
        if not self.info.sharded:
            return x
        key = self.info.next_key()  # at the call, before any await: the same key on every shard
        ctx, link, index = self.ctx, self.info.link, self.index
        if ctx.is_dealer:
            return placeholder(ctx, shape, x.frac_bits)
        assert link is not None
        signature = f"{kind}/frac{x.frac_bits}"  # shards holding other scales would add wrong values

        async def run() -> Shares:
            if kind == "broadcast" and index != arg:
                out, depth = await link.exchange(key, signature, arg, None, 0)
            else:
                mine = await x.resolve()
                out, depth = await link.exchange(key, signature, arg, mine.share, mine.depth)
            if out is None or out.shape != shape:
                raise ShardMismatch(f"{kind}: shard {index} expected a result of shape {shape}, got "
                                    f"{None if out is None else out.shape}: the shards' values differ in shape")
            return Shares(out, depth)

        return SharedArray(ctx, shape, x.frac_bits, ctx.spawn(run()))

    # -- this party's own cleartext ---------------------------------------------------------------
    async def sum_own(self, value: Any) -> np.ndarray | None:
        """The elementwise sum over the shards of this party's own numbers (None if every shard gave None)."""
        return await self._own("sum", value, 0)

    async def concat_own(self, value: Any, axis: int = 0) -> np.ndarray | None:
        """This party's own arrays joined along `axis` in shard order."""
        return await self._own("concat", value, axis)

    async def broadcast_own(self, value: Any, root: int = 0) -> np.ndarray | None:
        """Shard `root`'s own array on every shard."""
        return await self._own("broadcast", value, root)

    async def _own(self, kind: str, value: Any, arg: int) -> np.ndarray | None:
        array = None if value is None else np.asarray(value)
        if not self.info.sharded:
            return array
        key = self.info.next_key()
        assert self.info.link is not None
        if kind == "broadcast" and self.index != arg:
            array = None
        out, _ = await self.info.link.exchange(key, f"{kind}/own", arg, array, 0)
        return out


def shards(ctx: Context) -> Shards:
    """The collectives of this party's shards (identities when the party runs as one process)."""
    return Shards(ctx)


async def run_local_sharded_async(topology: Topology, program: Callable[[Context], Awaitable[T]], workers: int,
                                  *, timeout_s: float | None = None,
                                  transport: str = "memory") -> dict[str, list[PartyOutcome]]:
    """Every shard of every party of `topology` in this event loop (tests, one host): shard i of every party
    in its own session (in memory, or over ZeroMQ on the shard ports), each party's shards meeting at a
    rendezvous of its own. Returns each party's outcomes in shard order; raises PartyFailed naming the
    party whose own error started a failure."""
    topo = topology.model_copy(update={"workers": workers})
    meeting = {name: Rendezvous(workers) for name in topo.names}
    runs: dict[tuple[str, int], Awaitable[PartyOutcome]] = {}
    for i in range(workers):
        session = shard_topology(topo, i)
        setup = agreement(i, workers)
        network = MemoryNetwork(session) if transport == "memory" else None
        keys = ephemeral(session.names) if network is None else {}
        for name in session.names:
            info = ShardInfo(i, workers, LocalLink(meeting[name], i))
            if network is not None:
                stats = Stats()
                link = network.transport(name, stats, timeout_s=timeout_s,
                                         agreement={**session.agreed_settings(), **setup})
                runs[name, i] = run_on(link, session, name, secure(program), stats, shard=info)
            else:
                runs[name, i] = run_party(session, name, secure(program), timeout_s=timeout_s, keys=keys[name],
                                          setup=setup, shard=info)
    tasks = {key: asyncio.ensure_future(run) for key, run in runs.items()}
    await asyncio.wait(tasks.values())
    errors = {f"{name} shard {i}": exc for (name, i), t in tasks.items() if (exc := t.exception()) is not None}
    if errors:
        first = next((k for k, e in errors.items() if not isinstance(e, PeerError)), next(iter(errors)))
        raise PartyFailed(first, errors[first]) from errors[first]
    return {name: [tasks[name, i].result() for i in range(workers)] for name in topo.names}


def run_local_sharded(topology: Topology, program: Callable[[Context], Awaitable[T]], workers: int = 2,
                      **kwargs: Any) -> dict[str, list[PartyOutcome]]:
    """Synchronous `run_local_sharded_async`."""
    return asyncio.run(run_local_sharded_async(topology, program, workers, **kwargs))


__all__ = ["ShardMismatch", "Shards", "run_local_sharded", "run_local_sharded_async", "shards"]

"""Run a secure program from a script or a notebook: every party in this process, secure or emulated.

    out = protocols.run(program)                   # a script (or a notebook cell: it runs in a thread there)
    out = await protocols.run_async(program)       # inside a running event loop (a notebook, an async app)
    out["bank_a"].value, out["bank_a"].stats.bytes_sent, out["bank_a"].stats.rounds, out["bank_a"].wall_s

`program` is `async def program(ctx, ...)` taking a `protocols.Context`; keyword `params` are passed to it.
Without a topology: two banks and the helper on localhost, on free ports. `emulate=True` runs the compute
parties on cleartext in one event loop instead (no helper, no sockets): values the secure run would get
wrong are in `out.findings`, and each party's stats are the predicted rounds and online bytes.

(`mpc.run_local` is the runtime's lower level: it runs programs that take the bare `mpc.Party`.)
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from mpc.config import Topology, load_topology
from mpc.runtime import PartyOutcome, run_local_async
from mpc.stats import Counter, Stats
from protocols.interface.context import Context, secure
from protocols.interface.emulation import Finding, emulate_async
from protocols.interface.operations import OPERATIONS
from protocols.interface.registry import Registry

Program = Callable[..., Awaitable[Any]]


class Results(dict[str, PartyOutcome]):
    """Each party's outcome by name (`.value`, `.stats`, `.wall_s`); `findings` of an emulated run (values
    the secure run would get wrong; always empty for a secure run)."""

    def __init__(self, outcomes: dict[str, PartyOutcome], *, emulated: bool = False,
                 findings: list[Finding] | None = None):
        super().__init__(outcomes)
        self.emulated = emulated
        self.findings = list(findings or [])

    @property
    def values_by_party(self) -> dict[str, Any]:
        """Each party's returned value."""
        return {name: outcome.value for name, outcome in self.items()}


def _topology(topology: Topology | str | Path | None) -> Topology:
    if topology is None:
        from mpc.localhost import default_topology

        return default_topology()
    return topology if isinstance(topology, Topology) else load_topology(topology)


async def run_async(program: Program, topology: Topology | str | Path | None = None, *, emulate: bool = False,
                    transport: str = "zmq", curve: bool = True, timeout_s: float | None = None,
                    dealer: str = "helper", seed: int = 0, operations: Registry | None = None,
                    **params: Any) -> Results:
    """Run `program(ctx, **params)` on every party of `topology` in this event loop (see the module doc).

    Secure (the default): over real ZeroMQ sockets on the topology's ports, encrypted with ephemeral CURVE
    keys unless the topology has its own (or curve=False); transport="memory" hands messages over in this
    loop without sockets (the same rounds and bytes). Raises mpc.PartyFailed naming the party that failed.
    `emulate=True`: cleartext, one loop, the findings and predicted costs (seed: the emulation's masks).
    `operations`: the registry behind ctx.<name> (default: the project's; one extended with your own)."""
    topo = _topology(topology)
    registry = OPERATIONS if operations is None else operations

    async def bound(ctx: Context) -> Any:
        return await program(ctx, **params)

    if emulate:
        report = await emulate_async(topo, bound, seed=seed, operations=registry)
        outcomes = {}
        for name, value in report.results.items():
            stats = Stats(rounds=report.rounds)
            stats.by_op[("online", "emulated")] = Counter(messages_sent=report.messages_per_party.get(name, 0),
                                                          bytes_sent=report.online_bytes_per_party.get(name, 0))
            outcomes[name] = PartyOutcome(name, value, stats, 0.0, "emulated")
        return Results(outcomes, emulated=True, findings=report.findings)
    out = await run_local_async(topo, secure(bound, dealer=dealer, operations=registry), timeout_s=timeout_s,
                                curve=curve, transport=transport)
    return Results(out)


def run(program: Program, topology: Topology | str | Path | None = None, **options: Any) -> Results:
    """`run_async` for code without an event loop (a script). Inside a running loop (a notebook cell) it
    runs in a thread of its own with its own loop and blocks until done; `await run_async(...)` there
    instead keeps the notebook's loop free."""
    call = functools.partial(run_async, program, topology, **options)
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(call())
    with concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="mpc-run") as pool:
        return pool.submit(lambda: asyncio.run(call())).result()

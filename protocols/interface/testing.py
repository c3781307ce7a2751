"""For tests only: secure programs with the in-process test dealer, under names that say so.

The test dealer (protocols.primitives.material.LocalTestProvider) derives every party's randomness from
one seed known to all: it offers NO secrecy. It lets protocol tests run without a helper party, and it is
reachable only from here: `secure()` and `Context.create` take the helper alone, and `mpc run` (so
`launch`, `demo` and `bench`, which start `mpc run` processes) refuses it in its process.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

from mpc.config import Topology
from mpc.runtime import Party, PartyOutcome, run_local_async
from mpc.window import MaterialWindow, window_bytes
from protocols.interface.context import Context, run_program, with_tables_agreement
from protocols.interface.operations import OPERATIONS
from protocols.interface.registry import Registry
from protocols.primitives.material import LocalTestProvider

T = TypeVar("T")


async def context_with_test_dealer(party: Party, test_seed: bytes = b"", operations: Registry = OPERATIONS) -> Context:
    """A Context whose material comes from the in-process test dealer (NOT SECURE)."""
    party.new_op("setup")  # the same op ids as with the helper
    window = None if party.is_helper else MaterialWindow(party, window_bytes(party.topology.dealer_window_mb), None)
    return Context(party, LocalTestProvider(party, test_seed), operations=operations, window=window)


def secure_with_test_dealer(program: Callable[[Context], Awaitable[T]], *, test_seed: bytes = b"",
                            operations: Registry = OPERATIONS) -> Callable[[Party], Awaitable[T]]:
    """`secure(program)` with the in-process test dealer instead of the helper (NOT SECURE)."""

    async def run(party: Party) -> T:
        return await run_program(await context_with_test_dealer(party, test_seed, operations), program)

    return with_tables_agreement(run)


def run_local_with_test_dealer(topology: Topology, program: Callable[[Context], Awaitable[T]], *,
                               timeout_s: float | None = None, curve: bool = True, transport: str = "zmq",
                               operations: Registry = OPERATIONS) -> dict[str, PartyOutcome]:
    """`run_local` with the in-process test dealer (NOT SECURE): protocol tests without a helper."""
    return asyncio.run(run_local_async(topology, secure_with_test_dealer(program, operations=operations),
                                       timeout_s=timeout_s, curve=curve, transport=transport))

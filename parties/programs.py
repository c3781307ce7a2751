"""The built-in programs `mpc launch --program NAME` and `mpc run --program NAME` can run."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from mpc.runtime import Party
from parties import diagnostics


@dataclass(frozen=True)
class ProgramEntry:
    run: Callable[..., Awaitable[Any]]
    description: str


PROGRAMS: dict[str, ProgramEntry] = {
    "mesh": ProgramEntry(diagnostics.mesh, "every party sends a random array to every other and checks it"),
    "pingpong": ProgramEntry(diagnostics.pingpong, "a token passed around the ring: `steps` dependent rounds"),
    "crash": ProgramEntry(diagnostics.crash, "party `who` fails on purpose: rehearses failure handling"),
}


def get_program(name: str, params: dict[str, Any]) -> Callable[[Party], Awaitable[Any]]:
    """The program `name` with its parameters bound; ValueError names the known programs."""
    entry = PROGRAMS.get(name)
    if entry is None:
        raise ValueError(f"unknown program {name!r}; known: {', '.join(sorted(PROGRAMS))}")

    async def program(party: Party) -> Any:
        return await entry.run(party, **params)

    return program

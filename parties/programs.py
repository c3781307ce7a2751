"""The built-in programs `mpc launch --program NAME` and `mpc run --program NAME` can run."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from mpc.runtime import Party
from parties import arith_demo, bench, diagnostics
from parties.fraud import secure as fraud_secure
from protocols.context import secure


@dataclass(frozen=True)
class ProgramEntry:
    run: Callable[..., Awaitable[Any]]
    description: str
    is_secure: bool = False  # takes a protocols.Context rather than the bare Party
    own_params: tuple[str, ...] = ()  # parameters each party sets for itself (its own data); the rest must agree


PROGRAMS: dict[str, ProgramEntry] = {
    "mesh": ProgramEntry(diagnostics.mesh, "every party sends a random array to every other and checks it"),
    "pingpong": ProgramEntry(diagnostics.pingpong, "a token passed around the ring: `steps` dependent rounds"),
    "crash": ProgramEntry(diagnostics.crash, "party `who` fails on purpose: rehearses failure handling"),
    "arith": ProgramEntry(arith_demo.arith, "product, matmul and a fixed-point expression of both banks' inputs",
                          is_secure=True),
    "bench": ProgramEntry(bench.bench, "measure secure ops (used by `mpc bench`)", is_secure=True),
    "fraud": ProgramEntry(fraud_secure.fraud, "joint fraud scoring of both banks' accounts (used by `mpc demo fraud`)",
                          is_secure=True, own_params=("data_dir", "model_file")),
}


def get_program(name: str, params: dict[str, Any]) -> Callable[[Party], Awaitable[Any]]:
    """The program `name` with its parameters bound; ValueError names the known programs."""
    entry = PROGRAMS.get(name)
    if entry is None:
        raise ValueError(f"unknown program {name!r}; known: {', '.join(sorted(PROGRAMS))}")

    if entry.is_secure:
        return secure(lambda ctx: entry.run(ctx, **params))

    async def program(party: Party) -> Any:
        return await entry.run(party, **params)

    return program


def program_setup(name: str, params: dict[str, Any]) -> dict[str, str]:
    """What every party must agree on about the program: its name and every parameter but its own ones
    (defaults filled in, so that `flags_to=both` given or left out is the same program)."""
    entry = PROGRAMS.get(name)
    if entry is None:
        return {"program": name}
    defaults = {k: p.default for k, p in list(inspect.signature(entry.run).parameters.items())[1:]
                if p.default is not inspect.Parameter.empty}
    full = {**defaults, **params}
    shared = ", ".join(f"{k}={full[k]!r}" for k in sorted(full) if k not in entry.own_params)
    return {"program": f"{name}({shared})"}

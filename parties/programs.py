"""The built-in programs `mpc launch --program NAME` and `mpc run --program NAME` can run."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Mapping
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


def bind_params(name: str, params: Mapping[str, Any], *, complete: bool = True) -> dict[str, Any]:
    """The parameters of program `name`, text from the command line (`-p KEY=VALUE`) converted to the
    type of each parameter's default. ValueError naming the program's parameters for an unknown or
    missing one or a value that does not convert, so a typo fails before any party starts."""
    entry = PROGRAMS.get(name)
    if entry is None:
        raise ValueError(f"unknown program {name!r}; known: {', '.join(sorted(PROGRAMS))}")
    accepted = _parameters(entry)
    usage = program_usage(name)
    known = {p.name: p for p in accepted}
    bound: dict[str, Any] = {}
    for key, value in params.items():
        if key not in known:
            raise ValueError(f"{name} has no parameter {key!r}; its parameters: {usage}")
        default = known[key].default
        expected = str if default is inspect.Parameter.empty or default is None else type(default)
        try:
            bound[key] = _convert(value, expected)
        except ValueError:
            raise ValueError(f"{name} parameter {key}: expected {expected.__name__}, got {value!r}") from None
    missing = [p.name for p in accepted if p.default is inspect.Parameter.empty and p.name not in params]
    if missing and complete:
        raise ValueError(f"{name} needs {', '.join(missing)} (-p NAME=VALUE); its parameters: {usage}")
    return bound


def _parameters(entry: ProgramEntry) -> list[inspect.Parameter]:
    return list(inspect.signature(entry.run).parameters.values())[1:]  # after the party or context


def program_usage(name: str) -> str:
    """The program's parameters with their defaults, e.g. `steps=10`."""
    return ", ".join(p.name if p.default is inspect.Parameter.empty else f"{p.name}={p.default!r}"
                     for p in _parameters(PROGRAMS[name])) or "none"


def _convert(value: Any, expected: type) -> Any:
    if not isinstance(value, str):
        if isinstance(value, expected) and not (expected is int and isinstance(value, bool)):
            return value
        if expected is float and isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        raise ValueError(value)
    if expected is bool:
        if value.lower() in ("true", "1", "yes"):
            return True
        if value.lower() in ("false", "0", "no"):
            return False
        raise ValueError(value)
    return expected(value)  # str, int or float


def get_program(name: str, params: Mapping[str, Any]) -> Callable[[Party], Awaitable[Any]]:
    """The program `name` with its parameters converted, checked and bound (ValueError says what is wrong)."""
    bound = bind_params(name, params)
    entry = PROGRAMS[name]
    if entry.is_secure:
        return secure(lambda ctx: entry.run(ctx, **bound))

    async def program(party: Party) -> Any:
        return await entry.run(party, **bound)

    return program


def program_setup(name: str, params: dict[str, Any]) -> dict[str, str]:
    """What every party must agree on about the program: its name and every parameter but its own ones
    (defaults filled in, so that `flags_to=both` given or left out is the same program)."""
    entry = PROGRAMS.get(name)
    if entry is None:
        return {"program": name}
    defaults = {p.name: p.default for p in _parameters(entry) if p.default is not inspect.Parameter.empty}
    full = {**defaults, **bind_params(name, params, complete=False)}
    shared = ", ".join(f"{k}={full[k]!r}" for k in sorted(full) if k not in entry.own_params)
    return {"program": f"{name}({shared})"}

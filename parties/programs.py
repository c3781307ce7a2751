"""The programs `mpc launch --program P` and `mpc run --program P` can run: a built-in name, or the
user's own async function given as `path/to/file.py:function` or `package.module:function`.

A user's program is a secure program `async def fn(ctx, ...)` taking a `protocols.Context` (or, if its
first parameter is annotated `Party`, a transport-level program taking the bare `mpc.Party`). Its other
parameters come from `-p NAME=VALUE`, typed by their annotations (int, float, bool, str, Path) or else by
their defaults, and are checked before any party starts. Parties agree at session start on the program,
its shared parameters and a SHA-256 digest of its source file, so two hosts running different versions
of a file stop at once naming the difference. Parameters listed in `fn.own_params` (say a data
directory) may differ from party to party.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import sys
import typing
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mpc.runtime import Party
from parties import arith_demo, bench, diagnostics
from parties.fraud import secure as fraud_secure
from parties.fraud import train as fraud_train
from protocols.interface.context import secure


@dataclass(frozen=True)
class ProgramEntry:
    run: Callable[..., Awaitable[Any]]
    description: str
    is_secure: bool = False  # takes a protocols.Context rather than the bare Party
    own_params: tuple[str, ...] = ()  # parameters each party sets for itself (its own data); the rest must agree
    digest: str | None = None  # SHA-256 of a user program's source file (built-ins: None, part of this version)


PROGRAMS: dict[str, ProgramEntry] = {
    "mesh": ProgramEntry(diagnostics.mesh, "every party sends a random array to every other and checks it"),
    "pingpong": ProgramEntry(diagnostics.pingpong, "a token passed around the ring: `steps` dependent rounds"),
    "crash": ProgramEntry(diagnostics.crash, "party `who` fails on purpose: rehearses failure handling"),
    "arith": ProgramEntry(arith_demo.arith, "product, matmul and a fixed-point expression of both banks' inputs",
                          is_secure=True),
    "bench": ProgramEntry(bench.bench, "measure secure ops (used by `mpc bench`)", is_secure=True),
    "fraud": ProgramEntry(fraud_secure.fraud, "joint fraud scoring of both banks' accounts (used by `mpc demo fraud`)",
                          is_secure=True, own_params=("data_dir", "model_file", "model_shares")),
    "fraud-train": ProgramEntry(fraud_train.fraud_train, "the banks train the fraud model on shares and score with "
                                "it (used by `mpc demo fraud`)", is_secure=True,
                                own_params=("data_dir", "labels_file", "model_out", "checkpoint_dir")),
}


def bind_params(name: str, params: Mapping[str, Any], *, complete: bool = True) -> dict[str, Any]:
    """The parameters of program `name`, text from the command line (`-p KEY=VALUE`) converted to the
    type of each parameter's default. ValueError naming the program's parameters for an unknown or
    missing one or a value that does not convert, so a typo fails before any party starts."""
    entry = find_program(name)
    accepted = _parameters(entry)
    usage = program_usage(name)
    known = {p.name: p for p in accepted}
    bound: dict[str, Any] = {}
    for key, value in params.items():
        if key not in known:
            raise ValueError(f"{name} has no parameter {key!r}; its parameters: {usage}")
        expected = _expected_type(known[key])
        try:
            bound[key] = _convert(value, expected)
        except ValueError:
            raise ValueError(f"{name} parameter {key}: expected {expected.__name__}, got {value!r}") from None
    missing = [p.name for p in accepted if p.default is inspect.Parameter.empty and p.name not in params]
    if missing and complete:
        raise ValueError(f"{name} needs {', '.join(missing)} (-p NAME=VALUE); its parameters: {usage}")
    return bound


def find_program(spec: str) -> ProgramEntry:
    """The built-in program `spec`, or the user's function `FILE.py:NAME` / `package.module:NAME`.
    ValueError saying what is wrong (no such file, module or function, not an async function)."""
    if spec in PROGRAMS:
        return PROGRAMS[spec]
    source, sep, attr = spec.rpartition(":")
    if not sep or not source or not attr.isidentifier():
        raise ValueError(f"unknown program {spec!r}; give a built-in ({', '.join(sorted(PROGRAMS))}), "
                         "FILE.py:FUNCTION or package.module:FUNCTION")
    module_file = Path(source)
    if source.endswith(".py") or module_file.exists():
        if not module_file.is_file():
            raise ValueError(f"program file {source} does not exist")
        module = _load_file(module_file)
    else:
        try:
            module = importlib.import_module(source)
        except ImportError as exc:
            raise ValueError(f"cannot import module {source!r} for --program {spec}: {exc}") from None
        module_file = Path(module.__file__ or "")
    fn = getattr(module, attr, None)
    if fn is None:
        raise ValueError(f"{source} has no function {attr!r}")
    if not inspect.iscoroutinefunction(fn):
        raise ValueError(f"{spec} must be an async function (async def {attr}(ctx, ...))")
    params = list(inspect.signature(fn).parameters.values())
    if not params:
        raise ValueError(f"{spec} must take the party's context as its first parameter: {attr}(ctx, ...)")
    first = params[0].annotation
    takes_party = first is not inspect.Parameter.empty and (
        (isinstance(first, str) and first.split(".")[-1] == "Party") or getattr(first, "__name__", "") == "Party")
    digest = hashlib.sha256(module_file.read_bytes()).hexdigest() if module_file.is_file() else None
    doc = (inspect.getdoc(fn) or "").split("\n")[0]
    return ProgramEntry(fn, doc or f"{attr} from {module_file.name}", is_secure=not takes_party,
                        own_params=tuple(getattr(fn, "own_params", ())), digest=digest)


def _load_file(path: Path) -> Any:
    """Import a program file as its own module; its folder goes first on sys.path, as for a script, so it
    can import its neighbours."""
    path = path.resolve()
    name = f"mpc_user_program_{hashlib.sha256(str(path).encode()).hexdigest()[:12]}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ValueError(f"cannot load program file {path}")
    module = importlib.util.module_from_spec(spec)
    if str(path.parent) not in sys.path:
        sys.path.insert(0, str(path.parent))
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[name]
        raise ValueError(f"program file {path} failed to load: {type(exc).__name__}: {exc}") from exc
    return module


def _parameters(entry: ProgramEntry) -> list[inspect.Parameter]:
    return list(inspect.signature(entry.run).parameters.values())[1:]  # after the party or context


_TYPES: dict[str, type] = {"int": int, "float": float, "bool": bool, "str": str, "Path": Path,
                           "pathlib.Path": Path}


def _expected_type(param: inspect.Parameter) -> type:
    """A parameter's type: its annotation if it is a plain int/float/bool/str/Path, else its default's."""
    note = param.annotation
    if isinstance(note, str):
        note = _TYPES.get(note.replace(" | None", "").replace("None | ", ""), inspect.Parameter.empty)
    args = [a for a in typing.get_args(note) if a is not type(None)]
    if len(args) == 1:  # Optional[X] / X | None
        note = args[0]
    if note in (int, float, bool, str, Path):
        return note  # type: ignore[no-any-return]
    default = param.default
    return str if default is inspect.Parameter.empty or default is None else type(default)


def program_usage(name: str) -> str:
    """The program's parameters with their defaults, e.g. `steps=10`."""
    return ", ".join(p.name if p.default is inspect.Parameter.empty else f"{p.name}={p.default!r}"
                     for p in _parameters(find_program(name))) or "none"


def _convert(value: Any, expected: type) -> Any:
    if not isinstance(value, str):
        if isinstance(value, expected) and not (expected is int and isinstance(value, bool)):
            return value
        if expected is float and isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        raise ValueError(value)
    if expected is Path:
        return Path(value)
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
    entry = find_program(name)
    if entry.is_secure:
        return secure(lambda ctx: entry.run(ctx, **bound))

    async def program(party: Party) -> Any:
        return await entry.run(party, **bound)

    return program


def program_setup(name: str, params: dict[str, Any]) -> dict[str, str]:
    """What every party must agree on about the program: its name, every parameter but its own ones
    (defaults filled in, so that `flags_to=both` given or left out is the same program) and, for a user's
    program, the digest of its source (its path may differ from host to host; its code may not)."""
    entry = find_program(name)
    defaults = {p.name: p.default for p in _parameters(entry) if p.default is not inspect.Parameter.empty}
    full = {**defaults, **bind_params(name, params, complete=False)}
    shared = ", ".join(f"{k}={full[k]!r}" for k in sorted(full) if k not in entry.own_params)
    label = name if name in PROGRAMS else f"{name.rpartition(':')[2]}"
    setup = {"program": f"{label}({shared})"}
    if entry.digest is not None:
        setup["program code"] = f"sha256 {entry.digest[:16]}"
    return setup

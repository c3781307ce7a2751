"""The programs `mpc launch --program P` and `mpc run --program P` can run: a built-in name, or the
user's own async function given as `path/to/file.py:function` or `package.module:function`.

A user's program is a secure program `async def fn(ctx, ...)` taking a `protocols.Context` (or, if its
first parameter is annotated `Party`, a transport-level program taking the bare `mpc.Party`). Its other
parameters come from `-p NAME=VALUE`, typed by their annotations (int, float, bool, str, Path) or else by
their defaults, and are checked before any party starts. Parties agree at session start on the program,
its shared parameters, a SHA-256 digest of its source file and of every module it loads from outside the
installed libraries (its own package or directory: a helper module of the program is code the parties
run too), so two hosts running different versions of any of them stop at once naming the difference.
Modules a program imports only later, while it runs, are not covered: import them at the top.
Parameters typed `Path` (a party's own file or directory) and those listed in `fn.own_params` are each
party's own: they may differ from party to party and are never sent to the others.
"""

from __future__ import annotations

import difflib
import hashlib
import importlib
import importlib.util
import inspect
import site
import sys
import sysconfig
import traceback
import typing
from collections.abc import Awaitable, Callable, Iterable, Mapping
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
    modules: tuple[tuple[str, str], ...] = ()  # (name, SHA-256) of the other modules it loads from outside
    # the installed libraries


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
            raise ValueError(f"{name} has no parameter {key}{_suggest(key, known)}; its parameters: {usage}")
        expected = _expected_type(known[key])
        try:
            bound[key] = _convert(value, expected)
        except ValueError:
            raise ValueError(f"{name} parameter {key}: expected {expected.__name__}, got {value}") from None
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
        raise ValueError(f"unknown program {spec}{_suggest(spec, PROGRAMS)}; give a built-in "
                         f"({', '.join(sorted(PROGRAMS))}), FILE.py:FUNCTION or package.module:FUNCTION")
    module_file = Path(source)
    before = set(sys.modules)
    if source.endswith(".py") or module_file.exists():
        if not module_file.is_file():
            raise ValueError(f"program file {source} does not exist")
        module = _load_file(module_file)
        root = module_file.resolve().parent
    else:
        try:
            module = importlib.import_module(source)
        except ImportError as exc:
            raise ValueError(f"cannot import module {source!r} for --program {spec}: {exc}") from None
        module_file = Path(module.__file__ or "")
        top = sys.modules.get(source.partition(".")[0])
        root = Path(getattr(top, "__file__", None) or module_file).resolve().parent
    loaded = _LOADED.setdefault(str(module_file.resolve()), set())
    loaded.update(set(sys.modules) - before)  # loaded with it now (the first time it is loaded here)
    fn = getattr(module, attr, None)
    if fn is None:
        functions = [n for n, v in vars(module).items() if inspect.iscoroutinefunction(v) and not n.startswith("_")]
        raise ValueError(f"{source} has no function {attr!r}{_suggest(attr, functions)}; its async functions: "
                         f"{', '.join(functions) or 'none'}")
    USER_FILES.add(str(module_file.resolve()))
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
    modules = _user_modules([*loaded, *_modules_under(root)], module_file)
    return ProgramEntry(fn, doc or f"{attr} from {module_file.name}", is_secure=not takes_party,
                        own_params=tuple(getattr(fn, "own_params", ())), digest=digest, modules=modules)


_LOADED: dict[str, set[str]] = {}  # a program file -> the modules loaded with it


def _installed_roots() -> tuple[Path, ...]:
    """Where installed libraries live: the standard library, site-packages, and this library's own
    packages (agreed by their own digest, mpc/library.py)."""
    import mpc
    import protocols

    paths = {sysconfig.get_paths()[k] for k in ("stdlib", "platstdlib", "purelib", "platlib")}
    paths |= {*site.getsitepackages(), site.getusersitepackages()}
    roots = [Path(p).resolve() for p in paths]
    roots += [Path(str(m.__file__)).resolve().parent for m in (mpc, protocols, sys.modules[__package__ or "parties"])]
    return tuple(roots)


def _modules_under(root: Path) -> list[str]:
    """Modules already loaded from the program's own directory or package (loaded before it, say)."""
    found = []
    for name, module in list(sys.modules.items()):
        file = getattr(module, "__file__", None)
        if file and Path(file).resolve().is_relative_to(root):
            found.append(name)
    return found


def _user_modules(names: Iterable[str], entry: Path) -> tuple[tuple[str, str], ...]:
    """(name, SHA-256) of each module among `names` loaded from a file outside the installed libraries,
    the program's own file aside (its digest is the program's)."""
    roots = _installed_roots()
    entry = entry.resolve()
    out = {}
    for name in set(names):
        file = getattr(sys.modules.get(name), "__file__", None)
        if not file or name.startswith("mpc_user_program_"):
            continue
        path = Path(file).resolve()
        if path == entry or not path.is_file() or any(path.is_relative_to(r) for r in roots):
            continue
        out[name] = hashlib.sha256(path.read_bytes()).hexdigest()
    return tuple(sorted(out.items()))


# The source files of the user's programs loaded in this process: an error's traceback is searched for
# their frames, so that the error line names the line of the user's code (user_frame).
USER_FILES: set[str] = set()


def _suggest(word: str, known: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(known), n=1, cutoff=0.6)
    return f" (did you mean {close[0]}?)" if close else ""


def user_frame(exc: BaseException) -> str | None:
    """`file.py:LINE` of the innermost frame of a user's program in the error's traceback (None if the
    error did not pass through one)."""
    where = None
    for frame in traceback.extract_tb(exc.__traceback__):
        if frame.filename in USER_FILES:
            where = f"{Path(frame.filename).name}:{frame.lineno}"
    cause = exc.__cause__ or exc.__context__
    if where is None and cause is not None and cause is not exc:
        return user_frame(cause)
    return where


def _load_file(path: Path) -> Any:
    """Import a program file as its own module; its folder goes first on sys.path, as for a script, so it
    can import its neighbours."""
    path = path.resolve()
    USER_FILES.add(str(path))
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
        where = user_frame(exc)
        raise ValueError(f"program file {path} failed to load: {type(exc).__name__}: {exc}"
                         f"{f' at {where}' if where else ''}") from exc
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
    return ", ".join(p.name if p.default is inspect.Parameter.empty else f"{p.name}={_as_typed(p.default)}"
                     for p in _parameters(find_program(name))) or "none"


def _as_typed(value: Any) -> str:
    """A default as one would type it after -p NAME= (data, not PosixPath('data'))."""
    if isinstance(value, str):
        return value if value else "''"
    return str(value) if isinstance(value, Path | int | float | bool) or value is None else repr(value)


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


def own_params(name: str) -> set[str]:
    """The parameters of program `name` that are each party's own: those typed `Path` (a party's own file
    or directory, by annotation or default) and those listed in its `own_params`. Never sent to peers."""
    entry = find_program(name)
    return {p.name for p in _parameters(entry) if _expected_type(p) is Path} | set(entry.own_params)


def program_setup(name: str, params: dict[str, Any]) -> dict[str, str]:
    """What every party must agree on about the program: its name, every parameter but its own ones
    (defaults filled in, so that `flags_to=both` given or left out is the same program) and, for a user's
    program, the digest of its source and of each module it loads from outside the installed libraries
    (its path may differ from host to host; its code may not). Own parameters are left out entirely."""
    entry = find_program(name)
    own = own_params(name)
    defaults = {p.name: p.default for p in _parameters(entry) if p.default is not inspect.Parameter.empty}
    full = {**defaults, **bind_params(name, params, complete=False)}
    shared = ", ".join(f"{k}={full[k]!r}" for k in sorted(full) if k not in own)
    label = name if name in PROGRAMS else f"{name.rpartition(':')[2]}"
    setup = {"program": f"{label}({shared})"}
    if entry.digest is not None:
        setup["program code"] = f"sha256 {entry.digest[:16]}"
    for module, digest in entry.modules:
        setup[f"program module {module}"] = f"sha256 {digest[:16]}"
    return setup

"""What every `mpc` command shares: the command classes (global flags anywhere, the topology argument,
"did you mean"), the error type, the topology loader, option groups, console and JSON helpers.

Conventions every command follows (so that a new one is a small module, see parties/cli.py):
- the topology is the first positional argument, CONFIG (`--config FILE` is accepted with a note);
- `--debug` and `-v/--verbose` are accepted anywhere on the line, before or after the subcommand;
- expected failures raise CliError (one `error:` line on stderr, exit 1); a bad topology exits 2.
"""

from __future__ import annotations

import asyncio
import difflib
import importlib
import logging
import sys
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import click

from mpc.config import ConfigError, Topology, latency_problems, load_topology

EXIT_CONFIG = 2

# Errors of a program's own code (a bug rather than bad input): their text alone ("'missing'") says little
PROGRAM_ERRORS = (LookupError, AttributeError, TypeError, NameError, ZeroDivisionError, AssertionError, EOFError)


class CliError(click.ClickException):
    """An expected failure: message to stderr, exit 1."""

    def show(self, file: Any = None) -> None:
        click.echo(f"error: {self.format_message()}", err=True)  # the same form as every other error line


def describe(exc: BaseException) -> str:
    """One line for an error: its text; for an error raised in the user's program, the line there that
    raised it; for a program's own bugs, its class too (and where the traceback is)."""
    from mpc.transport import PeerError
    from parties.programs import user_frame

    if isinstance(exc, PeerError):  # the runtime's own account of a peer: no line of ours caused it
        return str(exc)
    if isinstance(exc, MemoryError):  # its text is often empty
        return f"out of memory (MemoryError{f': {exc}' if str(exc) else ''})"
    where = user_frame(exc)
    if isinstance(exc, PROGRAM_ERRORS):
        return f"{type(exc).__name__}: {exc}{f' at {where}' if where else ''} (run with --debug for the traceback)"
    return f"{exc} (at {where}; run with --debug for the traceback)" if where else str(exc)


def suggest(word: str, known: Iterable[str]) -> str:
    """' (did you mean X?)' for the closest known word, or ''."""
    close = difflib.get_close_matches(word, list(known), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


# -- global flags, accepted on every command and group ---------------------------------------------------

def _remember(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    if value:
        root = ctx.find_root()
        root.ensure_object(dict)
        root.obj[param.name] = True


def _global_flags() -> list[click.Option]:
    return [
        click.Option(["--debug"], is_flag=True, expose_value=False, callback=_remember,
                     help="Show tracebacks and debug logs (anywhere on the line)."),
        click.Option(["-v", "--verbose"], is_flag=True, expose_value=False, callback=_remember,
                     help="Show debug logs (anywhere on the line)."),
    ]


def debug(ctx: click.Context) -> bool:
    """--debug was given, before or after the subcommand."""
    return bool((ctx.find_root().obj or {}).get("debug"))


def verbose(ctx: click.Context) -> bool:
    """-v/--verbose (or --debug) was given."""
    return debug(ctx) or bool((ctx.find_root().obj or {}).get("verbose"))


def global_args(ctx: click.Context) -> list[str]:
    """The global flags to pass on to a child `mpc` process."""
    return ["--debug"] if debug(ctx) else ["--verbose"] if verbose(ctx) else []


class MpcCommand(click.Command):
    """A command with the global flags and the topology conventions (CONFIG, or --config with a note)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.params.extend(_global_flags())

    def invoke(self, ctx: click.Context) -> Any:
        if "config_option" in ctx.params:
            _merge_config(ctx, getattr(self.callback, "_config_required", False))
        return super().invoke(ctx)


class MpcGroup(click.Group):
    """A group with the global flags, "did you mean" for a misspelt command, and commands imported only
    when used: `lazy` maps a name to "module:attribute" (the command object)."""

    command_class = MpcCommand

    def __init__(self, *args: Any, lazy: Mapping[str, str] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.params.extend(_global_flags())
        self.lazy = dict(lazy or {})

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.lazy:
            module, _, attr = self.lazy[cmd_name].partition(":")
            command = getattr(importlib.import_module(module), attr)
            assert isinstance(command, click.Command)
            return command
        return super().get_command(ctx, cmd_name)

    def resolve_command(self, ctx: click.Context, args: list[str]) -> Any:
        name = args[0] if args else ""
        if name and not name.startswith("-") and self.get_command(ctx, name) is None:
            ctx.fail(f"no command {name!r}{suggest(name, self.list_commands(ctx))}; "
                     f"commands: {', '.join(self.list_commands(ctx))}")
        return super().resolve_command(ctx, args)


def group(**kwargs: Any) -> Callable[[Callable[..., Any]], MpcGroup]:
    """A subcommand group (like `mpc keys`) with the shared conventions."""
    return click.group(cls=MpcGroup, **kwargs)  # type: ignore[return-value]


def command(**kwargs: Any) -> Callable[[Callable[..., Any]], MpcCommand]:
    """A command with the shared conventions (use it instead of click.command)."""
    return click.command(cls=MpcCommand, **kwargs)  # type: ignore[return-value]


# -- the topology: CONFIG, the first positional argument, everywhere ------------------------------------

def topology_argument(required: bool = True, help_default: str = "") -> Callable[[Any], Any]:
    """The topology file as the first positional argument CONFIG; `--config FILE` is accepted too (with a
    note) so older command lines keep working. Optional (None) where the command has a default topology."""

    def decorate(f: Any) -> Any:
        f._config_required = required
        f = click.option("--config", "config_option", type=click.Path(dir_okay=False), default=None, hidden=True,
                         help="Same as the CONFIG argument.")(f)
        return click.argument("config", type=click.Path(dir_okay=False), required=False,
                              metavar="CONFIG" if required else "[CONFIG]")(f)

    return decorate


def _merge_config(ctx: click.Context, required: bool) -> None:
    option = ctx.params.pop("config_option", None)
    if option is not None:
        if ctx.params.get("config") not in (None, option):
            raise click.UsageError(f"two topologies given: {ctx.params['config']} and --config {option}")
        click.echo(f"note: the topology is the first argument (`mpc {ctx.info_name} {option} ...`); "
                   "--config is accepted too", err=True)
        ctx.params["config"] = option
    if required and ctx.params.get("config") is None:
        raise click.UsageError("missing the topology file CONFIG (e.g. configs/local-2banks-helper.yaml)", ctx)


def load(config: str, latency_ms: float | None = None, bandwidth_mbps: float | None = None,
         timeout_s: float | None = None) -> Topology:
    """The topology with the command line's network overrides, checked again with them (exit 2 if bad)."""
    try:
        topo = load_topology(config).with_network(latency_ms, bandwidth_mbps)
        overridden = latency_problems(topo, timeout_s)
        if overridden:
            raise ConfigError(config, [f"{p} (with --latency-ms/--timeout-s)" for p in overridden])
        return topo
    except ConfigError as exc:
        click.echo(f"error: invalid topology {exc.source}", err=True)
        for problem in exc.problems:
            click.echo(f"  {exc.source}: {problem}", err=True)
        sys.exit(EXIT_CONFIG)


# -- option groups --------------------------------------------------------------------------------------

def parse_params(params: tuple[str, ...]) -> dict[str, str]:
    """`-p KEY=VALUE` pairs as text; the program's signature gives each its type (parties/programs.py)."""
    out: dict[str, str] = {}
    for item in params:
        key, sep, value = item.partition("=")
        if not sep or not key.isidentifier():
            raise click.BadParameter(f"expected KEY=VALUE, got {item}", param_hint="--param")
        if key in out:
            raise click.BadParameter(f"{key} given twice ({out[key]} and {value})", param_hint="--param")
        out[key] = value
    return out


def network_options(f: Any) -> Any:
    f = click.option("--bandwidth-mbps", type=click.FloatRange(min=0, min_open=True), default=None,
                     help="Override the emulated bandwidth of every link (Mbit/s).")(f)
    f = click.option("--latency-ms", type=click.FloatRange(min=0), default=None,
                     help="Override the emulated one-way latency of every link (ms).")(f)
    return f


CONNECTIVITY_CHECK = "mesh"


def program_options(f: Any) -> Any:
    f = click.option("--param", "-p", "params", multiple=True, metavar="KEY=VALUE",
                     help="A parameter of the program (repeatable), e.g. -p data_dir=data; `mpc programs` "
                          "lists each built-in's.")(f)
    f = click.option("--program", default=None,
                     help="Program to run: a built-in (see `mpc programs`), FILE.py:FUNCTION or "
                          "package.module:FUNCTION (your own async def FUNCTION(ctx, ...)). Without it: the "
                          f"connectivity check `{CONNECTIVITY_CHECK}`.")(f)
    f = click.option("--timeout-s", type=click.FloatRange(min=0, min_open=True), default=None,
                     help="Override the topology's timeout for every wait on a peer.")(f)
    return f


def default_program(program: str | None, *, quiet: bool = False) -> str:
    """The program to run: the one given, else the connectivity check, said plainly on stderr."""
    if program is not None:
        return program
    if not quiet:
        click.echo(f"note: no --program given: running the connectivity check `{CONNECTIVITY_CHECK}` (every "
                   "party sends to every other); `mpc programs` lists the programs", err=True)
    return CONNECTIVITY_CHECK


def output_option(f: Any) -> Any:
    return click.option("--output", "output_dir", type=click.Path(file_okay=False), default=None,
                        help="Directory where each party writes its own results (CSV for tables, JSON "
                             "otherwise).")(f)


# -- output ---------------------------------------------------------------------------------------------

def console(stderr: bool = False) -> Any:
    """A rich console; wide enough for the tables when output is not a terminal (logs, CI)."""
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    return Console(stderr=stderr) if stream.isatty() else Console(stderr=stderr, width=170)


def setup_logging(ctx: click.Context, prefix: str) -> None:
    level = logging.DEBUG if verbose(ctx) else logging.INFO
    logging.basicConfig(stream=sys.stderr, level=level, format=f"{prefix}%(levelname)s %(message)s")


def jsonable(value: Any) -> Any:
    """json.dumps' default: numpy arrays and scalars, a DataFrame as records; an awaitable left unawaited
    is a program bug, said so."""
    import numpy as np

    if isinstance(value, asyncio.Future):
        raise TypeError("the program returned an operation that was not awaited (an asyncio Task): write "
                        "`await ctx.reveal(...)`")
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if hasattr(value, "to_dict") and hasattr(value, "columns"):  # a pandas DataFrame
        return value.to_dict(orient="list")
    if hasattr(value, "isoformat"):
        return value.isoformat()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")

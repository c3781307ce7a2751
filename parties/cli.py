"""The `mpc` command line, the composition root: it wires the runtime (`mpc/`), the programs, the demos
and the benchmarks together, so it sits in the top layer. Errors go to stderr with a non-zero exit and no
traceback unless --debug.

Each command is its own module in parties/commands/, imported only when that command runs (start-up
time). Adding a command is a small local change: write parties/commands/NAME.py with a command made by
`parties.commands.common.command()` (it gets --debug/-v anywhere and the topology as CONFIG), then add its
line to COMMANDS below. parties/commands/common.py holds what commands share.
"""

from __future__ import annotations

import sys
from typing import Any

import click

from parties.commands.common import CliError, MpcGroup, describe

COMMANDS = {
    "check": "parties.commands.check:check",
    "programs": "parties.commands.programs:programs",
    "run": "parties.commands.run:run",
    "launch": "parties.commands.launch:launch",
    "emulate": "parties.commands.emulate:emulate",
    "bench": "parties.commands.bench:bench",
    "keys": "parties.commands.keys:keys",
    "demo": "parties.commands.demo:demo",
    "serve": "parties.serve.commands:serve",
}


class EndOfInput(CliError):
    """An EOFError out of a command (a program's, a truncated file's): an error, not an interrupt. Click
    turns EOFError into an Abort, which the CLI would report as Ctrl-C (exit 130), the cause lost."""

    def __init__(self, error: EOFError):
        super().__init__(describe(error))


class _Commands(MpcGroup):
    """The CLI's group: an EOFError leaves a command as EndOfInput (see there)."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except EOFError as exc:
            raise EndOfInput(exc) from exc


@click.group(cls=_Commands, lazy=COMMANDS, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="mpc")
@click.pass_context
def cli(ctx: click.Context) -> None:
    """Secure multi-party computation: parties, helper, and the programs they run together.

    Every command that needs a topology takes it as its first argument, CONFIG; --debug and -v work
    anywhere on the line."""
    ctx.ensure_object(dict)


def main() -> None:
    """Entry point: run the CLI, turning unexpected errors into one line unless --debug."""
    debug = "--debug" in sys.argv[1:]
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except (click.Abort, KeyboardInterrupt):
        click.echo("interrupted; every party process was stopped", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except Exception as exc:
        if debug:
            raise
        click.echo(f"error: {describe(exc)}", err=True)
        sys.exit(1)


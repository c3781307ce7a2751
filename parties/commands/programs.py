"""`mpc programs`: the built-in programs and their parameters."""

from __future__ import annotations

import click

from parties.commands.common import command


@command()
def programs() -> None:
    """List the built-in programs and their parameters (-p NAME=VALUE)."""
    from parties.programs import PROGRAMS, program_usage

    for name, entry in sorted(PROGRAMS.items()):
        click.echo(f"{name:<12} {entry.description}\n{'':<12} parameters: {program_usage(name)}")

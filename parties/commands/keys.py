"""`mpc keys generate`: CurveZMQ keypairs for the parties."""

from __future__ import annotations

from pathlib import Path

import click

from parties.commands.common import CliError, group


@group()
def keys() -> None:
    """CurveZMQ keypairs for the parties."""


@keys.command("generate")
@click.argument("directory", type=click.Path(file_okay=False))
@click.option("--party", "parties", multiple=True, required=True, help="A party name (repeatable).")
@click.option("--force", is_flag=True, help="Overwrite existing key files.")
def keys_generate(directory: str, parties: tuple[str, ...], force: bool) -> None:
    """Write NAME.key (public) and NAME.key_secret (secret, mode 0600) for each --party into DIRECTORY."""
    from mpc.keys import generate

    existing = [p for p in parties if (Path(directory) / f"{p}.key_secret").exists()]
    if existing and not force:
        raise CliError(f"{directory}: keys already exist for {', '.join(existing)} (use --force to replace them)")
    for name, (public, secret) in generate(directory, list(parties)).items():
        click.echo(f"{name}: public {public}  secret {secret} (0600)")
    click.echo("Give every party's topology the public_key paths; keep each .key_secret on its own host only.")

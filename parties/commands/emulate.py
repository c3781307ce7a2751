"""`mpc emulate CONFIG --program P`: a secure program on cleartext in one process, with its findings."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from parties.commands.common import command, jsonable, load, parse_params, topology_argument


@command()
@topology_argument()
@click.option("--program", required=True, help="The secure program: FILE.py:FUNCTION, package.module:FUNCTION or "
              "a built-in secure program.")
@click.option("--param", "-p", "params", multiple=True, metavar="KEY=VALUE",
              help="A parameter of the program (repeatable), e.g. -p data_dir=data.")
@click.option("--json", "as_json", is_flag=True, help="Print the findings, predicted costs and results as JSON.")
def emulate(config: str, program: str, params: tuple[str, ...], as_json: bool) -> None:
    """Run a secure program's every compute party in this process on cleartext: report each value the
    secure run would get wrong (fixed-point overflow, comparisons out of range), with the line of the
    program, and predict its online rounds and bytes. Exit 1 if anything was found."""
    topo = load(config)
    from parties.programs import bind_params, find_program
    from protocols.interface.emulation import emulate as run_emulation

    try:
        entry = find_program(program)
        bound = bind_params(program, parse_params(params))
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--program/--param") from None
    if not entry.is_secure:
        raise click.BadParameter(f"{program} takes the bare Party: only secure programs (ctx) can be emulated",
                                 param_hint="--program")

    async def fn(ctx: Any) -> Any:
        return await entry.run(ctx, **bound)

    report = run_emulation(topo, fn)
    if as_json:
        click.echo(json.dumps({"ok": report.ok, "findings": [vars(f) for f in report.findings],
                               "rounds": report.rounds, "online_bytes_per_party": report.online_bytes_per_party,
                               "messages_per_party": report.messages_per_party, "ops": report.ops,
                               "results": report.results}, default=jsonable))
    else:
        for finding in report.findings:
            click.echo(f"warning: {finding}", err=True)
        per_party = ", ".join(f"{n} {b:,} B" for n, b in report.online_bytes_per_party.items())
        click.echo(f"emulated {program} on {config}: predicted online {report.rounds} rounds, {per_party} sent")
        for name, value in report.results.items():
            click.echo(f"{name}: {json.dumps(value, default=jsonable)}")
        click.echo("no value left the range where the secure computation is correct" if report.ok else
                   f"{len(report.findings)} finding(s): the secure run would give wrong results there")
    if not report.ok:
        sys.exit(1)

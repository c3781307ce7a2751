"""`mpc check CONFIG`: validate a topology file."""

from __future__ import annotations

import json
import sys

import click

from mpc.config import topology_warnings
from parties.commands.common import EXIT_CONFIG, command, console, load, topology_argument


@command()
@topology_argument()
@click.option("--json", "as_json", is_flag=True, help="Print the validated topology as JSON.")
@click.option("--strict", is_flag=True, help="Treat warnings (a topology no secure program can run on) as errors.")
def check(config: str, as_json: bool, strict: bool) -> None:
    """Validate a topology file: print a summary, or every problem with its field (exit 2)."""
    topo = load(config)
    for warning in topology_warnings(topo):
        click.echo(f"{'error' if strict else 'warning'}: {config}: {warning}", err=True)
    if strict and topology_warnings(topo):
        sys.exit(EXIT_CONFIG)
    if as_json:
        click.echo(json.dumps(topo.model_dump(mode="json"), indent=2))
        return
    from rich.table import Table

    # The verdict line is plain text: a long path must never be wrapped by the table layout.
    click.echo(f"{config}: topology '{topo.name}' is valid")
    table = Table()
    for col in ("party", "role", "endpoint", "key"):
        table.add_column(col)
    for p in topo.parties:
        table.add_row(p.name, p.role, f"{p.host}:{p.port}", "CURVE" if p.public_key else "-")
    out = console()
    out.print(table)
    net = topo.network
    bw = f"{net.bandwidth_mbps:g} Mbit/s" if net.bandwidth_mbps else "unlimited"
    out.print(f"network: {net.latency_ms:g} ms one-way, {bw}; {len(net.links)} per-link override(s)")
    out.print(f"frac_bits={topo.frac_bits} timeout_s={topo.timeout_s:g} truncation={topo.truncation} "
              f"comparison={topo.comparison}")

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
    s = topo.session
    out.print(f"session: frac_bits={s.frac_bits} timeout_s={s.timeout_s:g} truncation={s.truncation} "
              f"comparison={s.comparison} max_message_mb={s.max_message_mb:g} "
              f"max_buffered_mb={s.max_buffered_mb:g} max_input_elements={s.max_input_elements:,}")
    net = topo.network_emulation
    bw = f"{net.bandwidth_mbps:g} Mbit/s" if net.bandwidth_mbps else "unlimited"
    out.print(f"network_emulation: {net.latency_ms:g} ms one-way, {bw}; {len(net.links)} per-link override(s)")
    links = topo.cost_links()
    declared = [f"{a}-{b}" for a, b in links if topo.declared_link(a, b) is not None]
    measured = [f"{a}-{b}" for a, b in links if topo.declared_link(a, b) is None]
    out.print("cost_model: " + ("; ".join(
        ([f"declared for {', '.join(declared)}"] if declared else [])
        + ([f"auto measures {', '.join(measured)} at the hello"] if measured else []))
        or "auto reads no link (more than two compute parties: always bits)"))

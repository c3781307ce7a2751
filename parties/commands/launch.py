"""`mpc launch CONFIG`: every party of a topology as its own process on this host."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import click

from parties.commands.common import (
    CliError,
    command,
    default_program,
    global_args,
    jsonable,
    load,
    network_options,
    output_option,
    parse_params,
    program_options,
    topology_argument,
)
from parties.commands.run import parse_start_timeout, start_timeout_option, with_workers, workers_option


@command()
@topology_argument()
@program_options
@network_options
@start_timeout_option
@output_option
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object with every party's counters.")
@workers_option
@click.pass_context
def launch(ctx: click.Context, config: str, program: str | None, params: tuple[str, ...], timeout_s: float | None,
           latency_ms: float | None, bandwidth_mbps: float | None, start_timeout: str | None,
           output_dir: str | None, as_json: bool, workers: int | None) -> None:
    """Run every party of CONFIG as its own process on this host; fail if any party fails."""
    load(config, latency_ms, bandwidth_mbps, timeout_s)  # checked with the overrides the children will get
    topo = load(config)
    program = default_program(program, quiet=as_json)
    topo = with_workers(config, topo, workers, program)
    parse_start_timeout(start_timeout)
    from mpc.localhost import secured, write_topology
    from parties.launcher import failure_summary
    from parties.launcher import launch as launch_all
    from parties.programs import bind_params

    try:
        bind_params(program, parse_params(params))
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--program/--param") from None
    args = ["--program", program]
    for p in params:
        args += ["--param", p]
    for flag, value in (("--timeout-s", timeout_s), ("--latency-ms", latency_ms),
                        ("--bandwidth-mbps", bandwidth_mbps), ("--start-timeout", start_timeout),
                        ("--workers", workers),
                        ("--output", str(Path(output_dir).resolve()) if output_dir else None)):
        if value is not None:
            args += [flag, str(value)]

    with tempfile.TemporaryDirectory(prefix="mpc-launch-") as tmp:
        keyed = secured(topo, Path(tmp))
        # a key-less topology runs with ephemeral keys: every party here gets a copy that names them
        path = str(Path(config)) if keyed is topo else str(write_topology(keyed, Path(tmp) / "topology.yaml"))
        results = launch_all(path, topo.names, args, global_args=global_args(ctx))
    failed = [r for r in results if not r.ok]
    parties: list[dict[str, Any]] = [{"name": r.name, "exit_code": r.returncode, "pid": r.pid,
                                      **(r.output.to_dict() if r.output else {}),
                                      **({"status": r.describe()} if failed else {})} for r in results]
    report = {
        "ok": not failed,
        "config": config,
        "program": program,
        "rounds": max((int(p.get("rounds", 0)) for p in parties), default=0),
        "parties": parties,
    }
    if as_json:
        click.echo(json.dumps(report, default=jsonable))
    elif not failed:  # a failed run has no counters to show: its summary (stderr) says what happened
        from parties.commands.results import print_party_table

        print_party_table(report)
        if output_dir:
            click.echo(f"each party's results are in {output_dir}/PARTY/")
    if failed:
        raise CliError(failure_summary(results))

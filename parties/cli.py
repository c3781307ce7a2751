"""The `mpc` command line, the composition root: it wires the runtime (`mpc/`), the programs, the demos
and the benchmarks together, so it sits in the top layer. Errors go to stderr with a non-zero exit and no
traceback unless --debug. Heavy modules are imported inside the commands that need them (start-up time).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from mpc.config import ConfigError, Topology, latency_problems, load_topology, topology_warnings
from mpc.records import PartyRecord
from mpc.settings import Comparison, choices
from parties.bench import OPS as BENCH_OPS

EXIT_CONFIG = 2
T = TypeVar("T")


# Errors of a program's own code (a bug rather than bad input): their text alone ("'missing'") says little
PROGRAM_ERRORS = (LookupError, AttributeError, TypeError, NameError, ZeroDivisionError, AssertionError)


def describe(exc: BaseException) -> str:
    """One line for an error: its text, with its class for a program's own bugs (and where the traceback is)."""
    if isinstance(exc, PROGRAM_ERRORS):
        return f"{type(exc).__name__}: {exc} (run `mpc --debug ...` for the traceback)"
    return str(exc)


class CliError(click.ClickException):
    """An expected failure: message to stderr, exit 1."""

    def show(self, file: Any = None) -> None:
        click.echo(f"error: {self.format_message()}", err=True)  # the same form as every other error line


def _load(config: str, latency_ms: float | None = None, bandwidth_mbps: float | None = None,
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


def _parse_params(params: tuple[str, ...]) -> dict[str, str]:
    """`-p KEY=VALUE` pairs as text; the program's signature gives each its type (parties/programs.py)."""
    out: dict[str, str] = {}
    for item in params:
        key, sep, value = item.partition("=")
        if not sep or not key.isidentifier():
            raise click.BadParameter(f"expected KEY=VALUE, got {item!r}", param_hint="--param")
        if key in out:
            raise click.BadParameter(f"{key} given twice ({out[key]!r} and {value!r})", param_hint="--param")
        out[key] = value
    return out


def _network_options(f: Any) -> Any:
    f = click.option("--bandwidth-mbps", type=click.FloatRange(min=0, min_open=True), default=None,
                     help="Override the emulated bandwidth of every link (Mbit/s).")(f)
    f = click.option("--latency-ms", type=click.FloatRange(min=0), default=None,
                     help="Override the emulated one-way latency of every link (ms).")(f)
    return f


def _program_options(f: Any) -> Any:
    f = click.option("--param", "-p", "params", multiple=True, metavar="KEY=VALUE",
                     help="A parameter of the program (repeatable), e.g. -p steps=20.")(f)
    f = click.option("--program", default="mesh", show_default=True,
                     help="Program to run: a built-in (see `mpc programs`), FILE.py:FUNCTION or "
                          "package.module:FUNCTION (your own async def FUNCTION(ctx, ...)).")(f)
    f = click.option("--timeout-s", type=click.FloatRange(min=0, min_open=True), default=None,
                     help="Override the topology's timeout for every wait on a peer.")(f)
    return f


def _workers_option(f: Any) -> Any:
    return click.option("--workers", type=click.IntRange(min=1, max=256), default=None,
                        help="Shard workers per party (every party the same; default: the topology's `workers`, "
                             "1). For programs that run sharded; see docs/sharding.md.")(f)


def _with_workers(config: str, topo: Topology, workers: int | None, program: str | None) -> Topology:
    """The topology with --workers, checked (exit 2 if the ports of its shards clash), and the program
    checked to run sharded."""
    from parties.sharded import check_shardable, with_workers

    try:
        topo = with_workers(topo, workers)
    except ConfigError as exc:
        click.echo(f"error: invalid topology {config} with --workers {workers}", err=True)
        for problem in exc.problems:
            click.echo(f"  {config}: {problem}", err=True)
        sys.exit(EXIT_CONFIG)
    if program is not None:
        try:
            check_shardable(program, topo.workers)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--workers") from None
    return topo


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, help="Show tracebacks and debug logs.")
@click.version_option(package_name="mpc")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """Secure multi-party computation: parties, helper, and the programs they run together."""
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug


@cli.command()
@click.argument("config", type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the validated topology as JSON.")
@click.option("--strict", is_flag=True, help="Treat warnings (a topology no secure program can run on) as errors.")
def check(config: str, as_json: bool, strict: bool) -> None:
    """Validate a topology file: print a summary, or every problem with its field (exit 2)."""
    topo = _load(config)
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
    console = _console()
    console.print(table)
    net = topo.network
    bw = f"{net.bandwidth_mbps:g} Mbit/s" if net.bandwidth_mbps else "unlimited"
    console.print(f"network: {net.latency_ms:g} ms one-way, {bw}; {len(net.links)} per-link override(s)")
    console.print(f"frac_bits={topo.frac_bits} timeout_s={topo.timeout_s:g} truncation={topo.truncation} "
                  f"comparison={topo.comparison}")


@cli.command()
def programs() -> None:
    """List the built-in programs and their parameters (-p NAME=VALUE)."""
    from parties.programs import PROGRAMS, program_usage

    for name, entry in sorted(PROGRAMS.items()):
        click.echo(f"{name:<12} {entry.description}\n{'':<12} parameters: {program_usage(name)}")


@cli.command()
@click.argument("config", type=click.Path(dir_okay=False))
@click.option("--party", "party_name", required=True, help="Which party of the topology this process is.")
@_program_options
@_network_options
@click.option("--secret-key", type=click.Path(dir_okay=False), default=None,
              help="This party's secret key file (default: its secret_key in the topology).")
@click.option("--json", "as_json", is_flag=True, help="Print this party's result and counters as JSON.")
@_workers_option
@click.option("--shard", type=click.IntRange(min=0), default=None, hidden=True)  # set by a sharded party's coordinator
@click.option("--hub", default=None, hidden=True)
@click.pass_context
def run(ctx: click.Context, config: str, party_name: str, program: str, params: tuple[str, ...],
        timeout_s: float | None, latency_ms: float | None, bandwidth_mbps: float | None, secret_key: str | None,
        as_json: bool, workers: int | None, shard: int | None, hub: str | None) -> None:
    """Run one party (one per host in a deployment over several machines)."""
    topo = _with_workers(config, _load(config, latency_ms, bandwidth_mbps, timeout_s), workers, program)
    if party_name not in topo.names:
        raise CliError(f"{config}: no party named {party_name!r} (parties: {', '.join(topo.names)})")
    from threadpoolctl import threadpool_limits

    from mpc.runtime import run_party
    from parties import sharded
    from parties.programs import get_program, program_setup

    try:
        parsed = _parse_params(params)
        prog = get_program(program, parsed)
        setup = program_setup(program, parsed)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--program") from None
    _setup_logging(ctx.obj["debug"], prefix="" if as_json else f"{party_name}: ")
    shard_info = None
    if topo.workers > 1 and shard is None:  # this process coordinates the party's shard workers
        job = sharded.ShardJob(program, params, timeout_s, latency_ms, bandwidth_mbps, secret_key)
        global_args = ["--debug"] if ctx.obj["debug"] else []
        record = _run_party_process(lambda: sharded.coordinate(config, topo, party_name, job, global_args),
                                    ctx.obj["debug"], as_json, party_name, topo.party(party_name).role)
        if as_json:
            click.echo(record.to_json(default=_jsonable))
        else:
            _print_launch_table({"program": program, "config": config, "parties": [record.to_dict()]})
        return
    if shard is not None:
        if hub is None or shard >= topo.workers:
            raise click.BadParameter("--shard I needs --hub and I below --workers", param_hint="--shard")
        topo, extra, shard_info = sharded.worker_setup(topo, shard, hub)
        setup = {**setup, **extra}

    def main() -> Any:
        work = run_party(topo, party_name, prog, timeout_s=timeout_s, secret_key=secret_key, setup=setup,
                         shard=shard_info)
        return work if shard_info is None else sharded.as_worker(work)

    role = topo.party(party_name).role
    with threadpool_limits(1):
        outcome = _run_party_process(main, ctx.obj["debug"], as_json, party_name, role)
    record = PartyRecord(party_name, role, result=outcome.value, counters=outcome.summary())
    if as_json:
        click.echo(record.to_json(default=_jsonable))
    else:
        _print_launch_table({"program": program, "config": config, "parties": [record.to_dict()]})


def _failure_record(name: str, role: str, exc: BaseException) -> PartyRecord:
    """A failed party's JSON line: the error and the peer it names as the cause (None: its own error)."""
    from mpc.transport import PeerError

    return PartyRecord(name, role, ok=False, error_class=type(exc).__name__,
                       error="interrupted" if isinstance(exc, asyncio.CancelledError) else describe(exc),
                       cause=exc.peer if isinstance(exc, PeerError) else None)


def _run_party_process(main: Callable[[], Awaitable[T]], debug: bool, as_json: bool = False, name: str = "",
                       role: str = "") -> T:
    """`_run_supervised`, and on failure the party's JSON failure record (with --json: the launcher reads
    who failed, and because of whom, from it)."""
    try:
        return _run_supervised(main, debug)
    except BaseException as exc:
        if as_json:
            click.echo(_failure_record(name, role, exc).to_json())
        if isinstance(exc, asyncio.CancelledError):
            raise CliError(f"{name}: interrupted") from None
        raise


def _run_supervised(main: Callable[[], Awaitable[T]], debug: bool) -> T:
    """asyncio.run(main()) for a party's process: SIGTERM/SIGINT cancel it (the party aborts cleanly),
    and tasks it leaves behind are cancelled and awaited here, quietly, before the loop closes; a task
    failing as it is cancelled would otherwise print tracebacks at asyncio.run's shutdown."""

    async def supervised() -> T:
        task = asyncio.current_task()
        loop = asyncio.get_running_loop()
        assert task is not None
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, task.cancel)
        if not debug:
            loop.set_exception_handler(_log_loop_error)
        try:
            return await main()
        finally:
            await _cancel_leftover_tasks()

    return asyncio.run(supervised())


async def _cancel_leftover_tasks(timeout_s: float = 2.0) -> None:
    me = asyncio.current_task()
    left = [t for t in asyncio.all_tasks() if t is not me and not t.done()]
    for t in left:
        t.cancel()
    if left:
        done, _ = await asyncio.wait(left, timeout=timeout_s)
        for t in done:
            if not t.cancelled():
                t.exception()  # retrieved: the run's error is reported once, by the party itself


def _log_loop_error(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    """An error asyncio could not hand to anyone: one log line, no traceback (--debug shows it)."""
    exc = context.get("exception")
    logging.getLogger("mpc").debug("%s: %r", context.get("message"), exc)


@cli.command()
@click.argument("config", type=click.Path(dir_okay=False))
@click.option("--program", required=True, help="The secure program: FILE.py:FUNCTION, package.module:FUNCTION or "
              "a built-in secure program.")
@click.option("--param", "-p", "params", multiple=True, metavar="KEY=VALUE", help="A parameter of the program.")
@click.option("--json", "as_json", is_flag=True, help="Print the findings, predicted costs and results as JSON.")
def emulate(config: str, program: str, params: tuple[str, ...], as_json: bool) -> None:
    """Run a secure program's every compute party in this process on cleartext: report each value the
    secure run would get wrong (fixed-point overflow, comparisons out of range), with the line of the
    program, and predict its online rounds and bytes. Exit 1 if anything was found."""
    topo = _load(config)
    from parties.programs import bind_params, find_program
    from protocols.interface.emulation import emulate as run_emulation

    try:
        entry = find_program(program)
        bound = bind_params(program, _parse_params(params))
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
                               "results": report.results}, default=_jsonable))
    else:
        for finding in report.findings:
            click.echo(f"warning: {finding}", err=True)
        per_party = ", ".join(f"{n} {b:,} B" for n, b in report.online_bytes_per_party.items())
        click.echo(f"emulated {program} on {config}: predicted online {report.rounds} rounds, {per_party} sent")
        for name, value in report.results.items():
            click.echo(f"{name}: {json.dumps(value, default=_jsonable)}")
        click.echo("no value left the range where the secure computation is correct" if report.ok else
                   f"{len(report.findings)} finding(s): the secure run would give wrong results there")
    if not report.ok:
        sys.exit(1)


@cli.command()
@click.argument("config", type=click.Path(dir_okay=False))
@_program_options
@_network_options
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object with every party's counters.")
@_workers_option
@click.pass_context
def launch(ctx: click.Context, config: str, program: str, params: tuple[str, ...], timeout_s: float | None,
           latency_ms: float | None, bandwidth_mbps: float | None, as_json: bool, workers: int | None) -> None:
    """Run every party of CONFIG as its own process on this host; fail if any party fails."""
    _load(config, latency_ms, bandwidth_mbps, timeout_s)  # checked with the overrides the children will get
    topo = _with_workers(config, _load(config), workers, program)
    from parties.launcher import failure_summary
    from parties.launcher import launch as launch_all
    from parties.programs import bind_params

    try:
        bind_params(program, _parse_params(params))
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--program/--param") from None
    args = ["--program", program]
    for p in params:
        args += ["--param", p]
    for flag, value in (("--timeout-s", timeout_s), ("--latency-ms", latency_ms),
                        ("--bandwidth-mbps", bandwidth_mbps), ("--workers", workers)):
        if value is not None:
            args += [flag, str(value)]
    global_args = ["--debug"] if ctx.obj["debug"] else []
    import tempfile

    from mpc.localhost import secured, write_topology

    with tempfile.TemporaryDirectory(prefix="mpc-launch-") as tmp:
        keyed = secured(topo, Path(tmp))
        # a key-less topology runs with ephemeral keys: every party here gets a copy that names them
        path = str(Path(config)) if keyed is topo else str(write_topology(keyed, Path(tmp) / "topology.yaml"))
        results = launch_all(path, topo.names, args, global_args=global_args)
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
        click.echo(json.dumps(report, default=_jsonable))
    elif not failed:  # a failed run has no counters to show: its summary (stderr) says what happened
        _print_launch_table(report)
    if failed:
        raise CliError(failure_summary(results))


def _latency_list(ctx: click.Context, param: click.Parameter, value: str | None) -> list[float | None]:
    if value is None:
        return [None]
    try:
        out = [float(v) for v in value.split(",") if v.strip()]
    except ValueError:
        raise click.BadParameter(f"expected comma-separated milliseconds, got {value!r}") from None
    if not out or any(v < 0 for v in out):
        raise click.BadParameter("latencies must be >= 0 ms")
    return list(out)


@cli.command()
@click.option("--config", type=click.Path(dir_okay=False), default=None,
              help="Topology to run on (default: two banks and the helper on localhost, free ports).")
@click.option("--op", "ops", default="mul,matmul", show_default=True,
              help=f"Comma-separated ops: {', '.join(BENCH_OPS)}.")
@click.option("--method", "methods", default="auto", show_default=True, metavar="M[,M...]",
              help="Comparison method(s) for lt, eq, relu, max and the functions: auto, dcf, compact, bits; "
                   "several run each.")
@click.option("--n", type=click.IntRange(min=1), default=100_000, show_default=True,
              help="Elements per operand (matmul: two sqrt(n) x sqrt(n) matrices; fraud: accounts).")
@click.option("--repeat", type=click.IntRange(min=1), default=3, show_default=True)
@click.option("--latency-ms", "latencies", callback=_latency_list, default=None, metavar="L[,L...]",
              help="Emulated one-way latency of every link; several values run the ops at each.")
@click.option("--bandwidth-mbps", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Emulated bandwidth of every link (Mbit/s).")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False), default=None,
              help="Draw wall time against latency per op to this PNG (needs matplotlib).")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list of records.")
@click.pass_context
def bench(ctx: click.Context, config: str | None, ops: str, methods: str, n: int, repeat: int,
          latencies: list[float | None], bandwidth_mbps: float | None, plot_path: str | None, as_json: bool) -> None:
    """Measure secure operations: online rounds, bytes, messages and wall time; dealer bytes and time."""
    from mpc.localhost import default_topology
    from parties.bench import OPS
    from parties.bench_driver import check_plot, fit_latency_model, plot, run_bench

    if plot_path:
        try:
            check_plot(plot_path)  # before the benchmark, which can take minutes
        except RuntimeError as exc:
            raise click.BadParameter(str(exc).removeprefix("--plot: "), param_hint="--plot") from None

    names = [o.strip() for o in ops.split(",") if o.strip()]
    unknown = [o for o in names if o not in OPS]
    if unknown:
        raise click.BadParameter(f"unknown op(s) {', '.join(unknown)}; known: {', '.join(OPS)}", param_hint="--op")
    method_list = [m.strip() for m in methods.split(",") if m.strip()]
    if not method_list or any(m not in set(Comparison) for m in method_list):
        raise click.BadParameter(f"expected {choices(Comparison)} (comma-separated), got {methods!r}",
                                 param_hint="--method")
    if len(method_list) > 1:
        # arithmetic ops do not depend on the comparison method: run them once
        plan = [(m, [o for o in names if OPS[o].methods or i == 0]) for i, m in enumerate(method_list)]
    else:
        plan = [(method_list[0], names)]
    topo = _load(config) if config else default_topology()
    for latency in latencies:
        try:
            too_slow = latency_problems(topo.with_network(latency, bandwidth_mbps))
        except ConfigError as exc:
            too_slow = exc.problems
        if too_slow:
            raise click.BadParameter(f"{too_slow[0]}", param_hint="--latency-ms/--bandwidth-mbps")
    records: list[dict[str, Any]] = []
    try:
        from rich.progress import Progress

        with Progress(console=_console(stderr=True), transient=True, disable=as_json) as progress:
            task = progress.add_task(f"{', '.join(names)} at n={n:,} x {repeat}",
                                     total=len(latencies) * sum(1 for _, o in plan if o))
            for method, op_names in plan:
                if op_names:
                    records += run_bench(topo, op_names, n, repeat, latencies, bandwidth_mbps, method,
                                         debug=ctx.obj["debug"], on_progress=lambda _: progress.advance(task))
    except RuntimeError as exc:
        raise CliError(str(exc)) from None
    records = fit_latency_model(records)
    # The results first: a plot that fails (the disk filled up meanwhile) must not lose them.
    if as_json:
        click.echo(json.dumps(records))
    else:
        _print_bench_table(records, repeat)
    if plot_path:
        try:
            plot(records, plot_path)
        except RuntimeError as exc:
            raise CliError(f"{exc} (the results are above)") from None
        if not as_json:
            click.echo(f"plot written to {plot_path}")


@cli.group()
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


@cli.group()
def demo() -> None:
    """Demonstrations of what mpc is for."""


@demo.command()
@click.option("--config", type=click.Path(dir_okay=False), default=None,
              help="Topology (two banks and a helper); default: all on localhost, free ports.")
@click.option("--data", "data_dir", type=click.Path(file_okay=False), default=None,
              help="Directory with accounts.csv, bank_a.csv, bank_b.csv (labels.csv optional); default: synthetic.")
@click.option("--accounts", type=click.IntRange(min=1), default=5000, show_default=True,
              help="Number of synthetic accounts.")
@click.option("--seed", type=int, default=7, show_default=True, help="Seed of the synthetic data.")
@click.option("--latency-ms", type=click.FloatRange(min=0), default=None,
              help="Emulated one-way latency on every link (default 0; 25 with --query).")
@click.option("--method", type=click.Choice([c.value for c in Comparison]), default=None,
              help="Comparison method (default: the topology's, auto).")
@click.option("--reveal-scores", is_flag=True, help="Also open the scores (to both banks) and check their error.")
@click.option("--flags-to", type=click.Choice(["both", "own"]), default="both", show_default=True,
              help="Open every flag to both banks, or to each bank only its own customers' flags.")
@click.option("--query", default=None, metavar="ACCOUNT_ID",
              help="Score one account as a serving request would (WAN topology by default).")
@click.option("--write-data", type=click.Path(file_okay=False), default=None,
              help="Only write the synthetic data set to this directory (to inspect or replace) and exit.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@_workers_option
# -- training on shares (issue 14; parties/fraud/train.py): the default unless --plaintext-model or --query
@click.option("--plaintext-model", is_flag=True, help="Score with the shipped model trained in plaintext instead.")
@click.option("--model", "train_model", type=click.Choice(["mlp", "logistic"]), default="mlp", show_default=True,
              help="Model trained on shares: the 16-16-8-1 ReLU network or logistic regression.")
@click.option("--epochs", type=click.IntRange(min=1), default=5, show_default=True)
@click.option("--learning-rate", type=click.FloatRange(min=0, min_open=True), default=0.3, show_default=True)
@click.option("--batch-size", type=click.IntRange(min=1), default=128, show_default=True)
@click.option("--class-weight", type=click.FloatRange(min=0, min_open=True), default=3.0, show_default=True,
              help="Weight of the rare positive class in the loss.")
@click.option("--reveal-model", is_flag=True, help="Open the trained weights to both banks (a policy choice).")
@click.option("--model-out", type=click.Path(file_okay=False), default=None,
              help="Directory where each bank writes its own share of the model (model_BANK.npz).")
@click.pass_context
def fraud(ctx: click.Context, config: str | None, data_dir: str | None, accounts: int, seed: int,
          latency_ms: float | None, method: str | None, reveal_scores: bool, flags_to: str, query: str | None,
          write_data: str | None, as_json: bool, workers: int | None, **training: Any) -> None:
    """Two banks find money-mule accounts that neither can see alone, without sharing their data."""
    from parties.fraud import data as fraud_data
    from parties.fraud.demo import DemoError, DemoOptions, print_report, run

    if write_data:
        from parties.fraud.train import bank_labels, write_bank_labels

        dataset = fraud_data.generate(accounts, seed)
        out = fraud_data.write(dataset, write_data)
        assert dataset.labels is not None
        write_bank_labels(out, dataset.accounts, dict(zip(("bank_a", "bank_b"), bank_labels(dataset.labels, seed),
                                                          strict=True)))
        click.echo(f"wrote {out}/accounts.csv, bank_a.csv, bank_b.csv, labels.csv, labels_bank_a.csv, "
                   f"labels_bank_b.csv ({accounts:,} accounts)")
        return
    console = _console(stderr=True)
    t0 = time.perf_counter()
    status = console.status("fraud demo") if console.is_terminal else contextlib.nullcontext()

    def progress(stage: str, detail: str) -> None:
        """Each stage as a line on stderr (stdout stays the report, or clean JSON), and a spinner on a tty."""
        console.print(f"[{time.perf_counter() - t0:5.1f} s] {stage}: {detail}", markup=False, highlight=False)
        if console.is_terminal:
            status.update(f"{stage}: {detail}")  # type: ignore[union-attr]

    opts = DemoOptions(config=_load(config) if config else None, data_dir=data_dir, accounts=accounts, seed=seed,
                       latency_ms=latency_ms, reveal_scores=reveal_scores, flags_to=flags_to, query=query,
                       method=method, debug=ctx.obj["debug"], progress=progress,
                       model=training.pop("train_model"), workers=workers, **training)
    try:
        with status:
            report = run(opts)
    except DemoError as exc:
        raise CliError(str(exc)) from None
    if as_json:
        click.echo(json.dumps(report))
    else:
        print_report(report)


def _print_bench_table(records: list[dict[str, Any]], repeat: int) -> None:
    from rich.table import Table

    several = len({r["latency_ms"] for r in records}) > 1
    table = Table(title=f"mpc bench (medians over {repeat}; bytes per compute party; offline = dealer)")
    cols = ["op", "method", "n", "parties", "latency ms", "rounds", "bytes online", "bytes offline", "msgs",
            "online s", "min-max s", "ops/s", "dealer s", "correct"]
    if several:
        cols[-1:-1] = ["model s"]
    for col in cols:
        table.add_column(col, justify="right")
    for r in records:
        row = [r["op"], r["method"], f"{r['n']:,}", str(r["parties"]), f"{r['latency_ms']:g}", str(r["rounds"]),
               f"{r['bytes_online']:,}", f"{r['bytes_offline']:,}", str(r["messages"]), f"{r['wall_s']:.4f}",
               f"{r['wall_s_min']:.3f}-{r['wall_s_max']:.3f}",
               f"{r['ops_per_s']:,.0f}" if r["ops_per_s"] else "-", f"{r['offline_s']:.3f}"]
        if several:
            row.append(f"{r['predicted_wall_s']:.4f}")
        row.append("yes" if r["correct"] else "NO")
        table.add_row(*row)
    console = _console()
    console.print(table)
    if several:
        seen = set()
        for r in records:
            key = (r["op"], r["method"])
            if key in seen or r["fitted_s_per_ms"] is None:
                continue
            seen.add(key)
            console.print(f"{r['op']} ({r['method']}): wall grows {r['fitted_s_per_ms'] * 1000:.2f} ms per ms of "
                          f"latency; measured rounds {r['rounds']}; local compute {r['model_intercept_s']:.4f} s")
    for r in (r for r in records if "steps" in r):  # training ops: one epoch of SGD
        console.print(f"{r['op']} ({r['method']}, {r['latency_ms']:g} ms): {r['steps']} steps, "
                      f"{r['rounds_per_step']:g} rounds per step, {r['steps_per_s']:,.1f} steps/s, "
                      f"{r['bytes_online_per_step']:,.0f} bytes online and {r['bytes_offline_per_step']:,.0f} "
                      f"dealer bytes per step; epoch {r['wall_s']:.3f} s online, dealer {r['offline_s']:.3f} s")


def _print_launch_table(report: dict[str, Any]) -> None:
    from rich.table import Table

    table = Table(title=f"{report['program']} on {report['config']}")
    for col in ("party", "role", "rounds", "messages", "bytes sent", "bytes recv", "wall s"):
        table.add_column(col, justify="left" if col in ("party", "role") else "right")
    for p in report["parties"]:
        table.add_row(p["name"], str(p.get("role", "?")), str(p.get("rounds", "-")), str(p.get("messages", "-")),
                      str(p.get("bytes_sent", "-")), str(p.get("bytes_received", "-")),
                      f"{p['wall_s']:.4f}" if "wall_s" in p else "-")
    console = _console()
    console.print(table)
    for p in report["parties"]:
        console.print(f"{p['name']}: {json.dumps(_brief(p.get('result')), default=_jsonable)}", markup=False)


def _brief(value: Any, limit: int = 12) -> Any:
    """A result for people: lists longer than `limit` shortened (`--json` prints them whole)."""
    import numpy as np

    if isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, dict):
        return {k: _brief(v, limit) for k, v in value.items()}
    if isinstance(value, list):
        items = [_brief(v, limit) for v in value[:limit]]
        return items + [f"... {len(value):,} items in all (--json for every one)"] if len(value) > limit else items
    return value


def _console(stderr: bool = False) -> Any:
    """A rich console; wide enough for the tables when output is not a terminal (logs, CI)."""
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    return Console(stderr=stderr) if stream.isatty() else Console(stderr=stderr, width=170)


def _setup_logging(debug: bool, prefix: str) -> None:
    level = logging.DEBUG if debug else logging.INFO
    logging.basicConfig(stream=sys.stderr, level=level, format=f"{prefix}%(levelname)s %(message)s")


def _jsonable(value: Any) -> Any:
    import numpy as np

    if isinstance(value, asyncio.Future):
        raise TypeError("the program returned an operation that was not awaited (an asyncio Task): write "
                        "`await ctx.reveal(...)`")
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


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

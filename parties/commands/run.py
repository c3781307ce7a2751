"""`mpc run CONFIG --party NAME`: run one party in this process (one per host in a deployment)."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import click

from mpc.records import PartyRecord
from parties.commands.common import (
    CliError,
    command,
    debug,
    default_program,
    describe,
    jsonable,
    load,
    network_options,
    output_option,
    parse_params,
    program_options,
    setup_logging,
    suggest,
    topology_argument,
)

T = TypeVar("T")


def start_timeout_option(f: Any) -> Any:
    return click.option("--start-timeout", "start_timeout", default=None, metavar="SECONDS|forever",
                        help="How long to wait for the other parties to start (default: the topology's "
                             "timeout_s); `forever` waits until they come.")(f)


def parse_start_timeout(value: str | None) -> float | None:
    """Seconds, `forever` (math.inf), or None (the topology's timeout)."""
    if value is None:
        return None
    if value.strip().lower() in ("forever", "inf", "none"):
        return float("inf")
    try:
        seconds = float(value)
    except ValueError:
        raise click.BadParameter(f"expected seconds or forever, got {value}", param_hint="--start-timeout") from None
    if seconds <= 0:
        raise click.BadParameter(f"expected a positive number of seconds, got {value}", param_hint="--start-timeout")
    return seconds


def workers_option(f: Any) -> Any:
    return click.option("--workers", type=click.IntRange(min=1, max=256), default=None,
                        help="Shard workers per party (every party the same; default: the topology's `workers`, "
                             "1). For programs that run sharded; see docs/sharding.md.")(f)


def with_workers(config: str, topo: Any, workers: int | None, program: str | None) -> Any:
    """The topology with --workers, checked (exit 2 if the ports of its shards clash), and the program
    checked to run sharded."""
    import sys

    from mpc.config import ConfigError
    from parties.commands.common import EXIT_CONFIG
    from parties.sharded import check_shardable
    from parties.sharded import with_workers as sharded_topology

    try:
        topo = sharded_topology(topo, workers)
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


@command()
@topology_argument()
@click.option("--party", "party_name", required=True, help="Which party of the topology this process is.")
@program_options
@network_options
@start_timeout_option
@output_option
@click.option("--secret-key", type=click.Path(dir_okay=False), default=None,
              help="This party's secret key file (default: its secret_key in the topology).")
@click.option("--json", "as_json", is_flag=True, help="Print this party's result and counters as JSON.")
@workers_option
@click.option("--shard", type=click.IntRange(min=0), default=None, hidden=True)  # set by a sharded party's coordinator
@click.option("--hub", default=None, hidden=True)
@click.pass_context
def run(ctx: click.Context, config: str, party_name: str, program: str | None, params: tuple[str, ...],
        timeout_s: float | None, latency_ms: float | None, bandwidth_mbps: float | None, start_timeout: str | None,
        output_dir: str | None, secret_key: str | None, as_json: bool, workers: int | None, shard: int | None,
        hub: str | None) -> None:
    """Run one party (one per host in a deployment over several machines)."""
    topo = load(config, latency_ms, bandwidth_mbps, timeout_s)
    if party_name not in topo.names:
        raise CliError(f"{config}: no party named {party_name}{suggest(party_name, topo.names)} "
                       f"(parties: {', '.join(topo.names)})")
    program = default_program(program, quiet=as_json)
    topo = with_workers(config, topo, workers, program)
    wait_s = parse_start_timeout(start_timeout)
    from threadpoolctl import threadpool_limits

    from mpc.runtime import run_party
    from parties.programs import get_program, program_setup

    try:
        parsed = parse_params(params)
        prog = get_program(program, parsed)
        setup = program_setup(program, parsed)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--program") from None
    setup_logging(ctx, prefix="" if as_json else f"{party_name}: ")
    from parties import sharded

    role = topo.party(party_name).role
    shard_info = None
    if topo.workers > 1 and shard is None:  # this process coordinates the party's shard workers
        job = sharded.ShardJob(program, params, timeout_s, latency_ms, bandwidth_mbps, secret_key)
        global_args = ["--debug"] if debug(ctx) else []
        coordinated = _checked(lambda: sharded.coordinate(config, topo, party_name, job, global_args), debug(ctx),
                               as_json, party_name, role)
        if as_json:
            click.echo(coordinated.to_json(default=jsonable))
        else:
            from parties.commands.results import print_party_table

            print_party_table({"program": program, "config": config, "parties": [coordinated.to_dict()]})
        return
    if shard is not None:
        if hub is None or shard >= topo.workers:
            raise click.BadParameter("--shard I needs --hub and I below --workers", param_hint="--shard")
        topo, extra, shard_info = sharded.worker_setup(topo, shard, hub)
        setup = {**setup, **extra}

    def main() -> Any:
        work = run_party(topo, party_name, prog, timeout_s=timeout_s, secret_key=secret_key, setup=setup,
                         start_timeout_s=wait_s, shard=shard_info)
        return work if shard_info is None else sharded.as_worker(work)

    from protocols.primitives.material import refuse_test_dealer

    refuse_test_dealer("mpc run")  # so launch, demo and bench too: they start `mpc run` processes
    with threadpool_limits(blas_threads()):
        outcome = _checked(main, debug(ctx), as_json, party_name, role)
    record = PartyRecord(party_name, role, result=outcome.value, counters=outcome.summary())
    if output_dir is not None:
        from parties.commands.results import write_results

        written = write_results(output_dir, party_name, outcome.value, outcome.summary())
        logging.getLogger("mpc").info("results written to %s", ", ".join(map(str, written)))
    if as_json:
        click.echo(record.to_json(default=jsonable))
    else:
        from parties.commands.results import print_party_table

        print_party_table({"program": program, "config": config, "parties": [record.to_dict()]})


def _checked(main: Callable[[], Awaitable[T]], debug: bool, as_json: bool, name: str, role: str) -> T:
    """`run_party_process`, and on failure the party's JSON failure record (with --json: the launcher reads
    who failed, and because of whom, from it)."""
    try:
        return run_party_process(main, debug)
    except BaseException as exc:
        if as_json:
            click.echo(failure_record(name, role, exc).to_json())
        if isinstance(exc, asyncio.CancelledError):
            raise CliError(f"{name}: interrupted") from None
        raise


def failure_record(name: str, role: str, exc: BaseException) -> PartyRecord:
    """A failed party's JSON line: the error and the peer it names as the cause (None: its own error)."""
    from mpc.transport import PeerError

    return PartyRecord(name, role, ok=False, error_class=type(exc).__name__,
                       error="interrupted" if isinstance(exc, asyncio.CancelledError) else describe(exc),
                       cause=exc.peer if isinstance(exc, PeerError) else None)


def run_party_process(main: Callable[[], Awaitable[T]], debug: bool) -> T:
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


def blas_threads() -> int:
    """BLAS threads of a party's process (ring.matmul's limb products): MPC_BLAS_THREADS if set, else one (on a
    shared host the parties compute at the same time; OpenBLAS threads also spin after each call). A party
    alone on its host may set more (docs/performance.md)."""
    env = os.environ.get("MPC_BLAS_THREADS")
    if env:
        try:
            return max(1, int(env))
        except ValueError:
            raise CliError(f"MPC_BLAS_THREADS: expected a positive integer, got {env!r}") from None
    return 1

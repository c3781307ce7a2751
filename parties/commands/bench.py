"""`mpc bench [CONFIG]`: measure secure operations (rounds, bytes, messages, wall time; the dealer's)."""

from __future__ import annotations

import json
from typing import Any

import click

from mpc.config import ConfigError, latency_problems
from mpc.settings import Comparison, choices
from parties.bench import OPS as BENCH_OPS
from parties.commands.common import CliError, command, console, debug, load, topology_argument


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


@command()
@topology_argument(required=False)
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
@click.option("--profile", is_flag=True,
              help="Split each op's online time per party (compute, transport, idle, overhead) against its "
                   "measured floor (docs/performance.md).")
@click.pass_context
def bench(ctx: click.Context, config: str | None, ops: str, methods: str, n: int, repeat: int,
          latencies: list[float | None], bandwidth_mbps: float | None, plot_path: str | None, as_json: bool,
          profile: bool) -> None:
    """Measure secure operations: online rounds, bytes, messages and wall time; dealer bytes and time.

    CONFIG: the topology to run on (default: two banks and the helper on localhost, free ports)."""
    from mpc.localhost import default_topology
    from parties.bench import OPS
    from parties.bench_driver import check_plot, fit_latency_model, plot, resolve_auto, run_bench

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
    topo = load(config) if config else default_topology()
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

        with Progress(console=console(stderr=True), transient=True, disable=as_json) as progress:
            task = progress.add_task(f"{', '.join(names)} at n={n:,} x {repeat}",
                                     total=len(latencies) * sum(1 for _, o in plan if o))
            for method, op_names in plan:
                if not op_names:
                    continue
                sweep = latencies
                if method == Comparison.AUTO and len(latencies) > 1:
                    # auto resolved once per op for the whole sweep: at the first latency, then kept, so each
                    # op's line is one method from end to end (auto would switch methods along the sweep)
                    first = run_bench(topo, op_names, n, repeat, latencies[:1], bandwidth_mbps, method,
                                      debug=debug(ctx), on_progress=lambda _: progress.advance(task),
                                      profile=profile)
                    records += first
                    sweep = latencies[1:]
                    resolved = resolve_auto(first, {o: bool(OPS[o].methods) for o in op_names})
                    if not as_json and any(m != Comparison.AUTO for m in resolved.values()):
                        click.echo("note: auto resolved once per op at "
                                   f"{first[0]['latency_ms']:g} ms for the whole sweep: "
                                   + ", ".join(f"{o} {r['method']}" for o, r in zip(op_names, first, strict=False)
                                               if resolved[o] != Comparison.AUTO), err=True)
                    groups = _by_method(resolved)
                    share = 1 / len(groups)

                    def advance(_: float | None, share: float = share) -> None:
                        progress.advance(task, share)

                    for fixed, group in groups.items():
                        records += run_bench(topo, group, n, repeat, sweep, bandwidth_mbps, fixed, debug=debug(ctx),
                                             on_progress=advance, profile=profile)
                    continue
                records += run_bench(topo, op_names, n, repeat, sweep, bandwidth_mbps, method,
                                     debug=debug(ctx), on_progress=lambda _: progress.advance(task), profile=profile)
    except RuntimeError as exc:
        raise CliError(str(exc)) from None
    records = fit_latency_model(records)
    # The results first: a plot that fails (the disk filled up meanwhile) must not lose them.
    if as_json:
        click.echo(json.dumps(records))
    else:
        print_bench_table(records, repeat)
        if profile:
            from parties.profile_report import print_profile

            print_profile(records, console())
    if plot_path:
        try:
            plot(records, plot_path)
        except RuntimeError as exc:
            raise CliError(f"{exc} (the results are above)") from None
        if not as_json:
            click.echo(f"plot written to {plot_path}")


def _by_method(resolved: dict[str, str]) -> dict[str, list[str]]:
    groups: dict[str, list[str]] = {}
    for op, method in resolved.items():
        groups.setdefault(method, []).append(op)
    return groups


def print_bench_table(records: list[dict[str, Any]], repeat: int) -> None:
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
    out = console()
    out.print(table)
    if several:
        seen = set()
        for r in records:
            key = (r["op"], r["method"])
            if key in seen or r["fitted_s_per_ms"] is None:
                continue
            seen.add(key)
            rough = (f" (from {r['fitted_points']} latencies only: rough, run three or more for a slope)"
                     if r["fitted_points"] < 3 else "")
            out.print(f"{r['op']} ({r['method']}): wall grows {r['fitted_s_per_ms'] * 1000:.2f} ms per ms of "
                      f"latency{rough}; measured rounds {r['rounds']}; local compute {r['model_intercept_s']:.4f} s",
                      markup=False)
    for r in (r for r in records if "steps" in r):  # training ops: one epoch of SGD
        out.print(f"{r['op']} ({r['method']}, {r['latency_ms']:g} ms): {r['steps']} steps, "
                      f"{r['rounds_per_step']:g} rounds per step, {r['steps_per_s']:,.1f} steps/s, "
                      f"{r['bytes_online_per_step']:,.0f} bytes online and {r['bytes_offline_per_step']:,.0f} "
                      f"dealer bytes per step; epoch {r['wall_s']:.3f} s online, dealer {r['offline_s']:.3f} s")

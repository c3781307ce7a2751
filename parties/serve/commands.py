"""`mpc serve` and `mpc demo serve` (listed in parties/cli.py and parties/commands/demo.py; heavy imports inside)."""

from __future__ import annotations

import asyncio
import os
from typing import Any

import click

from mpc.settings import Comparison
from parties.commands.common import debug as _debug


def _sizes(ctx: click.Context, param: click.Parameter, value: str) -> tuple[int, ...]:
    try:
        sizes = tuple(sorted({int(v) for v in value.split(",") if v.strip()}))
    except ValueError:
        raise click.BadParameter(f"expected comma-separated batch sizes, got {value!r}") from None
    if not sizes or sizes[0] < 1 or sizes[-1] > 4096 or len(sizes) > 8:
        raise click.BadParameter("1 to 8 sizes, each 1 to 4096")
    return sizes


def serve_options(f: Any) -> Any:
    """Options every party of a service must give alike (compared at session start), then the rest."""
    options = [
        click.option("--sizes", default="1,8,64,256", show_default=True, callback=_sizes,
                     help="Batch size classes (padded to): every party must give the same."),
        click.option("--method", type=click.Choice([c.value for c in Comparison if c.value != "auto"]),
                     default="dcf", show_default=True,
                     help="Comparison method of the model's gates (same everywhere)."),
        click.option("--reveal-scores", is_flag=True, help="Policy: the requesting bank also gets the score."),
        click.option("--model", "model_file", type=click.Path(dir_okay=False, exists=True), default=None,
                     help="Model file (default: the demo's shipped model)."),
        click.option("--pool-scores", type=click.IntRange(min=1), default=512, show_default=True,
                     help="Helper: scores of material dealt ahead per stream and size class (the high watermark)."),
        click.option("--max-queue", type=click.IntRange(min=1), default=4096, show_default=True,
                     help="Bank: ids waiting at most; beyond it requests get 429."),
        click.option("--max-inflight", type=click.IntRange(min=1, max=64), default=2, show_default=True,
                     help="Bank: secure batches of its own in flight at once."),
        click.option("--batch-wait-ms", type=click.FloatRange(min=0, max=1000), default=0.0, show_default=True,
                     help="Bank: wait this long for more requests before a batch that is not full."),
        click.option("--request-timeout-s", type=click.FloatRange(min=0, min_open=True), default=10.0,
                     show_default=True, help="Bank: 503 for a request not answered within this time."),
        click.option("--log-format", type=click.Choice(["json", "text"]), default="json", show_default=True),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def _options(kw: dict[str, Any]) -> Any:
    from parties.fraud.model import MODEL_FILE
    from parties.serve.service import Options

    return Options(classes=kw["sizes"], method=kw["method"], model_file=kw["model_file"] or str(MODEL_FILE),
                   reveal_scores=kw["reveal_scores"], pool_scores=kw["pool_scores"], max_queue=kw["max_queue"],
                   max_inflight=kw["max_inflight"], batch_wait_ms=kw["batch_wait_ms"],
                   request_timeout_s=kw["request_timeout_s"])


@click.command("serve")
@click.argument("config", type=click.Path(dir_okay=False))
@click.option("--party", "party_name", required=True, help="Which party of the topology this process is.")
@click.option("--secret-key", type=click.Path(dir_okay=False), default=None,
              help="This party's secret key file (default: its secret_key in the topology).")
@click.option("--http", "http", default=None, metavar="[HOST:]PORT",
              help="Bank: where its HTTP API listens (HOST defaults to 127.0.0.1, loopback).")
@click.option("--data", default=None, metavar="DIR|sqlite:///PATH",
              help="Bank: the demo's CSV directory, or a SQLite database (docs/serve.md).")
@click.option("--token-file", type=click.Path(dir_okay=False, exists=True), default=None,
              help="Bank: require `Authorization: Bearer TOKEN` on /v1/* (the file's first line; or $MPC_SERVE_TOKEN).")
@click.option("--access-log", is_flag=True, help="Bank: log every HTTP request.")
@click.option("--reload-s", type=click.FloatRange(min=0), default=0.0, show_default=True,
              help="Bank: read new transactions every this many seconds (0: only on POST /v1/reload or SIGHUP).")
@click.option("--latency-ms", type=click.FloatRange(min=0), default=None,
              help="Override the emulated one-way latency of every link (ms).")
@click.option("--timeout-s", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Override the topology's timeout for every wait on a peer within a session.")
@serve_options
@click.pass_context
def serve(ctx: click.Context, config: str, party_name: str, secret_key: str | None, http: str | None,
          data: str | None, token_file: str | None, access_log: bool, reload_s: float, latency_ms: float | None,
          timeout_s: float | None, **kw: Any) -> None:
    """Run one party of the fraud-scoring service until stopped (SIGTERM drains; SIGHUP reloads data)."""
    from parties.commands.common import CliError
    from parties.commands.common import load as _load
    from parties.fraud.data import DataError
    from parties.serve.main import parse_endpoint, serve_process, setup_logging

    topo = _load(config, latency_ms, None, timeout_s)
    if timeout_s is not None:
        topo = topo.model_copy(update={"timeout_s": timeout_s})
    if party_name not in topo.names:
        raise CliError(f"{config}: no party named {party_name!r} (parties: {', '.join(topo.names)})")
    helper = topo.helper
    if helper is None or len(topo.compute_parties) != 2:
        raise CliError(f"{config}: the service runs with two banks (compute parties) and a helper")
    is_bank = party_name != helper.name
    if is_bank and (http is None or data is None):
        raise click.UsageError(f"{party_name} is a bank: give --http [HOST:]PORT and --data DIR|URL")
    if not is_bank and (http is not None or data is not None):
        raise click.UsageError(f"{party_name} is the helper: it has no --http and no --data")
    try:
        endpoint = parse_endpoint(http) if http is not None else None
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--http") from None
    token = None
    if token_file:
        with open(token_file, encoding="utf-8") as f:
            token = f.readline().strip()
    token = token or os.environ.get("MPC_SERVE_TOKEN") or None
    opts = _options(kw)
    setup_logging(party_name, _debug(ctx), kw["log_format"])
    from mpc.keys import load as load_keys
    from parties.fraud.model import load
    from parties.serve.source import open_source

    keys = load_keys(topo, party_name, secret_key)
    source = None
    try:
        if is_bank:
            assert data is not None
            source = open_source(data, [p.name for p in topo.compute_parties].index(party_name),
                                 load(opts.model_file)["joint"])
        asyncio.run(serve_process(topo, party_name, opts, keys, source, endpoint, token, access_log,
                                  reload_s))
    except DataError as exc:
        raise CliError(f"{party_name}: {exc}") from None
    except OSError as exc:
        raise CliError(str(exc)) from None


@click.command("serve")
@click.option("--data", "data_dir", type=click.Path(file_okay=False), default=None,
              help="Directory with accounts.csv, bank_a.csv, bank_b.csv; default: synthetic.")
@click.option("--accounts", type=click.IntRange(min=1), default=5000, show_default=True)
@click.option("--seed", type=int, default=7, show_default=True)
@click.option("--latency-ms", type=click.FloatRange(min=0), default=None, help="Emulated one-way latency.")
@click.option("--port", type=click.IntRange(min=0, max=65535), default=8081, show_default=True,
              help="bank_a's HTTP port (bank_b's is the next one); 0: free ports.")
@serve_options
@click.pass_context
def demo_serve(ctx: click.Context, data_dir: str | None, accounts: int, seed: int, latency_ms: float | None,
               port: int, **kw: Any) -> None:
    """Start both banks and the helper as a local scoring service; print each bank's URL; Ctrl-C stops."""
    from parties.commands.common import CliError
    from parties.serve.demo import DemoServeError, run_demo

    try:
        run_demo(data_dir=data_dir, accounts=accounts, seed=seed, latency_ms=latency_ms, port=port,
                 debug=_debug(ctx), serve_args=_passed_options(kw))
    except DemoServeError as exc:
        raise CliError(str(exc)) from None


def _passed_options(kw: dict[str, Any]) -> list[str]:
    """The shared serve options as `mpc serve` arguments for the children."""
    args = ["--sizes", ",".join(map(str, kw["sizes"])), "--method", kw["method"], "--pool-scores",
            str(kw["pool_scores"]), "--max-queue", str(kw["max_queue"]), "--max-inflight", str(kw["max_inflight"]),
            "--batch-wait-ms", str(kw["batch_wait_ms"]), "--request-timeout-s", str(kw["request_timeout_s"]),
            "--log-format", kw["log_format"]]
    if kw["reveal_scores"]:
        args.append("--reveal-scores")
    if kw["model_file"]:
        args += ["--model", kw["model_file"]]
    return args

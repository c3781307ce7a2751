"""`mpc demo fraud [CONFIG]`: the cross-bank fraud demonstration."""

from __future__ import annotations

import contextlib
import json
import time
from typing import Any

import click

from mpc.settings import Comparison
from parties.commands.common import CliError, console, debug, group, load, topology_argument
from parties.commands.run import workers_option


@group()
def demo() -> None:
    """Demonstrations of what mpc is for."""


@demo.command()
@topology_argument(required=False)
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
@workers_option
# -- training on shares (parties/fraud/train.py): the default unless --plaintext-model or --query
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
@click.option("--checkpoint-dir", type=click.Path(file_okay=False), default=None,
              help="Directory where each bank writes its share of the weights at every epoch's end.")
@click.option("--resume", type=click.Path(file_okay=False), default=None, metavar="DIR",
              help="Continue a stopped training from the last epoch its checkpoints in DIR hold.")
@click.pass_context
def fraud(ctx: click.Context, config: str | None, data_dir: str | None, accounts: int, seed: int,
          latency_ms: float | None, method: str | None, reveal_scores: bool, flags_to: str, query: str | None,
          write_data: str | None, as_json: bool, workers: int | None, **training: Any) -> None:
    """Two banks find money-mule accounts that neither can see alone, without sharing their data.

    CONFIG: the topology, two banks and a helper (default: all on localhost, free ports)."""
    from parties.fraud import data as fraud_data
    from parties.fraud.demo import DemoError, DemoOptions, print_report, run

    if write_data:
        from parties.fraud.train import bank_labels, write_bank_labels

        out, ids, truth = fraud_data.write_generated(write_data, accounts, seed)  # block by block
        write_bank_labels(out, ids, dict(zip(("bank_a", "bank_b"), bank_labels(truth, seed), strict=True)))
        click.echo(f"wrote {out}/accounts.csv, bank_a.csv, bank_b.csv, labels.csv, labels_bank_a.csv, "
                   f"labels_bank_b.csv ({accounts:,} accounts)")
        return
    out = console(stderr=True)
    t0 = time.perf_counter()
    status = out.status("fraud demo") if out.is_terminal else contextlib.nullcontext()

    def progress(stage: str, detail: str) -> None:
        """Each stage as a line on stderr (stdout stays the report, or clean JSON), and a spinner on a tty."""
        out.print(f"[{time.perf_counter() - t0:5.1f} s] {stage}: {detail}", markup=False, highlight=False)
        if out.is_terminal:
            status.update(f"{stage}: {detail}")  # type: ignore[union-attr]

    opts = DemoOptions(config=load(config) if config else None, data_dir=data_dir, accounts=accounts, seed=seed,
                       latency_ms=latency_ms, reveal_scores=reveal_scores, flags_to=flags_to, query=query,
                       method=method, debug=debug(ctx), progress=progress,
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


def _add_serve() -> None:
    """`mpc demo serve` lives with the service (parties/serve/); its heavy imports run only when it does."""
    from parties.serve.commands import demo_serve

    demo.add_command(demo_serve)


_add_serve()

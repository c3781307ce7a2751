"""`mpc demo fraud`: two banks find money mules that neither can see alone, without sharing their data.

This is the demo's harness. It prepares the data (synthetic by default), starts the two banks and the
helper as separate processes running parties/fraud/secure.py, and then plays the auditor who is allowed
to see everything because the data are synthetic: it recomputes the same pipeline in plain numpy and the
single-bank baselines, and checks the secure flags against them.
"""

from __future__ import annotations

import datetime
import io
import re
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO, cast

import numpy as np

from mpc.config import ConfigError, Topology, localhost_topology
from mpc.localhost import free_port_run, free_ports, secured, write_topology
from mpc.ring import decode_fixed
from parties.fraud import data, train_demo
from parties.fraud import train as secure_train
from parties.fraud.model import MODEL_FILE, load
from parties.launcher import failure_summary, launch
from parties.sharded import with_workers

if TYPE_CHECKING:
    from rich.console import Console

WAN_LATENCY_MS, WAN_BANDWIDTH_MBPS = 25.0, 100.0
Progress = Callable[[str, str], None]  # (stage, what happens in it): data, start, features, dealing, online, report


@dataclass
class DemoOptions:
    config: Topology | None = None
    data_dir: str | None = None
    accounts: int = 5000
    seed: int = 7
    latency_ms: float | None = None
    reveal_scores: bool = False
    flags_to: str = "both"
    query: str | None = None
    method: str | None = None
    model_file: str = str(MODEL_FILE)
    debug: bool = False
    progress: Progress | None = None
    # training on shares (the default; parties/fraud/train.py): off with plaintext_model or query
    plaintext_model: bool = False
    model: str = "mlp"
    epochs: int = 5
    learning_rate: float = 0.3
    batch_size: int = 128
    class_weight: float = 3.0
    train_fraction: float = 0.5
    reveal_model: bool = False
    model_out: str | None = None  # a directory for the banks' share files (default: a temporary one)
    checkpoint_dir: str | None = None  # each bank writes its share of the weights there at every epoch's end
    resume: str | None = None  # a checkpoint directory of a stopped training to continue (and keep writing)
    workers: int | None = None  # shard workers per party (docs/sharding.md); None: the topology's

    @property
    def trains(self) -> bool:
        return not (self.plaintext_model or self.query)


class DemoError(RuntimeError):
    """The demo could not run; the message says why (bad data, a failed party)."""


def run(opts: DemoOptions) -> dict[str, Any]:
    t0 = time.perf_counter()
    say = opts.progress or (lambda stage, detail: None)
    with tempfile.TemporaryDirectory(prefix="mpc-fraud-") as tmp:
        dataset, data_dir, source = _prepare_data(opts, Path(tmp), say)
        topo = _topology(opts)
        path = write_topology(secured(topo, Path(tmp)), Path(tmp) / "topology.yaml")
        params: dict[str, object] = {"data_dir": str(data_dir), "reveal_scores": opts.reveal_scores,
                                     "flags_to": opts.flags_to, "query": opts.query or "",
                                     "model_file": opts.model_file, "audit": True}
        args = ["--program", "fraud"]
        if opts.trains:
            target = ""
            if opts.model_out:  # each bank writes its own share of the model there
                Path(opts.model_out).mkdir(parents=True, exist_ok=True)
                target = str(Path(opts.model_out).resolve() / "model_{party}.npz")
            params = train_demo.params(opts, data_dir, target)
            args = ["--program", "fraud-train"]
        for key, value in params.items():
            args += ["-p", f"{key}={_param(value)}"]
        say("start", f"{', '.join(topo.names[:-1])} and {topo.names[-1]} as separate processes")
        sink = _StageSink(say)
        results = launch(str(path), topo.names, args, global_args=["--debug"] if opts.debug else [],
                         sink=cast(TextIO, sink))
        known = [secure_train.read_bank_labels(data_dir / f"labels_{b}.csv", dataset.accounts)
                 for b in ("bank_a", "bank_b")] if opts.trains else []
        # the auditor's report reads the banks' files (streamed): still here
        if any(not r.ok for r in results):
            raise DemoError(failure_summary(results))  # as `mpc launch` reports it: one line per party
        outputs = {r.name: r.output.result for r in results if r.output is not None}
        if opts.trains:
            say("report", "training the same model in float64 numpy, scikit-learn and each bank alone, to compare")
            banks = [p.name for p in topo.compute_parties]
            report = train_demo.report(opts, dataset, cast(train_demo.Outputs, outputs), banks,
                                       topo.helper.name if topo.helper else "", known)
            if opts.model_out:
                report["model_files"] = [str(Path(opts.model_out) / f"model_{p.name}.npz")
                                         for p in topo.compute_parties]
        else:
            say("report", "checking the flags against the same pipeline in plain numpy")
            report = _report(opts, topo, dataset, outputs)
    report["source"] = source
    report["end_to_end_s"] = time.perf_counter() - t0
    return report


def _prepare_data(opts: DemoOptions, tmp: Path, say: Progress) -> tuple[data.Dataset, Path, str]:
    """The data set (synthetic, or the user's files checked before any party starts) and where it is."""
    if opts.data_dir is None:
        say("data", f"generating {opts.accounts:,} synthetic accounts (seed {opts.seed})")
        data_dir, ids, truth = data.write_generated(tmp / "data", opts.accounts, opts.seed)  # block by block
        dataset = data.Dataset(ids, data.empty_transactions(), data.empty_transactions(), truth, data_dir)
        known = secure_train.bank_labels(truth, opts.seed)
        secure_train.write_bank_labels(data_dir, dataset.accounts, dict(zip(("bank_a", "bank_b"), known, strict=True)))
        source = f"synthetic, seed {opts.seed}"
        where = (f"the {opts.accounts:,} synthetic accounts of seed {opts.seed}; `mpc demo fraud --accounts "
                 f"{opts.accounts} --seed {opts.seed} --write-data DIR` writes their ids to DIR/accounts.csv")
    else:
        data_dir = Path(opts.data_dir)
        say("data", f"checking the files in {data_dir}")
        try:
            dataset = data.check_dataset(data_dir)  # validate every file before starting any party
        except data.DataError as exc:
            raise DemoError(str(exc)) from None
        source = str(data_dir)
        where = f"{data_dir / 'accounts.csv'} ({len(dataset.accounts):,} accounts)"
    if opts.trains:
        for bank in ("bank_a", "bank_b"):
            labels = data_dir / f"labels_{bank}.csv"
            if not labels.exists():
                raise DemoError(f"{labels}: no such file: training needs each bank's known mules (account_id,"
                                "is_mule); or run with --plaintext-model to score with the shipped model")
            try:
                secure_train.read_bank_labels(labels, dataset.accounts)
            except data.DataError as exc:
                raise DemoError(str(exc)) from None
    if opts.query and opts.query not in set(dataset.accounts.tolist()):
        examples = ", ".join(dataset.accounts[:3].tolist())
        raise DemoError(f"--query: account {opts.query!r} is not among {where}; e.g. {examples}")
    return dataset, data_dir, source


class _StageSink(io.TextIOBase):
    """Reads the parties' log lines as the launcher forwards them and reports each stage they reach once
    (the fraud program logs `progress: STAGE`); everything else is dropped, as before."""

    DETAILS = {"features": "each bank computes its own customers' features",
               "dealing": "the helper deals the correlated randomness",
               "online": "the banks score the accounts on secret shares",
               "training": "the banks train the model on secret shares",
               "scoring": "the banks score the other accounts with the secret model"}

    def __init__(self, say: Progress):
        self.say, self.seen, self.buffer, self.epochs = say, set[str](), "", 0

    def write(self, text: str) -> int:
        self.buffer += text
        *lines, self.buffer = self.buffer.split("\n")
        for line in lines:
            epoch = re.search(r"\bprogress: epoch (\d+)/(\d+)", line)
            if epoch and int(epoch.group(1)) > self.epochs:  # each bank logs each epoch: show it once
                done, total = int(epoch.group(1)), int(epoch.group(2))
                self.epochs = done
                bar = "#" * round(20 * done / total) + "." * (20 - round(20 * done / total))
                self.say("training", f"epoch {done}/{total} [{bar}]")
            if epoch:
                continue
            match = re.search(r"\bprogress: (\w+)", line)
            if match and match.group(1) in self.DETAILS and match.group(1) not in self.seen:
                self.seen.add(match.group(1))
                self.say(match.group(1), self.DETAILS[match.group(1)])
        return len(text)


def _param(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _topology(opts: DemoOptions) -> Topology:
    latency, bandwidth = opts.latency_ms, None
    if opts.config is None:
        workers = opts.workers or 1  # every shard's ports free: a run of consecutive ones
        ports = free_ports(3) if workers == 1 else range(base := free_port_run(3 * workers), base + 3)
        topo = localhost_topology(2, helper=True, ports=ports, timeout_s=300)
        if opts.query and latency is None:  # a serving request: the WAN topology by default
            latency, bandwidth = WAN_LATENCY_MS, WAN_BANDWIDTH_MBPS
    else:
        topo = opts.config
        if len(topo.compute_parties) != 2 or topo.helper is None:
            raise DemoError("the fraud demo needs a topology of exactly two compute parties and a helper")
    try:
        topo = with_workers(topo.with_network(latency, bandwidth), opts.workers)
    except ConfigError as exc:
        raise DemoError(str(exc)) from None
    if opts.query and topo.workers > 1:
        raise DemoError("--query scores one account: run it with one worker per party")
    if opts.method:
        topo = topo.model_copy(update={"comparison": opts.method})
    return topo


def _metrics(flags: np.ndarray, labels: np.ndarray | None) -> tuple[float | None, float | None]:
    """Precision and recall over the accounts that have a label (None without any)."""
    if labels is None or not (labels != data.UNLABELLED).any():
        return None, None
    known = labels != data.UNLABELLED
    flagged, mule = flags[known].astype(bool), labels[known] == 1
    tp = int((flagged & mule).sum())
    precision = tp / int(flagged.sum()) if flagged.sum() else 0.0
    recall = tp / int(mule.sum()) if mule.sum() else 0.0
    return precision, recall


def _report(opts: DemoOptions, topo: Topology, ds: data.Dataset, outputs: dict[str, dict]) -> dict[str, Any]:
    banks = [p.name for p in topo.compute_parties]
    helper = topo.helper.name if topo.helper else ""
    models = load(opts.model_file)
    accounts = np.array([opts.query]) if opts.query else ds.accounts
    labels = ds.labels
    if labels is not None and opts.query:
        labels = labels[ds.accounts == opts.query]
    raw_a, raw_b = train_demo.raw_features(ds, "bank_a", accounts), train_demo.raw_features(ds, "bank_b", accounts)
    joint = models["joint"]
    plain_scores = joint.scores(np.hstack([raw_a, raw_b]))
    plain_flags = (plain_scores > joint.threshold).astype(np.int64)
    flags = np.zeros(len(accounts), dtype=np.int64)
    for b in banks:
        flags |= np.asarray(outputs[b]["flags"], dtype=np.int64)
    if opts.flags_to == "own":  # each bank saw only its customers' flags: compare on those
        held = (raw_a[:, 0] > 0) | (raw_b[:, 0] > 0)
        plain_flags = plain_flags * held
    mismatches = int((flags != plain_flags).sum())
    # The scores: opened to the banks (--reveal-scores), or else reconstructed here, by the auditor, from the
    # banks' shares; either way checked against the plaintext pipeline within the fixed-point bound.
    secure_scores = _audited_scores(outputs, banks)
    score_error = float(np.abs(secure_scores - plain_scores).max()) if len(accounts) else 0.0
    std = joint.standardise(np.hstack([raw_a, raw_b]))
    bound = float(joint.score_error_bound(std, topo.frac_bits).max()) if len(accounts) else 0.0
    precision, recall = _metrics(flags, labels)
    alone = {}
    for name, raw in (("bank_a", raw_a), ("bank_b", raw_b)):
        alone[name] = _metrics(models[name].flags(raw), labels)
    bank_out = [outputs[b] for b in banks]
    wall = (max(_epoch(o["online_ended"]) for o in bank_out) - max(_epoch(o["online_started"]) for o in bank_out))
    report: dict[str, Any] = {
        "accounts": int(len(accounts)),
        "labelled_accounts": None if labels is None else int((labels != data.UNLABELLED).sum()),
        "flagged": int(flags.sum()),
        "flags_match_plaintext": mismatches == 0,
        "flag_mismatches": mismatches,
        "max_score_error": score_error,
        "scores_opened_to_banks": opts.reveal_scores,
        "score_error_bound": bound,
        "precision_joint": precision,
        "recall_joint": recall,
        "precision_bank_a_alone": alone["bank_a"][0],
        "recall_bank_a_alone": alone["bank_a"][1],
        "precision_bank_b_alone": alone["bank_b"][0],
        "recall_bank_b_alone": alone["bank_b"][1],
        "rounds": max(o["rounds"] for o in bank_out),
        "bytes_online": max(o["bytes_online"] for o in bank_out),
        "bytes_offline": outputs[helper]["bytes_offline"] if helper else None,
        "wall_s": wall,
        "dealer_s": max(o["deal_s"] for o in outputs.values()),
        "comparison_method": bank_out[0]["comparison_method"],
        "latency_ms": topo.link(banks[0], banks[1]).latency_ms,
        "learned": {name: out["learned"] for name, out in outputs.items()},
        "peak_rss_mb": {name: out.get("peak_rss_mb") for name, out in outputs.items()},
        "peak_material_mb": {name: out.get("peak_material_mb") for name, out in outputs.items()},
    }
    if opts.query:
        report["query"] = opts.query
        report["query_flag"] = int(flags[0])
        report["query_flag_plaintext"] = int(plain_flags[0])
        if opts.reveal_scores:
            report["query_score"] = float(np.asarray(outputs[banks[0]]["scores"])[0])
    return report


def _audited_scores(outputs: dict[str, dict], banks: list[str]) -> np.ndarray:
    """The scores as opened to the banks, or else the sum of the banks' shares (the auditor's view)."""
    if "scores" in outputs[banks[0]]:
        return np.asarray(outputs[banks[0]]["scores"], dtype=np.float64)
    frac = outputs[banks[0]]["score_share"]["frac_bits"]
    total = sum((np.array(outputs[b]["score_share"]["share"], dtype=np.uint64) for b in banks),
                start=np.uint64(0))
    return decode_fixed(np.asarray(total, dtype=np.uint64), frac)


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def print_report(report: dict[str, Any], console: Console | None = None) -> None:
    """The report for people, as wide as the terminal (unwrapped lines when the output is not one)."""
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    wrap = console.is_terminal

    def say(text: str, markup: bool = True) -> None:
        console.print(text, markup=markup, soft_wrap=not wrap)

    if "train_steps" in report:
        train_demo.print_report(report, say, console)
        say("what each party learned:")
        for name, learned in report["learned"].items():
            say(f"  {name}: {learned}", markup=False)
        return

    if "query" in report:
        verdict = "FLAGGED" if report["query_flag"] else "not flagged"
        same = ("same as plaintext" if report["query_flag"] == report["query_flag_plaintext"]
                else "DIFFERS from plaintext")
        say(f"account {report['query']}: [bold]{verdict}[/bold] ({same})"
            + (f", score {report['query_score']:.4f}" if "query_score" in report else ""))
        say(f"answered in {report['wall_s'] * 1000:.0f} ms online, {report['rounds']} rounds, "
            f"{report['latency_ms']:g} ms one-way links ({report['comparison_method']} comparisons); "
            f"randomness dealt beforehand in {report['dealer_s']:.2f} s")
    else:
        table = Table(title=f"cross-bank fraud detection: {report['accounts']:,} accounts ({report['source']})")
        for col in ("model", "flagged", "precision", "recall"):
            table.add_column(col, justify="left" if col == "model" else "right")
        table.add_row("joint, secure (both banks' features)", str(report["flagged"]),
                      _fmt(report["precision_joint"]), _fmt(report["recall_joint"]))
        table.add_row("bank_a alone (plaintext, own features)", "", _fmt(report["precision_bank_a_alone"]),
                      _fmt(report["recall_bank_a_alone"]))
        table.add_row("bank_b alone (plaintext, own features)", "", _fmt(report["precision_bank_b_alone"]),
                      _fmt(report["recall_bank_b_alone"]))
        console.print(table)
        labelled = report.get("labelled_accounts")
        if labelled is None:
            say("no labels.csv: precision and recall cannot be measured")
        elif labelled < report["accounts"]:
            say(f"precision and recall over the {labelled:,} of {report['accounts']:,} accounts that labels.csv "
                "labels")
        match = "yes" if report["flags_match_plaintext"] else f"NO ({report['flag_mismatches']} differ)"
        say(f"flags identical to the plaintext pipeline: {match}")
        seen = ("opened to both banks (--reveal-scores)" if report["scores_opened_to_banks"] else
                "kept secret from both banks; this harness, the auditor that reads every bank's file anyway, "
                "added the banks' shares to check them")
        say(f"largest score error: {report['max_score_error']:.2e} (fixed-point bound "
            f"{report['score_error_bound']:.2e}); scores {seen}")
        say(f"online: {report['rounds']} rounds, {report['bytes_online']:,} bytes sent per bank, "
            f"{report['wall_s']:.3f} s ({report['comparison_method']} comparisons, "
            f"{report['latency_ms']:g} ms one-way); dealer: {report['bytes_offline']:,} bytes, "
            f"{report['dealer_s']:.2f} s; end to end {report['end_to_end_s']:.1f} s")
    say("what each party learned:")
    for name, learned in report["learned"].items():
        say(f"  {name}: {learned}", markup=False)


def _epoch(iso: str) -> float:
    return datetime.datetime.fromisoformat(iso).timestamp()

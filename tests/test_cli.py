"""One command line: the topology as CONFIG everywhere, global flags anywhere, "did you mean", errors
of the user's program with their line, a waiting party that says whom it waits for, results to files."""

from __future__ import annotations

import csv
import json
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from parties.cli import COMMANDS, cli
from tests.test_cli_launch import _config, mpc

ROOT = Path(__file__).resolve().parent.parent
CONFIG = str(ROOT / "configs" / "local-2banks-helper.yaml")


@pytest.mark.parametrize("line", [["--debug", "check", CONFIG], ["check", CONFIG, "--debug"], ["check", "-v", CONFIG],
                                  ["-v", "check", CONFIG, "--debug"]])
def test_global_flags_are_accepted_anywhere(line: list[str]) -> None:
    res = CliRunner().invoke(cli, line)
    assert res.exit_code == 0, res.output
    assert "is valid" in res.output


def test_every_command_takes_the_topology_the_same_way() -> None:
    """CONFIG positional wherever a topology is needed; --config still works, with a note."""
    for name in ("check", "run", "launch", "emulate", "bench"):
        usage = CliRunner().invoke(cli, [name, "--help"]).output.splitlines()[0]
        assert "CONFIG" in usage, (name, usage)
    assert "[CONFIG]" in CliRunner().invoke(cli, ["demo", "fraud", "--help"]).output.splitlines()[0]
    res = CliRunner().invoke(cli, ["check", "--config", CONFIG])
    assert res.exit_code == 0 and "is valid" in res.output and "note: the topology is the first argument" in res.output
    missing = CliRunner().invoke(cli, ["check"])
    assert missing.exit_code == 2 and "missing the topology file CONFIG" in missing.output
    both = CliRunner().invoke(cli, ["check", CONFIG, "--config", "other.yaml"])
    assert both.exit_code == 2 and "two topologies given" in both.output


def test_every_listed_command_loads() -> None:
    for name in COMMANDS:
        res = CliRunner().invoke(cli, [name, "--help"])
        assert res.exit_code == 0, (name, res.output)
    assert "steps=20" not in CliRunner().invoke(cli, ["launch", "--help"]).output  # a pingpong-only example


def test_did_you_mean() -> None:
    runner = CliRunner()
    assert "did you mean 'launch'" in runner.invoke(cli, ["lauch", CONFIG]).output
    assert "Did you mean '--latency-ms'" in runner.invoke(cli, ["launch", CONFIG, "--latency-m", "3"]).output
    assert "unknown program fraudd (did you mean fraud?)" in runner.invoke(
        cli, ["launch", CONFIG, "--program", "fraudd"]).output


def test_a_misspelt_function_is_named_with_the_file_functions(tmp_path: Path) -> None:
    prog = tmp_path / "ledger.py"
    prog.write_text("async def exposure(ctx):\n    return 1\n")
    res = CliRunner().invoke(cli, ["emulate", CONFIG, "--program", f"{prog}:exposur"])
    assert res.exit_code == 2
    assert "has no function 'exposur' (did you mean exposure?); its async functions: exposure" in res.output


def test_without_a_program_launch_says_it_runs_the_connectivity_check(tmp_path: Path) -> None:
    res = mpc("launch", str(_config(tmp_path)))
    assert res.returncode == 0, res.stderr
    assert "no --program given: running the connectivity check `mesh`" in res.stderr
    assert "`mpc programs` lists the programs" in res.stderr


def test_an_error_in_the_users_program_names_its_line(tmp_path: Path) -> None:
    prog = tmp_path / "buggy.py"
    prog.write_text("async def buggy(ctx):\n    table = {}\n    return table['missing']\n")
    res = mpc("launch", str(_config(tmp_path)), "--program", f"{prog}:buggy")
    assert res.returncode == 1
    assert "KeyError: 'missing' at buggy.py:3" in res.stderr
    assert "Traceback" not in res.stderr
    traced = mpc("launch", str(_config(tmp_path)), "--program", f"{prog}:buggy", "--debug")
    assert traced.returncode == 1 and "Traceback" in traced.stderr and 'buggy.py", line 3' in traced.stderr


def test_a_party_alone_says_where_it_listens_and_whom_it_waits_for(tmp_path: Path) -> None:
    config = _config(tmp_path)
    t0 = time.monotonic()
    res = mpc("run", str(config), "--party", "bank_a", "--start-timeout", "3")
    waited = time.monotonic() - t0
    assert res.returncode == 1
    lines = [ln for ln in res.stderr.splitlines() if "listening on" in ln]
    assert lines and "waiting for bank_b at 127.0.0.1:" in lines[0] and "helper at 127.0.0.1:" in lines[0], res.stderr
    assert "up to 3 s" in lines[0]
    assert "timed out after 3 s waiting for bank_b" in res.stderr and "--start-timeout waits longer" in res.stderr
    assert waited >= 3
    bad = mpc("run", str(config), "--party", "bank_a", "--start-timeout", "soon")
    assert bad.returncode == 2 and "expected seconds or forever, got soon" in bad.stderr


def test_launch_output_writes_each_partys_results(tmp_path: Path) -> None:
    prog = tmp_path / "tables.py"
    prog.write_text("import numpy as np\n\n\nasync def tables(ctx):\n"
                    "    x = await ctx.input('bank_a', np.arange(30.0) if ctx.name == 'bank_a' else None)\n"
                    "    ids = ['a%d' % i for i in range(3)]\n"
                    "    return {'doubled': await ctx.reveal(x * 2), 'ids': ids, 'total': await ctx.reveal(x.sum())}\n")
    out = tmp_path / "results"
    res = mpc("launch", str(_config(tmp_path)), "--program", f"{prog}:tables", "--output", str(out))
    assert res.returncode == 0, res.stderr
    assert (out / "helper" / "ids.csv").exists() and (out / "helper" / "result.json").exists()  # the helper's own
    for party in ("bank_a", "bank_b"):
        rows = list(csv.reader((out / party / "doubled.csv").open()))
        assert [float(r[0]) for r in rows] == [2.0 * i for i in range(30)]
        assert [r[0] for r in csv.reader((out / party / "ids.csv").open())] == ["a0", "a1", "a2"]
        body = json.loads((out / party / "result.json").read_text())
        assert body["total"] == pytest.approx(435.0) and body["counters"]["rounds"] >= 1
    # the printed results are valid JSON, shortened outside the JSON with a note
    printed = [ln for ln in res.stdout.splitlines() if ln.startswith("bank_a: ")]
    shown = json.loads(printed[0].removeprefix("bank_a: "))
    assert len(shown["doubled"]) == 12 and "lists shortened to their first 12 items" in res.stdout


def test_the_fraud_program_writes_each_banks_flagged_ids(tmp_path: Path) -> None:
    import datetime

    data = tmp_path / "data"
    made = mpc("demo", "fraud", "--write-data", str(data), "--accounts", "300")
    assert made.returncode == 0, made.stderr
    out = tmp_path / "out"
    res = mpc("launch", str(_config(tmp_path)), "--program", "fraud", "-p", f"data_dir={data}", "-p", "flags_to=own",
              "--output", str(out), "--json")
    assert res.returncode == 0, res.stderr
    report = json.loads(res.stdout)  # valid JSON, every item in it
    accounts = [r[0] for r in csv.reader((data / "accounts.csv").open())][1:]
    for bank in ("bank_a", "bank_b"):
        flagged = [r[0] for r in csv.reader((out / bank / "flagged_accounts.csv").open())]
        flags = [int(r[0]) for r in csv.reader((out / bank / "flags.csv").open())]
        assert flagged == [a for a, f in zip(accounts, flags, strict=True) if f]
        body = json.loads((out / bank / "result.json").read_text())
        started = datetime.datetime.fromisoformat(body["online_started"])
        assert started.tzinfo is not None and body["online_s"] >= 0
        party = next(p for p in report["parties"] if p["name"] == bank)
        assert party["result"]["flagged_accounts"] == flagged
    assert not (out / "helper" / "flagged_accounts.csv").exists()

"""The fraud demo: data files, features, the secure pipeline against plain numpy, and the CLI end to end."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from parties.fraud import data, features
from parties.fraud.model import load
from parties.fraud.secure import N_FEATURES, score, standardised_part
from protocols.interface.context import Context, run_local

ROOT = Path(__file__).resolve().parent.parent


def mpc(*args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "parties", *args], capture_output=True, text=True, timeout=timeout,
                          cwd=ROOT)


@pytest.fixture(scope="module")
def small_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return data.write(data.generate(1500, seed=11), tmp_path_factory.mktemp("fraud") / "data")


# -- data and features -----------------------------------------------------------------------------------

def test_generator_is_seeded_and_overlapping() -> None:
    a, b = data.generate(800, seed=3), data.generate(800, seed=3)
    np.testing.assert_array_equal(a.accounts, b.accounts)
    np.testing.assert_array_equal(a.bank_a.amount, b.bank_a.amount)
    in_a, in_b = set(a.bank_a.account.tolist()), set(a.bank_b.account.tolist())
    assert in_a & in_b and in_a - in_b and in_b - in_a  # partial overlap under shared ids
    mules = set(a.accounts[a.labels == 1].tolist())
    assert mules and mules <= in_a & in_b


def test_csv_round_trip(small_data: Path) -> None:
    ds = data.read_dataset(small_data)
    orig = data.generate(1500, seed=11)
    np.testing.assert_array_equal(ds.accounts, orig.accounts)
    np.testing.assert_allclose(features.compute(ds.bank_a, ds.accounts), features.compute(orig.bank_a, ds.accounts))
    np.testing.assert_array_equal(ds.labels, orig.labels)


def test_features_by_hand() -> None:
    tx = data.Transactions(
        account=np.array(["x", "x", "x", "y", "z"]), timestamp=np.array([0, 3600, 7200, 10, 5]),
        inflow=np.array([True, True, False, False, True]), amount=np.array([100.0, 600.0, 50.0, 10.0, 20.0]),
        counterparty=np.array(["p", "q", "r", "s", "p"]))
    f = features.compute(tx, np.array(["x", "y", "w"]))  # z is not listed; w has no transactions
    assert f[2].tolist() == [0.0] * len(features.FEATURES)
    assert f[0, 0] == 1 and f[0, 1] == pytest.approx(np.log1p(2)) and f[0, 2] == pytest.approx(np.log1p(700))
    assert f[0, 5] == pytest.approx(0.5) and f[0, 6] == pytest.approx(np.log1p(2))
    assert f[0, 7] == pytest.approx(np.log1p(1.0))  # the outflow came 1 h after the latest inflow
    assert f[1, 3] == pytest.approx(np.log1p(1)) and f[1, 7] == 0.0  # an outflow with no earlier inflow


BAD_ROWS = {
    "amount": ("ACx,10,in,abc,CP1", "row 3, column amount: 'abc' is not a number"),
    "negative amount": ("ACx,10,in,-5,CP1", "row 3, column amount: '-5' is not a positive finite amount"),
    "direction": ("ACx,10,sideways,5,CP1", "row 3, column direction: 'sideways' is not 'in' or 'out'"),
    "timestamp": ("ACx,yesterday,in,5,CP1", "row 3, column timestamp: 'yesterday' is not an integer"),
    "columns": ("ACx,10,in,5", "row 3: expected 5 columns"),
    "empty id": (",10,in,5,CP1", "row 3, column account_id: '' is empty"),
    "20-digit timestamp": ("ACx,99999999999999999999,in,5,CP1",
                           "row 3, column timestamp: '99999999999999999999' is not an integer number of seconds"),
    "negative timestamp": ("ACx,-1,in,5,CP1", "row 3, column timestamp: '-1' is not an integer number of seconds"),
    "NUL byte": ("ACx,10,in,5,CP\x001", "row 3, column counterparty: 'CP\\x001' contains a control character"),
    "NUL byte in an id": ("AC\x00x,10,in,5,CP1", "row 3, column account_id: 'AC\\x00x' contains a control"),
    "line break in a quoted id": ('"AC\nx",10,in,5,CP1', "row 3, column account_id: 'AC\\nx' contains a line break"),
    "unbalanced quote": ('ACx,10,in,5,"CP1', "row 3 (from line 3, read up to line 3): unexpected end of data"),
}


@pytest.mark.parametrize("case", sorted(BAD_ROWS))
def test_bad_csv_names_file_row_column(tmp_path: Path, case: str) -> None:
    row, message = BAD_ROWS[case]
    path = tmp_path / "bank_a.csv"
    path.write_text(",".join(data.COLUMNS) + "\nACx,1,in,5.00,CP0\n" + row + "\n")
    with pytest.raises(data.DataError) as info:
        data.read_transactions(path)
    assert str(info.value).startswith(str(path)) and message in str(info.value)


def test_bad_header_and_accounts(tmp_path: Path) -> None:
    (tmp_path / "bank_a.csv").write_text("id,when,dir,amount,cp\n")
    with pytest.raises(data.DataError, match="row 1: no column 'account_id' in the header 'id,when,dir,amount,cp'"):
        data.read_transactions(tmp_path / "bank_a.csv")
    (tmp_path / "accounts.csv").write_text("account_id\nA1\nA2\nA1\n")
    with pytest.raises(data.DataError, match="row 4, column account_id: 'A1' is listed twice"):
        data.read_accounts(tmp_path / "accounts.csv")


def _big_bank_file(path: Path, rows: int = 20_000) -> list[str]:
    lines = [",".join(data.COLUMNS)] + [f"AC{i % 977},{i},{'in' if i % 2 else 'out'},{i % 50 + 1}.25,CP{i}"
                                        for i in range(rows)]
    path.write_text("\n".join(lines) + "\n")
    return lines


@pytest.mark.parametrize("closing", [False, True])
def test_unbalanced_quote_in_a_large_file_names_its_row(tmp_path: Path, closing: bool) -> None:
    """A quote left open swallows the rest of the file (or up to the next quote): the error names the row
    where it opened, not the end of the file."""
    path = tmp_path / "bank_b.csv"
    lines = _big_bank_file(path)
    lines[12_345] = lines[12_345].replace(",CP", ',"CP')  # data row 12,345 is row 12,346 of the file
    if closing:
        lines[15_000] = lines[15_000].replace(",CP", ',"CP') + '"'
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(data.DataError) as info:
        data.read_transactions(path)
    assert str(info.value).startswith(f"{path}: row 12346 (from line 12346, read up to line ")
    assert "left open" in str(info.value) and len(str(info.value)) < 300


def test_exports_with_a_bom_other_column_order_and_extra_columns(tmp_path: Path) -> None:
    """Excel's "CSV UTF-8" starts with a byte-order mark; other tools order columns their own way."""
    plain = tmp_path / "plain.csv"
    lines = _big_bank_file(plain, 200)
    order = [4, 2, 0, 3, 1]
    rows = [line.split(",") for line in lines]
    export = tmp_path / "export.csv"
    export.write_bytes(b"\xef\xbb\xbf" + "\r\n".join(
        ",".join([f"{r[i]}" if k else r[i].upper() if n == 0 else r[i] for k, i in enumerate(order)] + ["note"])
        for n, r in enumerate(rows)).encode() + b"\r\n\r\n")
    a, b = data.read_transactions(plain), data.read_transactions(export)
    for field in ("account", "timestamp", "inflow", "amount", "counterparty"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
    (tmp_path / "accounts.csv").write_bytes(b"\xef\xbb\xbfaccount_id\r\nAC1\r\n")
    assert data.read_accounts(tmp_path / "accounts.csv").tolist() == ["AC1"]
    twice = tmp_path / "twice.csv"
    twice.write_text("account_id,amount,timestamp,direction,amount,counterparty\n")
    with pytest.raises(data.DataError, match="row 1: two columns named 'amount'"):
        data.read_transactions(twice)
    latin = tmp_path / "latin.csv"
    latin.write_bytes(",".join(data.COLUMNS).encode() + b"\nAC1,1,in,5,caf\xe9\n")
    with pytest.raises(data.DataError, match=r"latin.csv: line 2: not UTF-8 text \(byte 0xe9\)"):
        data.read_transactions(latin)


def test_labels_for_some_accounts_are_evaluated_on_those(tmp_path: Path) -> None:
    from parties.fraud.demo import _metrics

    accounts = np.array(["A1", "A2", "A3", "A4"])
    path = tmp_path / "labels.csv"
    path.write_text("account_id,is_mule\nA3,1\nA4,0\nZZ,1\n")  # A1, A2 unlabelled; ZZ not listed
    labels = data.read_labels(path, accounts)
    assert labels.tolist() == [data.UNLABELLED, data.UNLABELLED, 1, 0]
    # flags: A1 (unlabelled) and A3 (a mule) flagged: precision 1/1 and recall 1/1 over the labelled ones
    assert _metrics(np.array([1, 0, 1, 0]), labels) == (1.0, 1.0)
    assert _metrics(np.array([1, 0, 0, 1]), labels) == (0.0, 0.0)
    path.write_text("account_id,is_mule\nZZ,1\n")
    with pytest.raises(data.DataError, match="none of the 4 listed accounts has a label"):
        data.read_labels(path, accounts)
    path.write_text("account_id,is_mule\nA1,1\nA1,0\n")
    with pytest.raises(data.DataError, match="row 3, column is_mule: '0' contradicts the earlier label"):
        data.read_labels(path, accounts)


# -- the secure pipeline in one process ------------------------------------------------------------------

@pytest.mark.parametrize("method", ["dcf", "bits"])
def test_secure_scores_match_numpy(make_topology, method: str) -> None:
    ds = data.generate(300, seed=5)
    model = load()["joint"]
    raw_a, raw_b = features.compute(ds.bank_a, ds.accounts), features.compute(ds.bank_b, ds.accounts)
    std_a, std_b = standardised_part(model, raw_a, 0), standardised_part(model, raw_b, 1)
    n = len(ds.accounts)

    async def program(ctx: Context):
        x_a = ctx.input("bank_a", std_a if ctx.name == "bank_a" else None, shape=(n, N_FEATURES), fixed=True)
        x_b = ctx.input("bank_b", std_b if ctx.name == "bank_b" else None, shape=(n, N_FEATURES), fixed=True)
        scores, flags = score(ctx, x_a, x_b, model)
        return await ctx.reveal(scores), await ctx.reveal(flags), await flags.depth()

    out = run_local(make_topology(2, comparison=method), program)
    scores, flags, depth = out["bank_a"].value
    plain = model.scores(np.hstack([raw_a, raw_b]))
    bound = model.score_error_bound(np.hstack([std_a, std_b]), 16)
    assert (np.abs(scores - plain) <= bound).all()
    np.testing.assert_array_equal(flags, (plain > model.threshold).astype(np.int64))
    if method == "dcf":  # input, two hidden layers, the comparison: one round each
        assert max(o.value[2] for name, o in out.items() if name != "helper") == 4


# -- the demo through the CLI ----------------------------------------------------------------------------

def test_demo_end_to_end_json(small_data: Path) -> None:
    res = mpc("demo", "fraud", "--plaintext-model", "--data", str(small_data), "--method", "dcf", "--reveal-scores",
              "--json")
    assert res.returncode == 0, res.stderr
    r = json.loads(res.stdout)
    keys = {"accounts", "flagged", "flags_match_plaintext", "max_score_error", "precision_joint", "recall_joint",
            "recall_bank_a_alone", "recall_bank_b_alone", "rounds", "bytes_online", "bytes_offline", "wall_s"}
    assert keys <= set(r)
    assert r["accounts"] == 1500 and r["flagged"] > 0
    assert r["flags_match_plaintext"] is True
    assert r["max_score_error"] <= r["score_error_bound"]
    assert r["rounds"] == 5  # input, 2 layers, comparison, opening
    assert r["recall_joint"] > r["recall_bank_a_alone"] + 0.2
    assert r["recall_joint"] > r["recall_bank_b_alone"] + 0.2
    assert r["precision_joint"] > 0.8
    assert "no transactions, features, scores or flags" in r["learned"]["helper"]


def test_demo_default_synthetic_own_flags_and_query() -> None:
    res = mpc("demo", "fraud", "--plaintext-model", "--accounts", "600", "--seed", "3", "--flags-to", "own", "--json")
    assert res.returncode == 0, res.stderr
    r = json.loads(res.stdout)  # the progress lines go to stderr: stdout is the JSON alone
    stages = [line.split("] ", 1)[1].split(":", 1)[0] for line in res.stderr.splitlines() if line.startswith("[")]
    assert stages == ["data", "start", "features", "dealing", "online", "report"], res.stderr
    assert r["flags_match_plaintext"] is True and r["scores_opened_to_banks"] is False
    assert 0 < r["max_score_error"] <= r["score_error_bound"]  # from the banks' shares, by the auditor
    assert "its own customers" in r["learned"]["bank_a"]
    accounts = data.generate(600, seed=3)
    mule = str(accounts.accounts[accounts.labels == 1][0])
    res = mpc("demo", "fraud", "--accounts", "600", "--seed", "3", "--query", mule, "--latency-ms", "5")
    assert res.returncode == 0, res.stderr
    assert f"account {mule}: FLAGGED (same as plaintext)" in res.stdout
    assert "5 rounds" in res.stdout


def test_demo_bad_csv_is_a_clear_error(small_data: Path, tmp_path: Path) -> None:
    bad = tmp_path / "data"
    bad.mkdir()
    for name in ("accounts.csv", "bank_a.csv", "bank_b.csv"):
        (bad / name).write_text((small_data / name).read_text())
    lines = (bad / "bank_b.csv").read_text().splitlines()
    lines[4] = lines[4].replace(",in,", ",inwards,").replace(",out,", ",outwards,")
    (bad / "bank_b.csv").write_text("\n".join(lines) + "\n")
    res = mpc("demo", "fraud", "--data", str(bad))
    assert res.returncode != 0
    assert f"{bad / 'bank_b.csv'}: row 5, column direction" in res.stderr
    assert "Traceback" not in res.stderr
    assert "start" not in res.stderr  # nothing was started


def test_demo_query_of_an_unknown_account_says_where_ids_are(small_data: Path) -> None:
    res = mpc("demo", "fraud", "--accounts", "40", "--seed", "2", "--query", "NOPE")
    first = data.generate(40, seed=2).accounts[0]
    assert res.returncode == 1 and "Traceback" not in res.stderr
    assert "--query: account 'NOPE' is not among the 40 synthetic accounts of seed 2" in res.stderr
    assert "--accounts 40 --seed 2 --write-data DIR" in res.stderr and f"e.g. {first}" in res.stderr
    assert "mpc-fraud-" not in res.stderr  # no temporary file that is gone by the time it is read
    res = mpc("demo", "fraud", "--data", str(small_data), "--query", "NOPE")
    assert f"is not among {small_data / 'accounts.csv'} (1,500 accounts); e.g. " in res.stderr


def _report(**changes: object) -> dict[str, object]:
    report: dict[str, object] = {
        "accounts": 5000, "labelled_accounts": 5000, "source": "synthetic, seed 7", "flagged": 210,
        "precision_joint": 0.96, "recall_joint": 1.0, "precision_bank_a_alone": 0.7, "recall_bank_a_alone": 0.5,
        "precision_bank_b_alone": 0.7, "recall_bank_b_alone": 0.6, "flags_match_plaintext": True,
        "flag_mismatches": 0, "scores_opened_to_banks": False, "max_score_error": 6e-4, "score_error_bound": 2e-2,
        "rounds": 30, "bytes_online": 29_243_472, "wall_s": 0.13, "comparison_method": "bits", "latency_ms": 0.0,
        "bytes_offline": 16_881_264, "dealer_s": 0.44, "end_to_end_s": 1.5,
        "learned": {"bank_a": "its own transactions and features, the public account list and model (5000 "
                              "accounts); the flags of all listed accounts; nothing of bank_b's data"}}
    return {**report, **changes}


@pytest.mark.parametrize("width", [64, 100, 180])
def test_report_fits_the_terminal(width: int) -> None:
    import io

    from rich.console import Console

    from parties.fraud.demo import print_report

    out = io.StringIO()
    print_report(_report(), Console(file=out, width=width, force_terminal=True, color_system=None))
    lines = out.getvalue().splitlines()
    assert max(len(line) for line in lines) <= width
    assert "cross-bank fraud detection: 5,000 accounts (synthetic, seed 7)" in out.getvalue().replace("\n", " ")
    assert out.getvalue().count("5,000") == 1  # the title says the count once
    if width > 150:  # long lines use the room there is
        assert max(len(line) for line in lines) > 120
    piped = io.StringIO()  # not a terminal (a log, a pipe): lines are not broken at all
    print_report(_report(labelled_accounts=1234), Console(file=piped, width=80))
    assert "precision and recall over the 1,234 of 5,000 accounts that labels.csv labels" in piped.getvalue()
    assert any(len(line) > 150 and line.startswith("largest score error") for line in piped.getvalue().splitlines())


def test_the_multi_host_steps_of_the_readme(small_data: Path, tmp_path: Path) -> None:
    """Keys, one topology, one `mpc run` per party with only its own data, on three addresses."""
    import yaml

    from mpc.localhost import free_ports

    res = mpc("keys", "generate", str(tmp_path / "keys"), "--party", "bank_a", "--party", "bank_b", "--party", "helper")
    assert res.returncode == 0, res.stderr
    ports = free_ports(3)
    parties = [{"name": n, "role": "helper" if n == "helper" else "compute", "host": f"127.0.0.{i + 1}",
                "port": ports[i], "public_key": f"keys/{n}.key"} for i, n in enumerate(("bank_a", "bank_b", "helper"))]
    topology = tmp_path / "topology.yaml"
    topology.write_text(yaml.safe_dump({"name": "three-hosts", "deployment": {"parties": parties},
                                        "session": {"timeout_s": 30}}))
    assert mpc("check", str(topology)).returncode == 0
    own_files = {"bank_a": ["accounts.csv", "bank_a.csv"], "bank_b": ["accounts.csv", "bank_b.csv"],
                 "helper": ["accounts.csv"]}
    procs = {}
    for name, files in own_files.items():
        own = tmp_path / f"data_{name}"
        own.mkdir()
        for f in files:
            (own / f).write_text((small_data / f).read_text())
        procs[name] = subprocess.Popen(
            [sys.executable, "-m", "parties", "run", str(topology), "--party", name, "--secret-key",
             str(tmp_path / "keys" / f"{name}.key_secret"), "--program", "fraud", "-p", f"data_dir={own}", "--json"],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out = {}
    for name, p in procs.items():
        stdout, stderr = p.communicate(timeout=120)
        assert p.returncode == 0, stderr
        out[name] = json.loads(stdout)["result"]
    ds = data.read_dataset(small_data)
    joint = load()["joint"]
    raw = [features.compute(tx, ds.accounts) for tx in (ds.bank_a, ds.bank_b)]
    plain = joint.scores(np.hstack(raw))
    expected = sorted(ds.accounts[plain > joint.threshold].tolist())
    assert expected and sorted(out["bank_a"]["flagged_accounts"]) == expected
    assert out["bank_b"]["flagged_accounts"] == out["bank_a"]["flagged_accounts"]
    assert "flags" not in out["helper"] and "flagged_accounts" not in out["helper"]

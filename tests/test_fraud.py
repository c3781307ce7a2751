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
from protocols.context import Context, run_local

ROOT = Path(__file__).resolve().parent.parent


def mpc(*args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mpc", *args], capture_output=True, text=True, timeout=timeout,
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
    with pytest.raises(data.DataError, match="row 1: expected the header"):
        data.read_transactions(tmp_path / "bank_a.csv")
    (tmp_path / "accounts.csv").write_text("account_id\nA1\nA2\nA1\n")
    with pytest.raises(data.DataError, match="row 4, column account_id: 'A1' is listed twice"):
        data.read_accounts(tmp_path / "accounts.csv")


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
    res = mpc("demo", "fraud", "--data", str(small_data), "--method", "dcf", "--reveal-scores", "--json")
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
    res = mpc("demo", "fraud", "--accounts", "600", "--seed", "3", "--flags-to", "own", "--json")
    assert res.returncode == 0, res.stderr
    r = json.loads(res.stdout)
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


def test_the_multi_host_steps_of_the_readme(small_data: Path, tmp_path: Path) -> None:
    """Keys, one topology, one `mpc run` per party with only its own data, on three addresses."""
    import yaml

    from mpc.benchmark import free_ports

    res = mpc("keys", "generate", str(tmp_path / "keys"), "--party", "bank_a", "--party", "bank_b", "--party", "helper")
    assert res.returncode == 0, res.stderr
    ports = free_ports(3)
    parties = [{"name": n, "role": "helper" if n == "helper" else "compute", "host": f"127.0.0.{i + 1}",
                "port": ports[i], "public_key": f"keys/{n}.key"} for i, n in enumerate(("bank_a", "bank_b", "helper"))]
    topology = tmp_path / "topology.yaml"
    topology.write_text(yaml.safe_dump({"name": "three-hosts", "timeout_s": 30, "parties": parties}))
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
            [sys.executable, "-m", "mpc", "run", str(topology), "--party", name, "--secret-key",
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

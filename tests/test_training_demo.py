"""`mpc demo fraud` trains on shares (parties as processes), and a later session scores from the share files."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from mpc.localhost import free_ports
from parties.fraud import data, features
from parties.fraud import train as fraud_train
from protocols.applications import training

ROOT = Path(__file__).resolve().parent.parent
MLP = "16-16-relu,16-8-relu,8-1-logistic"


def mpc(*args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "parties", *args], capture_output=True, text=True, timeout=timeout,
                          cwd=ROOT)


@pytest.fixture(scope="module")
def small_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("train") / "data"
    res = mpc("demo", "fraud", "--accounts", "1500", "--seed", "11", "--write-data", str(out))
    assert res.returncode == 0, res.stderr
    return out


def copy_data(small_data: Path, target: Path) -> Path:
    target.mkdir()
    for f in small_data.iterdir():
        (target / f.name).write_text(f.read_text())
    return target


def test_demo_trains_on_shares_then_a_later_session_scores_with_the_share_files(small_data: Path,
                                                                                 tmp_path: Path) -> None:
    models = tmp_path / "models"
    res = mpc("demo", "fraud", "--data", str(small_data), "--epochs", "3", "--batch-size", "32",
              "--model-out", str(models), "--reveal-model", "--json")
    assert res.returncode == 0, res.stderr
    r = json.loads(res.stdout)
    assert {"auc_secure", "auc_reference", "auc_sklearn", "auc_bank_a_alone", "auc_bank_b_alone",
            "train_rounds_per_step", "train_online_s", "train_dealer_s"} <= set(r)
    assert "training: epoch 3/3 [####################]" in res.stderr  # the progress bar of epochs
    assert abs(r["auc_secure"] - r["auc_reference"]) <= 0.01
    assert abs(r["precision_secure"] - r["precision_reference"]) <= 0.02
    assert abs(r["recall_secure"] - r["recall_reference"]) <= 0.02
    assert r["flags_match_secure_weights"] is True and r["flagged_secure"] > 0
    assert r["auc_secure"] > max(r["auc_bank_a_alone"], r["auc_bank_b_alone"]) + 0.02
    assert r["auc_secure"] > 0.98 and r["recall_secure"] > 0.9
    assert "no transactions, features, labels, weights, scores or flags" in r["learned"]["helper"]
    assert "its own share of the model" not in r["learned"]["bank_a"]  # --reveal-model: it learned the weights
    weights = [(np.array(w), np.array(b)) for w, b in r["weights"]]

    # a later session: `mpc run` per party, each bank with its own share file only
    outputs = run_parties(small_data, tmp_path, {"model_shares": str(models / "model_{party}.npz"),
                                                 "model_architecture": MLP})
    flags = np.array(outputs["bank_a"]["flags"])
    assert outputs["bank_b"]["flags"] == outputs["bank_a"]["flags"]
    assert "flags" not in outputs["helper"]
    ds = data.read_dataset(small_data)
    train_rows, _ = fraud_train.split(len(ds.accounts), 7, 0.5)
    x = np.hstack([fraud_train.standardise(features.compute(tx, ds.accounts), train_rows)[0]
                   for tx in (ds.bank_a, ds.bank_b)])
    logits = training.predict_reference(weights, x)
    differ = flags != (logits > 0)
    assert flags.sum() > 0 and not np.any(differ & (np.abs(logits) > 0.01)), logits[differ]


def run_parties(data_dir: Path, tmp_path: Path, params: dict[str, str], program: str = "fraud") -> dict[str, dict]:
    ports = free_ports(3)
    parties = [{"name": n, "role": "helper" if n == "helper" else "compute", "host": "127.0.0.1", "port": ports[i]}
               for i, n in enumerate(("bank_a", "bank_b", "helper"))]
    topology = tmp_path / "topology.yaml"
    topology.write_text(yaml.safe_dump({"name": "later", "deployment": {"parties": parties},
                                        "session": {"timeout_s": 30}}))
    args = [f"data_dir={data_dir}", *(f"{k}={v}" for k, v in params.items())]
    procs = {name: subprocess.Popen([sys.executable, "-m", "parties", "run", str(topology), "--party", name,
                                     "--program", program, *(a for p in args for a in ("-p", p)), "--json"],
                                    cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for name in ("bank_a", "bank_b", "helper")}
    out = {}
    for name, p in procs.items():
        stdout, stderr = p.communicate(timeout=120)
        assert p.returncode == 0, stderr
        out[name] = json.loads(stdout)["result"]
    return out


def test_bad_labels_are_clear_errors_before_any_party_starts(small_data: Path, tmp_path: Path) -> None:
    bad = copy_data(small_data, tmp_path / "bad")
    first = data.read_accounts(bad / "accounts.csv")[0]
    (bad / "labels_bank_a.csv").write_text(f"account_id,is_mule\n{first},2\n")
    res = mpc("demo", "fraud", "--data", str(bad))
    assert res.returncode == 1 and "Traceback" not in res.stderr
    assert f"{bad / 'labels_bank_a.csv'}: row 2, column is_mule: '2' is not 0 or 1" in res.stderr
    assert "start:" not in res.stderr
    (bad / "labels_bank_a.csv").write_text("account_id,is_mule\nNOBODY1,1\nNOBODY2,1\n")
    res = mpc("demo", "fraud", "--data", str(bad))
    assert "labels_bank_a.csv: 2 labelled account(s) are not in the account list, e.g. 'NOBODY1'" in res.stderr
    (bad / "labels_bank_b.csv").unlink()
    (bad / "labels_bank_a.csv").write_text("account_id,is_mule\n")
    res = mpc("demo", "fraud", "--data", str(bad))
    assert "labels_bank_b.csv: no such file: training needs each bank's known mules" in res.stderr


def test_no_positive_label_at_all_stops_both_banks(small_data: Path, tmp_path: Path) -> None:
    none = copy_data(small_data, tmp_path / "none")
    for bank in ("bank_a", "bank_b"):
        (none / f"labels_{bank}.csv").write_text("account_id,is_mule\n")
    res = mpc("demo", "fraud", "--data", str(none), "--epochs", "1")
    assert res.returncode == 1 and "Traceback" not in res.stderr
    assert "no positive label at all among the 750 training accounts" in res.stderr


def test_bench_records_rounds_per_step_of_training() -> None:
    res = mpc("bench", "--op", "train_lr,train_mlp", "--method", "dcf", "--n", "300", "--repeat", "1", "--json")
    assert res.returncode == 0, res.stderr
    records = {r["op"]: r for r in json.loads(res.stdout)}
    assert records["train_lr"]["rounds_per_step"] == 4 and records["train_mlp"]["rounds_per_step"] == 12
    for r in records.values():
        assert r["correct"] and r["steps"] == 3 and r["steps_per_s"] > 0
        assert r["bytes_online_per_step"] > 0 and r["bytes_offline_per_step"] > 0

"""A training on shares killed mid-way resumes from its last complete epoch (parties as processes)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from protocols.applications import training

pytestmark = pytest.mark.timeout(900)  # three trainings of parties as processes, on a busy machine
ROOT = Path(__file__).resolve().parent.parent
ARGS = ["--epochs", "6", "--batch-size", "32", "--seed", "5"]
MLP = "16-16-relu,16-8-relu,8-1-logistic"


def mpc(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "parties", *args], capture_output=True, text=True, timeout=timeout,
                          cwd=ROOT)


def _children(pid: int) -> list[tuple[int, str]]:
    """The processes whose parent is `pid`, with their command lines (our own demo's parties)."""
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (OSError, IndexError, ValueError):
            continue
        if ppid == pid:
            out.append((int(entry.name), cmdline))
    return out


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("resume") / "data"
    res = mpc("demo", "fraud", "--accounts", "3000", "--seed", "5", "--write-data", str(out))
    assert res.returncode == 0, res.stderr
    return out


def test_a_training_killed_mid_way_resumes_to_the_same_accuracy(data_dir: Path, tmp_path: Path) -> None:
    whole = mpc("demo", "fraud", "--data", str(data_dir), *ARGS, "--json")
    assert whole.returncode == 0, whole.stderr
    uninterrupted = json.loads(whole.stdout)

    checkpoints = tmp_path / "ckpt"
    demo = subprocess.Popen([sys.executable, "-m", "parties", "demo", "fraud", "--data", str(data_dir), *ARGS,
                             "--checkpoint-dir", str(checkpoints)], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    store = training.Checkpoints(checkpoints)
    killed = None
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and demo.poll() is None:
            if min((store.epochs(b)[-1:] or [0])[0] for b in ("bank_a", "bank_b")) >= 2:
                bank_b = [pid for pid, cmd in _children(demo.pid) if "--party bank_b" in cmd]
                assert bank_b, "bank_b's process not found"
                os.kill(bank_b[0], signal.SIGKILL)  # mid-way: epoch 3 of 6 under way
                killed = bank_b[0]
                break
            time.sleep(0.05)
        _, err = demo.communicate(timeout=120)
    finally:
        if demo.poll() is None:
            demo.kill()
    assert killed is not None, "the training ended before it could be killed"
    assert demo.returncode != 0 and "bank_b" in err  # every party stopped, naming the killed one
    for bank in ("bank_a", "bank_b"):  # whatever was left is whole: each file reads back, checksum and all
        epochs = store.epochs(bank)
        assert epochs and epochs[-1] < 6
        for e in epochs:
            assert training.read_shares(store.path(bank, e), bank, MLP, 16).epoch == e
        assert not list(checkpoints.glob(f".checkpoint_{bank}_*.tmp"))

    resumed = mpc("demo", "fraud", "--data", str(data_dir), *ARGS, "--resume", str(checkpoints), "--json")
    assert resumed.returncode == 0, resumed.stderr
    r = json.loads(resumed.stdout)
    assert r["resumed_after_epoch"] >= 2
    assert r["train_steps"] < uninterrupted["train_steps"]  # only the epochs left were trained
    assert abs(r["auc_secure"] - uninterrupted["auc_secure"]) <= 0.002
    assert r["flagged_secure"] == pytest.approx(uninterrupted["flagged_secure"], abs=2)
    assert max(store.epochs("bank_a")) == 6

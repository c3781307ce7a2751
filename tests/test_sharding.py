"""A party over many workers (docs/sharding.md): the split, the party-local collectives against numpy,
data-parallel training against the unsharded run, and shard workers as real processes (results, faults,
nothing left behind)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from mpc.config import FLAT_FIELDS, ConfigError, localhost_topology, parse_topology
from mpc.localhost import free_port_run
from mpc.shards import Rendezvous, ShardMismatch, combine, row_range, shard_topology
from protocols.applications import training as tr
from protocols.interface.collectives import run_local_sharded, shards
from protocols.interface.context import Context, run_local
from tests.shard_programs import collectives
from tests.test_cli_launch import assert_gone, children
from tests.test_training import LR, MLP, TOL, X, Y, assert_close

ROOT = Path(__file__).resolve().parent.parent
PROGRAM = f"{ROOT / 'tests' / 'shard_programs.py'}:collectives"
FIX = 2.0**-16  # one unit of the fixed point at frac_bits 16


# -- the split, the shard sessions' topologies, combining ------------------------------------------

@pytest.mark.parametrize("n", [0, 1, 2, 7, 1000, 10**8 + 3])
@pytest.mark.parametrize("count", [1, 2, 3, 16])
def test_rows_tile_every_row_once_in_blocks_that_differ_by_at_most_one(n: int, count: int) -> None:
    blocks = [row_range(n, i, count) for i in range(count)]
    assert blocks[0][0] == 0 and blocks[-1][1] == n
    assert all(a[1] == b[0] for a, b in zip(blocks, blocks[1:], strict=False))
    sizes = [hi - lo for lo, hi in blocks]
    assert max(sizes) - min(sizes) <= 1
    with pytest.raises(ValueError, match="does not exist"):
        row_range(n, count, count)


def test_shard_sessions_listen_on_their_own_ports() -> None:
    topo = localhost_topology(2, True, [5601, 5602, 5603], workers=3)
    ports = [[p.port for p in shard_topology(topo, i).parties] for i in range(3)]
    assert ports == [[5601, 5602, 5603], [5604, 5605, 5606], [5607, 5608, 5609]]
    assert all(shard_topology(topo, i).workers == 1 for i in range(3))
    spread = localhost_topology(2, True, [5601, 5701, 5801], workers=2, shard_port_step=50)
    assert [p.port for p in shard_topology(spread, 1).parties] == [5651, 5751, 5851]
    nodes = parse_topology({"deployment": {"workers": 3, "insecure": True, "parties": [
        {"name": "bank_a", "role": "compute", "host": "10.0.0.1", "port": 5601,
         "ray": {"address": "10.0.0.1:6379", "hosts": ["10.0.0.1", "10.0.0.2"]}},
        {"name": "bank_b", "role": "compute", "host": "10.1.0.1", "port": 5602},
        {"name": "helper", "role": "helper", "host": "10.2.0.1", "port": 5603}]}})
    assert [shard_topology(nodes, i).party("bank_a").host for i in range(3)] == ["10.0.0.1", "10.0.0.2", "10.0.0.1"]
    assert [shard_topology(nodes, i).party("bank_b").host for i in range(3)] == ["10.1.0.1"] * 3


def test_topology_workers_and_ray_fields_are_checked() -> None:
    base: dict[str, Any] = {"parties": [{"name": "bank_a", "role": "compute", "port": 6000},
                                        {"name": "bank_b", "role": "compute", "port": 6001, "ray": "auto"},
                                        {"name": "helper", "role": "helper", "port": 6002,
                                         "ray": {"address": "10.0.0.5:6379"}}]}
    def parse(deployment: dict[str, Any]) -> Any:
        return parse_topology({"deployment": deployment})

    topo = parse({**base, "workers": 2})
    assert topo.party("bank_a").ray is None
    assert topo.party("bank_b").ray is not None and topo.party("bank_b").ray.address == "auto"
    assert topo.party("helper").ray is not None and topo.party("helper").ray.address == "10.0.0.5:6379"
    with pytest.raises(ConfigError, match=r"shard 1 of bank_a would listen on 127.0.0.1:6001"):
        parse({**base, "workers": 2, "shard_port_step": 1})
    with pytest.raises(ConfigError, match=r"shard 2 of 3 would listen on port 65536"):
        parse({"parties": [{**p, "port": 65530 + i} for i, p in enumerate(base["parties"])], "workers": 3})
    with pytest.raises(ConfigError, match=r"workers: Input should be greater than or equal to 1"):
        parse({**base, "workers": 0})
    with pytest.raises(ConfigError, match=r"parties\[1\] \(bank_b\)\.ray\.port: unknown field"):
        parse({**base, "parties": [base["parties"][0], {**base["parties"][1], "ray": {"port": 1}}, base["parties"][2]]})


def test_combine_sums_in_the_ring_joins_and_copies() -> None:
    top = np.array([2**64 - 1, 5], dtype=np.uint64)
    assert combine("sum/frac16", 0, [top, np.array([2, 1], dtype=np.uint64)]).tolist() == [1, 6]  # wraps mod 2^64
    a, b = np.arange(6.0).reshape(2, 3), -np.ones((1, 3))
    assert combine("concat", 0, [a, b]).tolist() == [[0, 1, 2], [3, 4, 5], [-1, -1, -1]]
    assert combine("concat", 1, [a, np.zeros((2, 0))]).shape == (2, 3)  # an empty part
    assert combine("broadcast", 1, [None, b]) is b
    assert combine("sum", 0, [None, None]) is None  # the helper's shards: nothing to combine
    for kind, arrays, message in [("sum", [a, b], "different shapes"), ("sum", [a, a.astype(np.int64)], "types"),
                                  ("concat", [a, None], "gave no array"), ("concat", [a, np.ones(3)], "concat"),
                                  ("broadcast", [a], "from shard 1")]:
        with pytest.raises(ShardMismatch, match=message):
            combine(kind, 1 if kind == "broadcast" else 0, arrays)


async def test_a_rendezvous_refuses_shards_that_call_different_collectives() -> None:
    import asyncio

    meet = Rendezvous(2)
    errors = await asyncio.gather(meet.exchange(0, 1, "sum/frac16", 0, np.zeros(2), 0),
                                  meet.exchange(1, 1, "concat/frac16", 0, np.zeros(2), 0), return_exceptions=True)
    assert all(isinstance(e, ShardMismatch) for e in errors), errors
    assert "called concat/frac16(0) where another shard called sum/frac16(0)" in str(errors[1])
    both = await asyncio.gather(meet.exchange(0, 2, "sum/own", 0, np.ones(2), 3),
                                meet.exchange(1, 2, "sum/own", 0, np.ones(2), 5))
    assert [(a.tolist(), d) for a, d in both] == [([2.0, 2.0], 5)] * 2  # the deepest shard's depth


# -- the collectives against numpy, every shard of every party in one event loop -------------------

def _check(result: dict[str, Any]) -> None:
    want = result["want"]
    for key in ("total", "joined", "wide", "first"):
        got, ref = np.asarray(result[key]), np.asarray(want[key])
        assert got.shape == ref.shape, key
        assert np.max(np.abs(got - ref), initial=0.0) <= 1e-3 + 4 * FIX * np.max(np.abs(ref), initial=0.0) ** 0.5, key
    assert int(result["count"]) == want["count"]


@pytest.mark.parametrize(("n", "workers"), [(11, 2), (1, 2), (9, 3)])
def test_collectives_equal_numpy(make_topology, n: int, workers: int) -> None:
    """sum, concat and broadcast of shares and of a party's own arrays; (1, 2): one shard holds no row."""
    topo = make_topology(2)
    out = run_local_sharded(topo, lambda ctx: collectives(ctx, n=n), workers)
    for name in ("bank_a", "bank_b"):
        for i, outcome in enumerate(out[name]):
            result = outcome.value
            assert result["shard"] == i and result["workers"] == workers
            _check(result)
            assert result["rows"].tolist() == [n] and result["order"].tolist() == list(range(workers))
            assert result["copy"].tolist() == [1]
    helper = out["helper"][0].value
    assert helper["total"] is None and helper["order"] is None and helper["rows"].tolist() == [n]
    # no collective is secure traffic: the sharded run sends what the unsharded one does, over its shards
    alone = run_local(topo, lambda ctx: collectives(ctx, n=n), transport="memory")
    for name in ("bank_a", "bank_b"):
        assert all(o.stats.rounds == alone[name].stats.rounds for o in out[name])
        _check(alone[name].value)


def test_collectives_of_one_worker_are_identities(make_topology) -> None:
    async def program(ctx: Context) -> Any:
        sh = shards(ctx)
        x = ctx.input("bank_a", np.arange(4.0) if ctx.name == "bank_a" else None, shape=(4,), fixed=True)
        same = [sh.sum(x) is x, sh.broadcast(x) is x, sh.concat(x) is x]
        return same, await sh.concat_own(np.ones(2)), sh.rows(10)

    out = run_local(make_topology(2), program, transport="memory")
    assert out["bank_a"].value[0] == [True] * 3 and out["bank_a"].value[1].tolist() == [1, 1]
    assert out["bank_a"].value[2] == (0, 10)


def test_shards_that_diverge_stop_the_run_naming_the_mismatch(make_topology) -> None:
    async def program(ctx: Context) -> Any:
        sh = shards(ctx)
        x = ctx.constant(np.ones(3))
        y = sh.sum(x) if sh.index == 0 else sh.broadcast(x)  # not SPMD over shards
        return await ctx.reveal(y)

    from mpc.runtime import PartyFailed

    with pytest.raises(PartyFailed, match="shard 1 called broadcast|shard 0 called sum"):
        run_local_sharded(make_topology(2), program, 2, timeout_s=10)


def test_shared_collectives_refuse_cleartext(make_topology) -> None:
    async def program(ctx: Context) -> Any:
        return shards(ctx).sum(np.ones(2))  # type: ignore[arg-type]

    from mpc.runtime import PartyFailed

    with pytest.raises(PartyFailed, match="for this party's own cleartext use sum_own"):
        run_local_sharded(make_topology(2), program, 2, timeout_s=10)


# -- data-parallel training ------------------------------------------------------------------------

def _training(cfg: tr.TrainConfig, sharded: bool, n: int = len(X)) -> Any:
    async def program(ctx: Context) -> Any:
        lo, hi = shards(ctx).rows(n) if sharded else (0, n)
        xs = ctx.input("bank_a", X[lo:hi] if ctx.name == "bank_a" else None, shape=(hi - lo, X.shape[1]), fixed=True)
        ys = ctx.input("bank_b", Y[lo:hi] if ctx.name == "bank_b" else None, shape=(hi - lo,), fixed=False)
        result = tr.train(ctx, xs, ys, cfg, total_rows=n if sharded else None)
        await tr.check_divergence(result)
        return await tr.open_weights(ctx, result), await tr.rounds_per_step(result)

    return program


TINY = tr.TrainConfig(hidden=(4,), epochs=2, batch_size=3, learning_rate=0.1, seed=2)


@pytest.mark.parametrize(("cfg", "n"), [(LR, len(X)), (MLP, len(X)), (TINY, 24)])
def test_sharded_training_equals_the_unsharded_run(make_topology, cfg: tr.TrainConfig, n: int) -> None:
    """Same batches, gradients summed within each party, one update: the weights of the unsharded run
    within the fixed-point error, in as many rounds per step. TINY: some batches have no row on a shard
    (it adds zero)."""
    if cfg is TINY:
        assert any(np.all(idx < n // 2) or np.all(idx >= n // 2) for _, idx in tr.batch_order(cfg, n))
    topo = make_topology(2, comparison="dcf", timeout_s=60)
    out = run_local_sharded(topo, _training(cfg, True, n), 2)
    (w0, r0), (w1, r1) = out["bank_a"][0].value, out["bank_a"][1].value
    assert_close(w0, w1, 0)  # shard 0's update broadcast: every shard holds the same weights
    assert_close(out["bank_b"][1].value[0], w0, 0)
    alone = run_local(topo, _training(cfg, False, n), transport="memory")["bank_a"].value
    assert_close(w0, alone[0], TOL.get(cfg.hidden, 1e-2))
    assert_close(w0, tr.train_reference(cfg, X[:n], Y[:n].astype(float)), TOL.get(cfg.hidden, 1e-2))
    assert r0 == r1 == alone[1]


def test_a_sharded_party_must_say_how_many_rows_it_trains_on(make_topology) -> None:
    from mpc.runtime import PartyFailed

    async def program(ctx: Context) -> Any:
        xs = ctx.input("bank_a", X[:4] if ctx.name == "bank_a" else None, shape=(4, X.shape[1]), fixed=True)
        ys = ctx.input("bank_b", Y[:4] if ctx.name == "bank_b" else None, shape=(4,), fixed=False)
        tr.train(ctx, xs, ys, LR)

    with pytest.raises(PartyFailed, match="pass total_rows"):
        run_local_sharded(make_topology(2), program, 2, timeout_s=10)


# -- shard workers as real processes ---------------------------------------------------------------

def _config(tmp_path: Path, **fields: Any) -> Path:
    """The shipped local topology on a run of free ports for 2 shards (shard 1: every port + 3)."""
    data = yaml.safe_load((ROOT / "configs" / "local-2banks-helper.yaml").read_text())
    base = free_port_run(6)
    for i, party in enumerate(data["deployment"]["parties"]):
        party["port"] = base + i
    data["session"]["timeout_s"] = 20
    for key, value in fields.items():  # flat keys into their sections
        data[FLAT_FIELDS[key]][key] = value
    path = tmp_path / "topology.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def mpc(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "parties", *args], capture_output=True, text=True, timeout=timeout,
                          cwd=ROOT)


@pytest.mark.timeout(300)
def test_launch_with_two_workers_per_party(tmp_path: Path) -> None:
    """Each party a coordinator and 2 shard processes: every collective right, each shard its own session,
    the party's counters summed over its shards."""
    res = mpc("launch", str(_config(tmp_path)), "--program", PROGRAM, "-p", "n=13", "--workers", "2", "--json")
    assert res.returncode == 0, res.stderr
    report = json.loads(res.stdout)
    for party in report["parties"]:
        assert len(party["shards"]) == 2
        assert len({s["session_id"] for s in party["shards"]}) == 2  # two sessions
        assert party["bytes_sent"] == sum(s["bytes_sent"] for s in party["shards"])
        if party["name"] != "helper":
            result = party["result"]
            _check({**result, "want": {k: np.asarray(v) for k, v in result["want"].items()}})
            assert result["order"] == [0, 1] and result["rows"] == [13]
    sessions = [{s["session_id"] for s in p["shards"]} for p in report["parties"]]
    assert sessions[0] == sessions[1] == sessions[2]  # shard i of every party: one session
    assert any(line.startswith("bank_b") and "[shard 1]" in line for line in res.stderr.splitlines())


def test_a_party_with_other_workers_is_refused_naming_the_setting(tmp_path: Path) -> None:
    config = str(_config(tmp_path))
    base = [sys.executable, "-m", "parties", "run", config, "--program", PROGRAM, "--timeout-s", "15"]
    procs = [subprocess.Popen([*base, "--party", name, *(["--workers", "2"] if name == "bank_a" else [])],
                              cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for name in ("bank_a", "bank_b", "helper")]
    errors = [p.communicate(timeout=90)[1] for p in procs]
    assert all(p.returncode != 0 for p in procs)
    assert any("shard: -" in e or "shard: 0 of 2" in e for e in errors[1:]), errors


def test_a_program_that_does_not_shard_refuses_workers(tmp_path: Path) -> None:
    res = mpc("launch", str(_config(tmp_path)), "--program", "arith", "--workers", "2")
    assert res.returncode == 2 and "arith does not run sharded" in res.stderr


@pytest.mark.timeout(300)
def test_a_dead_shard_stops_every_party_naming_the_party_and_shard(tmp_path: Path) -> None:
    """bank_a's shard 1 is killed (SIGKILL) mid-run: bank_a names its shard 1, every other party stops by
    itself naming bank_a, within the timeout, and no process is left behind."""
    t0 = time.monotonic()
    res = mpc("launch", str(_config(tmp_path)), "--program", PROGRAM, "-p", "die=bank_a:1", "--workers", "2",
              "--json")
    elapsed = time.monotonic() - t0
    assert res.returncode == 1
    report = json.loads(res.stdout)
    lines = res.stderr[res.stderr.index("error: launch failed"):].splitlines()
    assert lines[0].startswith("error: launch failed: bank_a: bank_a shard 1 of 2: died (killed by SIGKILL)"), lines
    assert all("bank_a's shard" in line and "launcher" not in line for line in lines[1:]), lines
    assert any("bank_a's shard 1" in line for line in lines[1:]), lines  # the one that died
    by_name = {p["name"]: p for p in report["parties"]}
    assert by_name["bank_b"]["cause"] == by_name["helper"]["cause"] == "bank_a"
    assert elapsed < 20 + 30, elapsed  # the topology's timeout and the start-up of 9 processes
    assert "Traceback" not in res.stderr
    assert_gone([p["pid"] for p in report["parties"]], "mpc-launch-")


@pytest.mark.timeout(300)
def test_a_killed_coordinator_takes_its_shards_with_it(tmp_path: Path) -> None:
    """SIGKILL to bank_b's coordinator: its orphaned shard workers stop themselves (aborting their sessions),
    the other parties stop naming bank_b, and nothing is left running."""
    sharded = subprocess.Popen([sys.executable, "-m", "parties", "launch", str(_config(tmp_path)), "--program",
                                PROGRAM, "-p", "n=200000", "--workers", "2"], cwd=ROOT, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    try:
        assert sharded.stderr is not None
        started = 0
        while started < 6:  # every shard of every party has its session
            line = sharded.stderr.readline()
            assert line, "the launch ended before every shard started"
            started += "started with" in line
        coordinators = children(sharded.pid)
        bank_b = next(pid for pid, cmd in coordinators.items() if "--party bank_b" in cmd)
        workers = list(children(bank_b))
        assert len(workers) == 2
        os.kill(bank_b, signal.SIGKILL)
        _, err = sharded.communicate(timeout=60)
    finally:
        if sharded.poll() is None:
            sharded.kill()
            sharded.communicate()
    assert sharded.returncode == 1
    assert "bank_b" in err.splitlines()[-1] or "bank_b" in err
    assert_gone([*coordinators, *workers], "mpc-launch-")


# -- on Ray (the optional extra; skipped without it) -----------------------------------------------

@pytest.mark.timeout(600)
def test_shard_workers_as_ray_actors_on_a_local_cluster(tmp_path: Path) -> None:
    """bank_a's shards are Ray actors on a Ray cluster this test starts (and stops); bank_b and the helper
    shard over local processes: the same results; every actor gone after the run; an actor never runs its
    shard twice."""
    ray = pytest.importorskip("ray")
    from parties.ray_shards import _ShardActor
    from parties.sharded import ShardJob

    ray.init(num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.1", logging_level="WARNING")
    try:
        address = ray.get_runtime_context().gcs_address
        config = _config(tmp_path, timeout_s=120)  # Ray's start-up takes tens of seconds on a busy machine
        data = yaml.safe_load(config.read_text())
        data["deployment"]["parties"][0]["ray"] = {"address": address}
        config.write_text(yaml.safe_dump(data))
        res = mpc("launch", str(config), "--program", PROGRAM, "-p", "n=9", "--workers", "2", "--json", timeout=400)
        assert res.returncode == 0, res.stderr
        report = json.loads(res.stdout)
        bank_a = report["parties"][0]
        result = bank_a["result"]
        _check({**result, "want": {k: np.asarray(v) for k, v in result["want"].items()}})
        assert result["order"] == [0, 1] and len(bank_a["shards"]) == 2
        assert [s["session_id"] for s in bank_a["shards"]] == [s["session_id"] for s in report["parties"][1]["shards"]]
        from ray._private import state

        alive = [a for a in state.actors().values() if a.get("State") != "DEAD"]
        assert not alive, alive  # the coordinator killed its actors

        # an actor runs its shard once: a retried or repeated call is refused, never played again
        actor = ray.remote(num_cpus=0, max_restarts=0, max_task_retries=0)(_ShardActor).remote()
        data = yaml.safe_load(config.read_text())
        data["deployment"]["workers"] = 2
        topo = parse_topology(data)
        first = json.loads(ray.get(actor.run.remote(topo, "bank_a", 0, ShardJob("no-such-program"), None, None)))
        assert first["ok"] is False and "unknown program" in first["error"]
        with pytest.raises(Exception, match="already ran its shard once"):
            ray.get(actor.run.remote(topo, "bank_a", 0, ShardJob("no-such-program"), None, None))
        ray.kill(actor)
    finally:
        ray.shutdown()


def test_a_ray_party_without_ray_installed_is_told_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    import builtins

    from parties.ray_shards import ray_module

    real = builtins.__import__

    def no_ray(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "ray" or name.startswith("ray."):
            raise ImportError(name)
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_ray)
    with pytest.raises(RuntimeError, match=r"pip install -e '\.\[ray\]'"):
        ray_module()


# -- the fraud demo sharded ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def demo_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("shards") / "data"
    res = mpc("demo", "fraud", "--accounts", "1500", "--seed", "11", "--write-data", str(out))
    assert res.returncode == 0, res.stderr
    return out


@pytest.mark.timeout(900)
def test_the_demo_trained_over_two_workers_scores_as_the_unsharded_run(demo_data: Path) -> None:
    """Training and scoring on 2 shards per party: the ROC AUC of the unsharded run within 0.002, the flags
    those of the secure weights, every party's shards in their own sessions."""
    # one comparison method: `auto` chooses by batch size and measured links, and a shard's batches are smaller
    args = ["demo", "fraud", "--data", str(demo_data), "--epochs", "3", "--batch-size", "32", "--method", "dcf",
            "--json"]
    runs = {}
    for workers in ("1", "2"):
        res = mpc(*args, "--workers", workers, timeout=600)
        assert res.returncode == 0, res.stderr
        runs[workers] = json.loads(res.stdout)
    one, two = runs["1"], runs["2"]
    assert abs(two["auc_secure"] - one["auc_secure"]) <= 0.002, (one["auc_secure"], two["auc_secure"])
    assert two["auc_secure"] > 0.9 and two["flags_match_secure_weights"]
    assert two["train_steps"] == one["train_steps"] and two["train_rounds_per_step"] == one["train_rounds_per_step"]
    assert abs(two["weight_drift_vs_reference"]) < 0.05


@pytest.mark.timeout(600)
def test_the_demo_scores_over_two_workers_as_the_plaintext_pipeline(demo_data: Path) -> None:
    res = mpc("demo", "fraud", "--data", str(demo_data), "--plaintext-model", "--flags-to", "own", "--workers", "2",
              "--json", timeout=400)
    assert res.returncode == 0, res.stderr
    report = json.loads(res.stdout)
    assert report["flags_match_plaintext"] and report["accounts"] == 1500
    assert report["max_score_error"] <= report["score_error_bound"]

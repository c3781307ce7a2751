"""`mpc serve`: the service's parts in process, and the three parties as real processes on loopback."""

from __future__ import annotations

import asyncio
import json
import signal
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

aiohttp = pytest.importorskip("aiohttp")

from parties.fraud import data, features  # noqa: E402
from parties.fraud.model import load  # noqa: E402
from parties.fraud.secure import standardised_part  # noqa: E402
from parties.serve import metrics  # noqa: E402
from parties.serve.http import BadRequest, parse_ids  # noqa: E402
from parties.serve.local import Service, start_service  # noqa: E402
from parties.serve.session import Pool, watermarks  # noqa: E402
from parties.serve.source import CsvSource, SqliteSource, append_sqlite, open_source, write_sqlite  # noqa: E402

MODEL = load()["joint"]


# -- parts, in process -------------------------------------------------------------------------------------

@pytest.mark.parametrize(("body", "field"), [
    ([], "body"), ({}, "account_id"), ({"account_id": 5}, "account_id"), ({"account_id": ""}, "account_id"),
    ({"account_ids": []}, "account_ids"), ({"account_ids": "A"}, "account_ids"), ({"account_ids": ["A", 3]},
                                                                                  "account_ids[1]"),
    ({"account_ids": ["A", "A"]}, "account_ids"), ({"account_id": "A", "account_ids": ["B"]}, "account_id"),
    ({"account": "A"}, "account"), ({"account_ids": [f"A{i}" for i in range(300)]}, "account_ids"),
])
def test_malformed_bodies_name_the_field(body: Any, field: str) -> None:
    with pytest.raises(BadRequest) as err:
        parse_ids(body, 256)
    assert err.value.field == field


def test_well_formed_bodies() -> None:
    assert parse_ids({"account_id": "A"}, 8) == (["A"], True)
    assert parse_ids({"account_ids": ["A", "B"]}, 8) == (["A", "B"], False)


def test_prometheus_text() -> None:
    c = metrics.Counter("x_total", "help")
    c.inc(status="200")
    c.inc(2, status="503")
    h = metrics.Histogram("lat", "help", [0.1, 1.0])
    for v in (0.05, 0.5, 5.0):
        h.observe(v)
    g = metrics.Gauge("g", "help", lambda: {(("size", "1"),): 3.0})
    parsed = metrics.parse(metrics.render([c, h, g]))
    assert parsed['x_total{status="200"}'] == 1 and parsed['x_total{status="503"}'] == 2
    assert parsed['lat_bucket{le="0.1"}'] == 1 and parsed['lat_bucket{le="1"}'] == 2
    assert parsed['lat_bucket{le="+Inf"}'] == 3 and parsed["lat_count"] == 3 and parsed['g{size="1"}'] == 3


def test_pool_refills_between_its_watermarks() -> None:
    assert watermarks((1, 8, 64, 256), 512) == [(32, 64), (32, 64), (4, 8), (1, 2)]
    pool = Pool(low=2, high=4)
    dealt = 0
    while pool.wants():
        pool.dealt += 1
        dealt += 1
    assert dealt == 4 and pool.level == 4  # filled to high, then stops
    pool.taken += 1
    assert not pool.wants()  # 3 > low: no refill yet
    pool.taken += 1
    assert pool.wants()  # at low: refill to high
    pool.taken = pool.dealt + 1
    assert pool.wants()  # a bank waits: always


@pytest.fixture(scope="module")
def dataset() -> data.Dataset:
    return data.generate(300, seed=11)


def test_sqlite_source_reads_like_csv_and_incrementally(dataset: data.Dataset, tmp_path: Path) -> None:
    directory = data.write(dataset, tmp_path / "csv")
    half = len(dataset.bank_b) // 2
    first = data.Transactions(*(getattr(dataset.bank_b, f)[:half] for f in
                                ("account", "timestamp", "inflow", "amount", "counterparty")))
    rest = data.Transactions(*(getattr(dataset.bank_b, f)[half:] for f in
                               ("account", "timestamp", "inflow", "amount", "counterparty")))
    db = tmp_path / "bank_b.db"
    write_sqlite(data.Dataset(dataset.accounts, dataset.bank_a, first, None), 1, db)
    source = open_source(f"sqlite:///{db}", 1, MODEL)
    assert isinstance(source, SqliteSource)
    partial = source.load()
    assert partial.transactions == half
    append_sqlite(db, rest)
    table = source.load()  # only the new rows are read
    assert table.transactions == len(dataset.bank_b)
    reference = CsvSource(directory, 1, MODEL).load()
    np.testing.assert_array_equal(table.ids, reference.ids)
    np.testing.assert_allclose(table.rows, reference.rows)
    ids = [str(dataset.accounts[3]), "NOT-LISTED", str(dataset.accounts[0])]
    rows = table.lookup(ids, 4)
    assert rows.shape == (4, 8)
    np.testing.assert_allclose(rows[1], table.absent)
    np.testing.assert_allclose(rows[3], table.absent)  # padding
    assert table.listed(ids) == [True, False, True]


def test_bad_sqlite_rows_are_named(tmp_path: Path) -> None:
    db = tmp_path / "bad.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE accounts (account_id TEXT)")
        conn.execute("CREATE TABLE transactions (account_id TEXT, timestamp INTEGER, direction TEXT, amount REAL, "
                     "counterparty TEXT)")
        conn.execute("INSERT INTO accounts VALUES ('A')")
        conn.execute("INSERT INTO transactions VALUES ('A', 5, 'sideways', 10.0, 'C')")
    with pytest.raises(data.DataError, match="rowid 1, column direction: is not 'in' or 'out'"):
        open_source(f"sqlite:///{db}", 0, MODEL).load()
    with pytest.raises(data.DataError, match="no such table: nope"):
        open_source(f"sqlite:///{db}?transactions=nope", 0, MODEL).load()


# -- the three parties as processes ------------------------------------------------------------------------

def plaintext(dataset: data.Dataset, ids: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Flags of the plaintext pipeline, and where fixed point may decide otherwise (|score - t| <= bound)."""
    index = {a: i for i, a in enumerate(dataset.accounts.tolist())}
    rows = np.array([index[i] for i in ids])
    raw_a = features.compute(dataset.bank_a, dataset.accounts)[rows]
    raw_b = features.compute(dataset.bank_b, dataset.accounts)[rows]
    scores = MODEL.scores(np.hstack([raw_a, raw_b]))
    std = np.hstack([standardised_part(MODEL, raw_a, 0), standardised_part(MODEL, raw_b, 1)])
    bound = MODEL.score_error_bound(std, 16)
    return scores > MODEL.threshold, np.abs(scores - MODEL.threshold) <= bound


async def post(session: Any, url: str, body: Any, timeout: float = 30.0) -> tuple[int, dict[str, Any]]:
    async with session.post(f"{url}/v1/score", data=json.dumps(body),
                            timeout=aiohttp.ClientTimeout(total=timeout)) as r:
        return r.status, await r.json()


def run_clients(requests: list[tuple[str, Any]], concurrency: int = 32) -> list[tuple[int, dict[str, Any]]]:
    """POST every (url, body), `concurrency` at a time; each request's (status, body) in order."""

    async def main() -> list[tuple[int, dict[str, Any]]]:
        limit = asyncio.Semaphore(concurrency)
        async with aiohttp.ClientSession() as session:
            async def one(url: str, body: Any) -> tuple[int, dict[str, Any]]:
                async with limit:
                    return await post(session, url, body)
            return await asyncio.gather(*(one(u, b) for u, b in requests))

    return asyncio.run(main())


@pytest.fixture(scope="module")
def service(dataset: data.Dataset, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """bank_a reads the demo's CSV files, bank_b a real SQLite file."""
    directory = tmp_path_factory.mktemp("serve")
    csv = data.write(dataset, directory / "csv")
    db = write_sqlite(dataset, 1, directory / "bank_b.db")
    svc = start_service(directory, {"bank_a": str(csv), "bank_b": f"sqlite:///{db}"}, ["--reveal-scores"])
    try:
        svc.wait_healthy()
        yield svc
    finally:
        svc.stop()


@pytest.mark.timeout(300)
def test_flags_match_plaintext_for_ids_sent_concurrently_from_both_banks(service: Service,
                                                                          dataset: data.Dataset) -> None:
    ids = dataset.accounts.tolist()[:240]
    a, b = service.url("bank_a"), service.url("bank_b")
    requests = [(a if k % 2 == 0 else b, {"account_id": i}) for k, i in enumerate(ids)]
    requests += [(b if k % 2 == 0 else a, {"account_id": i}) for k, i in enumerate(ids[:60])]
    requests += [(a, {"account_ids": ids[k:k + 5]}) for k in range(0, 40, 5)]
    answers = run_clients(requests)
    expected, close = plaintext(dataset, ids)
    flag_of = dict(zip(ids, expected.tolist(), strict=True))
    near = dict(zip(ids, close.tolist(), strict=True))
    results = []
    for status, body in answers:
        assert status == 200, body
        results += body.get("results", [body])
    assert len(results) == 240 + 60 + 40
    wrong = [r for r in results if r["flag"] != flag_of[r["account_id"]] and not near[r["account_id"]]]
    assert not wrong
    assert sum(flag_of.values()) > 0  # the sample has mules: a test that cannot fail is a defect
    parsed = metrics.parse(_get(service.url("bank_a"), "/metrics"))
    assert parsed['mpc_serve_requests_total{status="200"}'] >= 150
    assert parsed["mpc_serve_rounds"] == 5  # input, two hidden layers, comparison, opening (dcf)
    assert parsed['mpc_serve_bytes{direction="sent",phase="online"}'] > 0
    assert any(k.startswith("mpc_serve_batches_total") for k in parsed)
    assert json.loads(_get(service.url("bank_b"), "/openapi.json"))["paths"]["/v1/score"]


def _get(url: str, path: str) -> str:
    import urllib.request

    with urllib.request.urlopen(f"{url}{path}", timeout=10) as r:
        return r.read().decode()


def test_malformed_body_and_unknown_id(service: Service, dataset: data.Dataset) -> None:
    a = service.url("bank_a")
    answers = run_clients([(a, {"account": "x"}), (a, {"account_ids": ["A", 1]}), (a, {"account_id": "NOPE"}),
                           (a, {"account_ids": [str(dataset.accounts[0]), "NOPE2"]})])
    assert answers[0] == (400, {"error": "unknown field 'account' (expected account_id or account_ids)",
                                "field": "account"})
    assert answers[1][0] == 400 and answers[1][1]["field"] == "account_ids[1]"
    assert answers[2] == (404, {"error": "this bank does not list this account", "account_ids": ["NOPE"]})
    assert answers[3] == (404, {"error": "this bank does not list these accounts", "account_ids": ["NOPE2"]})

    async def raw() -> int:
        async with aiohttp.ClientSession() as session, session.post(f"{a}/v1/score", data=b"{not json") as r:
            return r.status

    assert asyncio.run(raw()) == 400


def test_reload_reads_new_transactions(service: Service, dataset: data.Dataset) -> None:
    """bank_b's SQLite file gets new transactions; after /v1/reload the scores use them."""
    target = str(dataset.accounts[5])
    # many small inflows from many payers at bank_b: a mule's collecting side
    n = 60
    new = data.Transactions(np.full(n, target), np.arange(n, dtype=np.int64) * 60, np.ones(n, bool),
                            np.full(n, 120.0), np.array([f"CPNEW{i}" for i in range(n)]))
    append_sqlite(Path(service.data["bank_b"].removeprefix("sqlite:///")), new)

    async def main() -> tuple[int, dict[str, Any], int, dict[str, Any]]:
        async with aiohttp.ClientSession() as session:
            async with session.post(f"{service.url('bank_b')}/v1/reload") as r:
                reloaded = r.status, await r.json()
            status, body = await post(session, service.url("bank_a"), {"account_id": target})
            return (*reloaded, status, body)

    code, info, status, body = asyncio.run(main())
    assert code == 200 and info["transactions"] == len(dataset.bank_b) + n
    after = data.Dataset(dataset.accounts, dataset.bank_a, data.Transactions(
        *(np.concatenate([getattr(dataset.bank_b, f), getattr(new, f)])
          for f in ("account", "timestamp", "inflow", "amount", "counterparty"))), None)
    raw_a = features.compute(after.bank_a, after.accounts[5:6])
    raw_b = features.compute(after.bank_b, after.accounts[5:6])
    score = MODEL.scores(np.hstack([raw_a, raw_b]))[0]
    before = MODEL.scores(np.hstack([features.compute(dataset.bank_a, dataset.accounts[5:6]),
                                     features.compute(dataset.bank_b, dataset.accounts[5:6])]))[0]
    assert status == 200
    assert abs(body["score"] - score) < 0.01 and abs(score - before) > 0.01  # the new rows changed the score


@pytest.mark.timeout(300)
def test_overload_answers_429_and_the_queue_stays_bounded(dataset: data.Dataset, tmp_path: Path) -> None:
    csv = data.write(dataset, tmp_path / "csv")
    svc = start_service(tmp_path, {"bank_a": str(csv), "bank_b": str(csv)},
                        ["--max-queue", "4", "--max-inflight", "1", "--sizes", "1,2"])
    try:
        svc.wait_healthy()
        ids = dataset.accounts.tolist()[:200]
        answers = run_clients([(svc.url("bank_a"), {"account_id": i}) for i in ids], concurrency=200)
        statuses = [s for s, _ in answers]
        assert set(statuses) <= {200, 429} and statuses.count(429) > 0 and statuses.count(200) >= 4
        assert all("queue is full" in b["error"] for s, b in answers if s == 429)
        parsed = metrics.parse(_get(svc.url("bank_a"), "/metrics"))
        assert parsed['mpc_serve_requests_total{status="429"}'] == statuses.count(429)
        assert parsed["mpc_serve_queue_ids"] == 0
    finally:
        svc.stop()


@pytest.mark.timeout(400)
@pytest.mark.parametrize("victim", ["bank_b", "helper"])
def test_a_peer_killed_and_restarted_mid_load(dataset: data.Dataset, tmp_path: Path, victim: str) -> None:
    """Every request to bank_a is answered (200, correct) or refused (503 naming the killed peer); none is
    lost; the service resumes on a new session once the peer is back, without restarting the others."""
    csv = data.write(dataset, tmp_path / "csv")
    svc = start_service(tmp_path, {"bank_a": str(csv), "bank_b": str(csv)})
    ids = dataset.accounts.tolist()
    expected, close = plaintext(dataset, ids)
    flag_of = dict(zip(ids, expected.tolist(), strict=True))
    near = dict(zip(ids, close.tolist(), strict=True))
    try:
        svc.wait_healthy()
        pids = {n: p.pid for n, p in svc.procs.items()}

        async def main() -> tuple[list[tuple[float, int, dict[str, Any]]], float, float]:
            answers: list[tuple[float, int, dict[str, Any]]] = []
            sent = 0
            stop = asyncio.Event()
            async with aiohttp.ClientSession() as session:
                async def client(k: int) -> None:
                    nonlocal sent
                    i = k
                    while not stop.is_set():
                        account = ids[i % len(ids)]
                        i += 8
                        sent += 1
                        status, body = await post(session, svc.url("bank_a"), {"account_id": account})
                        answers.append((time.monotonic(), status, body))
                        if status != 200:
                            await asyncio.sleep(0.02)  # a refused client retries a little later

                clients = [asyncio.create_task(client(k)) for k in range(8)]
                while sum(1 for _, s, _ in answers if s == 200) < 50:
                    await asyncio.sleep(0.01)
                killed_at = time.monotonic()
                await asyncio.to_thread(svc.kill, victim)
                while not any(s == 503 and t > killed_at for t, s, _ in answers):
                    await asyncio.sleep(0.01)
                first_503 = min(t for t, s, _ in answers if s == 503 and t > killed_at) - killed_at
                await asyncio.sleep(1.0)
                svc.start(victim)
                restarted_at = time.monotonic()
                while not any(s == 200 and t > restarted_at for t, s, _ in answers):
                    await asyncio.sleep(0.01)
                while sum(1 for t, s, _ in answers if s == 200 and t > restarted_at) < 50:
                    await asyncio.sleep(0.01)
                stop.set()
                await asyncio.gather(*clients)
            assert sent == len(answers)  # every request answered exactly once
            return answers, first_503, killed_at

        answers, first_503, killed_at = asyncio.run(main())
        statuses = {s for _, s, _ in answers}
        assert statuses <= {200, 503}, statuses
        for _, s, body in answers:
            if s == 200:
                assert body["flag"] == flag_of[body["account_id"]] or near[body["account_id"]]
            else:
                assert body["peer"] == victim, body
        assert first_503 < 3.0  # named within a second or two (the client notices on its next request)
        assert all(svc.procs[n].pid == pids[n] for n in svc.topology.names if n != victim)  # never restarted
        status, health = svc.health("bank_a")
        assert status == 200 and health["sessions"] == 2
    finally:
        svc.stop()


@pytest.mark.timeout(300)
def test_sigterm_drains_requests_in_flight(dataset: data.Dataset, tmp_path: Path) -> None:
    """Requests queued or in flight at SIGTERM are answered; later ones are refused (503, or the socket is
    closed before they are accepted); none is accepted and then dropped."""
    csv = data.write(dataset, tmp_path / "csv")
    svc = start_service(tmp_path, {"bank_a": str(csv), "bank_b": str(csv)}, ["--batch-wait-ms", "20"])
    try:
        svc.wait_healthy()
        ids = dataset.accounts.tolist()

        async def main() -> tuple[list[int], list[str]]:
            statuses: list[int] = []
            errors: list[str] = []
            async with aiohttp.ClientSession() as session:
                async def client(k: int) -> None:
                    i = k
                    while True:
                        try:
                            status, _ = await post(session, svc.url("bank_a"), {"account_id": ids[i % len(ids)]})
                        except aiohttp.ClientConnectorError:
                            return  # not accepted: the server had closed
                        except aiohttp.ClientError as exc:
                            errors.append(type(exc).__name__)
                            return
                        statuses.append(status)
                        if status != 200:
                            return
                        i += 16

                clients = [asyncio.create_task(client(k)) for k in range(16)]
                while len(statuses) < 30:
                    await asyncio.sleep(0.005)
                svc.procs["bank_a"].send_signal(signal.SIGTERM)
                await asyncio.gather(*clients)
            return statuses, errors

        statuses, errors = asyncio.run(main())
        assert svc.procs["bank_a"].wait(timeout=60) == 0
        assert not errors  # no request accepted and then dropped
        assert set(statuses) <= {200, 503} and statuses.count(200) >= 30
        log = svc.log("bank_a")
        assert "session closed (drained)" in log
        # the others' sessions ended cleanly (no failure), and they wait for bank_a to come back
        for name in ("bank_b", "helper"):
            assert '"level": "error"' not in svc.log(name) and "session ended (stopped)" in svc.log(name)
        status, health = svc.health("bank_b")
        assert status == 503 and health["peer"] == "bank_a", health
    finally:
        svc.stop()


@pytest.mark.timeout(300)
def test_demo_serve_prints_the_urls_and_scores(tmp_path: Path) -> None:
    import os
    import re
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-m", "parties", "demo", "serve", "--accounts", "200", "--port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        assert proc.stdout is not None
        lines = []
        for line in proc.stdout:
            lines.append(line)
            if line.startswith("try: curl"):
                break
        urls = dict(re.findall(r"^(bank_[ab]): (http://127\.0\.0\.1:\d+)", "".join(lines), re.M))
        assert set(urls) == {"bank_a", "bank_b"}, lines
        account = re.search(r'"account_id": "([^"]+)"', lines[-1])
        assert account is not None
        answers = run_clients([(urls["bank_a"], {"account_id": account.group(1)}),
                               (urls["bank_b"], {"account_id": account.group(1)})])
        assert [s for s, _ in answers] == [200, 200] and answers[0][1]["flag"] == answers[1][1]["flag"]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


# -- PostgreSQL, against a real server the test starts where the machine has one ---------------------------

@pytest.fixture(scope="module")
def postgres() -> Iterator[str]:
    """A throw-away PostgreSQL server on a free loopback port (skipped without initdb or psycopg)."""
    import os
    import shutil
    import subprocess

    pytest.importorskip("psycopg")
    if shutil.which("initdb") is None or shutil.which("pg_ctl") is None:
        pytest.skip("no PostgreSQL server binaries (initdb, pg_ctl) on this machine")
    import tempfile

    from mpc.localhost import free_ports

    directory = Path(tempfile.mkdtemp(prefix="mpc-pg-"))  # not under pytest's 0700 root: the server user reads it
    prefix: list[str] = []
    if os.geteuid() == 0:  # the server refuses to run as root: as the postgres user where there is one
        if shutil.which("runuser") is None or subprocess.run(["id", "postgres"], capture_output=True).returncode:
            pytest.skip("running as root without a postgres user to run the server as")
        shutil.chown(directory, "postgres")
        prefix = ["runuser", "-u", "postgres", "--"]
    port = free_ports(1)[0]
    data_dir = directory / "data"
    subprocess.run([*prefix, "initdb", "-D", str(data_dir), "-A", "trust", "-U", "mpc", "--no-sync", "-E", "UTF8"],
                   check=True, capture_output=True)
    subprocess.run([*prefix, "pg_ctl", "-D", str(data_dir), "-l", str(directory / "log"), "-w", "-o",
                    f"-p {port} -k {directory} -c listen_addresses=127.0.0.1 -c fsync=off", "start"],
                   check=True, capture_output=True)
    try:
        yield f"postgresql://mpc@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*prefix, "pg_ctl", "-D", str(data_dir), "-m", "immediate", "stop"], capture_output=True)
        shutil.rmtree(directory, ignore_errors=True)


def write_postgres(url: str, dataset: data.Dataset, part: int, tx: data.Transactions | None = None) -> None:
    import psycopg

    tx = tx if tx is not None else (dataset.bank_a, dataset.bank_b)[part]
    with psycopg.connect(url) as db:
        db.execute("CREATE TABLE IF NOT EXISTS accounts (account_id text PRIMARY KEY)")
        db.execute("CREATE TABLE IF NOT EXISTS transactions (id bigserial PRIMARY KEY, account_id text, timestamp "
                   "bigint, direction text, amount numeric, counterparty text)")
        with db.cursor() as cur:
            cur.executemany("INSERT INTO accounts VALUES (%s) ON CONFLICT DO NOTHING",
                            [(str(a),) for a in dataset.accounts])
            cur.executemany("INSERT INTO transactions (account_id, timestamp, direction, amount, counterparty) "
                            "VALUES (%s, %s, %s, %s, %s)",
                            [(str(a), int(t), "in" if i else "out", float(m), str(c)) for a, t, i, m, c in
                             zip(tx.account, tx.timestamp, tx.inflow, tx.amount, tx.counterparty, strict=True)])


def test_postgres_source_reads_like_csv_and_incrementally(postgres: str, dataset: data.Dataset,
                                                          tmp_path: Path) -> None:
    import psycopg

    with psycopg.connect(postgres, autocommit=True) as db:
        db.execute("CREATE DATABASE incremental")
    url = postgres.rsplit("/", 1)[0] + "/incremental"
    half = len(dataset.bank_a) // 2
    split = [data.Transactions(*(getattr(dataset.bank_a, f)[s] for f in
                                 ("account", "timestamp", "inflow", "amount", "counterparty")))
             for s in (slice(0, half), slice(half, None))]
    write_postgres(url, dataset, 0, split[0])
    source = open_source(url, 0, MODEL)
    assert source.load().transactions == half
    write_postgres(url, dataset, 0, split[1])
    table = source.load()  # only the new rows
    assert table.transactions == len(dataset.bank_a)
    reference = CsvSource(data.write(dataset, tmp_path / "csv"), 0, MODEL).load()
    np.testing.assert_array_equal(table.ids, reference.ids)
    np.testing.assert_allclose(table.rows, reference.rows)
    with pytest.raises(data.DataError, match='relation "nope" does not exist'):
        open_source(f"{url}?transactions=nope", 0, MODEL).load()


@pytest.mark.timeout(300)
def test_a_bank_serves_from_postgres(postgres: str, dataset: data.Dataset, tmp_path: Path) -> None:
    write_postgres(postgres, dataset, 1)
    csv = data.write(dataset, tmp_path / "csv")
    svc = start_service(tmp_path, {"bank_a": str(csv), "bank_b": postgres})
    try:
        svc.wait_healthy()
        ids = dataset.accounts.tolist()[:60]
        answers = run_clients([(svc.url(svc.banks[k % 2]), {"account_id": i}) for k, i in enumerate(ids)])
        expected, close = plaintext(dataset, ids)
        assert all(s == 200 for s, _ in answers)
        assert all(b["flag"] == e or c for (_, b), e, c in zip(answers, expected, close, strict=True))
    finally:
        svc.stop()


async def test_bearer_token_guards_the_api_but_not_the_probes(make_topology: Any, dataset: data.Dataset,
                                                              tmp_path: Path) -> None:
    from aiohttp.test_utils import TestClient, TestServer

    from parties.serve.http import make_app
    from parties.serve.service import Options
    from parties.serve.service import Service as PartyService

    source = CsvSource(data.write(dataset, tmp_path / "csv"), 0, MODEL)
    service = PartyService(make_topology(2), "bank_a", Options(), None, source)  # no session: nothing runs
    await service.reload()
    async with TestClient(TestServer(make_app(service, token="s3cret"))) as client:
        body = {"account_id": str(dataset.accounts[0])}
        r = await client.post("/v1/score", json=body)
        assert r.status == 401 and (await r.json())["field"] == "Authorization"
        r = await client.post("/v1/score", json=body, headers={"Authorization": "Bearer wrong"})
        assert r.status == 401
        r = await client.post("/v1/score", json=body, headers={"Authorization": "Bearer s3cret"})
        assert r.status == 503  # authorised; no session yet
        assert "starting" in (await r.json())["error"]
        assert (await client.get("/healthz")).status == 503
        assert (await client.get("/metrics")).status == 200
        assert (await client.get("/openapi.json")).status == 200


async def test_a_session_starts_after_a_peer_restarts_mid_handshake(make_topology: Any) -> None:
    """bank_a waits for the helper; bank_b exchanges hellos with it, dies without a word and comes back:
    its new link starts at sequence 0 and its hello replaces the old one (the base transport stops on
    the sequence gap), and bank_a answers with its hello again, which the new bank_b never had."""
    from mpc.stats import Stats
    from parties.serve.transport import ServeTransport

    topo = make_topology(2)
    agreement = {"program": "test"}

    def transport(name: str) -> ServeTransport:
        return ServeTransport(topo, name, Stats(), agreement=agreement)

    a = transport("bank_a")
    started_a = asyncio.create_task(a.start())
    b1 = transport("bank_b")
    started_b1 = asyncio.create_task(b1.start())
    while "bank_b" not in a._hello or "bank_a" not in b1._hello:
        await asyncio.sleep(0.01)
    old = a._hello["bank_b"]
    started_b1.cancel()
    await b1._shutdown(linger_ms=0)  # gone without an abort, as if killed
    b2, helper = transport("bank_b"), transport("helper")
    sessions = await asyncio.wait_for(asyncio.gather(started_a, b2.start(), helper.start()), 60)
    try:
        assert a._hello["bank_b"] != old
        assert len(set(sessions)) == 1 and a.failure is None and b2.failure is None
    finally:
        await asyncio.gather(a.close(), b2.close(), helper.close())

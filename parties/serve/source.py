"""Where a bank's features come from: the demo's CSV directory, or tables in a SQLite database by URL.

A source yields a `FeatureTable`: the ids this bank lists (404 for any other id asked of it) and, for every
listed id, its features computed from this bank's own transactions (parties/fraud/features.py) and
standardised with its part of the model's scaler, as in the demo. An id the bank does not list gets the
features of an account without transactions (raw zeros), so the other bank learns nothing from them.

SQLite (`sqlite:///relative/bank.db` or `sqlite:////absolute/bank.db` as in SQLAlchemy; Python's
built-in driver): a table `accounts(account_id)` and a table `transactions(account_id, timestamp,
direction, amount, counterparty)` (names overridable: `?accounts=NAME&transactions=NAME`). PostgreSQL
(`postgresql://USER@HOST:PORT/DB`, through psycopg: the `postgres` extra): the same tables, and an
increasing integer key column on the transactions (`id` by default, `?key=NAME`). Reloads read only the
transactions added since the last read (by rowid or key), so a bank's ingest can append while the
service runs.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import numpy as np

from parties.fraud import data, features
from parties.fraud.data import DataError, Transactions
from parties.fraud.model import MLP
from parties.fraud.secure import N_FEATURES, standardised_part

BANK_FILES = ("bank_a", "bank_b")


@dataclass(frozen=True)
class FeatureTable:
    """Listed ids (sorted) and their standardised features; `absent`: the row of an unlisted id."""

    ids: np.ndarray
    rows: np.ndarray
    absent: np.ndarray
    transactions: int

    def listed(self, ids: list[str]) -> list[bool]:
        found = self._positions(np.array(ids, dtype=str))
        return (found >= 0).tolist()

    def lookup(self, ids: list[str], size: int) -> np.ndarray:
        """(size, N_FEATURES): the rows of `ids`, then padding rows (an unlisted id's) up to `size`."""
        out = np.broadcast_to(self.absent, (size, N_FEATURES)).copy()
        if ids:
            pos = self._positions(np.array(ids, dtype=str))
            hit = pos >= 0
            out[:len(ids)][hit] = self.rows[pos[hit]]
        return out

    def _positions(self, ids: np.ndarray) -> np.ndarray:
        if len(self.ids) == 0:
            return np.full(len(ids), -1)
        at = np.minimum(np.searchsorted(self.ids, ids), len(self.ids) - 1)
        return np.where(self.ids[at] == ids, at, -1)


def table_of(accounts: np.ndarray, tx: Transactions, model: MLP, part: int) -> FeatureTable:
    order = np.argsort(accounts)
    ids = accounts[order]
    raw = features.compute(tx, ids)
    absent = standardised_part(model, np.zeros((1, N_FEATURES)), part)[0]
    return FeatureTable(ids, standardised_part(model, raw, part), absent, len(tx))


class Source:
    """Reads a bank's data; `load()` returns the current table (thread-safe: reloads run off the loop)."""

    description: str

    def load(self) -> FeatureTable:
        raise NotImplementedError


class CsvSource(Source):
    """The demo's directory: accounts.csv and this bank's transactions (bank_a.csv or bank_b.csv)."""

    def __init__(self, directory: str | Path, part: int, model: MLP):
        self.directory = Path(directory)
        self.part = part
        self.model = model
        self.description = f"{self.directory} ({BANK_FILES[part]}.csv)"

    def load(self) -> FeatureTable:
        accounts = data.read_accounts(self.directory / "accounts.csv")
        tx = data.read_transactions(self.directory / f"{BANK_FILES[self.part]}.csv")
        return table_of(accounts, tx, self.model, self.part)


class SqlSource(Source):
    """Tables of a SQL database; new transactions (a higher key) are read incrementally on each load."""

    key = "rowid"

    def __init__(self, url: str, part: int, model: MLP):
        query = parse_qs(urlparse(url).query)
        self.accounts_table = query.get("accounts", ["accounts"])[0]
        self.tx_table = query.get("transactions", ["transactions"])[0]
        self.key = query.get("key", [self.key])[0]
        for name in (self.accounts_table, self.tx_table, self.key):
            if not name.isidentifier():
                raise DataError(f"{_redacted(url)}: name {name!r} is not a plain identifier")
        self.part = part
        self.model = model
        self._last = 0
        self._parts: list[Transactions] = []
        self._lock = threading.Lock()

    def _fetch(self, last: int) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]]]:
        """(accounts rows, transaction rows with key > last, by key)."""
        raise NotImplementedError

    def _queries(self) -> tuple[str, str]:
        return (f"SELECT account_id FROM {self.accounts_table}",
                f"SELECT {self.key}, account_id, timestamp, direction, amount, counterparty FROM {self.tx_table} "
                f"WHERE {self.key} > {{}} ORDER BY {self.key}")

    def load(self) -> FeatureTable:
        with self._lock:
            rows, new = self._fetch(self._last)
            accounts = _accounts(rows, f"{self.description}: table {self.accounts_table}")
            if new:
                self._parts.append(_transactions(new, f"{self.description}: table {self.tx_table}", self.key))
                self._last = int(new[-1][0])  # type: ignore[call-overload]
            if len(self._parts) > 1:
                self._parts = [_concat(self._parts)]
            tx = self._parts[0] if self._parts else _concat([])
        return table_of(accounts, tx, self.model, self.part)


class SqliteSource(SqlSource):
    """A SQLite file, read with Python's built-in driver; rows are new by rowid."""

    def __init__(self, url: str, part: int, model: MLP):
        if not url.startswith("sqlite:///"):
            raise DataError(f"{url}: a SQLite URL is sqlite:///RELATIVE/PATH or sqlite:////ABSOLUTE/PATH")
        super().__init__(url, part, model)
        self.path = Path(url[len("sqlite:///"):].split("?", 1)[0])  # SQLAlchemy's convention
        self.description = f"sqlite {self.path}"

    def _fetch(self, last: int) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]]]:
        if not self.path.is_file():
            raise DataError(f"{self.path}: no such SQLite database")
        accounts_sql, tx_sql = self._queries()
        with contextlib.closing(sqlite3.connect(f"file:{self.path}?mode=ro", uri=True)) as db:
            try:
                return db.execute(accounts_sql).fetchall(), db.execute(tx_sql.format("?"), (last,)).fetchall()
            except sqlite3.Error as exc:
                raise DataError(f"{self.path}: {exc}") from None


class PostgresSource(SqlSource):
    """A PostgreSQL database through psycopg (the `postgres` extra); rows are new by the `key` column
    (default `id`, e.g. a bigserial), given as `?key=NAME`."""

    key = "id"

    def __init__(self, url: str, part: int, model: MLP):
        super().__init__(url, part, model)
        parsed = urlparse(url)
        kept = [(k, v) for k, vs in parse_qs(parsed.query).items() for v in vs
                if k not in ("accounts", "transactions", "key")]
        self.conninfo = parsed._replace(query="&".join(f"{k}={v}" for k, v in kept)).geturl()
        self.description = f"postgresql {_redacted(url)}"

    def _fetch(self, last: int) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]]]:
        try:
            import psycopg
        except ImportError:
            raise DataError("reading PostgreSQL needs psycopg: pip install 'mpc[postgres]'") from None
        accounts_sql, tx_sql = self._queries()
        try:
            with psycopg.connect(self.conninfo, connect_timeout=10) as db:
                accounts = db.execute(accounts_sql).fetchall()  # type: ignore[arg-type]
                new = db.execute(tx_sql.format("%s"), (last,)).fetchall()  # type: ignore[arg-type]
        except psycopg.Error as exc:
            raise DataError(f"{self.description}: {str(exc).strip().splitlines()[0]}") from None
        return accounts, [(*r[:4], float(r[4]) if isinstance(r[4], Decimal) else r[4], r[5]) for r in new]


def _redacted(url: str) -> str:
    """The URL without its password (error messages and logs)."""
    parsed = urlparse(url)
    if parsed.password:
        netloc = parsed.netloc.replace(f":{parsed.password}@", ":***@")
        return parsed._replace(netloc=netloc).geturl()
    return url


def _accounts(rows: list[tuple[object, ...]], where: str) -> np.ndarray:
    ids = [r[0] for r in rows]
    for i, value in enumerate(ids):
        if not isinstance(value, str) or not value:
            raise DataError(f"{where}: row {i + 1}, column account_id: not a non-empty text id")
    arr = np.array(ids, dtype=str)
    if len(np.unique(arr)) != len(arr):
        raise DataError(f"{where}: an account_id is listed twice")
    return arr


def _transactions(rows: list[tuple[object, ...]], where: str, key: str = "rowid") -> Transactions:
    """Columns of new rows, each value checked (the error names the rowid and column)."""
    for rowid, account, ts, direction, amount, cp in rows:
        problem = None
        if not isinstance(account, str) or not account:
            problem = "account_id", "is not a non-empty text id"
        elif not isinstance(ts, int) or ts < 0:
            problem = "timestamp", "is not an integer number of seconds >= 0"
        elif not isinstance(direction, str) or direction.lower() not in ("in", "out"):
            problem = "direction", "is not 'in' or 'out'"
        elif not isinstance(amount, int | float) or not np.isfinite(amount) or amount <= 0:
            problem = "amount", "is not a positive finite amount"
        elif not isinstance(cp, str) or not cp:
            problem = "counterparty", "is not a non-empty text id"
        if problem:
            raise DataError(f"{where}: {key} {rowid}, column {problem[0]}: {problem[1]}")
    cols = list(zip(*rows, strict=True))
    return Transactions(np.array(cols[1], dtype=str), np.array(cols[2], dtype=np.int64),
                        np.char.lower(np.array(cols[3], dtype=str)) == "in", np.array(cols[4], dtype=np.float64),
                        np.array(cols[5], dtype=str))


def _concat(parts: list[Transactions]) -> Transactions:
    if not parts:
        empty = np.array([], dtype=str)
        return Transactions(empty, np.zeros(0, np.int64), np.zeros(0, bool), np.zeros(0), empty)
    return Transactions(*(np.concatenate([getattr(p, f) for p in parts])
                          for f in ("account", "timestamp", "inflow", "amount", "counterparty")))


def open_source(spec: str, part: int, model: MLP) -> Source:
    """A CSV directory, `sqlite:///PATH` or `postgresql://...` (with `?accounts=T&transactions=T`)."""
    if spec.startswith("sqlite:"):
        return SqliteSource(spec, part, model)
    if spec.startswith(("postgresql://", "postgres://")):
        return PostgresSource(spec, part, model)
    if "://" in spec:
        raise DataError(f"{_redacted(spec)}: unsupported data URL (a CSV directory, sqlite:///PATH or "
                        "postgresql://...)")
    if not Path(spec).is_dir():
        raise DataError(f"{spec}: not a directory (the demo's CSV files) nor a sqlite:/// URL")
    return CsvSource(spec, part, model)


def write_sqlite(dataset: data.Dataset, part: int, path: str | Path) -> Path:
    """A bank's share of a data set as a SQLite file in the layout SqliteSource reads (tests, demos)."""
    tx = (dataset.bank_a, dataset.bank_b)[part]
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE IF NOT EXISTS accounts (account_id TEXT PRIMARY KEY)")
        db.execute("CREATE TABLE IF NOT EXISTS transactions (account_id TEXT, timestamp INTEGER, direction TEXT, "
                   "amount REAL, counterparty TEXT)")
        db.executemany("INSERT OR IGNORE INTO accounts VALUES (?)", [(str(a),) for a in dataset.accounts])
        append_sqlite(path, tx, db)
    return Path(path)


def append_sqlite(path: str | Path, tx: Transactions, db: sqlite3.Connection | None = None) -> None:
    rows = [(str(a), int(t), "in" if i else "out", float(m), str(c))
            for a, t, i, m, c in zip(tx.account, tx.timestamp, tx.inflow, tx.amount, tx.counterparty, strict=True)]
    if db is not None:
        db.executemany("INSERT INTO transactions VALUES (?, ?, ?, ?, ?)", rows)
        return
    with sqlite3.connect(path) as conn:
        conn.executemany("INSERT INTO transactions VALUES (?, ?, ?, ?, ?)", rows)

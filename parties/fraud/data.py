"""Synthetic cross-bank data, and the CSV files a bank replaces with its own.

Files in a data directory:
  accounts.csv   account_id                                   the pseudonymous ids to score (public to
                                                              both banks, e.g. a consortium registry)
  bank_a.csv     account_id,timestamp,direction,amount,counterparty   bank A's transactions (private)
  bank_b.csv     same columns                                 bank B's transactions (private)
  labels.csv     account_id,is_mule                           ground truth, for evaluation only (optional;
                                                              no bank reads it)
timestamp: integer seconds since the start of the period (>= 0); direction: `in` or `out`;
amount: a positive number; counterparty: any non-empty pseudonymous id.

The fraud pattern (layering): a money mule's account at one bank receives many small payments from many
payers, like a small merchant's; its account at the other bank receives the collected money in a few
large transfers and pays it out again within hours, like a busy business account. Each half alone looks
like a legitimate customer type (merchants and fast business accounts exist at both banks); only the
combination, with matching volumes, is unusual.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

COLUMNS = ["account_id", "timestamp", "direction", "amount", "counterparty"]
HOUR = 3600
PERIOD_S = 60 * 24 * HOUR  # 60 days


class DataError(ValueError):
    """A data file that cannot be used; the message names the file, row and column."""


@dataclass
class Transactions:
    """One bank's transactions, columnar."""

    account: np.ndarray  # str ids
    timestamp: np.ndarray  # int64 seconds
    inflow: np.ndarray  # bool
    amount: np.ndarray  # float64
    counterparty: np.ndarray  # str ids

    def __len__(self) -> int:
        return len(self.account)


@dataclass
class Dataset:
    accounts: np.ndarray  # the ids to score, in order
    bank_a: Transactions
    bank_b: Transactions
    labels: np.ndarray | None  # 0/1 per account, or None


# -- generation ------------------------------------------------------------------------------------------

def _ids(rng: np.random.Generator, prefix: str, n: int) -> np.ndarray:
    raw = rng.integers(0, 2**40, n, dtype=np.int64)
    return np.char.add(prefix, np.char.zfill(np.char.mod("%x", raw), 10))


class _Builder:
    """Accumulates one bank's transactions with vectorised per-profile generators."""

    def __init__(self, rng: np.random.Generator):
        self.rng = rng
        self.parts: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []

    def add(self, accounts: np.ndarray, counts: np.ndarray, amount_lo: float, amount_hi: float, inflow: bool,
            payers: int | None = None, times: np.ndarray | None = None) -> None:
        """counts[i] transactions for accounts[i], log-uniform amounts, random or given times."""
        rng = self.rng
        owner = np.repeat(accounts, counts)
        n = len(owner)
        amount = np.exp(rng.uniform(np.log(amount_lo), np.log(amount_hi), n))
        ts = times if times is not None else rng.integers(0, PERIOD_S, n)
        if payers is None:
            cp = _ids(rng, "CP", n)
        else:  # a small pool of counterparties, shared across accounts (employers, suppliers)
            cp = np.char.add("CP", np.char.zfill(np.char.mod("%x", rng.integers(0, payers, n)), 10))
        self.parts.append((owner, ts.astype(np.int64), np.full(n, inflow), np.round(amount, 2), cp))

    def build(self) -> Transactions:
        if not self.parts:
            empty = np.array([], dtype=str)
            return Transactions(empty, np.zeros(0, np.int64), np.zeros(0, bool), np.zeros(0), empty)
        cols = [np.concatenate(c) for c in zip(*self.parts, strict=True)]
        order = np.lexsort((cols[1], cols[0]))
        return Transactions(*(c[order] for c in cols))


def generate(n_accounts: int, seed: int = 1, mule_rate: float = 0.04) -> Dataset:
    """A seeded synthetic data set of two banks whose customers partly overlap under shared ids."""
    rng = np.random.default_rng(seed)
    ids = _ids(rng, "AC", n_accounts)
    mule = rng.random(n_accounts) < mule_rate
    # legitimate profile per bank: 0 absent, 1 salary, 2 merchant, 3 business (slow), 4 fast business, 5 saver
    prof_a = rng.choice(6, n_accounts, p=[0.30, 0.30, 0.12, 0.08, 0.05, 0.15])
    prof_b = rng.choice(6, n_accounts, p=[0.35, 0.28, 0.08, 0.09, 0.07, 0.13])
    # Legitimate customers rarely combine a merchant account at one bank with a fast-moving business
    # account at the other (most such pairs are re-drawn; a few remain, as in real data).
    rare = rng.random(n_accounts) > 0.1
    prof_b[(prof_a == 2) & (prof_b == 4) & rare] = 3
    prof_b[(prof_a == 4) & (prof_b == 2) & rare] = 1
    # mules: the collecting side at one bank, the paying-out side at the other (either way round)
    flip = rng.random(n_accounts) < 0.5
    prof_a[mule] = np.where(flip[mule], 7, 6)
    prof_b[mule] = np.where(flip[mule], 6, 7)
    banks = []
    for prof in (prof_a, prof_b):
        b = _Builder(rng)
        for code, accts in ((c, np.flatnonzero(prof == c)) for c in range(1, 8)):
            if len(accts) == 0:
                continue
            k = len(accts)
            if code == 1:  # salary: a few large inflows from an employer, many small outflows
                b.add(accts, rng.integers(1, 4, k), 1500, 6000, True, payers=5000)
                b.add(accts, rng.integers(8, 30, k), 10, 300, False)
            elif code in (2, 6):  # merchant / mule collecting: many small inflows from many payers
                lo, hi = (15, 60) if code == 2 else (20, 70)
                n_in = rng.integers(lo, hi, k)
                b.add(accts, n_in, 5, 450, True)
                b.add(accts, rng.integers(1, 5, k), 800, 9000, False)
            elif code == 3:  # slow business: large flows, days apart
                b.add(accts, rng.integers(2, 8, k), 2000, 30000, True, payers=20000)
                b.add(accts, rng.integers(2, 8, k), 2000, 30000, False, payers=20000)
            elif code in (4, 7):  # fast business / mule paying out: large inflows, quick large outflows
                n_in = rng.integers(2, 6, k)
                owners_in = np.repeat(accts, n_in)
                t_in = rng.integers(0, PERIOD_S - 10 * 24 * HOUR, len(owners_in))
                b.add(accts, n_in, 2000, 25000, True, payers=20000 if code == 4 else None, times=t_in)
                hold_h = rng.uniform(1, 12, len(owners_in)) if code == 7 else rng.uniform(1, 30, len(owners_in))
                b.add(accts, n_in, 1500, 20000, False, times=t_in + (hold_h * HOUR).astype(np.int64))
            elif code == 5:  # saver: a few transactions
                b.add(accts, rng.integers(0, 3, k), 50, 2000, True, payers=5000)
                b.add(accts, rng.integers(0, 2, k), 50, 1000, False)
        banks.append(b.build())
    b_a, b_b = banks
    return Dataset(ids, _rename(b_a, ids), _rename(b_b, ids), mule.astype(np.int64))


def _rename(tx: Transactions, ids: np.ndarray) -> Transactions:
    """Builders index accounts by position; the files use the pseudonymous ids."""
    return Transactions(ids[tx.account.astype(np.int64)] if len(tx) else tx.account, tx.timestamp, tx.inflow,
                        tx.amount, tx.counterparty)


# -- files -----------------------------------------------------------------------------------------------

def write(data: Dataset, directory: str | Path) -> Path:
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    (out / "accounts.csv").write_text("account_id\n" + "".join(f"{a}\n" for a in data.accounts))
    for name, tx in (("bank_a", data.bank_a), ("bank_b", data.bank_b)):
        direction = np.where(tx.inflow, "in", "out")
        lines = [",".join(COLUMNS)]
        lines += [f"{a},{t},{d},{m:.2f},{c}" for a, t, d, m, c in
                  zip(tx.account, tx.timestamp.tolist(), direction, tx.amount.tolist(), tx.counterparty, strict=True)]
        (out / f"{name}.csv").write_text("\n".join(lines) + "\n")
    if data.labels is not None:
        (out / "labels.csv").write_text("account_id,is_mule\n" + "".join(
            f"{a},{int(v)}\n" for a, v in zip(data.accounts, data.labels, strict=True)))
    return out


def _rows(path: Path, header: list[str]) -> list[list[str]]:
    try:
        with path.open(newline="", encoding="utf-8") as f:
            rows = list(csv.reader(f))
    except OSError as exc:
        raise DataError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except (UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"{path}: not a readable CSV file: {exc}") from None
    if not rows or [c.strip() for c in rows[0]] != header:
        got = ",".join(rows[0]) if rows else "(empty file)"
        raise DataError(f"{path}: row 1: expected the header {','.join(header)!r}, got {got!r}")
    for i, row in enumerate(rows[1:], start=2):
        if len(row) != len(header):
            raise DataError(f"{path}: row {i}: expected {len(header)} columns ({','.join(header)}), got {len(row)}")
    return rows[1:]


def read_transactions(path: str | Path) -> Transactions:
    """Read one bank's transactions; DataError names the file, row and column of the first problem."""
    path = Path(path)
    rows = _rows(path, COLUMNS)
    cols = list(zip(*rows, strict=True)) if rows else [()] * len(COLUMNS)
    account, ts, direction, amount, cp = (np.array(c, dtype=str) for c in cols)

    def bad(column: str, index: int, why: str) -> DataError:
        return DataError(f"{path}: row {index + 2}, column {column}: {rows[index][COLUMNS.index(column)]!r} {why}")

    for column, values in (("account_id", account), ("counterparty", cp)):
        empty = np.flatnonzero(np.char.str_len(np.char.strip(values)) == 0)
        if len(empty):
            raise bad(column, int(empty[0]), "is empty")
    try:
        timestamp = ts.astype(np.int64)
    except ValueError:
        raise bad("timestamp", _first_bad(ts, int), "is not an integer number of seconds") from None
    if (timestamp < 0).any():
        raise bad("timestamp", int(np.flatnonzero(timestamp < 0)[0]), "is negative")
    lowered = np.char.lower(np.char.strip(direction))
    unknown = np.flatnonzero((lowered != "in") & (lowered != "out"))
    if len(unknown):
        raise bad("direction", int(unknown[0]), "is not 'in' or 'out'")
    try:
        money = amount.astype(np.float64)
    except ValueError:
        raise bad("amount", _first_bad(amount, float), "is not a number") from None
    invalid = np.flatnonzero(~np.isfinite(money) | (money <= 0))
    if len(invalid):
        raise bad("amount", int(invalid[0]), "is not a positive finite amount")
    return Transactions(np.char.strip(account), timestamp, lowered == "in", money, cp)


def _first_bad(values: np.ndarray, convert: type) -> int:
    for i, v in enumerate(values.tolist()):
        try:
            convert(v)
        except ValueError:
            return i
    return 0


def read_accounts(path: str | Path) -> np.ndarray:
    path = Path(path)
    rows = _rows(path, ["account_id"])
    ids = np.array([r[0].strip() for r in rows], dtype=str)
    if len(ids) == 0:
        raise DataError(f"{path}: no accounts listed")
    empty = np.flatnonzero(np.char.str_len(ids) == 0)
    if len(empty):
        raise DataError(f"{path}: row {int(empty[0]) + 2}, column account_id: is empty")
    uniq, counts = np.unique(ids, return_counts=True)
    if (counts > 1).any():
        dup = str(uniq[counts > 1][0])
        raise DataError(f"{path}: row {int(np.flatnonzero(ids == dup)[1]) + 2}, column account_id: "
                        f"{dup!r} is listed twice")
    return ids


def read_labels(path: str | Path, accounts: np.ndarray) -> np.ndarray:
    path = Path(path)
    rows = _rows(path, ["account_id", "is_mule"])
    lookup = {}
    for i, (acct, value) in enumerate(rows, start=2):
        if value.strip() not in ("0", "1"):
            raise DataError(f"{path}: row {i}, column is_mule: {value!r} is not 0 or 1")
        lookup[acct.strip()] = int(value)
    missing = [a for a in accounts[:3] if a not in lookup]
    if missing:
        raise DataError(f"{path}: no label for account {missing[0]!r}")
    return np.array([lookup.get(a, 0) for a in accounts], dtype=np.int64)


def read_dataset(directory: str | Path, banks: tuple[str, ...] = ("bank_a", "bank_b")) -> Dataset:
    """Read the files of a data directory (only the banks asked for; labels if present)."""
    d = Path(directory)
    if not d.is_dir():
        raise DataError(f"{d}: not a directory")
    accounts = read_accounts(d / "accounts.csv")
    empty = Transactions(np.array([], str), np.zeros(0, np.int64), np.zeros(0, bool), np.zeros(0), np.array([], str))
    txs = {name: read_transactions(d / f"{name}.csv") if name in banks else empty for name in ("bank_a", "bank_b")}
    labels = read_labels(d / "labels.csv", accounts) if (d / "labels.csv").exists() else None
    return Dataset(accounts, txs["bank_a"], txs["bank_b"], labels)

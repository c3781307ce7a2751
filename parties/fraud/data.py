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
import io
import re
from collections.abc import Callable, Iterator
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
    labels: np.ndarray | None  # 0/1 per account (UNLABELLED = -1 where labels.csv has none), or None
    directory: Path | None = None  # the files, when the transactions are left there (read streamed)


def empty_transactions() -> Transactions:
    empty = np.array([], dtype=str)
    return Transactions(empty, np.zeros(0, np.int64), np.zeros(0, bool), np.zeros(0), empty)


def check_dataset(directory: str | Path, rows: int = 500_000) -> Dataset:
    """Check every file of a data directory, streamed (a chunk of transactions at a time), and keep the
    account list and labels; the transactions stay in their files (Dataset.directory)."""
    d = Path(directory)
    if not d.is_dir():
        raise DataError(f"{d}: not a directory")
    accounts = read_accounts(d / "accounts.csv")
    for name in ("bank_a", "bank_b"):
        for _ in read_transactions_chunks(d / f"{name}.csv", rows):
            pass
    labels = read_labels(d / "labels.csv", accounts) if (d / "labels.csv").exists() else None
    return Dataset(accounts, empty_transactions(), empty_transactions(), labels, d)


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


BLOCK = 100_000  # accounts generated (and written) at a time: memory grows with it, not with the data set


def generate(n_accounts: int, seed: int = 1, mule_rate: float = 0.04) -> Dataset:
    """A seeded synthetic data set of two banks whose customers partly overlap under shared ids.
    Up to BLOCK accounts in one piece; more, block by block (`blocks`), joined here in memory: write a
    large one with `write_generated`, which never holds more than a block."""
    if n_accounts <= BLOCK:
        rng = np.random.default_rng(seed)
        ids = _ids(rng, "AC", n_accounts)
        return _block(rng, ids, mule_rate)
    parts = list(blocks(n_accounts, seed, mule_rate))
    return Dataset(np.concatenate([p.accounts for p in parts]), _join([p.bank_a for p in parts]),
                   _join([p.bank_b for p in parts]), np.concatenate([p.labels for p in parts if p.labels is not None]))


def blocks(n_accounts: int, seed: int = 1, mule_rate: float = 0.04) -> Iterator[Dataset]:
    """The accounts of a large data set, BLOCK at a time: block k from its own seeded generator, its ids
    unique by construction (the block number in their high bits)."""
    for k, lo in enumerate(range(0, n_accounts, BLOCK)):
        size = min(BLOCK, n_accounts - lo)
        rng = np.random.default_rng([seed, 1 << 20, k])
        raw = (np.uint64(k) << np.uint64(32)) | rng.choice(2**32, size, replace=False).astype(np.uint64)
        ids = np.char.add("AC", np.char.zfill(np.char.mod("%x", raw.astype(np.int64)), 10))
        yield _block(rng, ids, mule_rate)


def _join(parts: list[Transactions]) -> Transactions:
    return Transactions(*(np.concatenate(cols) for cols in zip(*(
        (t.account, t.timestamp, t.inflow, t.amount, t.counterparty) for t in parts), strict=True)))


def _block(rng: np.random.Generator, ids: np.ndarray, mule_rate: float) -> Dataset:
    """The two banks' transactions of the accounts `ids` (one block), drawn from `rng`."""
    n_accounts = len(ids)
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
    _write_block(data, out, first=True)
    return out


def write_generated(directory: str | Path, n_accounts: int, seed: int = 1) -> tuple[Path, np.ndarray, np.ndarray]:
    """Generate and write a synthetic data set block by block (memory: one block); returns the directory,
    the account ids and their labels (the same files as write(generate(n_accounts, seed)))."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    if n_accounts <= BLOCK:
        data = generate(n_accounts, seed)
        write(data, out)
        assert data.labels is not None
        return out, data.accounts, data.labels
    ids, labels = [], []
    for k, part in enumerate(blocks(n_accounts, seed)):
        _write_block(part, out, first=k == 0)
        ids.append(part.accounts)
        assert part.labels is not None
        labels.append(part.labels)
    return out, np.concatenate(ids), np.concatenate(labels)


def _write_block(data: Dataset, out: Path, first: bool) -> None:
    """Write (first) or append one block's rows to every file of the data directory."""
    mode = "w" if first else "a"
    with open(out / "accounts.csv", mode) as f:
        f.write(("account_id\n" if first else "") + "".join(f"{a}\n" for a in data.accounts))
    for name, tx in (("bank_a", data.bank_a), ("bank_b", data.bank_b)):
        direction = np.where(tx.inflow, "in", "out")
        lines = [",".join(COLUMNS)] if first else []
        lines += [f"{a},{t},{d},{m:.2f},{c}" for a, t, d, m, c in
                  zip(tx.account, tx.timestamp.tolist(), direction, tx.amount.tolist(), tx.counterparty, strict=True)]
        with open(out / f"{name}.csv", mode) as f:
            f.write("\n".join(lines) + "\n" if lines else "")
    if data.labels is not None:
        with open(out / "labels.csv", mode) as f:
            f.write(("account_id,is_mule\n" if first else "") + "".join(
                f"{a},{int(v)}\n" for a, v in zip(data.accounts, data.labels, strict=True)))


@dataclass
class _Table:
    """A CSV file's columns by header name, with each data row's row number in the file (header = 1)."""

    path: Path
    columns: dict[str, np.ndarray]  # str values, stripped of surrounding spaces
    row_numbers: np.ndarray

    def bad(self, column: str, index: int, why: str) -> DataError:
        value = _show(str(self.columns[column][index]))
        return DataError(f"{self.path}: row {int(self.row_numbers[index])}, column {column}: {value} {why}")


def _show(value: str, limit: int = 40) -> str:
    """A value for an error message: quoted, and cut short (a runaway quoted field can hold a whole file)."""
    return repr(value) if len(value) <= limit else repr(value[:limit]) + f"... ({len(value):,} characters)"


# Control characters have no place in ids or numbers; a line break inside a field means a stray quote.
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


def _read_table(path: Path, header: list[str]) -> _Table:
    """The columns `header` names, in any order (other columns are ignored); UTF-8 with or without a BOM.
    Every problem names the file, the row and, where there is one, the column."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DataError(f"{path}: cannot read: {exc.strerror or exc}") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[:exc.start].count(b"\n") + 1
        raise DataError(f"{path}: line {line}: not UTF-8 text (byte 0x{raw[exc.start]:02x}); export the file "
                        "as CSV UTF-8") from None
    rows, numbers = _parse(path, text)
    if not rows:
        raise DataError(f"{path}: row 1: expected a header with the columns {','.join(header)}; the file is empty")
    index, width = _header_index(path, rows[0], header)
    return _table(path, index, width, rows[1:], numbers[1:])


def _header_index(path: Path, first: list[str], header: list[str]) -> tuple[dict[str, int], int]:
    """Where each wanted column is in the header row, and how many columns it has."""
    rows = [first]
    names = [c.strip().lower() for c in rows[0]]
    index = {}
    for col in header:
        where = [i for i, name in enumerate(names) if name == col]
        if len(where) != 1:
            how = "no column" if not where else "two columns named"
            raise DataError(f"{path}: row 1: {how} {col!r} in the header {_show(','.join(rows[0]), 120)}; "
                            f"expected the columns {','.join(header)} (in any order)")
        index[col] = where[0]
    return index, len(names)


def _table(path: Path, index: dict[str, int], width: int, data: list[list[str]], numbers: list[int]) -> _Table:
    """The wanted columns of data rows, every row checked (its width, no control characters)."""
    for row, number in zip(data, numbers, strict=True):
        if len(row) != width:
            spans = " (a field spans several lines: an unbalanced quote?)" if any("\n" in f for f in row) else ""
            raise DataError(f"{path}: row {number}: expected {width} columns like the header, got "
                            f"{len(row)}{spans}")
        for col, i in index.items():
            if _CONTROL.search(row[i]):
                what = "a line break (an unbalanced quote?)" if "\n" in row[i] or "\r" in row[i] else \
                    "a control character such as a NUL byte"
                raise DataError(f"{path}: row {number}, column {col}: {_show(row[i])} contains {what}")
    columns = {col: np.array([r[i].strip() for r in data], dtype=str) for col, i in index.items()}
    return _Table(path, columns, np.array(numbers, dtype=np.int64))


def _read_table_chunks(path: Path, header: list[str], rows: int) -> Iterator[_Table]:
    """`_read_table` a chunk of `rows` records at a time (row numbers as in the whole file): memory grows
    with `rows`, not with the file. A file that is not UTF-8 is read whole once, for the error's line."""
    try:
        with open(path, encoding="utf-8-sig", newline="") as f:
            reader = csv.reader(f, strict=True)
            index: dict[str, int] | None = None
            width = 0
            data: list[list[str]] = []
            numbers: list[int] = []
            number = 0
            try:
                for row in reader:
                    number += 1
                    if not row:
                        continue
                    if index is None:
                        index, width = _header_index(path, row, header)
                        continue
                    data.append(row)
                    numbers.append(number)
                    if len(data) == rows:
                        yield _table(path, index, width, data, numbers)
                        data, numbers = [], []
            except csv.Error as exc:
                raise DataError(f"{path}: row {number + 1} (from line {reader.line_num}): {exc}; is a quote (\") "
                                "in this row left open?") from None
            if index is None:
                raise DataError(f"{path}: row 1: expected a header with the columns {','.join(header)}; the file "
                                "is empty")
            if data:
                yield _table(path, index, width, data, numbers)
    except UnicodeDecodeError:
        _read_table(path, header)  # raises the DataError naming the line
        raise
    except OSError as exc:
        raise DataError(f"{path}: cannot read: {exc.strerror or exc}") from None


def _parse(path: Path, text: str) -> tuple[list[list[str]], list[int]]:
    """Non-empty CSV records and their row numbers; a quote left open names the row where it opened."""
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    rows: list[list[str]] = []
    numbers: list[int] = []
    number, line = 0, 0
    try:
        for row in reader:
            number += 1
            line = reader.line_num
            if row:  # blank lines (a trailing one, say) are skipped
                rows.append(row)
                numbers.append(number)
    except csv.Error as exc:
        raise DataError(f"{path}: row {number + 1} (from line {line + 1}, read up to line {reader.line_num}): "
                        f"{exc}; is a quote (\") in this row left open?") from None
    return rows, numbers


def read_transactions(path: str | Path) -> Transactions:
    """Read one bank's transactions; DataError names the file, row and column of the first problem."""
    return _transactions(_read_table(Path(path), COLUMNS))


def read_transactions_chunks(path: str | Path, rows: int = 500_000) -> Iterator[Transactions]:
    """One bank's transactions, `rows` at a time, each chunk checked as `read_transactions` checks the whole
    file (errors name the file, row and column)."""
    for table in _read_table_chunks(Path(path), COLUMNS, rows):
        yield _transactions(table)


def _transactions(table: _Table) -> Transactions:
    cols = table.columns
    for column in ("account_id", "counterparty"):
        empty = np.flatnonzero(np.char.str_len(cols[column]) == 0)
        if len(empty):
            raise table.bad(column, int(empty[0]), "is empty")
    timestamp = _convert(table, "timestamp", _seconds, "is not an integer number of seconds (0 to 2^63-1)")
    lowered = np.char.lower(cols["direction"])
    unknown = np.flatnonzero((lowered != "in") & (lowered != "out"))
    if len(unknown):
        raise table.bad("direction", int(unknown[0]), "is not 'in' or 'out'")
    money = _convert(table, "amount", float, "is not a number")
    invalid = np.flatnonzero(~np.isfinite(money) | (money <= 0))
    if len(invalid):
        raise table.bad("amount", int(invalid[0]), "is not a positive finite amount")
    return Transactions(cols["account_id"], timestamp, lowered == "in", money, cols["counterparty"])


def _seconds(value: str) -> int:
    """An int64 timestamp, or ValueError (numpy would raise OverflowError, naming nothing, for 20 digits)."""
    seconds = int(value)
    if not 0 <= seconds < 2**63:
        raise ValueError(value)
    return seconds


def _convert(table: _Table, column: str, convert: Callable[[str], object], why: str) -> np.ndarray:
    """A column as int64 or float64 (vectorised); else DataError at the first value `convert` refuses."""
    values = table.columns[column]
    dtype = np.int64 if convert is _seconds else np.float64
    try:
        out = values.astype(dtype)
        if dtype == np.int64 and len(out) and out.min() < 0:
            raise ValueError("negative")
        return out
    except (ValueError, OverflowError):
        for i, v in enumerate(values.tolist()):
            try:
                convert(v)
            except (ValueError, OverflowError):
                raise table.bad(column, i, why) from None
        raise AssertionError("numpy refused a value Python accepts") from None


def read_accounts(path: str | Path) -> np.ndarray:
    table = _read_table(Path(path), ["account_id"])
    ids = table.columns["account_id"]
    if len(ids) == 0:
        raise DataError(f"{path}: no accounts listed")
    empty = np.flatnonzero(np.char.str_len(ids) == 0)
    if len(empty):
        raise DataError(f"{path}: row {int(table.row_numbers[empty[0]])}, column account_id: is empty")
    uniq, counts = np.unique(ids, return_counts=True)
    if (counts > 1).any():
        dup = str(uniq[counts > 1][0])
        second = int(np.flatnonzero(ids == dup)[1])
        raise DataError(f"{path}: row {int(table.row_numbers[second])}, column account_id: "
                        f"{_show(dup)} is listed twice")
    return ids


UNLABELLED = -1


def read_labels(path: str | Path, accounts: np.ndarray) -> np.ndarray:
    """0/1 per listed account, UNLABELLED (-1) for an account labels.csv does not mention (the evaluation
    then uses the labelled ones only). Labels of accounts not listed are ignored."""
    table = _read_table(Path(path), ["account_id", "is_mule"])
    ids, values = table.columns["account_id"], table.columns["is_mule"]
    invalid = np.flatnonzero((values != "0") & (values != "1"))
    if len(invalid):
        raise table.bad("is_mule", int(invalid[0]), "is not 0 or 1")
    lookup: dict[str, int] = {}
    for i, (acct, value) in enumerate(zip(ids.tolist(), values.tolist(), strict=True)):
        if lookup.setdefault(acct, int(value)) != int(value):
            raise table.bad("is_mule", i, f"contradicts the earlier label of account {_show(acct)}")
    labels = np.array([lookup.get(a, UNLABELLED) for a in accounts.tolist()], dtype=np.int64)
    if not (labels != UNLABELLED).any():
        raise DataError(f"{path}: none of the {len(accounts):,} listed accounts has a label (first listed: "
                        f"{_show(str(accounts[0]))}); label some, or remove labels.csv to run without evaluation")
    return labels


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

"""Per-account features a bank computes locally from its own transactions (vectorised, no loop per row).

For every id of the public account list, in order; an account the bank does not hold gets zeros with
`present` = 0, so the other bank does not learn which accounts this bank holds.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from parties.fraud.data import HOUR, Transactions, read_transactions_chunks

FEATURES = [
    "present",            # the bank holds transactions of this account
    "log_n_in",           # log(1 + number of inflows)
    "log_sum_in",         # log(1 + total inflow)
    "log_n_out",          # log(1 + number of outflows)
    "log_sum_out",        # log(1 + total outflow)
    "small_in_share",     # share of inflows below 500
    "log_payers",         # log(1 + distinct paying counterparties)
    "log_hold_hours",     # log(1 + mean hours from the latest inflow to each outflow)
]
SMALL = 500.0


def compute(tx: Transactions, accounts: np.ndarray) -> np.ndarray:
    """(len(accounts), len(FEATURES)) float64 features; transactions of unlisted accounts are ignored."""
    n = len(accounts)
    if len(tx) == 0 or n == 0:
        return np.zeros((n, len(FEATURES)))
    index = AccountIndex(accounts)
    idx, known = index.positions(tx.account)
    return of_rows(idx[known], tx.inflow[known], tx.amount[known], tx.timestamp[known],
                   string_keys(tx.counterparty[known]), n)


class AccountIndex:
    """Positions of ids in the public account list (sorted once; no dict of a million strings)."""

    def __init__(self, accounts: np.ndarray):
        self.accounts = accounts
        self.order = np.argsort(accounts)
        self.sorted = accounts[self.order]

    def positions(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(position of each id, whether it is listed); unlisted ids get some position, masked out."""
        n = len(self.accounts)
        if n == 0:
            return np.zeros(len(ids), dtype=np.int64), np.zeros(len(ids), dtype=bool)
        at = np.minimum(np.searchsorted(self.sorted, ids), n - 1)
        return self.order[at], self.sorted[at] == ids


def string_keys(values: np.ndarray) -> np.ndarray:
    """A 64-bit FNV-1a hash of each string (vectorised over rows, one pass per character): equal strings,
    equal keys; distinct ids collide with probability ~2^-64 a pair. Lets counterparties be counted
    across chunks of a file without keeping their strings."""
    raw = np.char.encode(np.asarray(values, dtype=str), "utf-8")
    width = raw.dtype.itemsize
    out = np.full(len(raw), 0xCBF29CE484222325, dtype=np.uint64)
    if width == 0 or len(raw) == 0:
        return out
    codes = np.frombuffer(raw.tobytes(), dtype=np.uint8).reshape(len(raw), width)
    prime = np.uint64(0x100000001B3)
    with np.errstate(over="ignore"):
        for c in range(width):
            out ^= codes[:, c]
            out *= prime
    return out


def of_rows(idx: np.ndarray, inflow: np.ndarray, amount: np.ndarray, ts: np.ndarray, cp_key: np.ndarray,
            n: int) -> np.ndarray:
    """The features of n accounts from their transactions' columns (idx: the account's position 0..n-1;
    cp_key: the counterparty's `string_keys`)."""
    out = np.zeros((n, len(FEATURES)))
    if len(idx) == 0 or n == 0:
        return out
    count = lambda mask: np.bincount(idx[mask], minlength=n).astype(float)  # noqa: E731
    total = lambda mask: np.bincount(idx[mask], weights=amount[mask], minlength=n)  # noqa: E731
    n_in, n_out = count(inflow), count(~inflow)
    out[:, 0] = (n_in + n_out) > 0
    out[:, 1] = np.log1p(n_in)
    out[:, 2] = np.log1p(total(inflow))
    out[:, 3] = np.log1p(n_out)
    out[:, 4] = np.log1p(total(~inflow))
    out[:, 5] = np.divide(count(inflow & (amount < SMALL)), n_in, out=np.zeros(n), where=n_in > 0)
    out[:, 6] = np.log1p(_distinct_payers(idx[inflow], cp_key[inflow], n))
    out[:, 7] = np.log1p(_mean_hold_hours(idx, ts, inflow, n))
    return out


def _distinct_payers(idx: np.ndarray, key: np.ndarray, n: int) -> np.ndarray:
    """Per account, the number of distinct paying counterparties."""
    if len(idx) == 0:
        return np.zeros(n)
    order = np.lexsort((key, idx))
    i, k = idx[order], key[order]
    new = np.ones(len(i), dtype=bool)
    new[1:] = (i[1:] != i[:-1]) | (k[1:] != k[:-1])
    return np.bincount(i[new], minlength=n).astype(float)


def compute_file(path: str | Path, accounts: np.ndarray, rows: int = 500_000,
                 block: int = 100_000) -> Iterator[tuple[int, int, np.ndarray]]:
    """A bank's features straight from its transactions file, streamed: (lo, hi, features of accounts
    lo..hi-1), a block of accounts at a time. The file is read `rows` rows at a time (each chunk checked
    as read_transactions checks the whole, errors naming the file and row) and its rows spread by account
    block over temporary files; each block's features are then computed from its own file. Memory grows
    with `rows` and `block`, not with the file or the account list's features."""
    index = AccountIndex(accounts)
    n = len(accounts)
    blocks = [(lo, min(n, lo + block)) for lo in range(0, n, block)]
    with tempfile.TemporaryDirectory(prefix="mpc-features-") as tmp:
        parts: list[list[Path]] = [[] for _ in blocks]
        for c, tx in enumerate(read_transactions_chunks(path, rows)):
            idx, known = index.positions(tx.account)
            idx = idx[known]
            cols = (tx.inflow[known], tx.amount[known], tx.timestamp[known], string_keys(tx.counterparty[known]))
            which = idx // block
            for b in np.unique(which):
                sel = which == b
                part = Path(tmp) / f"b{b}_c{c}.npz"
                np.savez(part, idx=idx[sel], inflow=cols[0][sel], amount=cols[1][sel], ts=cols[2][sel],
                         key=cols[3][sel])
                parts[int(b)].append(part)
        for b, (lo, hi) in enumerate(blocks):
            loaded = [np.load(p) for p in parts[b]]
            if loaded:
                col = {k: np.concatenate([z[k] for z in loaded]) for k in ("idx", "inflow", "amount", "ts", "key")}
                yield lo, hi, of_rows(col["idx"] - lo, col["inflow"], col["amount"], col["ts"], col["key"], hi - lo)
            else:
                yield lo, hi, np.zeros((hi - lo, len(FEATURES)))
            for p in parts[b]:
                p.unlink()


def _mean_hold_hours(idx: np.ndarray, ts: np.ndarray, inflow: np.ndarray, n: int) -> np.ndarray:
    """Mean over an account's outflows of the hours since its latest earlier inflow (0 if none)."""
    order = np.lexsort((~inflow, ts, idx))  # by account, then time, inflows first at equal times
    idx, ts, inflow = idx[order], ts[order].astype(np.float64), inflow[order]
    span = float(ts.max() + 1) if len(ts) else 1.0
    key = idx * span + ts  # increasing within and across accounts
    last_in = np.maximum.accumulate(np.where(inflow, key, -np.inf))
    valid = (~inflow) & (last_in >= idx * span)
    hours = np.where(valid, (key - last_in) / HOUR, 0.0)
    sums = np.bincount(idx[valid], weights=hours[valid], minlength=n)
    counts = np.bincount(idx[valid], minlength=n)
    return np.divide(sums, counts, out=np.zeros(n), where=counts > 0)

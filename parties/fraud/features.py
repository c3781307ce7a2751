"""Per-account features a bank computes locally from its own transactions (vectorised, no loop per row).

For every id of the public account list, in order; an account the bank does not hold gets zeros with
`present` = 0, so the other bank does not learn which accounts this bank holds.
"""

from __future__ import annotations

import numpy as np

from parties.fraud.data import HOUR, Transactions

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
    out = np.zeros((n, len(FEATURES)))
    if len(tx) == 0 or n == 0:
        return out
    order = np.argsort(accounts)
    pos = np.searchsorted(accounts, tx.account, sorter=order)
    pos = np.minimum(pos, n - 1)
    idx = order[pos]
    known = accounts[idx] == tx.account
    idx, inflow, amount, ts, cp = idx[known], tx.inflow[known], tx.amount[known], tx.timestamp[known], \
        tx.counterparty[known]
    count = lambda mask: np.bincount(idx[mask], minlength=n).astype(float)  # noqa: E731
    total = lambda mask: np.bincount(idx[mask], weights=amount[mask], minlength=n)  # noqa: E731
    n_in, n_out = count(inflow), count(~inflow)
    out[:, 0] = (n_in + n_out) > 0
    out[:, 1] = np.log1p(n_in)
    out[:, 2] = np.log1p(total(inflow))
    out[:, 3] = np.log1p(n_out)
    out[:, 4] = np.log1p(total(~inflow))
    out[:, 5] = np.divide(count(inflow & (amount < SMALL)), n_in, out=np.zeros(n), where=n_in > 0)
    pairs = np.unique(np.stack([idx[inflow].astype(str), cp[inflow]]), axis=1) if inflow.any() else np.zeros((2, 0))
    out[:, 6] = np.log1p(np.bincount(pairs[0].astype(np.int64), minlength=n)) if pairs.shape[1] else 0.0
    out[:, 7] = np.log1p(_mean_hold_hours(idx, ts, inflow, n))
    return out


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

"""Group sums and counts over secret keys in one round, with one-hot vectors dealt by the helper.

Keys are shared integers in [0, K); let P = the power of two at least K. Shares mod 2^64 reduce to shares
mod P locally (P divides 2^64), so with a dealt random r (uniform, shared) the parties can open
c = (k - r) mod P, which is uniform and says nothing about k. The helper also deals, per row, shares of
the one-hot vector e_r (P entries) and of a e_r for a random mask a of the row's values. Then, locally,
e_k = e_r rotated by c (rows summed per value of c first, then rotated), and with w = v + a opened in the same round:

    sums[g] = sum_i v_i [k_i = g] = sum_i w_i e_k,i[g] - sum_i (a e_r)_i rotated by c_i, at g

Counts are sum_i e_k,i (local). One round; online 8 (1 + width) bytes a row; dealer P (1 + width) words
a row to the last compute party (the one-hot vectors: the price of one round).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from protocols.primitives.core import Cost, Engine, Exchange, Material, Spec, run_protocol
from protocols.primitives.shared import SharedArray

MAX_GROUPS = 1 << 16


def buckets(groups: int) -> int:
    """P: the power of two at least `groups` (at least 2)."""
    return max(2, 1 << (int(groups) - 1).bit_length())


def _by_shift(table: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """sum_i table[i, (g - shift_i) mod P, ...] for every bucket g: the rows summed per shift value (one
    sort and one reduceat), then each of the at most P partial sums rotated into place."""
    p = table.shape[1]
    out = np.zeros(table.shape[1:], dtype=np.uint64)
    if not shift.size:
        return out
    order = np.argsort(shift, kind="stable")
    ordered = shift[order]
    starts = np.flatnonzero(np.concatenate([[True], ordered[1:] != ordered[:-1]]))
    partial = np.add.reduceat(table[order], starts, axis=0, dtype=np.uint64)
    for s, block in zip(ordered[starts].tolist(), partial, strict=True):
        out += np.roll(block, int(s) % p, axis=0)
    return out


def group_sums(ctx: Engine, keys: SharedArray, values: SharedArray | None, groups: int) -> tuple[SharedArray, ...]:
    """(counts of shape (groups,), and sums of shape (groups, *values.shape[1:]) if values is given), for
    shared integer keys in [0, groups). Collective; 1 round (module doc)."""
    if keys.frac_bits or keys.ndim != 1:
        raise TypeError("group keys must be a 1-D shared integer array (codes 0 .. groups - 1)")
    if not 1 <= groups <= MAX_GROUPS:
        raise ValueError(f"groups must be in 1 .. {MAX_GROUPS}, not {groups}")
    n = keys.shape[0]
    if values is not None and (values.ndim not in (1, 2) or values.shape[0] != n):
        raise ValueError(f"group values need {n} rows (1-D or 2-D), not shape {values.shape}")
    p = buckets(groups)
    mask = np.uint64(p - 1)
    width = 0 if values is None else (values.shape[1] if values.ndim == 2 else 1)
    spec = Spec().random("r", (n,)).shared("onehot", (n, p), lambda env: _one_hot(env["r"], p))
    if width:
        spec = spec.random("a", (n, width)).shared(
            "masked", (n, p, width), lambda env: env["onehot"][:, :, None] * env["a"][:, None, :])

    async def body(io: Exchange, mat: Material, k: np.ndarray, *rest: np.ndarray) -> tuple[np.ndarray, ...]:
        mine = [(k - mat.r) & mask]
        if width:
            mine.append((rest[0].reshape(n, width) + mat.a).reshape(-1))
        opened = await io.open(np.concatenate(mine))
        c = (opened[:n] & mask).astype(np.int64)
        counts = _by_shift(mat.onehot, c)[:groups]  # this party's shares of sum_i e_k,i
        if not width:
            return (counts,)
        w = opened[n:].reshape(n, width)
        # w e_k (a public w times this party's share of e_k) minus the mask term (a e_r rotated), per row
        weighted = mat.onehot[:, :, None] * w[:, None, :]
        weighted -= mat.masked
        sums = _by_shift(weighted, c)[:groups]
        return counts, sums.reshape((groups,) if values is not None and values.ndim == 1 else (groups, width))

    def plain(k: np.ndarray, *rest: np.ndarray) -> tuple[np.ndarray, ...]:
        codes = (k & mask).astype(np.int64)
        counts = np.bincount(codes, minlength=p)[:groups].astype(np.uint64)
        if not width:
            return (counts,)
        out = np.zeros((p, width), dtype=np.uint64)
        np.add.at(out, codes, rest[0].reshape(n, width))
        return counts, out[:groups].reshape((groups,) if rest[0].ndim == 1 else (groups, width))

    outputs: list[tuple[tuple[int, ...], int]] = [((groups,), 0)]
    operands = [keys]
    if values is not None:
        outputs.append(((groups, *values.shape[1:]), values.frac_bits))
        operands.append(values)
    cost = Cost(1, 1, 8 * n * (1 + width))
    return tuple(run_protocol(ctx, "group", spec, body, operands, outputs, plain=plain, cost=cost))


def _one_hot(r: np.ndarray, p: int) -> np.ndarray:
    out = np.zeros((r.size, p), dtype=np.uint64)
    out[np.arange(r.size), (r & np.uint64(p - 1)).astype(np.int64)] = 1
    return out


def public_group_sums(ctx: Engine, keys: Any, values: SharedArray | None, groups: int) -> tuple[Any, ...]:
    """Group by public keys: the counts are public (np.bincount), the sums local on shares. 0 rounds."""
    codes = np.asarray(keys)
    if codes.ndim != 1 or codes.dtype.kind not in "iu" or (codes.size and (codes.min() < 0 or codes.max() >= groups)):
        raise ValueError(f"public group keys must be 1-D integer codes in 0 .. {groups - 1}")
    counts = np.bincount(codes, minlength=groups)
    if values is None:
        return (counts,)
    if values.shape[0] != codes.size:
        raise ValueError(f"{codes.size} keys for {values.shape[0]} rows")

    def add(share: np.ndarray) -> np.ndarray:
        out = np.zeros((groups, *share.shape[1:]), dtype=np.uint64)
        np.add.at(out, codes, share)
        return out

    return counts, values.local(add, (groups, *values.shape[1:]))

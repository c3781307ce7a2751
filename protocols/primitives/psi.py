"""Private set intersection, helper-aided: the banks' common ids, and their rows as shares in one order.

Protocol (docs/analytics.md, "Private set intersection"):

1. Each bank checks its ids (strings, no duplicates, at most MAX_IDS) before anything is sent.
2. The first bank draws a fresh 32-byte key and sends it to the second over their encrypted link: the
   helper never sees it, and a new session never reuses it.
3. Each bank computes a keyed tag of every id, BLAKE2b-128 keyed (a PRF) of its UTF-8 bytes, shuffles
   its tags by a secret permutation of its own (rho) and sends them to the helper.
4. The helper matches the tags. Without the key, tags are random to it: it learns the two set sizes and
   the size of the intersection, nothing else (not which ids, and through rho not even which positions of
   a bank's file). The common order is the order of the matching tags, pseudorandom.
5. The helper sends every compute party the size m; to a bank entitled to the intersection, the
   positions of its tags that matched, in the common order (so it learns its common ids); to each bank,
   the other bank's matching positions (random positions of a list shuffled by rho, which it cannot
   interpret), so that it can act as the permuter when the other inputs aligned rows.

Aligned input (`aligned_input`): the owner inputs its rows in the order it sent its tags (rho), as an
ordinary input, and one step of protocols/primitives/shuffle.py with the other bank as permuter keeps the
m matching rows in the common order. The owner never learns which of its rows were kept (unless it was
told the intersection), the other bank sees its rows masked only. One round in all for two compute parties.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mpc.runtime import Op
from protocols.primitives.core import SECURE, Engine
from protocols.primitives.shared import SharedArray
from protocols.primitives.shuffle import permute_rows, rebind, scoped

MAX_IDS = 1 << 27  # 134 million ids: 2 GiB of tags on the helper
KEY_STEP, TAGS_STEP, SIZE_STEP, OWN_STEP, OTHER_STEP = 1, 2, 3, 4, 5
REVEAL_CHOICES = "both | size | a bank's name"


@dataclass
class Alignment:
    """What PSI gave this party. `size`: the number of common ids (every party knows it). On a bank told
    the intersection, `ids`: the common ids in the common order and `rows`: their positions in the ids
    it passed (take its other columns in that order: `frame.iloc[al.rows]`); None elsewhere."""

    parties: tuple[str, str]
    size: int
    ids: list[str] | None = None
    rows: np.ndarray | None = None
    sizes: dict[str, int] = field(default_factory=dict)  # the set sizes this party knows (all: the helper)
    method: str = "helper"  # or "ecdh" (protocols/primitives/psi_ecdh.py): aligned inputs then select locally
    _order: np.ndarray | None = None  # rho: this bank's ids in the order it sent their tags
    _selection: dict[str, np.ndarray] = field(default_factory=dict, repr=False)  # who permutes for whom

    def __len__(self) -> int:
        return self.size


def check_ids(owner: str, ids: Any) -> list[str]:
    """The ids as a list of str; a clear error naming the owner for anything else."""
    if ids is None:
        raise ValueError(f"{owner}: psi needs this bank's ids (got None)")
    if isinstance(ids, str | bytes):
        raise TypeError(f"{owner}: psi takes a sequence of ids, not one {type(ids).__name__}")
    if hasattr(ids, "tolist"):
        ids = ids.tolist()
    out = list(ids)
    if len(out) > MAX_IDS:
        raise ValueError(f"{owner}: psi: {len(out):,} ids, more than the limit of {MAX_IDS:,}")
    if not all(isinstance(v, str) for v in out):
        bad = next(i for i, v in enumerate(out) if not isinstance(v, str))
        raise TypeError(f"{owner}: psi: ids must be strings; the id at position {bad} is a "
                        f"{type(out[bad]).__name__} (convert them, e.g. str(i))")
    if len(set(out)) != len(out):
        first: dict[str, int] = {}
        for i, v in enumerate(out):
            if v in first:
                raise ValueError(f"{owner}: psi: duplicate ids (positions {first[v]} and {i} are equal); "
                                 "each customer must appear once")
            first[v] = i
    return out


def tags(key: bytes, ids: Sequence[str]) -> np.ndarray:
    """BLAKE2b-128 keyed by `key` of every id's UTF-8 bytes, as an (n, 2) uint64 array."""
    raw = b"".join([hashlib.blake2b(i.encode("utf-8"), key=key, digest_size=16).digest() for i in ids])
    return np.frombuffer(raw, dtype=np.uint64).reshape(len(ids), 2)


def match(tags_a: np.ndarray, tags_b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Positions (ia, ib) of the equal rows of two (n, w) uint64 arrays (tags, or group elements), in the
    order of their first words: one sort of a's first words
    and a binary search of b's (a 64-bit collision within a set, probability ~n^2/2^65, stops the run)."""
    first_a, first_b = tags_a[:, 0], tags_b[:, 0]
    order_a = np.argsort(first_a)
    sorted_a = first_a[order_a]
    if sorted_a.size > 1 and np.any(sorted_a[1:] == sorted_a[:-1]):
        raise RuntimeError("psi: two tags of one bank agree on 64 bits (probability ~n^2/2^65); run again")
    at = np.minimum(np.searchsorted(sorted_a, first_b), max(sorted_a.size - 1, 0))
    hit = sorted_a[at] == first_b if sorted_a.size else np.zeros(first_b.size, dtype=bool)
    ib = np.flatnonzero(hit)
    ia = order_a[at[ib]]
    same = np.all(tags_a[ia, 1:] == tags_b[ib, 1:], axis=1)
    ia, ib = ia[same], ib[same]
    if np.unique(ia).size != ia.size:
        raise RuntimeError("psi: two tags of one bank agree on 64 bits (probability ~n^2/2^65); run again")
    common = np.argsort(first_b[ib])
    return ia[common].astype(np.int64), ib[common].astype(np.int64)


def psi(ctx: Engine, ids: Any = None, *, parties: Sequence[str] | None = None,
        reveal: str = "both") -> Any:
    """The intersection of two banks' ids, helper-aided (module doc). Collective: every party calls it,
    each bank with its ids, the others with None. `reveal`: 'both' (each bank learns the common ids),
    'size' (nobody learns more than the size), or a bank's name (that bank only). Await the Alignment."""
    pair = tuple(parties) if parties is not None else tuple(ctx.compute_parties[:2])
    if len(pair) != 2 or len(set(pair)) != 2 or any(p not in ctx.compute_parties for p in pair):
        raise ValueError(f"psi: parties must be two compute parties ({', '.join(ctx.compute_parties)}), "
                         f"not {pair!r}")
    if reveal not in ("both", "size", *pair):
        raise ValueError(f"psi: reveal={reveal!r}; choose {REVEAL_CHOICES} ({pair[0]} or {pair[1]})")
    if ctx.party.helper is None:
        raise ValueError("psi (helper-aided) needs a helper party; use method='ecdh' without one")
    if ctx.backend is not SECURE:
        raise TypeError("psi is not offered in emulation (it matches real ids); run it with the parties")
    mine = check_ids(ctx.name, ids) if ctx.name in pair else None
    op = ctx.party.new_op("psi")
    entitled = set(pair) if reveal == "both" else {reveal} if reveal in pair else set()
    a, b = pair

    async def bank() -> Alignment:
        assert mine is not None
        party, helper = ctx.party, ctx.party.helper
        assert helper is not None
        if ctx.name == a:
            key = secrets.token_bytes(32)
            party.send(b, op, np.frombuffer(key, dtype=np.uint8), step=KEY_STEP)
        else:
            key = (await party.recv(a, op, step=KEY_STEP, dtype=np.uint8, shape=(32,))).array.tobytes()
        order = np.random.default_rng(secrets.randbits(128)).permutation(len(mine))
        tagged = await party.run_in_worker(tags, key, mine)
        party.send(helper, op, np.ascontiguousarray(tagged[order]), step=TAGS_STEP)
        size = int((await party.recv(helper, op, step=SIZE_STEP, dtype=np.int64, shape=(1,))).array[0])
        other = b if ctx.name == a else a
        out = Alignment(pair, size, sizes={ctx.name: len(mine)}, _order=order)
        if ctx.name in entitled:
            own = (await party.recv(helper, op, step=OWN_STEP, dtype=np.int64, shape=(size,))).array
            out.rows = order[own]
            out.ids = [mine[i] for i in out.rows]
        out._selection[other] = (await party.recv(helper, op, step=OTHER_STEP, dtype=np.int64,
                                                  shape=(size,))).array
        return out

    async def helper() -> Alignment:
        party = ctx.party
        got = [(await party.recv(p, op, step=TAGS_STEP, dtype=np.uint64)).array for p in pair]
        for p, t in zip(pair, got, strict=True):
            if t.ndim != 2 or t.shape[1] != 2 or t.shape[0] > MAX_IDS:
                raise ValueError(f"psi: {p} sent tags of shape {t.shape}, expected (n, 2)")
        ia, ib = match(*got)
        size = np.array([ia.size], dtype=np.int64)
        for p in ctx.compute_parties:
            party.send(p, op, size, step=SIZE_STEP)
        selection = {a: ia, b: ib}
        for p in pair:
            if p in entitled:
                party.send(p, op, selection[p], step=OWN_STEP)
            party.send(p, op, selection[b if p == a else a], step=OTHER_STEP)
        return Alignment(pair, int(ia.size), sizes={a: got[0].shape[0], b: got[1].shape[0]},
                         _selection=selection)

    async def bystander() -> Alignment:
        assert ctx.party.helper is not None
        msg = await ctx.party.recv(ctx.party.helper, op, step=SIZE_STEP, dtype=np.int64, shape=(1,))
        return Alignment(pair, int(msg.array[0]))

    run = bank() if ctx.name in pair else helper() if ctx.is_dealer else bystander()
    return ctx.spawn(run)


def _rows_of(owner: str, value: Any, alignment: Alignment, rows: np.ndarray) -> Any:
    """The owner's value at `rows` (an array's or a DataFrame's), after checking it has a row per id."""
    n = alignment.sizes.get(owner)
    if value is None:
        raise ValueError(f"{owner}: input(align=...) needs the value on its owner (got None)")
    if len(value) != n:
        raise ValueError(f"{owner}: input(align=...): {len(value)} rows, but {n} ids were given to psi "
                         "(one row per id, in the same order)")
    return value.iloc[rows] if hasattr(value, "iloc") else np.asarray(value)[rows]


def aligned_input(ctx: Engine, owner: str, value: Any, alignment: Alignment) -> Any:
    """`owner`'s rows of the common ids, shared in the common order (module doc). `value`: on the owner,
    an array or DataFrame with one row per id it gave psi, in that order. Collective; await the result."""
    if owner not in alignment.parties:
        raise ValueError(f"input(align=...): {owner} is not one of the PSI's banks {alignment.parties}")
    if ctx.backend is not SECURE:
        raise TypeError("aligned input is not offered in emulation (it follows a real PSI)")
    if alignment.method == "ecdh":  # both banks know the intersection: the owner picks its rows itself
        if ctx.name == owner and alignment.rows is None:
            raise ValueError(f"{owner}: input(align=...) after an ECDH PSI needs the owner to know the "
                             "intersection (psi(..., reveal='both' or its name))")
        if ctx.name == owner and alignment.rows is not None:
            value = _rows_of(owner, value, alignment, alignment.rows)
        return ctx.input(owner, value)  # type: ignore[attr-defined]
    permuter = alignment.parties[1] if owner == alignment.parties[0] else alignment.parties[0]
    rows = value
    if ctx.name == owner:
        assert alignment._order is not None
        rows = _rows_of(owner, value, alignment, alignment._order)
    base = ctx.party.new_op("aligned-input")
    view = scoped(ctx, base)
    shared = view.input(owner, rows)  # type: ignore[attr-defined]

    async def selection() -> np.ndarray:
        return alignment._selection[owner]

    async def run() -> SharedArray:
        x = await shared
        step: Op = view.party.new_op("align")
        out = permute_rows(view, [x], permuter, selection, alignment.size, op=step, label="align")[0]
        out.columns = x.columns
        return rebind(ctx, out)

    return ctx.spawn(run())

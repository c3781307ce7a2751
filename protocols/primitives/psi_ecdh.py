"""Private set intersection by Diffie-Hellman over Ristretto255, without the helper (docs/analytics.md).

The bank that learns the intersection first, the *receiver* R, and the other, S, each draw a fresh secret
scalar for this session (alpha, beta). With H the hash to the group (libsodium's
crypto_core_ristretto255_from_hash of SHA-512 of the id's UTF-8 bytes):

1. R sends S the points alpha H(x) of its ids, in an order shuffled by a secret permutation;
2. S sends R its own points beta H(y), shuffled likewise, and beta (alpha H(x)) for every point R sent,
   in R's order;
3. R computes alpha (beta H(y)) for S's points and matches them against the doubly-blinded points of its
   own: equal points are equal ids (the group has prime order), and R knows which of its ids they are.

R learns the intersection and |Y|; S learns |X| and, as R sends it, the size (and, when both banks are to
learn the intersection, the positions of its matching points in its shuffled list, in the common order).
Under the decisional Diffie-Hellman assumption in the random-oracle model nothing else is learned (the
semi-honest ECDH-PSI of Meadows 1986 / Huberman-Franklin-Hogg 1999). There is no size-only mode here (the
receiver always learns the intersection): that needs the helper-aided protocol of psi.py.

Cost: 3 group operations per id per bank (a hash to the group and two scalar multiplications), one call
into libsodium each (through pysodium, the `psi` extra); 64 bytes per id of R's and 64 of S's on the wire.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence
from typing import Any

import numpy as np

from protocols.primitives.core import SECURE, Engine
from protocols.primitives.psi import Alignment, check_ids, match

POINTS_STEP, BACK_STEP, SIZE_STEP, ROWS_STEP = 11, 12, 13, 14


def _sodium() -> Any:
    try:
        import pysodium  # type: ignore[import-untyped]
    except ImportError:  # pragma: no cover - depends on the installation
        raise ImportError("psi(method='ecdh') needs pysodium and the system's libsodium: pip install 'mpc[psi]' "
                          "(and e.g. apt-get install libsodium23)") from None
    return pysodium


def hash_points(ids: Sequence[str], scalar: bytes) -> np.ndarray:
    """scalar * H(id) for every id, as an (n, 32) uint8 array."""
    sodium = _sodium()
    from_hash, mult = sodium.crypto_core_ristretto255_from_hash, sodium.crypto_scalarmult_ristretto255
    raw = b"".join([mult(scalar, from_hash(hashlib.sha512(i.encode("utf-8")).digest())) for i in ids])
    return np.frombuffer(raw, dtype=np.uint8).reshape(len(ids), 32)


def blind(points: np.ndarray, scalar: bytes) -> np.ndarray:
    """scalar * P for every point (rows of 32 bytes); a point that is not valid stops the run."""
    sodium = _sodium()
    mult = sodium.crypto_scalarmult_ristretto255
    data = np.ascontiguousarray(points, dtype=np.uint8).tobytes()
    try:
        raw = b"".join([mult(scalar, data[i:i + 32]) for i in range(0, len(data), 32)])
    except ValueError:
        raise ValueError("psi (ecdh): the other bank sent a value that is not a group element") from None
    return np.frombuffer(raw, dtype=np.uint8).reshape(points.shape[0], 32)


def psi_ecdh(ctx: Engine, ids: Any = None, *, parties: Sequence[str] | None = None, reveal: str = "both") -> Any:
    """ECDH PSI (module doc). Collective over every party; the helper and other compute parties only learn
    the size. reveal: 'both' or a bank's name (the receiver). Await an Alignment."""
    pair = tuple(parties) if parties is not None else tuple(ctx.compute_parties[:2])
    if len(pair) != 2 or len(set(pair)) != 2 or any(p not in ctx.compute_parties for p in pair):
        raise ValueError(f"psi: parties must be two compute parties ({', '.join(ctx.compute_parties)}), "
                         f"not {pair!r}")
    if reveal == "size":
        raise ValueError("psi(method='ecdh') always gives the intersection to one bank; a size-only result needs "
                         "the helper (method='helper')")
    if reveal not in ("both", *pair):
        raise ValueError(f"psi: reveal={reveal!r}; choose both, {pair[0]} or {pair[1]}")
    if ctx.backend is not SECURE:
        raise TypeError("psi is not offered in emulation (it matches real ids); run it with the parties")
    mine = check_ids(ctx.name, ids) if ctx.name in pair else None
    if mine is not None:
        _sodium()  # a missing binding is reported before anything is sent
    op = ctx.party.new_op("psi-ecdh")
    receiver = reveal if reveal in pair else pair[0]
    sender = pair[1] if receiver == pair[0] else pair[0]
    both = reveal == "both"
    party = ctx.party

    async def as_receiver() -> Alignment:
        assert mine is not None
        scalar = _sodium().crypto_core_ristretto255_scalar_random()
        order = np.random.default_rng(secrets.randbits(128)).permutation(len(mine))
        own = await party.run_in_worker(hash_points, [mine[i] for i in order], scalar)
        party.send(sender, op, own, step=POINTS_STEP)
        theirs = (await party.recv(sender, op, step=POINTS_STEP, dtype=np.uint8)).array
        back = (await party.recv(sender, op, step=BACK_STEP, dtype=np.uint8, shape=own.shape)).array
        _check_points(theirs, sender)
        doubled = await party.run_in_worker(blind, theirs, scalar)
        mine_at, theirs_at = match(back.view(np.uint64), doubled.view(np.uint64))
        size = mine_at.size
        for p in ctx.party.peers:
            party.send(p, op, np.array([size], dtype=np.int64), step=SIZE_STEP)
        if both:
            party.send(sender, op, theirs_at, step=ROWS_STEP)
        rows = order[mine_at]
        return Alignment(pair, size, ids=[mine[i] for i in rows], rows=rows, sizes={ctx.name: len(mine)},
                         method="ecdh")

    async def as_sender() -> Alignment:
        assert mine is not None
        scalar = _sodium().crypto_core_ristretto255_scalar_random()
        order = np.random.default_rng(secrets.randbits(128)).permutation(len(mine))
        own = await party.run_in_worker(hash_points, [mine[i] for i in order], scalar)
        party.send(receiver, op, own, step=POINTS_STEP)
        theirs = (await party.recv(receiver, op, step=POINTS_STEP, dtype=np.uint8)).array
        _check_points(theirs, receiver)
        party.send(receiver, op, await party.run_in_worker(blind, theirs, scalar), step=BACK_STEP)
        size = int((await party.recv(receiver, op, step=SIZE_STEP, dtype=np.int64, shape=(1,))).array[0])
        out = Alignment(pair, size, sizes={ctx.name: len(mine)}, method="ecdh")
        if both:
            at = (await party.recv(receiver, op, step=ROWS_STEP, dtype=np.int64, shape=(size,))).array
            out.rows = order[at]
            out.ids = [mine[i] for i in out.rows]
        return out

    async def bystander() -> Alignment:
        msg = await party.recv(receiver, op, step=SIZE_STEP, dtype=np.int64, shape=(1,))
        return Alignment(pair, int(msg.array[0]), method="ecdh")

    run = as_receiver() if ctx.name == receiver else as_sender() if ctx.name == sender else bystander()
    return ctx.spawn(run)


def _check_points(points: np.ndarray, sender: str) -> None:
    if points.ndim != 2 or points.shape[1] != 32:
        raise ValueError(f"psi (ecdh): {sender} sent points of shape {points.shape}, expected (n, 32)")

"""How inputs are shared and values opened: over the parties' links (`SecureSharing`), or in emulation
through the emulator (protocols/interface/emulation.py). The Context validates and encodes an input, and
checks a reveal's recipients, once for both; a `Sharing` only moves the values.
"""

from __future__ import annotations

import asyncio
import json
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from mpc.prg import random_ring
from mpc.ring import decode_fixed, signed
from mpc.runtime import Op, Party
from protocols.primitives.shared import SharedArray, Shares, placeholder

if TYPE_CHECKING:
    from protocols.primitives.core import Engine

META_STEP, SHARE_STEP, NAMES_STEP = 1, 0, 2
Declared = tuple[tuple[int, ...], bool]
"""An input's shape and whether it is fixed point, declared by every party (no metadata is sent)."""


@dataclass(frozen=True)
class Prepared:
    """The owner's input, checked and encoded: ring values, fractional bits, column names (or None)."""

    encoded: np.ndarray
    frac: int
    columns: tuple[str, ...] | None


class Sharing(Protocol):
    def input(self, ctx: Engine, owner: str, op: Op, prepared: Prepared | None, declared: Declared | None) -> Any:
        """Share `prepared` (on its owner; None elsewhere): a SharedArray at once if declared, else a task."""
        ...

    def reveal(self, ctx: Engine, x: SharedArray, recipients: list[str], op: Op) -> asyncio.Task[np.ndarray | None]:
        ...

    async def barrier(self, ctx: Engine, op: Op) -> None:
        """Every party waits for every other (the start of an online phase)."""
        ...

    def holds_public(self, ctx: Engine) -> bool:
        """Whether this party's share carries public constants."""
        ...


def check_input_size(ctx: Engine, owner: str, op: Op, shape: tuple[int, ...]) -> None:
    """An input over the session's max_input_elements is refused on every party before anything is dealt
    for it (a comparison costs the helper ~1.5 KB of keys per element): on its owner at its call, on the
    others when the declared shape or the owner's metadata says so."""
    limit = ctx.party.topology.max_input_elements
    elements = math.prod(shape)
    if elements > limit:
        raise ValueError(f"{owner}'s input (op {op.id}, shape {tuple(shape)}) has {elements:,} elements, over the "
                         f"session's limit of {limit:,} (session.max_input_elements in the topology); split it, "
                         "or raise the limit on every party")


def decode(total: np.ndarray, frac: int) -> np.ndarray:
    """Opened ring values as float64 (fixed point) or int64; 0-d stays an array."""
    return np.asarray(decode_fixed(total, frac) if frac else signed(total).copy())


class SecureSharing:
    """Inputs and reveals over the links: the owner sends each other compute party a fresh uniform share."""

    def holds_public(self, ctx: Engine) -> bool:
        return ctx.name == ctx.compute_parties[0]

    def input(self, ctx: Engine, owner: str, op: Op, prepared: Prepared | None, declared: Declared | None) -> Any:
        party = ctx.party
        compute = ctx.compute_parties
        frac_declared = (ctx.frac_bits if declared[1] else 0) if declared is not None else 0
        peers = [p for p in party.peers if p != owner and (declared is None or p in compute)]

        async def share_out() -> Shares:
            assert prepared is not None
            encoded = prepared.encoded
            if declared is None:  # public metadata goes at once: the others need it to issue (and deal) what follows
                for peer in peers:
                    meta = [prepared.frac, encoded.ndim, int(prepared.columns is not None), *encoded.shape]
                    party.send(peer, op, np.array(meta, dtype=np.uint64), step=META_STEP)
                    if prepared.columns is not None:
                        names = np.frombuffer(json.dumps(list(prepared.columns)).encode(), dtype=np.uint8)
                        party.send(peer, op, names, step=NAMES_STEP)
            await ctx.online_gate()
            mine = np.array(encoded, dtype=np.uint64)  # a copy, and an array even for a 0-d value
            for peer in peers:
                if peer in compute:
                    share = random_ring(encoded.shape)
                    party.send(peer, op, share, step=SHARE_STEP)
                    mine -= share
            return Shares(mine, 0)

        async def share_in(expected: tuple[int, ...]) -> Shares:
            share = await party.recv(owner, op, step=SHARE_STEP, dtype=np.uint64, shape=expected)
            return Shares(share.array, share.depth)

        if declared is not None:
            dims = declared[0]
            if ctx.is_dealer:
                return placeholder(ctx, dims, frac_declared)
            fut = ctx.spawn(share_out() if party.name == owner else share_in(dims))
            return SharedArray(ctx, dims, frac_declared, fut)

        async def run() -> SharedArray:
            if party.name == owner:
                assert prepared is not None
                out = SharedArray(ctx, prepared.encoded.shape, prepared.frac, ctx.spawn(share_out()))
                out.columns = prepared.columns
                return out
            msg = await party.recv(owner, op, step=META_STEP, dtype=np.uint64)
            if msg.array.size < 3:
                raise ValueError(f"{owner} sent malformed input metadata")
            their_frac, ndim, named = int(msg.array[0]), int(msg.array[1]), int(msg.array[2])
            got = tuple(int(d) for d in msg.array[3:])
            if len(got) != ndim or their_frac not in (0, ctx.frac_bits) or named not in (0, 1) or \
                    (named and ndim != 2):
                raise ValueError(f"{owner} sent malformed input metadata")
            check_input_size(ctx, owner, op, got)
            names = await _receive_names(party, owner, op, got[1]) if named else None
            # the shape is known now; the share comes when the owner goes online (after a hold/release)
            out = placeholder(ctx, got, their_frac) if ctx.is_dealer else \
                SharedArray(ctx, got, their_frac, ctx.spawn(share_in(got)))
            out.columns = names
            return out

        return ctx.spawn(run())

    def reveal(self, ctx: Engine, x: SharedArray, recipients: list[str], op: Op) -> asyncio.Task[np.ndarray | None]:
        party = ctx.party

        async def run() -> np.ndarray | None:
            if ctx.is_dealer:
                return None
            xs = await x.resolve()
            share = np.require(xs.share, requirements="C")
            for r in recipients:
                if r != party.name:
                    party.send(r, op, share, depth=xs.depth)
            if party.name not in recipients:
                return None
            total = share.copy()
            for peer in ctx.compute_parties:
                if peer != party.name:
                    total += (await party.recv(peer, op, dtype=np.uint64, shape=x.shape)).array
            return decode(total, x.frac_bits)

        return ctx.spawn(run())

    async def barrier(self, ctx: Engine, op: Op) -> None:
        token = np.zeros(0, dtype=np.uint8)
        peers = ctx.party.peers
        for peer in peers:
            ctx.party.send(peer, op, token, depth=0)
        for peer in peers:
            await ctx.party.recv(peer, op, dtype=np.uint8, shape=(0,))


async def _receive_names(party: Party, owner: str, op: Op, width: int) -> tuple[str, ...]:
    msg = await party.recv(owner, op, step=NAMES_STEP, dtype=np.uint8)
    try:
        names = json.loads(msg.array.tobytes().decode())
    except (UnicodeDecodeError, json.JSONDecodeError):
        names = None
    if not isinstance(names, list) or len(names) != width or not all(isinstance(n, str) for n in names):
        raise ValueError(f"{owner} sent malformed column names with its input")
    return tuple(names)

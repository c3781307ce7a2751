"""Oblivious permutation of shared rows, dealt by the helper: the secure shuffle, and selecting rows.

One **step** applies an index array `idx` (a permutation of the n rows, or a selection of m of them) known
to one compute party, the *permuter*, and to the helper, to shared rows (docs/analytics.md, "Shuffle"):

- every other compute party i sends the permuter its share masked by its own PRG draw a_i (n rows);
- the permuter adds them to its share, takes the rows `idx` of the sum and subtracts its own draws b_i
  (m rows each): its new share is x[idx] + sum_i (a_i[idx] - b_i);
- the helper, who knows every PRG stream and idx, sends party i its new share b_i - a_i[idx].

The permuter sees only masked rows (a_i is unknown to it), party i only b_i - a_i[idx] (b_i is unknown to
it), the helper no data. One round, n rows per other party online, m rows per other party from the helper.

A **shuffle** is two steps by the first two compute parties, each with a fresh random permutation drawn
from its own PRG stream (the helper derives it too): each party knows one of the two, none their product.
The helper knows both; protocols that then reveal anything about the shuffled order also apply a
permutation the compute parties agree without the helper (`common_permutation`), so that nobody knows the
whole. Two rounds.
"""

from __future__ import annotations

import copy
import secrets
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import numpy as np

from mpc.prg import PRG
from mpc.runtime import Op
from protocols.primitives.core import Engine, Env, Material, Spec
from protocols.primitives.shared import SharedArray, Shares, placeholder, split

HELPER_STEP = 0xE1  # the helper's message to each non-permuter (its new share)
KEY_STEP = 0xE2  # a key the compute parties agree without the helper

IndexSource = Callable[[], Awaitable[np.ndarray]]
"""Gives idx on the permuter and the helper (never called elsewhere)."""


def require_two_parties(ctx: Engine, what: str) -> None:
    if len(ctx.compute_parties) < 2:
        raise ValueError(f"{what} needs at least two compute parties")


async def own_draws(ctx: Engine, op: Op, spec: Spec) -> Env | Material:
    """The `own` items of a spec: on a compute party its own draws (no traffic), on the helper every
    party's (env[name][i] for the i-th compute party). Own draws are derived from the seeds the helper
    shares with each compute party, so both sides have them without sending anything."""
    if ctx.is_dealer:
        evaluate = getattr(ctx.provider, "evaluate", None)
        if evaluate is None:
            raise TypeError("this dealer cannot derive the parties' own draws (a seeded provider can)")
        env: Env = evaluate(op, spec)[0]
        return env
    return await ctx.provider.fetch(op, spec)


def random_permutation(words: np.ndarray) -> np.ndarray:
    """A uniform permutation from uniform 64-bit words (ties have probability n^2 / 2^65)."""
    return np.argsort(words, kind="stable")


def permute_rows(ctx: Engine, xs: Sequence[SharedArray], permuter: str, index: IndexSource, m: int, *,
                 op: Op | None = None, label: str = "permute") -> list[SharedArray]:
    """Rows `idx` of every array in xs (their first axis, n rows), by one step (module doc). Collective;
    `op` is taken now unless given (a protocol calling this from a task passes a sub-op of its own)."""
    if not xs:
        return []
    n = xs[0].shape[0] if xs[0].ndim else 0
    if any(not x.ndim or x.shape[0] != n for x in xs):
        raise ValueError(f"{label}: every array needs the same number of rows ({n})")
    op = op or ctx.party.new_op(label)
    parties = ctx.compute_parties
    others = [p for p in parties if p != permuter]
    widths = [int(np.prod(x.shape[1:], dtype=np.int64)) for x in xs]
    width = sum(widths)
    spec = Spec().own("a", (n, width)).own("b", (len(others), m, width))
    outputs = [((m, *x.shape[1:]), x.frac_bits) for x in xs]

    if ctx.is_dealer:
        async def deal() -> None:
            env = await own_draws(ctx, op, spec)
            assert isinstance(env, dict)
            idx = await index()
            b = env["b"][parties.index(permuter)]
            for j, name in enumerate(others):
                a = env["a"][parties.index(name)]
                ctx.party.send(name, op, np.subtract(b[j], a[idx], dtype=np.uint64), step=HELPER_STEP)
        ctx.deal(deal())
        return [placeholder(ctx, shape, frac) for shape, frac in outputs]

    material = ctx.deal(own_draws(ctx, op, spec))
    helper = ctx.party.helper
    assert helper is not None

    async def run() -> tuple[Shares, ...]:
        shares = [await x.resolve() for x in xs]
        depth = max(s.depth for s in shares)
        mine = np.concatenate([np.asarray(s.share, dtype=np.uint64).reshape(n, w)
                               for s, w in zip(shares, widths, strict=True)], axis=1)
        mat = await material
        assert isinstance(mat, Material)
        await ctx.online_gate()
        if ctx.name == permuter:
            idx = await index()
            total = mine.copy()
            for name in others:
                msg = await ctx.party.recv(name, op, dtype=np.uint64, shape=(n, width))
                total += msg.array
                depth = max(depth, msg.depth)
            out = total[idx]
            out -= mat.b.sum(axis=0, dtype=np.uint64)
        else:
            ctx.party.send(permuter, op, np.add(mine, mat.a, dtype=np.uint64), depth=depth)
            out = (await ctx.party.recv(helper, op, step=HELPER_STEP, dtype=np.uint64, shape=(m, width))).array
        parts, at = [], 0
        for (shape, _), w in zip(outputs, widths, strict=True):
            parts.append(Shares(np.ascontiguousarray(out[:, at:at + w]).reshape(shape), depth))
            at += w
        return tuple(parts)

    return split(ctx, ctx.spawn(run()), outputs)


class Shuffle:
    """A secret permutation of n rows: `apply` shuffles shared rows by it, `invert` undoes it. Each of the
    first two compute parties knows one of its two factors (drawn from its PRG stream under `op`)."""

    def __init__(self, ctx: Engine, n: int, op: Op | None = None):
        require_two_parties(ctx, "a shuffle")
        self.ctx = ctx
        self.n = n
        self.op = op or ctx.party.new_op("shuffle")
        self.permuters = list(ctx.compute_parties[:2])
        self._factors: dict[str, np.ndarray] = {}

    def _factor(self, permuter: str) -> IndexSource:
        """The permutation `permuter` applies: argsort of its own draw under this shuffle's op."""
        spec = Spec().own("p", (self.n,))
        ctx = self.ctx
        position = ctx.compute_parties.index(permuter)

        async def index() -> np.ndarray:
            if permuter not in self._factors:
                draws = await own_draws(ctx, self.op, spec)
                words = draws["p"][position] if isinstance(draws, dict) else draws.p
                self._factors[permuter] = random_permutation(words)
            return self._factors[permuter]

        return index

    def apply(self, xs: Sequence[SharedArray], ops: Sequence[Op] | None = None) -> list[SharedArray]:
        """xs with their rows shuffled (each by the same permutation). Two rounds."""
        ops = list(ops) if ops is not None else [self.ctx.party.new_op("shuffle-step") for _ in self.permuters]
        out = list(xs)
        for permuter, op in zip(self.permuters, ops, strict=True):
            out = permute_rows(self.ctx, out, permuter, self._factor(permuter), self.n, op=op, label="shuffle")
        return out

    def invert(self, xs: Sequence[SharedArray], ops: Sequence[Op] | None = None) -> list[SharedArray]:
        """The rows put back where they came from: apply's inverse. Two rounds."""
        ops = list(ops) if ops is not None else [self.ctx.party.new_op("unshuffle-step") for _ in self.permuters]
        out = list(xs)
        for permuter, op in zip(reversed(self.permuters), ops, strict=True):
            factor = self._factor(permuter)

            async def inverse(factor: IndexSource = factor) -> np.ndarray:
                return np.argsort(await factor(), kind="stable")

            out = permute_rows(self.ctx, out, permuter, inverse, self.n, op=op, label="unshuffle")
        return out


def shuffle(ctx: Engine, xs: Sequence[SharedArray]) -> list[SharedArray]:
    """xs (same number of rows) with their rows shuffled by one fresh secret permutation. Two rounds."""
    if not xs:
        return []
    return Shuffle(ctx, xs[0].shape[0]).apply(xs)


# -- what the compute parties agree without the helper -------------------------------------------------

async def common_key(ctx: Engine, op: Op) -> bytes | None:
    """16 fresh bytes the compute parties share and the helper never sees (None on the helper): the first
    compute party draws them and sends them over its encrypted link to each other compute party."""
    if ctx.is_dealer:
        return None
    first = ctx.compute_parties[0]
    if ctx.name == first:
        key = secrets.token_bytes(16)
        for peer in ctx.compute_parties[1:]:
            ctx.party.send(peer, op, np.frombuffer(key, dtype=np.uint8), step=KEY_STEP)
        return key
    msg = await ctx.party.recv(first, op, step=KEY_STEP, dtype=np.uint8, shape=(16,))
    return msg.array.tobytes()


def common_permutation(key: bytes, n: int, op: Op) -> np.ndarray:
    """A permutation of n from a key the compute parties share (same on each, unknown to the helper)."""
    return random_permutation(PRG(key).ring((n,), op.id, 1))


class _ScopedParty:
    """A party whose new ops are deterministic children of one op: a protocol whose later steps depend
    on values it reveals (a sort) issues them from a task, after the program has moved on; numbering them
    under the protocol's own op keeps every party's message keys equal whatever the program does meanwhile."""

    def __init__(self, party: Any, base: Op):
        self._party = party
        self._base = base
        self._count = 0

    def new_op(self, label: str) -> Op:
        self._count += 1
        return self._base.child(self._count, label)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._party, name)


def scoped(ctx: Engine, base: Op) -> Engine:
    """A view of ctx (same tasks, dealer and failure signal) whose ops are numbered under `base`."""
    view = copy.copy(ctx)
    view.party = _ScopedParty(ctx.party, base)  # type: ignore[assignment]
    return view


def rebind(ctx: Engine, x: SharedArray) -> SharedArray:
    """x as an array of ctx (not of a scoped view), so later operations take the program's op ids."""
    out = SharedArray(ctx, x.shape, x.frac_bits, x._fut)
    out.columns = x.columns
    return out

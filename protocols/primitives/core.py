"""The protocol skeleton: how every secure operation declares its randomness and runs (docs/ARCHITECTURE.md).

A protocol family is one module holding both halves of each operation side by side:

- its **material spec** (`Spec`): the correlated randomness one call consumes, as named arrays. `random`
  arrays are uniform values each compute party draws its share of from its own PRG stream; `shared`
  arrays are values the dealer derives from earlier ones and secret-shares (the other parties draw their
  shares, the last party receives a correction); `own` arrays are each party's private draw (not shares
  of anything, e.g. a DCF root seed); `public` arrays the dealer computes and sends whole to every compute
  party (e.g. DCF correction words). Only the dealer ever evaluates the spec's functions.
- its **online body**: `async def body(io, mat, *shares) -> array | tuple of arrays`, the compute
  parties' part, on plain numpy arrays: this party's shares of the operands and its material `mat`.
  `io.open(...)` is the one exchange most bodies need.

`run_protocol` does the rest once for every protocol: takes the op id (in program order, before any
await), deals the material (helper) or fetches it (compute parties) ahead of need, resolves the operands,
waits for the online gate, runs the body, and keeps the round count (depth). The helper never enters a
body: it returns shape-only placeholders.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, TypeVar

import numpy as np

from mpc import profile
from mpc.runtime import Op, Party
from mpc.window import Window
from protocols.primitives.shared import Ops, SharedArray, Shares, placeholder, split

T = TypeVar("T")

Sharing = Literal["add", "xor"]
Kind = Literal["random", "shared", "own", "public"]
Env = dict[str, Any]
"""The dealer's view while it evaluates a spec: the value of every random/shared array, and for every
`own` array the list of each compute party's draw (in the topology's order). env[STOP]() raises once the
run has stopped: long work (DCF key generation) calls it between chunks. env[WORKERS], when present (the
helper party with worker processes), is the party's mpc.workers.WorkerPool: long work may split itself
across it; absent (the in-process test dealer, the in-memory transport, dealer_workers: 1), the work runs
where it is called."""
STOP = "__stop__"
WORKERS = "__workers__"


@dataclass(frozen=True)
class Item:
    name: str
    shape: tuple[int, ...]
    kind: Kind
    sharing: Sharing = "add"
    fn: Callable[[Env], np.ndarray] | None = None

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))


@dataclass
class Spec:
    """The correlated randomness one call of a protocol consumes. Build with the chained methods;
    `heavy=True` makes the dealer evaluate it off the event loop (e.g. DCF key generation)."""

    items: list[Item] = field(default_factory=list)
    heavy: bool = False
    elementwise: bool = False
    """Every item random or shared, all of one number of elements, and every fn element by element (it
    gives the same on any slice of its inputs): the dealer may compute and send it in pieces, so that the
    transfer of one overlaps the computation of the next (Beaver triples, truncation pairs)."""

    def random(self, name: str, shape: tuple[int, ...], sharing: Sharing = "add") -> Spec:
        """A uniform value; every compute party draws its share from its own PRG stream (no traffic)."""
        return self._add(Item(name, tuple(shape), "random", sharing))

    def shared(self, name: str, shape: tuple[int, ...], fn: Callable[[Env], np.ndarray],
               sharing: Sharing = "add") -> Spec:
        """fn(env), secret-shared: the last compute party receives its share from the dealer."""
        return self._add(Item(name, tuple(shape), "shared", sharing, fn))

    def own(self, name: str, shape: tuple[int, ...]) -> Spec:
        """Each compute party's own PRG draw (the dealer sees every party's, as env[name][i])."""
        return self._add(Item(name, tuple(shape), "own"))

    def public(self, name: str, shape: tuple[int, ...], fn: Callable[[Env], np.ndarray]) -> Spec:
        """fn(env), sent whole to every compute party."""
        return self._add(Item(name, tuple(shape), "public", "add", fn))

    def _add(self, item: Item) -> Spec:
        if any(i.name == item.name for i in self.items):
            raise ValueError(f"material item {item.name!r} declared twice")
        if self.elementwise and (item.kind not in ("random", "shared")
                                 or (self.items and item.size != self.items[0].size)):
            raise ValueError(f"material item {item.name!r}: an elementwise spec holds random and shared items "
                             "of one size")
        self.items.append(item)
        return self

    def of_kind(self, *kinds: Kind) -> list[Item]:
        return [i for i in self.items if i.kind in kinds]

    @property
    def nbytes(self) -> int:
        """The material one compute party holds for one call: every item, derived or received (8 bytes an
        element). What the dealer window (mpc/window.py) counts."""
        return 8 * sum(i.size for i in self.items)


class Material:
    """One compute party's material for one call: `mat.name` is its share (random/shared), its own draw
    (own) or the whole array (public)."""

    def __init__(self, arrays: dict[str, np.ndarray]):
        self._arrays = arrays

    def __getattr__(self, name: str) -> np.ndarray:
        try:
            return self._arrays[name]
        except KeyError:
            raise AttributeError(f"no material item {name!r}") from None

    def __getitem__(self, name: str) -> np.ndarray:
        return self._arrays[name]


class RandomnessProvider(Protocol):
    """Who deals: the helper party, the in-process test dealer, later e.g. material dealt to files."""

    async def fetch(self, op: Op, spec: Spec) -> Material:
        """This compute party's material for `op` (derived from its seed, the rest received)."""
        ...

    async def deal(self, op: Op, spec: Spec) -> None:
        """The dealer's side: evaluate the spec and send what cannot be derived."""
        ...


class Engine(Ops, Protocol):
    """What protocols need from the party's context (protocols.interface.context.Context provides it)."""

    party: Party
    provider: RandomnessProvider
    backend: Backend  # how operations run: securely (SECURE) or on cleartext (protocols/interface/emulation.py)
    truncation: str  # the default truncation method (dealer | local)
    comparison: str  # the default comparison method (auto | dcf | compact | bits)
    window: Window  # the dealer window (mpc/window.py)

    def deal(self, coro: Any) -> Any: ...
    async def online_gate(self) -> None: ...


class Exchange:
    """A body's link to the other compute parties for one op: opening values, with the depth kept."""

    def __init__(self, ctx: Engine, op: Op, depth: int):
        self._ctx = ctx
        self.op = op
        self.depth = depth
        self.name = ctx.name
        self.parties = ctx.compute_parties
        self.index = self.parties.index(self.name)
        self.first = self.index == 0

    async def open(self, share: np.ndarray, *, step: int = 0, xor: bool = False) -> np.ndarray:
        """Every compute party sends its share to every other and adds (or XORs) what it receives: the
        opened value. One round: the depth becomes one more than the deepest input."""
        party = self._ctx.party
        share = np.require(share, dtype=np.uint64, requirements="C")  # not ascontiguousarray: it makes 0-d 1-d
        for peer in self.parties:
            if peer != self.name:
                party.send(peer, self.op, share, step=step, depth=self.depth)
        total: np.ndarray | None = None  # the share is being sent: never written to; the first sum is a new array
        depth = self.depth
        for peer in self.parties:
            if peer == self.name:
                continue
            msg = await party.recv(peer, self.op, step=step, dtype=np.uint64, shape=share.shape)
            combine = np.bitwise_xor if xor else np.add
            if total is None:
                total = combine(share, msg.array, out=np.empty_like(share))
            else:
                combine(total, msg.array, out=total)
            depth = max(depth, msg.depth)
        self.depth = depth
        return share.copy() if total is None else total


Body = Callable[..., Awaitable[np.ndarray | tuple[np.ndarray, ...]]]
Plain = Callable[..., np.ndarray | tuple[np.ndarray, ...]]


@dataclass(frozen=True)
class Cost:
    """A protocol's online cost, for emulation's prediction (the secure run measures its own): rounds,
    and per compute party the messages and payload bytes it sends to each other compute party."""

    rounds: int
    messages: int
    payload_bytes: int


Outputs = Sequence[tuple[tuple[int, ...], int]]


class Backend(Protocol):
    """How a program's operations run. `SECURE` deals or fetches material and runs each protocol's body on
    shares; emulation (protocols/interface/emulation.py) runs each protocol's cleartext meaning `plain` and
    counts its `cost`. Protocols never ask which one runs them: they call `run_protocol`, and hand range
    checks that only cleartext can make to `check_later`."""

    def run(self, ctx: Engine, label: str, spec: Spec | None, body: Body, operands: Sequence[SharedArray],
            outputs: Outputs, plain: Plain | None, cost: Cost | None) -> list[SharedArray]: ...

    def check_later(self, ctx: Engine, label: str, arrays: Sequence[SharedArray],
                    check: Callable[..., None]) -> None:
        """Run `check(*values)` on the arrays' cleartext values once known (the secure run knows none)."""
        ...

    def report(self, ctx: Engine, label: str, message: str) -> None:
        """A value the secure run would get wrong (called from `plain` meanings and checks)."""
        ...

    def uniform(self, shape: tuple[int, ...]) -> np.ndarray:
        """Uniform draws in [0, 1) for a `plain` meaning's randomised rounding, the same on every party."""
        ...


class SecureBackend:
    """Operations on shares with material from the dealer: the real run."""

    def run(self, ctx: Engine, label: str, spec: Spec | None, body: Body, operands: Sequence[SharedArray],
            outputs: Outputs, plain: Plain | None, cost: Cost | None) -> list[SharedArray]:
        op = ctx.party.new_op(label)
        window = ctx.window
        # the op's place in the dealer window (mpc/window.py), taken now, in program order, on every party
        ticket = window.ticket(spec.nbytes) if spec is not None and spec.items else -1
        if ctx.is_dealer:
            if spec is not None and spec.items:
                ctx.deal(_windowed(window, ticket, ctx.provider.deal(op, spec)))
            return [placeholder(ctx, shape, frac) for shape, frac in outputs]
        material = ctx.deal(_windowed(window, ticket, ctx.provider.fetch(op, spec))) \
            if spec is not None and spec.items else None

        async def run() -> tuple[Shares, ...]:
            shares = [await x.resolve() for x in operands]
            mat = await material if material is not None else Material({})
            await ctx.online_gate()
            io = Exchange(ctx, op, max((s.depth for s in shares), default=0))
            work = body(io, mat, *(s.share for s in shares))
            result = await (profile.timed(work) if profile.PROFILE.enabled else work)
            del mat, work
            if material is not None:
                window.consumed(ticket)  # its material is no longer needed: the window moves on
            arrays = result if isinstance(result, tuple) else (result,)
            if len(arrays) != len(outputs):
                raise AssertionError(f"{label}: the body gave {len(arrays)} results, expected {len(outputs)}")
            return tuple(Shares(_shaped(a, shape), io.depth) for a, (shape, _) in zip(arrays, outputs, strict=True))

        return split(ctx, ctx.spawn(run()), outputs)

    def check_later(self, ctx: Engine, label: str, arrays: Sequence[SharedArray],
                    check: Callable[..., None]) -> None:
        return None  # no party sees a value: nothing to check

    def report(self, ctx: Engine, label: str, message: str) -> None:
        raise AssertionError(f"{label}: a cleartext check ran in a secure run")

    def uniform(self, shape: tuple[int, ...]) -> np.ndarray:
        raise AssertionError("cleartext rounding ran in a secure run")


SECURE = SecureBackend()


async def _windowed(window: Window, ticket: int, work: Coroutine[Any, Any, T]) -> T:
    """Deal or fetch an op's material once the dealer window lets its ticket through."""
    try:
        await window.acquire(ticket)
        result = await work
    finally:
        work.close()  # never started if the wait failed: no "never awaited" warning
    window.done_dealing(ticket)
    return result


def run_protocol(ctx: Engine, label: str, spec: Spec | None, body: Body, operands: Sequence[SharedArray],
                 outputs: Outputs, *, plain: Plain | None = None, cost: Cost | None = None) -> list[SharedArray]:
    """Run one call of a protocol: `outputs` gives each result's (shape, frac). Collective.

    The op id is taken now, so the program's call order fixes every message key; material is dealt or
    fetched at once (ahead of the online phase); the body runs when the operands are ready and the
    online gate is open. Returns the results as shared arrays at once (placeholders on the helper).
    `plain(*values)` is the protocol's meaning on cleartext ring values and `cost` its online cost: the
    context's back end decides which runs (protocols/interface/emulation.py runs those instead)."""
    return ctx.backend.run(ctx, label, spec, body, operands, outputs, plain, cost)


def _shaped(array: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    out = np.asarray(array, dtype=np.uint64)
    if out.shape == shape:
        return out
    if out.size == int(np.prod(shape, dtype=np.int64)):
        return out.reshape(shape)
    return np.broadcast_to(out, shape)

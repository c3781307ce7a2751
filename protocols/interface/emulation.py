"""Emulation: run every compute party's side of a secure program in one process, on cleartext.

The secure run is oblivious: no party ever sees a value, so none can notice that a product left the
fixed-point range or that a comparison's operands were too far apart; it just gives a wrong answer.
Emulation runs the same program with the same encodings (fixed point at `frac_bits`, integers mod 2^64,
the same ring wrap-around and the same randomised truncation) but with every value in the clear, so it
can check each one. Every protocol gives its meaning on cleartext ring values (`plain`) and its online
cost (`Cost`) to `run_protocol` (protocols/primitives/core.py); emulation runs those instead of dealing and
exchanging: no sockets, no dealer, no helper process. It reports every value that leaves the range where
the secure computation is correct, with the operation and the line of the user's program, and predicts
the online rounds and bytes the secure run will take.

Each emulated party holds the whole value where a real one holds a share, so the local operations
(addition, indexing, reshaping) run unchanged; public constants are added by every emulated party.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import json
import linecache
import os
import sys
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np

from mpc.config import Topology
from mpc.runtime import Op, Party, ProgramExit, no_exit
from mpc.stats import Stats
from mpc.transport.frames import HEADER_SIZE
from protocols.interface.context import Context
from protocols.interface.operations import OPERATIONS
from protocols.interface.registry import Registry
from protocols.interface.sharing import Declared, Prepared, decode
from protocols.primitives.core import Body, Cost, Engine, Outputs, Plain, Spec
from protocols.primitives.shared import SharedArray, Shares, placeholder, resolved, split

T = TypeVar("T")
_PACKAGES = tuple(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))) + os.sep + p + os.sep
                  for p in ("protocols", "mpc", "parties"))
_WHERE: contextvars.ContextVar[str | None] = contextvars.ContextVar("emulation_where", default=None)


@dataclass(frozen=True)
class Finding:
    """A value the secure run would get wrong: the operation, the user's line and what is wrong."""

    op: str
    where: str
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.op}: {self.message}"


@dataclass
class EmulationReport:
    """What emulation found and predicts, and each compute party's result."""

    results: dict[str, Any]
    findings: list[Finding]
    rounds: int
    online_bytes_per_party: dict[str, int]
    messages_per_party: dict[str, int]
    ops: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.findings


class Emulator:
    """The state the emulated parties of one run share: inputs in flight, findings, costs, randomness."""

    def __init__(self, topology: Topology, seed: int = 0):
        self.topology = topology
        self.compute = [p.name for p in topology.compute_parties]
        self.findings: list[Finding] = []
        self._seen: set[tuple[str, str, str]] = set()
        self._inputs: dict[int, asyncio.Future[tuple[np.ndarray, int, tuple[str, ...] | None]]] = {}
        self.seed = seed
        self.bytes: dict[str, int] = dict.fromkeys(self.compute, 0)
        self.messages: dict[str, int] = dict.fromkeys(self.compute, 0)
        self.depth: dict[str, int] = dict.fromkeys(self.compute, 0)
        self.ops: dict[str, int] = {}
        self._calls: dict[int, tuple[str, str, str]] = {}

    # -- where in the user's program --------------------------------------------------------------
    def caller(self) -> str:
        """The innermost frame outside this project's packages and asyncio: the user's line."""
        frame = sys._getframe(1)
        while frame is not None:
            name = os.path.abspath(frame.f_code.co_filename)
            if not name.startswith(_PACKAGES) and f"{os.sep}asyncio{os.sep}" not in name:
                line = linecache.getline(name, frame.f_lineno).strip()
                return f"{frame.f_code.co_filename}:{frame.f_lineno}" + (f" ({line})" if line else "")
            frame = frame.f_back  # type: ignore[assignment]
        return "<unknown>"

    @contextlib.contextmanager
    def at(self, where: str) -> Iterator[None]:
        token = _WHERE.set(where)
        try:
            yield
        finally:
            _WHERE.reset(token)

    def report(self, ctx: Any, op: str, message: str) -> None:
        """A finding, once per operation and line (every emulated party computes the same values)."""
        where = _WHERE.get() or self.caller()
        key = (op, where, message)
        if key not in self._seen:
            self._seen.add(key)
            self.findings.append(Finding(op, where, message))

    def uniform(self, shape: tuple[int, ...]) -> np.ndarray:
        """Draws for randomised truncation, identical on every emulated party (keyed by op and party's
        call order: every party issues the same operations in the same order)."""
        return np.random.default_rng([self.seed, _CURRENT_OP.get()]).random(shape)  # the same on every party

    # -- inputs -----------------------------------------------------------------------------------
    def input_slot(self, op_id: int) -> asyncio.Future[tuple[np.ndarray, int, tuple[str, ...] | None]]:
        if op_id not in self._inputs:
            self._inputs[op_id] = asyncio.get_running_loop().create_future()
        return self._inputs[op_id]

    # -- protocols --------------------------------------------------------------------------------
    def run_plain(self, ctx: Any, label: str, operands: Sequence[SharedArray],
                  outputs: Sequence[tuple[tuple[int, ...], int]], plain: Plain | None,
                  cost: Cost | None) -> list[SharedArray]:
        """A protocol's call, emulated: its plain meaning on the operands' values, its cost counted."""
        if plain is None or cost is None:
            raise NotImplementedError(f"{label}: this protocol gives no cleartext meaning, so it cannot be emulated")
        op_id = ctx.party.new_op(label).id
        where = self.caller()
        name = ctx.name
        self.agree(name, op_id, f"{label} on shapes {', '.join(str(x.shape) for x in operands) or '-'}", where)
        if ctx.is_dealer:  # the helper only deals: its calls must agree, it computes nothing
            return [placeholder(ctx, shape, frac) for shape, frac in outputs]
        if name == self.compute[0]:
            self.ops[label] = self.ops.get(label, 0) + 1
        peers = len(self.compute) - 1
        self.messages[name] += cost.messages * peers
        self.bytes[name] += (cost.payload_bytes + cost.messages * HEADER_SIZE) * peers

        async def go() -> tuple[Shares, ...]:
            shares = [await x.resolve() for x in operands]
            depth = max((s.depth for s in shares), default=0) + cost.rounds
            token = _CURRENT_OP.set(op_id)
            try:
                with self.at(where), np.errstate(over="ignore"):
                    result = plain(*(s.share for s in shares))
            finally:
                _CURRENT_OP.reset(token)
            arrays = result if isinstance(result, tuple) else (result,)
            self.depth[name] = max(self.depth[name], depth)
            return tuple(Shares(np.asarray(a, dtype=np.uint64).reshape(shape), depth)
                         for a, (shape, _) in zip(arrays, outputs, strict=True))

        return split(ctx, ctx.spawn(go()), outputs)

    def agree(self, name: str, op_id: int, call: str, where: str) -> None:
        """Every party must issue the same operations in the same order (SPMD): the secure run would stop
        with a shape or message mismatch. Say so here, naming both calls."""
        first = self._calls.setdefault(op_id, (name, call, where))
        if first[1] != call:
            raise ValueError(f"the parties' programs diverge at operation {op_id}: {first[0]} calls {first[1]} "
                             f"({first[2]}), {name} calls {call} ({where}); every party must run the same "
                             "operations in the same order")

    def check_later(self, ctx: Any, label: str, arrays: Sequence[SharedArray],
                    check: Callable[..., None]) -> None:
        """Run `check(*values)` once the arrays are known, reporting against the current user line."""
        where = self.caller()
        if ctx.is_dealer:
            return

        async def go() -> None:
            values = [(await a.resolve()).share for a in arrays]
            with self.at(where), np.errstate(over="ignore"):
                check(*values)

        ctx.spawn(go())


_CURRENT_OP: contextvars.ContextVar[int] = contextvars.ContextVar("emulation_op", default=0)


class EmulatedParty:
    """One party's back end and sharing in emulation: whole values instead of shares, the protocols'
    cleartext meanings instead of their bodies, the emulator instead of links and a dealer. The helper's
    runs too, on shapes only (as in the secure run), so that a program whose calls differ on the helper is
    named here rather than by the secure run."""

    def __init__(self, emulator: Emulator, name: str):
        self.emulator = emulator
        self.name = name

    # -- Backend ------------------------------------------------------------------------------------
    def run(self, ctx: Engine, label: str, spec: Spec | None, body: Body, operands: Sequence[SharedArray],
            outputs: Outputs, plain: Plain | None, cost: Cost | None) -> list[SharedArray]:
        return self.emulator.run_plain(ctx, label, operands, outputs, plain, cost)

    def check_later(self, ctx: Engine, label: str, arrays: Sequence[SharedArray],
                    check: Callable[..., None]) -> None:
        self.emulator.check_later(ctx, label, arrays, check)

    def report(self, ctx: Engine, label: str, message: str) -> None:
        self.emulator.report(ctx, label, message)

    def uniform(self, shape: tuple[int, ...]) -> np.ndarray:
        return self.emulator.uniform(shape)

    # -- Sharing ------------------------------------------------------------------------------------
    def holds_public(self, ctx: Engine) -> bool:
        return True  # every emulated party holds the whole value

    def input(self, ctx: Engine, owner: str, op: Op, prepared: Prepared | None, declared: Declared | None) -> Any:
        emulator, name = self.emulator, self.name
        emulator.agree(name, op.id, f"input from {owner}", emulator.caller())
        slot = emulator.input_slot(op.id)
        if prepared is not None:
            slot.set_result((prepared.encoded, prepared.frac, prepared.columns))

        async def run() -> SharedArray:
            encoded, frac, columns = await slot
            if ctx.is_dealer:
                return placeholder(ctx, encoded.shape, frac)
            out = resolved(ctx, encoded.shape, frac, encoded.copy(), 1)
            out.columns = columns
            emulator.depth[name] = max(emulator.depth[name], 1)
            peers = len(ctx.compute_parties) - 1
            if name == owner and declared is None:  # to each other compute party: metadata, names, share
                sent = [8 * (3 + encoded.ndim), encoded.nbytes]
                if columns is not None:
                    sent.append(len(json.dumps(list(columns)).encode()))
                emulator.bytes[name] += sum(b + HEADER_SIZE for b in sent) * peers
                emulator.messages[name] += len(sent) * peers
            elif name == owner:
                emulator.bytes[name] += (encoded.nbytes + HEADER_SIZE) * peers
                emulator.messages[name] += peers
            return out

        if declared is not None and ctx.is_dealer:
            return placeholder(ctx, declared[0], ctx.frac_bits if declared[1] else 0)
        if declared is not None:  # as the secure input: a shared array at once, its value when the owner's arrives
            async def value() -> Shares:
                return await (await run()).resolve()

            return SharedArray(ctx, declared[0], ctx.frac_bits if declared[1] else 0, ctx.spawn(value()))
        return ctx.spawn(run())

    def reveal(self, ctx: Engine, x: SharedArray, recipients: list[str], op: Op) -> asyncio.Task[np.ndarray | None]:
        emulator, name = self.emulator, self.name
        emulator.agree(name, op.id, f"reveal of shape {x.shape} to {recipients}", emulator.caller())
        if ctx.is_dealer:
            return ctx.spawn(_nothing())
        others = [r for r in recipients if r != name]
        emulator.bytes[name] += (8 * x.size + HEADER_SIZE) * len(others)
        emulator.messages[name] += len(others)

        async def run() -> np.ndarray | None:
            shares = await x.resolve()
            emulator.depth[name] = max(emulator.depth[name], shares.depth + 1)
            return decode(shares.share, x.frac_bits) if name in recipients else None

        return ctx.spawn(run())

    async def barrier(self, ctx: Engine, op: Op) -> None:
        return None  # one process: nothing to wait for


async def _nothing() -> None:
    """What the helper gets from a reveal."""
    return None


class _NoTransport:
    """Emulation sends nothing: inputs and reveals pass through the emulator."""

    session = bytes(16)
    failure = None  # nothing can fail on a link that does not exist


class _NoDealer:
    """Emulation deals nothing: every protocol runs its cleartext meaning."""

    async def fetch(self, op: Any, spec: Any) -> Any:
        raise AssertionError("emulation fetches no material")

    async def deal(self, op: Any, spec: Any) -> None:
        raise AssertionError("emulation deals no material")


def emulated_context(topology: Topology, name: str, emulator: Emulator,
                     operations: Registry = OPERATIONS) -> Context:
    """A party's Context in emulation: the same Context, with the emulated back end and sharing."""
    party = Party(topology, name, _NoTransport(), Stats())  # type: ignore[arg-type]
    backend = EmulatedParty(emulator, name)
    return Context(party, _NoDealer(), backend=backend, sharing=backend, operations=operations)


async def emulate_async(topology: Topology, program: Callable[[Any], Awaitable[T]], *,
                        seed: int = 0, operations: Registry = OPERATIONS) -> EmulationReport:
    """Run `program(ctx)` as every compute party of `topology` on cleartext, in this event loop."""
    emulator = Emulator(topology, seed)
    names = list(emulator.compute)
    everyone = names + ([topology.helper.name] if topology.helper is not None else [])
    contexts = [emulated_context(topology, name, emulator, operations) for name in everyone]
    results = await asyncio.gather(*(_run_one(ctx, program) for ctx in contexts))
    return EmulationReport(dict(zip(names, results[:len(names)], strict=True)), emulator.findings,
                           max(emulator.depth.values(), default=0), emulator.bytes, emulator.messages,
                           emulator.ops)


async def _run_one(ctx: Any, program: Callable[[Any], Awaitable[T]]) -> T:
    try:
        result = await no_exit(program(ctx))  # escaping a task, it would end the event loop: emulate exited 0
    except ProgramExit as exc:
        raise ProgramExit(f"{ctx.name}: {exc}") from None
    await ctx.finish()
    return result


def emulate(topology: Topology, program: Callable[[Any], Awaitable[T]], *, seed: int = 0,
            operations: Registry = OPERATIONS) -> EmulationReport:
    """Emulate a secure program (see the module doc): its results, findings and predicted costs."""
    return asyncio.run(emulate_async(topology, program, seed=seed, operations=operations))

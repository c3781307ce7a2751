"""The secure-computation context a program receives: inputs, reveals, and operations on shared values.

Every party runs the same program with its own Context (SPMD). On a compute party operations compute
shares; on the helper the same calls deal the correlated randomness each operation consumes, in
program order and shape, ahead of need (docs/ARCHITECTURE.md, "the life of a run").

Sharing (`input`) and opening (`reveal`) live here; every other operation is a protocol family's module
(protocols/primitives/: arithmetic.py, truncation.py, comparison.py, ...), run by the skeleton of
protocols/primitives/core.py.
This is the one module that imports them all: nothing in protocols/ imports it back. Op ids are taken
when an operation is called, before any await, so the call order of the program (not the event loop's
scheduling) fixes every message key.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any, TypeVar, overload

import numpy as np

from mpc.config import Topology
from mpc.ring import encode_fixed, ring
from mpc.runtime import Party, PartyOutcome, program_task, run_local_async
from mpc.window import DealerWindow, MaterialWindow, Unbounded, Window, window_bytes
from protocols.interface import analytics, dispatch, streaming
from protocols.interface.functions import public_tables
from protocols.interface.operations import OPERATIONS
from protocols.interface.registry import Registry, bound
from protocols.interface.sharing import Prepared, SecureSharing, Sharing, check_input_size
from protocols.primitives import psi as psi_protocol
from protocols.primitives import psi_ecdh
from protocols.primitives.core import SECURE, Backend, RandomnessProvider
from protocols.primitives.material import HelperProvider, LocalTestProvider
from protocols.primitives.shared import (
    SharedArray,
    concatenate,
    constant,
    derive,
    public_ring,
    rescale,
    stack,
)

log = logging.getLogger("mpc.protocols")

T = TypeVar("T")


class Context:
    """One party's handle on a secure computation. Create with `await Context.create(party)`."""

    def __init__(self, party: Party, provider: RandomnessProvider, truncation_method: str | None = None, *,
                 backend: Backend = SECURE, sharing: Sharing | None = None, operations: Registry = OPERATIONS,
                 window: Window | None = None):
        self.operations = operations
        self.party = party
        self.provider = provider
        # dealer material at most dealer_window_mb ahead of its consumption (mpc/window.py)
        self.window: Window = window or Unbounded()
        if isinstance(provider, HelperProvider | LocalTestProvider):
            provider.window = self.window
        self.backend = backend
        self.sharing: Sharing = sharing or SecureSharing()
        self.truncation: str = truncation_method or party.topology.truncation
        self.comparison: str = party.topology.comparison
        self._compute = list(party.compute_parties)
        self._tasks: set[asyncio.Future[Any]] = set()
        self._first_error: BaseException | None = None
        # set to the first error of an operation's task: the program may be waiting on a peer that waits on
        # this very operation, so the failure must stop it now rather than when it awaits the result
        self.failed: asyncio.Future[BaseException] = asyncio.get_running_loop().create_future()
        self._dealing: set[asyncio.Future[Any]] = set()
        self._gate: asyncio.Future[None] | None = None

    @classmethod
    async def create(cls, party: Party, *, dealer: str = "helper", operations: Registry = OPERATIONS) -> Context:
        """Set up the dealer: the helper party deals (the only dealer outside tests; the insecure in-process
        one is protocols.interface.testing's, named so)."""
        _check_dealer(dealer)
        op = party.new_op("setup")
        provider: RandomnessProvider = await HelperProvider.setup(party, op)
        limit = window_bytes(party.topology.dealer_window_mb)
        window: Window = DealerWindow(party, limit) if party.is_helper else MaterialWindow(party, limit, party.helper)
        return cls(party, provider, operations=operations, window=window)

    # -- identity -------------------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self.party.name

    @property
    def is_dealer(self) -> bool:
        """True on the helper: it deals randomness and holds no shares."""
        return self.party.is_helper

    @property
    def frac_bits(self) -> int:
        return self.party.frac_bits

    @property
    def compute_parties(self) -> list[str]:
        return self._compute

    @property
    def holds_public(self) -> bool:
        """Whether this party's share carries public constants (the first compute party's does; every
        emulated party holds whole values)."""
        return self.sharing.holds_public(self)

    # -- tasks and phases -----------------------------------------------------------------------
    def spawn(self, coro: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
        """Run part of an operation on the loop; `finish()` waits for all of them."""
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Future[Any]) -> None:
        # Keep the first failure for finish(); once a run has failed, the same peer error reaches many
        # pending tasks, and asyncio would print each as a "never retrieved" traceback.
        self._tasks.discard(task)
        error = None if task.cancelled() else task.exception()
        if error is not None and self._first_error is None:
            self._first_error = error
            if not self.failed.done():  # the program stops at once (run_program), whatever it awaits
                self.failed.set_result(error)

    def deal(self, coro: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
        """Fetch (compute party) or deal (helper) an operation's material, starting now."""
        task = self.spawn(coro)
        self._dealing.add(task)
        task.add_done_callback(self._dealing.discard)
        return task

    async def finish(self) -> None:
        """Wait until every operation issued has completed (the helper: every piece of material sent)."""
        try:
            while self._tasks:
                await asyncio.gather(*list(self._tasks))
        finally:
            self.window.close()
        if self._first_error is not None:
            raise self._first_error

    def hold(self) -> None:
        """Operations issued from now fetch their material but wait for `release()` to go online."""
        if self._gate is None or self._gate.done():
            self._gate = asyncio.get_running_loop().create_future()

    def release(self) -> Awaitable[None]:
        """Wait for every pending dealer material, then a barrier of all parties, then go online.

        Splits preprocessing from the online phase (for measurement). The barrier's messages carry no
        depth, so it adds no round to the values computed. Its op id is taken at the call, like every
        operation's."""
        return self._release(self.party.new_op("barrier"))

    async def dealt(self) -> None:
        """Wait until this party's pending dealer material is in hand (helper: dealt and handed to its
        transport; compute party: derived and received), as far as the dealer window lets it go ahead:
        material beyond the window comes as the online phase consumes what is in it."""
        await self.window.settled()

    async def _release(self, op: Any) -> None:
        await self.dealt()
        await self.sharing.barrier(self, op)
        if self._gate is not None and not self._gate.done():
            self._gate.set_result(None)

    async def online_gate(self) -> None:
        if self._gate is not None:
            await self._gate

    # -- sharing and opening --------------------------------------------------------------------
    @overload
    def input(self, owner: str, value: Any = None, *, shape: tuple[int, ...], fixed: bool) -> SharedArray: ...

    @overload
    def input(self, owner: str, value: Any = None, *,
              align: psi_protocol.Alignment | None = None) -> Awaitable[SharedArray]: ...

    def input(self, owner: str, value: Any = None, *, shape: tuple[int, ...] | None = None,
              fixed: bool | None = None, align: psi_protocol.Alignment | None = None) -> Any:
        """Secret-share `owner`'s array (floats as fixed point, integers mod 2^64). Collective, 1 round.

        `value` may be a numpy array or a pandas DataFrame of numeric columns (a 2-D array, integers if every
        column is, else fixed point); its column names are sent with the shape, so every party can select
        columns by name (`x["amount"]`) and label results: the names become public, as the shape is.
        Only the owner passes `value`; every other party learns only its shape and encoding. The owner
        sends each other compute party a fresh uniform share and keeps x minus their sum. Await the
        result. If every party passes `shape` and `fixed`, nobody waits for the owner's metadata: the
        result is a SharedArray at once, so operations on it can be issued (and their randomness dealt)
        before the owner's data arrives. `align=` an Alignment from `ctx.psi`: the owner's rows of the
        common ids only, in the common order (docs/analytics.md).
        """
        if align is not None:
            return psi_protocol.aligned_input(self, owner, value, align)
        if owner not in self.compute_parties:
            raise ValueError(f"input owner must be a compute party ({', '.join(self.compute_parties)}), "
                             f"not {owner!r}")
        op = self.party.new_op("input")
        if shape is not None and fixed is None:
            raise ValueError("input: pass fixed=True/False together with shape=")
        declared = None if shape is None or fixed is None else (tuple(int(d) for d in shape), bool(fixed))
        if declared is not None:  # every party checks, before anything is dealt for it
            check_input_size(self, owner, op, declared[0])
        prepared = None
        if self.name == owner:
            table, columns = _tabular(owner, value)
            # The owner's value is checked and encoded now, in the program's own call: a bad value (NaN, out of
            # the fixed-point range, not numeric) raises at the caller's line, before anything is sent.
            arr, frac, encoded = self._encode_input(owner, value, table)
            check_input_size(self, owner, op, arr.shape)
            if declared is not None and (tuple(arr.shape) != declared[0] or bool(frac) != declared[1]):
                raise ValueError(f"{owner}: input of shape {arr.shape} ({'fixed' if frac else 'integer'}) does "
                                 f"not match the declared shape {declared[0]} "
                                 f"({'fixed' if declared[1] else 'integer'})")
            prepared = Prepared(np.asarray(encoded, dtype=np.uint64), frac, columns)
        return self.sharing.input(self, owner, op, prepared, declared)

    def input_chunks(self, owner: str, reader: Any = None, rows: int | None = None) -> Any:
        """`input` for a stream of row chunks larger than memory: an async iterator of shared chunks
        (protocols/interface/streaming.py; the owner passes e.g. `csv_chunks(path, rows=65536)`)."""
        return streaming.input_chunks(self, owner, reader, rows)

    def _encode_input(self, owner: str, value: Any, table: np.ndarray | None) -> tuple[np.ndarray, int, np.ndarray]:
        """The owner's value as (array, fractional bits, ring encoding); ValueError/TypeError saying what is
        wrong with it (missing, not numeric, not finite, out of the fixed-point range)."""
        if value is None:
            raise ValueError(f"{owner}: input() needs the value on its owner (got None)")
        arr = np.asarray(value) if table is None else table
        if arr.dtype.kind not in "biuf":
            raise TypeError(f"{owner}: input: values must be numbers (integers or floats), not {arr.dtype}")
        frac = self.frac_bits if arr.dtype.kind == "f" else 0
        if frac and not np.all(np.isfinite(arr)):
            bad = np.argwhere(~np.isfinite(arr))[0]
            raise ValueError(f"{owner}: input: a value that is not finite (NaN or infinite) at index "
                             f"{tuple(int(i) for i in bad)}")
        try:
            encoded = encode_fixed(arr, frac) if frac else ring(arr)
        except (ValueError, OverflowError) as exc:
            raise ValueError(f"{owner}: input: {exc}") from None
        return arr, frac, encoded

    def reveal(self, x: SharedArray, to: Sequence[str] | None = None, *, min_count: int | None = None,
               counts: Any = None) -> asyncio.Task[Any]:
        """Open x to the compute parties in `to` (default: all). Collective, 1 round.

        Returns an ndarray of x's shape (0-d included): float64 for fixed point, int64 for integers; None on
        parties not in `to` and the helper. With `min_count=k`: only the cells whose count (`counts`, shared
        or public, default x itself) is at least k, decided on shares; a numpy masked array whose mask marks
        the suppressed cells (protocols/interface/analytics.py).
        """
        if min_count is not None:
            return analytics.reveal_suppressed(self, x, x if counts is None else counts, min_count,  # type: ignore[no-any-return]
                                               to)
        recipients = list(dict.fromkeys(self.compute_parties if to is None else to))  # each once
        unknown = [r for r in recipients if r not in self.compute_parties]
        if unknown:
            raise ValueError(f"reveal: {', '.join(unknown)} not compute parties ({', '.join(self.compute_parties)})")
        return self.sharing.reveal(self, x, recipients, self.party.new_op("reveal"))

    def psi(self, ids: Any = None, *, parties: Sequence[str] | None = None, reveal: str = "both",
            method: str = "helper") -> Any:
        """Private set intersection of two banks' ids (strings). method 'helper' (the helper matches keyed
        tags and learns only the sizes) or 'ecdh' (Ristretto255, no helper; the `psi` extra). reveal: 'both',
        'size' (helper only) or a bank's name. Await an Alignment; pass it to `input(align=)`.
        See protocols/primitives/psi.py, psi_ecdh.py and docs/analytics.md."""
        if method == "ecdh":
            return psi_ecdh.psi_ecdh(self, ids, parties=parties, reveal=reveal)
        if method != "helper":
            raise ValueError(f"psi: method={method!r}; choose helper or ecdh")
        return psi_protocol.psi(self, ids, parties=parties, reveal=reveal)

    def unique(self, x: SharedArray, return_counts: bool = False, reveal_distinct: bool = False) -> Any:
        """The distinct values (sorted) and their counts, shared; their number becomes public, so it needs
        reveal_distinct=True. Await it: its size is known only then (protocols/interface/analytics.py)."""
        return analytics.unique(self, x, return_counts, reveal_distinct)

    async def own_share(self, x: SharedArray) -> np.ndarray | None:
        """This party's own share of x (None on the helper): uniformly random by itself, so it tells its
        holder nothing. For an auditor entitled to every party's share (the fraud demo's check on synthetic
        data), who adds them mod 2^64; never for sending to another party, which is what `reveal` is for."""
        return None if self.is_dealer else (await x.resolve()).share

    # -- linear operations (local) --------------------------------------------------------------
    def add(self, x: SharedArray | Any, y: SharedArray | Any) -> SharedArray:
        """x + y; a public operand is added by the first compute party only. 0 rounds."""
        if not isinstance(x, SharedArray):
            x, y = y, x
        assert isinstance(x, SharedArray)
        if isinstance(y, SharedArray):
            frac = max(x.frac_bits, y.frac_bits)
            xa, ya = self.rescale(x, frac), self.rescale(y, frac)
            shape = tuple(np.broadcast_shapes(x.shape, y.shape))
            return derive(self, [xa, ya], lambda s: np.add(s[0], s[1], dtype=np.uint64), shape, frac)
        const = np.asarray(y)
        frac = max(x.frac_bits, self.frac_bits if const.dtype.kind == "f" else 0)
        xa = self.rescale(x, frac)
        c = public_ring(const, frac)
        shape = tuple(np.broadcast_shapes(x.shape, c.shape))
        if self.holds_public:
            return xa.local(lambda s: np.add(s, c, dtype=np.uint64), shape)
        return xa.local(lambda s: np.broadcast_to(s, shape), shape)

    def constant(self, value: Any) -> SharedArray:
        """A public array as a shared value (the first compute party holds it, the others zero). 0 rounds."""
        return constant(self, value)

    def rescale(self, x: SharedArray, frac: int) -> SharedArray:
        """The same value with more fractional bits (exact, local)."""
        return rescale(x, frac)

    # -- operations (protocols/interface/operations.py) -------------------------------------------
    def __getattr__(self, name: str) -> Callable[..., SharedArray]:
        """ctx.mul, ctx.less, ctx.sigmoid, ...: every registered operation, with its docstring. Only names
        not found on the Context itself come here."""
        operations: Registry = self.__dict__.get("operations", OPERATIONS)
        op = operations.get(name)
        if op is None or name.startswith("__"):
            raise AttributeError(operations.unknown(name, "Context attribute or operation"))
        return bound(op, self)

    def __dir__(self) -> list[str]:
        return sorted({*super().__dir__(), *self.operations.names()})

    def numpy(self, kind: str, fn: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """numpy's dispatch for SharedArray: kind 'ufunc' (args = method, *inputs) or 'function'."""
        if kind == "ufunc":
            return dispatch.array_ufunc(self, fn, args[0], args[1:], kwargs)
        return dispatch.array_function(self, fn, args, kwargs)

    # -- array helpers --------------------------------------------------------------------------
    def concatenate(self, xs: Sequence[SharedArray], axis: int = 0) -> SharedArray:
        return concatenate(xs, axis)

    def stack(self, xs: Sequence[SharedArray], axis: int = 0) -> SharedArray:
        return stack(xs, axis)

    def sum(self, x: SharedArray, axis: int | None = None) -> SharedArray:
        return x.sum(axis=axis)

    def dot(self, x: SharedArray | Any, y: SharedArray | Any) -> SharedArray:
        return self.matmul(x, y)  # type: ignore[no-any-return]


def _tabular(owner: str, value: Any) -> tuple[np.ndarray | None, tuple[str, ...] | None]:
    """A pandas DataFrame (or anything with its interface) as a 2-D array and its column names; other
    values: (None, None). Only numeric (and boolean) columns: the error names the first other one."""
    if not (hasattr(value, "columns") and hasattr(value, "dtypes") and hasattr(value, "to_numpy")):
        return None, None
    kinds = {str(name): np.dtype(dtype).kind if isinstance(dtype, np.dtype) else "O"
             for name, dtype in zip(value.columns, value.dtypes, strict=True)}
    for name, kind in kinds.items():
        if kind not in "iufb":
            dtype = value.dtypes.iloc[list(kinds).index(name)]
            raise ValueError(f"{owner}: input: column {name!r} is not numeric ({dtype}); select the numeric "
                             "columns or encode this one as numbers")
    integral = all(kind in "iub" for kind in kinds.values())
    table = value.to_numpy(dtype=np.int64 if integral else np.float64)
    return table, tuple(kinds)


def _check_dealer(dealer: str) -> None:
    if dealer != "helper":
        raise ValueError(f"dealer {dealer!r}: the helper party is the only dealer; the insecure in-process test "
                         "dealer is protocols.interface.testing's (run_local_with_test_dealer), for tests only")


def secure(program: Callable[[Context], Awaitable[T]], *, dealer: str = "helper",
           operations: Registry = OPERATIONS) -> Callable[[Party], Awaitable[T]]:
    """Turn `program(ctx)` into a runtime program `(party) -> result` with a Context and clean finish;
    `operations`: the registry behind ctx.<name> (the project's, or one extended with a program's own).
    Its `agreement`, compared at the hello, is the digest of the public tables the protocols use."""
    _check_dealer(dealer)

    async def run(party: Party) -> T:
        ctx = await Context.create(party, operations=operations)
        return await run_program(ctx, program)

    return with_tables_agreement(run)


def with_tables_agreement(run: Callable[[Party], Awaitable[T]]) -> Callable[[Party], Awaitable[T]]:
    """Mark a runtime program as a secure one: its hello compares the public tables (functions.public_tables)."""
    run.agreement = public_tables()  # type: ignore[attr-defined]
    return run


async def run_program(ctx: Context, program: Callable[[Context], Awaitable[T]]) -> T:
    """Run `program(ctx)` to the end of every operation it issued; the first failure of any operation
    stops it at once (raised here, so the runtime aborts the session naming this party)."""
    task: asyncio.Future[T] = program_task(program(ctx))
    try:
        await asyncio.wait([task, ctx.failed], return_when=asyncio.FIRST_COMPLETED)  # type: ignore[type-var]
    except BaseException:  # this party is stopped from outside (a peer failed): the program stops with it
        task.cancel()
        task.add_done_callback(_retrieved)
        raise
    if not task.done():  # an operation failed first: stop the program, which may wait on a peer forever
        task.cancel()
        with contextlib.suppress(BaseException):
            await task
        raise ctx.failed.result()
    result = task.result()
    await ctx.finish()
    return result


def _retrieved(task: asyncio.Future[Any]) -> None:
    """The run reports its failure once, elsewhere: a stopped program's own error is not printed again."""
    if not task.cancelled():
        task.exception()


def run_local(topology: Topology, program: Callable[[Context], Awaitable[T]], *, dealer: str = "helper",
              timeout_s: float | None = None, curve: bool = True, transport: str = "zmq",
              operations: Registry = OPERATIONS) -> dict[str, PartyOutcome]:
    """Run a secure program on every party of `topology` in this process: over real sockets (encrypted
    with ephemeral CURVE keys unless the topology has its own, or curve=False), or with transport="memory"
    in one event loop without sockets (the same rounds and bytes; for tests of protocol maths)."""
    return asyncio.run(run_local_async(topology, secure(program, dealer=dealer, operations=operations),
                                       timeout_s=timeout_s, curve=curve, transport=transport))

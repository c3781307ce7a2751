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
import json
import logging
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any, TypeVar, overload

import numpy as np

from mpc.config import Topology
from mpc.prg import random_ring
from mpc.ring import decode_fixed, encode_fixed, ring, signed
from mpc.runtime import Party, PartyOutcome, run_local_async
from protocols.interface import analytics, functions, numpy_api
from protocols.primitives import arithmetic, comparison, psi_ecdh, truncation
from protocols.primitives import psi as psi_protocol
from protocols.primitives import sort as sorting
from protocols.primitives.core import RandomnessProvider
from protocols.primitives.material import HelperProvider, LocalTestProvider
from protocols.primitives.shared import (
    SharedArray,
    Shares,
    concatenate,
    constant,
    derive,
    placeholder,
    public_ring,
    rescale,
    stack,
)

log = logging.getLogger("mpc.protocols")

T = TypeVar("T")
META_STEP, SHARE_STEP, NAMES_STEP = 1, 0, 2


class Context:
    """One party's handle on a secure computation. Create with `await Context.create(party)`."""

    def __init__(self, party: Party, provider: RandomnessProvider, truncation_method: str | None = None):
        self.party = party
        self.provider = provider
        self.truncation: str = truncation_method or party.topology.truncation
        self.comparison: str = party.topology.comparison
        self.last_comparison_method: str | None = None
        self._compute = list(party.compute_parties)
        self._tasks: set[asyncio.Future[Any]] = set()
        self._first_error: BaseException | None = None
        # set to the first error of an operation's task: the program may be waiting on a peer that waits on
        # this very operation, so the failure must stop it now rather than when it awaits the result
        self.failed: asyncio.Future[BaseException] = asyncio.get_running_loop().create_future()
        self._dealing: set[asyncio.Future[Any]] = set()
        self._gate: asyncio.Future[None] | None = None

    @classmethod
    async def create(cls, party: Party, *, dealer: str = "helper", test_seed: bytes = b"") -> Context:
        """Set up the dealer: 'helper' (the helper party deals; real) or 'local-test' (tests only)."""
        op = party.new_op("setup")
        if dealer == "helper":
            provider: RandomnessProvider = await HelperProvider.setup(party, op)
        elif dealer == "local-test":
            provider = LocalTestProvider(party, test_seed)
        else:
            raise ValueError(f"unknown dealer {dealer!r} (helper | local-test)")
        return cls(party, provider)

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
        """Whether this party's share carries public constants (the first compute party's does)."""
        return self.name == self._compute[0]

    emulator: Any = None  # set by emulation (protocols/interface/emulation.py): protocols then run on cleartext

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
        while self._tasks:
            await asyncio.gather(*list(self._tasks))
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
        transport; compute party: derived and received)."""
        await asyncio.gather(*list(self._dealing))

    async def _release(self, op: Any) -> None:
        await self.dealt()
        token = np.zeros(0, dtype=np.uint8)
        peers = self.party.peers
        for peer in peers:
            self.party.send(peer, op, token, depth=0)
        for peer in peers:
            await self.party.recv(peer, op, dtype=np.uint8, shape=(0,))
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
        party = self.party
        declared = shape is not None and fixed is not None
        if shape is not None and fixed is None:
            raise ValueError("input: pass fixed=True/False together with shape=")
        frac_declared = self.frac_bits if fixed else 0
        peers = [p for p in party.peers if p != owner and (not declared or p in self.compute_parties)]

        table, columns = _tabular(owner, value) if party.name == owner else (None, None)
        # The owner's value is checked and encoded now, in the program's own call: a bad value (NaN, out of
        # the fixed-point range, not numeric) raises at the caller's line, before anything is sent.
        arr, frac, encoded = self._encode_input(owner, value, table) if party.name == owner else (None, 0, None)
        if arr is not None and declared and (tuple(arr.shape) != tuple(shape) or frac != frac_declared):  # type: ignore[arg-type]
            raise ValueError(f"{owner}: input of shape {arr.shape} ({'fixed' if frac else 'integer'}) does "
                             f"not match the declared shape {shape} ({'fixed' if fixed else 'integer'})")

        async def share_out() -> Shares:
            assert arr is not None and encoded is not None
            if not declared:  # public metadata goes at once: the others need it to issue (and deal) what follows
                for peer in peers:
                    meta = [frac, arr.ndim, int(columns is not None), *arr.shape]
                    party.send(peer, op, np.array(meta, dtype=np.uint64), step=META_STEP)
                    if columns is not None:
                        names = np.frombuffer(json.dumps(list(columns)).encode(), dtype=np.uint8)
                        party.send(peer, op, names, step=NAMES_STEP)
            await self.online_gate()
            mine = np.array(encoded, dtype=np.uint64)  # a copy, and an array even for a 0-d value
            for peer in peers:
                if peer in self.compute_parties:
                    share = random_ring(arr.shape)
                    party.send(peer, op, share, step=SHARE_STEP)
                    mine -= share
            return Shares(mine, 0)

        async def share_in(expected: tuple[int, ...]) -> Shares:
            share = await party.recv(owner, op, step=SHARE_STEP, dtype=np.uint64, shape=expected)
            return Shares(share.array, share.depth)

        if declared:
            assert shape is not None
            dims = tuple(int(d) for d in shape)
            if self.is_dealer:
                return placeholder(self, dims, frac_declared)
            fut = self.spawn(share_out() if party.name == owner else share_in(dims))
            return SharedArray(self, dims, frac_declared, fut)

        async def run() -> SharedArray:
            if party.name == owner:
                assert arr is not None
                out = SharedArray(self, arr.shape, frac, self.spawn(share_out()))
                out.columns = columns
                return out
            msg = await party.recv(owner, op, step=META_STEP, dtype=np.uint64)
            if msg.array.size < 3:
                raise ValueError(f"{owner} sent malformed input metadata")
            their_frac, ndim, named = int(msg.array[0]), int(msg.array[1]), int(msg.array[2])
            got = tuple(int(d) for d in msg.array[3:])
            if len(got) != ndim or their_frac not in (0, self.frac_bits) or named not in (0, 1) or \
                    (named and ndim != 2):
                raise ValueError(f"{owner} sent malformed input metadata")
            names = await _receive_names(party, owner, op, got[1]) if named else None
            # the shape is known now; the share comes when the owner goes online (after a hold/release)
            out = placeholder(self, got, their_frac) if self.is_dealer else \
                SharedArray(self, got, their_frac, self.spawn(share_in(got)))
            out.columns = names
            return out

        return self.spawn(run())

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
            raise ValueError(f"{owner}: input: a value that is not finite (NaN or infinite) at index {tuple(bad)}")
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
            return analytics.reveal_suppressed(self, x, x if counts is None else counts, min_count, to)  # type: ignore[no-any-return]
        recipients = list(dict.fromkeys(self.compute_parties if to is None else to))  # each once
        unknown = [r for r in recipients if r not in self.compute_parties]
        if unknown:
            raise ValueError(f"reveal: {', '.join(unknown)} not compute parties ({', '.join(self.compute_parties)})")
        op = self.party.new_op("reveal")
        party = self.party

        async def run() -> np.ndarray | None:
            if self.is_dealer:
                return None
            xs = await x.resolve()
            share = np.require(xs.share, requirements="C")
            for r in recipients:
                if r != party.name:
                    party.send(r, op, share, depth=xs.depth)
            if party.name not in recipients:
                return None
            total = share.copy()
            for peer in self.compute_parties:
                if peer != party.name:
                    total += (await party.recv(peer, op, dtype=np.uint64, shape=x.shape)).array
            value = decode_fixed(total, x.frac_bits) if x.frac_bits else signed(total).copy()
            return np.asarray(value)  # 0-d: an array too

        return self.spawn(run())

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

    # -- products -------------------------------------------------------------------------------
    def mul(self, x: SharedArray | Any, y: SharedArray | Any, truncate: bool = True) -> SharedArray:
        """Elementwise x * y. Shared by shared: 1 round (Beaver); by public: local. Then truncation,
        unless `truncate=False` (the result keeps 2f fractional bits, e.g. for a fused ReLU)."""
        return self._product(x, y, "mul", truncate)

    def matmul(self, x: SharedArray | Any, y: SharedArray | Any, truncate: bool = True) -> SharedArray:
        """x @ y. Shared by shared: 1 round (matrix triple); by public: local. Then truncation, unless
        `truncate=False`."""
        return self._product(x, y, "matmul", truncate)

    def _product(self, x: Any, y: Any, kind: str, truncate: bool = True) -> SharedArray:
        return arithmetic.product(self, x, y, kind, frac_bits=self.frac_bits, truncate=truncate)

    def truncate(self, x: SharedArray, bits: int, method: str | None = None) -> SharedArray:
        """floor(x / 2^bits) or one more; dealer: 1 round, local: 0 (see protocols/primitives/truncation.py)."""
        return truncation.truncate(self, x, bits, method)

    # -- comparisons (protocols/primitives/comparison.py): method None = the topology's `comparison` ---------
    def less(self, x: Any, y: Any, method: str | None = None) -> SharedArray:
        """[x < y] as a shared 0/1 integer. dcf: 1 round; bits: 8 rounds."""
        return comparison.less_than(self, x, y, method)

    def equal(self, x: Any, y: Any, method: str | None = None) -> SharedArray:
        """[x == y] as a shared 0/1 integer, same rounds as `less`."""
        return comparison.equal(self, x, y, method)

    def sign(self, x: SharedArray, method: str | None = None) -> SharedArray:
        """-1, 0 or 1 like numpy.sign, for every value: [x < 0] and [x == 0] side by side, same rounds as `<`."""
        return comparison.sign(self, x, method)

    def relu(self, x: SharedArray, method: str | None = None) -> SharedArray:
        """max(x, 0). dcf: 1 round; bits: 9 rounds.

        A value with more than `frac_bits` fractional bits (a product taken with `truncate=False`) is
        truncated back in the same gate: relu(x) >> extra bits, still one round with dcf."""
        if x.frac_bits > self.frac_bits:
            return comparison.relu_truncate(self, x, x.frac_bits - self.frac_bits, method)
        return comparison.relu(self, x, method)

    def maximum(self, x: Any, y: Any, method: str | None = None) -> SharedArray:
        return comparison.maximum(self, x, y, method)

    def minimum(self, x: Any, y: Any, method: str | None = None) -> SharedArray:
        return comparison.minimum(self, x, y, method)

    def max(self, x: SharedArray, axis: int = -1, method: str | None = None) -> SharedArray:
        """Maximum along `axis` (a tree: ceil(log2 k) gates)."""
        return comparison.max_along(self, x, axis, method)

    def argmax(self, x: SharedArray, axis: int = -1, method: str | None = None) -> SharedArray:
        """Shared index of the first maximum along `axis` (2 rounds per tree level with dcf)."""
        return comparison.argmax_along(self, x, axis, method)

    def where(self, bit: SharedArray, a: Any, b: Any) -> SharedArray:
        """bit ? a : b for a shared 0/1 integer `bit`. 1 round."""
        return comparison.where(self, bit, a, b)

    # -- sort, rank and select (protocols/primitives/sort.py): 2+ compute parties, rounds O(log n) -----------
    def sort(self, x: SharedArray, *columns: SharedArray, method: str | None = None) -> Any:
        """np.sort of a 1-D shared array, stable; with columns, (sorted x, each column in x's order)."""
        if columns:
            out = sorting.sort_by(self, x, columns, method)
            return (out[0], *out[2:])
        return sorting.sort(self, x, method)

    def argsort(self, x: SharedArray, method: str | None = None) -> SharedArray:
        """np.argsort(x, kind='stable') as shared indices (a shared permutation: `ctx.take(z, p)`)."""
        return sorting.argsort(self, x, method)

    def take(self, z: SharedArray, perm: SharedArray) -> SharedArray:
        """z[perm] for a shared permutation from argsort (5 rounds)."""
        return sorting.take(self, z, perm)

    def top_k(self, x: SharedArray, k: int, method: str | None = None) -> tuple[SharedArray, SharedArray]:
        """The k largest values (largest first) and their original indices."""
        return sorting.top_k(self, x, k, method)

    def median(self, x: SharedArray, method: str | None = None) -> SharedArray:
        return sorting.median(self, x, method)

    def quantile(self, x: SharedArray, q: Any, method: str | None = None) -> SharedArray:
        """np.quantile (linear interpolation), q public in [0, 1]."""
        return sorting.quantile(self, x, q, method)

    def percentile(self, x: SharedArray, q: Any, method: str | None = None) -> SharedArray:
        return sorting.quantile(self, x, np.asarray(q, dtype=np.float64) / 100, method)

    # -- group and count (protocols/interface/analytics.py) ---------------------------------------------
    def group_count(self, keys: Any, groups: int) -> Any:
        """Rows per key code in [0, groups): shared keys, 1 round (shared counts); public keys, local."""
        return analytics.group(self, None, keys, groups)[0]

    def group_sum(self, values: SharedArray, keys: Any, groups: int) -> SharedArray:
        """Sums of values per key code in [0, groups), keys shared (1 round) or public (local)."""
        return analytics.group(self, values, keys, groups)[1]  # type: ignore[no-any-return]

    def group_mean(self, values: SharedArray, keys: Any, groups: int) -> SharedArray:
        """Means per key code (0 for an empty group); shared keys: a shared division (ctx.div)."""
        return analytics.group_mean(self, values, keys, groups)

    def histogram(self, x: SharedArray, bins: Any) -> tuple[SharedArray, np.ndarray]:
        """np.histogram with public edges: (shared counts, edges)."""
        return analytics.histogram(self, x, bins)

    def unique(self, x: SharedArray, return_counts: bool = False, reveal_distinct: bool = False) -> Any:
        """Distinct values (sorted) and counts, shared; their number becomes public (reveal_distinct=True)."""
        return analytics.unique(self, x, return_counts, reveal_distinct)

    # -- numpy on shared values (protocols/interface/numpy_api.py) -----------------------------------------
    def numpy(self, kind: str, fn: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """numpy's dispatch for SharedArray: kind 'ufunc' (args = method, *inputs) or 'function'."""
        if kind == "ufunc":
            return numpy_api.array_ufunc(self, fn, args[0], args[1:], kwargs)
        return numpy_api.array_function(self, fn, args, kwargs)

    def divide(self, x: Any, y: Any) -> SharedArray:
        """x / y: by a public y, 1 round (a truncation); by a shared y, a reciprocal (ctx.div)."""
        return numpy_api.divide(self, x, y)

    def abs(self, x: SharedArray, method: str | None = None) -> SharedArray:
        """|x|: one ReLU gate on x and -x together (dcf: 1 round)."""
        return numpy_api.absolute(self, x, method)

    def clip(self, x: SharedArray, lo: Any = None, hi: Any = None, method: str | None = None) -> SharedArray:
        return numpy_api.clip(self, x, lo, hi, method)

    def mean(self, x: SharedArray, axis: int | tuple[int, ...] | None = None) -> SharedArray:
        return numpy_api.mean(self, x, axis)

    # -- array helpers --------------------------------------------------------------------------
    def concatenate(self, xs: Sequence[SharedArray], axis: int = 0) -> SharedArray:
        return concatenate(xs, axis)

    def stack(self, xs: Sequence[SharedArray], axis: int = 0) -> SharedArray:
        return stack(xs, axis)

    def sum(self, x: SharedArray, axis: int | None = None) -> SharedArray:
        return x.sum(axis=axis)

    def dot(self, x: SharedArray | Any, y: SharedArray | Any) -> SharedArray:
        return self.matmul(x, y)

    # -- functions (protocols/interface/functions.py) ------------------------------------------------------
    # Splines evaluated by one DCF gate (dcf) or one batch of comparisons (bits); error bounds and
    # rounds in the README's "Functions" table. method None = the topology's `comparison`.
    def sigmoid(self, x: SharedArray, method: str | None = None) -> SharedArray:
        """1 / (1 + e^-x), abs error <= 7.5e-4 on the real line. dcf: 2 rounds; bits: 10."""
        return functions.sigmoid(self, _shared(x, "sigmoid"), method)

    def tanh(self, x: SharedArray, method: str | None = None) -> SharedArray:
        """tanh(x), abs error <= 3.7e-4 on the real line. dcf: 2 rounds; bits: 10."""
        return functions.tanh(self, _shared(x, "tanh"), method)

    def exp(self, x: SharedArray, method: str | None = None) -> SharedArray:
        """e^x for x <= 8 (e^8 above). dcf: 2 rounds; bits: 10."""
        return functions.exp(self, _shared(x, "exp"), method)

    def log(self, x: SharedArray, method: str | None = None) -> SharedArray:
        """Natural log for x in [2^-f, 2^(46-f)). dcf: 4 rounds; bits: 20."""
        return functions.log(self, _shared(x, "log"), method)

    def reciprocal(self, x: SharedArray, method: str | None = None, positive: bool = False) -> SharedArray:
        """1 / x for 2^-f <= |x| < 2^(46-f). dcf: 6 rounds; bits: 22. `positive=True`: x > 0, less compute."""
        return functions.reciprocal(self, _shared(x, "reciprocal"), method, positive)

    def div(self, x: SharedArray | Any, y: SharedArray, method: str | None = None,
            positive: bool = False) -> SharedArray:
        """x / y for a shared y, 2^-f <= |y| < 2^(46-f), |x / y| < 2^(f-3). dcf: 6 rounds; bits: 22."""
        if not isinstance(y, SharedArray):
            return numpy_api.divide(self, _shared(x, "div"), y)  # by a public value: its own protocol
        return functions.div(self, x, y, method, positive)

    def sqrt(self, x: SharedArray, method: str | None = None) -> SharedArray:
        """sqrt(x) for x in [2^-f, 2^(46-f)), 0 for x <= 0. dcf: 6 rounds; bits: 22."""
        return functions.sqrt(self, _shared(x, "sqrt"), method)

    def rsqrt(self, x: SharedArray, method: str | None = None) -> SharedArray:
        """1 / sqrt(x) for x in [2^-f, 2^(46-f)). dcf: 6 rounds; bits: 22."""
        return functions.rsqrt(self, _shared(x, "rsqrt"), method)

    def softmax(self, x: SharedArray, axis: int = -1, method: str | None = None) -> SharedArray:
        """exp(x - max) / sum along `axis`. dcf: 8 + ceil(log2 k) rounds for k entries."""
        return functions.softmax(self, _shared(x, "softmax"), axis, method)


def _shared(x: Any, what: str) -> SharedArray:
    if not isinstance(x, SharedArray):
        raise TypeError(f"ctx.{what} takes a shared value (from ctx.input or an operation), not a "
                        f"{type(x).__name__}; on public values use numpy")
    return x


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


async def _receive_names(party: Party, owner: str, op: Any, width: int) -> tuple[str, ...]:
    msg = await party.recv(owner, op, step=NAMES_STEP, dtype=np.uint8)
    try:
        names = json.loads(msg.array.tobytes().decode())
    except (UnicodeDecodeError, json.JSONDecodeError):
        names = None
    if not isinstance(names, list) or len(names) != width or not all(isinstance(n, str) for n in names):
        raise ValueError(f"{owner} sent malformed column names with its input")
    return tuple(names)


def secure(program: Callable[[Context], Awaitable[T]], *, dealer: str = "helper",
           test_seed: bytes = b"") -> Callable[[Party], Awaitable[T]]:
    """Turn `program(ctx)` into a runtime program `(party) -> result` with a Context and clean finish."""

    async def run(party: Party) -> T:
        ctx = await Context.create(party, dealer=dealer, test_seed=test_seed)
        return await run_program(ctx, program)

    return run


async def run_program(ctx: Context, program: Callable[[Context], Awaitable[T]]) -> T:
    """Run `program(ctx)` to the end of every operation it issued; the first failure of any operation
    stops it at once (raised here, so the runtime aborts the session naming this party)."""
    task: asyncio.Future[T] = asyncio.ensure_future(program(ctx))
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
              timeout_s: float | None = None, curve: bool = True, transport: str = "zmq") -> dict[str, PartyOutcome]:
    """Run a secure program on every party of `topology` in this process: over real sockets (encrypted
    with ephemeral CURVE keys unless the topology has its own, or curve=False), or with transport="memory"
    in one event loop without sockets (the same rounds and bytes; for tests of protocol maths)."""
    return asyncio.run(run_local_async(topology, secure(program, dealer=dealer), timeout_s=timeout_s, curve=curve,
                                       transport=transport))

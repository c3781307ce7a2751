"""SharedArray: an additively shared uint64 array of known shape, backed by a future.

Operators return at once; the share is computed when its inputs are ready, on the event loop, so
independent operations issued together share their round without the program saying so. Local
operations (add, negate, index, reshape, ...) cost no communication and run as soon as their inputs
are resolved. On the helper (dealer mode) a SharedArray is a shape-only placeholder: the helper runs the
program to deal each operation's randomness, never to compute on shares.

`frac_bits` is the number of fractional bits of the array's encoding: 0 for integers mod 2^64, the
topology's `frac_bits` for fixed point (one name for the fixed-point scale throughout). A product of two
fixed-point values is truncated back to `frac_bits` (see protocols/primitives/truncation.py).

This module imports no other protocol module: operators reach the protocols through the array's context,
which implements `Ops` (protocols/interface/context.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from mpc.ring import encode_fixed, ring

NO_SHARE = np.zeros(0, dtype=np.uint64)
"""What a helper's placeholder holds: it never computes on shares, and no protocol body runs there."""


@dataclass(frozen=True, slots=True)
class Shares:
    """This party's share and the round (depth) at which it is available."""

    share: np.ndarray
    depth: int


class Ops(Protocol):
    """The operations a SharedArray's operators need from its party's context."""

    @property
    def name(self) -> str: ...
    @property
    def is_dealer(self) -> bool: ...
    @property
    def frac_bits(self) -> int: ...
    @property
    def compute_parties(self) -> list[str]: ...
    @property
    def holds_public(self) -> bool: ...
    def spawn(self, coro: Any) -> Any: ...
    def add(self, x: Any, y: Any) -> SharedArray: ...
    def mul(self, x: Any, y: Any, truncate: bool = True) -> SharedArray: ...
    def matmul(self, x: Any, y: Any, truncate: bool = True) -> SharedArray: ...
    def less(self, x: Any, y: Any, method: str | None = None) -> SharedArray: ...
    def equal(self, x: Any, y: Any, method: str | None = None) -> SharedArray: ...
    def numpy(self, kind: str, fn: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any: ...


class SharedArray:
    """A secret-shared array. Use operators and methods; `await ctx.reveal(x)` to open it."""

    __array_priority__ = 1000
    columns: tuple[str, ...] | None = None  # an input DataFrame's column names (public, like the shape)
    __hash__ = None  # type: ignore[assignment]  # `==` is elementwise

    # -- numpy's dispatch: numpy functions on shared values compute securely or raise TypeError -----
    def __array_ufunc__(self, ufunc: Any, method: str, *inputs: Any, **kwargs: Any) -> Any:
        """`np.maximum(x, 0)`, `ndarray + x`, `np.exp(x)`, ...: protocols/interface/numpy_api.py."""
        return self.ctx.numpy("ufunc", ufunc, (method, *inputs), kwargs)

    def __array_function__(self, func: Any, types: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """`np.sum(x)`, `np.mean(x)`, `np.dot(x, w)`, `np.where(bit, a, b)`, ...: protocols/interface/numpy_api.py."""
        return self.ctx.numpy("function", func, args, kwargs)

    def __array__(self, *args: Any, **kwargs: Any) -> np.ndarray:
        raise TypeError("a shared value cannot become a numpy array: reveal it (await ctx.reveal(x)) or keep "
                        "computing on it")

    def __init__(self, ctx: Ops, shape: tuple[int, ...], frac: int, fut: asyncio.Future[Shares]):
        self.ctx = ctx
        self.shape = tuple(int(d) for d in shape)
        self.frac_bits = frac
        self._fut = fut

    # -- basics ---------------------------------------------------------------------------------
    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    @property
    def is_fixed(self) -> bool:
        return self.frac_bits > 0

    def __len__(self) -> int:
        if not self.shape:
            raise TypeError("len() of a 0-d shared array")
        return self.shape[0]

    def __repr__(self) -> str:
        kind = f"fixed<{self.frac_bits}>" if self.frac_bits else "int64"
        return f"SharedArray(shape={self.shape}, {kind}, party={self.ctx.name})"

    def astype(self, dtype: Any, *args: Any, **kwargs: Any) -> SharedArray:
        """Refused like numpy functions that cannot run on shares: the encoding is the shared value's own."""
        raise TypeError(f"x.astype({dtype!r}) is not supported on shared values; integers become fixed point by "
                        "x * 1.0, fixed point has no exact integer conversion (x // d works on integers)")

    def __bool__(self) -> bool:
        raise TypeError("a shared value has no truth value; reveal it or use ctx.where()")

    def __await__(self):  # type: ignore[no-untyped-def]
        """`await x` waits until this party's share exists and gives x back."""
        yield from self._fut.__await__()
        return self

    async def resolve(self) -> Shares:
        """This party's share and its depth (for protocols and measurement, not for users).

        Checks the share's shape here, so that a protocol that got it wrong fails on this party with the
        shape it made, instead of making its peers abort on a message of an unexpected shape."""
        shares = await self._fut
        if shares.share is not NO_SHARE and np.shape(shares.share) != self.shape:
            raise RuntimeError(f"internal error: a share of shape {np.shape(shares.share)} for a shared array "
                               f"of shape {self.shape}")
        return shares

    async def depth(self) -> int:
        return (await self._fut).depth

    # -- arithmetic -----------------------------------------------------------------------------
    def __add__(self, other: Any) -> SharedArray:
        return self.ctx.add(self, other)

    __radd__ = __add__

    def __sub__(self, other: Any) -> SharedArray:
        return self.ctx.add(self, -other if not isinstance(other, SharedArray) else other.__neg__())

    def __rsub__(self, other: Any) -> SharedArray:
        return self.ctx.add(-self, other)

    def __neg__(self) -> SharedArray:
        return self.local(lambda s: np.negative(s), self.shape)

    def __mul__(self, other: Any) -> SharedArray:
        return self.ctx.mul(self, other)

    __rmul__ = __mul__

    def __matmul__(self, other: Any) -> SharedArray:
        return self.ctx.matmul(self, other)

    def __rmatmul__(self, other: Any) -> SharedArray:
        return self.ctx.matmul(other, self)

    # -- comparisons (shared 0/1 integers; see protocols/primitives/comparison.py) --------------------------
    def __lt__(self, other: Any) -> SharedArray:
        return self.ctx.less(self, other)

    def __gt__(self, other: Any) -> SharedArray:
        return self.ctx.less(other, self)

    def __le__(self, other: Any) -> SharedArray:
        return 1 - self.ctx.less(other, self)

    def __ge__(self, other: Any) -> SharedArray:
        return 1 - self.ctx.less(self, other)

    def __eq__(self, other: Any) -> SharedArray:  # type: ignore[override]
        return self.ctx.equal(self, other)

    def __ne__(self, other: Any) -> SharedArray:  # type: ignore[override]
        return 1 - self.ctx.equal(self, other)

    def __truediv__(self, other: Any) -> SharedArray:
        return self.ctx.numpy("ufunc", np.true_divide, ("__call__", self, other), {})  # type: ignore[no-any-return]

    def __rtruediv__(self, other: Any) -> SharedArray:
        return self.ctx.numpy("ufunc", np.true_divide, ("__call__", other, self), {})  # type: ignore[no-any-return]

    def __floordiv__(self, other: Any) -> SharedArray:
        return self.ctx.numpy("ufunc", np.floor_divide, ("__call__", self, other), {})  # type: ignore[no-any-return]

    def __pow__(self, other: Any) -> SharedArray:
        return self.ctx.numpy("ufunc", np.power, ("__call__", self, other), {})  # type: ignore[no-any-return]

    def __abs__(self) -> SharedArray:
        return self.ctx.numpy("ufunc", np.absolute, ("__call__", self), {})  # type: ignore[no-any-return]

    def __and__(self, other: Any) -> SharedArray:
        return self.ctx.numpy("ufunc", np.bitwise_and, ("__call__", self, other), {})  # type: ignore[no-any-return]

    __rand__ = __and__

    def __or__(self, other: Any) -> SharedArray:
        return self.ctx.numpy("ufunc", np.bitwise_or, ("__call__", self, other), {})  # type: ignore[no-any-return]

    __ror__ = __or__

    def __xor__(self, other: Any) -> SharedArray:
        return self.ctx.numpy("ufunc", np.bitwise_xor, ("__call__", self, other), {})  # type: ignore[no-any-return]

    __rxor__ = __xor__

    def __invert__(self) -> SharedArray:
        return self.ctx.numpy("ufunc", np.invert, ("__call__", self), {})  # type: ignore[no-any-return]

    # -- reductions -----------------------------------------------------------------------------
    def mean(self, axis: int | tuple[int, ...] | None = None, keepdims: bool = False) -> SharedArray:
        return self.ctx.numpy("function", np.mean, (self,), {"axis": axis, "keepdims": keepdims})  # type: ignore[no-any-return]

    def max(self, axis: int | None = None) -> SharedArray:
        return self.ctx.numpy("function", np.max, (self,), {"axis": axis})  # type: ignore[no-any-return]

    def min(self, axis: int | None = None) -> SharedArray:
        return self.ctx.numpy("function", np.min, (self,), {"axis": axis})  # type: ignore[no-any-return]

    def argmax(self, axis: int | None = None) -> SharedArray:
        return self.ctx.numpy("function", np.argmax, (self,), {"axis": axis})  # type: ignore[no-any-return]

    def argmin(self, axis: int | None = None) -> SharedArray:
        return self.ctx.numpy("function", np.argmin, (self,), {"axis": axis})  # type: ignore[no-any-return]

    def clip(self, min: Any = None, max: Any = None) -> SharedArray:  # noqa: A002 - numpy's names
        return self.ctx.numpy("function", np.clip, (self, min, max), {})  # type: ignore[no-any-return]

    def sum(self, axis: int | tuple[int, ...] | None = None, keepdims: bool = False) -> SharedArray:
        shape = np.empty(self.shape, dtype=np.bool_).sum(axis=axis, keepdims=keepdims).shape
        return self.local(lambda s: np.asarray(np.sum(s, axis=axis, keepdims=keepdims, dtype=np.uint64)), shape)

    def dot(self, other: Any) -> SharedArray:
        return self.ctx.matmul(self, other)

    # -- shape operations (local) ---------------------------------------------------------------
    def __getitem__(self, key: Any) -> SharedArray:
        if isinstance(key, SharedArray):
            raise TypeError("indexing with a shared index is not supported; use ctx.where()")
        if isinstance(key, str) or (isinstance(key, list) and key and all(isinstance(k, str) for k in key)):
            return self._columns(key)
        return self.local(lambda s: s[key], _probe(self.shape)[key].shape)

    def _columns(self, names: str | list[str]) -> SharedArray:
        """Columns of an input DataFrame by name: x["amount"] (1-D) or x[["amount", "count"]] (2-D)."""
        if self.columns is None:
            raise KeyError(f"{names!r}: this shared array has no column names (only an input DataFrame has)")
        wanted = [names] if isinstance(names, str) else names
        missing = [n for n in wanted if n not in self.columns]
        if missing:
            raise KeyError(f"no column {missing[0]!r}; columns: {', '.join(self.columns)}")
        idx = [self.columns.index(n) for n in wanted]
        if isinstance(names, str):
            return self[:, idx[0]]
        out = self[:, idx]
        out.columns = tuple(wanted)
        return out

    def reshape(self, *shape: Any) -> SharedArray:
        new = _probe(self.shape).reshape(*shape).shape
        return self.local(lambda s: s.reshape(new), new)

    def transpose(self, *axes: Any) -> SharedArray:
        new = _probe(self.shape).transpose(*axes).shape
        return self.local(lambda s: s.transpose(*axes), new)

    @property
    def T(self) -> SharedArray:  # noqa: N802 - numpy's name
        return self.transpose()

    def flatten(self) -> SharedArray:
        return self.reshape(-1)

    def broadcast_to(self, shape: Sequence[int]) -> SharedArray:
        new = tuple(shape)
        return self.local(lambda s: np.broadcast_to(s, new), new)

    # -- plumbing -------------------------------------------------------------------------------
    def local(self, fn: Callable[[np.ndarray], np.ndarray], shape: tuple[int, ...],
              frac: int | None = None) -> SharedArray:
        """A new shared array from a local, linear function of this party's share (no communication)."""
        return derive(self.ctx, [self], lambda s: fn(s[0]), shape, self.frac_bits if frac is None else frac)


def _probe(shape: tuple[int, ...]) -> np.ndarray:
    """A zero-memory array of `shape`, to let numpy work out result shapes."""
    return np.broadcast_to(np.empty((), dtype=np.bool_), shape)


def placeholder(ctx: Ops, shape: tuple[int, ...], frac: int) -> SharedArray:
    """A shape-only shared array for the helper (dealer mode): it is resolved at once and holds no share."""
    fut: asyncio.Future[Shares] = asyncio.get_running_loop().create_future()
    fut.set_result(Shares(NO_SHARE, 0))
    return SharedArray(ctx, tuple(int(d) for d in shape), frac, fut)


def resolved(ctx: Ops, shape: tuple[int, ...], frac: int, share: np.ndarray, depth: int = 0) -> SharedArray:
    """A shared array whose share is known now (a placeholder on the helper)."""
    if ctx.is_dealer:
        return placeholder(ctx, shape, frac)
    fut: asyncio.Future[Shares] = asyncio.get_running_loop().create_future()
    fut.set_result(Shares(share, depth))
    return SharedArray(ctx, tuple(int(d) for d in shape), frac, fut)


def derive(ctx: Ops, sources: Sequence[SharedArray], fn: Callable[[list[np.ndarray]], np.ndarray],
           shape: tuple[int, ...], frac: int) -> SharedArray:
    """A shared array computed locally from `sources`: at once if they are resolved, else when they are."""
    if ctx.is_dealer:
        return placeholder(ctx, shape, frac)
    loop = asyncio.get_running_loop()
    futs = [s._fut for s in sources]

    def compute(inputs: list[Shares]) -> Shares:
        depth = max((i.depth for i in inputs), default=0)
        with np.errstate(over="ignore"):  # ring arithmetic wraps by design
            out = np.asarray(fn([i.share for i in inputs]), dtype=np.uint64)
        if out.shape != shape:
            out = np.broadcast_to(out, shape)
        return Shares(out, depth)

    if all(f.done() and not f.cancelled() and f.exception() is None for f in futs):
        fut: asyncio.Future[Shares] = loop.create_future()
        fut.set_result(compute([f.result() for f in futs]))
    else:
        async def later() -> Shares:
            # Shielded: cancelling this task must not cancel its sources. Unshielded, cancelling the end of
            # a chain of local operations (a training loop issued ahead) cancelled the whole chain
            # recursively, one stack frame per link: past about a thousand, a RecursionError.
            sources = asyncio.gather(*futs)
            sources.add_done_callback(_retrieved)  # a failure is reported once, by the task awaiting it
            return compute(list(await asyncio.shield(sources)))

        fut = ctx.spawn(later())
    return SharedArray(ctx, shape, frac, fut)


def _retrieved(fut: asyncio.Future[Any]) -> None:
    if not fut.cancelled():
        fut.exception()


def split(ctx: Ops, task: asyncio.Future[tuple[Shares, ...]],
          specs: Sequence[tuple[tuple[int, ...], int]]) -> list[SharedArray]:
    """Several shared arrays (shape, frac) computed together by one task returning a tuple of Shares."""
    loop = asyncio.get_running_loop()
    futs: list[asyncio.Future[Shares]] = [loop.create_future() for _ in specs]

    def done(t: asyncio.Future[tuple[Shares, ...]]) -> None:
        for i, fut in enumerate(futs):
            if fut.done():  # cancelled meanwhile by whoever awaited it (a run that is stopping)
                continue
            if t.cancelled():
                fut.cancel()
            elif t.exception() is not None:
                fut.set_exception(t.exception())  # type: ignore[arg-type]
                fut.add_done_callback(_retrieved)
            else:
                fut.set_result(t.result()[i])

    task.add_done_callback(done)
    return [SharedArray(ctx, shape, frac, fut) for fut, (shape, frac) in zip(futs, specs, strict=True)]


def constant(ctx: Ops, value: Any) -> SharedArray:
    """A public array as a shared value (the first compute party holds it, the others zero). 0 rounds."""
    arr = np.asarray(value)
    frac = ctx.frac_bits if arr.dtype.kind == "f" else 0
    encoded = public_ring(arr, frac)
    share = encoded.copy() if ctx.holds_public else np.zeros(arr.shape, dtype=np.uint64)
    return resolved(ctx, arr.shape, frac, share)


def rescale(x: SharedArray, frac: int) -> SharedArray:
    """The same value with more fractional bits (exact, local)."""
    if frac == x.frac_bits:
        return x
    factor = np.uint64(1 << (frac - x.frac_bits))
    return x.local(lambda s: np.asarray(np.multiply(s, factor, dtype=np.uint64)), x.shape, frac=frac)


def concatenate(xs: Sequence[SharedArray], axis: int = 0) -> SharedArray:
    """numpy.concatenate of shared arrays of one party's context (local)."""
    return _join(xs, axis, np.concatenate, "concatenate")


def stack(xs: Sequence[SharedArray], axis: int = 0) -> SharedArray:
    """numpy.stack of shared arrays of one party's context (local)."""
    return _join(xs, axis, np.stack, "stack")


def _join(xs: Sequence[SharedArray], axis: int, join: Callable[..., np.ndarray], name: str) -> SharedArray:
    if not xs:
        raise ValueError(f"{name}: need at least one array")
    frac = max(x.frac_bits for x in xs)
    parts = [rescale(x, frac) for x in xs]
    shape = join([np.empty(x.shape, np.bool_) for x in xs], axis=axis).shape
    return derive(xs[0].ctx, parts, lambda s: join(s, axis=axis), shape, frac)


def public_ring(value: Any, frac: int) -> np.ndarray:
    """A public operand as ring elements at `frac` fractional bits (integers are scaled exactly)."""
    arr = np.asarray(value)
    if arr.dtype.kind == "f":
        return encode_fixed(arr, frac)
    if arr.dtype.kind not in "iub":
        raise TypeError(f"cannot use a {arr.dtype} value with a shared array")
    return ring(arr) * np.uint64(1 << frac) if frac else ring(arr)

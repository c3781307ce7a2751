"""Products of shared values: Beaver triples (elementwise) and matrix triples (matmul).

Protocol (Beaver, CRYPTO 1991), for n >= 2 compute parties and shared x, y:
  1. the helper deals shares of a, b (shapes of x, y) and c = a * b (or a @ b), seed-compressed;
  2. each party opens d = x - a and e = y - b: one message of |x| + |y| words to every other party;
  3. locally z_i = c_i + d*b_i + a_i*e (+ d*e at the first party).
Cost: 1 online round; online bytes per party per peer 8(|x| + |y|) + header; dealer bytes 8|z| to one
party. A matrix triple makes the traffic grow with the operands, not with the product's inner work.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from mpc import ring
from protocols.shared import SharedArray, Shares

if TYPE_CHECKING:
    from protocols.context import Context

Product = Callable[[np.ndarray, np.ndarray], np.ndarray]


def elementwise(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.multiply(a, b, dtype=np.uint64)


def ring_matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Matrix product mod 2^64 (uint64 in, uint64 out)."""
    return ring.matmul(a, b)


def product_shape(kind: str, sx: tuple[int, ...], sy: tuple[int, ...]) -> tuple[int, ...]:
    if kind == "mul":
        return tuple(np.broadcast_shapes(sx, sy))
    if len(sx) == 0 or len(sy) == 0:
        raise ValueError("matmul: operands must be at least 1-D")
    return _matmul_shape(sx, sy)


def _matmul_shape(sx: tuple[int, ...], sy: tuple[int, ...]) -> tuple[int, ...]:
    x1, y1 = len(sx) == 1, len(sy) == 1
    mx = (1, *sx) if x1 else sx
    my = (*sy, 1) if y1 else sy
    if mx[-1] != my[-2]:
        raise ValueError(f"matmul: shapes {sx} and {sy} do not align ({mx[-1]} != {my[-2]})")
    batch = tuple(np.broadcast_shapes(mx[:-2], my[:-2]))
    out = (*batch, mx[-2], my[-1])
    if x1:
        out = out[:-2] + out[-1:]
    if y1:
        out = out[:-1]
    return out


def beaver(ctx: Context, x: SharedArray, y: SharedArray, kind: str) -> SharedArray:
    """z = x * y (kind 'mul') or x @ y (kind 'matmul'), both shared. Collective, 1 online round."""
    product: Product = elementwise if kind == "mul" else ring_matmul
    shape = product_shape(kind, x.shape, y.shape)
    op = ctx.party.new_op(kind)
    material = ctx.deal(ctx.material.triple(op, x.shape, y.shape, shape, product))
    nx = x.size

    async def run() -> Shares:
        xs, ys = await x.resolve(), await y.resolve()
        triple = await material
        await ctx.online_gate()
        if triple is None:  # the helper: dealt, nothing more to do
            return Shares(None, 0)
        assert xs.share is not None and ys.share is not None
        d_i = np.subtract(xs.share, triple.a, dtype=np.uint64)
        e_i = np.subtract(ys.share, triple.b, dtype=np.uint64)
        total, depth = await ctx.open_shares(op, np.concatenate([d_i.ravel(), e_i.ravel()]),
                                             max(xs.depth, ys.depth))
        d = total[:nx].reshape(x.shape)
        e = total[nx:].reshape(y.shape)
        with np.errstate(over="ignore"):  # 0-d products are numpy scalars, which warn on wrap-around
            z = np.asarray(triple.c + product(d, triple.b) + product(triple.a, e), dtype=np.uint64)
            if ctx.name == ctx.compute_parties[0]:
                z = z + product(d, e)
        return Shares(np.broadcast_to(z, shape) if z.shape != shape else z, depth)

    return SharedArray(ctx, shape, x.frac + y.frac, ctx.spawn(run()))

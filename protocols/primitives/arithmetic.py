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
from typing import Any

import numpy as np

from mpc import ring
from protocols.primitives import truncation
from protocols.primitives.core import Cost, Engine, Exchange, Material, Spec, run_protocol
from protocols.primitives.shared import SharedArray, public_ring

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


def triple_spec(shape_a: tuple[int, ...], shape_b: tuple[int, ...], shape_c: tuple[int, ...],
                product: Product) -> Spec:
    """A (matrix) Beaver triple: uniform a and b, and c = product(a, b) secret-shared."""
    pieces = product is elementwise and shape_a == shape_b == shape_c  # no broadcasting
    return (Spec(elementwise=pieces).random("a", shape_a).random("b", shape_b)
            .shared("c", shape_c, lambda env: product(env["a"], env["b"])))


def beaver(ctx: Engine, x: SharedArray, y: SharedArray, kind: str) -> SharedArray:
    """z = x * y (kind 'mul') or x @ y (kind 'matmul'), both shared. Collective, 1 online round."""
    product: Product = elementwise if kind == "mul" else ring_matmul
    shape = product_shape(kind, x.shape, y.shape)
    nx = x.size

    async def body(io: Exchange, mat: Material, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
        opened = np.empty(nx + y.size, dtype=np.uint64)  # d_i and e_i, written in place: one buffer to send
        np.subtract(xs, mat.a, out=opened[:nx].reshape(x.shape))
        np.subtract(ys, mat.b, out=opened[nx:].reshape(y.shape))
        total = await io.open(opened)
        d = total[:nx].reshape(x.shape)
        e = total[nx:].reshape(y.shape)
        # z_i = c_i + d b_i + a_i e (+ d e at the first party) = c_i + d (b_i [+ e]) + a_i e: two products
        b = np.add(mat.b, e, dtype=np.uint64) if io.first else mat.b
        with np.errstate(over="ignore"):  # 0-d products are numpy scalars, which warn on wrap-around
            if kind == "matmul":
                return np.add(ring.matmul_sum([(d, b), (mat.a, e)]), mat.c, dtype=np.uint64)
            z = np.multiply(d, b, dtype=np.uint64)
            if z.ndim == 0:
                return np.asarray(z + mat.a * e + mat.c, dtype=np.uint64)
            z += np.multiply(mat.a, e, dtype=np.uint64)
            z += mat.c
            return z

    def plain(xv: np.ndarray, yv: np.ndarray) -> np.ndarray:
        check_product(ctx, kind, xv, yv, x.frac_bits + y.frac_bits)
        with np.errstate(over="ignore"):
            return np.asarray(product(xv, yv), dtype=np.uint64)

    spec = triple_spec(x.shape, y.shape, shape, product)
    cost = Cost(1, 1, 8 * (x.size + y.size))
    return run_protocol(ctx, kind, spec, body, [x, y], [(shape, x.frac_bits + y.frac_bits)], plain=plain, cost=cost)[0]


def check_product(ctx: Engine, kind: str, xv: np.ndarray, yv: np.ndarray, frac: int) -> None:
    """On cleartext values (emulation): a product whose exact value leaves the ring range where it is correct
    (2^62 ring units if it will be truncated, which the truncation needs; 2^63 for integers) is reported."""
    limit = 2.0**62 if frac > ctx.frac_bits else 2.0**63
    xs, ys = np.abs(ring.signed(xv).astype(np.float64)), np.abs(ring.signed(yv).astype(np.float64))
    exact = xs * ys if kind == "mul" else np.abs(xs) @ np.abs(ys)
    biggest = float(np.max(exact, initial=0.0))
    if biggest >= limit:
        real = biggest / 2.0**frac
        ctx.backend.report(ctx, kind, f"product of magnitude {real:.4g} is beyond the fixed-point range "
                        f"(|x*y| < 2^{int(np.log2(limit)) - frac} = {limit / 2.0**frac:.4g}): the secure result "
                        "would be wrong")


def public_product(x: Any, y: Any, kind: str, frac_bits: int) -> SharedArray:
    """x * y or x @ y with one operand public: local, no communication (before any truncation)."""
    shared, public, shared_left = (x, y, True) if isinstance(x, SharedArray) else (y, x, False)
    const = np.asarray(public)
    cfrac = frac_bits if const.dtype.kind == "f" else 0
    c = public_ring(const, cfrac)
    fn = elementwise if kind == "mul" else ring_matmul
    sx, sy = (shared.shape, c.shape) if shared_left else (c.shape, shared.shape)
    shape = product_shape(kind, sx, sy)
    emulated_check(shared, c, kind, shared.frac_bits + cfrac, shared_left)
    if shared_left:
        return shared.local(lambda s: fn(s, c), shape, frac=shared.frac_bits + cfrac)
    return shared.local(lambda s: fn(c, s), shape, frac=shared.frac_bits + cfrac)


def emulated_check(shared: SharedArray, c: np.ndarray, kind: str, frac: int, shared_left: bool) -> None:
    """The range check of a product by a public value, on the shared value's cleartext (emulation only)."""
    ctx: Any = shared.ctx

    def check(value: np.ndarray) -> None:
        xv, yv = (value, c) if shared_left else (c, value)
        check_product(ctx, kind, xv, yv, frac)

    ctx.backend.check_later(ctx, kind, [shared], check)


def product(ctx: Engine, x: Any, y: Any, kind: str, *, frac_bits: int, truncate: bool = True,
            method: str | None = None) -> SharedArray:
    """x * y or x @ y, shared or public operands; a fixed-point result is truncated back to frac_bits
    unless `truncate=False` (it then keeps up to 2 frac_bits fractional bits, e.g. for a fused ReLU)."""
    if isinstance(x, SharedArray) and isinstance(y, SharedArray):
        z = beaver(ctx, x, y, kind)
    elif isinstance(x, SharedArray) or isinstance(y, SharedArray):
        z = public_product(x, y, kind, frac_bits)
    else:
        raise TypeError(f"{kind}: needs at least one shared operand")
    if truncate and z.frac_bits > frac_bits:
        return truncation.truncate(ctx, z, z.frac_bits - frac_bits, method)
    return z

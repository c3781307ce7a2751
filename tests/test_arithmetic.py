"""Secure arithmetic against numpy on the in-memory transport, the helper dealing (with parties as processes:
tests/test_bench_latency.py)."""

from __future__ import annotations

import asyncio
import functools

import numpy as np
import pytest

from mpc.transport.frames import HEADER_SIZE
from protocols.interface import context
from protocols.interface.context import Context
from protocols.interface.testing import run_local_with_test_dealer
from protocols.primitives.core import Exchange
from protocols.primitives.shared import SharedArray, resolved

# Protocol maths on the in-memory transport (no sockets; the same rounds and bytes, tests/test_memory_transport.py);
# every operation also runs with parties as processes in tests/test_cli_launch.py, test_comparison.py, test_fraud.py.
run_local = functools.partial(context.run_local, transport="memory")

RNG = np.random.default_rng(20261121)  # test data only; shares use the cryptographic PRG
F = 16
LSB = 2.0**-F


def share(ctx: Context, owner: str, value: np.ndarray) -> asyncio.Task[SharedArray]:
    """Every party calls input; only the owner passes the value (the others pass nothing)."""
    return ctx.input(owner, value if ctx.name == owner else None)


def opened(out: dict, name: str = "bank_a"):
    return out[name].value


def wrap_mul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a.astype(np.uint64) * b.astype(np.uint64)).view(np.int64)


def wrap_matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.matmul(a.astype(np.uint64), b.astype(np.uint64)).view(np.int64)


# -- integers, exact mod 2^64 ------------------------------------------------------------------------

INT_CASES = {
    "random": (RNG.integers(-(2**62), 2**62, 1000), RNG.integers(-(2**62), 2**62, 1000)),
    "edges": (np.array([0, -1, 1, 2**63 - 1, -(2**63), 12345, -1, 0]),
              np.array([0, -1, -1, 2**63 - 1, -(2**63), -(2**40), 2**63 - 1, 7])),
    "empty": (np.zeros(0, np.int64), np.zeros(0, np.int64)),
    "2d broadcast": (RNG.integers(-1000, 1000, (4, 5)), RNG.integers(-1000, 1000, (1, 5))),
    "3d": (RNG.integers(-(2**40), 2**40, (2, 3, 4)), RNG.integers(-(2**40), 2**40, (2, 3, 4))),
}


@pytest.mark.parametrize("n", [2, 3, 4])
@pytest.mark.parametrize("case", sorted(INT_CASES))
def test_integer_ops_exact(make_topology, n: int, case: str) -> None:
    a, b = (v.astype(np.int64) for v in INT_CASES[case])
    owners = ("bank_a", "bank_b") if n == 2 else ("bank_b", "bank_c")

    async def program(ctx: Context):
        x, y = await share(ctx, owners[0], a), await share(ctx, owners[1], b)
        results = [x * y, x + y, x - y, -x, y * 3, 5 - x, (x * y).sum(), x * x * y]
        return [await ctx.reveal(r) for r in results]

    out = run_local(make_topology(n), program)
    with np.errstate(over="ignore"):
        expect = [wrap_mul(a, b), a + b, a - b, -a, b * 3, 5 - a, np.array(wrap_mul(a, b).sum()),
                  wrap_mul(wrap_mul(a, a), b)]
    for name in out:
        if name == "helper":
            assert out[name].value == [None] * len(expect)
            continue
        for got, want in zip(out[name].value, expect, strict=True):
            assert got.dtype == np.int64
            np.testing.assert_array_equal(got, np.broadcast_to(want, got.shape))


@pytest.mark.parametrize("n", [2, 3])
@pytest.mark.parametrize(("sa", "sb"), [((3, 4), (4, 5)), ((6,), (6,)), ((2, 3, 4), (2, 4, 2)), ((5, 4), (4,)),
                                        ((0, 3), (3, 2)), ((1, 1), (1, 1))])
def test_integer_matmul_exact(make_topology, n: int, sa, sb) -> None:
    a = RNG.integers(-(2**62), 2**62, sa)
    b = RNG.integers(-(2**62), 2**62, sb)

    async def program(ctx: Context):
        x, y = await share(ctx, "bank_a", a), await share(ctx, "bank_b", b)
        return await ctx.reveal(x @ y), await ctx.reveal(x @ b), await ctx.reveal(a @ y)

    out = run_local(make_topology(n), program)
    want = wrap_matmul(a, b)
    for got in opened(out):
        np.testing.assert_array_equal(got, want)


# -- fixed point -------------------------------------------------------------------------------------

FIX_CASES = {
    "random": (RNG.uniform(-1000, 1000, 2000), RNG.uniform(-1000, 1000, 2000)),
    "edges": (np.array([0.0, -1.0, 1.0, LSB, -LSB, 3e4, -3e4, 0.5]),
              np.array([0.0, -1.0, -1.0, LSB, LSB, 3e4, 3e4, -0.5])),
    "empty": (np.zeros(0), np.zeros(0)),
    "2d": (RNG.uniform(-50, 50, (7, 3)), RNG.uniform(-50, 50, (7, 3))),
}


def assert_fixed_close(got: np.ndarray, want: np.ndarray, scale: np.ndarray | float) -> None:
    """Within the documented bound: input encoding (half an LSB each, times the other operand) plus
    one LSB of truncation, plus float64 rounding of the reference."""
    bound = (np.abs(scale) + 2) * LSB + 1e-9 * np.abs(want)
    assert (np.abs(got - want) <= bound).all(), np.abs(got - want).max()


@pytest.mark.parametrize("method", ["dealer", "local"])
@pytest.mark.parametrize("case", sorted(FIX_CASES))
def test_fixed_point_products(make_topology, method: str, case: str) -> None:
    a, b = FIX_CASES[case]
    if method == "local":
        # Local truncation fails (by ~2^(64-2f) in real terms) with probability ~2^(k+1-64) for raw
        # values below 2^k: keep products below 2^4 so this test's failure chance is ~2^-27 per element.
        a, b = np.clip(a, -4, 4), np.clip(b, -4, 4)

    async def program(ctx: Context):
        ctx.truncation = method
        x, y = await share(ctx, "bank_a", a), await share(ctx, "bank_b", b)
        z = x * y
        return [await ctx.reveal(v) for v in (z, x + y, x * 0.25, x - 1.5, z * y)]

    out = run_local(make_topology(2), program)
    got = opened(out, "bank_b")
    assert all(g.dtype == np.float64 for g in got)
    assert_fixed_close(got[0], a * b, np.abs(a) + np.abs(b))
    np.testing.assert_allclose(got[1], a + b, atol=2 * LSB)
    assert_fixed_close(got[2], a * 0.25, 1)
    np.testing.assert_allclose(got[3], a - 1.5, atol=LSB)
    # a dependent product (where it stays in the documented range): the first error is scaled by |b|
    ok = np.abs(a * b * b) < 2.0**29
    assert_fixed_close(got[4][ok], (a * b * b)[ok],
                       ((np.abs(a) + np.abs(b) + 3) * (np.abs(b) + 1) + np.abs(a * b))[ok])


@pytest.mark.parametrize("n", [3, 4])
def test_fixed_point_many_parties(make_topology, n: int) -> None:
    a, b = RNG.uniform(-100, 100, (5, 6)), RNG.uniform(-100, 100, (6, 2))

    async def program(ctx: Context):
        x, y = await share(ctx, "bank_a", a), await share(ctx, ctx.compute_parties[-1], b)
        return await ctx.reveal(x @ y), await ctx.reveal(x[:2, :2] * y[:2, :])

    out = run_local(make_topology(n), program)
    mm, el = opened(out)
    assert_fixed_close(mm, a @ b, 6 * (np.abs(a).max() + np.abs(b).max()))
    assert_fixed_close(el, a[:2, :2] * b[:2, :], np.abs(a[:2, :2]) + np.abs(b[:2, :]))


def test_dealer_truncation_never_fails_large_in_range(make_topology) -> None:
    """Products near the top of the documented range (|x*y| < 2^30 for f = 16) stay within one LSB."""
    a = RNG.uniform(-2**15, 2**15, 20000)
    b = RNG.uniform(-2**14.9, 2**14.9, 20000)

    async def program(ctx: Context):
        x, y = await share(ctx, "bank_a", a), await share(ctx, "bank_b", b)
        return await ctx.reveal(x * y)

    got = opened(run_local(make_topology(2), program))
    assert_fixed_close(got, a * b, np.abs(a) + np.abs(b))


def test_shape_operations_are_local(make_topology) -> None:
    a = RNG.integers(-100, 100, (2, 3, 4))

    async def program(ctx: Context):
        x = await share(ctx, "bank_a", a)
        views = [x[1], x[:, 1:, ::2], x.reshape(6, 4), x.transpose(2, 0, 1), x.T, x.sum(axis=1), x.flatten(),
                 ctx.concatenate([x, x], axis=2), ctx.stack([x[0], x[1]]), x[..., 0]]
        return [await ctx.reveal(v) for v in views], ctx.party.stats.total(phase="online").messages_sent

    out = run_local(make_topology(2), program)
    views, _ = opened(out)
    want = [a[1], a[:, 1:, ::2], a.reshape(6, 4), a.transpose(2, 0, 1), a.T, a.sum(axis=1), a.flatten(),
            np.concatenate([a, a], axis=2), np.stack([a[0], a[1]]), a[..., 0]]
    for got, w in zip(views, want, strict=True):
        np.testing.assert_array_equal(got, w)


def test_input_errors(make_topology) -> None:
    async def program(ctx: Context):
        with pytest.raises(ValueError, match="compute party"):
            ctx.input("helper", np.zeros(2))
        return True

    assert all(o.value for o in run_local(make_topology(2), program).values())


# -- measured rounds and bytes -----------------------------------------------------------------------

async def depths(inputs: list[SharedArray], outputs: list[SharedArray]) -> tuple[int, int]:
    """(depth at which the inputs were available, depth of the outputs) on this party."""
    return max([await x.depth() for x in inputs]), max([await z.depth() for z in outputs])


def rounds_of(out: dict, index: int = 0) -> int:
    """Online rounds of the ops between inputs and outputs, over all compute parties: the deepest output
    minus the depth at which every party had the inputs (the owner of an input has it at depth 0)."""
    pairs = [o.value[index] for name, o in out.items() if name != "helper"]
    return max(end for _, end in pairs) - max(start for start, _ in pairs)


def test_product_is_one_round_16_bytes_per_element(make_topology) -> None:
    n = 1000
    a, b = RNG.integers(0, 100, n), RNG.integers(0, 100, n)

    async def program(ctx: Context):
        x, y = await share(ctx, "bank_a", a), await share(ctx, "bank_b", b)
        before = ctx.party.stats.copy()
        z = x * y
        rounds = await depths([x, y], [z])
        traffic = ctx.party.stats.since(before)
        result = await ctx.reveal(z)
        return rounds, traffic.total("online", "mul").bytes_sent, traffic.total("offline", "mul"), result

    out = run_local(make_topology(2), program)
    assert rounds_of(out) == 1
    for name in ("bank_a", "bank_b"):
        _, online, offline, result = out[name].value
        assert online == 16 * n + HEADER_SIZE
        np.testing.assert_array_equal(result, a * b)
    # dealer: one correction array of 8 bytes per element, to the last compute party only
    assert out["bank_b"].value[2].bytes_received == 8 * n + HEADER_SIZE
    assert out["bank_a"].value[2].bytes_received == 0
    helper = out["helper"].stats.total("offline", "mul")
    assert helper.bytes_sent == 8 * n + HEADER_SIZE
    assert out["helper"].stats.total("online").bytes_sent == 0


def test_hundred_independent_products_share_one_round(make_topology) -> None:
    a, b = RNG.integers(-50, 50, (100, 10)), RNG.integers(-50, 50, (100, 10))

    async def program(ctx: Context):
        x, y = await share(ctx, "bank_a", a), await share(ctx, "bank_b", b)
        zs = [x[i] * y[i] for i in range(100)]
        rounds = await depths([x, y], zs)
        return rounds, await ctx.reveal(ctx.stack(zs))

    out = run_local(make_topology(2), program)
    assert rounds_of(out) == 1
    np.testing.assert_array_equal(opened(out)[1], a * b)


def test_matmul_is_one_round_and_traffic_grows_with_operands(make_topology) -> None:
    a, b = RNG.integers(-50, 50, (30, 40)), RNG.integers(-50, 50, (40, 20))

    async def program(ctx: Context):
        x, y = await share(ctx, "bank_a", a), await share(ctx, "bank_b", b)
        before = ctx.party.stats.copy()
        z = x @ y
        rounds = await depths([x, y], [z])
        traffic = ctx.party.stats.since(before).total("online", "matmul").bytes_sent
        return rounds, traffic, await ctx.reveal(z)

    out = run_local(make_topology(2), program)
    _, traffic, result = opened(out)
    assert rounds_of(out) == 1
    assert traffic == 8 * (30 * 40 + 40 * 20) + HEADER_SIZE
    np.testing.assert_array_equal(result, a @ b)
    assert out["helper"].stats.total("offline", "matmul").bytes_sent == 8 * 30 * 20 + HEADER_SIZE


@pytest.mark.parametrize(("method", "per_product"), [("dealer", 2), ("local", 1)])
def test_dependent_fixed_point_products_rounds(make_topology, method: str, per_product: int) -> None:
    """k dependent fixed-point products: 2k rounds with dealer truncation (product, then the masked
    opening of truncation), k rounds with local truncation."""
    k = 4
    a = RNG.uniform(0.5, 1.5, 50)

    async def program(ctx: Context):
        ctx.truncation = method
        x = await share(ctx, "bank_a", a)
        y = await share(ctx, "bank_b", a)
        z = x
        for _ in range(k):
            z = z * y
        return await depths([x, y], [z]), await ctx.reveal(z)

    out = run_local(make_topology(2), program)
    assert rounds_of(out) == per_product * k
    np.testing.assert_allclose(opened(out)[1], a ** (k + 1), atol=1e-3)


def test_public_products_cost_no_online_round_except_truncation(make_topology) -> None:
    a = RNG.uniform(-10, 10, (8, 4))
    w = RNG.uniform(-1, 1, (4, 3))

    async def program(ctx: Context):
        x = await share(ctx, "bank_a", a)
        ints, fixed = x * 3, x @ w
        return await depths([x], [ints]), await depths([x], [fixed]), await ctx.reveal(fixed)

    out = run_local(make_topology(2), program)
    assert rounds_of(out, 0) == 0  # by a public integer: local
    assert rounds_of(out, 1) == 1  # by public reals: local product, then the truncation's opening
    assert_fixed_close(opened(out)[2], a @ w, 4 * (np.abs(a).max() + 1))


def test_local_test_dealer_without_helper(make_topology) -> None:
    a, b = RNG.integers(-9, 9, 10), RNG.integers(-9, 9, 10)

    async def program(ctx: Context):
        x, y = await share(ctx, "bank_a", a), await share(ctx, "bank_b", b)
        return await ctx.reveal(x * y)

    out = run_local_with_test_dealer(make_topology(2, helper=False), program)
    np.testing.assert_array_equal(opened(out), a * b)


def test_no_helper_is_a_clear_error(make_topology) -> None:
    from mpc.runtime import PartyFailed

    async def program(ctx: Context):
        return None

    with pytest.raises(PartyFailed, match="no helper party"):
        run_local(make_topology(2, helper=False), program)


def test_reveal_to_one_party(make_topology) -> None:
    a = RNG.integers(-9, 9, 5)

    async def program(ctx: Context):
        x = await share(ctx, "bank_a", a)
        return await ctx.reveal(x, to=["bank_b"])

    out = run_local(make_topology(2), program)
    assert out["bank_a"].value is None and out["helper"].value is None
    np.testing.assert_array_equal(out["bank_b"].value, a)


def test_a_failed_run_prints_one_error_not_a_traceback_per_pending_operation(
        make_topology, caplog: pytest.LogCaptureFixture) -> None:
    """A peer stopping mid-run fails many pending operations at once: the run reports it once."""
    import gc
    import logging

    from mpc.runtime import PartyFailed

    async def program(ctx: Context):
        xs = [ctx.input("bank_a", np.arange(4) if ctx.name == "bank_a" else None, shape=(4,), fixed=False)
              for _ in range(20)]
        products = [x * x for x in xs]
        if ctx.name == "bank_b":
            raise ValueError("bank_b stops here")
        return [await ctx.reveal(p) for p in products]

    caplog.set_level(logging.ERROR, logger="asyncio")
    with pytest.raises(PartyFailed, match="bank_b stops here"):
        run_local(make_topology(2), program)
    gc.collect()  # unretrieved task exceptions are reported when the tasks are collected
    assert "never retrieved" not in caplog.text


# -- every operation on 0-d, empty and size-1 shapes ---------------------------------------------------

EDGE_SHAPES = [(), (0,), (1,), (1, 1), (0, 3)]


def _edge_values(shape: tuple[int, ...], seed: int) -> np.ndarray:
    """Values on the fixed-point grid, so every result but a truncated product is exact."""
    rng = np.random.default_rng(seed)
    return np.asarray(np.round(rng.uniform(-8, 8, shape) * 2**F) / 2**F)


@pytest.mark.filterwarnings("error::RuntimeWarning")  # numpy scalars warn on ring wrap-around
@pytest.mark.parametrize(("truncation", "comparison"), [("dealer", "dcf"), ("local", "bits")])
@pytest.mark.parametrize("shape", EDGE_SHAPES, ids=str)
def test_every_operation_on_0d_empty_and_size_1_shapes(make_topology, shape, truncation: str,
                                                       comparison: str) -> None:
    """Each result has numpy's shape and value, and opening it is accepted by the peers (a 0-d product
    once came back from truncation as shape (1,), and its reveal aborted the session)."""
    a, b = _edge_values(shape, 1), _edge_values(shape, 2)
    ints = np.asarray(RNG.integers(-50, 50, shape))

    async def program(ctx: Context):
        ctx.truncation = truncation
        x, y = await share(ctx, "bank_a", a), await share(ctx, "bank_b", b)
        k = await share(ctx, "bank_b", ints)
        outs = {"input": x, "add": x + y, "sub": x - y, "add public": 1.5 - x, "neg": -x, "mul": x * y,
                "mul public": x * 2.5, "mul int": x * 3, "int mul": k * k, "sum": x.sum(), "sum mul": x.sum() * 0.2,
                "sum sum": (x * y).sum(), "truncate": ctx.truncate(ctx.mul(x, y, truncate=False), F),
                "lt": x < y, "le": x <= y, "gt": x > y, "ge": x >= y, "eq": x == y, "ne": x != y, "lt public": x < 0.5,
                "eq int": k == 3, "sign": ctx.sign(x), "relu": ctx.relu(x), "maximum": ctx.maximum(x, y),
                "minimum": ctx.minimum(x, 0.25), "where": ctx.where(x < y, x, y),
                "where public": ctx.where(k < 0, 1, 2)}
        if len(shape) >= 1 and shape[-1] > 0:
            outs.update({"max": ctx.max(x), "argmax": ctx.argmax(x), "dot": x.dot(y.T if x.ndim > 1 else y),
                         "matmul public": x @ np.ones(shape[-1])})
        got = {name: await ctx.reveal(v) for name, v in outs.items()}
        got["reveal to one"] = await ctx.reveal(x * y, to=["bank_b"])
        return got

    got = run_local(make_topology(2, comparison=comparison), program)["bank_b"].value
    with np.errstate(over="ignore"):
        want = {"input": a, "add": a + b, "sub": a - b, "add public": 1.5 - a, "neg": -a, "mul": a * b,
                "mul public": a * 2.5, "mul int": a * 3, "int mul": ints * ints, "sum": a.sum(),
                "sum mul": a.sum() * 0.2,
                "sum sum": (a * b).sum(), "truncate": a * b, "lt": a < b, "le": a <= b, "gt": a > b, "ge": a >= b,
                "eq": a == b, "ne": a != b, "lt public": a < 0.5, "eq int": ints == 3, "sign": np.sign(a),
                "relu": np.maximum(a, 0), "maximum": np.maximum(a, b), "minimum": np.minimum(a, 0.25),
                "where": np.where(a < b, a, b), "where public": np.where(ints < 0, 1, 2), "reveal to one": a * b}
    if len(shape) >= 1 and shape[-1] > 0:
        want.update({"max": a.max(axis=-1), "argmax": a.argmax(axis=-1), "dot": a.dot(b.T if a.ndim > 1 else b),
                     "matmul public": a @ np.ones(shape[-1])})
    assert set(got) == set(want)
    for name, w in want.items():
        g, w = got[name], np.asarray(w)
        assert isinstance(g, np.ndarray) and g.shape == w.shape, (name, getattr(g, "shape", g), w.shape)
        # products are truncated: within an LSB per product term (a sum of k terms: k LSBs)
        np.testing.assert_allclose(g, w, atol=(max(shape[-1:], default=1) + 1) * LSB, err_msg=name)


@pytest.mark.parametrize(("sa", "sb"), [((0,), (0,)), ((1,), (1,)), ((3,), (3,)), ((1,), (1, 1)), ((1, 1), (1,)),
                                        ((2, 0), (0, 3)), ((0, 2), (2, 1))], ids=str)
def test_matmul_and_dot_on_edge_shapes(make_topology, sa, sb) -> None:
    """A vector dot product has a 0-d result; an inner dimension of 0 gives zeros."""
    a, b = _edge_values(sa, 3), _edge_values(sb, 4)

    async def program(ctx: Context):
        x, y = await share(ctx, "bank_a", a), await share(ctx, "bank_b", b)
        return [await ctx.reveal(v) for v in (x @ y, x.dot(y), ctx.dot(x, b), a @ y)]

    for got in opened(run_local(make_topology(2), program)):
        want = a @ b
        assert got.shape == want.shape
        np.testing.assert_allclose(got, want, atol=(max(sa[-1:], default=1) + 1) * LSB)


def test_opened_values_and_shares_keep_their_shape(make_topology) -> None:
    """The class behind a 0-d product's failed reveal: an opening keeps a 0-d shape, and a share whose
    shape differs from its array's is caught on the party that made it, not by its peers."""
    async def program(ctx: Context):
        io = Exchange(ctx, ctx.party.new_op("probe"), 0)
        opened_0d = await io.open(np.array(ctx.compute_parties.index(ctx.name) + 1, np.uint64))
        wrong = resolved(ctx, (), 0, np.zeros(1, np.uint64))
        with pytest.raises(RuntimeError, match=r"a share of shape \(1,\) for a shared array of shape \(\)"):
            await wrong.resolve()
        return opened_0d

    out = run_local_with_test_dealer(make_topology(2, helper=False), program)
    assert out["bank_a"].value.shape == () and int(out["bank_a"].value) == 3


@pytest.mark.parametrize("method", ["dealer", "local"])
def test_truncation_is_floor_or_one_lsb_above_and_unbiased(make_topology, method: str) -> None:
    """As documented: a truncated product is floor(x*y) or one LSB above, never below; up with probability
    the dropped fraction (so unbiased); exact when no bit is dropped. Also the fused ReLU-truncation gate."""
    n = 3000
    raw_a, raw_b = RNG.integers(-(2**20), 2**20, n), RNG.integers(-(2**20), 2**20, n)
    raw_b[:300] = 1 << F  # times exactly 1.0: nothing dropped

    async def program(ctx: Context):
        ctx.truncation = method
        x, y = await share(ctx, "bank_a", raw_a / 2**F), await share(ctx, "bank_b", raw_b / 2**F)
        return await ctx.reveal(x * y), await ctx.reveal(ctx.relu(ctx.mul(x, y, truncate=False), "dcf"))

    product, rectified = opened(run_local(make_topology(2), program))
    floor = (raw_a * raw_b) >> F
    dropped = ((raw_a * raw_b) % 2**F) / 2**F
    up = np.round(product * 2**F).astype(np.int64) - floor
    assert set(np.unique(up)) == {0, 1}
    assert (up[:300] == 0).all()
    assert abs((up - dropped).mean()) < 0.05  # ~5 standard errors: rounding up follows the dropped fraction
    up_relu = np.round(rectified * 2**F).astype(np.int64) - np.maximum(floor, 0)
    assert set(np.unique(up_relu)) == {0, 1}


def test_undeclared_inputs_after_hold_and_duplicate_recipients(make_topology) -> None:
    """An input whose shape only its owner knows, issued after ctx.hold(): its metadata goes at once (the
    others need it to reach release()), its share after the barrier; a recipient named twice gets it once."""
    async def program(ctx: Context):
        ctx.hold()
        x = await ctx.input("bank_a", np.arange(4.0) if ctx.name == "bank_a" else None)
        y = ctx.input("bank_b", np.ones(4) if ctx.name == "bank_b" else None, shape=(4,), fixed=True)
        z = x * y
        await ctx.release()
        return await ctx.reveal(z, to=["bank_a", "bank_a"])

    out = run_local(make_topology(2, timeout_s=10), program, transport="memory")
    np.testing.assert_array_equal(out["bank_a"].value, np.arange(4.0))
    assert out["bank_b"].value is None


@pytest.mark.parametrize("n_compute", [2, 3])
def test_large_triples_and_truncation_pairs_are_dealt_in_pieces(make_topology, n_compute: int) -> None:
    """Beaver triples and truncation pairs over more than one piece (protocols/primitives/material.py, PIECE) are
    dealt piece by piece as their own messages, over real sockets, and give numpy's results: the pieces'
    PRG streams start where the parties' whole streams have them."""
    from protocols.primitives.material import PIECE

    n = 2 * PIECE + 1001  # two whole pieces and a ragged one
    a = RNG.integers(-(2**31), 2**31, n)
    b = RNG.integers(-(2**31), 2**31, n)
    x = np.round(RNG.uniform(-1000, 1000, n) * 2**F) / 2**F

    async def program(ctx: Context):
        ai, bi = await share(ctx, "bank_a", a), await share(ctx, "bank_b", b)
        xs = await share(ctx, "bank_a", x)
        before = ctx.party.stats.copy()
        prod = ai * bi
        half = xs * 0.5  # one truncation pair per element
        products = await ctx.reveal(prod), await ctx.reveal(half)
        return products, ctx.party.stats.since(before).total("offline").messages_sent

    out = context.run_local(make_topology(n_compute), program)
    (prod, half), _ = out["bank_a"].value
    np.testing.assert_array_equal(prod, a * b)
    assert np.all(np.abs(half - x / 2) <= LSB)
    # to the last party: three pieces of c's corrections, three of the pair's; to nobody else anything
    assert out["helper"].value[1] == 6

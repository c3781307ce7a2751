"""numpy on shared values: numpy functions, methods and operators compute securely and match numpy, or
raise a TypeError naming the operation."""

from __future__ import annotations

import numpy as np
import pytest

from protocols.interface.context import Context, run_local
from protocols.interface.testing import run_local_with_test_dealer

F = 16
STEP = 2.0**-F
RNG = np.random.default_rng(20261128)


def run(make_topology, program, n_compute: int = 2, dealer: str = "local-test"):  # type: ignore[no-untyped-def]
    transport = "zmq" if dealer == "helper" else "memory"  # protocol maths in memory; the helper over sockets
    runner = run_local if dealer == "helper" else run_local_with_test_dealer
    out = runner(make_topology(n_compute, helper=dealer == "helper"), program, transport=transport)
    return out["bank_a"].value


@pytest.mark.parametrize("method", ["dcf", "compact", "bits"])
def test_numpy_idioms_match_numpy(make_topology, method: str) -> None:
    a = np.round(RNG.uniform(-50, 50, (6, 5)) * 2**F) / 2**F  # exact in fixed point: errors are the ops' own
    a[0, :2] = 0.0
    a[1, 0] = a[1, 1]  # a tie
    w = np.round(RNG.uniform(-1, 1, (5, 3)) * 2**F) / 2**F
    ints = RNG.integers(-1000, 1000, 40)
    ints[:3] = [0, -1, 999]

    async def program(ctx: Context):
        ctx.comparison = method
        x = await ctx.input("bank_a", a if ctx.name == "bank_a" else None)
        wt = await ctx.input("bank_b", w if ctx.name == "bank_b" else None)
        k = await ctx.input("bank_b", ints if ctx.name == "bank_b" else None)
        outs = {
            "np.sum": np.sum(x), "np.sum axis": np.sum(x, axis=0), "np.mean": np.mean(x), ".mean(1)": x.mean(axis=1),
            "x / 2": x / 2, "x / 7": x / 7.0, "x / -0.25": x / -0.25, "x ** 2": x ** 2, "x ** 3": x[:2] ** 3,
            "abs": abs(x), "np.abs": np.abs(x), "np.maximum": np.maximum(x, 0), "np.minimum": np.minimum(x, 1.5),
            "np.dot": np.dot(x, wt), "np.matmul": np.matmul(x, wt), "x.max()": x.max(), "x.max(0)": x.max(axis=0),
            "x.min(1)": x.min(axis=1), "argmax": x.argmax(axis=1), "argmin": x.argmin(), "clip": x.clip(-10, 10),
            "np.clip": np.clip(x, -5.0, None), "np.where": np.where(x > 0, x, 0.5 * x),
            "concat": np.concatenate([x, x[:1]]), "stack": np.stack([x[0], x[1]]), "neg sub": 3.0 - x,
            "k // 7": k // 7, "k // 1": k // 1, "k.mean": k.mean(), "bits": (x[0] > 0) & (x[1] > 0),
            "or": (x[0] > 0) | (x[1] > 0), "xor": (x[0] > 0) ^ (x[1] > 0), "not": ~(x[0] > 0),
            "ndarray + x": np.ones(5) + x, "sign": np.sign(x), "square": np.square(x[0]),
        }
        revealed = {name: await ctx.reveal(v) for name, v in outs.items()}
        return revealed

    got = run(make_topology, program, 3 if method == "bits" else 2)
    expected = {
        "np.sum": a.sum(), "np.sum axis": a.sum(0), "np.mean": a.mean(), ".mean(1)": a.mean(1), "x / 2": a / 2,
        "x / 7": a / 7, "x / -0.25": a / -0.25, "x ** 2": a**2, "x ** 3": a[:2] ** 3, "abs": abs(a),
        "np.abs": np.abs(a), "np.maximum": np.maximum(a, 0), "np.minimum": np.minimum(a, 1.5), "np.dot": a @ w,
        "np.matmul": a @ w, "x.max()": a.max(), "x.max(0)": a.max(0), "x.min(1)": a.min(1),
        "argmax": a.argmax(1), "argmin": a.argmin(), "clip": a.clip(-10, 10), "np.clip": np.clip(a, -5.0, None),
        "np.where": np.where(a > 0, a, 0.5 * a), "concat": np.concatenate([a, a[:1]]), "stack": np.stack([a[0], a[1]]),
        "neg sub": 3.0 - a, "k // 7": ints // 7, "k // 1": ints // 1, "k.mean": ints.mean(),
        "bits": (a[0] > 0) & (a[1] > 0), "or": (a[0] > 0) | (a[1] > 0), "xor": (a[0] > 0) ^ (a[1] > 0),
        "not": ~(a[0] > 0), "ndarray + x": np.ones(5) + a, "sign": np.sign(a), "square": np.square(a[0]),
    }
    for name, want in expected.items():
        have = got[name]
        assert np.shape(have) == np.shape(want), name
        if np.asarray(want).dtype.kind in "iub":
            np.testing.assert_array_equal(have, np.asarray(want).astype(np.int64), err_msg=name)
        else:
            # one LSB per truncation; x ** 3 = (x * x) * x carries the first truncation's LSB times |x| <= 50
            tol = {"x ** 3": 60 * STEP}.get(name, 3 * STEP)
            np.testing.assert_allclose(have, want, atol=tol, err_msg=name)


def test_division_by_public_values_is_precise(make_topology) -> None:
    """x / c keeps one LSB of precision whatever c (1/c gets extra fractional bits): the mean of 95 values."""
    v = np.round(RNG.uniform(0, 100, 95) * 2**F) / 2**F

    async def program(ctx: Context):
        x = await ctx.input("bank_a", v if ctx.name == "bank_a" else None)
        return await ctx.reveal(x.mean()), await ctx.reveal(x / 95.0), await ctx.reveal(x / 1e4)

    mean, by95, by1e4 = run(make_topology, program)
    assert abs(mean - v.mean()) < 2 * STEP
    np.testing.assert_allclose(by95, v / 95, atol=2 * STEP)
    np.testing.assert_allclose(by1e4, v / 1e4, atol=2 * STEP)


@pytest.mark.parametrize("shape", [(), (0,), (1,), (0, 3)])
def test_reductions_and_divisions_on_edge_shapes(make_topology, shape: tuple[int, ...]) -> None:
    v = np.round(RNG.uniform(-3, 3, shape) * 2**F) / 2**F

    async def program(ctx: Context):
        x = await ctx.input("bank_a", v if ctx.name == "bank_a" else None)
        outs = [np.sum(x), x / 3, abs(x), x ** 2, np.maximum(x, 0)]
        if v.size:
            outs.append(x.mean())
        return [await ctx.reveal(o) for o in outs]

    got = run(make_topology, program)
    want = [v.sum(), v / 3, abs(v), v**2, np.maximum(v, 0)] + ([v.mean()] if v.size else [])
    for have, w in zip(got, want, strict=True):
        assert np.shape(have) == np.shape(w)
        np.testing.assert_allclose(have, w, atol=8 * STEP)  # x ** 2: one LSB times 2|x|


def _type_errors(*calls) -> list[str]:  # type: ignore[no-untyped-def]
    """The message of each call that raises TypeError (a call that does not raise adds nothing)."""
    errors = []
    for call in calls:
        try:
            call()
        except TypeError as exc:
            errors.append(str(exc))
    return errors


def test_unsupported_numpy_raises_a_clear_type_error(make_topology) -> None:
    async def program(ctx: Context):
        x = await ctx.input("bank_a", np.ones(3) if ctx.name == "bank_a" else None)
        return _type_errors(lambda: np.sin(x), lambda: np.argpartition(x, 1), lambda: np.asarray(x), lambda: x ** 0.5,
                            lambda: x // 2, lambda: np.cumprod(x))

    errors = run(make_topology, program)
    assert len(errors) == 6
    assert "numpy.sin is not supported on shared values" in errors[0]
    assert "numpy.argpartition is not supported" in errors[1] and "ctx.top_k" in errors[1]
    assert "reveal it" in errors[2]
    assert "public integer" in errors[3]
    assert "fixed-point" in errors[4]
    assert "cumprod" in errors[5]


def test_numpy_idioms_with_the_helper_dealing(make_topology) -> None:
    """The helper runs the same numpy code on shape-only placeholders and deals what it consumes."""
    v = RNG.uniform(-4, 4, 50)

    async def program(ctx: Context):
        x = await ctx.input("bank_a", v if ctx.name == "bank_a" else None)
        y = np.maximum(x, 0) / 2 + np.mean(x) - abs(x) ** 2
        return await ctx.reveal(y)

    got = run(make_topology, program, dealer="helper")
    np.testing.assert_allclose(got, np.maximum(v, 0) / 2 + v.mean() - abs(v) ** 2, atol=1e-3)


@pytest.mark.parametrize("d", [1, 2, 3, 7, 95, 1000, 2**20 + 1, 2**40 + 3])
def test_integer_floor_division_is_exact_over_the_whole_range(make_topology, d: int) -> None:
    """x // d as numpy, for |x| < 2^62; the one-round division under it is within -1..+2 units."""
    from protocols.primitives import truncation

    xs = np.concatenate([RNG.integers(-(2**61), 2**61, 2000), RNG.integers(-3 * d, 3 * d, 300),
                         [0, -1, 1, d - 1, d, -d, 2**61, -(2**61)]])

    async def program(ctx: Context):
        x = await ctx.input("bank_a", xs if ctx.name == "bank_a" else None)
        return await ctx.reveal(x // d), await ctx.reveal(truncation.divide_public(ctx, x, np.array(d)))

    exact, rough = run(make_topology, program)
    np.testing.assert_array_equal(exact, xs // d)
    assert set(np.unique(rough - xs // d)) <= {-1, 0, 1, 2}


def test_a_divisor_that_differs_on_the_helper_is_caught(make_topology) -> None:
    """The dealer's material depends on a public divisor: each party checks the helper used its own."""
    async def program(ctx: Context):
        x = await ctx.input("bank_a", np.arange(4.0) if ctx.name == "bank_a" else None)
        return await ctx.reveal(x / (3 if ctx.is_dealer else 5))

    with pytest.raises(Exception, match="the helper divided by another public divisor"):
        run(make_topology, program, dealer="helper")


def test_keywords_numpy_would_honour_are_refused_not_ignored(make_topology) -> None:
    async def program(ctx: Context):
        x = await ctx.input("bank_a", np.array([1.5, -2, 3.25, 7]) if ctx.name == "bank_a" else None)
        mask = np.array([True, False, True, False])
        return _type_errors(lambda: np.sum(x, where=mask), lambda: np.mean(x, where=mask),
                            lambda: np.max(x, initial=100.0), lambda: np.sum(x, out=np.zeros(())),
                            lambda: np.linalg.norm(x))

    errors = run(make_topology, program)
    assert errors[:4] == ["numpy.sum(where=) is not supported on shared values",
                          "numpy.mean(where=) is not supported on shared values",
                          "numpy.max(initial=) is not supported on shared values",
                          "numpy.sum(out=) is not supported on shared values"]
    assert errors[4].startswith("numpy.linalg.norm is not supported on shared values; use ctx.sqrt")


def test_more_numpy_and_small_public_divisors(make_topology) -> None:
    v = np.round(RNG.uniform(-8, 8, (3, 4)) * 2**F) / 2**F

    async def program(ctx: Context):
        x = await ctx.input("bank_a", v if ctx.name == "bank_a" else None)
        outs = [x / 1e-9, x / 0.3, x / -0.001, np.var(x, axis=0), np.std(x), np.cumsum(x, axis=1),
                np.hstack([x[0], np.ones(2)]), np.vstack([x[0], x[1]]), np.max(x, axis=1, keepdims=True),
                np.mean(x[:, :0], axis=0), np.ravel(x), np.expand_dims(x[0], 0)]
        return [await ctx.reveal(o) for o in outs]

    got = run(make_topology, program)
    want = [v / 1e-9, v / 0.3, v / -0.001, np.var(v, axis=0), np.std(v), np.cumsum(v, axis=1),
            np.hstack([v[0], np.ones(2)]), np.vstack([v[0], v[1]]), np.max(v, axis=1, keepdims=True),
            np.zeros(0), np.ravel(v), np.expand_dims(v[0], 0)]
    for i, (have, w) in enumerate(zip(got, want, strict=True)):
        assert np.shape(have) == np.shape(w), i
        np.testing.assert_allclose(have, w, rtol=2e-5, atol=2e-3 if i == 4 else 8 * STEP, err_msg=str(i))


def test_public_divisors_and_reduce_keywords_are_checked(make_topology) -> None:
    from protocols.primitives import truncation

    async def program(ctx: Context):
        x = await ctx.input("bank_a", np.arange(1, 4) if ctx.name == "bank_a" else None)
        errors = []
        for call in (lambda: truncation.divide_public(ctx, x, np.array(-3)),
                     lambda: truncation.divide_public(ctx, x, np.array(2.5)),
                     lambda: truncation.divide_public(ctx, x, np.array(2.0**63)),
                     lambda: np.add.reduce(x, initial=5)):
            try:
                call()
            except (TypeError, ValueError) as exc:
                errors.append(type(exc).__name__)
        return errors

    assert run(make_topology, program) == ["ValueError", "TypeError", "ValueError", "TypeError"]

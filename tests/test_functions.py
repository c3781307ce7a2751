"""sigmoid, tanh, exp, log, reciprocal, div, sqrt, rsqrt and softmax against numpy: the spline tables
over their whole domain (exact ring emulation), the secure gate against its ring formula, every operation
with the helper dealing (dcf) and with three compute parties (bits), rounds asserted, and `mpc bench`."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from mpc.config import ConfigError
from protocols.interface import functions
from protocols.interface.context import Context, run_local
from protocols.interface.testing import run_local_with_test_dealer
from protocols.primitives.gates import Piecewise
from tests.test_arithmetic import share

F = 16
LSB = 2.0**-F
RNG = np.random.default_rng(20261128)
ROOT = Path(__file__).resolve().parents[1]


def grid(x: np.ndarray) -> np.ndarray:
    """Values on the fixed-point grid: numpy then computes the function of the very value shared."""
    return np.round(np.asarray(x, dtype=np.float64) * 2**F) / 2**F


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1 + np.tanh(x / 2))  # no overflow warning for large |x|


def softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


# Stated error bounds (README, "Functions"): |secure - numpy| <= ABS + REL * |numpy|.
BOUNDS: dict[str, tuple[float, float]] = {
    "sigmoid": (7.5e-4, 0.0), "tanh": (3.7e-4, 0.0), "exp": (2 * LSB, 4e-4), "log": (1e-4, 0.0),
    "reciprocal": (2 * LSB, 1.5e-4), "sqrt": (2 * LSB, 1.5e-4), "rsqrt": (2 * LSB, 1.5e-4),
    "div": (4 * LSB, 1.5e-4), "softmax": (2e-4, 0.0)}
PLAIN: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "sigmoid": sigmoid, "tanh": np.tanh, "exp": lambda x: np.exp(np.minimum(x, 8.0)), "log": np.log,
         "reciprocal": lambda x: 1 / x, "sqrt": np.sqrt, "rsqrt": lambda x: 1 / np.sqrt(x)}
LOG2_DOMAIN = (-F, 46 - F)  # positive inputs: [2^-f, 2^(46-f))


def within(name: str, got: np.ndarray, want: np.ndarray) -> None:
    absolute, relative = BOUNDS[name]
    err = np.abs(np.asarray(got) - want)
    bound = absolute + relative * np.abs(want)
    assert got.shape == want.shape, (name, got.shape, want.shape)
    assert np.all(err <= bound), (name, float(np.max(err - bound)), np.asarray(want).ravel()[np.argmax(err - bound)])


# -- the tables, exactly as the ring evaluates them (no sockets) --------------------------------------

def ring_values(table: Piecewise, x: np.ndarray) -> np.ndarray:
    """The table's output before truncation, summed over bands, plus the truncation's one LSB."""
    return np.sum(functions.plain(table, np.round(x * 2**F).astype(np.int64)), axis=0)


@pytest.mark.parametrize("name", ["sigmoid", "tanh", "exp"])
def test_spline_tables_within_bound_over_the_real_line(name: str) -> None:
    x = grid(np.concatenate([np.linspace(-30, 12, 42_001), [0.0, -8, 8, -4.5, 4.5, -11, 2.0**30, -(2.0**30)]]))
    tables: dict[str, Callable[[int], Piecewise]] = {
        "sigmoid": functions.sigmoid_table, "tanh": functions.tanh_table, "exp": functions.exp_table}
    table = tables[name](F)
    got = ring_values(table, x)
    within(name, got, PLAIN[name](x))
    within(name, got + LSB, PLAIN[name](x))  # the truncation may add one unit in the last place


@pytest.mark.parametrize("kind", ["reciprocal", "rsqrt", "sqrt", "log"])
def test_mantissa_tables_over_one_to_four(kind: str) -> None:
    m = grid(np.linspace(1, 4, 30_001)[:-1])
    fn = {"reciprocal": lambda m: 1 / m, "rsqrt": lambda m: 1 / np.sqrt(m), "sqrt": np.sqrt, "log": np.log}[kind]
    err = np.abs(ring_values(functions.mantissa_table(kind, F), m) - fn(m))
    if kind == "log":
        assert np.max(err) <= 5.5e-5  # absolute: log(m) is 0 at 1
    else:
        assert np.max(err / fn(m)) <= 3.5e-5


def test_norm_table_is_exact() -> None:
    """m = x 4^-k in [1, 4) exactly (as a ring value), k the octave pair, for every power-of-4 edge."""
    k_lo, k_hi = functions._octaves(F)
    edges = np.array([4.0**k for k in range(k_lo, k_hi + 1)])
    x = grid(np.concatenate([edges, edges - LSB, edges + LSB, 2.0 ** RNG.uniform(*LOG2_DOMAIN, 2000)]))
    x = x[(x >= LSB) & (x < 2.0**LOG2_DOMAIN[1])]
    k = k_lo + np.searchsorted(edges, x, side="right") - 1
    for signed in (False, True):
        m, p = functions.plain(functions.norm_table("reciprocal", F, signed), np.round(x * 2**F).astype(np.int64))
        np.testing.assert_array_equal(m, x / 4.0**k)
        np.testing.assert_allclose(p, 4.0**-k, rtol=1e-6)
    # negative x: m = |x| 4^-k in (1, 4] (the interval [-4^(k+1), -4^k) holds -4^(k+1)), the value negated
    k_neg = np.maximum(k_lo + np.searchsorted(edges, x, side="left") - 1, k_lo)  # -2^-f: k_lo, m = 1
    m, p = functions.plain(functions.norm_table("reciprocal", F, True), -np.round(x * 2**F).astype(np.int64))
    np.testing.assert_array_equal(m, x / 4.0**k_neg)
    np.testing.assert_allclose(p, -(4.0**-k_neg), rtol=1e-6)


# -- the secure evaluation ----------------------------------------------------------------------------

EDGES = grid(np.array([0.0, LSB, -LSB, 1.0, -1.0, 2.0**29, -(2.0**29), 2.0**45, -(2.0**45)]))


@pytest.mark.parametrize("method,n", [("dcf", 2), ("compact", 2), ("bits", 3)])
def test_spline_gate_equals_its_ring_formula(make_topology, method: str, n: int) -> None:
    """Untruncated outputs equal the ring formula exactly, at every breakpoint and one LSB either side."""
    tables = [functions.sigmoid_table(F), functions.exp_table(F), functions.norm_table("reciprocal", F, True)]
    points = [np.array(t.breaks, dtype=np.float64) / 2**F for t in tables]
    near = [np.concatenate([p, p - LSB, p + LSB]) for p in points]
    x = np.concatenate([EDGES, *near, grid(RNG.uniform(-20, 20, 50))])

    async def program(ctx: Context):
        xs = await share(ctx, "bank_a", x)
        outs = [functions.piecewise(ctx, t, xs, method) for t in tables]
        return [[await ctx.reveal(o) for o in out] for out in outs]

    got = run_local_with_test_dealer(make_topology(n), program)["bank_a"].value
    for table, outs in zip(tables, got, strict=True):
        want = functions.plain(table, np.round(x * 2**F).astype(np.int64))
        for g, w in zip(outs, want, strict=True):
            np.testing.assert_array_equal(g, w)


def _cases() -> dict[str, np.ndarray]:
    reals = grid(np.concatenate([RNG.uniform(-12, 12, 400), [0.0, -8, 8, -4.5, 4.5, -11, 7.99, 2.0**30, -(2.0**30)]]))
    positive = grid(np.concatenate([2.0 ** RNG.uniform(*LOG2_DOMAIN, 400),
                                    [LSB, 1.0, 4.0, 4.0 - LSB, 2.0**-7, 2.0 ** (LOG2_DOMAIN[1]) - 1]]))
    return {"reals": reals, "positive": positive}


OPS = ["sigmoid", "tanh", "exp", "log", "reciprocal", "sqrt", "rsqrt"]
ROUNDS = {"dcf": {"sigmoid": 2, "tanh": 2, "exp": 2, "log": 4, "reciprocal": 6, "sqrt": 6, "rsqrt": 6, "div": 6},
          "bits": {"sigmoid": 10, "tanh": 10, "exp": 10, "log": 20, "reciprocal": 22, "sqrt": 22, "rsqrt": 22,
                   "div": 22}}


@pytest.mark.parametrize("method,n,dealer", [("dcf", 2, "helper"), ("bits", 3, "helper")])
def test_functions_against_numpy(make_topology, method: str, n: int, dealer: str) -> None:
    cases = _cases()
    num = grid(RNG.uniform(-100, 100, cases["positive"].size))
    den = cases["positive"].copy()
    den[den < 2**-2] = 2**-2  # keep |x / y| < 2^(f-3)
    den[::2] *= -1  # negative divisors too
    rows = grid(RNG.uniform(-6, 6, (5, 7)))
    owner = "bank_b" if n == 2 else "bank_c"

    async def program(ctx: Context):
        x = await share(ctx, "bank_a", cases["reals"])
        p = await share(ctx, "bank_a", cases["positive"])
        a, b = await share(ctx, "bank_a", num), await share(ctx, owner, den)
        m = await share(ctx, "bank_a", rows)
        outs = {op: getattr(ctx, op)(x if op in ("sigmoid", "tanh", "exp") else p, method) for op in OPS}
        outs["div"] = ctx.div(a, b, method)
        outs["reciprocal_neg"] = ctx.reciprocal(-p, method)
        outs["reciprocal_pos"] = ctx.reciprocal(p, method, positive=True)
        outs["softmax"] = ctx.softmax(m, -1, method)
        outs["softmax0"] = ctx.softmax(m, 0, method)
        start = max([await v.depth() for v in (x, p, a, b, m)])
        result = {}
        for name, v in outs.items():
            result[name] = (await ctx.reveal(v), start, await v.depth())
        return result

    out = (run_local_with_test_dealer if dealer == "local-test" else run_local)(make_topology(n), program)
    got = out["bank_a"].value
    for op in OPS:
        within(op, got[op][0], PLAIN[op](cases["reals"] if op in ("sigmoid", "tanh", "exp") else cases["positive"]))
    within("div", got["div"][0], num / den)
    within("reciprocal", got["reciprocal_neg"][0], -1 / cases["positive"])
    within("reciprocal", got["reciprocal_pos"][0], 1 / cases["positive"])
    within("softmax", got["softmax"][0], softmax(rows, -1))
    within("softmax", got["softmax0"][0], softmax(rows, 0))
    parties = [o.value for name, o in out.items() if name != "helper"]
    for op, want in ROUNDS[method].items():
        assert max(v[op][2] for v in parties) - max(v[op][1] for v in parties) == want, op
    per_level = 1 if method == "dcf" else 9
    for key, k in (("softmax", 7), ("softmax0", 5)):
        rounds = max(v[key][2] for v in parties) - max(v[key][1] for v in parties)
        assert rounds == per_level * math.ceil(math.log2(k)) + ROUNDS[method]["exp"] + ROUNDS[method]["div"], key


def test_shapes_0d_empty_and_a_large_array(make_topology) -> None:
    big = grid(RNG.uniform(-10, 10, 40_000))
    values = {"0-d": grid(np.array(0.75)), "empty": np.zeros((0, 3)), "big": big}

    async def program(ctx: Context):
        out = {}
        for key, v in values.items():
            x = await share(ctx, "bank_a", v)
            ops = ["sigmoid"] if key == "big" else OPS
            out[key] = {op: await ctx.reveal(getattr(ctx, op)(x if op in ("sigmoid", "tanh", "exp")
                                                               else x * x + 0.5)) for op in ops}
            if key == "empty":
                out[key]["div"] = await ctx.reveal(ctx.div(x, x * x + 1.0))
        return out

    got = run_local_with_test_dealer(make_topology(2, comparison="dcf"), program)["bank_a"].value
    for key, v in values.items():
        for op, res in got[key].items():
            arg = v if op in ("sigmoid", "tanh", "exp") else v * v + 0.5
            want = v / (v * v + 1.0) if op == "div" else PLAIN[op](arg)
            within(op, res, want)


def test_bad_frac_bits_and_axes_are_clear_errors(make_topology) -> None:
    async def program(ctx: Context):
        x = await share(ctx, "bank_a", np.array([1.0, 2.0]))
        with pytest.raises(ValueError, match="need frac_bits between 10 and 16; the topology's frac_bits is 20"):
            ctx.sigmoid(x)
        return True

    with pytest.raises(ConfigError, match="session.frac_bits: Input should be less than or equal to 16"):
        make_topology(2, frac_bits=20)  # refused in the topology; past it (model_copy) the function says so
    unchecked = make_topology(2).model_copy(update={"frac_bits": 20})
    assert run_local_with_test_dealer(unchecked, program)["bank_a"].value

    async def axes(ctx: Context):
        x = await share(ctx, "bank_a", np.array(1.0))
        with pytest.raises(ValueError, match=r"softmax: axis -1 does not exist for .* shape \(\)"):
            ctx.softmax(x)
        e = await share(ctx, "bank_a", np.zeros((2, 0)))
        with pytest.raises(ValueError, match=r"softmax of an empty axis"):
            ctx.softmax(e)
        return True

    assert run_local_with_test_dealer(make_topology(2), axes)["bank_a"].value


def test_bench_ops_as_processes() -> None:
    """Every new op through `mpc bench` (parties as processes, the helper dealing): rounds and results."""
    names = ["sigmoid", "tanh", "exp", "log", "reciprocal", "div", "sqrt", "rsqrt", "softmax"]
    res = subprocess.run([sys.executable, "-m", "parties", "bench", "--op", ",".join(names), "--method", "dcf",
                          "--n", "200", "--repeat", "1", "--json"], capture_output=True, text=True, timeout=300,
                         cwd=ROOT)
    assert res.returncode == 0, res.stderr
    records = {r["op"]: r for r in json.loads(res.stdout)}
    for name in names:
        assert records[name]["correct"] is True, name
        want = ROUNDS["dcf"].get(name, 8 + math.ceil(math.log2(10)))  # softmax over rows of 10
        assert records[name]["rounds"] == want, (name, records[name]["rounds"])

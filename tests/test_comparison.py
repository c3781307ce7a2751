"""Comparisons, ReLU and selection against numpy, both methods, on the in-memory transport (with parties as
processes: test_every_comparison_op_with_parties_as_processes)."""

from __future__ import annotations

import functools

import numpy as np
import pytest

from mpc.prg import random_ring
from protocols.interface import context
from protocols.interface.context import Context
from protocols.primitives.dcf import DcfKeys, eval_dcf, gen
from tests.test_arithmetic import depths, rounds_of, share

# Protocol maths on the in-memory transport (no sockets; the same rounds and bytes, tests/test_memory_transport.py);
# every operation also runs with parties as processes in tests/test_cli_launch.py, test_comparison.py, test_fraud.py.
run_local = functools.partial(context.run_local, transport="memory")

RNG = np.random.default_rng(4)
F = 16
STEP = 2.0**-F
RANGE = 2.0**40  # comparisons are exact for |x - y| < 2^(63 - f) = 2^47; test well inside


# -- the DCF alone ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("width", [1, 2])
def test_dcf_exhaustive_small_domain(width: int) -> None:
    bits = 5
    alpha = np.repeat(np.arange(32, dtype=np.uint64), 32)
    x = np.tile(np.arange(32, dtype=np.uint64), 32)
    beta = random_ring((alpha.size, width))
    k0, k1 = gen(alpha, beta, bits, random_ring((alpha.size, 2)), random_ring((alpha.size, 2)))
    got = eval_dcf(0, k0, x) + eval_dcf(1, k1, x)
    np.testing.assert_array_equal(got, np.where((x < alpha)[:, None], beta, 0))
    # each share alone looks random: not the output, and the two differ
    assert not np.array_equal(eval_dcf(0, k0, x), got)


def test_dcf_63_bits_edges_and_wire_format() -> None:
    n = 3000
    alpha = random_ring((n,)) >> np.uint64(1)
    x = random_ring((n,)) >> np.uint64(1)
    x[:100] = alpha[:100]
    x[100:200] = alpha[100:200] - np.uint64(1)
    x[200:300] = alpha[200:300] + np.uint64(1)
    alpha[300:310] = 0
    x[310:320] = 0
    alpha[320:330] = np.uint64(2**63 - 1)
    x[330:340] = np.uint64(2**63 - 1)
    beta = random_ring((n, 1))
    k0, k1 = gen(alpha, beta, 63, random_ring((n, 2)), random_ring((n, 2)))
    words = k0.correction_words()
    assert words.shape == (n * (63 * 3 + 3),)
    k0 = DcfKeys.from_words(63, 1, k0.seeds, words)
    got = eval_dcf(0, k0, x) + eval_dcf(1, k1, x)
    np.testing.assert_array_equal(got, np.where((x < alpha)[:, None], beta, 0))


# -- secure comparisons ---------------------------------------------------------------------------------

def _pairs(n: int) -> tuple[np.ndarray, np.ndarray]:
    a = RNG.uniform(-1000, 1000, n)
    b = RNG.uniform(-1000, 1000, n)
    k = n // 8
    b[:k] = a[:k]                        # ties
    b[k:2 * k] = a[k:2 * k] + STEP       # one fixed-point step apart
    b[2 * k:3 * k] = a[2 * k:3 * k] - STEP
    a[3 * k:4 * k] = 0.0                 # zero
    b[4 * k:5 * k] = -a[4 * k:5 * k]     # mixed signs
    a[5 * k] = RANGE                     # extremes of the tested range
    b[5 * k] = -RANGE
    a[5 * k + 1] = -RANGE
    b[5 * k + 1] = RANGE
    return np.round(a * 2**F) / 2**F, np.round(b * 2**F) / 2**F


@pytest.mark.parametrize("method", ["dcf", "compact", "bits"])
def test_comparisons_against_numpy(make_topology, method: str) -> None:
    a, b = _pairs(800)

    async def program(ctx: Context):
        x, y = await share(ctx, "bank_a", a), await share(ctx, "bank_b", b)
        outs = [x < y, x <= y, x > y, x >= y, x == y, x != y, ctx.sign(x - y, method), x < 3.5, y < 0.0]
        return [await ctx.reveal(o) for o in outs]

    topo = make_topology(2, comparison=method)
    got = run_local(topo, program)["bank_b"].value
    want = [a < b, a <= b, a > b, a >= b, a == b, a != b, np.sign(a - b), a < 3.5, b < 0.0]
    for g, w in zip(got, want, strict=True):
        assert g.dtype == np.int64
        np.testing.assert_array_equal(g, w.astype(np.int64))


@pytest.mark.parametrize("method", ["dcf", "compact", "bits"])
def test_relu_max_min_where(make_topology, method: str) -> None:
    a, b = _pairs(400)

    async def program(ctx: Context):
        x, y = await share(ctx, "bank_a", a), await share(ctx, "bank_b", b)
        bit = ctx.less(x, y, method)
        outs = [ctx.relu(x, method), ctx.maximum(x, y, method), ctx.minimum(x, y, method),
                ctx.where(bit, x, y), ctx.where(bit, 1.0, -1.0), ctx.maximum(x, 0.5, method)]
        return [await ctx.reveal(o) for o in outs]

    got = run_local(make_topology(2), program)["bank_a"].value
    want = [np.maximum(a, 0), np.maximum(a, b), np.minimum(a, b), np.where(a < b, a, b),
            np.where(a < b, 1.0, -1.0), np.maximum(a, 0.5)]
    for g, w in zip(got, want, strict=True):
        np.testing.assert_allclose(g, w, atol=STEP)  # selections are exact up to the encoding


def test_integer_comparisons_full_range(make_topology) -> None:
    """Integers mod 2^64: the sign gate is exact for every value, the comparison while x - y fits."""
    a = np.concatenate([RNG.integers(-(2**62), 2**62, 500), [0, -1, 1, 2**62 - 1, -(2**62), 5]])
    b = np.concatenate([RNG.integers(-(2**62), 2**62, 500), [0, 0, 1, -(2**62), 2**62 - 1, 5]])

    async def program(ctx: Context):
        x, y = await share(ctx, "bank_a", a), await share(ctx, "bank_b", b)
        return [await ctx.reveal(o) for o in (ctx.less(x, y, "dcf"), ctx.less(x, y, "bits"), ctx.relu(x, "dcf"))]

    lt_dcf, lt_bits, rl = run_local(make_topology(2), program)["bank_a"].value
    np.testing.assert_array_equal(lt_dcf, (a < b).astype(np.int64))
    np.testing.assert_array_equal(lt_bits, lt_dcf)
    np.testing.assert_array_equal(rl, np.maximum(a, 0))


@pytest.mark.parametrize("method", ["dcf", "compact", "bits"])
def test_max_and_argmax_along_axis(make_topology, method: str) -> None:
    a = RNG.integers(-50, 50, (6, 7)).astype(np.float64)
    a[0, :] = 3.0  # all ties: first index
    a[1, 2] = a[1, 5] = 60.0  # two maxima: the first wins

    async def program(ctx: Context):
        x = await share(ctx, "bank_a", a)
        outs = [ctx.max(x, axis=1, method=method), ctx.argmax(x, axis=1, method=method),
                ctx.max(x, axis=0, method=method), ctx.argmax(x, axis=0, method=method)]
        return [await ctx.reveal(o) for o in outs]

    got = run_local(make_topology(2), program)["bank_b"].value
    np.testing.assert_allclose(got[0], a.max(axis=1))
    np.testing.assert_array_equal(got[1], a.argmax(axis=1))
    np.testing.assert_allclose(got[2], a.max(axis=0))
    np.testing.assert_array_equal(got[3], a.argmax(axis=0))


@pytest.mark.parametrize("method", ["dcf", "compact", "bits"])
def test_argmax_returns_the_first_maximum_like_numpy(make_topology, method: str) -> None:
    """Ties go to the first maximum at every length (odd lengths carry an element up the tree)."""
    ties = RNG.integers(0, 3, (40, 17))  # few distinct values: many ties at every position
    long = np.zeros(257, np.int64)
    long[[12, 224]] = 5
    vectors = [np.array([0, 1, 1, 0]), long, np.array([7]), np.array([2, 2, 2, 1, 2])]

    async def program(ctx: Context):
        x = await share(ctx, "bank_a", ties)
        vs = [await share(ctx, "bank_b", v) for v in vectors]
        outs = [ctx.argmax(x[:, :k], axis=1, method=method) for k in range(1, 18)]
        outs += [ctx.argmax(x, axis=0, method=method), ctx.max(x, axis=0, method=method)]
        outs += [ctx.argmax(v, method=method) for v in vs]
        return [await ctx.reveal(o) for o in outs]

    got = run_local(make_topology(2), program)["bank_a"].value
    want = [ties[:, :k].argmax(axis=1) for k in range(1, 18)] + [ties.argmax(axis=0), ties.max(axis=0)]
    want += [v.argmax() for v in vectors]
    for g, w in zip(got, want, strict=True):
        np.testing.assert_array_equal(g, w)


@pytest.mark.parametrize("method", ["dcf", "compact", "bits"])
def test_equality_and_sign_exact_for_every_ring_difference(make_topology, method: str) -> None:
    """`==` is 0 or 1 and `sign` is numpy's even where x - y or x is 2^63 (d and -d both look negative)."""
    top = -(2**63)
    rand = RNG.integers(-(2**63), 2**63 - 1, (2, 300))
    a = np.concatenate([[0, top, 2**63 - 1, 5, top, 0, 1, -1, 2**62, top + 1], rand[0]])
    b = np.concatenate([[top, 0, -1, 5, top, 0, top + 1, 2**63 - 1, -(2**62), 1], rand[1]])
    b[-100:] = a[-100:]

    async def program(ctx: Context):
        x, y = await share(ctx, "bank_a", a), await share(ctx, "bank_b", b)
        outs = [ctx.equal(x, y, method), 1 - ctx.equal(x, y, method), ctx.equal(x, top, method),
                ctx.sign(x, method), ctx.sign(x - y, method)]
        return [await ctx.reveal(o) for o in outs]

    eq, ne, eq_top, sign_x, sign_d = run_local(make_topology(2), program)["bank_b"].value
    with np.errstate(over="ignore"):
        d = a - b  # wraps mod 2^64, as the ring does
    np.testing.assert_array_equal(eq, (a == b).astype(np.int64))
    np.testing.assert_array_equal(ne, (a != b).astype(np.int64))
    np.testing.assert_array_equal(eq_top, (a == top).astype(np.int64))
    np.testing.assert_array_equal(sign_x, np.sign(a))
    np.testing.assert_array_equal(sign_d, np.sign(d))


@pytest.mark.parametrize("method", ["dcf", "compact", "bits"])
def test_max_and_argmax_need_a_nonempty_existing_axis(make_topology, method: str) -> None:
    """Both raise the same clear ValueError (not numpy's IndexError or a ZeroDivisionError) on every party."""
    async def program(ctx: Context):
        x = await share(ctx, "bank_a", np.zeros((2, 0)))
        s = await share(ctx, "bank_a", np.float64(1.0))
        for fn in (ctx.max, ctx.argmax):
            name = fn.__name__
            with pytest.raises(ValueError, match=rf"^{name} of an empty axis: axis 1 of shape \(2, 0\)"):
                fn(x, method=method)
            with pytest.raises(ValueError, match=rf"^{name}: axis -1 does not exist for .* shape \(\)"):
                fn(s, method=method)
            with pytest.raises(ValueError, match=rf"^{name}: axis 2 does not exist"):
                fn(x, axis=2, method=method)
        return await ctx.reveal(ctx.max(x, axis=0, method=method))  # reducing the other axis is fine

    for name, outcome in run_local(make_topology(2), program).items():
        if name != "helper":
            assert outcome.value.shape == (0,)


@pytest.mark.parametrize("n", [3, 4])
def test_bits_method_with_more_parties(make_topology, n: int) -> None:
    a, b = _pairs(200)

    async def program(ctx: Context):
        assert ctx.comparison == "auto"
        x, y = await share(ctx, "bank_a", a), await share(ctx, ctx.compute_parties[-1], b)
        outs = [x < y, ctx.relu(x), x == y]
        assert ctx.party.stats.methods_used() == ["bits"]
        return [await ctx.reveal(o) for o in outs]

    lt, rl, eq = run_local(make_topology(n), program)["bank_a"].value
    np.testing.assert_array_equal(lt, (a < b).astype(np.int64))
    np.testing.assert_allclose(rl, np.maximum(a, 0), atol=STEP)
    np.testing.assert_array_equal(eq, (a == b).astype(np.int64))


def test_empty_and_large_batches(make_topology) -> None:
    big_a, big_b = RNG.uniform(-1e3, 1e3, 20000), RNG.uniform(-1e3, 1e3, 20000)

    async def program(ctx: Context):
        e = await share(ctx, "bank_a", np.zeros(0))
        x, y = await share(ctx, "bank_a", big_a), await share(ctx, "bank_b", big_b)
        return [await ctx.reveal(o) for o in (e < 0.0, ctx.relu(e), x < y, ctx.less(x, y, "bits"))]

    empty_lt, empty_relu, lt, lt_bits = run_local(make_topology(2), program)["bank_a"].value
    assert empty_lt.shape == (0,) and empty_relu.shape == (0,)
    np.testing.assert_array_equal(lt, (big_a < big_b).astype(np.int64))
    np.testing.assert_array_equal(lt_bits, lt)


# -- measured rounds ------------------------------------------------------------------------------------

@pytest.mark.parametrize(("method", "lt_rounds", "relu_rounds"), [("dcf", 1, 1), ("bits", 8, 9)])
def test_measured_rounds(make_topology, method: str, lt_rounds: int, relu_rounds: int) -> None:
    a, b = _pairs(64)

    async def program(ctx: Context):
        x, y = await share(ctx, "bank_a", a), await share(ctx, "bank_b", b)
        lt, rl, eq = ctx.less(x, y, method), ctx.relu(x, method), ctx.equal(x, y, method)
        mx = ctx.maximum(x, y, method)
        return (await depths([x, y], [lt]), await depths([x, y], [rl]), await depths([x, y], [eq]),
                await depths([x, y], [mx]))

    out = run_local(make_topology(2), program)
    assert rounds_of(out, 0) == lt_rounds
    assert rounds_of(out, 1) == relu_rounds
    assert rounds_of(out, 2) == lt_rounds
    assert rounds_of(out, 3) == relu_rounds


def _traffic(make_topology, n: int, op):  # type: ignore[no-untyped-def]
    """Run op(ctx, x, y) on n pairs from `_pairs`, x from bank_a and y from bank_b: the outcomes (each
    party's value: the op's rounds, its online bytes sent, the opened result) and the pairs."""
    a, b = _pairs(n)

    async def program(ctx: Context):
        x, y = await share(ctx, "bank_a", a), await share(ctx, "bank_b", b)
        await (x - y).resolve()
        before = ctx.party.stats.copy()
        result = op(ctx, x, y)
        rounds = await depths([x, y], [result])
        return rounds, ctx.party.stats.since(before).total("online").bytes_sent, await ctx.reveal(result)

    return run_local(make_topology(2), program), a, b


def test_dcf_traffic(make_topology) -> None:
    """Online: 8 bytes per element each way (the masked value); dealer: the key's correction words."""
    from mpc.transport.frames import HEADER_SIZE
    from protocols.primitives.dcf import words_per_key

    n = 500
    out, _, _ = _traffic(make_topology, n, lambda ctx, x, y: ctx.less(x, y, "dcf"))
    assert out["bank_a"].value[1] == 8 * n + HEADER_SIZE
    helper = out["helper"].stats.total("offline", "sign").bytes_sent
    # to bank_a the correction words; to bank_b the same, and apart its share of msb(r)
    assert helper == 8 * n * (2 * words_per_key(63, 1) + 1) + 3 * HEADER_SIZE
    assert words_per_key(63, 1) * 8 == 1536  # per party per comparison; plus the 16-byte root seed, derived


def test_auto_prefers_dcf_on_latency_and_bits_needs_no_two_parties(make_topology) -> None:
    from protocols.primitives.comparison import choose_method

    async def program(ctx: Context):
        return (choose_method(ctx, 1000), choose_method(ctx, 10**7), choose_method(ctx, 10, "bits"),
                choose_method(ctx, 20_000))

    wan = run_local(make_topology(2, cost_model={"latency_ms": 25}), program, transport="memory")["bank_a"].value
    assert wan[0] == "dcf" and wan[2] == "bits"
    assert wan[3] == "compact"  # a larger batch: the dealer's bytes outweigh one more round

    async def batch_of_2000(ctx: Context):
        return choose_method(ctx, 2000)

    # 10 ms: 2,000 comparisons go by dcf on fast links, by bits at 100 Mbit/s, where the helper's 3 MB of
    # keys (dcf) or 1.9 MB (compact) to the last bank outweigh bits' 7 more rounds
    fast = run_local(make_topology(2, cost_model={"latency_ms": 10}), batch_of_2000, transport="memory")
    slow = run_local(make_topology(2, cost_model={"latency_ms": 10, "bandwidth_mbps": 100}), batch_of_2000,
                     transport="memory")
    assert fast["bank_a"].value == "dcf" and slow["bank_a"].value == "bits"
    lan = run_local(make_topology(2), program, transport="memory")["bank_a"].value
    assert lan[1] == "bits"  # a huge batch on a link with no latency: the lighter method
    # the emulated network alone tells auto nothing: it decides from links measured or declared
    emulated = run_local(make_topology(2, network={"latency_ms": 25}), program, transport="memory")
    assert emulated["bank_a"].value == lan


def test_dcf_refused_for_three_parties(make_topology) -> None:
    from mpc.runtime import PartyFailed

    async def program(ctx: Context):
        x = await share(ctx, "bank_a", np.zeros(3))
        return await ctx.reveal(ctx.less(x, 1.0, "dcf"))

    with pytest.raises(PartyFailed, match="two compute parties"):
        run_local(make_topology(3), program)


def test_dcf_keys_dealt_in_chunks(make_topology, monkeypatch) -> None:
    import protocols.primitives.gates as gates

    monkeypatch.setattr(gates, "DCF_CHUNK", 100)
    a, b = _pairs(350)

    async def program(ctx: Context):
        x, y = await share(ctx, "bank_a", a), await share(ctx, "bank_b", b)
        return [await ctx.reveal(o) for o in (ctx.less(x, y, "dcf"), ctx.relu(x, "dcf"))]

    lt, rl = run_local(make_topology(2), program)["bank_a"].value
    np.testing.assert_array_equal(lt, (a < b).astype(np.int64))
    np.testing.assert_allclose(rl, np.maximum(a, 0), atol=STEP)


@pytest.mark.parametrize("method", ["dcf", "compact", "bits"])
def test_fused_relu_truncation(make_topology, method: str) -> None:
    """relu(x @ w + b) with the product kept at 2f bits: one gate (dcf: one round) truncates and rectifies."""
    x_plain = RNG.uniform(-8, 8, (300, 6))
    x_plain[:5] = 0.0
    w = RNG.uniform(-2, 2, (6, 4))
    b = RNG.uniform(-1, 1, 4)
    big = np.array([[2.0**24, -(2.0**24), 3.0, -3.0, 2.0**-16, -(2.0**-16)]])  # raw products near 2^58

    async def program(ctx: Context):
        x = await share(ctx, "bank_a", np.concatenate([x_plain, big]))
        z = ctx.matmul(x, w, truncate=False) + b
        assert z.frac_bits == 2 * F
        h = ctx.relu(z, method)
        assert h.frac_bits == F
        return await depths([x], [h]), await ctx.reveal(h)

    out = run_local(make_topology(2), program)
    want = np.maximum(np.concatenate([x_plain, big]) @ w + b, 0)
    got = out["bank_a"].value[1]
    # encoding of w and b (half an LSB each, times |x|) plus one LSB of truncation
    bound = (np.abs(np.concatenate([x_plain, big])).sum(axis=1, keepdims=True) + 3) * STEP
    assert (np.abs(got - want) <= bound).all()
    assert rounds_of(out, 0) == {"dcf": 1, "compact": 2, "bits": 10}[method]


def test_every_comparison_op_with_parties_as_processes() -> None:
    """`mpc bench` runs each op with the parties as separate processes and checks it against numpy."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    res = subprocess.run([sys.executable, "-m", "parties", "bench", "--op", "lt,eq,relu,max",
                          "--method", "dcf,compact,bits", "--n", "300", "--repeat", "1", "--json"],
                         capture_output=True, text=True, timeout=240,
                         cwd=Path(__file__).resolve().parent.parent)
    assert res.returncode == 0, res.stderr
    records = json.loads(res.stdout)
    got = {(r["op"], r["method"]): r for r in records}
    assert set(got) == {(op, m) for op in ("lt", "eq", "relu", "max") for m in ("dcf", "compact", "bits")}
    for (op, method), r in got.items():
        assert r["correct"] is True, (op, method)
        rounds = {"dcf": 1, "compact": 2}.get(method, 8 if op in ("lt", "eq") else 9)
        assert r["rounds"] == rounds, (op, method, r["rounds"])


@pytest.mark.parametrize(("method", "online_per_element", "messages"),
                         [("dcf", 8, 1), ("compact", 8, 2), ("bits", 112, 8)])
def test_equality_traffic(make_topology, method: str, online_per_element: int, messages: int) -> None:
    """`==` costs the rounds of `<` and less traffic: one masked value (dcf; compact: and the key's two bits,
    lt ^ rho at two points, packed 64 a word), or 6 one-word AND levels (bits)."""
    from mpc.transport.frames import HEADER_SIZE
    from protocols.primitives.dcf import bit_words_per_key, words_per_key

    n = 500
    out, a, b = _traffic(make_topology, n, lambda ctx, x, y: ctx.equal(x, y, method))
    assert rounds_of(out) == {"dcf": 1, "compact": 2, "bits": 8}[method]
    bit_words = -(-2 * n // 64) if method == "compact" else 0
    assert out["bank_a"].value[1] == online_per_element * n + 8 * bit_words + messages * HEADER_SIZE
    np.testing.assert_array_equal(out["bank_a"].value[2], (a == b).astype(np.int64))
    dealt = out["helper"].stats.total("offline", "eq").bytes_sent
    if method == "dcf":  # one key of a 2-word payload per element and party, and bank_b's share of msb(r)
        assert dealt == 8 * n * (2 * words_per_key(63, 2) + 1) + 3 * HEADER_SIZE
    if method == "compact":  # a 936-byte key per element and party; to bank_b: msb(r), the 2 words q, rho q
        # for both words at both points
        assert dealt == 8 * n * (2 * bit_words_per_key(63) + 1 + 2 + 2 * 2) + 3 * HEADER_SIZE

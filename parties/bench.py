"""The benchmark program every party runs under `mpc bench`: one secure operation at a time, measured.

For each repeat: share fresh inputs, pass a barrier, issue the operation while holding the online phase,
let the helper deal (`offline_s`: until this party holds its material; the summary takes the slowest
party, so it is the time until every party has it), pass a barrier, then time the online phase alone (wall-clock stamps
`t_start`, `t_end`; the summary takes max(end) - max(start) over the parties), and open
the result to check it against numpy. Rounds are the output's depth minus the inputs'; bytes and
messages are the runtime's counters over the online window (this party) and the dealing (the helper).
The inputs come from a public seed so every party can check the opened result (benchmark data only).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from mpc import ring
from mpc.profile import PROFILE, since
from parties.profile_probe import probe_link
from protocols.interface.context import Context
from protocols.primitives.shared import SharedArray


@dataclass(frozen=True)
class BenchOp:
    """How to make inputs of size n, compute the op securely, and compute it in plaintext."""

    inputs: Callable[[np.random.Generator, int], tuple[np.ndarray, np.ndarray]]
    secure: Callable[[Context, SharedArray, SharedArray, str | None], SharedArray]
    plain: Callable[[np.ndarray, np.ndarray], np.ndarray]
    tolerance: float  # on the opened result, in real units (0 = exact)
    kind: str = "arithmetic"  # or "comparison": takes --method
    count: Callable[[np.ndarray], int] = np.size  # what `n` counts (elements; accounts for fraud)
    relative: float = 0.0  # plus this fraction of |plaintext result| (functions with a relative error)
    steps: Callable[[int], int] | None = None  # training: SGD steps for n rows (per-step figures)


def _ints(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    return rng.integers(-(2**31), 2**31, n), rng.integers(-(2**31), 2**31, n)


def _square(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    side = max(1, math.isqrt(n))
    return rng.integers(-(2**20), 2**20, (side, side)), rng.integers(-(2**20), 2**20, (side, side))


def _reals(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    return rng.uniform(-1000, 1000, n), rng.uniform(-1000, 1000, n)


def _close(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Reals with ties, one-step neighbours and zeros mixed in (comparisons' hard cases)."""
    a, b = _reals(rng, n)
    k = n // 4
    b[:k] = a[:k]
    b[k:2 * k] = a[k:2 * k] + 2.0**-16
    a[2 * k:3 * k] = 0.0
    return np.round(a * 2**16) / 2**16, np.round(b * 2**16) / 2**16


def _wrap(fn: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    def run(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return fn(a.astype(np.uint64), b.astype(np.uint64)).view(np.int64)

    return run


def _fraud_inputs(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Standardised features of n accounts for each bank (the demo's model, random accounts)."""
    return np.clip(rng.normal(size=(n, 8)), -8, 8), np.clip(rng.normal(size=(n, 8)), -8, 8)


def _fraud_secure(ctx: Context, x: SharedArray, y: SharedArray, method: str | None) -> SharedArray:
    from parties.fraud.model import load
    from parties.fraud.secure import score

    previous, ctx.comparison = ctx.comparison, method or ctx.comparison
    try:
        return score(ctx, x, y, load()["joint"])[1]
    finally:
        ctx.comparison = previous


def _fraud_plain(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    from parties.fraud.model import load

    model = load()["joint"]
    return (model.logits(np.hstack([a, b])) > model.threshold).astype(np.int64)


def _unary(lo: float, hi: float, log2: bool = False) -> Callable[[np.random.Generator, int],
                                                                  tuple[np.ndarray, np.ndarray]]:
    """n reals uniform in [lo, hi] (or 2 to a uniform power in [lo, hi]), on the fixed-point grid so that
    numpy computes the function of the very input shared; the second input unused."""

    def make(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
        x = rng.uniform(lo, hi, n)
        return _grid(2.0**x if log2 else x), np.zeros(1)

    return make


def _grid(x: np.ndarray) -> np.ndarray:
    return np.round(x * 2**16) / 2**16


def _quotients(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    return _grid(rng.uniform(-100, 100, n)), _grid(2.0 ** rng.uniform(-2, 10, n))


def _rows(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """softmax's input: n entries as rows of 10."""
    return _grid(rng.uniform(-5, 5, (max(1, n // 10), 10))), np.zeros(1)


def _softmax(a: np.ndarray) -> np.ndarray:
    e = np.exp(a - a.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


FUNCTIONS: dict[str, BenchOp] = {  # protocols/interface/functions.py; error bounds as in the README's table
    "sigmoid": BenchOp(_unary(-10, 10), lambda ctx, x, y, m: ctx.sigmoid(x, m),
                       lambda a, b: 1 / (1 + np.exp(-a)), 7.5e-4, "comparison"),
    "tanh": BenchOp(_unary(-6, 6), lambda ctx, x, y, m: ctx.tanh(x, m), lambda a, b: np.tanh(a), 3.7e-4,
                    "comparison"),
    "exp": BenchOp(_unary(-12, 8), lambda ctx, x, y, m: ctx.exp(x, m), lambda a, b: np.exp(a), 2**-15,
                   "comparison", relative=4e-4),
    "log": BenchOp(_unary(-16, 30, log2=True), lambda ctx, x, y, m: ctx.log(x, m), lambda a, b: np.log(a), 1e-4,
                   "comparison"),
    "reciprocal": BenchOp(_unary(-16, 30, log2=True), lambda ctx, x, y, m: ctx.reciprocal(x, m),
                          lambda a, b: 1 / a, 2**-15, "comparison", relative=1.5e-4),
    "sqrt": BenchOp(_unary(-16, 30, log2=True), lambda ctx, x, y, m: ctx.sqrt(x, m), lambda a, b: np.sqrt(a),
                    2**-15, "comparison", relative=1.5e-4),
    "rsqrt": BenchOp(_unary(-16, 30, log2=True), lambda ctx, x, y, m: ctx.rsqrt(x, m),
                     lambda a, b: 1 / np.sqrt(a), 2**-15, "comparison", relative=1.5e-4),
    "div": BenchOp(_quotients, lambda ctx, x, y, m: ctx.div(x, y, m), lambda a, b: a / b, 2**-14, "comparison",
                   relative=1.5e-4),
    "softmax": BenchOp(_rows, lambda ctx, x, y, m: ctx.softmax(x, -1, m), lambda a, b: _softmax(a), 2e-4,
                       "comparison"),
}
# -- training on shares (protocols/applications/training.py): one epoch of mini-batch SGD on n accounts x 16 features
TRAIN_FEATURES, TRAIN_BATCH = 16, 128


def _train_inputs(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Standardised features (bank_a's input) and 0/1 labels (bank_b's; about 5 % positive)."""
    x = np.clip(rng.normal(size=(n, TRAIN_FEATURES)), -8, 8)
    y = (x[:, :4].sum(axis=1) + rng.normal(size=n) > 3.6).astype(np.int64)
    return x, y


def _train_config(hidden: tuple[int, ...]) -> Any:
    from protocols.applications.training import TrainConfig

    return TrainConfig(hidden=hidden, learning_rate=0.3, epochs=1, batch_size=TRAIN_BATCH, class_weight=3.0,
                       check_divergence=False)


def _train_secure(hidden: tuple[int, ...]) -> Callable[[Context, SharedArray, SharedArray, str | None], SharedArray]:
    def run(ctx: Context, x: SharedArray, y: SharedArray, method: str | None) -> SharedArray:
        from protocols.applications.training import train

        previous, ctx.comparison = ctx.comparison, method or ctx.comparison
        try:
            result = train(ctx, x, y, _train_config(hidden))
        finally:
            ctx.comparison = previous
        return ctx.concatenate([p.reshape(-1) for layer in result.layers for p in layer])

    return run


def _train_plain(hidden: tuple[int, ...]) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    def run(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        from protocols.applications.training import train_reference

        layers = train_reference(_train_config(hidden), x, y.astype(np.float64))
        return np.concatenate([p.ravel() for layer in layers for p in layer])

    return run


def _train_steps(n: int) -> int:
    return -(-n // TRAIN_BATCH)


OPS: dict[str, BenchOp] = {
    # integer product mod 2^64: one Beaver round
    "mul": BenchOp(_ints, lambda ctx, x, y, m: x * y, _wrap(np.multiply), 0.0),
    # integer matrix product of two sqrt(n) x sqrt(n) matrices: one round with a matrix triple
    "matmul": BenchOp(_square, lambda ctx, x, y, m: x @ y, _wrap(ring.matmul), 0.0),
    # fixed-point truncation of x*y held at 2f fractional bits: the truncation alone
    "trunc": BenchOp(_reals, lambda ctx, x, y, m: ctx.truncate(x, ctx.frac_bits), lambda a, b: a, 2.0**-14),
    # comparisons of fixed-point values (with ties and one-step neighbours)
    "lt": BenchOp(_close, lambda ctx, x, y, m: ctx.less(x, y, m), lambda a, b: (a < b).astype(np.int64), 0.0,
                  "comparison"),
    "eq": BenchOp(_close, lambda ctx, x, y, m: ctx.equal(x, y, m), lambda a, b: (a == b).astype(np.int64), 0.0,
                  "comparison"),
    "relu": BenchOp(_close, lambda ctx, x, y, m: ctx.relu(x, m), lambda a, b: np.maximum(a, 0), 0.0,
                    "comparison"),
    # elementwise maximum of two vectors
    "max": BenchOp(_close, lambda ctx, x, y, m: ctx.maximum(x, y, m), np.maximum, 0.0, "comparison"),
    # the fraud demo's scoring of n accounts: two fused ReLU layers and the threshold comparison
    "fraud": BenchOp(_fraud_inputs, _fraud_secure, _fraud_plain, 0.0, "comparison", len),
    **FUNCTIONS,
    # one epoch of training on n accounts x 16 features, batch 128: logistic regression (weights within 0.01 of
    # float64; 7e-5 at most measured in 6 runs at n = 5000), the 16-16-8-1 MLP (up to 0.064 in 6 runs: a ReLU derivative
    # bit that flips where z is within a unit in the last place of 0 moves weights by ~lr/B |delta h| and later
    # steps carry the difference on)
    "train_lr": BenchOp(_train_inputs, _train_secure(()), _train_plain(()), 0.01, "comparison", len,
                        steps=_train_steps),
    "train_mlp": BenchOp(_train_inputs, _train_secure((16, 8)), _train_plain((16, 8)), 0.15, "comparison", len,
                         steps=_train_steps),
}


async def bench(ctx: Context, ops: str = "mul", n: int = 1000, repeat: int = 3, seed: int = 7,
                method: str = "auto", profile: int = 0) -> list[dict]:
    records = []
    link = None
    if int(profile):  # docs/performance.md: split each op's online time, measure the floors
        PROFILE.enable()
        link = await probe_link(ctx)
    for op_name in str(ops).split(","):
        spec = OPS.get(op_name)
        if spec is None:
            raise ValueError(f"unknown bench op {op_name!r}; known: {', '.join(OPS)}")
        for rep in range(int(repeat)):
            records.append(await _one(ctx, op_name, spec, int(n), np.random.default_rng([seed, rep]), method))
            if link is not None:
                records[-1]["link"] = link
    return records


async def _one(ctx: Context, op_name: str, spec: BenchOp, n: int, rng: np.random.Generator, method: str) -> dict:
    a, b = spec.inputs(rng, n)
    first, second = ctx.compute_parties[0], ctx.compute_parties[1 % len(ctx.compute_parties)]
    x = await ctx.input(first, a if ctx.name == first else None)
    y = await ctx.input(second, b if ctx.name == second else None)
    if op_name == "trunc":
        # a fixed-point value at 2f fractional bits, as a product leaves it, to be truncated
        x = ctx.rescale(x, 2 * ctx.frac_bits)
    start_depth = max(await x.depth(), await y.depth())
    # Every party starts the op together: else the helper, whose inputs are placeholders, would start its
    # clock while the banks still process theirs (at 10^6 elements, up to 25 ms of input sharing measured
    # as dealing).
    await ctx.release()
    ctx.hold()
    t0 = time.perf_counter()
    before = ctx.party.stats.copy()
    z = spec.secure(ctx, x, y, method if spec.kind == "comparison" else None)
    chosen = ctx.last_comparison_method if spec.kind == "comparison" else (
        ctx.truncation if op_name == "trunc" else "beaver")
    await ctx.dealt()
    offline_s = time.perf_counter() - t0  # the summary takes the slowest party: all hold their material
    await ctx.release()
    online_before = ctx.party.stats.copy()
    # Wall-clock stamps (one clock for every process on this host): the parties leave the barrier up to
    # one latency apart, so the op's online time is max(end) - max(start) across parties, not a local span.
    split_before = PROFILE.snapshot()
    t_start = time.time()
    shares = await z.resolve()
    t_end = time.time()
    split = since(split_before, PROFILE.snapshot())
    online = ctx.party.stats.since(online_before).total(phase="online")
    window = ctx.party.stats.since(before)
    dealt = window.total(phase="offline").minus(window.total(phase="offline", tag="barrier"))
    # Every party, the helper included, moves on only once the compute parties are done: else the helper
    # (whose share of the op is nothing) deals the next repeat or exits meanwhile, and on a host of few
    # cores that work lands in the measured online time (dcf at n = 10^4: +60 ms at random).
    await ctx.release()
    t_resume = time.time()
    opened = await ctx.reveal(z)
    correct = None
    plain_s = None
    if PROFILE.enabled:
        t_plain = time.perf_counter()
        spec.plain(a, b)
        plain_s = time.perf_counter() - t_plain
    if opened is not None:
        want = spec.plain(a, b)
        correct = bool(np.array_equal(opened, want) if spec.tolerance == 0
                       else np.all(np.abs(opened - want) <= spec.tolerance + spec.relative * np.abs(want)))
    return {
        "op": op_name, "n": int(spec.count(a)), "method": chosen, "party": ctx.name,
        "role": "helper" if ctx.is_dealer else "compute",
        "start_depth": start_depth, "end_depth": shares.depth,
        "bytes_online": online.bytes_sent, "messages": online.messages_sent,
        "bytes_offline_sent": dealt.bytes_sent, "t_start": t_start, "t_end": t_end, "t_resume": t_resume,
        "offline_s": offline_s,
        "correct": correct,
        **({"profile": split, "plain_s": plain_s} if PROFILE.enabled else {}),
        **({"steps": spec.steps(n)} if spec.steps else {}),
    }

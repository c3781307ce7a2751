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

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from mpc.memory import party_memory
from mpc.profile import PROFILE, since
from parties.profile_probe import probe_link
from protocols.interface.context import Context
from protocols.interface.operations import OPERATIONS
from protocols.interface.registry import Sample
from protocols.primitives.shared import SharedArray


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


APPLICATIONS: dict[str, Sample] = {
    # the fraud demo's scoring of n accounts: two fused ReLU layers and the threshold comparison
    "fraud": Sample(_fraud_inputs, _fraud_secure, _fraud_plain, methods=True, count=len),
    # one epoch of training on n accounts x 16 features, batch 128: logistic regression (weights within 0.01 of
    # float64; 7e-5 at most measured in 6 runs at n = 5000), the 16-16-8-1 MLP (up to 0.064 in 6 runs: a ReLU derivative
    # bit that flips where z is within a unit in the last place of 0 moves weights by ~lr/B |delta h| and later
    # steps carry the difference on)
    "train_lr": Sample(_train_inputs, _train_secure(()), _train_plain(()), 0.01, methods=True, count=len,
                       steps=_train_steps),
    "train_mlp": Sample(_train_inputs, _train_secure((16, 8)), _train_plain((16, 8)), 0.15, methods=True, count=len,
                        steps=_train_steps),
}
OPS: dict[str, Sample] = {**{op.bench_name: op.sample for op in OPERATIONS}, **APPLICATIONS}
"""Every registered operation under its bench name (protocols/interface/operations.py), and applications."""


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
            if op_name in CHUNKABLE and int(n) > CHUNK:
                record = await _streamed(ctx, op_name, spec, int(n), [seed, rep], method)
            else:
                record = await _one(ctx, op_name, spec, int(n), np.random.default_rng([seed, rep]), method)
            records.append({**record, **party_memory(ctx.party)})
            if link is not None:
                records[-1]["link"] = link
    return records


# Above CHUNK elements these 1-D elementwise ops run streamed: inputs generated, shared, computed and checked
# a chunk at a time (the whole of 10^8 elements would not fit a party's memory: two inputs, a triple and
# the result are 48 bytes an element), CHUNKS_IN_FLIGHT chunks issued ahead so that dealing overlaps computing.
CHUNKABLE = {"mul", "lt", "eq", "relu", "max", "min"}
CHUNK = 1 << 20
CHUNKS_IN_FLIGHT = 2


async def _streamed(ctx: Context, op_name: str, spec: Sample, n: int, seed: list[int], method: str) -> dict:
    """The op on n elements in chunks, twice: serially (each chunk dealt, then computed: the dealing time
    of the whole, and the rest, its online time), then streamed (chunks issued ahead, the window bounding
    the material dealt ahead: `wall_s` is that run end to end, inputs' sharing and checks included)."""
    chunks = [(lo, min(n, lo + CHUNK)) for lo in range(0, n, CHUNK)]
    first, second = ctx.compute_parties[0], ctx.compute_parties[1 % len(ctx.compute_parties)]
    comparison = method if spec.methods else None

    def inputs(k: int) -> tuple[np.ndarray, np.ndarray]:
        lo, hi = chunks[k]
        # the helper needs only their dtype (a placeholder has no values)
        return spec.inputs(np.random.default_rng([*seed, k]), 1 if ctx.is_dealer else hi - lo)

    def share(a: np.ndarray, b: np.ndarray, size: int) -> tuple[SharedArray, SharedArray]:
        x = ctx.input(first, a if ctx.name == first else None, shape=(size,), fixed=a.dtype.kind == "f")
        y = ctx.input(second, b if ctx.name == second else None, shape=(size,), fixed=b.dtype.kind == "f")
        assert isinstance(x, SharedArray) and isinstance(y, SharedArray)
        return x, y

    def check(opened: np.ndarray | None, a: np.ndarray, b: np.ndarray) -> bool:
        return True if opened is None else spec.close(opened, spec.reference(a, b))

    correct = True
    dealing_s = 0.0
    depths = (0, 0)
    before = ctx.party.stats.copy()
    await ctx.release()
    t_serial = time.time()
    for k, (lo, hi) in enumerate(chunks):  # serially: dealing, then the online phase, chunk by chunk
        a, b = inputs(k)
        x, y = share(a, b, hi - lo)
        await ctx.release()
        ctx.hold()
        t0 = time.time()
        z = spec.secure(ctx, x, y, comparison)
        await ctx.dealt()
        dealing_s += time.time() - t0
        await ctx.release()
        shares = await z.resolve()
        if k == 0:  # the op's rounds, on one chunk (every chunk takes as many)
            depths = (max(await x.depth(), await y.depth()), shares.depth)
        correct &= check(await ctx.reveal(z), a, b)
    # online: everything but the dealing (inputs made and shared, the op, its opening and check)
    online_s = time.time() - t_serial - dealing_s
    dealt = ctx.party.stats.since(before).total(phase="offline")

    await ctx.release()  # streamed: every party starts together
    online_before = ctx.party.stats.copy()
    t_start = time.time()
    in_flight: list[tuple[Any, np.ndarray, np.ndarray]] = []
    for k, (lo, hi) in enumerate(chunks):
        a, b = inputs(k)
        x, y = share(a, b, hi - lo)
        in_flight.append((ctx.reveal(spec.secure(ctx, x, y, comparison)), a, b))
        if len(in_flight) > CHUNKS_IN_FLIGHT:
            opened, a0, b0 = in_flight.pop(0)
            correct &= check(await opened, a0, b0)
    for opened, a0, b0 in in_flight:
        correct &= check(await opened, a0, b0)
    t_end = time.time()
    online = ctx.party.stats.since(online_before).total(phase="online")
    return {
        "op": op_name, "n": n, "method": ",".join(ctx.party.stats.since(before).methods_used()) if spec.methods
        else "beaver", "party": ctx.name, "role": "helper" if ctx.is_dealer else "compute",
        "start_depth": depths[0], "end_depth": depths[1],
        "bytes_online": online.bytes_sent, "messages": online.messages_sent,
        "bytes_offline_sent": dealt.bytes_sent, "t_start": t_start, "t_end": t_end, "t_resume": t_end,
        "offline_s": dealing_s, "online_serial_s": online_s, "chunks": len(chunks),
        "correct": None if ctx.is_dealer else correct,
    }


async def _one(ctx: Context, op_name: str, spec: Sample, n: int, rng: np.random.Generator, method: str) -> dict:
    a, b = spec.inputs(rng, n)
    first, second = ctx.compute_parties[0], ctx.compute_parties[1 % len(ctx.compute_parties)]
    x = await ctx.input(first, a if ctx.name == first else None)
    y = await ctx.input(second, b if ctx.name == second else None)
    start_depth = max(await x.depth(), await y.depth())
    # Every party starts the op together: else the helper, whose inputs are placeholders, would start its
    # clock while the banks still process theirs (at 10^6 elements, up to 25 ms of input sharing measured
    # as dealing).
    await ctx.release()
    ctx.hold()
    t0 = time.perf_counter()
    before = ctx.party.stats.copy()
    z = spec.secure(ctx, x, y, method if spec.methods else None)
    chosen = ",".join(ctx.party.stats.since(before).methods_used()) if spec.methods else (
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
        spec.reference(a, b)
        plain_s = time.perf_counter() - t_plain
    if opened is not None:
        correct = spec.close(opened, spec.reference(a, b))
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

"""The dealing window (mpc/window.py): material dealt at most dealer_window_mb ahead of its consumption."""

from __future__ import annotations

import numpy as np
import pytest

from mpc.config import ConfigError, Topology, parse_topology
from mpc.window import MB
from protocols.applications import training
from protocols.interface import context
from protocols.interface.context import Context

N, STEPS = 10_000, 40
TRIPLE = 3 * 8 * N  # one Beaver triple of N elements: what a compute party holds of it


def _chain(steps: int = STEPS, hold: bool = False):
    """A loop of dependent products of integers: material of `steps` triples, issued all at once."""

    async def program(ctx: Context) -> list[np.ndarray | None]:
        x = ctx.input("bank_a", np.arange(N) % 7 if ctx.name == "bank_a" else None, shape=(N,), fixed=False)
        if hold:
            ctx.hold()
        acc, sums = x, []
        for k in range(steps):
            acc = acc * x if k % 4 else x * x
            sums.append(acc.sum())
        if hold:
            await ctx.release()
        return [await ctx.reveal(s) for s in sums]

    return program


def _expected(steps: int = STEPS) -> list[int]:
    x = (np.arange(N) % 7).astype(np.uint64)
    acc, out = x, []
    for k in range(steps):
        acc = acc * x if k % 4 else x * x
        out.append(int(acc.sum().astype(np.int64)))
    return out


@pytest.mark.parametrize("transport", ["memory", "zmq"])
def test_peak_material_stays_within_the_window(make_topology, transport: str) -> None:
    window_mb = 1.0
    topo = make_topology(2, dealer_window_mb=window_mb)
    assert 8 * window_mb * MB < STEPS * TRIPLE  # the workload's material is many times the window
    out = context.run_local(topo, _chain(), transport=transport)
    assert [int(v) for v in out["bank_a"].value] == _expected()
    for name in ("bank_a", "bank_b"):
        peak = out[name].stats.peak["material"]
        assert TRIPLE <= peak <= window_mb * MB, name
        assert out[name].stats.by_op[("offline", "credit")].messages_sent > 0  # consumption was reported
    assert TRIPLE <= out["helper"].stats.peak["dealt_ahead"] <= window_mb * MB


def test_a_run_within_the_window_sends_no_credit(make_topology) -> None:
    out = context.run_local(make_topology(2), _chain(steps=4), transport="memory")
    assert out["bank_a"].stats.peak["material"] == 4 * TRIPLE
    assert not any(tag == "credit" for _, tag in out["bank_a"].stats.by_op)


def test_hold_and_release_with_more_material_than_the_window(make_topology) -> None:
    """release() waits for the material the window lets through, not for all of it (that would never come)."""
    topo = make_topology(2, dealer_window_mb=0.5)
    out = context.run_local(topo, _chain(hold=True), transport="memory")
    assert [int(v) for v in out["bank_b"].value] == _expected()
    assert out["bank_b"].stats.peak["material"] <= 0.5 * MB


def test_an_op_larger_than_the_window_is_dealt_alone(make_topology) -> None:
    topo = make_topology(2, dealer_window_mb=0.1)  # less than one triple of N elements
    out = context.run_local(topo, _chain(steps=6), transport="memory")
    assert [int(v) for v in out["bank_a"].value] == _expected(6)
    assert out["bank_a"].stats.peak["material"] == TRIPLE
    assert out["helper"].stats.peak["dealt_ahead"] == TRIPLE


def test_training_within_a_small_window_gives_the_same_weights(make_topology) -> None:
    """SGD steps consume material step by step: the same weights as with material dealt all ahead."""
    rng = np.random.default_rng(3)
    x = rng.normal(size=(200, 3))
    y = (x @ np.array([1.0, -2.0, 0.5]) > 0).astype(np.int64)
    cfg = training.TrainConfig(hidden=(4,), epochs=2, batch_size=32, learning_rate=0.5, seed=2)

    async def program(ctx: Context):
        xs = ctx.input("bank_a", x if ctx.name == "bank_a" else None, shape=x.shape, fixed=True)
        ys = ctx.input("bank_b", y if ctx.name == "bank_b" else None, shape=y.shape, fixed=False)
        result = training.train(ctx, xs, ys, cfg)
        return await training.open_weights(ctx, result)

    small = context.run_local(make_topology(2, dealer_window_mb=0.05), program, transport="memory")
    large = context.run_local(make_topology(2), program, transport="memory")
    assert small["bank_a"].stats.peak["material"] <= 0.05 * MB
    assert large["bank_a"].stats.peak["material"] > 4 * 0.05 * MB
    for (ws, bs), (wl, bl) in zip(small["bank_a"].value, large["bank_a"].value, strict=True):
        # truncations round at random (one LSB a step): the weights agree within the fixed-point error
        np.testing.assert_allclose(ws, wl, atol=1e-2)
        np.testing.assert_allclose(bs, bl, atol=1e-2)


def test_a_window_larger_than_the_inbox_bound_is_refused(make_topology) -> None:
    topo: Topology = make_topology(2)
    data = topo.model_dump(mode="json", exclude_defaults=True)
    data.setdefault("session", {}).update(max_buffered_mb=64.0, dealer_window_mb=128.0)
    with pytest.raises(ConfigError, match="dealer_window_mb.*max_buffered_mb"):
        parse_topology(data, "topo.yaml")

"""The entry points of a script and a notebook: protocols.run and protocols.run_async, secure or emulated."""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
import pytest

import protocols
from mpc.localhost import default_topology


async def joint_sum(ctx: Any, scale: float = 1.0) -> Any:
    a = await ctx.input("bank_a", np.array([1.5, -2.0, 3.0]) if ctx.name == "bank_a" else None)
    b = await ctx.input("bank_b", np.array([0.5, 4.0, -1.0]) if ctx.name == "bank_b" else None)
    return await ctx.reveal((a * b) * scale)


EXPECTED = np.array([0.75, -8.0, -3.0])


def test_run_from_a_script_gives_values_and_stats() -> None:
    out = protocols.run(joint_sum, default_topology(), transport="memory", scale=2.0)
    assert set(out) == {"bank_a", "bank_b", "helper"} and not out.emulated and out.findings == []
    np.testing.assert_allclose(out["bank_a"].value, 2 * EXPECTED, atol=1e-3)
    stats = out["bank_a"].stats
    assert stats.bytes_sent == stats.total().bytes_sent > 0 and stats.rounds >= 2
    assert stats.messages_sent > 0 and stats.bytes_received > 0 and stats.messages_received > 0
    assert out["bank_a"].wall_s > 0
    np.testing.assert_allclose(out.values_by_party["bank_b"], 2 * EXPECTED, atol=1e-3)


async def test_run_async_inside_a_running_loop_over_sockets() -> None:
    out = await protocols.run_async(joint_sum)  # no topology: localhost on free ports, real sockets
    np.testing.assert_allclose(out["bank_b"].value, EXPECTED, atol=1e-3)


async def test_the_sync_entry_point_works_inside_a_running_loop_too() -> None:
    asyncio.get_running_loop()  # as in a notebook cell
    out = protocols.run(joint_sum, transport="memory")
    np.testing.assert_allclose(out["bank_a"].value, EXPECTED, atol=1e-3)


async def test_emulated_runs_report_values_findings_and_predicted_costs() -> None:
    topo = default_topology()
    secure = await protocols.run_async(joint_sum, topo, transport="memory")
    emulated = await protocols.run_async(joint_sum, topo, emulate=True)
    assert emulated.emulated and emulated.findings == [] and set(emulated) == {"bank_a", "bank_b"}
    np.testing.assert_allclose(emulated["bank_a"].value, EXPECTED, atol=1e-3)
    for name in emulated:
        assert emulated[name].stats.bytes_sent == secure[name].stats.total("online").bytes_sent

    async def overflow(ctx: Any) -> Any:
        a = await ctx.input("bank_a", np.array([1e7]) if ctx.name == "bank_a" else None)
        return await ctx.reveal(a * a)

    found = await protocols.run_async(overflow, topo, emulate=True)
    assert found.findings and "test_run_api.py" in str(found.findings[0])


def test_a_failing_party_is_named() -> None:
    async def bad(ctx: Any) -> Any:
        if ctx.name == "bank_b":
            raise ValueError("bank_b's own mistake")
        return await ctx.reveal(await ctx.input("bank_b", None, shape=(2,), fixed=True))

    from mpc import PartyFailed

    with pytest.raises(PartyFailed, match="bank_b"):
        protocols.run(bad, transport="memory", timeout_s=10)

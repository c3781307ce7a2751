"""`auto`'s link figures: measured at the hello and agreed by every party, or declared; never emulated ones."""

from __future__ import annotations

import asyncio

from mpc.runtime import Party, run_local, run_party
from protocols.interface.context import Context, secure
from protocols.interface.context import run_local as run_secure
from protocols.primitives.comparison import choose_method


async def figures(party: Party) -> dict[str, tuple[float, float | None, str]]:
    return {f"{a}-{b}": (f.latency_ms, f.bandwidth_mbps, f.source) for (a, b), f in party.links.items()}


def test_measured_links_are_the_same_on_every_party_and_follow_the_network(make_topology) -> None:
    """20 ms one-way and 50 Mbit/s emulated on every link: measured as at least that latency (the emulation
    holds each frame until due) and the bandwidth within a factor of 4 or so (loose bounds: on a host
    loaded 10x its cores, scheduling delays of 10-20 ms shift round trips and probes unevenly)."""
    topo = make_topology(2, cost_model={}, network={"latency_ms": 20, "bandwidth_mbps": 50})
    out = run_local(topo, figures)
    seen = [o.value for o in out.values()]
    assert all(s == seen[0] for s in seen), seen  # agreed: the very same numbers on every party
    assert set(seen[0]) == {"bank_a-bank_b", "bank_b-helper"}  # the links the cost model reads
    for latency, bandwidth, source in seen[0].values():
        assert source == "measured"
        assert 20 <= latency < 100
        assert bandwidth is not None and 12 < bandwidth < 200
    assert all(o.stats.rounds == 0 and o.stats.to_dict()["messages"] == 0 for o in out.values())  # not the program's


def test_declared_links_are_not_measured(make_topology) -> None:
    topo = make_topology(2, cost_model={"latency_ms": 25, "links": [{"between": ["helper", "bank_b"],
                                                                      "latency_ms": 3, "bandwidth_mbps": 10}]})
    seen = run_local(topo, figures)["bank_a"].value
    assert seen == {"bank_a-bank_b": (25.0, None, "declared"), "bank_b-helper": (3.0, 10.0, "declared")}


async def test_parties_emulating_different_networks_agree_on_one_method(make_topology) -> None:
    """Each host's emulated delay is its own (no longer compared at the hello); `auto` still chooses the same
    method on every party, from the figures the measuring party sent to all."""
    topo = make_topology(2, cost_model={}, timeout_s=20)

    async def choices(ctx: Context) -> tuple[object, list[str]]:
        return await figures(ctx.party), [choose_method(ctx, n) for n in (1, 100, 10_000, 10**6)]

    runs = [run_party(topo.with_network(latency_ms=15) if name == "bank_b" else topo, name, secure(choices))
            for name in topo.names]
    out = await asyncio.gather(*runs)
    assert all(o.value == out[0].value for o in out)  # the helper too: it deals for the method chosen
    latency = out[0].value[0]["bank_a-bank_b"][0]
    assert latency >= 7.5  # bank_b's 15 ms one way, then bank_a's none back: a round trip of 15 ms at least
    assert out[0].value[1][0] == "dcf"  # one comparison over a 7.5 ms link: the one-round method


def test_auto_decides_from_measured_links_not_from_emulation_settings(make_topology) -> None:
    """A secure comparison under `auto`: on a link measured at 25 ms a small batch goes by dcf (1 round); the
    same emulated delay on the in-memory transport (which measures nothing) leaves it to bits."""

    async def program(ctx: Context):
        x = ctx.input("bank_a", [1.0, -2.0, 3.0] if ctx.name == "bank_a" else None)
        y = ctx.input("bank_b", [0.5, 0.5, 9.0] if ctx.name == "bank_b" else None)
        lt = (await x) < (await y)
        return await ctx.reveal(lt), choose_method(ctx, 3)

    wan = make_topology(2, cost_model={}, network={"latency_ms": 25})
    assert run_secure(wan, program)["bank_a"].value[1] == "dcf"
    assert run_secure(wan, program, transport="memory")["bank_a"].value[1] == "bits"
    values, method = run_secure(make_topology(2, network={"latency_ms": 25}), program)["bank_a"].value
    assert method == "bits"  # declared: no latency (conftest), whatever the emulation
    assert values.tolist() == [0, 1, 1]

"""The mesh over real ZeroMQ sockets: exchange, keyed buffering, measured rounds, latency, failures."""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest
import zmq

from mpc.runtime import Party, PartyFailed, run_local, run_local_async, run_party
from mpc.transport import PeerAborted, PeerTimeout, ProtocolViolation
from mpc.transport.frames import HEADER_SIZE
from parties.diagnostics import mesh, pingpong


@pytest.mark.parametrize("n", [2, 3, 5])
def test_mesh_exchange(make_topology, n: int) -> None:
    topo = make_topology(n, helper=False)
    out = run_local(topo, lambda p: mesh(p, size=257))
    assert set(out) == set(topo.names)
    for name, o in out.items():
        assert sorted(o.value["checked"]) == sorted(set(topo.names) - {name})
        assert o.stats.rounds == 1
        total = o.stats.total()
        # two messages (array + digest) to each peer, header bytes counted
        assert total.messages_sent == 2 * (n - 1)
        assert total.bytes_sent == (n - 1) * (2 * HEADER_SIZE + 257 * 8 + 32)
        assert total.bytes_received == total.bytes_sent
    assert len({o.session_id for o in out.values()}) == 1


def test_sessions_are_fresh(make_topology) -> None:
    topo = make_topology(2, helper=False)
    a = run_local(topo, mesh)["bank_a"].session_id
    b = run_local(topo, mesh)["bank_a"].session_id
    assert a != b


@pytest.mark.parametrize(("n", "steps"), [(2, 1), (2, 7), (3, 10), (5, 12)])
def test_pingpong_round_count_is_exact(make_topology, n: int, steps: int) -> None:
    topo = make_topology(n, helper=False)
    out = run_local(topo, lambda p: pingpong(p, steps=steps))
    assert max(o.stats.rounds for o in out.values()) == steps
    last = topo.names[steps % n]
    assert out[last].value["token"] == steps
    assert out[last].value["depth"] == steps


def test_dependent_steps_pay_the_emulated_latency(make_topology) -> None:
    steps, latency_ms = 6, 30
    topo = make_topology(2, helper=False, network={"latency_ms": latency_ms})
    out = run_local(topo, lambda p: pingpong(p, steps=steps))
    wall = max(o.wall_s for o in out.values())
    assert wall >= steps * latency_ms / 1000
    assert wall < steps * latency_ms / 1000 + 1.0


def test_bandwidth_is_emulated(make_topology) -> None:
    # 2 MB over 80 Mbit/s takes at least 0.2 s; unlimited it takes a few ms.
    topo = make_topology(2, helper=False, network={"bandwidth_mbps": 80})
    out = run_local(topo, lambda p: mesh(p, size=250_000))
    assert max(o.wall_s for o in out.values()) >= 0.2


def test_out_of_order_arrivals_are_buffered_by_key(make_topology) -> None:
    topo = make_topology(2, helper=False)

    async def program(party: Party) -> list[int]:
        op = party.new_op("ooo")
        if party.name == "bank_a":
            for step in (4, 2, 0, 3, 1):
                party.send("bank_b", op, np.array([step * 10], dtype=np.uint64), step=step)
            return []
        await asyncio.sleep(0)  # let everything arrive first
        got = await asyncio.gather(*(party.recv("bank_a", op, step=s) for s in (1, 0, 4, 3, 2)))
        return [int(m.array[0]) for m in got]

    out = run_local(topo, program)
    assert out["bank_b"].value == [10, 0, 40, 30, 20]


async def test_missing_peer_times_out_naming_it(make_topology) -> None:
    topo = make_topology(2, helper=True)

    async def nothing(party: Party) -> None:
        return None

    t0 = time.monotonic()
    with pytest.raises(PeerTimeout) as info:
        await run_party(topo, "bank_a", nothing, timeout_s=0.5)
    assert time.monotonic() - t0 < 5
    assert "bank_b" in str(info.value) and "helper" in str(info.value)


async def test_late_peer_is_waited_for(make_topology) -> None:
    topo = make_topology(2, helper=False)
    early = asyncio.create_task(run_party(topo, "bank_a", mesh, timeout_s=10))
    await asyncio.sleep(0.3)  # bank_b starts late, well within the timeout
    late = await run_party(topo, "bank_b", mesh, timeout_s=10)
    assert (await early).session_id == late.session_id


@pytest.mark.parametrize("curve", [True, False])
def test_port_in_use_is_a_clear_error(make_topology, curve: bool) -> None:
    topo = make_topology(2, helper=False)
    ctx = zmq.Context()
    squatter = ctx.socket(zmq.PAIR)
    squatter.bind(f"tcp://127.0.0.1:{topo.party('bank_b').port}")
    try:
        with pytest.raises(PartyFailed, match="bank_b: cannot listen on 127.0.0.1:.*in use"):
            run_local(topo, mesh, timeout_s=2, curve=curve)
    finally:
        squatter.close(0)
        ctx.term()


async def test_different_settings_stop_both_parties_at_start(make_topology) -> None:
    """A party with another encoding (or program) would hang or compute garbage: refused at the hello."""
    topo = make_topology(2, helper=False, timeout_s=20)
    other = topo.model_copy(update={"frac_bits": 12})
    t0 = time.monotonic()
    results = await asyncio.gather(run_party(topo, "bank_a", mesh), run_party(other, "bank_b", mesh),
                                   return_exceptions=True)
    assert time.monotonic() - t0 < 5  # at once, not after the 20 s timeout
    # whichever party notices first stops and tells the other (which may hear that before noticing itself)
    assert all(isinstance(r, (ProtocolViolation, PeerAborted)) for r in results), results
    noticed = [str(r) for r in results if isinstance(r, ProtocolViolation)]
    assert noticed and all("runs with different settings (session.frac_bits: " in r for r in map(str, results))
    assert any("(session.frac_bits: 16 here, 12 at bank_b)" in r or "(session.frac_bits: 12 here, 16 at bank_a)" in r
               for r in noticed)


async def test_auto_comparison_needs_the_same_declared_links_on_every_party(make_topology) -> None:
    """`auto` chooses a method from the links' latency and bandwidth: parties told different figures would
    choose differently and wait for each other's messages forever, so a declared cost model is compared at
    the hello; the emulated network is host-local and may differ (auto never reads it)."""
    topo = make_topology(2, helper=False, timeout_s=20, cost_model={"latency_ms": 0})
    other = make_topology(2, helper=False, timeout_s=20, cost_model={"latency_ms": 5})
    other = topo.model_copy(update={"cost_model": other.cost_model})
    a, b = await asyncio.gather(run_party(topo, "bank_a", mesh), run_party(other, "bank_b", mesh),
                                return_exceptions=True)
    # whichever party notices first stops and tells the other (which may hear that before noticing itself)
    for error in (a, b):
        assert isinstance(error, (ProtocolViolation, PeerAborted)), error
        assert "different settings (cost_model: " in str(error), error
        assert '{"latency_ms":0.0}' in str(error) and '{"latency_ms":5.0}' in str(error), error
    out = await asyncio.gather(run_party(topo, "bank_a", mesh), run_party(topo.with_network(latency_ms=5),
                                                                          "bank_b", mesh))
    assert all(o.value is not None for o in out)


async def test_parties_listed_in_another_order_are_refused(make_topology) -> None:
    topo = make_topology(2, helper=False, timeout_s=20)
    reordered = topo.model_copy(update={"parties": list(reversed(topo.parties))})
    t0 = time.monotonic()
    a, b = await asyncio.gather(run_party(topo, "bank_a", mesh), run_party(reordered, "bank_b", mesh),
                                return_exceptions=True)
    assert time.monotonic() - t0 < 5
    assert isinstance(a, ProtocolViolation) and "bank_b numbers the parties differently" in str(a)
    assert isinstance(b, ProtocolViolation)


async def test_different_program_parameters_are_refused(make_topology) -> None:
    from parties.programs import program_setup

    topo = make_topology(2, helper=False, timeout_s=20)
    # each bank's own data directory may differ; a shared parameter may not
    same = program_setup("fraud", {"data_dir": "A", "flags_to": "own"})
    assert same == program_setup("fraud", {"data_dir": "B", "flags_to": "own"})
    assert program_setup("fraud", {"flags_to": "both"}) == program_setup("fraud", {})  # defaults filled in
    other = program_setup("fraud", {"data_dir": "B", "flags_to": "both"})
    results = await asyncio.gather(run_party(topo, "bank_a", mesh, setup=same),
                                   run_party(topo, "bank_b", mesh, setup=other), return_exceptions=True)
    # whichever party notices first stops and tells the other (which may hear that before noticing itself)
    assert all(isinstance(r, (ProtocolViolation, PeerAborted)) for r in results), results
    assert all("runs with different settings (program: " in str(r) for r in results), results
    ours, _, theirs = str(results[0]).partition(" here, ")
    assert "program: fraud(" in ours and "flags_to='own'" in ours
    assert theirs.startswith("fraud(") and "flags_to='both'" in theirs.split(" at bank_b")[0]


def test_party_error_aborts_the_others_and_names_the_party(make_topology) -> None:
    topo = make_topology(3, helper=False, timeout_s=30)

    async def program(party: Party) -> None:
        op = party.new_op("x")
        if party.name == "bank_c":
            raise ValueError("bad input in bank_c")
        await party.recv("bank_c", op)

    t0 = time.monotonic()
    with pytest.raises(PartyFailed) as info:
        run_local(topo, program)
    assert time.monotonic() - t0 < 5  # the abort, not the 30 s timeout, stopped the others
    assert info.value.party == "bank_c"
    assert "bad input in bank_c" in str(info.value)


async def test_others_see_who_failed_but_not_the_private_detail(make_topology) -> None:
    """The abort names the party and its error's class; the error's text (which may hold the party's
    private data) stays with the party that raised it."""
    topo = make_topology(2, helper=False)

    async def program(party: Party) -> None:
        op = party.new_op("x")
        if party.name == "bank_a":
            raise RuntimeError("balance of account 42 is -31337.77")
        await party.recv("bank_a", op)

    a = asyncio.create_task(run_party(topo, "bank_a", program))
    b = asyncio.create_task(run_party(topo, "bank_b", program))
    with pytest.raises(PeerAborted, match="bank_a failed with RuntimeError") as info:
        await b
    assert info.value.peer == "bank_a" and "31337" not in str(info.value)
    with pytest.raises(RuntimeError, match="-31337.77"):
        await a


def test_wrong_shape_is_a_protocol_violation(make_topology) -> None:
    topo = make_topology(2, helper=False)

    async def program(party: Party) -> None:
        op = party.new_op("x")
        if party.name == "bank_a":
            party.send("bank_b", op, np.zeros(3, dtype=np.uint64))
        else:
            await party.recv("bank_a", op, dtype=np.uint64, shape=(4,))

    with pytest.raises(PartyFailed) as info:
        run_local(topo, program)
    assert isinstance(info.value.error, ProtocolViolation)
    assert "shape" in str(info.value)


def test_diverged_program_fails_fast(make_topology) -> None:
    """A peer that finishes without sending what we await is reported at once, not after the timeout."""
    topo = make_topology(2, helper=False, timeout_s=30)

    async def program(party: Party) -> None:
        op = party.new_op("x")
        if party.name == "bank_b":
            await party.recv("bank_a", op)

    t0 = time.monotonic()
    with pytest.raises(PartyFailed, match="finished its program without sending"):
        run_local(topo, program)
    assert time.monotonic() - t0 < 5


async def test_many_small_messages_in_one_turn_coalesce(make_topology) -> None:
    topo = make_topology(2, helper=False)

    async def program(party: Party) -> int:
        op = party.new_op("many")
        other = "bank_b" if party.name == "bank_a" else "bank_a"
        for i in range(100):
            party.send(other, op, np.array([i], dtype=np.uint64), step=i)
        got = await asyncio.gather(*(party.recv(other, op, step=i) for i in range(100)))
        assert [int(m.array[0]) for m in got] == list(range(100))
        return party.stats.transport_sends

    out = await run_local_async(topo, program)
    for o in out.values():
        assert o.stats.total().messages_sent == 100
        assert o.stats.rounds == 1
        assert o.value == 2  # the hello, then all 100 messages in one multipart send


@pytest.mark.parametrize("curve", [False, True])
async def test_large_arrays_travel_in_pieces_and_arrive_whole(make_topology, curve: bool) -> None:
    """Arrays larger than one message (1 MiB) go in pieces; small ones sent in the same turn share
    messages before and after them, and everything arrives whole and in its place."""
    topo = make_topology(2, helper=False)
    rng = np.random.default_rng(5)
    arrays = [rng.integers(0, 2**63, size, dtype=np.uint64) for size in (3, 5 * 2**17 + 7, 11, 2**16, 2**17)]

    async def program(party: Party) -> tuple[int, int]:
        op = party.new_op("large")
        other = "bank_b" if party.name == "bank_a" else "bank_a"
        before = party.stats.transport_sends
        for i, a in enumerate(arrays):
            party.send(other, op, a, step=i)
        got = await asyncio.gather(*(party.recv(other, op, step=i) for i in range(len(arrays))))
        for a, m in zip(arrays, got, strict=True):
            np.testing.assert_array_equal(m.array, a)
        return party.stats.transport_sends - before, party.stats.rounds

    out = await run_local_async(topo, program, curve=curve)
    for o in out.values():
        # [3 words] alone (the next frame is large), 6 pieces of the 5 MiB array, [11 words + 512 KiB],
        # then the array of exactly 1 MiB, cut in two by its header
        assert o.value == (1 + 6 + 1 + 2, 1)


async def test_abort_is_not_held_by_the_emulated_latency(make_topology) -> None:
    """With 1 s one-way latency the abort must arrive before the disconnect is noticed (0.5 s grace):
    the others report the abort's reason, not `lost the connection`."""
    topo = make_topology(2, helper=True, network={"latency_ms": 1000}, timeout_s=20)

    async def program(party: Party) -> None:
        op = party.new_op("x")
        if party.name == "helper":
            raise RuntimeError("the helper's disk is full")
        await party.recv("helper", op)

    results = await asyncio.gather(*(run_party(topo, n, program) for n in topo.names), return_exceptions=True)
    for name, r in zip(topo.names[:2], results, strict=False):
        assert isinstance(r, PeerAborted) and r.peer == "helper", (name, r)
        assert "helper failed with RuntimeError" in str(r)  # the abort's reason (its detail stays on the helper)
        assert "lost the connection" not in str(r)

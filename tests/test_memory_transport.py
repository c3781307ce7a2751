"""The in-memory transport: the same rounds and bytes as ZeroMQ, and the same failure semantics."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from mpc.runtime import Party, PartyFailed, run_local, run_on
from mpc.stats import Stats
from mpc.transport import MemoryNetwork, PeerAborted, PeerGone, PeerTimeout, ProtocolViolation
from mpc.transport.frames import HEADER_SIZE
from parties.diagnostics import mesh, pingpong
from protocols.interface import context
from protocols.interface.context import Context

RNG = np.random.default_rng(11)
A = RNG.uniform(-50, 50, size=(6, 4))
B = RNG.uniform(-50, 50, size=(6, 4))
W = RNG.uniform(-2, 2, size=(4, 3))


def _op(name: str):
    """A secure program computing `name` on bank_a's and bank_b's inputs."""

    async def program(ctx: Context):
        x = await ctx.input("bank_a", A if ctx.name == "bank_a" else None)
        y = await ctx.input("bank_b", B if ctx.name == "bank_b" else None)
        w = await ctx.input("bank_b", W if ctx.name == "bank_b" else None)
        out = {"mul": lambda: x * y, "matmul": lambda: x @ w, "trunc": lambda: ctx.truncate(x * 3, 1),
               "lt_dcf": lambda: ctx.less(x, y, "dcf"), "lt_bits": lambda: ctx.less(x, y, "bits"),
               "lt_compact": lambda: ctx.less(x, y, "compact"),
               "relu": lambda: ctx.relu(x)}[name]()
        return await ctx.reveal(out)

    return program


@pytest.mark.parametrize("op", ["mul", "matmul", "trunc", "lt_dcf", "lt_bits", "lt_compact", "relu"])
def test_memory_and_zmq_measure_the_same_rounds_and_bytes(make_topology, op: str) -> None:
    topo = make_topology(2)
    on_zmq = context.run_local(topo, _op(op))
    in_memory = context.run_local(topo, _op(op), transport="memory")
    for name in topo.names:
        real, mem = on_zmq[name].stats.to_dict(), in_memory[name].stats.to_dict()
        for key in ("rounds", "messages", "bytes_sent", "messages_received", "bytes_received", "phases", "ops"):
            assert mem[key] == real[key], (name, key)
    # truncation rounds up or down at random (one LSB): the values agree within two LSBs
    np.testing.assert_allclose(in_memory["bank_a"].value, on_zmq["bank_a"].value, rtol=0, atol=2 * 2.0**-16)


def test_mesh_counts_header_and_payload_bytes(make_topology) -> None:
    topo = make_topology(3, helper=False)
    out = run_local(topo, lambda p: mesh(p, size=257), transport="memory")
    for name, o in out.items():
        assert sorted(o.value["checked"]) == sorted(set(topo.names) - {name})
        total = o.stats.total()
        assert o.stats.rounds == 1 and total.messages_sent == 4
        assert total.bytes_sent == total.bytes_received == 2 * (2 * HEADER_SIZE + 257 * 8 + 32)
        assert o.stats.transport_sends == 4  # one send per peer for its two arrays (one turn), one for goodbye
    assert len({o.session_id for o in out.values()}) == 1


def test_pingpong_rounds(make_topology) -> None:
    out = run_local(make_topology(3, helper=False), lambda p: pingpong(p, steps=10), transport="memory")
    assert max(o.stats.rounds for o in out.values()) == 10


def test_received_array_is_a_read_only_copy(make_topology) -> None:
    async def program(party: Party) -> bool:
        op = party.new_op("copy")
        sent = np.arange(4, dtype=np.uint64)
        other = party.peers[0]
        party.send(other, op, sent)
        got = (await party.recv(other, op, dtype=np.uint64, shape=(4,))).array
        sent[:] = 99  # the sender's later changes never reach the receiver
        return not got.flags.writeable and got.tolist() == [0, 1, 2, 3]

    assert all(o.value for o in run_local(make_topology(2, helper=False), program, transport="memory").values())


def test_wrong_shape_stops_the_run_naming_the_sender(make_topology) -> None:
    async def program(party: Party) -> None:
        op = party.new_op("shape")
        if party.name == "bank_b":
            party.send("bank_a", op, np.zeros(3, dtype=np.uint64))
        else:
            await party.recv("bank_b", op, shape=(4,))

    with pytest.raises(PartyFailed) as err:
        run_local(make_topology(2, helper=False), program, transport="memory")
    assert isinstance(err.value.error, ProtocolViolation) and err.value.error.peer == "bank_b"
    assert "bank_b sent shape (3,) for shape step 0, expected (4,)" in str(err.value.error)


def test_unsendable_dtype_is_refused_as_on_the_wire(make_topology) -> None:
    async def program(party: Party) -> None:
        party.send(party.peers[0], party.new_op("x"), np.zeros(2, dtype=np.complex128))

    with pytest.raises(PartyFailed, match="cannot be sent"):
        run_local(make_topology(2, helper=False), program, transport="memory")


def test_timeout_names_the_peer(make_topology) -> None:
    async def program(party: Party) -> None:
        if party.name == "bank_a":
            await party.recv("bank_b", party.new_op("never sent"))
        else:
            await party.recv("bank_a", party.new_op("never sent"), step=1)

    with pytest.raises(PartyFailed) as err:
        run_local(make_topology(2, helper=False, timeout_s=0.3), program, transport="memory")
    assert isinstance(err.value.error, PeerTimeout)
    assert "timed out after 0.3 s waiting for" in str(err.value.error)


async def test_abort_reaches_every_peer_without_the_error_text(make_topology) -> None:
    topo = make_topology(2)
    network = MemoryNetwork(topo)

    async def program(party: Party) -> None:
        if party.name == "bank_b":
            raise ValueError("secret value 31337")
        await party.recv("bank_b", party.new_op("wait"))

    runs = []
    for name in topo.names:
        stats = Stats()
        runs.append(run_on(network.transport(name, stats), topo, name, program, stats))
    a, b, helper = await asyncio.gather(*runs, return_exceptions=True)
    assert isinstance(b, ValueError)
    for other in (a, helper):
        assert isinstance(other, PeerAborted) and other.peer == "bank_b", other
        assert "bank_b failed with ValueError" in str(other) and "31337" not in str(other)


def test_goodbye_fails_a_wait_on_a_finished_peer(make_topology) -> None:
    async def program(party: Party) -> None:
        if party.name == "bank_a":
            await party.recv("bank_b", party.new_op("mul"))

    with pytest.raises(PartyFailed) as err:
        run_local(make_topology(2, helper=False), program, transport="memory")
    assert isinstance(err.value.error, PeerGone)
    assert "bank_b finished its program without sending" in str(err.value.error) and err.value.error.peer == "bank_b"

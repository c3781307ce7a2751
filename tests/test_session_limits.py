"""Session settings that bound a run (input sizes, message sizes), settings `mpc check` refuses, and the
in-process test dealer kept out of deployments."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from mpc.config import Topology
from mpc.runtime import PartyFailed, run_party
from mpc.transport import PeerAborted, ProtocolViolation
from parties.cli import cli
from protocols.interface.context import Context, run_local, secure
from tests.test_programs import _topology

ROOT = Path(__file__).resolve().parent.parent


def test_an_input_over_the_session_limit_is_refused_on_its_owner(make_topology) -> None:
    async def program(ctx: Context):
        x = await ctx.input("bank_a", np.ones(101) if ctx.name == "bank_a" else None)
        return await ctx.reveal(x < 0)  # never reached: nothing is dealt for it

    with pytest.raises(PartyFailed) as info:
        run_local(make_topology(2, max_input_elements=100), program, transport="memory")
    assert info.value.party == "bank_a"
    assert ("bank_a's input (op 2, shape (101,)) has 101 elements, over the session's limit of 100 "
            "(session.max_input_elements in the topology)") in str(info.value)


def test_a_declared_shape_over_the_limit_is_refused_on_every_party_at_the_call(make_topology) -> None:
    async def program(ctx: Context):
        with pytest.raises(ValueError, match=r"bank_b's input \(op 2, shape \(10, 11\)\) has 110 elements"):
            ctx.input("bank_b", np.ones((10, 11)) if ctx.name == "bank_b" else None, shape=(10, 11), fixed=True)
        return True

    out = run_local(make_topology(2, max_input_elements=100), program, transport="memory")
    assert all(o.value for o in out.values())  # the helper too: it checks before dealing anything


async def test_metadata_over_the_limit_stops_the_others_before_they_deal(make_topology, monkeypatch) -> None:
    """An owner whose own limit is higher (a modified peer: the limit is agreed at the hello, so the hello is
    told to skip it here) sends a shape over ours: bank_b and the helper refuse it on receipt, naming it."""
    limited = make_topology(2, max_input_elements=100, timeout_s=20)
    generous = limited.model_copy(update={"max_input_elements": 10_000})
    real = Topology.agreed_settings
    monkeypatch.setattr(Topology, "agreed_settings",
                        lambda self: {k: v for k, v in real(self).items() if k != "session.max_input_elements"})

    async def program(ctx: Context):
        x = await ctx.input("bank_a", np.ones(500) if ctx.name == "bank_a" else None)
        return await ctx.reveal(x < 0)

    runs = [run_party(generous if name == "bank_a" else limited, name, secure(program)) for name in limited.names]
    results = dict(zip(limited.names, await asyncio.gather(*runs, return_exceptions=True), strict=True))
    for name in ("bank_b", "helper"):
        error = results[name]
        assert isinstance(error, (ValueError, PeerAborted)), (name, error)
    assert any(isinstance(e, ValueError) and "bank_a's input (op 2, shape (500,)) has 500 elements" in str(e)
               for e in results.values()), results
    assert isinstance(results["bank_a"], (PeerAborted, ProtocolViolation)), results["bank_a"]


async def test_parties_with_different_message_limits_stop_at_the_hello(make_topology) -> None:
    """It used to end mid-run as 'lost or replayed messages (sequence 3, expected 1)'."""
    topo = make_topology(2, helper=False, timeout_s=20)
    smaller = topo.model_copy(update={"max_message_mb": 2.0})
    from parties.diagnostics import mesh

    results = await asyncio.gather(run_party(topo, "bank_a", mesh), run_party(smaller, "bank_b", mesh),
                                   return_exceptions=True)
    assert all(isinstance(r, (ProtocolViolation, PeerAborted)) for r in results), results
    assert any("session.max_message_mb: 1024 here, 2 at bank_b" in str(r)
               or "session.max_message_mb: 2 here, 1024 at bank_a" in str(r) for r in results), results


@pytest.mark.parametrize(("session", "expected"), [
    ("{frac_bits: 40}", "session.frac_bits: Input should be less than or equal to 16 (every shipped function "
                        "supports 10 to 16 fractional bits)"),
    ("{timeout_s: .nan}", "session.timeout_s: Input should be a finite number"),
    ("{max_message_mb: 0.0001}", "session.max_message_mb: Input should be greater than or equal to 1 (large "
                                 "frames travel in pieces of 1 MiB"),
    ("{max_message_mb: 64, max_buffered_mb: 8}", "session.max_buffered_mb: 8 MB is below max_message_mb (64 MB): "
                                                 "one message alone would exceed it"),
])
def test_mpc_check_refuses_settings_that_used_to_pass(tmp_path: Path, session: str, expected: str) -> None:
    path = tmp_path / "t.yaml"
    path.write_text("deployment:\n  parties:\n    - {name: bank_a, role: compute, port: 7001}\n"
                    f"    - {{name: bank_b, role: compute, port: 7002}}\nsession: {session}\n")
    res = CliRunner().invoke(cli, ["check", str(path)])
    assert res.exit_code == 2, res.output
    assert f"{path}: {expected}" in res.output


def test_the_test_dealer_is_not_in_the_public_api(make_topology) -> None:
    async def program(ctx: Context):
        return 1

    for call in (lambda: secure(program, dealer="local-test"),
                 lambda: run_local(make_topology(2), program, dealer="local-test")):
        with pytest.raises(ValueError, match="the insecure in-process test dealer is protocols.interface.testing's"):
            call()


SNEAKY = '''
from protocols.interface.testing import secure_with_test_dealer


async def sneaky(party: "Party"):
    async def body(ctx):
        x = await ctx.input("bank_a", [1.0] if ctx.name == "bank_a" else None)
        return await ctx.reveal(x * x)

    return await secure_with_test_dealer(body)(party)
'''


def test_mpc_launch_refuses_the_test_dealer(tmp_path: Path) -> None:
    """A program reaching for the testing API by itself: every party refuses it (exit 2 is kept for bad
    topologies; this is a failed run)."""
    prog = tmp_path / "sneaky.py"
    prog.write_text(SNEAKY)
    res = subprocess.run([sys.executable, "-m", "parties", "launch", str(_topology(tmp_path)), "--program",
                          f"{prog}:sneaky"], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert res.returncode == 1, res.stderr
    assert "the in-process test dealer offers no secrecy and is for tests only; mpc run refuses it" in res.stderr

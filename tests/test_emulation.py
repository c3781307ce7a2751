"""Emulation: the same program on cleartext in one process: the secure run's results and costs, and a
report of every value the secure run would get wrong, with the user's line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from protocols.interface.context import Context, run_local
from protocols.interface.emulation import emulate

ROOT = Path(__file__).resolve().parent.parent
RNG = np.random.default_rng(7)
A = RNG.uniform(-20, 20, (8, 4))
W = RNG.uniform(-1, 1, (4, 3))
K = RNG.integers(-500, 500, 12)


async def workload(ctx: Context):
    x = await ctx.input("bank_a", A if ctx.name == "bank_a" else None)
    w = await ctx.input("bank_b", W if ctx.name == "bank_b" else None)
    k = await ctx.input("bank_b", K if ctx.name == "bank_b" else None)
    h = ctx.relu(x @ w)
    outs = [h, x * x[:, :1], np.mean(x, axis=0), x.max(axis=1), x.argmax(axis=0), x < 3.0, x == x,
            np.where(x > 0, x, 0.0), k // 7, abs(x) / 3, ctx.sign(x), k * k, ctx.sigmoid(x),
            ctx.reciprocal(abs(x) + 1.0), np.exp(x[:2] / 4)]
    return [await ctx.reveal(o) for o in outs]


@pytest.mark.parametrize("method", ["dcf", "compact", "bits"])
def test_emulation_predicts_the_secure_run(make_topology, method: str) -> None:
    """Same results (to the truncation's last bit), and exactly the rounds and online bytes measured."""
    topo = make_topology(3 if method == "bits" else 2, comparison=method)
    secure = run_local(topo, workload)
    report = emulate(topo, workload)
    assert report.ok, report.findings
    compute = [p.name for p in topo.compute_parties]
    for got, want in zip(report.results[compute[0]], secure[compute[0]].value, strict=True):
        np.testing.assert_allclose(got, want, atol=4 * 2.0**-16, rtol=1e-4)  # random truncation, amplified by exp
    assert report.rounds == max(secure[n].stats.rounds for n in compute)
    for name in compute:
        assert report.online_bytes_per_party[name] == secure[name].stats.total("online").bytes_sent, name


def test_the_overflow_example_is_named_with_its_line(make_topology) -> None:
    async def ledger(ctx: Context):
        x = await ctx.input("bank_a", np.array([100000.0, 12.5]) if ctx.name == "bank_a" else None)
        y = await ctx.input("bank_b", np.array([100000.0, 2.0]) if ctx.name == "bank_b" else None)
        product = x * y  # 1e10: beyond 2^30 at f = 16
        big = ctx.constant(np.array([2.0**46, 0.0]))  # representable (|x| < 2^47), as is -2^46
        far = big < -(2.0**46)  # but their difference, 2^47, is beyond what a comparison decides
        return await ctx.reveal(product), await ctx.reveal(far)

    report = emulate(make_topology(2), ledger)
    assert not report.ok
    found = {(f.op, f.where.split(" (")[1].rstrip(")")) for f in report.findings}
    assert ("mul", "product = x * y  # 1e10: beyond 2^30 at f = 16") in found
    assert any(op == "compare" and line.startswith("far = big < -(2.0**46)") for op, line in found)
    assert all("test_emulation.py:" in f.where for f in report.findings)
    messages = " ".join(f.message for f in report.findings)
    assert "product of magnitude 1e+10 is beyond the fixed-point range" in messages


def test_mpc_emulate_flags_a_user_program_file(tmp_path: Path) -> None:
    program = tmp_path / "ledger.py"
    program.write_text(
        "import numpy as np\n\n\n"
        "async def ledger(ctx, scale: float = 1.0):\n"
        "    a = np.array([100000.0, 12.5]) if ctx.name == 'bank_a' else None\n"
        "    b = np.array([100000.0, 2.0]) if ctx.name == 'bank_b' else None\n"
        "    x = await ctx.input('bank_a', a)\n"
        "    y = await ctx.input('bank_b', b)\n"
        "    return await ctx.reveal(x * y * scale)\n")
    config = str(ROOT / "configs" / "local-2banks-helper.yaml")
    res = subprocess.run([sys.executable, "-m", "parties", "emulate", config, "--program", f"{program}:ledger"],
                         capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert res.returncode == 1
    assert f"{program}:9 (return await ctx.reveal(x * y * scale)): mul: product of magnitude 1e+10" in res.stderr
    assert "predicted online 5 rounds" in res.stdout
    ok = subprocess.run([sys.executable, "-m", "parties", "emulate", config, "--program", f"{program}:ledger", "-p",
                         "scale=1e-3"], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert ok.returncode == 1  # the product itself still overflows before the scaling


def test_programs_that_diverge_between_parties_are_named(make_topology) -> None:
    async def diverging(ctx: Context):
        x = await ctx.input("bank_a", np.array([1.0, 2.0]) if ctx.name == "bank_a" else None)
        return await ctx.reveal(x * x if ctx.name == "bank_a" else x)

    with pytest.raises(ValueError, match="the parties' programs diverge at operation 2: bank_a calls mul"):
        emulate(make_topology(2), diverging)


def test_emulated_parties_agree_and_declared_inputs_are_arrays_at_once(make_topology) -> None:
    """Every emulated party draws the same truncation roundings; a declared input is a SharedArray at
    once, as in the secure run, and a value of the other kind is refused as there."""
    async def program(ctx: Context):
        x = ctx.input("bank_a", np.linspace(0.1, 3, 1000) if ctx.name == "bank_a" else None, shape=(1000,),
                      fixed=True)
        return await ctx.reveal(x * x)

    report = emulate(make_topology(2), program)
    np.testing.assert_array_equal(report.results["bank_a"], report.results["bank_b"])

    async def wrong_kind(ctx: Context):
        return ctx.input("bank_a", np.arange(3) if ctx.name == "bank_a" else None, shape=(3,), fixed=True)

    with pytest.raises(ValueError, match=r"input of shape \(3,\) \(integer\) does not match the declared"):
        emulate(make_topology(2), wrong_kind)

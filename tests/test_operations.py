"""The test matrix of the registry: every registered operation x every comparison method it takes x 2 and 3
compute parties (where the method supports them), on the in-memory transport, against numpy; the same
programs emulated, every party's result compared; and every operation once with the parties as processes
(`mpc bench`, which checks its opened result against numpy)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mpc.config import localhost_topology
from protocols.interface.context import Context, run_local
from protocols.interface.emulation import emulate
from protocols.interface.operations import OPERATIONS
from protocols.interface.registry import Operation

ROOT = Path(__file__).resolve().parents[1]
N = 48
CASES = [("", 2), ("", 3), ("dcf", 2), ("compact", 2), ("bits", 2), ("bits", 3)]
"""(method, compute parties): "" runs the operations that take no method; dcf and compact need 2."""


def operations_for(method: str) -> list[Operation]:
    return [op for op in OPERATIONS if bool(method) == op.methods]


def program(ops: list[Operation], method: str):
    async def run(ctx: Context) -> dict[str, tuple[np.ndarray, int, int]]:
        first, second = ctx.compute_parties[0], ctx.compute_parties[-1]
        out: dict[str, tuple[np.ndarray, int, int]] = {}
        for op in ops:
            a, b = op.sample.inputs(np.random.default_rng([7, len(op.name)]), N)
            x = await ctx.input(first, a if ctx.name == first else None)
            y = await ctx.input(second, b if ctx.name == second else None)
            start = max(await x.depth(), await y.depth())
            z = op.sample.secure(ctx, x, y, method or None)
            opened = await ctx.reveal(z)
            out[op.name] = (opened, start, (await z.resolve()).depth)
        return out

    return run


def expected(op: Operation) -> np.ndarray:
    a, b = op.sample.inputs(np.random.default_rng([7, len(op.name)]), N)
    return op.sample.reference(a, b)


@pytest.mark.parametrize(("method", "parties"), CASES)
def test_every_operation_against_numpy_securely_and_emulated(method: str, parties: int) -> None:
    ops = operations_for(method)
    assert ops
    topology = localhost_topology(parties, helper=True, comparison=method or "auto")
    secure = run_local(topology, program(ops, method), transport="memory")
    emulated = emulate(topology, program(ops, method))
    compute = [p.name for p in topology.compute_parties]
    wrong = []
    for op in ops:
        want, label = expected(op), f"{op.name} ({method or 'no method'}, {parties} parties)"
        for name in compute:
            if not op.sample.close(secure[name].value[op.name][0], want):
                wrong.append(f"{label}: {name}'s secure result")
            if not op.sample.close(emulated.results[name][op.name][0], want):
                wrong.append(f"{label}: {name}'s emulated result")
        # rounds as mpc bench counts them: from the moment every party holds the inputs to the deepest output
        rounds = rounds_of([secure[name].value[op.name] for name in compute])
        predicted = rounds_of([emulated.results[name][op.name] for name in compute])
        if op.rounds_vary:  # data-dependent (a sort's levels): the values are checked, not the rounds
            continue
        if rounds != op.rounds[method]:
            wrong.append(f"{label}: {rounds} rounds measured, {op.rounds[method]} declared")
        if predicted != rounds:
            wrong.append(f"{label}: emulation predicts {predicted} rounds, the secure run took {rounds}")
    assert not wrong, "\n".join(wrong)


def rounds_of(results: list[tuple[np.ndarray, int, int]]) -> int:
    return max(end for _, _, end in results) - max(start for _, start, _ in results)


def test_the_registry_is_complete_and_consistent() -> None:
    """Every operation is reachable as ctx.<name> with its docstring, declares its rounds for every method
    it takes, and numpy's aliases are unique."""
    for op in OPERATIONS:
        assert op.doc, f"{op.name}: no docstring"
        assert set(op.rounds) == ({"dcf", "compact", "bits"} if op.methods else {""}), op.name
    ufuncs = [u for op in OPERATIONS for u in op.ufuncs]
    assert len(ufuncs) == len(set(ufuncs))
    with pytest.raises(AttributeError, match="did you mean sigmoid"):
        Context.__getattr__(object.__new__(Context), "sigmoidd")


def test_every_operation_as_processes() -> None:
    """`mpc bench` over every registered operation, the parties as processes on real sockets: each record's
    opened result equals numpy's (bits: any number of parties; dcf is run as processes elsewhere)."""
    names = ",".join(op.bench_name for op in OPERATIONS)
    res = subprocess.run([sys.executable, "-m", "parties", "bench", "--op", names, "--method", "bits", "--n", "40",
                          "--repeat", "1", "--json"], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert res.returncode == 0, res.stderr[-3000:]
    records = json.loads(res.stdout)
    assert {r["op"] for r in records} == {op.bench_name for op in OPERATIONS}
    assert all(r["correct"] for r in records), [r["op"] for r in records if not r["correct"]]

"""Inputs in row chunks (protocols/interface/streaming.py): ctx.input_chunks and the CSV reader."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from protocols.interface import context
from protocols.interface.context import Context
from protocols.interface.streaming import ChunkError, array_chunks, csv_chunks


def _write_csv(path: Path, table: np.ndarray, names: list[str]) -> None:
    lines = [",".join(names)] + [",".join(f"{v:.4f}" for v in row) for row in table]
    path.write_text("\n".join(lines) + "\n")


def test_csv_chunks_reads_columns_by_name_in_chunks(tmp_path: Path) -> None:
    table = np.round(np.random.default_rng(1).normal(size=(1001, 3)), 4)
    _write_csv(tmp_path / "t.csv", table, ["a", "b", "c"])
    chunks = list(csv_chunks(tmp_path / "t.csv", columns=["c", "a"], rows=100))
    assert [len(c) for c in chunks] == [100] * 10 + [1]
    np.testing.assert_allclose(np.vstack(chunks), table[:, [2, 0]])


def test_csv_chunks_names_the_bad_value(tmp_path: Path) -> None:
    (tmp_path / "t.csv").write_text("a,b\n1,2\n3,x\n")
    with pytest.raises(ChunkError, match=r"t.csv: row 3, column b: 'x' is not a number"):
        list(csv_chunks(tmp_path / "t.csv"))
    with pytest.raises(ChunkError, match="no column 'z'"):
        list(csv_chunks(tmp_path / "t.csv", columns=["z"]))


def _column_sums(path: Path | None, rows: int):
    async def program(ctx: Context):
        reader = csv_chunks(path, rows=rows) if ctx.name == "bank_a" else None
        total, count, chunks = None, 0, 0
        async for x in ctx.input_chunks("bank_a", reader):
            part = x.sum(axis=0)
            total = part if total is None else total + part
            count += x.shape[0]
            chunks += 1
        assert total is not None
        return await ctx.reveal(total), count, chunks

    return program


@pytest.mark.parametrize("transport", ["memory", "zmq"])
def test_input_chunks_shares_a_file_chunk_by_chunk(make_topology, tmp_path: Path, transport: str) -> None:
    table = np.round(np.random.default_rng(2).uniform(-100, 100, size=(2500, 4)), 4)
    _write_csv(tmp_path / "t.csv", table, ["w", "x", "y", "z"])
    out = context.run_local(make_topology(2), _column_sums(tmp_path / "t.csv", rows=1000), transport=transport)
    for name in ("bank_a", "bank_b"):
        total, count, chunks = out[name].value
        assert (count, chunks) == (2500, 3)
        np.testing.assert_allclose(total, table.sum(axis=0), atol=2500 * 2.0**-16)
    assert out["helper"].value[1:] == (2500, 3)  # the helper learns the shapes, as with ctx.input


def test_input_chunks_of_an_empty_source_yields_nothing(make_topology) -> None:
    async def program(ctx: Context) -> int:
        reader = iter([]) if ctx.name == "bank_b" else None
        return len([x async for x in ctx.input_chunks("bank_b", reader)])

    out = context.run_local(make_topology(2), program, transport="memory")
    assert {o.value for o in out.values()} == {0}


def test_input_chunks_recuts_and_checks_widths(make_topology) -> None:
    data = np.arange(30.0).reshape(10, 3)

    async def program(ctx: Context):
        reader = array_chunks(data, 7) if ctx.name == "bank_a" else None
        shapes = []
        async for x in ctx.input_chunks("bank_a", reader, rows=3):
            shapes.append(x.shape)
        return shapes

    out = context.run_local(make_topology(2), program, transport="memory")
    assert out["bank_b"].value == [(3, 3), (3, 3), (1, 3), (3, 3)]

    async def bad(ctx: Context):
        reader = iter([np.zeros((2, 3)), np.zeros((2, 4))]) if ctx.name == "bank_a" else None
        return [x.shape async for x in ctx.input_chunks("bank_a", reader)]

    with pytest.raises(Exception, match="chunk 1 has 4 columns, the earlier ones 3"):
        context.run_local(make_topology(2), bad, transport="memory")

"""Inputs larger than memory: a party's rows shared one chunk at a time (docs/memory.md, "Data in chunks").

`ctx.input_chunks(owner, reader)` is `ctx.input` for a stream of row chunks. The owner passes an iterable
of 2-D arrays (or DataFrames) of the same columns, e.g. `csv_chunks(path, rows=65536)`; every other party
passes nothing. Each chunk is shared as `ctx.input` shares one value (its shape, and column names if any,
are public; so, at the end, is the number of rows), and the iterator yields the shared chunk. Only the
current chunk's values are read into the owner's memory; what the program keeps of each shared chunk is
its own choice (a sum, a model update, or the chunk itself).

    async for x in ctx.input_chunks("bank_a", csv_chunks("tx.csv", columns=["amount"], rows=100_000)
                                    if ctx.name == "bank_a" else None):
        total = x.sum(axis=0) if total is None else total + x.sum(axis=0)

The end of the stream is a chunk of no rows that the owner shares like any other (so the others learn
it without a message of its own).
"""

from __future__ import annotations

import csv
from collections.abc import AsyncIterator, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from protocols.primitives.shared import SharedArray


class ChunkError(ValueError):
    """A chunk the stream cannot take (another width, not numeric): the message names the owner and chunk."""


async def input_chunks(ctx: Any, owner: str, reader: Iterable[Any] | None = None,
                       rows: int | None = None) -> AsyncIterator[SharedArray]:
    """Share `owner`'s row chunks one at a time (see the module doc); `ctx` is the party's Context.
    Collective: every party iterates.
    `rows`: cut the reader's chunks to at most this many rows."""
    if rows is not None and rows < 1:
        raise ValueError(f"input_chunks: rows must be at least 1, not {rows}")
    mine = ctx.name == owner
    if mine and reader is None:
        raise ValueError(f"{owner}: input_chunks needs the reader on its owner (got None)")
    source = _recut(iter(reader), rows) if mine and reader is not None else None
    width: int | None = None
    k = 0
    while True:
        if source is not None:
            chunk = next(source, None)
            if chunk is None:
                chunk = np.zeros((0, width or 0))
            else:
                chunk = _checked(owner, k, chunk, width)
                width = chunk.shape[1]
            shared = await ctx.input(owner, chunk)
        else:
            shared = await ctx.input(owner)
        if shared.shape[0] == 0:
            return
        yield shared
        k += 1


def _checked(owner: str, k: int, chunk: Any, width: int | None) -> Any:
    shape = getattr(chunk, "shape", None)
    if shape is None:
        chunk = np.asarray(chunk)
        shape = chunk.shape
    if len(shape) != 2:
        raise ChunkError(f"{owner}: input_chunks: chunk {k} has shape {tuple(shape)}; chunks are 2-D (rows, columns)")
    if width is not None and shape[1] != width:
        raise ChunkError(f"{owner}: input_chunks: chunk {k} has {shape[1]} columns, the earlier ones {width}")
    return chunk


def _recut(chunks: Iterator[Any], rows: int | None) -> Iterator[Any]:
    for chunk in chunks:
        n = len(chunk)
        if rows is None or n <= rows:
            if n:
                yield chunk
            continue
        for lo in range(0, n, rows):
            yield chunk[lo:lo + rows]


def array_chunks(array: np.ndarray, rows: int) -> Iterator[np.ndarray]:
    """A 2-D array (a memory map, say) in chunks of `rows` rows, each a copy read when it is asked for."""
    for lo in range(0, len(array), rows):
        yield np.array(array[lo:lo + rows])


def csv_chunks(path: str | Path, columns: Sequence[str] | None = None, rows: int = 65_536,
               dtype: type = np.float64) -> Iterator[np.ndarray]:
    """A CSV file's numeric columns (all, or `columns` by header name, in that order) as 2-D arrays of at
    most `rows` rows, read as they are asked for: memory grows with `rows`, not with the file. A value
    that is not a number raises ChunkError naming the file, row and column."""
    where = Path(path)
    with open(where, newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header is None:
            raise ChunkError(f"{where}: empty file (expected a header row)")
        names = [h.strip() for h in header]
        wanted = list(columns) if columns is not None else names
        missing = [c for c in wanted if c not in names]
        if missing:
            raise ChunkError(f"{where}: row 1: no column {missing[0]!r} in the header {','.join(names)}")
        index = [names.index(c) for c in wanted]
        block: list[list[str]] = []
        first_row = 2
        for line in reader:
            if not line:
                continue
            block.append([line[i] if i < len(line) else "" for i in index])
            if len(block) == rows:
                yield _numbers(where, block, wanted, first_row, dtype)
                first_row += len(block)
                block = []
        if block:
            yield _numbers(where, block, wanted, first_row, dtype)


def _numbers(path: Path, block: list[list[str]], names: list[str], first_row: int, dtype: type) -> np.ndarray:
    try:
        return np.array(block, dtype=str).astype(dtype).reshape(len(block), len(names))
    except ValueError:
        for r, line in enumerate(block):
            for c, value in enumerate(line):
                try:
                    dtype(value)
                except ValueError:
                    raise ChunkError(f"{path}: row {first_row + r}, column {names[c]}: {value[:40]!r} is not a "
                                     "number") from None
        raise


def parquet_chunks(path: str | Path, columns: Sequence[str] | None = None,
                   rows: int = 65_536) -> Iterator[np.ndarray]:
    """A Parquet file's columns in chunks of at most `rows` rows (needs pyarrow: pip install pyarrow)."""
    try:
        import pyarrow.parquet as pq  # type: ignore[import-not-found]
    except ImportError as exc:
        raise ImportError("parquet_chunks needs pyarrow: pip install pyarrow") from exc
    table = pq.ParquetFile(str(path))
    for batch in table.iter_batches(batch_size=rows, columns=list(columns) if columns else None):
        yield np.column_stack([np.asarray(col, dtype=np.float64) for col in batch.columns])


__all__ = ["ChunkError", "array_chunks", "csv_chunks", "input_chunks", "parquet_chunks"]

"""A run's results for people (a table and shortened results) and to files (`--output DIR`).

Printed results are valid JSON: long lists are shortened to their first items and a note after the JSON
says so (never text inside it). `--output DIR` writes each party's own results under DIR/PARTY/: every
table (a DataFrame, a 1-D or 2-D array or list of numbers or strings) as KEY.csv, the rest as result.json.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np

from parties.commands.common import console, jsonable

LIST_LIMIT = 12


def brief(value: Any, limit: int = LIST_LIMIT) -> tuple[Any, bool]:
    """A result for people, lists longer than `limit` cut to their first items; and whether any was cut."""
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, dict):
        pairs = {k: brief(v, limit) for k, v in value.items()}
        return {k: v for k, (v, _) in pairs.items()}, any(cut for _, cut in pairs.values())
    if isinstance(value, list | tuple):
        items = [brief(v, limit) for v in value[:limit]]
        return [v for v, _ in items], len(value) > limit or any(cut for _, cut in items)
    return value, False


def print_party_table(report: dict[str, Any]) -> None:
    """Each party's counters as a table, then its result (shortened: the note says how to get all)."""
    from rich.table import Table

    table = Table(title=f"{report['program']} on {report['config']}")
    for col in ("party", "role", "rounds", "messages", "bytes sent", "bytes recv", "wall s"):
        table.add_column(col, justify="left" if col in ("party", "role") else "right")
    for p in report["parties"]:
        table.add_row(p["name"], str(p.get("role", "?")), str(p.get("rounds", "-")), str(p.get("messages", "-")),
                      str(p.get("bytes_sent", "-")), str(p.get("bytes_received", "-")),
                      f"{p['wall_s']:.4f}" if "wall_s" in p else "-")
    out = console()
    out.print(table)
    shortened = False
    for p in report["parties"]:
        value, cut = brief(p.get("result"))
        shortened |= cut
        out.print(f"{p['name']}: {json.dumps(value, default=jsonable)}", markup=False, highlight=False)
    if shortened:
        out.print(f"(lists shortened to their first {LIST_LIMIT} items; --json or --output DIR for all of them)",
                  markup=False, highlight=False)


def _table(value: Any) -> list[list[Any]] | None:
    """`value` as rows of a CSV (a header first for a DataFrame), or None if it is not a table."""
    if hasattr(value, "columns") and hasattr(value, "itertuples"):  # a pandas DataFrame
        return [list(map(str, value.columns)), *(list(r) for r in value.itertuples(index=False))]
    if isinstance(value, list | tuple) and value and all(isinstance(v, str) for v in value):
        return [[v] for v in value]
    try:
        array = np.asarray(value)
    except (ValueError, TypeError):
        return None
    if array.dtype.kind not in "biuf" or array.ndim not in (1, 2) or array.size == 0:
        return None
    return [[v] for v in array.tolist()] if array.ndim == 1 else array.tolist()


def write_results(directory: str | Path, party: str, result: Any, counters: dict[str, Any] | None = None) -> list[Path]:
    """Write one party's result under DIRECTORY/PARTY/ (see the module doc); the files written."""
    out = Path(directory) / party
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    rest: dict[str, Any] = {}
    items = result.items() if isinstance(result, dict) else [("result", result)]
    for key, value in items:
        rows = _table(value)
        if rows is None or not str(key).isidentifier():
            rest[str(key)] = value
            continue
        path = out / f"{key}.csv"
        with path.open("w", newline="") as f:
            csv.writer(f).writerows(rows)
        written.append(path)
    if rest or counters:
        path = out / "result.json"
        body = {**rest, **({"counters": counters} if counters else {})}
        path.write_text(json.dumps(body, indent=2, default=jsonable) + "\n")
        written.append(path)
    return written

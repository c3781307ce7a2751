"""Joint statistics of several banks' transaction amounts, computed without pooling them.

Each bank reads its own amounts (DATA_DIR/<bank>.csv, column `amount`, in thousands) and inputs them
secretly. Every bank learns the count, sum, mean, variance and a histogram over public bucket edges, and
nothing else; the helper learns nothing. How many rows each bank inputs is public (shapes are).

    mpc launch configs/local-2banks-helper.yaml --program examples/joint_stats.py:joint_stats \
        -p data_dir=examples/data
"""

import asyncio
import csv
from pathlib import Path

import numpy as np


def read_amounts(path: Path) -> np.ndarray:
    with path.open(newline="", encoding="utf-8-sig") as f:
        return np.array([float(row["amount"]) for row in csv.DictReader(f)])


async def joint_stats(ctx, data_dir: Path = Path("examples/data"), edges: str = "0,1,5,20,100"):
    """Count, sum, mean, variance and histogram of every bank's amounts."""
    bounds = np.array([float(e) for e in edges.split(",")])
    inputs = [ctx.input(bank, read_amounts(data_dir / f"{bank}.csv") if ctx.name == bank else None)
              for bank in ctx.compute_parties]
    x = ctx.concatenate(await asyncio.gather(*inputs))  # all banks' amounts, secret-shared
    n = x.shape[0]
    mean = np.mean(x)
    variance = np.mean((x - mean) ** 2)
    below = np.sum(x.reshape(n, 1) < bounds, axis=0)  # how many amounts lie below each edge
    total, mean, variance, below = await asyncio.gather(
        ctx.reveal(np.sum(x)), ctx.reveal(mean), ctx.reveal(variance), ctx.reveal(below))
    if total is None:
        return None  # the helper: it only dealt randomness
    counts = np.diff(np.concatenate([[0], below, [n]]))
    labels = [f"< {bounds[0]:g}", *(f"{a:g}-{b:g}" for a, b in zip(bounds, bounds[1:], strict=False)),
              f">= {bounds[-1]:g}"]
    return {"count": n, "sum": float(total), "mean": float(mean), "variance": float(variance),
            "histogram": dict(zip(labels, counts.tolist(), strict=True))}


joint_stats.own_params = ("data_dir",)  # each bank points at its own files; every other parameter must agree

"""Sample inputs for operations (the registry's `Sample.inputs`): seeded, public, on the fixed-point grid
where numpy must compute the function of the very value shared, with the hard cases mixed in (ties,
one-step neighbours, zeros). Bench and test data only."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from protocols.interface.registry import Inputs

GRID_BITS = 16


def grid(x: np.ndarray) -> np.ndarray:
    """Reals rounded to the fixed-point grid of 16 fractional bits (the default frac_bits)."""
    return np.round(x * 2**GRID_BITS) / 2**GRID_BITS


def ints(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    return rng.integers(-(2**31), 2**31, n), rng.integers(-(2**31), 2**31, n)


def small_ints(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Integers of either sign with zeros and extremes of the exact range (|x| < 2^40) mixed in."""
    a = rng.integers(-(2**40), 2**40, n)
    a[: min(n, 3)] = [0, -(2**40) + 1, 2**40 - 1][: min(n, 3)]
    return a, rng.integers(1, 1000, n)


def square(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    side = max(1, math.isqrt(n))
    return rng.integers(-(2**20), 2**20, (side, side)), rng.integers(-(2**20), 2**20, (side, side))


def reals(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    return rng.uniform(-1000, 1000, n), rng.uniform(-1000, 1000, n)


def close(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Reals with ties, one-step neighbours and zeros mixed in (comparisons' hard cases)."""
    a, b = reals(rng, n)
    k = n // 4
    b[:k] = a[:k]
    b[k:2 * k] = a[k:2 * k] + 2.0**-GRID_BITS
    a[2 * k:3 * k] = 0.0
    return grid(a), grid(b)


def bits_and_reals(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """0/1 integers (a comparison's result) and reals: the operands of `where`."""
    return rng.integers(0, 2, n), grid(rng.uniform(-1000, 1000, n))


def rows(width: int, lo: float = -1000, hi: float = 1000) -> Inputs:
    """Reals as rows of `width` (reductions along the last axis), with ties within rows."""

    def make(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
        x = grid(rng.uniform(lo, hi, (max(1, n // width), width)))
        x[::3, -1] = x[::3, 0]  # ties: the first of equal maxima wins
        return x, np.zeros(1)

    return make


def unary(lo: float, hi: float, log2: bool = False) -> Inputs:
    """n reals uniform in [lo, hi] (or 2 to a uniform power in [lo, hi]), on the fixed-point grid; the
    second input unused."""

    def make(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
        x = rng.uniform(lo, hi, n)
        return grid(2.0**x if log2 else x), np.zeros(1)

    return make


def quotients(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    return grid(rng.uniform(-100, 100, n)), grid(2.0 ** rng.uniform(-2, 10, n))


def wrap(fn: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """An integer operation mod 2^64, as the ring computes it."""

    def run(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return fn(a.astype(np.uint64), b.astype(np.uint64)).view(np.int64)

    return run


def softmax(a: np.ndarray) -> np.ndarray:
    e = np.exp(a - a.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)

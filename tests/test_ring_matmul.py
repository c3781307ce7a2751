"""ring.matmul (BLAS on balanced 22-bit limbs) is exactly numpy's integer product mod 2^64."""

from __future__ import annotations

import numpy as np
import pytest

from mpc import ring

MAX = 2**64 - 1
# limbs at their most negative values (ring.limbs: 22, 20 and 22 bits, balanced), where the limb products and
# their sums are largest: (-2^21, -2^19, 0) and (-2^21, 0, -2^21)
WORST = (-(2**21) - 2**19 * 2**22) % 2**64
WORST_TOP = (-(2**21) - 2**21 * 2**42) % 2**64


def reference(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        return np.asarray(np.matmul(a, b, dtype=np.uint64))


def uniform(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    return rng.integers(0, MAX, shape, dtype=np.uint64, endpoint=True)


def test_limbs_recombine_and_stay_in_bounds() -> None:
    rng = np.random.default_rng(0)
    x = np.concatenate([uniform(rng, (10_000,)), np.array([0, 1, MAX, 2**63, 2**63 - 1, 2**21, 2**22 - 1, WORST,
                                                          WORST_TOP],
                                                          dtype=np.uint64)])
    parts = ring.limbs(x)
    assert len(parts) == ring.LIMBS
    total = np.zeros_like(x)
    shift = 0
    for limb, width in zip(parts, ring.LIMB_WIDTHS, strict=True):
        assert np.all(np.abs(limb) <= 2 ** (width - 1)) and np.array_equal(limb, np.round(limb))
        total += limb.astype(np.int64).view(np.uint64) << np.uint64(shift)
        shift += width
    assert shift >= 64 and np.array_equal(total, x)
    assert [p[-2] for p in parts] == [-(2**21), -(2**19), 0]  # WORST
    assert [p[-1] for p in parts] == [-(2**21), 0, -(2**21)]  # WORST_TOP


@pytest.mark.parametrize("shape", [
    (300, 300, 300),  # just above the BLAS threshold
    (257, 1023, 300), (257, 1024, 300), (257, 1025, 300),  # the inner dimension at the chunk boundary
    (200, 2048, 260), (100, 5001, 300),  # several chunks, a ragged last one
    (700, 500, 1),  # a one-column product
    (40, 40, 40),  # below the threshold: numpy's integer matmul
])
def test_random_operands(shape: tuple[int, int, int]) -> None:
    m, k, n = shape
    rng = np.random.default_rng(list(shape))
    a, b = uniform(rng, (m, k)), uniform(rng, (k, n))
    assert np.array_equal(ring.matmul(a, b), reference(a, b))


@pytest.mark.parametrize("va", [0, 1, MAX, 2**63, 2**63 - 1, 2**21, WORST, WORST_TOP])
@pytest.mark.parametrize("vb", [MAX, 2**63, WORST, WORST_TOP])
def test_extreme_operands_at_the_largest_exact_chunk(va: int, vb: int) -> None:
    k = ring.MAX_CHUNK_K
    a = np.full((300, k), va, dtype=np.uint64)
    b = np.full((k, 280), vb, dtype=np.uint64)
    assert np.array_equal(ring.matmul(a, b), reference(a, b))


def test_mixed_extremes_and_batches() -> None:
    rng = np.random.default_rng(3)
    choices = np.array([0, 1, MAX, 2**63, WORST, WORST_TOP, 2**21], dtype=np.uint64)
    a = rng.choice(choices, (3, 260, 2100))
    b = rng.choice(choices, (2100, 270))
    assert np.array_equal(ring.matmul(a, b), reference(a, b))
    assert np.array_equal(ring.matmul(a[0], b[:, 0]), reference(a[0], b[:, 0]))  # matrix-vector


def test_matmul_sum_joins_or_adds() -> None:
    rng = np.random.default_rng(4)
    d, a = uniform(rng, (300, 1000)), uniform(rng, (300, 1000))
    b, e = uniform(rng, (1000, 310)), uniform(rng, (1000, 310))
    want = reference(d, b) + reference(a, e)
    assert np.array_equal(ring.matmul_sum([(d, b), (a, e)]), want)
    batched = uniform(rng, (2, 300, 1000))  # not 2-D: summed product by product, broadcasting
    assert np.array_equal(ring.matmul_sum([(batched, b), (a, e)]), reference(batched, b) + reference(a, e))

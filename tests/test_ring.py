"""Ring and codec maths: Z_2^64 on uint64, fixed point, the PRG."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mpc.prg import PRG, new_seed, random_ring
from mpc.ring import decode_fixed, encode_fixed, ring, signed


@given(st.lists(st.integers(-(2**63), 2**63 - 1), max_size=50))
def test_ring_round_trip_signed(values: list[int]) -> None:
    a = np.array(values, dtype=np.int64)
    r = ring(a)
    assert r.dtype == np.uint64
    np.testing.assert_array_equal(signed(r), a)


@given(st.lists(st.floats(-1e6, 1e6, allow_nan=False), max_size=50), st.integers(0, 30))
def test_fixed_round_trip_within_half_lsb(values: list[float], f: int) -> None:
    a = np.array(values, dtype=np.float64)
    err = np.abs(decode_fixed(encode_fixed(a, f), f) - a)
    assert (err <= 2.0 ** -(f + 1) + 1e-12).all()


def test_negative_fixed_decodes_exactly() -> None:
    # A sign-and-magnitude or floor-based decoder can read -2.99997 as -3.99997; two's complement must not.
    x = np.array([-2.99997, -1.0, -(2.0**-16), 0.0, 2.0**-16])
    np.testing.assert_allclose(decode_fixed(encode_fixed(x, 16), 16), x, atol=2.0**-17)


def test_fixed_overflow_is_an_error() -> None:
    with pytest.raises(OverflowError):
        encode_fixed(np.array([2.0**50]), 16)
    with pytest.raises(OverflowError):
        encode_fixed(np.array([np.nan]), 16)


def test_ring_rejects_floats() -> None:
    with pytest.raises(TypeError):
        ring(np.array([1.5]))


def test_prg_streams() -> None:
    seed = new_seed()
    a = PRG(seed).ring((1000,), op=7, purpose=1)
    assert a.dtype == np.uint64
    np.testing.assert_array_equal(a, PRG(seed).ring((1000,), op=7, purpose=1))
    assert not np.array_equal(a, PRG(seed).ring((1000,), op=7, purpose=2))
    assert not np.array_equal(a, PRG(seed).ring((1000,), op=8, purpose=1))
    assert not np.array_equal(a, PRG(new_seed()).ring((1000,), op=7, purpose=1))
    # roughly uniform top bit: a test that fails for a constant or all-zero stream
    assert 400 < int((a >> np.uint64(63)).sum()) < 600
    assert PRG(seed).ring((0,), 1, 1).shape == (0,)
    assert random_ring((3, 4)).shape == (3, 4)


@pytest.mark.parametrize(("sa", "sb"), [((3, 4), (4, 5)), ((7,), (7, 3)), ((5,), (5,)), ((2, 3, 4), (4, 6)),
                                        ((600, 500), (500, 600)), ((2, 400, 300), (2, 300, 700))])
def test_ring_matmul_matches_integer_matmul(sa, sb) -> None:
    from mpc.ring import matmul

    rng = np.random.default_rng(5)
    a = rng.integers(0, 2**64, sa, dtype=np.uint64)
    b = rng.integers(0, 2**64, sb, dtype=np.uint64)
    with np.errstate(over="ignore"):
        np.testing.assert_array_equal(matmul(a, b), np.matmul(a, b, dtype=np.uint64))

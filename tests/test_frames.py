"""Wire format: headers round-trip, payloads are checked against their header, junk is rejected."""

from __future__ import annotations

import contextlib

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mpc.transport.frames import (
    DTYPES,
    HEADER_SIZE,
    MAX_NDIM,
    FrameError,
    Header,
    Kind,
    decode_header,
    decode_payload,
    encode_header,
    payload_view,
)

BOUND = 1 << 30

headers = st.builds(
    Header,
    kind=st.sampled_from(list(Kind)),
    session=st.binary(min_size=16, max_size=16),
    op=st.integers(0, 2**64 - 1),
    step=st.integers(0, 2**32 - 1),
    sender=st.integers(0, 2**16 - 1),
    dtype=st.sampled_from(list(DTYPES.values())),
    shape=st.lists(st.integers(0, 8), max_size=MAX_NDIM).map(tuple),
    depth=st.integers(0, 2**32 - 1),
    seq=st.integers(0, 2**64 - 1),
)


@given(headers)
def test_header_round_trip(h: Header) -> None:
    raw = encode_header(h)
    assert len(raw) == HEADER_SIZE
    assert decode_header(raw, BOUND) == h


@given(st.binary(max_size=2 * HEADER_SIZE))
def test_random_bytes_never_crash_the_decoder(raw: bytes) -> None:
    with contextlib.suppress(FrameError):
        decode_header(raw, BOUND)


@given(headers, st.integers(0, HEADER_SIZE - 1), st.integers(0, 255))
def test_corrupted_header_is_rejected_or_consistent(h: Header, pos: int, byte: int) -> None:
    raw = bytearray(encode_header(h))
    raw[pos] = byte
    try:
        got = decode_header(bytes(raw), BOUND)
    except FrameError:
        return
    assert got.payload_size <= BOUND


def test_oversized_claim_is_rejected_before_allocation() -> None:
    h = Header(Kind.DATA, bytes(16), 1, 0, 0, np.dtype("<u8"), (2**40, 2**20), 0, 0)
    with pytest.raises(FrameError, match="bound"):
        decode_header(encode_header(h), BOUND)


@pytest.mark.parametrize("dtype", ["<u8", "<i8", "<f8", "u1", "?"])
@pytest.mark.parametrize("shape", [(0,), (5,), (3, 4), (2, 0, 3)])
def test_payload_round_trip_is_zero_copy(dtype: str, shape: tuple[int, ...]) -> None:
    a = (np.arange(int(np.prod(shape))) % 2).astype(dtype).reshape(shape)
    view = payload_view(a)
    h = Header(Kind.DATA, bytes(16), 1, 0, 0, a.dtype, a.shape, 0, 0)
    b = decode_payload(h, view)
    np.testing.assert_array_equal(a, b)
    if a.size:
        assert np.shares_memory(a, b)


def test_payload_size_mismatch_is_rejected() -> None:
    h = Header(Kind.DATA, bytes(16), 1, 0, 0, np.dtype("<u8"), (3,), 0, 0)
    with pytest.raises(FrameError, match="payload"):
        decode_payload(h, memoryview(bytes(16)))


def test_unsendable_dtype() -> None:
    h = Header(Kind.DATA, bytes(16), 1, 0, 0, np.dtype("complex128"), (1,), 0, 0)
    with pytest.raises(FrameError, match="cannot be sent"):
        encode_header(h)

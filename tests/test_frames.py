"""Wire format: headers round-trip, payloads are checked against their header, junk is rejected."""

from __future__ import annotations

import contextlib
import struct

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mpc.transport.frames import (
    DTYPES,
    HEADER_SIZE,
    MAX_NDIM,
    VERSION,
    FrameError,
    Header,
    Kind,
    Partial,
    decode_header,
    decode_payload,
    encode_header,
    payload_view,
    plan_messages,
    split_frames,
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


# -- the whole header -> payload path, headers packed by hand (encode_header's own checks bypassed) ----------

RAW = struct.Struct(f"<2sBB16sQIHBBIQQ{MAX_NDIM}Q")
dims = st.one_of(st.integers(0, 4), st.sampled_from([2**31, 2**32, 2**62, 2**63, 2**64 - 1]))


@st.composite
def raw_frames(draw: st.DrawFn) -> tuple[bytes, bytes]:
    """Any header a peer could send (valid or not in every field) and a payload of a plausible size."""
    ndim = draw(st.integers(0, MAX_NDIM + 2))
    shape = draw(st.lists(dims, min_size=MAX_NDIM, max_size=MAX_NDIM))
    code = draw(st.integers(0, 9))
    kind = draw(st.integers(0, 6))
    raw = RAW.pack(b"MP", VERSION, kind, bytes(16), 1, 0, 1, code, ndim, 0, 0, 0, *shape)
    n = 1
    for d in shape[:min(ndim, MAX_NDIM)]:
        n *= d
    size = draw(st.sampled_from([0, 1, 8, 16, n * DTYPES.get(code, np.dtype("u1")).itemsize]))
    return raw, bytes(min(size, 4096))


@given(raw_frames())
def test_decoding_fails_only_with_frame_error(frame: tuple[bytes, bytes]) -> None:
    """decode_header then decode_payload: a consistent array or a FrameError, never numpy's own errors."""
    raw, payload = frame
    try:
        h = decode_header(raw, BOUND)
        a = decode_payload(h, payload)
    except FrameError:
        return
    assert a.shape == h.shape and a.nbytes == len(payload) <= BOUND


@pytest.mark.parametrize("shape", [(0, 2**63), (0, 2**62, 4), (0, 2**40, 2**40), (2**64 - 1, 0)])
def test_empty_shapes_that_overflow_are_rejected(shape: tuple[int, ...]) -> None:
    raw = RAW.pack(b"MP", VERSION, int(Kind.DATA), bytes(16), 1, 0, 1, 1, len(shape), 0, 0, 0,
                   *shape, *(0,) * (MAX_NDIM - len(shape)))
    with pytest.raises(FrameError, match="bound"):
        decode_header(raw, BOUND)


def test_frames_packed_in_one_message_split_back() -> None:
    a, b = np.arange(3, dtype=np.uint64), np.ones((2, 2), dtype=np.int32)
    body = b"".join(encode_header(Header(Kind.DATA, bytes(16), 1, i, 0, x.dtype, x.shape, 0, i)) + x.tobytes()
                    for i, x in enumerate((a, b)))
    got = [decode_payload(h, p) for h, p in split_frames(memoryview(body), BOUND, BOUND)]
    np.testing.assert_array_equal(got[0], a)
    np.testing.assert_array_equal(got[1], b)
    with pytest.raises(FrameError, match="payload"):
        list(split_frames(memoryview(body[:-1]), BOUND, BOUND))


def test_messages_join_small_frames_and_cut_large_ones() -> None:
    limit = 1000
    plan = plan_messages([100, 200, 650, 60, 2500, 30, 1000], limit)
    assert plan == [
        [(0, 0, 100), (1, 0, 200), (2, 0, 650)],  # 950 bytes
        [(3, 0, 60)],  # the large frame starts a message of its own
        [(4, 0, 1000)], [(4, 1000, 2000)], [(4, 2000, 2500)],
        [(5, 0, 30)],
        [(6, 0, 1000)],  # exactly the limit: whole
    ]
    assert plan_messages([], limit) == []


def _large(limit: int) -> tuple[Header, np.ndarray, bytes]:
    a = np.arange(3 * limit // 8 + 5, dtype=np.uint64)
    h = Header(Kind.DATA, bytes(16), 1, 0, 0, a.dtype, a.shape, 0, 0)
    return h, a, encode_header(h) + a.tobytes()


def test_a_large_frame_is_joined_from_its_pieces() -> None:
    limit = 4096
    h, a, wire = _large(limit)
    pieces = [wire[lo:lo + limit] for lo in range(0, len(wire), limit)]
    ((header, first),) = list(split_frames(memoryview(pieces[0]), BOUND, limit))
    assert header == h and len(first) == limit - HEADER_SIZE
    partial = Partial(header, first, limit)
    assert [partial.add(memoryview(p)) for p in pieces[1:]] == [False] * (len(pieces) - 2) + [True]
    np.testing.assert_array_equal(decode_payload(header, partial.payload()), a)


def test_short_frames_and_wrong_pieces_are_refused() -> None:
    limit = 4096
    h, a, wire = _large(limit)
    with pytest.raises(FrameError, match="payload"):  # cut short but not at the message limit: truncated
        list(split_frames(memoryview(wire[:limit - 1]), BOUND, limit))
    with pytest.raises(FrameError, match="payload"):  # a short frame after another cannot continue
        small = encode_header(Header(Kind.DATA, bytes(16), 1, 0, 0, a.dtype, (1,), 0, 0)) + bytes(8)
        list(split_frames(memoryview(small + wire[:limit - len(small)]), BOUND, limit))
    for bad in (wire[limit:2 * limit - 1], wire[limit:2 * limit + 1]):  # every piece but the last is whole
        partial = Partial(h, memoryview(wire[HEADER_SIZE:limit]), limit)
        with pytest.raises(FrameError, match="piece"):
            partial.add(memoryview(bad))
    partial = Partial(h, memoryview(wire[HEADER_SIZE:limit]), limit)
    partial.add(memoryview(wire[limit:2 * limit]))
    partial.add(memoryview(wire[2 * limit:3 * limit]))
    with pytest.raises(FrameError, match="piece"):  # past the end of the frame
        partial.add(memoryview(wire[3 * limit:] + b"x"))

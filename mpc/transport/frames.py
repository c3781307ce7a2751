"""Wire format: a fixed-size `struct` header followed by the raw array buffer. Nothing is ever unpickled.

One ZeroMQ message is a single part holding one or more (header, payload) frames back to back: the
messages a party queues for a peer within one event-loop turn go out as one send (one round, one syscall).
Single-part on purpose: libzmq aborts the process (session_base.cpp:233, clean_pipes) when a connection
fails while a half-sent multipart message can no longer be read from a closing socket's pipe.

A frame larger than one message (`plan_messages`) is cut into pieces of exactly the message limit (the
last one shorter), one message each, that the receiver joins (`Partial`): libzmq encrypts, sends and
decrypts message by message, so pieces keep both ends busy at once; 8 MiB as one CURVE message took
twice as long as in 1 MiB pieces here. A frame continues only in the sender's very next messages, which
carry nothing else.
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

MAGIC = b"MP"
VERSION = 3  # 3: large frames in pieces; 2: one single-part message per send; 1: header and payload as parts
MAX_NDIM = 7
SESSION_BYTES = 16


MESSAGE_BYTES = 1 << 20
"""The largest ZeroMQ message a party sends: small frames are joined up to it, larger ones cut to it."""


def message_limit(max_payload: int) -> int:
    """The message size both ends use: MESSAGE_BYTES, or less if frames are bounded lower."""
    return min(max_payload + HEADER_SIZE, MESSAGE_BYTES)


class Kind(enum.IntEnum):
    DATA = 1
    HELLO = 2
    BYE = 3
    ABORT = 4


# Wire dtype codes: only plain fixed-size numeric types travel; the code, not a string, is on the wire.
DTYPES: dict[int, np.dtype] = {
    1: np.dtype("<u8"),
    2: np.dtype("<i8"),
    3: np.dtype("<f8"),
    4: np.dtype("u1"),
    5: np.dtype("<u4"),
    6: np.dtype("<i4"),
    7: np.dtype("?"),
}
DTYPE_CODES: dict[np.dtype, int] = {dt: code for code, dt in DTYPES.items()}

# magic, version, kind, session, op, step, sender, dtype, ndim, depth, seq, due, shape[7]
_HEADER = struct.Struct(f"<2sBB{SESSION_BYTES}sQIHBBIQQ{MAX_NDIM}Q")
HEADER_SIZE = _HEADER.size


class FrameError(ValueError):
    """A frame that does not parse or does not match what its header claims."""


@dataclass(frozen=True, slots=True)
class Header:
    kind: Kind
    session: bytes
    op: int
    step: int
    sender: int
    dtype: np.dtype
    shape: tuple[int, ...]
    depth: int
    seq: int
    due: int = 0  # emulated network: deliver at this CLOCK_MONOTONIC time in ns (0: at once)

    @property
    def payload_size(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n * self.dtype.itemsize


def dtype_code(dtype: np.dtype) -> int:
    code = DTYPE_CODES.get(np.dtype(dtype).newbyteorder("<"))
    if code is None:
        raise FrameError(f"dtype {dtype} cannot be sent (allowed: {', '.join(str(d) for d in DTYPES.values())})")
    return code


def encode_header(h: Header) -> bytes:
    if len(h.shape) > MAX_NDIM:
        raise FrameError(f"arrays of more than {MAX_NDIM} dimensions cannot be sent (got {len(h.shape)})")
    if len(h.session) != SESSION_BYTES:
        raise FrameError(f"session id must be {SESSION_BYTES} bytes")
    shape = tuple(h.shape) + (0,) * (MAX_NDIM - len(h.shape))
    return _HEADER.pack(
        MAGIC, VERSION, int(h.kind), h.session, h.op, h.step, h.sender,
        dtype_code(h.dtype), len(h.shape), h.depth, h.seq, h.due, *shape,
    )


def decode_header(buf: bytes | memoryview, max_payload: int) -> Header:
    """Parse and validate a header; raise FrameError on anything malformed or oversized."""
    if len(buf) != HEADER_SIZE:
        raise FrameError(f"header has {len(buf)} bytes, expected {HEADER_SIZE}")
    magic, version, kind, session, op, step, sender, code, ndim, depth, seq, due, *shape = _HEADER.unpack(buf)
    if magic != MAGIC:
        raise FrameError("bad magic (not an mpc frame)")
    if version != VERSION:
        raise FrameError(f"unsupported wire version {version} (this party speaks {VERSION})")
    try:
        kind = Kind(kind)
    except ValueError:
        raise FrameError(f"unknown frame kind {kind}") from None
    if code not in DTYPES:
        raise FrameError(f"unknown dtype code {code}")
    if ndim > MAX_NDIM:
        raise FrameError(f"ndim {ndim} exceeds {MAX_NDIM}")
    if any(shape[ndim:]):
        raise FrameError("non-zero unused shape slots")
    dims = tuple(shape[:ndim])
    header = Header(kind, bytes(session), op, step, sender, DTYPES[code], dims, depth, seq, due)
    # Bound the claimed size before any arithmetic on it can overflow or allocate. Zero-size dimensions are
    # skipped, so that (0, 2**63) is refused too: numpy would fail building even an empty array of that shape.
    size = DTYPES[code].itemsize
    for d in dims:
        size *= d or 1
        if size > max_payload:
            raise FrameError(f"claimed shape {dims} exceeds the {max_payload}-byte bound")
    return header


def payload_view(array: np.ndarray) -> memoryview:
    """A zero-copy byte view of a C-contiguous little-endian array (copies only if it must)."""
    arr = np.require(array, requirements="C")
    if arr.dtype.byteorder == ">":
        arr = arr.astype(arr.dtype.newbyteorder("<"))
    return arr.data.cast("B") if arr.size else memoryview(b"")


def decode_payload(header: Header, buf: memoryview | bytes) -> np.ndarray:
    """A read-only array over the received buffer (no copy); raise FrameError if it cannot be built."""
    if len(buf) != header.payload_size:
        raise FrameError(f"payload has {len(buf)} bytes, header claims {header.payload_size}")
    try:
        return np.frombuffer(buf, dtype=header.dtype).reshape(header.shape)
    except ValueError as exc:  # only for a header that skipped decode_header's checks; never an escape
        raise FrameError(f"payload does not fit shape {header.shape}: {exc}") from None


def split_frames(buf: memoryview, max_payload: int, limit: int) -> Iterator[tuple[Header, memoryview]]:
    """The (header, payload) frames packed back to back in one message; FrameError at the first bad one.
    The last frame's payload may be cut short only in a message of exactly `limit` bytes (the first piece
    of a large frame: the rest follows in the next messages)."""
    offset = 0
    while offset < len(buf):
        header = decode_header(buf[offset:offset + HEADER_SIZE], max_payload)
        start = offset + HEADER_SIZE
        offset = start + header.payload_size
        if offset > len(buf) and not (start == HEADER_SIZE and len(buf) == limit):
            raise FrameError(f"payload has {len(buf) - start} bytes, header claims {header.payload_size}")
        yield header, buf[start:offset]


class Partial:
    """A large frame being joined from its pieces: its header and the bytes received so far."""

    def __init__(self, header: Header, first: memoryview, limit: int):
        self.header = header
        self.limit = limit
        self.buffer = np.empty(header.payload_size, dtype=np.uint8)
        self.filled = len(first)
        self.buffer[:self.filled] = np.frombuffer(first, dtype=np.uint8)

    def add(self, piece: memoryview) -> bool:
        """Append the next message; True once the frame is whole. Every piece but the last is exactly
        `limit` bytes and none goes past the frame: else FrameError."""
        missing = self.buffer.size - self.filled
        if len(piece) != min(missing, self.limit):
            raise FrameError(f"a piece of a large frame has {len(piece)} bytes, expected {min(missing, self.limit)}")
        self.buffer[self.filled:self.filled + len(piece)] = np.frombuffer(piece, dtype=np.uint8)
        self.filled += len(piece)
        return self.filled == self.buffer.size

    def payload(self) -> memoryview:
        return self.buffer.data.cast("B")


def plan_messages(sizes: list[int], limit: int) -> list[list[tuple[int, int, int]]]:
    """How frames of these encoded sizes (header and payload) travel as messages of at most `limit` bytes:
    each message a list of (frame, start, end) byte ranges. Consecutive small frames share a message; a
    larger frame goes in pieces of `limit` bytes, one message each (the last piece shorter)."""
    messages: list[list[tuple[int, int, int]]] = []
    current: list[tuple[int, int, int]] = []
    size = 0
    for i, nbytes in enumerate(sizes):
        if current and size + nbytes > limit:
            messages.append(current)
            current, size = [], 0
        if nbytes <= limit:
            current.append((i, 0, nbytes))
            size += nbytes
        else:
            messages.extend([[(i, lo, min(nbytes, lo + limit))] for lo in range(0, nbytes, limit)])
    if current:
        messages.append(current)
    return messages

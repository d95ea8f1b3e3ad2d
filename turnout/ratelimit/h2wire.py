"""HTTP/2 (RFC 9113) and gRPC wire constants, frames and precomputed header blocks.

The connection state machine that uses them is `h2grpc`.
"""

import struct
from urllib.parse import quote

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

# Frame types and flags (RFC 9113 §6).
DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE = 0, 1, 2, 3, 4, 5
PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = 6, 7, 8, 9
END_STREAM, ACK, END_HEADERS, PADDED, PRIORITY_FLAG = 0x1, 0x1, 0x4, 0x8, 0x20

# Error codes (RFC 9113 §7).
NO_ERROR, PROTOCOL_ERROR, FLOW_CONTROL_ERROR = 0x0, 0x1, 0x3
FRAME_SIZE_ERROR, REFUSED_STREAM, COMPRESSION_ERROR = 0x6, 0x7, 0x9

# Settings identifiers.
HEADER_TABLE_SIZE, MAX_CONCURRENT_STREAMS, INITIAL_WINDOW_SIZE, MAX_FRAME_SIZE = 1, 3, 4, 5

MAX_WINDOW = 2**31 - 1
DEFAULT_WINDOW = 65_535
FRAME_SIZE = 16_384  # the default; we never raise ours
CONCURRENT_STREAMS = 1_024
MAX_MESSAGE = 4 * 1024 * 1024  # gRPC's default receive limit
MAX_STATUS_MESSAGE = 1024  # characters of grpc-message; its frame must stay under 16 KiB
# Our receive windows are the largest allowed, replenished once half is used: a unary
# request never waits for a WINDOW_UPDATE, and updates stay rare.
REPLENISH_AT = MAX_WINDOW // 2

# gRPC status codes used here.
GRPC_INVALID_ARGUMENT, GRPC_RESOURCE_EXHAUSTED = 3, 8
GRPC_UNIMPLEMENTED, GRPC_INTERNAL = 12, 13

FRAME_HEADER = struct.Struct(">IBI")  # 24-bit length and type share the first word


def frame(kind: int, flags: int, stream_id: int, payload: bytes = b"") -> bytes:
    return FRAME_HEADER.pack(len(payload) << 8 | kind, flags, stream_id) + payload


def hpack_int(value: int, prefix_bits: int, first: int = 0) -> bytes:
    limit = (1 << prefix_bits) - 1
    if value < limit:
        return bytes((first | value,))
    out = bytearray((first | limit,))
    value -= limit
    while value >= 128:
        out.append(value % 128 + 128)
        value //= 128
    out.append(value)
    return bytes(out)


def literal(name: str, value: str) -> bytes:
    """A header as 'literal without indexing, new name': it touches no HPACK state,
    so these blocks can be computed once and sent on every connection."""
    n, v = name.encode(), value.encode()
    return b"\x00" + hpack_int(len(n), 7) + n + hpack_int(len(v), 7) + v


STATUS_200 = b"\x88"  # static table entry 8
RESPONSE_HEADERS = STATUS_200 + literal("content-type", "application/grpc")
OK_TRAILERS = literal("grpc-status", "0")


def status_block(status: int, message: str, trailers_only: bool) -> bytes:
    block = RESPONSE_HEADERS if trailers_only else b""
    block += literal("grpc-status", str(status))
    if message:  # percent-encoded as gRPC asks (PROTOCOL-HTTP2.md); kept to one frame
        block += literal(
            "grpc-message",
            quote(message[:MAX_STATUS_MESSAGE], safe=" !\"#$&'()*+,-./:;<=>?@[\\]^_`{|}~"),
        )
    return block

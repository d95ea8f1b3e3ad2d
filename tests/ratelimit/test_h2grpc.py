"""The lean HTTP/2 gRPC server (`turnout.ratelimit.h2grpc`) over real loopback sockets.

With grpcio's client: OK calls, the generated rate limit stub, 500 concurrent calls on one
channel, error statuses (UNIMPLEMENTED, a percent-encoded INVALID_ARGUMENT message,
INTERNAL), a request spanning many DATA frames, responses larger than the client's
flow-control window, an oversized request, client cancellation, and graceful stop.

With hand-built frames (and `h2` as a strict client): PING, HEADERS + CONTINUATION, padding
and priority fields, frames split across reads, a 10-byte client window, a bad preface, an
oversized frame, malformed and compressed bodies, non-gRPC requests, RST_STREAM and GOAWAY
from the client.

Nothing sleeps and hopes: every wait has a deadline, and "nothing more was sent" is shown
with a PING round trip (the server answers frames in order).
"""

import asyncio
import struct
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import grpc
import h2.config
import h2.connection
import h2.events
import pytest
from envoy.service.ratelimit.v3.rls_pb2 import RateLimitRequest, RateLimitResponse
from envoy.service.ratelimit.v3.rls_pb2_grpc import RateLimitServiceStub
from hpack import Decoder, Encoder

from turnout.ratelimit.h2grpc import GrpcError, GrpcH2Server
from turnout.ratelimit.h2wire import (
    ACK,
    CONTINUATION,
    DATA,
    END_HEADERS,
    END_STREAM,
    FRAME_SIZE_ERROR,
    GOAWAY,
    HEADERS,
    INITIAL_WINDOW_SIZE,
    PADDED,
    PING,
    PREFACE,
    PRIORITY_FLAG,
    PROTOCOL_ERROR,
    RST_STREAM,
    SETTINGS,
    WINDOW_UPDATE,
    frame,
)
from turnout.ratelimit.service import SHOULD_RATE_LIMIT

ECHO, BIG, FAIL, CRASH, BLOCK = (f"/test.T/{m}" for m in ("Echo", "Big", "Fail", "Crash", "Block"))
BIG_RESPONSE = bytes(range(256)) * 4096  # 1 MiB: far beyond grpcio's 64 KiB initial window
CANCEL = 0x8
DEADLINE = 5.0


@dataclass
class Blocker:
    """State of the BLOCK handler, which waits until released or cancelled."""

    started: asyncio.Event = field(default_factory=asyncio.Event)
    release: asyncio.Event = field(default_factory=asyncio.Event)
    cancelled: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, message: bytes) -> bytes:
        self.started.set()
        try:
            await self.release.wait()
        except asyncio.CancelledError:
            self.cancelled.set()
            raise
        return b"released:" + message


async def echo(message: bytes) -> bytes:
    await asyncio.sleep(0)  # let concurrent calls interleave
    return b"echo:" + message


async def big(message: bytes) -> bytes:
    return BIG_RESPONSE


async def fail(message: bytes) -> bytes:
    raise GrpcError(3, "bad thing ü/%")


async def crash(message: bytes) -> bytes:
    raise RuntimeError("boom")


async def rate_limit(message: bytes) -> bytes:
    request = RateLimitRequest.FromString(message)
    over = request.domain == "over"
    code = RateLimitResponse.OVER_LIMIT if over else RateLimitResponse.OK
    return RateLimitResponse(overall_code=code).SerializeToString()


@pytest.fixture
def blocker() -> Blocker:
    return Blocker()


@pytest.fixture
def server(blocker: Blocker) -> GrpcH2Server:
    handlers = {ECHO: echo, BIG: big, FAIL: fail, CRASH: crash, BLOCK: blocker.handle}
    return GrpcH2Server({**handlers, SHOULD_RATE_LIMIT: rate_limit})


@pytest.fixture
async def port(server: GrpcH2Server) -> AsyncIterator[int]:
    yield await server.start("127.0.0.1", 0)
    await server.stop(0)


@pytest.fixture
async def channel(port: int) -> AsyncIterator[grpc.aio.Channel]:
    options = [("grpc.http2.bdp_probe", 0)]  # keep the client's receive window small
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}", options=options) as channel:
        yield channel


def method(channel: grpc.aio.Channel, path: str) -> grpc.aio.UnaryUnaryMultiCallable:
    return channel.unary_unary(path, request_serializer=None, response_deserializer=None)


async def status_of(
    channel: grpc.aio.Channel, path: str, request: bytes = b"x"
) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await method(channel, path)(request, timeout=DEADLINE)
    return caught.value.code(), caught.value.details()


# -- with grpcio's client ------------------------------------------------------------------


async def test_ok_call_round_trips_bytes(channel: grpc.aio.Channel) -> None:
    assert await method(channel, ECHO)(b"\x00hello\xff", timeout=DEADLINE) == b"echo:\x00hello\xff"
    assert await method(channel, ECHO)(b"", timeout=DEADLINE) == b"echo:"


async def test_generated_rate_limit_stub(channel: grpc.aio.Channel) -> None:
    stub = RateLimitServiceStub(channel)
    over = await stub.ShouldRateLimit(RateLimitRequest(domain="over"), timeout=DEADLINE)
    ok = await stub.ShouldRateLimit(RateLimitRequest(domain="fine"), timeout=DEADLINE)
    assert over.overall_code == RateLimitResponse.OVER_LIMIT
    assert ok.overall_code == RateLimitResponse.OK


async def test_500_concurrent_calls_each_get_their_answer(channel: grpc.aio.Channel) -> None:
    call = method(channel, ECHO)
    requests = [f"request {i}".encode() for i in range(500)]
    answers = await asyncio.gather(*(call(r, timeout=DEADLINE * 2) for r in requests))
    assert answers == [b"echo:" + r for r in requests]


async def test_error_statuses(channel: grpc.aio.Channel) -> None:
    code, details = await status_of(channel, "/test.T/Missing")
    assert code == grpc.StatusCode.UNIMPLEMENTED and "/test.T/Missing" in details
    assert await status_of(channel, FAIL) == (grpc.StatusCode.INVALID_ARGUMENT, "bad thing ü/%")
    assert (await status_of(channel, CRASH))[0] == grpc.StatusCode.INTERNAL
    assert await method(channel, ECHO)(b"still fine", timeout=DEADLINE) == b"echo:still fine"


async def test_large_request_and_response(channel: grpc.aio.Channel) -> None:
    request = bytes(range(251)) * 800  # ~200 KB: a dozen DATA frames at most 16 KiB each
    assert await method(channel, ECHO)(request, timeout=DEADLINE) == b"echo:" + request
    big_calls = (method(channel, BIG)(b"", timeout=DEADLINE) for _ in range(8))
    assert await asyncio.gather(*big_calls) == [BIG_RESPONSE] * 8  # share the connection window
    code, details = await status_of(channel, ECHO, b"x" * (4 * 1024 * 1024 + 1))
    assert (code, details) == (grpc.StatusCode.RESOURCE_EXHAUSTED, "message too large")
    assert await method(channel, ECHO)(b"next", timeout=DEADLINE) == b"echo:next"


async def test_client_cancel_cancels_the_handler(
    channel: grpc.aio.Channel, blocker: Blocker
) -> None:
    call = method(channel, BLOCK)(b"x", timeout=DEADLINE)
    await asyncio.wait_for(blocker.started.wait(), DEADLINE)
    assert call.cancel()
    await asyncio.wait_for(blocker.cancelled.wait(), DEADLINE)
    assert await method(channel, ECHO)(b"next", timeout=DEADLINE) == b"echo:next"


async def refused(port: int) -> bool:
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", port)
    except (ConnectionRefusedError, ConnectionResetError):  # reset: in a closing backlog
        return True
    writer.close()
    return False


async def test_graceful_stop(
    server: GrpcH2Server, port: int, channel: grpc.aio.Channel, blocker: Blocker
) -> None:
    call = method(channel, BLOCK)(b"in flight", timeout=DEADLINE)
    await asyncio.wait_for(blocker.started.wait(), DEADLINE)
    stopping = asyncio.ensure_future(server.stop(30))
    async with asyncio.timeout(DEADLINE):  # listener closed => GOAWAY sent (same step)
        while not await refused(port):
            await asyncio.sleep(0.01)
    blocker.release.set()
    assert await call == b"released:in flight"
    await asyncio.wait_for(stopping, DEADLINE)  # well before the grace ends: nothing left
    assert not server.connections and await refused(port)
    assert (await status_of(channel, ECHO))[0] == grpc.StatusCode.UNAVAILABLE


# -- with hand-built frames ----------------------------------------------------------------


@dataclass
class Frame:
    kind: int
    flags: int
    stream_id: int
    payload: bytes
    headers: dict[bytes, bytes] = field(default_factory=dict)  # HEADERS, decoded


class RawClient:
    """An HTTP/2 client connection that sends exactly the bytes it is given."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.encoder, self.decoder = Encoder(), Decoder()

    def send(self, *frames: bytes) -> None:
        self.writer.write(b"".join(frames))

    def request_headers(
        self, path: str = ECHO, method: str = "POST", ctype: str = "application/grpc"
    ) -> bytes:
        headers = [(":method", method), (":scheme", "http"), (":path", path)]
        headers += [(":authority", "test"), ("content-type", ctype), ("te", "trailers")]
        return self.encoder.encode(headers)

    def call(self, stream_id: int, body: bytes, path: str = ECHO) -> None:
        self.send(
            frame(HEADERS, END_HEADERS, stream_id, self.request_headers(path)),
            frame(DATA, END_STREAM, stream_id, body),
        )

    async def read_frame(self) -> Frame | None:
        try:
            head = await self.reader.readexactly(9)
            length_kind, flags, stream_id = struct.unpack(">IBI", head)
            payload = await self.reader.readexactly(length_kind >> 8)
        except (asyncio.IncompleteReadError, ConnectionResetError):
            return None
        got = Frame(length_kind & 0xFF, flags, stream_id & 0x7FFF_FFFF, payload)
        if got.kind == HEADERS:
            got.headers = dict(self.decoder.decode(payload, raw=True))
        return got

    async def read_until(self, done: Callable[[Frame], bool]) -> list[Frame]:
        """Frames up to and including the first for which `done` is true. At EOF `done` is
        asked about a pseudo-frame of kind -1: unless it accepts that, the test fails."""
        frames: list[Frame] = []
        async with asyncio.timeout(DEADLINE):
            while (got := await self.read_frame()) is not None:
                frames.append(got)
                if done(got):
                    return frames
        assert done(Frame(-1, 0, 0, b"")), f"connection closed early after {frames}"
        return frames

    async def ping(self, data: bytes = b"barrier!") -> list[Frame]:
        """Everything the server sent before answering a PING."""
        self.send(frame(PING, 0, 0, data))
        frames = await self.read_until(lambda f: f.kind == PING and f.payload == data)
        assert frames[-1].flags & ACK
        return frames[:-1]


def grpc_message(body: bytes, compressed: bool = False) -> bytes:
    return bytes([compressed]) + len(body).to_bytes(4, "big") + body


def ends(stream_id: int) -> Callable[[Frame], bool]:
    return lambda f: (
        f.stream_id == stream_id
        and (f.kind == RST_STREAM or (f.kind in (HEADERS, DATA) and bool(f.flags & END_STREAM)))
    )


async def answers(raw: RawClient, *stream_ids: int) -> dict[int, list[Frame]]:
    """Each stream's frames, read until every one of the streams has ended."""
    still_open = set(stream_ids)

    def all_ended(f: Frame) -> bool:
        if f.stream_id in still_open and ends(f.stream_id)(f):
            still_open.discard(f.stream_id)
        return not still_open

    frames = await raw.read_until(all_ended)
    return {stream_id: on_stream(frames, stream_id) for stream_id in stream_ids}


def at_eof(f: Frame) -> bool:
    return f.kind == -1


def on_stream(frames: list[Frame], stream_id: int) -> list[Frame]:
    return [f for f in frames if f.stream_id == stream_id]


def body_of(frames: list[Frame]) -> bytes:
    return b"".join(f.payload for f in frames if f.kind == DATA)


HELLO = PREFACE + frame(SETTINGS, 0, 0)
Connect = Callable[[bytes], Awaitable[RawClient]]


@pytest.fixture
async def connect(port: int) -> AsyncIterator[Connect]:
    """Opens raw connections that first send `hello` (closed after the test)."""
    clients: list[RawClient] = []

    async def open_client(hello: bytes = HELLO) -> RawClient:
        clients.append(RawClient(*await asyncio.open_connection("127.0.0.1", port)))
        clients[-1].send(hello)
        return clients[-1]

    yield open_client
    for client in clients:
        client.writer.close()


@pytest.fixture
async def raw(connect: Connect) -> RawClient:
    return await connect(HELLO)


async def test_ping_is_acknowledged_with_the_same_bytes(raw: RawClient) -> None:
    raw.send(frame(PING, 0, 0, b"\x01\x02\x03\x04\x05\x06\x07\x08"))
    ack = (await raw.read_until(lambda f: f.kind == PING))[-1]
    assert (ack.flags, ack.stream_id, ack.payload) == (ACK, 0, b"\x01\x02\x03\x04\x05\x06\x07\x08")


async def test_continuation_padding_and_priority(raw: RawClient) -> None:
    block = raw.request_headers()
    # HEADERS payload: pad length, priority (dependency 0, weight 16), fragment, padding
    headers = b"\x03" + b"\x00\x00\x00\x00\x10" + block[:5] + b"\x00" * 3
    message = grpc_message(b"split")
    raw.send(
        frame(HEADERS, PADDED | PRIORITY_FLAG, 1, headers),
        frame(CONTINUATION, 0, 1, block[5:9]),
        frame(CONTINUATION, END_HEADERS, 1, block[9:]),
        frame(DATA, PADDED, 1, b"\x07" + message[:4] + b"\x00" * 7),
        frame(DATA, PADDED | END_STREAM, 1, b"\x00" + message[4:]),
    )
    answer = (await answers(raw, 1))[1]
    assert [f.kind for f in answer] == [HEADERS, DATA, HEADERS]
    assert answer[0].headers[b":status"] == b"200"
    assert body_of(answer) == grpc_message(b"echo:split")
    assert answer[-1].headers == {b"grpc-status": b"0"}


async def test_frames_split_across_reads(connect: Connect) -> None:
    raw = await connect(b"")
    headers = frame(HEADERS, END_HEADERS, 1, raw.request_headers())
    request = HELLO + headers + frame(DATA, END_STREAM, 1, b"\0" * 5)
    for byte in request:
        raw.send(bytes([byte]))
        await asyncio.sleep(0)  # pacing, not waiting: the server reads tiny pieces
    assert body_of((await answers(raw, 1))[1]) == grpc_message(b"echo:")


async def test_client_goaway_lets_the_call_in_flight_finish(
    raw: RawClient, blocker: Blocker
) -> None:
    raw.call(1, grpc_message(b"last"), BLOCK)
    await asyncio.wait_for(blocker.started.wait(), DEADLINE)
    raw.send(frame(GOAWAY, 0, 0, struct.pack(">II", 0, 0)))
    assert not on_stream(await raw.ping(), 1)  # GOAWAY is read; the call still runs
    blocker.release.set()
    frames = await raw.read_until(at_eof)
    assert body_of(frames) == grpc_message(b"released:last")
    assert frames[-1].headers == {b"grpc-status": b"0"}


async def test_tiny_client_window_is_respected(connect: Connect) -> None:
    raw = await connect(
        PREFACE + frame(SETTINGS, 0, 0, struct.pack(">HI", INITIAL_WINDOW_SIZE, 10))
    )
    raw.call(1, grpc_message(b"a" * 90))  # the answer: 5 + 95 bytes of DATA
    received = body_of(await raw.read_until(lambda f: f.kind == DATA))
    assert len(received) == 10
    while len(received) < 100:
        assert body_of(await raw.ping()) == b""  # nothing more until the window opens
        raw.send(frame(WINDOW_UPDATE, 0, 1, struct.pack(">I", 10)))
        chunk = await raw.read_until(lambda f: f.kind == DATA)
        assert len(chunk[-1].payload) == 10 and chunk[-1].stream_id == 1
        received += chunk[-1].payload
    assert received == grpc_message(b"echo:" + b"a" * 90)
    trailers = (await raw.read_until(ends(1)))[-1]
    assert trailers.kind == HEADERS and trailers.headers == {b"grpc-status": b"0"}


@pytest.mark.parametrize(
    ("hello", "code"),
    [
        (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", PROTOCOL_ERROR),
        (HELLO + b"\x00\x40\x01" + bytes([DATA, 0, 0, 0, 0, 1]), FRAME_SIZE_ERROR),
    ],
    ids=["bad-preface", "frame-of-16385-bytes"],
)
async def test_connection_errors_send_goaway_and_close(
    connect: Connect, hello: bytes, code: int
) -> None:
    raw = await connect(hello)
    frames = await raw.read_until(at_eof)
    goaway = [f for f in frames if f.kind == GOAWAY]
    assert len(goaway) == 1 and int.from_bytes(goaway[0].payload[4:8], "big") == code
    assert raw.reader.at_eof()


async def test_trailers_only_errors(raw: RawClient) -> None:
    cases = {
        1: (ECHO, b"abc", 13),  # not a whole gRPC message
        3: (ECHO, grpc_message(b"x") + b"!", 13),  # more than one message
        5: (ECHO, b"", 13),  # no message at all
        7: (ECHO, grpc_message(b"x", compressed=True), 12),
        9: ("/test.T/Missing", grpc_message(b"x"), 12),
    }
    for stream_id, (path, body, _) in cases.items():
        raw.call(stream_id, body, path)
    got = await answers(raw, *cases)
    for stream_id, (_, _, status) in cases.items():
        assert [f.kind for f in got[stream_id]] == [HEADERS], got[stream_id]
        headers = got[stream_id][0].headers
        assert headers[b":status"] == b"200" and headers[b"content-type"] == b"application/grpc"
        assert headers[b"grpc-status"] == str(status).encode()


async def test_non_grpc_requests_get_a_status(raw: RawClient) -> None:
    raw.send(frame(HEADERS, END_HEADERS | END_STREAM, 1, raw.request_headers(method="GET")))
    raw.send(  # the answer comes before the body, which the server then discards
        frame(HEADERS, END_HEADERS, 3, raw.request_headers(ctype="text/plain")),
        frame(DATA, END_STREAM, 3, b"hello"),
    )
    raw.call(5, grpc_message(b"after"))
    got = await answers(raw, 1, 3, 5)
    for stream_id in (1, 3):
        assert got[stream_id][0].headers[b"grpc-status"] == b"13"
    assert body_of(got[5]) == grpc_message(b"echo:after")


async def test_client_reset_stream(raw: RawClient, blocker: Blocker) -> None:
    raw.call(1, grpc_message(b"x"), BLOCK)
    await asyncio.wait_for(blocker.started.wait(), DEADLINE)
    raw.send(frame(RST_STREAM, 0, 1, CANCEL.to_bytes(4, "big")))
    await asyncio.wait_for(blocker.cancelled.wait(), DEADLINE)
    raw.call(3, grpc_message(b"next"))
    got = await answers(raw, 3)
    assert body_of(got[3]) == grpc_message(b"echo:next")
    assert not on_stream(await raw.ping(), 1)


# -- with h2 as a strict client --------------------------------------------------------------


async def test_h2_client_padded_call_and_ping(port: int) -> None:
    config = h2.config.H2Configuration(client_side=True, header_encoding=None)
    conn = h2.connection.H2Connection(config=config)
    conn.initiate_connection()
    headers = [(":method", "POST"), (":scheme", "http"), (":path", ECHO)]
    headers += [(":authority", "test"), ("content-type", "application/grpc"), ("te", "trailers")]
    conn.send_headers(1, headers)
    conn.send_data(1, grpc_message(b"padded"), end_stream=True, pad_length=20)
    conn.ping(b"h2-ping!")
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(conn.data_to_send())
    events: list[h2.events.Event] = []
    try:
        async with asyncio.timeout(DEADLINE):
            while not {h2.events.StreamEnded, h2.events.PingAckReceived} <= set(map(type, events)):
                data = await reader.read(65_536)
                assert data, f"connection closed early after {events}"
                events += conn.receive_data(data)
                writer.write(conn.data_to_send())
    finally:
        writer.close()
    by_type = {type(e): e for e in events}
    assert dict(by_type[h2.events.ResponseReceived].headers)[b":status"] == b"200"
    assert by_type[h2.events.DataReceived].data == grpc_message(b"echo:padded")
    assert by_type[h2.events.TrailersReceived].headers == [(b"grpc-status", b"0")]
    assert by_type[h2.events.PingAckReceived].ping_data == b"h2-ping!"

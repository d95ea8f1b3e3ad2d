"""A lean HTTP/2 server for unary gRPC calls: the rate limit service's fast transport.

Why not grpcio's server: every rate-limited request through Envoy is one unary
call, and grpcio's Python server spends about 300 µs of CPU per call in its own
machinery (measured: ~3,300 empty calls per CPU-second with grpc.aio), which
caps one core below the 5,000 decisions/s the service must sustain. This module
speaks just the part of HTTP/2 (RFC 9113) and gRPC a unary call needs, with
precomputed response headers, so nearly all of a core goes to deciding.

What it does: the connection preface and SETTINGS exchange, PING, GOAWAY both
ways, RST_STREAM, HEADERS + CONTINUATION (HPACK via the `hpack` package),
padding, flow control both ways, and gRPC message framing. What it does not:
server push (never used by gRPC), compressed messages (answered UNIMPLEMENTED;
Envoy does not compress), streaming methods. TLS, when `start` is given an
`ssl.SSLContext` (`h2tls.server_context`), is `h2tls`'s business: each connection
reaches `GrpcH2Protocol` only after its handshake succeeded with ALPN `h2`.

A handler gets the request message's bytes and returns the response message's
bytes, or raises `GrpcError` to answer with a non-OK status.
"""

import asyncio
import logging
import struct
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from ssl import SSLContext

from hpack import Decoder
from hpack.exceptions import HPACKError

from turnout.ratelimit import h2wire as wire
from turnout.ratelimit.h2tls import TlsHandshake

log = logging.getLogger(__name__)

Handler = Callable[[bytes], Awaitable[bytes]]


class GrpcError(Exception):
    """Raised by a handler to answer with a gRPC status other than OK."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class ProtocolViolation(Exception):
    """A connection error (RFC 9113 §5.4.1): send GOAWAY with `code` and close."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code


@dataclass
class _Stream:
    send_window: int
    headers: bytearray = field(default_factory=bytearray)
    path: str = ""
    body: bytearray = field(default_factory=bytearray)
    received_headers: bool = False
    closed_remote: bool = False
    task: asyncio.Future[None] | None = None


class GrpcH2Protocol(asyncio.Protocol):
    """One client connection (one Envoy, usually): HTTP/2 framing and stream state."""

    def __init__(self, server: "GrpcH2Server") -> None:
        self._server = server
        self._transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._preface_seen = False
        self._decoder = Decoder()
        self._streams: dict[int, _Stream] = {}
        self._last_stream_id = 0
        self._continuing: int | None = None  # stream whose header block is unfinished
        self._peer_initial_window = wire.DEFAULT_WINDOW
        self._peer_max_frame = wire.FRAME_SIZE
        self._send_window = wire.DEFAULT_WINDOW  # connection-level, what the peer lets us send
        self._blocked: list[int] = []  # streams waiting for window to send their DATA
        self._pending_data: dict[int, tuple[bytes, bytes]] = {}  # stream -> (message, trailers)
        self._received_unacked = 0
        self._going_away = False

    # -- asyncio.Protocol ----------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        self._server.connections.add(self)
        settings = struct.pack(
            ">HIHIHI",
            wire.MAX_CONCURRENT_STREAMS,
            wire.CONCURRENT_STREAMS,
            wire.INITIAL_WINDOW_SIZE,
            wire.MAX_WINDOW,
            wire.HEADER_TABLE_SIZE,
            4096,
        )
        transport.write(
            wire.frame(wire.SETTINGS, 0, 0, settings)
            + wire.frame(
                wire.WINDOW_UPDATE, 0, 0, struct.pack(">I", wire.MAX_WINDOW - wire.DEFAULT_WINDOW)
            )
        )

    def connection_lost(self, exc: Exception | None) -> None:
        self._server.connections.discard(self)
        for stream in self._streams.values():
            if stream.task is not None:
                stream.task.cancel()
        self._streams.clear()
        self._transport = None

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        try:
            self._consume()
        except ProtocolViolation as exc:
            log.info("closing a rate limit client connection: %s", exc)
            self._goaway(exc.code, str(exc))
            if self._transport is not None:
                self._transport.close()

    # A client that stops reading its answers gets no more requests read either, so
    # our write buffer stays bounded.
    def pause_writing(self) -> None:
        if self._transport is not None:
            self._transport.pause_reading()

    def resume_writing(self) -> None:
        if self._transport is not None:
            self._transport.resume_reading()

    # -- reading ---------------------------------------------------------------------

    def _consume(self) -> None:
        buf = self._buffer
        offset = 0
        if not self._preface_seen:
            if len(buf) < len(wire.PREFACE):
                if not wire.PREFACE.startswith(bytes(buf)):
                    raise ProtocolViolation(wire.PROTOCOL_ERROR, "not an HTTP/2 connection preface")
                return
            if buf[: len(wire.PREFACE)] != wire.PREFACE:
                raise ProtocolViolation(wire.PROTOCOL_ERROR, "not an HTTP/2 connection preface")
            self._preface_seen = True
            offset = len(wire.PREFACE)
        end = len(buf)
        while end - offset >= 9:
            length = buf[offset] << 16 | buf[offset + 1] << 8 | buf[offset + 2]
            if length > wire.FRAME_SIZE:
                raise ProtocolViolation(wire.FRAME_SIZE_ERROR, f"frame of {length} bytes")
            if end - offset < 9 + length:
                break
            kind = buf[offset + 3]
            flags = buf[offset + 4]
            stream_id = int.from_bytes(buf[offset + 5 : offset + 9], "big") & wire.MAX_WINDOW
            payload = bytes(buf[offset + 9 : offset + 9 + length])
            offset += 9 + length
            self._frame(kind, flags, stream_id, payload)
        del buf[:offset]

    def _frame(self, kind: int, flags: int, stream_id: int, payload: bytes) -> None:
        if self._continuing is not None and kind != wire.CONTINUATION:
            raise ProtocolViolation(wire.PROTOCOL_ERROR, "header block interrupted")
        if kind == wire.HEADERS:
            self._on_headers(flags, stream_id, payload)
        elif kind == wire.DATA:
            self._on_data(flags, stream_id, payload)
        elif kind == wire.CONTINUATION:
            if stream_id != self._continuing or stream_id == 0:
                raise ProtocolViolation(wire.PROTOCOL_ERROR, "unexpected CONTINUATION")
            stream = self._streams[stream_id]
            stream.headers += payload
            if flags & wire.END_HEADERS:
                self._continuing = None
                self._headers_complete(stream_id, stream)
        elif kind == wire.SETTINGS:
            self._on_settings(flags, stream_id, payload)
        elif kind == wire.WINDOW_UPDATE:
            self._on_window_update(stream_id, payload)
        elif kind == wire.PING:
            if stream_id != 0 or len(payload) != 8:
                raise ProtocolViolation(wire.PROTOCOL_ERROR, "malformed PING")
            if not flags & wire.ACK:
                self._write(wire.frame(wire.PING, wire.ACK, 0, payload))
        elif kind == wire.RST_STREAM:
            if stream_id == 0 or len(payload) != 4:
                raise ProtocolViolation(wire.PROTOCOL_ERROR, "malformed RST_STREAM")
            self._drop(stream_id)
        elif kind == wire.GOAWAY:
            self._going_away = True  # finish what is in flight, accept nothing new
            self._close_if_idle()
        elif kind == wire.PRIORITY:
            if stream_id == 0:
                raise ProtocolViolation(wire.PROTOCOL_ERROR, "PRIORITY on stream 0")
        elif kind == wire.PUSH_PROMISE:
            raise ProtocolViolation(wire.PROTOCOL_ERROR, "a client sent PUSH_PROMISE")
        # Unknown frame types are ignored (RFC 9113 §4.1).

    @staticmethod
    def _unpad(flags: int, payload: bytes) -> bytes:
        if not flags & wire.PADDED:
            return payload
        if not payload or payload[0] >= len(payload):
            raise ProtocolViolation(wire.PROTOCOL_ERROR, "bad padding")
        return payload[1 : len(payload) - payload[0]]

    def _on_headers(self, flags: int, stream_id: int, payload: bytes) -> None:
        if stream_id == 0 or stream_id % 2 == 0:
            raise ProtocolViolation(wire.PROTOCOL_ERROR, f"HEADERS on stream {stream_id}")
        payload = self._unpad(flags, payload)
        if flags & wire.PRIORITY_FLAG:
            payload = payload[5:]
        stream = self._streams.get(stream_id)
        if stream is None:
            if stream_id <= self._last_stream_id:
                raise ProtocolViolation(wire.PROTOCOL_ERROR, f"stream {stream_id} is closed")
            self._last_stream_id = stream_id
            stream = _Stream(send_window=self._peer_initial_window)
            self._streams[stream_id] = stream
        elif stream.closed_remote:
            raise ProtocolViolation(
                wire.PROTOCOL_ERROR, f"HEADERS on half-closed stream {stream_id}"
            )
        stream.headers = bytearray(payload)
        if flags & wire.END_STREAM:
            stream.closed_remote = True
        if flags & wire.END_HEADERS:
            self._headers_complete(stream_id, stream)
        else:
            self._continuing = stream_id

    def _headers_complete(self, stream_id: int, stream: _Stream) -> None:
        try:  # always decode: the HPACK table must follow every block
            headers = self._decoder.decode(bytes(stream.headers), raw=True)
        except HPACKError as exc:
            raise ProtocolViolation(wire.COMPRESSION_ERROR, f"HPACK: {exc}") from exc
        stream.headers = bytearray()
        if stream.received_headers:  # trailers: nothing in them matters for a unary call
            if not stream.closed_remote:
                self._reset(stream_id, wire.PROTOCOL_ERROR)
                return
        else:
            stream.received_headers = True
            error = self._check_request(stream, headers)
            if error is not None:
                self._finish(stream_id, None, wire.status_block(*error, trailers_only=True))
                return
            if self._going_away or len(self._streams) > wire.CONCURRENT_STREAMS:
                self._reset(stream_id, wire.REFUSED_STREAM)
                return
        if stream.closed_remote:
            self._dispatch(stream_id, stream)

    def _check_request(
        self, stream: _Stream, headers: list[tuple[bytes, bytes]]
    ) -> tuple[int, str] | None:
        method = content_type = b""
        for name, value in headers:
            if name == b":path":
                stream.path = value.decode("latin-1")
            elif name == b":method":
                method = value
            elif name == b"content-type":
                content_type = value
        if method != b"POST" or not content_type.startswith(b"application/grpc"):
            return (
                wire.GRPC_INTERNAL,
                "not a gRPC request (POST with content-type application/grpc)",
            )
        if stream.path not in self._server.handlers:
            return wire.GRPC_UNIMPLEMENTED, f"unknown method {stream.path}"
        return None

    def _on_data(self, flags: int, stream_id: int, payload: bytes) -> None:
        if stream_id == 0:
            raise ProtocolViolation(wire.PROTOCOL_ERROR, "DATA on stream 0")
        self._received_unacked += len(payload)  # padding counts against the window too
        if self._received_unacked >= wire.REPLENISH_AT:
            self._write(
                wire.frame(wire.WINDOW_UPDATE, 0, 0, struct.pack(">I", self._received_unacked))
            )
            self._received_unacked = 0
        stream = self._streams.get(stream_id)
        if stream is None:
            if stream_id > self._last_stream_id:
                raise ProtocolViolation(wire.PROTOCOL_ERROR, f"DATA on idle stream {stream_id}")
            return  # a stream we reset or answered early; its data is discarded
        if stream.closed_remote or not stream.received_headers:
            raise ProtocolViolation(wire.PROTOCOL_ERROR, f"DATA out of order on stream {stream_id}")
        stream.body += self._unpad(flags, payload)
        if len(stream.body) > wire.MAX_MESSAGE + 5:
            self._finish(
                stream_id,
                None,
                wire.status_block(
                    wire.GRPC_RESOURCE_EXHAUSTED, "message too large", trailers_only=True
                ),
            )
            return
        if flags & wire.END_STREAM:
            stream.closed_remote = True
            self._dispatch(stream_id, stream)

    def _on_settings(self, flags: int, stream_id: int, payload: bytes) -> None:
        if stream_id != 0:
            raise ProtocolViolation(wire.PROTOCOL_ERROR, "SETTINGS on a stream")
        if flags & wire.ACK:
            return
        if len(payload) % 6:
            raise ProtocolViolation(wire.FRAME_SIZE_ERROR, "SETTINGS length")
        for ident, value in struct.iter_unpack(">HI", payload):
            if ident == wire.INITIAL_WINDOW_SIZE:
                if value > wire.MAX_WINDOW:
                    raise ProtocolViolation(
                        wire.FLOW_CONTROL_ERROR, "INITIAL_WINDOW_SIZE too large"
                    )
                delta = value - self._peer_initial_window
                self._peer_initial_window = value
                for stream in self._streams.values():
                    stream.send_window += delta
            elif ident == wire.MAX_FRAME_SIZE:
                if not wire.FRAME_SIZE <= value <= 2**24 - 1:
                    raise ProtocolViolation(wire.PROTOCOL_ERROR, "MAX_FRAME_SIZE out of range")
                self._peer_max_frame = value
        self._write(wire.frame(wire.SETTINGS, wire.ACK, 0))
        self._flush_blocked()

    def _on_window_update(self, stream_id: int, payload: bytes) -> None:
        if len(payload) != 4:
            raise ProtocolViolation(wire.FRAME_SIZE_ERROR, "WINDOW_UPDATE length")
        increment = int.from_bytes(payload, "big") & wire.MAX_WINDOW
        if stream_id == 0:
            if increment == 0:
                raise ProtocolViolation(wire.PROTOCOL_ERROR, "WINDOW_UPDATE of 0")
            self._send_window += increment
            if self._send_window > wire.MAX_WINDOW:
                raise ProtocolViolation(wire.FLOW_CONTROL_ERROR, "connection window overflow")
        else:
            stream = self._streams.get(stream_id)
            if stream is None:
                return
            if increment == 0:
                self._reset(stream_id, wire.PROTOCOL_ERROR)
                return
            stream.send_window += increment
        self._flush_blocked()

    # -- calling the handler -------------------------------------------------------------

    def _dispatch(self, stream_id: int, stream: _Stream) -> None:
        body = stream.body
        if len(body) < 5 or int.from_bytes(body[1:5], "big") != len(body) - 5:
            error = (wire.GRPC_INTERNAL, "a unary call carries exactly one gRPC message")
            self._finish(stream_id, None, wire.status_block(*error, trailers_only=True))
            return
        if body[0] != 0:
            error = (wire.GRPC_UNIMPLEMENTED, "compressed messages are not supported")
            self._finish(stream_id, None, wire.status_block(*error, trailers_only=True))
            return
        handler = self._server.handlers[stream.path]
        stream.task = asyncio.ensure_future(self._answer(stream_id, handler, bytes(body[5:])))

    async def _answer(self, stream_id: int, handler: Handler, message: bytes) -> None:
        try:
            response = await handler(message)
        except GrpcError as exc:
            self._finish(stream_id, None, wire.status_block(exc.status, exc.message, True))
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("rate limit handler failed")
            self._finish(
                stream_id, None, wire.status_block(wire.GRPC_INTERNAL, "internal error", True)
            )
        else:
            self._finish(stream_id, response, wire.OK_TRAILERS)

    # -- writing ---------------------------------------------------------------------------

    def _finish(self, stream_id: int, message: bytes | None, trailers: bytes) -> None:
        """Answer a stream: headers, the message (if any), trailers; then forget it."""
        stream = self._streams.get(stream_id)
        if stream is None or self._transport is None:
            return  # reset by the client meanwhile
        stream.task = None
        if message is None:  # trailers-only response
            self._write(
                wire.frame(wire.HEADERS, wire.END_HEADERS | wire.END_STREAM, stream_id, trailers),
            )
            self._close_stream(stream_id, stream)
            return
        data = b"\x00" + len(message).to_bytes(4, "big") + message
        headers = wire.frame(wire.HEADERS, wire.END_HEADERS, stream_id, wire.RESPONSE_HEADERS)
        size = len(data)
        if size <= min(self._peer_max_frame, self._send_window, stream.send_window):
            # The usual case, in one write: headers, the message, trailers.
            self._send_window -= size
            self._write(
                headers
                + wire.frame(wire.DATA, 0, stream_id, data)
                + wire.frame(wire.HEADERS, wire.END_HEADERS | wire.END_STREAM, stream_id, trailers)
            )
            self._close_stream(stream_id, stream)
            return
        self._write(headers)
        self._pending_data[stream_id] = (data, trailers)
        self._send_data(stream_id, stream)

    def _send_data(self, stream_id: int, stream: _Stream) -> None:
        data, trailers = self._pending_data[stream_id]
        while data:
            size = min(len(data), self._peer_max_frame, self._send_window, stream.send_window)
            if size <= 0:
                if stream_id not in self._blocked:
                    self._blocked.append(stream_id)
                self._pending_data[stream_id] = (data, trailers)
                return
            self._write(wire.frame(wire.DATA, 0, stream_id, data[:size]))
            data = data[size:]
            self._send_window -= size
            stream.send_window -= size
        del self._pending_data[stream_id]
        self._write(
            wire.frame(wire.HEADERS, wire.END_HEADERS | wire.END_STREAM, stream_id, trailers)
        )
        self._close_stream(stream_id, stream)

    def _flush_blocked(self) -> None:
        blocked, self._blocked = self._blocked, []
        for stream_id in blocked:
            stream = self._streams.get(stream_id)
            if stream is not None and stream_id in self._pending_data:
                self._send_data(stream_id, stream)

    def _close_stream(self, stream_id: int, stream: _Stream) -> None:
        if not stream.closed_remote:
            # We answered before the request ended (an error): tell the client to stop.
            self._write(wire.frame(wire.RST_STREAM, 0, stream_id, wire.NO_ERROR.to_bytes(4, "big")))
        self._drop(stream_id)

    def _drop(self, stream_id: int) -> None:
        stream = self._streams.pop(stream_id, None)
        self._pending_data.pop(stream_id, None)
        if stream is not None and stream.task is not None:
            stream.task.cancel()
        self._close_if_idle()

    def _reset(self, stream_id: int, code: int) -> None:
        self._write(wire.frame(wire.RST_STREAM, 0, stream_id, code.to_bytes(4, "big")))
        self._drop(stream_id)

    def _close_if_idle(self) -> None:
        if self._going_away and not self._streams and self._transport is not None:
            self._transport.close()

    def _write(self, data: bytes) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.write(data)

    def _goaway(self, code: int, reason: str = "") -> None:
        payload = struct.pack(">II", self._last_stream_id, code) + reason.encode()[:200]
        self._write(wire.frame(wire.GOAWAY, 0, 0, payload))

    def shutdown(self) -> None:
        """Graceful: tell the client no new calls, finish those in flight, then close."""
        self._goaway(wire.NO_ERROR)
        self._going_away = True
        self._close_if_idle()

    def abort(self) -> None:
        if self._transport is not None:
            self._transport.abort()


class GrpcH2Server:
    """Serves unary gRPC methods, each a handler from request bytes to response bytes."""

    def __init__(self, handlers: dict[str, Handler]) -> None:
        self.handlers = handlers
        self.connections: set[GrpcH2Protocol] = set()
        self._handshaking: set[TlsHandshake] = set()
        self._server: asyncio.Server | None = None

    async def start(self, host: str, port: int, ssl: SSLContext | None = None) -> int:
        """Listen, over TLS given `ssl`; returns the bound port (useful with port 0)."""

        def accept() -> asyncio.Protocol:
            if ssl is None:
                return GrpcH2Protocol(self)
            return TlsHandshake(ssl, lambda: GrpcH2Protocol(self), self._handshaking)

        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(accept, host, port, reuse_address=True)
        return int(self._server.sockets[0].getsockname()[1])

    async def stop(self, grace: float) -> None:
        """Stop listening, let calls in flight finish for up to `grace` seconds, close."""
        if self._server is None:
            return
        self._server.close()
        for connection in list(self.connections):
            connection.shutdown()
        deadline = asyncio.get_running_loop().time() + grace
        while self.connections and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.01)
        for connection in list(self.connections):
            connection.abort()
        for handshake in list(self._handshaking):
            handshake.abort()
        await self._server.wait_closed()

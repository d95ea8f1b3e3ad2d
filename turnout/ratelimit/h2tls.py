"""TLS for the lean HTTP/2 transport (`h2grpc`): the server context and the handshake.

`server_context` builds what `GrpcH2Server.start(..., ssl=...)` takes: TLS 1.2 or
newer, ALPN `h2` only (gRPC requires it; Envoy's `_turnout_ratelimit` cluster offers
it), and with a client CA, a client certificate it signed is required (mTLS, as on
the xDS port).

`TlsHandshake` runs each connection's handshake itself (`loop.start_tls`) instead of
handing the context to `create_server`: asyncio reports a failed server-side
handshake only in debug mode, so a proxy with the wrong CA or no client certificate
would be refused without a word here while its quotas silently fail open (Envoy's
ratelimit filter lets requests through when the service cannot be reached). This
way each refusal is a WARNING that says why, and so is a client that did not
negotiate `h2`. This module knows nothing of HTTP/2 frames.
"""

import asyncio
import logging
import ssl
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger("turnout.ratelimit")

HANDSHAKE_TIMEOUT = 10.0
"""Seconds a client has to finish its handshake before the connection is dropped."""

_REASONS = {
    "PEER_DID_NOT_RETURN_A_CERTIFICATE": "it presented no client certificate",
    "CERTIFICATE_VERIFY_FAILED": "its client certificate is not signed by the client CA "
    "(a certificate from another cluster's CA, or expired?)",
    "TLSV1_ALERT_UNKNOWN_CA": "it does not trust the CA that signed this server's "
    "certificate (its --xds-ca)",
    "SSLV3_ALERT_BAD_CERTIFICATE": "it refused this server's certificate (does the "
    "certificate name the host the client called?)",
    "SSLV3_ALERT_CERTIFICATE_UNKNOWN": "it refused this server's certificate (does the "
    "certificate name the host the client called?)",
    "NO_SHARED_CIPHER": "no cipher in common",
    "UNSUPPORTED_PROTOCOL": "it offered a TLS version older than 1.2",
    "WRONG_VERSION_NUMBER": "it did not speak TLS (plaintext HTTP/2?)",
    "HTTP_REQUEST": "it did not speak TLS (plaintext HTTP?)",
}


def server_context(cert: Path, key: Path, client_ca: Path | None = None) -> ssl.SSLContext:
    """A server context for the rate limit transport; ValueError names a file it cannot use."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_alpn_protocols(["h2"])
    try:
        context.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        raise ValueError(f"cannot use certificate {cert} with key {key}: {exc}") from exc
    if client_ca is not None:
        try:
            context.load_verify_locations(cafile=client_ca)
        except (OSError, ssl.SSLError) as exc:
            raise ValueError(f"cannot use client CA {client_ca}: {exc}") from exc
        context.verify_mode = ssl.CERT_REQUIRED
    return context


def refusal(exc: BaseException) -> str:
    """Why a handshake failed, in plain words where the OpenSSL reason is a known one."""
    if isinstance(exc, TimeoutError):
        return f"no handshake within {HANDSHAKE_TIMEOUT:g} s"
    plain = _REASONS.get(getattr(exc, "reason", None) or "")
    return f"{plain} [{exc}]" if plain else str(exc) or type(exc).__name__


class _Early(asyncio.Protocol):
    """Stands in for the real protocol during `start_tls`: the client's first bytes
    (the HTTP/2 preface) can arrive with its last handshake flight and be delivered
    before the awaiting task resumes; they are kept here and handed on."""

    def __init__(self) -> None:
        self.data = bytearray()
        self.lost = False

    def data_received(self, data: bytes) -> None:
        self.data += data

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True


class TlsHandshake(asyncio.Protocol):
    """Accepts one TCP connection, runs the TLS handshake, then hands the TLS transport
    to the real protocol, or logs why the client was refused."""

    def __init__(
        self,
        context: ssl.SSLContext,
        protocol: Callable[[], asyncio.Protocol],
        pending: set["TlsHandshake"],
    ) -> None:
        self._context = context
        self._protocol = protocol
        self._pending = pending
        """Connections still in their handshake, for the server to abort at shutdown."""
        self._raw: asyncio.Transport | None = None
        self._task: asyncio.Task[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._raw = transport
        self._pending.add(self)
        self._task = asyncio.create_task(self._handshake(transport))

    def connection_lost(self, exc: Exception | None) -> None:
        # Only before `start_tls` took the transport over: the client left at once.
        self._pending.discard(self)

    async def _handshake(self, raw: asyncio.Transport) -> None:
        peer = _address(raw.get_extra_info("peername"))
        early = _Early()
        try:
            transport = await asyncio.get_running_loop().start_tls(
                raw, early, self._context, server_side=True, ssl_handshake_timeout=HANDSHAKE_TIMEOUT
            )
        except OSError as exc:  # ssl.SSLError, ConnectionError and TimeoutError among them
            if isinstance(exc, ConnectionError) and not isinstance(exc, ssl.SSLError):
                # Hung up without a TLS alert: a TCP health check or a port probe.
                log.debug("rate limit client %s left during the TLS handshake", peer)
            else:
                log.warning(
                    "rate limit client %s refused during the TLS handshake: %s", peer, refusal(exc)
                )
            raw.abort()
            return
        finally:
            self._pending.discard(self)
        if transport is None or early.lost:  # the client left right after the handshake
            return
        ssl_object = transport.get_extra_info("ssl_object")
        alpn = ssl_object.selected_alpn_protocol() if ssl_object is not None else None
        if alpn != "h2":
            log.warning(
                "rate limit client %s refused: it did not negotiate HTTP/2 over TLS "
                "(ALPN %r, expected 'h2')",
                peer,
                alpn,
            )
            transport.abort()
            return
        protocol = self._protocol()
        transport.set_protocol(protocol)
        protocol.connection_made(transport)
        if early.data:
            protocol.data_received(bytes(early.data))

    def abort(self) -> None:
        """Drop a connection still in its handshake (server shutdown)."""
        if self._task is not None:
            self._task.cancel()
        if self._raw is not None:
            self._raw.abort()


def _address(peer: object) -> str:
    if isinstance(peer, tuple) and len(peer) >= 2:
        return f"{peer[0]}:{peer[1]}"
    return str(peer)

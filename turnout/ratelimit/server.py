"""The rate limit service's own port: grpcio's sync server, with explicit limits.

Why the sync server: measured on the 2-core development machine with h2load and an
empty unary handler, grpcio's sync server answered 11,100 calls/s on one core against
6,650 for grpc.aio (8,000 on uvloop); with real decisions on Redis, 6,700 per CPU-second
against 5,700 (grpc.aio) and 5,600 (uvloop). Handlers take and return raw bytes (no
(de)serializer in grpcio's path), requests without quotas get a precomputed answer,
and the Redis increments of concurrent calls share one pipeline (`batch.py`).

Every limit an HTTP/2 server needs against hostile clients is grpcio's, set here
(OPTIONS): streams per connection, message and header sizes, keepalive enforcement
(a PING flood is answered GOAWAY `too_many_pings`), handshake timeout, idle and
maximum connection age, a connection cap, and calls in flight across the process.
grpcio's HTTP/2 stack brings the rest: a header block past the metadata limit is read
on but not kept (a CONTINUATION flood holds no memory), reset streams are freed at once
(rapid reset), flow-control windows are grpcio's own. tests/ratelimit/test_attacks.py
attacks this server.

Callers: with `credentials` carrying a client CA, grpcio refuses a connection
without a certificate it signed; `allow` then checks the certificate's names on
every call (PERMISSION_DENIED otherwise).
"""

import logging
import queue
import ssl
import threading
from collections.abc import Callable, Sequence
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc

from turnout.ratelimit.service import SERVICE_NAME, InvalidRequest, RateLimitService
from turnout.xds.identity import cert_names

log = logging.getLogger("turnout.ratelimit")

MAX_MESSAGE = 64 * 1024
"""Bytes in one request: Turnout's descriptors are a few entries each (MAX_DESCRIPTORS
at most), far below this; gRPC's default (4 MiB) would let 1,024 streams hold 4 GiB."""
MAX_STREAMS = 128
"""Calls in flight on one connection (Envoy opens more connections when it needs them)."""
MAX_CALLS = 2_048
"""Calls in flight in one process; more are refused with RESOURCE_EXHAUSTED."""
THREADS = 64
"""Handler threads: calls waiting for the same Redis round trip share it, so more
threads mean bigger batches under load."""
MAX_CONNECTIONS = 4_096

OPTIONS: list[tuple[str, int]] = [
    ("grpc.max_concurrent_streams", MAX_STREAMS),
    ("grpc.max_receive_message_length", MAX_MESSAGE),
    ("grpc.max_send_message_length", MAX_MESSAGE),
    ("grpc.max_metadata_size", 16 * 1024),  # request headers: a CONTINUATION flood ends here
    # Keepalive enforcement: Envoy's cluster pings every 30 s (envoy/bootstrap/ads.yaml);
    # a client pinging more often than every 10 s gets GOAWAY too_many_pings.
    ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
    ("grpc.http2.max_ping_strikes", 2),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.keepalive_time_ms", 60_000),  # our own pings find dead peers
    ("grpc.keepalive_timeout_ms", 10_000),
    ("grpc.server_handshake_timeout_ms", 5_000),  # half-open or silent connections
    ("grpc.max_connection_idle_ms", 5 * 60_000),
    # Connections end after 30 min (gracefully), so calls rebalance over workers and
    # hosts as they come and go.
    ("grpc.max_connection_age_ms", 30 * 60_000),
    ("grpc.max_connection_age_grace_ms", 10_000),
    ("grpc.max_allowed_incoming_connections", MAX_CONNECTIONS),
]

CertCheck = Callable[[Sequence[str]], str | None]
"""Given a caller's certificate names, why it is refused (None: allowed)."""


def server_credentials(
    cert: Path, key: Path, client_ca: Path | None = None
) -> grpc.ServerCredentials:
    """TLS for the port; with `client_ca`, callers need a certificate it signed.
    ValueError names a file that cannot be read."""
    pems = {}
    for option, path in (("--tls-cert", cert), ("--tls-key", key), ("--client-ca", client_ca)):
        if path is None:
            continue
        try:
            pems[option] = path.read_bytes()
        except OSError as exc:
            raise ValueError(f"{option}: cannot read {path}: {exc.strerror or exc}") from None
    _check_key_pair(cert, key)
    return grpc.ssl_server_credentials(
        [(pems["--tls-key"], pems["--tls-cert"])],
        root_certificates=pems.get("--client-ca"),
        require_client_auth=client_ca is not None,
    )


def _check_key_pair(cert: Path, key: Path) -> None:
    # grpcio would only fail at the first handshake, with a line on stderr.
    try:
        ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        raise ValueError(f"cannot use certificate {cert} with key {key}: {exc}") from exc


class HandlerThreads(futures.Executor):
    """The handler threads: a fixed pool on one queue.

    `ThreadPoolExecutor.submit` also checks for an idle thread on every call (a
    semaphore, under its own lock); at thousands of calls per second that check cost
    about a tenth of the service's CPU (py-spy), and grpcio needs nothing but
    `submit` and a future. The queue holds at most MAX_CALLS calls: grpcio refuses more."""

    def __init__(self, threads: int) -> None:
        self._queue: queue.SimpleQueue[tuple[futures.Future[Any], Callable[..., Any], Any] | None]
        self._queue = queue.SimpleQueue()
        self._threads = [
            threading.Thread(target=self._work, name=f"ratelimit-{i}", daemon=True)
            for i in range(threads)
        ]
        for thread in self._threads:
            thread.start()

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> futures.Future[Any]:
        future: futures.Future[Any] = futures.Future()
        self._queue.put((future, fn, (args, kwargs)))
        return future

    def _work(self) -> None:
        while (item := self._queue.get()) is not None:
            future, fn, (args, kwargs) = item
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(fn(*args, **kwargs))
            except BaseException as exc:  # the future carries it to grpcio
                future.set_exception(exc)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        for _ in self._threads:
            self._queue.put(None)
        if wait:
            for thread in self._threads:
                thread.join()


class RateLimitServer:
    """`ShouldRateLimit` on one port, on grpcio's sync server."""

    def __init__(
        self,
        service: RateLimitService,
        allow: CertCheck | None = None,
        threads: int = THREADS,
    ) -> None:
        self._service = service
        self._allow = allow
        self._executor = HandlerThreads(threads)
        self._server: grpc.Server | None = None

    def start(
        self,
        listen: str,
        credentials: grpc.ServerCredentials | None = None,
        reuse_port: bool = False,
    ) -> int:
        """Listen on `listen` (HOST:PORT; port 0 picks one) and return the port.

        `reuse_port`: share the port with other processes (`--workers`); otherwise a
        port already taken is an OSError, not a silent second listener."""
        server = grpc.server(
            self._executor,
            handlers=[
                grpc.method_handlers_generic_handler(
                    SERVICE_NAME,
                    {"ShouldRateLimit": grpc.unary_unary_rpc_method_handler(self._call)},
                )
            ],
            options=[*OPTIONS, ("grpc.so_reuseport", int(reuse_port))],
            maximum_concurrent_rpcs=MAX_CALLS,
        )
        try:
            if credentials is None:
                port = server.add_insecure_port(listen)
            else:
                port = server.add_secure_port(listen, credentials)
        except RuntimeError as exc:
            raise OSError(f"cannot listen on {listen}: {exc}") from exc
        if port == 0:
            raise OSError(f"cannot listen on {listen} (address in use?)")
        server.start()
        self._server = server
        return port

    def _call(self, message: bytes, context: grpc.ServicerContext) -> bytes:
        if self._allow is not None:
            names = _cert_names(context.auth_context())
            refused = self._allow(names)
            if refused is not None:
                context.abort(grpc.StatusCode.PERMISSION_DENIED, refused)
        try:
            return self._service.decide_wire(message)
        except InvalidRequest as exc:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
            raise  # abort raises; never reached

    def stop(self, grace: float) -> None:
        """Refuse new calls, let those in flight finish for up to `grace` seconds."""
        if self._server is not None:
            self._server.stop(grace).wait()
        self._executor.shutdown(wait=False)


def _cert_names(auth_context: dict[str, list[bytes]]) -> list[str]:
    return cert_names(auth_context)

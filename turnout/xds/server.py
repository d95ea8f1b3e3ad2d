"""The ADS gRPC server (grpc.aio): moves bytes between streams and the cache.

State of the World and Delta share one stream loop. Each stream runs a reader task
that feeds requests into its `StreamState` and a watcher that notices new
revisions in the cache; the handler itself sends whatever the state says is due.
All protocol decisions live in `turnout.xds.stream`; this module only does I/O,
metrics, and maps errors to gRPC status codes. It reaches the cache only through
`turnout.xds.watcher.ConfigWatcher`.
"""

import asyncio
import itertools
import logging
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any

import grpc
from envoy.service.discovery.v3 import ads_pb2_grpc
from envoy.service.discovery.v3.discovery_pb2 import (
    DeltaDiscoveryRequest,
    DeltaDiscoveryResponse,
    DiscoveryRequest,
    DiscoveryResponse,
    Resource,
)

from turnout.xds import metrics
from turnout.xds.authority import LiveNodes, NodeIdentity, certificate_fingerprint
from turnout.xds.cache import SnapshotCache
from turnout.xds.groups import TooManyGroups
from turnout.xds.identity import IdentityRefused
from turnout.xds.limits import (
    FIRST_REQUEST_SECONDS,
    MAX_REQUEST_BYTES,
    MAX_STREAMS,
    MAX_STREAMS_PER_IDENTITY,
    WORK_BURST,
    WORK_PER_SECOND,
    NoFirstRequest,
    TokenBucket,
    TooManyStreams,
    check_request,
)
from turnout.xds.lrs import ADS_WAIT_SECONDS, Authorizer, LoadStats
from turnout.xds.lrs import add_to_server as add_lrs_to_server
from turnout.xds.node import InvalidNode, node_group
from turnout.xds.proxy_registry import ConnectedProxy, ProxyRegistry
from turnout.xds.snapshot import CLUSTER_TYPE, Snapshot
from turnout.xds.stream import ProtocolError, RequestOutcome, Response, StreamState
from turnout.xds.watcher import ConfigWatcher

log = logging.getLogger(__name__)

UNREQUESTED_SECONDS = 300
"""How long a new stream may wait in gRPC's core for the handler loop to take it."""

# One table from error class to gRPC status (STYLE.md: errors).
_GRPC_STATUS: dict[type[Exception], grpc.StatusCode] = {
    ProtocolError: grpc.StatusCode.INVALID_ARGUMENT,
    InvalidNode: grpc.StatusCode.INVALID_ARGUMENT,
    IdentityRefused: grpc.StatusCode.PERMISSION_DENIED,
    TooManyGroups: grpc.StatusCode.RESOURCE_EXHAUSTED,
    TooManyStreams: grpc.StatusCode.RESOURCE_EXHAUSTED,
    NoFirstRequest: grpc.StatusCode.DEADLINE_EXCEEDED,
}

Request = DiscoveryRequest | DeltaDiscoveryRequest


class AggregatedDiscoveryService(ads_pb2_grpc.AggregatedDiscoveryServiceServicer):
    def __init__(
        self,
        cache: ConfigWatcher,
        registry: ProxyRegistry,
        authorize: Authorizer | None = None,
        live: LiveNodes | None = None,
        max_streams: int = MAX_STREAMS,
        max_streams_per_identity: int = MAX_STREAMS_PER_IDENTITY,
        first_request_seconds: float = FIRST_REQUEST_SECONDS,
    ) -> None:
        self._max_streams = max_streams
        self._max_per_identity = max_streams_per_identity
        self._first_request_seconds = first_request_seconds
        self._open = 0
        self._open_by_identity: Counter[str] = Counter()
        self._cache = cache
        self._registry = registry
        self._authorize = authorize
        self._live = live if live is not None else LiveNodes()
        self._stream_ids = itertools.count(1)

    async def StreamAggregatedResources(  # noqa: N802 (gRPC method name)
        self, request_iterator: AsyncIterator[DiscoveryRequest], context: grpc.aio.ServicerContext
    ) -> None:
        await self._serve(request_iterator, context, delta=False)

    async def DeltaAggregatedResources(  # noqa: N802 (gRPC method name)
        self,
        request_iterator: AsyncIterator[DeltaDiscoveryRequest],
        context: grpc.aio.ServicerContext,
    ) -> None:
        await self._serve(request_iterator, context, delta=True)

    async def _serve(
        self, requests: AsyncIterator[Any], context: grpc.aio.ServicerContext, delta: bool
    ) -> None:
        stream_id = next(self._stream_ids)
        state = StreamState(delta=delta)
        wake = asyncio.Event()
        kind = "delta" if delta else "sotw"
        # Each step below is undone exactly once in `finally`, whatever raised or how
        # often the handler was cancelled (a second cancel used to skip the gauge).
        undo: list[Callable[[], None]] = []
        reader: asyncio.Task[None] | None = None
        try:
            auth = context.auth_context()
            fingerprint = certificate_fingerprint(auth)
            undo.append(self._count_stream(fingerprint))
            first = await self._first_request(requests)
            if first is None:
                return
            check_request(state, first)
            _receive(state, first)
            assert state.node is not None
            group = node_group(state.node)  # bad metadata: INVALID_ARGUMENT, nothing built
            if self._authorize is not None:
                self._authorize(auth, state.node.id, state.node.cluster)
            self._cache.join(group, fingerprint)
            undo.append(lambda: self._cache.leave(group, fingerprint))
            proxy = ConnectedProxy(stream_id, state.node.id, group, state)
            self._registry.add(proxy)
            undo.append(lambda: self._registry.remove(stream_id))
            metrics.CONNECTED_PROXIES.labels(kind).inc()
            undo.append(metrics.CONNECTED_PROXIES.labels(kind).dec)
            identity = NodeIdentity(state.node.id, state.node.cluster, fingerprint)
            self._live.open(identity, stream_id, lambda: _cluster_names(proxy))
            undo.append(lambda: self._live.close(identity, stream_id))
            log.info(
                "%s stream %d opened by node %s (%s)",
                kind,
                stream_id,
                proxy.node_id,
                proxy.node_group,
            )
            reader = asyncio.create_task(self._read(requests, proxy, wake))
            undo.append(lambda: proxy.count_quarantine(closing=True))
            undo.append(reader.cancel)
            undo.append(self._cache.watch(wake))
            await self._send_loop(context, proxy, wake, reader)
        except tuple(_GRPC_STATUS) as exc:
            code = next(c for cls, c in _GRPC_STATUS.items() if isinstance(exc, cls))
            metrics.STREAMS_REFUSED.labels(code.name).inc()
            log.warning("stream %d from %s closed: %s", stream_id, context.peer(), exc)
            await context.abort(code, str(exc))
        finally:
            for step in reversed(undo):
                step()
            log.info("stream %d closed", stream_id)
            if reader is not None:
                await asyncio.gather(reader, return_exceptions=True)

    def _count_stream(self, fingerprint: str | None) -> Callable[[], None]:
        """Count a new stream against the bounds (or raise `TooManyStreams`); returns
        the undo."""
        if self._open >= self._max_streams:
            raise TooManyStreams(f"the server holds {self._open} ADS streams, its limit")
        if (
            fingerprint is not None
            and self._open_by_identity[fingerprint] >= self._max_per_identity
        ):
            raise TooManyStreams(
                f"this client certificate holds {self._max_per_identity} ADS streams, its limit"
            )
        self._open += 1
        if fingerprint is not None:
            self._open_by_identity[fingerprint] += 1

        def undo() -> None:
            self._open -= 1
            if fingerprint is not None:
                self._open_by_identity[fingerprint] -= 1
                if not self._open_by_identity[fingerprint]:
                    del self._open_by_identity[fingerprint]

        return undo

    async def _first_request(self, requests: AsyncIterator[Request]) -> Request | None:
        try:
            return await asyncio.wait_for(anext(aiter(requests), None), self._first_request_seconds)
        except TimeoutError:
            raise NoFirstRequest(
                f"no first request within {self._first_request_seconds:g}s of opening the stream"
            ) from None

    async def _read(
        self, requests: AsyncIterator[Request], proxy: ConnectedProxy, wake: asyncio.Event
    ) -> None:
        budget = TokenBucket(WORK_PER_SECOND, WORK_BURST)
        try:
            async for request in requests:
                work = check_request(proxy.state, request)
                outcome = _receive(proxy.state, request)
                if outcome.stale:
                    metrics.STALE_NONCES.inc()
                if outcome.nack is not None:
                    _on_nack(proxy, request.type_url, outcome)
                wake.set()
                delay = budget.take(work)
                if delay > 0:
                    # Past its budget a stream is read more slowly: HTTP/2 flow control
                    # then holds the client back, and other streams keep the loop.
                    await asyncio.sleep(delay)
        finally:
            wake.set()  # the send loop notices the stream ended

    async def _send_loop(
        self,
        context: grpc.aio.ServicerContext,
        proxy: ConnectedProxy,
        wake: asyncio.Event,
        reader: asyncio.Task[None],
    ) -> None:
        state = proxy.state
        wake.set()
        while True:
            await wake.wait()
            wake.clear()
            if reader.done():
                reader.result()  # re-raise a protocol error from the reader
                return
            snapshot = self._cache.snapshot(proxy.node_group)
            if snapshot is None:
                continue  # nothing loaded yet; the cache wakes us
            proxy.snapshot = snapshot
            while (response := state.next_response(snapshot)) is not None:
                started = time.perf_counter()
                log.debug(
                    "send %s version=%s nonce=%s resources=%d removed=%d to %s",
                    _short(response.type_url),
                    response.version,
                    response.nonce,
                    len(response.resources),
                    len(response.removed),
                    proxy.node_id,
                )
                message = _wire(response, state.delta, snapshot)
                # Recorded before the write yields: the ACK may be read before it returns.
                state.on_sent(response)
                await context.write(message)
                metrics.PUSHES.labels(response.type_url).inc()
                metrics.PUSH_DURATION.observe(time.perf_counter() - started)
            proxy.count_quarantine()  # a changed declaration may have released some
            if proxy.revision != snapshot.revision and state.in_sync(snapshot):
                proxy.revision = snapshot.revision
                committed = self._cache.commit_time(snapshot.revision)
                if committed is not None:
                    metrics.COMMIT_TO_ACK.observe(time.monotonic() - committed)


def _cluster_names(proxy: ConnectedProxy) -> frozenset[str]:
    """The clusters of the snapshot the stream last worked from (what LRS may report)."""
    snapshot = proxy.snapshot
    return frozenset(snapshot.resources(CLUSTER_TYPE)) if snapshot is not None else frozenset()


def _on_nack(proxy: ConnectedProxy, type_url: str, outcome: RequestOutcome) -> None:
    """Count a NACK and what it quarantined; log it unless this stream logs too much
    (the message is already `nack_text`: short, one place for redaction)."""
    metrics.NACKS.labels(type_url).inc()
    metrics.RESENDS_SUPPRESSED.inc()
    for q in outcome.quarantined:
        metrics.QUARANTINES.labels(type_url, q.kind).inc()
    proxy.count_quarantine()
    allowed, suppressed = proxy.nack_log.allow()
    if not allowed:
        metrics.NACK_LOGS_SUPPRESSED.inc()
        return
    held = ", ".join(f"{q.kind} {q.name!r}" for q in outcome.quarantined[:5])
    if len(outcome.quarantined) > 5:
        held += f" and {len(outcome.quarantined) - 5} more"
    log.warning(
        "node %s rejected %s (quarantined: %s): %s%s",
        proxy.node_id,
        type_url,
        held or "nothing pinned down",
        outcome.nack,
        f" [{suppressed} earlier NACKs on this stream not logged]" if suppressed else "",
    )


def _receive(state: StreamState, request: Request) -> RequestOutcome:
    if isinstance(request, DeltaDiscoveryRequest):
        outcome = state.on_delta_request(request)
    else:
        outcome = state.on_request(request)
    log.debug("recv %s nonce=%r %s", _short(request.type_url), request.response_nonce, outcome)
    return outcome


def _short(type_url: str) -> str:
    return type_url.rsplit(".", 1)[-1]


def _wire(
    response: Response, delta: bool, snapshot: Snapshot
) -> DiscoveryResponse | DeltaDiscoveryResponse:
    if not delta:
        return DiscoveryResponse(
            version_info=response.version,
            type_url=response.type_url,
            nonce=response.nonce,
            resources=[r.any for r in response.resources.values()],
        )
    return DeltaDiscoveryResponse(
        system_version_info=str(snapshot.revision),
        type_url=response.type_url,
        nonce=response.nonce,
        resources=[
            Resource(name=r.name, version=r.hash, resource=r.any)
            for r in response.resources.values()
        ],
        removed_resources=response.removed,
    )


def tls_credentials(cert: Path, key: Path, client_ca: Path | None) -> grpc.ServerCredentials:
    """Server TLS; with `client_ca`, every proxy must present a certificate it signed."""
    return grpc.ssl_server_credentials(
        [(key.read_bytes(), cert.read_bytes())],
        root_certificates=client_ca.read_bytes() if client_ca else None,
        require_client_auth=client_ca is not None,
    )


async def start_server(
    cache: SnapshotCache,
    registry: ProxyRegistry,
    listen: str,
    load_stats: LoadStats | None = None,
    credentials: grpc.ServerCredentials | None = None,
    authorize: Authorizer | None = None,
    also: Sequence[Callable[[grpc.aio.Server], None]] = (),
    lrs_wait_seconds: float = ADS_WAIT_SECONDS,
    connected_elsewhere: Callable[[str, str], bool] | None = None,
    max_streams: int = MAX_STREAMS,
    max_streams_per_identity: int = MAX_STREAMS_PER_IDENTITY,
    first_request_seconds: float = FIRST_REQUEST_SECONDS,
) -> tuple[grpc.aio.Server, int]:
    """Start serving ADS (and LRS, given `load_stats`) on `listen` (host:port, port 0
    picks one), over TLS when given `credentials`; return the server, which the
    caller stops, and the port. `also` adds other services to the same server (the
    rate limit service, so Envoy reaches it at the control plane's address).
    `lrs_wait_seconds`: how long a load report stream may wait for its node's ADS
    stream to open. `connected_elsewhere(node_id, node_cluster)`: whether another
    replica holds the node's ADS stream (a proxy's LRS stream may reach another
    replica than its ADS stream); may block. `max_streams`,
    `max_streams_per_identity` and `first_request_seconds`: the stream bounds
    described in `turnout.xds.limits`."""
    server = grpc.aio.server(
        options=[
            ("grpc.keepalive_time_ms", 30_000),
            ("grpc.keepalive_timeout_ms", 5_000),
            ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
            ("grpc.keepalive_permit_without_calls", 1),
            ("grpc.max_concurrent_streams", 1_000_000),
            # Streams gRPC's core accepted but the handler loop has not picked up yet.
            # Its defaults (1,000 soft, 3,000 hard, 30 s) refuse or cancel streams of a
            # fleet reconnecting at once (5,000 streams: ~1,600 refused, ~400
            # cancelled) before Turnout sees them; Turnout's own bound is max_streams.
            ("grpc.server.max_pending_requests", max_streams),
            ("grpc.server.max_pending_requests_hard_limit", max_streams),
            ("grpc.server_max_unrequested_time_in_server", UNREQUESTED_SECONDS),
            # xDS requests are small; the bound is enforced in gRPC's core.
            ("grpc.max_receive_message_length", MAX_REQUEST_BYTES),
        ]
    )
    # Which proxies hold ADS streams: who may report load, and for which clusters.
    live = LiveNodes(connected_elsewhere, cache.cluster_names)
    ads_pb2_grpc.add_AggregatedDiscoveryServiceServicer_to_server(
        AggregatedDiscoveryService(
            cache,
            registry,
            authorize,
            live,
            max_streams,
            max_streams_per_identity,
            first_request_seconds,
        ),
        server,
    )
    if load_stats is not None:
        add_lrs_to_server(server, load_stats, live, authorize, lrs_wait_seconds)
    for add in also:
        add(server)
    if credentials is not None:
        port = server.add_secure_port(listen, credentials)
    else:
        port = server.add_insecure_port(listen)
    if port == 0:
        raise OSError(f"cannot listen for xDS on {listen}")
    await server.start()
    return server, port

"""The ADS gRPC server (grpc.aio): moves bytes between streams and the cache.

Each stream runs two tasks: one reads requests into its `StreamState`, the other
sends whatever the state says is due, whenever a request arrives or the cache
holds a new revision. All protocol decisions live in `turnout.xds.stream`; this module
only does I/O and maps errors to gRPC status codes.
"""

import asyncio
import itertools
import logging
from collections.abc import AsyncIterator, Callable, Sequence

import grpc
from envoy.service.discovery.v3 import ads_pb2_grpc
from envoy.service.discovery.v3.discovery_pb2 import (
    DeltaDiscoveryRequest,
    DeltaDiscoveryResponse,
    DiscoveryRequest,
    DiscoveryResponse,
)

from turnout.xds.cache import SnapshotCache, node_key
from turnout.xds.snapshot import Snapshot
from turnout.xds.status import ConnectedProxy, ProxyRegistry
from turnout.xds.stream import ProtocolError, Response, StreamState

log = logging.getLogger(__name__)

# One table from error class to gRPC status (STYLE.md: errors).
_GRPC_STATUS: dict[type[Exception], grpc.StatusCode] = {
    ProtocolError: grpc.StatusCode.INVALID_ARGUMENT,
}


class AggregatedDiscoveryService(ads_pb2_grpc.AggregatedDiscoveryServiceServicer):
    def __init__(self, cache: SnapshotCache, registry: ProxyRegistry) -> None:
        self._cache = cache
        self._registry = registry
        self._stream_ids = itertools.count(1)

    async def StreamAggregatedResources(  # noqa: N802 (gRPC method name)
        self,
        request_iterator: AsyncIterator[DiscoveryRequest],
        context: grpc.aio.ServicerContext,
    ) -> None:
        stream_id = next(self._stream_ids)
        state = StreamState()
        wake = asyncio.Event()
        try:
            first = await anext(aiter(request_iterator), None)
            if first is None:
                return
            state.on_request(first)
            assert state.node is not None
            key = node_key(state.node)
            proxy = ConnectedProxy(stream_id, state.node.id, key, state)
            self._registry.add(proxy)
            log.info("stream %d opened by node %s (%s)", stream_id, state.node.id, key)
            reader = asyncio.create_task(self._read(request_iterator, state, wake))
            watcher = asyncio.create_task(self._watch_cache(wake))
            try:
                await self._send_loop(context, proxy, wake, reader)
            finally:
                reader.cancel()
                watcher.cancel()
                await asyncio.gather(reader, watcher, return_exceptions=True)
        except tuple(_GRPC_STATUS) as exc:
            log.warning("stream %d closed: %s", stream_id, exc)
            await context.abort(_GRPC_STATUS[type(exc)], str(exc))
        finally:
            self._registry.remove(stream_id)
            log.info("stream %d closed", stream_id)

    async def DeltaAggregatedResources(  # noqa: N802 (gRPC method name)
        self,
        request_iterator: AsyncIterator[DeltaDiscoveryRequest],
        context: grpc.aio.ServicerContext,
    ) -> AsyncIterator[DeltaDiscoveryResponse]:
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, "Delta xDS is not served yet (#3)")
        yield DeltaDiscoveryResponse()  # pragma: no cover - makes this a generator

    async def _read(
        self,
        request_iterator: AsyncIterator[DiscoveryRequest],
        state: StreamState,
        wake: asyncio.Event,
    ) -> None:
        async for request in request_iterator:
            outcome = state.on_request(request)
            log.debug(
                "recv %s version=%r nonce=%r names=%d %s",
                _short(request.type_url),
                request.version_info,
                request.response_nonce,
                len(request.resource_names),
                outcome,
            )
            if outcome.nack is not None:
                log.warning(
                    "node %s rejected %s: %s",
                    state.node.id if state.node else "?",
                    request.type_url,
                    outcome.nack,
                )
            wake.set()

    async def _watch_cache(self, wake: asyncio.Event) -> None:
        while True:
            revision = self._cache.revision
            await self._cache.wait_changed(revision)
            wake.set()

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
            waiter = asyncio.create_task(wake.wait())
            done, _ = await asyncio.wait({waiter, reader}, return_when=asyncio.FIRST_COMPLETED)
            if reader in done:
                waiter.cancel()
                reader.result()  # re-raise a protocol error from the reader
                return
            wake.clear()
            snapshot = self._cache.snapshot(proxy.key)
            if snapshot is None:
                continue  # nothing loaded yet; the cache wakes us
            while (response := state.next_response(snapshot)) is not None:
                log.debug(
                    "send %s version=%s nonce=%s names=%d to %s",
                    _short(response.type_url),
                    response.version,
                    response.nonce,
                    len(response.resources),
                    proxy.node_id,
                )
                # Record before writing: Envoy's ACK can arrive while write() awaits,
                # and must find the new nonce (else it looks stale and is dropped).
                state.on_sent(response)
                await context.write(_discovery_response(response, snapshot))
            if state.in_sync(snapshot):
                proxy.revision = snapshot.revision


def _short(type_url: str) -> str:
    return type_url.rsplit(".", 1)[-1]


def _discovery_response(response: Response, snapshot: Snapshot) -> DiscoveryResponse:
    resources = snapshot.resources(response.type_url)
    return DiscoveryResponse(
        version_info=response.version,
        type_url=response.type_url,
        nonce=response.nonce,
        resources=[resources[name].any for name in response.names],
    )


async def start_server(
    cache: SnapshotCache,
    registry: ProxyRegistry,
    listen: str,
    also: Sequence[Callable[[grpc.aio.Server], None]] = (),
) -> grpc.aio.Server:
    """Start serving ADS on `listen` (host:port); the caller stops it.

    `also` adds other services to the same server before it starts (the rate limit
    service, so Envoy reaches it at the control plane's address).
    """
    server = grpc.aio.server(
        options=[
            ("grpc.keepalive_time_ms", 30_000),
            ("grpc.keepalive_timeout_ms", 5_000),
            ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
            ("grpc.keepalive_permit_without_calls", 1),
            ("grpc.max_concurrent_streams", 1_000_000),
        ]
    )
    ads_pb2_grpc.add_AggregatedDiscoveryServiceServicer_to_server(
        AggregatedDiscoveryService(cache, registry), server
    )
    for add in also:
        add(server)
    port = server.add_insecure_port(listen)
    if port == 0:
        raise OSError(f"cannot listen for xDS on {listen}")
    await server.start()
    return server

"""Admission of new ADS streams over real gRPC: the server-wide bound on open streams
and the deadline for a stream's first request."""

import asyncio
import time
from collections.abc import AsyncIterator

import grpc
import pytest
from envoy.service.discovery.v3.discovery_pb2 import DeltaDiscoveryRequest, DiscoveryRequest

from tests.xds.test_cache import InMemorySource, revision_other_than
from tests.xds.test_server import Requests
from tests.xds.test_server_bounds import FakeContext, Server, closed_with, gauge, node, until
from turnout.xds.cache import SnapshotCache
from turnout.xds.proxy_registry import ProxyRegistry
from turnout.xds.server import AggregatedDiscoveryService
from turnout.xds.snapshot import CLUSTER_TYPE


async def open_stream(ads: Server, node_id: str) -> tuple[object, Requests]:
    """A SotW stream that has sent its first request and read its first response."""
    requests = Requests()
    call = ads.stub.StreamAggregatedResources(requests)
    requests.send(DiscoveryRequest(node=node(node_id), type_url=CLUSTER_TYPE))
    response = await call.read()  # type: ignore[attr-defined]
    assert response.type_url == CLUSTER_TYPE
    return call, requests


async def test_past_the_stream_bound_a_new_stream_is_refused_until_one_closes() -> None:
    async with Server(max_streams=2) as ads:
        first, _ = await open_stream(ads, "a")
        await open_stream(ads, "b")
        requests = Requests()
        refused = ads.stub.StreamAggregatedResources(requests)
        requests.send(DiscoveryRequest(node=node("c"), type_url=CLUSTER_TYPE))
        failed = await closed_with(refused)
        assert failed.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "2 ADS streams, its limit" in (failed.details() or "")
        assert sorted(p.node_id for p in ads.registry.proxies()) == ["a", "b"]

        first.cancel()  # type: ignore[attr-defined]
        await until(lambda: len(ads.registry) == 1, 5, "the first stream to close")
        await open_stream(ads, "c")  # its slot is free again
        assert sorted(p.node_id for p in ads.registry.proxies()) == ["b", "c"]


@pytest.mark.parametrize("delta", [False, True], ids=["sotw", "delta"])
async def test_a_stream_that_sends_nothing_is_closed_after_the_deadline(delta: bool) -> None:
    async with Server(first_request_seconds=0.3, max_streams=1) as ads:
        before = gauge("delta" if delta else "sotw")
        started = time.monotonic()
        silent = Requests()
        rpc = ads.stub.DeltaAggregatedResources if delta else ads.stub.StreamAggregatedResources
        failed = await closed_with(rpc(silent))
        assert failed.code() is grpc.StatusCode.DEADLINE_EXCEEDED
        assert "no first request within 0.3s" in (failed.details() or "")
        assert time.monotonic() - started < 4
        assert gauge("delta" if delta else "sotw") == before
        assert len(ads.registry) == 0

        # The silent stream's slot was given back: the one allowed stream opens.
        requests = Requests()
        call = rpc(requests)
        request = DeltaDiscoveryRequest if delta else DiscoveryRequest
        requests.send(request(node=node(), type_url=CLUSTER_TYPE))
        response = await call.read()
        assert response.type_url == CLUSTER_TYPE


class CertContext(FakeContext):
    """A servicer context whose peer presented `pem` (xDS mTLS)."""

    def __init__(self, pem: bytes) -> None:
        self.pem = pem
        self.aborted: list[tuple[grpc.StatusCode, str]] = []

    def auth_context(self) -> dict[str, list[bytes]]:
        return {"x509_pem_cert": [self.pem]}

    async def abort(self, code: grpc.StatusCode, details: str) -> None:
        self.aborted.append((code, details))


async def test_one_certificate_holds_at_most_its_bound_of_streams() -> None:
    source = InMemorySource()
    cache = SnapshotCache()
    runner = asyncio.create_task(cache.run(source, source))
    registry = ProxyRegistry()
    servicer = AggregatedDiscoveryService(cache, registry, max_streams_per_identity=1)
    forever = asyncio.Event()

    async def requests(node_id: str) -> AsyncIterator[DiscoveryRequest]:
        yield DiscoveryRequest(node=node(node_id), type_url=CLUSTER_TYPE)
        await forever.wait()

    held = CertContext(b"cert-1")
    handler = asyncio.create_task(servicer.StreamAggregatedResources(requests("a"), held))  # type: ignore[arg-type]
    try:
        await revision_other_than(cache, None)
        await until(lambda: len(registry) == 1, 5, "the first stream to be registered")
        refused = CertContext(b"cert-1")
        await servicer.StreamAggregatedResources(requests("b"), refused)  # type: ignore[arg-type]
        assert refused.aborted == [
            (
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                "this client certificate holds 1 ADS streams, its limit",
            )
        ]
        other = CertContext(b"cert-2")  # another identity is not held back
        second = asyncio.create_task(servicer.StreamAggregatedResources(requests("c"), other))  # type: ignore[arg-type]
        await until(lambda: len(registry) == 2, 5, "the other certificate's stream")
        assert other.aborted == []
        second.cancel()
        await asyncio.gather(second, return_exceptions=True)
    finally:
        handler.cancel()
        await asyncio.gather(handler, return_exceptions=True)
        runner.cancel()

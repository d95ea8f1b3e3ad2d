"""The ADS servicer over a real loopback gRPC channel, with an in-memory declaration."""

import asyncio
from collections.abc import AsyncIterator

import grpc
import pytest
from envoy.config.core.v3.base_pb2 import Node
from envoy.service.discovery.v3 import ads_pb2_grpc
from envoy.service.discovery.v3.discovery_pb2 import (
    DeltaDiscoveryRequest,
    DiscoveryRequest,
    DiscoveryResponse,
)

from tests.xds.test_cache import InMemorySource, revision_other_than
from turnout.xds.cache import SnapshotCache
from turnout.xds.proxy_registry import ProxyRegistry
from turnout.xds.server import start_server
from turnout.xds.snapshot import CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE


class Ads:
    """A running server plus a client stub."""

    def __init__(self) -> None:
        self.source = InMemorySource()
        self.cache = SnapshotCache()
        self.registry = ProxyRegistry()

    async def __aenter__(self) -> "Ads":
        self.runner = asyncio.create_task(self.cache.run(self.source, self.source))
        await revision_other_than(self.cache, None)
        self.server, port = await start_server(self.cache, self.registry, "127.0.0.1:0")
        self.channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
        self.stub = ads_pb2_grpc.AggregatedDiscoveryServiceStub(self.channel)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.channel.close()
        await self.server.stop(0)
        self.runner.cancel()


class Requests:
    """An outgoing request stream the test feeds one message at a time."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[object] = asyncio.Queue()

    def send(self, message: object) -> None:
        self.queue.put_nowait(message)

    async def __aiter__(self) -> AsyncIterator[object]:
        while (message := await self.queue.get()) is not None:
            yield message


def ack(response: DiscoveryResponse, names: list[str] | None = None) -> DiscoveryRequest:
    return DiscoveryRequest(
        type_url=response.type_url,
        version_info=response.version_info,
        response_nonce=response.nonce,
        resource_names=names or [],
    )


def first_request(type_url: str, version: str = "") -> DiscoveryRequest:
    return DiscoveryRequest(
        node=Node(id="proxy-1", cluster="default"), type_url=type_url, version_info=version
    )


async def test_responses_carry_matching_type_urls_and_unique_names() -> None:
    async with Ads() as ads:
        for i in range(3):
            ads.source.commit_route(i)
        requests = Requests()
        call = ads.stub.StreamAggregatedResources(requests)
        requests.send(first_request(CLUSTER_TYPE))
        cds: DiscoveryResponse = await asyncio.wait_for(call.read(), 5)
        requests.send(ack(cds))
        requests.send(DiscoveryRequest(type_url=ENDPOINT_TYPE, resource_names=["s"]))
        eds: DiscoveryResponse = await asyncio.wait_for(call.read(), 5)
        requests.send(ack(eds, ["s"]))
        # Listeners go out only once clusters and their endpoints are acknowledged.
        requests.send(DiscoveryRequest(type_url=LISTENER_TYPE))
        lds: DiscoveryResponse = await asyncio.wait_for(call.read(), 5)
        for response, type_url in ((cds, CLUSTER_TYPE), (lds, LISTENER_TYPE)):
            assert response.type_url == type_url
            assert all(r.type_url == type_url for r in response.resources)
            names = [r.value for r in response.resources]
            assert len(names) == len(set(names)) and names
        assert {p.node_id for p in ads.registry.proxies()} == {"proxy-1"}
        requests.send(None)
        call.cancel()


async def test_a_reconnecting_proxy_is_answered_even_with_the_current_version() -> None:
    async with Ads() as ads:
        requests = Requests()
        call = ads.stub.StreamAggregatedResources(requests)
        requests.send(first_request(CLUSTER_TYPE))
        first = await asyncio.wait_for(call.read(), 5)
        requests.send(None)
        call.cancel()
        again = Requests()
        call = ads.stub.StreamAggregatedResources(again)
        again.send(first_request(CLUSTER_TYPE, version=first.version_info))
        second = await asyncio.wait_for(call.read(), 5)
        assert second.version_info == first.version_info
        again.send(None)
        call.cancel()


@pytest.mark.parametrize("delta", [False, True], ids=["sotw", "delta"])
async def test_a_request_without_type_url_closes_the_stream_with_invalid_argument(
    delta: bool,
) -> None:
    async with Ads() as ads:
        requests = Requests()
        node = Node(id="proxy-1")
        if delta:
            call = ads.stub.DeltaAggregatedResources(requests)
            requests.send(DeltaDiscoveryRequest(node=node))
        else:
            call = ads.stub.StreamAggregatedResources(requests)
            requests.send(DiscoveryRequest(node=node))
        with pytest.raises(grpc.aio.AioRpcError) as failed:
            await asyncio.wait_for(call.read(), 5)
        assert failed.value.code() is grpc.StatusCode.INVALID_ARGUMENT
        assert "type_url" in (failed.value.details() or "")


async def test_delta_stream_sends_versioned_resources() -> None:
    async with Ads() as ads:
        ads.source.commit_route(1)
        requests = Requests()
        call = ads.stub.DeltaAggregatedResources(requests)
        requests.send(DeltaDiscoveryRequest(node=Node(id="proxy-1"), type_url=CLUSTER_TYPE))
        response = await asyncio.wait_for(call.read(), 5)
        assert response.type_url == CLUSTER_TYPE
        assert [r.name for r in response.resources] == ["s"]
        assert all(len(r.version) == 64 for r in response.resources)  # SHA-256 hex
        requests.send(None)
        call.cancel()


async def test_a_client_nacking_everything_with_huge_messages_is_logged_briefly(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """One Envoy NACKing each response with 64 KiB messages once wrote 97 MiB/s of log:
    per stream, a few NACKs are logged, each short, and the stored message is short."""
    huge = "x" * 65536
    async with Ads() as ads:
        requests = Requests()
        call = ads.stub.StreamAggregatedResources(requests)
        requests.send(first_request(ENDPOINT_TYPE))
        response: DiscoveryResponse = await asyncio.wait_for(call.read(), 5)
        with caplog.at_level("WARNING", logger="turnout.xds.server"):
            for i in range(30):
                # A NACK that also asks for a new name: the server answers it, and the
                # client NACKs that answer too.
                nack = DiscoveryRequest(
                    type_url=ENDPOINT_TYPE,
                    response_nonce=response.nonce,
                    resource_names=["s", f"missing-{i}"],
                )
                nack.error_detail.message = huge
                requests.send(nack)
                response = await asyncio.wait_for(call.read(), 5)
        nack_logs = [r for r in caplog.records if "rejected" in r.getMessage()]
        assert 1 <= len(nack_logs) <= 3
        assert all(len(r.getMessage()) < 2048 for r in nack_logs)
        (proxy,) = ads.registry.proxies()
        (eds,) = proxy.types
        assert eds.last_nack is not None and len(eds.last_nack) <= 1024
        assert "65536 chars" in eds.last_nack
        requests.send(None)
        call.cancel()

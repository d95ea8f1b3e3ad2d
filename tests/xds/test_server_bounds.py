"""Bounds on hostile ADS clients, over a real loopback gRPC channel to an in-process
server: unknown types, name floods, oversized requests, bad node metadata, NACK log
volume, the connected-proxies gauge, and node groups (eviction and caps)."""

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import grpc
import pytest
from envoy.config.core.v3.base_pb2 import Node
from envoy.service.discovery.v3 import ads_pb2_grpc
from envoy.service.discovery.v3.discovery_pb2 import DeltaDiscoveryRequest, DiscoveryRequest
from google.protobuf.struct_pb2 import Struct
from google.rpc.status_pb2 import Status
from prometheus_client import REGISTRY

from tests.xds.test_cache import InMemorySource, revision_other_than
from tests.xds.test_server import Requests
from turnout.models.change import Commit
from turnout.models.service import ServiceSpec
from turnout.xds.cache import SnapshotCache
from turnout.xds.proxy_registry import ProxyRegistry
from turnout.xds.server import AggregatedDiscoveryService, start_server
from turnout.xds.snapshot import CLUSTER_TYPE, ENDPOINT_TYPE

BOGUS_TYPE = "type.googleapis.com/bogus.v1.Thing"


class Server:
    """An in-process ADS server on loopback, with its cache and registry."""

    def __init__(self, cache: SnapshotCache | None = None, **options: Any) -> None:
        """`options`: keyword arguments for `start_server` (the stream bounds)."""
        self.options = options
        self.source = InMemorySource()
        self.cache = cache or SnapshotCache()
        self.registry = ProxyRegistry()

    async def __aenter__(self) -> "Server":
        self.runner = asyncio.create_task(self.cache.run(self.source, self.source))
        await revision_other_than(self.cache, None)
        self.server, port = await start_server(
            self.cache, self.registry, "127.0.0.1:0", **self.options
        )
        options = [("grpc.max_send_message_length", 16 * 2**20)]
        self.channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}", options=options)
        self.stub = ads_pb2_grpc.AggregatedDiscoveryServiceStub(self.channel)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.channel.close()
        await self.server.stop(0)
        self.runner.cancel()


async def closed_with(call: Any, timeout: float = 5) -> grpc.aio.AioRpcError:
    """Read `call` until the server closes it with an error status (within `timeout`)."""
    deadline = time.monotonic() + timeout
    try:
        while (left := deadline - time.monotonic()) > 0:
            if await asyncio.wait_for(call.read(), left) is grpc.aio.EOF:
                pytest.fail("the stream ended with OK instead of an error")
    except grpc.aio.AioRpcError as exc:
        return exc
    except TimeoutError:
        pass
    pytest.fail(f"the server did not close the stream within {timeout}s")


async def until(condition: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.01)


def node(node_id: str = "proxy-1", cluster: str = "default", **metadata: Any) -> Node:
    meta = Struct()
    meta.update(metadata)
    return Node(id=node_id, cluster=cluster, metadata=meta)


def gauge(kind: str) -> float:
    return REGISTRY.get_sample_value("turnout_connected_proxies", {"xds": kind}) or 0.0


# --- 5. unknown types, names, request size ---------------------------------------------


@pytest.mark.parametrize("delta", [False, True], ids=["sotw", "delta"])
async def test_an_unknown_type_url_closes_the_stream_and_stores_nothing(delta: bool) -> None:
    async with Server() as ads:
        requests = Requests()
        if delta:
            call = ads.stub.DeltaAggregatedResources(requests)
            requests.send(DeltaDiscoveryRequest(node=node(), type_url=CLUSTER_TYPE))
            requests.send(DeltaDiscoveryRequest(type_url=BOGUS_TYPE))
        else:
            call = ads.stub.StreamAggregatedResources(requests)
            requests.send(DiscoveryRequest(node=node(), type_url=CLUSTER_TYPE))
            requests.send(DiscoveryRequest(type_url=BOGUS_TYPE))
        failed = await closed_with(call)
        assert failed.code() is grpc.StatusCode.INVALID_ARGUMENT
        assert BOGUS_TYPE in (failed.details() or "")
        await until(lambda: len(ads.registry) == 0, 5, "the stream to be unregistered")


async def test_an_unknown_type_url_on_the_first_request_is_refused_too() -> None:
    async with Server() as ads:
        requests = Requests()
        call = ads.stub.StreamAggregatedResources(requests)
        requests.send(DiscoveryRequest(node=node(), type_url=BOGUS_TYPE))
        failed = await closed_with(call)
        assert failed.code() is grpc.StatusCode.INVALID_ARGUMENT
        assert ads.registry.proxies() == []


async def test_too_many_names_in_one_sotw_subscription_close_the_stream() -> None:
    from turnout.xds.limits import MAX_NAMES_PER_SUBSCRIPTION

    async with Server() as ads:
        requests = Requests()
        call = ads.stub.StreamAggregatedResources(requests)
        names = [f"n{i}" for i in range(MAX_NAMES_PER_SUBSCRIPTION + 1)]
        requests.send(DiscoveryRequest(node=node(), type_url=ENDPOINT_TYPE, resource_names=names))
        failed = await closed_with(call)
        assert failed.code() is grpc.StatusCode.INVALID_ARGUMENT
        assert "resource_names" in (failed.details() or "")


async def test_delta_subscriptions_cannot_grow_past_the_bound() -> None:
    from turnout.xds.limits import MAX_NAMES_PER_SUBSCRIPTION

    half = MAX_NAMES_PER_SUBSCRIPTION // 2 + 1
    async with Server() as ads:
        requests = Requests()
        call = ads.stub.DeltaAggregatedResources(requests)
        for batch in range(3):  # each batch alone is within the bound; together not
            requests.send(
                DeltaDiscoveryRequest(
                    node=node() if batch == 0 else None,
                    type_url=ENDPOINT_TYPE,
                    resource_names_subscribe=[f"b{batch}-{i}" for i in range(half)],
                )
            )
        failed = await closed_with(call)
        assert failed.code() is grpc.StatusCode.INVALID_ARGUMENT
        assert "resource_names_subscribe" in (failed.details() or "")


async def test_a_request_larger_than_the_bound_is_refused_by_grpc() -> None:
    from turnout.xds.limits import MAX_REQUEST_BYTES

    async with Server() as ads:
        requests = Requests()
        call = ads.stub.StreamAggregatedResources(requests)
        big = "x" * (MAX_REQUEST_BYTES + 1024)
        requests.send(DiscoveryRequest(node=node(), type_url=CLUSTER_TYPE, resource_names=[big]))
        failed = await closed_with(call)
        assert failed.code() is grpc.StatusCode.RESOURCE_EXHAUSTED


# --- 7. node metadata ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("metadata", "reason"),
    [
        ({"listener_port": "abc"}, "listener_port: 'abc' is not a port number"),
        ({"listener_port": 70000}, "listener_port: 70000 is out of range"),
        ({"listener_port": 0}, "listener_port: 0 is out of range"),
        ({"listener_port": 80.5}, "listener_port: 80.5 is not a whole number"),
        ({"listener_port": True}, "listener_port: expected a number"),
        ({"listener_port": "99999999999999999999"}, "is not a port number"),
        ({"listener_address": "example.com"}, "listener_address: 'example.com' is not an IP"),
        ({"listener_address": 5}, "listener_address: expected a string"),
    ],
)
async def test_bad_node_metadata_is_invalid_argument_naming_the_field(
    metadata: dict[str, Any], reason: str
) -> None:
    async with Server() as ads:
        requests = Requests()
        call = ads.stub.StreamAggregatedResources(requests)
        requests.send(DiscoveryRequest(node=node(**metadata), type_url=CLUSTER_TYPE))
        failed = await closed_with(call)
        assert failed.code() is grpc.StatusCode.INVALID_ARGUMENT
        assert reason in (failed.details() or ""), failed.details()
        assert ads.cache.translated() == set()  # nothing was built for it
        assert ads.registry.proxies() == []


async def test_a_string_port_in_metadata_is_accepted_when_it_is_a_number() -> None:
    async with Server() as ads:
        requests = Requests()
        call = ads.stub.StreamAggregatedResources(requests)
        requests.send(
            DiscoveryRequest(
                node=node(listener_port="10001", listener_address="127.0.0.1"),
                type_url=CLUSTER_TYPE,
            )
        )
        response = await asyncio.wait_for(call.read(), 5)
        assert response.type_url == CLUSTER_TYPE
        assert [p.listener_port for p in ads.registry.proxies()] == [10001]
        call.cancel()


# --- 7. the connected-proxies gauge ----------------------------------------------------


class FakeContext:
    """The little of grpc.aio.ServicerContext the ADS handler uses."""

    def auth_context(self) -> dict[str, list[bytes]]:
        return {}

    def peer(self) -> str:
        return "ipv4:127.0.0.1:1"

    async def write(self, message: object) -> None:
        await asyncio.sleep(0)

    async def abort(self, code: grpc.StatusCode, details: str) -> None:
        raise AssertionError(f"aborted: {code} {details}")


async def test_a_second_cancel_during_teardown_still_decrements_the_gauge() -> None:
    source = InMemorySource()
    cache = SnapshotCache()
    runner = asyncio.create_task(cache.run(source, source))
    registry = ProxyRegistry()
    servicer = AggregatedDiscoveryService(cache, registry)
    forever = asyncio.Event()

    async def requests() -> AsyncIterator[DiscoveryRequest]:
        yield DiscoveryRequest(node=node(), type_url=CLUSTER_TYPE)
        await forever.wait()

    try:
        await revision_other_than(cache, None)
        before = gauge("sotw")
        handler = asyncio.create_task(
            servicer.StreamAggregatedResources(requests(), FakeContext())  # type: ignore[arg-type]
        )
        await until(lambda: gauge("sotw") == before + 1, 5, "the stream to be counted")
        handler.cancel()  # the client went away...
        await asyncio.sleep(0)  # ...the handler starts tearing down...
        handler.cancel()  # ...and the server's shutdown cancels it again
        await asyncio.gather(handler, return_exceptions=True)
        assert gauge("sotw") == before
        assert len(registry) == 0
    finally:
        runner.cancel()


async def test_gauge_returns_to_the_true_count_after_churn() -> None:
    async with Server() as ads:
        before = gauge("sotw") + gauge("delta")

        async def one(i: int) -> None:
            requests = Requests()
            if i % 2:
                call = ads.stub.DeltaAggregatedResources(requests)
                requests.send(DeltaDiscoveryRequest(node=node(f"c{i}"), type_url=CLUSTER_TYPE))
            else:
                call = ads.stub.StreamAggregatedResources(requests)
                requests.send(DiscoveryRequest(node=node(f"c{i}"), type_url=CLUSTER_TYPE))
            if i % 3:
                await asyncio.wait_for(call.read(), 10)
            call.cancel()

        await asyncio.gather(*(one(i) for i in range(300)))
        await until(
            lambda: gauge("sotw") + gauge("delta") == before and len(ads.registry) == 0,
            10,
            "the gauge to come back to the number of open streams",
        )


# --- 6. node groups --------------------------------------------------------------------


async def open_in_group(ads: Server, group: str) -> tuple[Any, Requests]:
    requests = Requests()
    call = ads.stub.StreamAggregatedResources(requests)
    requests.send(DiscoveryRequest(node=node(f"n-{group}", group), type_url=CLUSTER_TYPE))
    return call, requests


async def test_a_group_is_evicted_a_grace_period_after_its_last_stream_closed() -> None:
    cache = SnapshotCache(group_grace_seconds=0.2)
    async with Server(cache) as ads:
        call, _ = await open_in_group(ads, "g1")
        await asyncio.wait_for(call.read(), 5)
        assert {k.group for k in cache.translated()} == {"g1"}
        call.cancel()
        closed = time.monotonic()
        await until(lambda: cache.translated() == set(), 5, "the idle group to be evicted")
        assert time.monotonic() - closed >= 0.2
        assert cache.groups() == 0
        # A change no longer translates anything for it.
        await asyncio.to_thread(ads.source.commit_route, 1)
        await revision_other_than(cache, 0)
        assert cache.translated() == set()


async def test_a_proxy_that_reconnects_within_the_grace_keeps_its_group() -> None:
    cache = SnapshotCache(group_grace_seconds=60)
    async with Server(cache) as ads:
        call, _ = await open_in_group(ads, "g1")
        await asyncio.wait_for(call.read(), 5)
        call.cancel()
        await until(lambda: len(ads.registry) == 0, 5, "the stream to close")
        again, _ = await open_in_group(ads, "g1")
        await asyncio.wait_for(again.read(), 5)
        assert {k.group for k in cache.translated()} == {"g1"}
        again.cancel()


async def test_past_the_cap_idle_groups_make_room_and_live_ones_refuse_a_new_group() -> None:
    cache = SnapshotCache(max_groups=2, group_grace_seconds=60)
    async with Server(cache) as ads:
        g1, _ = await open_in_group(ads, "g1")
        g2, _ = await open_in_group(ads, "g2")
        await asyncio.wait_for(g1.read(), 5)
        await asyncio.wait_for(g2.read(), 5)
        g3, _ = await open_in_group(ads, "g3")
        failed = await closed_with(g3)
        assert failed.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "node group 'g3' refused" in (failed.details() or "")
        # g1's proxy leaves: its idle group gives way to a new one at once.
        g1.cancel()
        await until(lambda: len(ads.registry) == 1, 5, "g1's stream to close")
        g3, _ = await open_in_group(ads, "g3")
        assert (await asyncio.wait_for(g3.read(), 5)).type_url == CLUSTER_TYPE
        assert {k.group for k in cache.translated()} == {"g2", "g3"}
        g2.cancel()
        g3.cancel()


async def test_three_thousand_distinct_groups_leave_at_most_the_cap_translated() -> None:
    cache = SnapshotCache(max_groups=50, group_grace_seconds=60)
    async with Server(cache) as ads:
        limit = asyncio.Semaphore(50)

        async def one(i: int) -> None:
            async with limit:
                call, _ = await open_in_group(ads, f"churn-{i}")
                await asyncio.wait_for(call.read(), 20)
                call.cancel()

        await asyncio.gather(*(one(i) for i in range(3000)))
        assert len(cache.translated()) <= 50
        assert cache.groups() <= 50


# --- 5. NACK log volume ----------------------------------------------------------------


def commit_service(source: InMemorySource, i: int) -> None:
    """A new service: every CDS subscriber gets a push."""
    with source._lock:
        spec = ServiceSpec(name=f"svc{i}", url="http://127.0.0.1:1")
        source.decl = replace(
            source.decl,
            revision=source.decl.revision + 1,
            services=source.decl.services | {spec.name: spec},
        )
        revision = source.decl.revision
    for callback in list(source._subscribers):
        callback(Commit(revision))


async def test_nack_logs_are_limited_per_stream_and_truncated(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="turnout.xds.server")
    message = "bad cluster " + "x" * 100_000
    async with Server() as ads:
        requests = Requests()
        call = ads.stub.StreamAggregatedResources(requests)
        requests.send(DiscoveryRequest(node=node(), type_url=CLUSTER_TYPE))
        for i in range(20):
            response = await asyncio.wait_for(call.read(), 5)
            requests.send(
                DiscoveryRequest(
                    type_url=CLUSTER_TYPE,
                    response_nonce=response.nonce,
                    error_detail=Status(code=13, message=message),
                )
            )
            await until(lambda: ads.registry.proxies()[0].types[0].state == "NACKED", 5, "the NACK")
            await asyncio.to_thread(commit_service, ads.source, i)
        call.cancel()
    lines = [r.getMessage() for r in caplog.records if "rejected" in r.getMessage()]
    assert 1 <= len(lines) <= 4, len(lines)  # nack.NackLog: 3 per 10 s, then a summary
    assert all(len(line) < 1_500 for line in lines)  # nack_text: at most 1 KiB of message
    assert "chars)" in lines[0]

"""The ADS servicer against a fake `ConfigWatcher`: no cache, no gRPC server. The fake
publishes snapshots by hand; a fake context records what the servicer writes."""

import asyncio
import time
from collections.abc import AsyncIterator, Callable

import grpc
import pytest
from envoy.config.cluster.v3.cluster_pb2 import Cluster
from envoy.config.core.v3.base_pb2 import Node
from envoy.service.discovery.v3.discovery_pb2 import DiscoveryRequest, DiscoveryResponse

from turnout.xds.proxy_registry import ProxyRegistry
from turnout.xds.server import AggregatedDiscoveryService
from turnout.xds.snapshot import CLUSTER_TYPE, Snapshot, build_snapshot, pack
from turnout.xds.translate import NodeGroup


class FakeWatcher:
    """A `ConfigWatcher` whose snapshots the test publishes."""

    def __init__(self) -> None:
        self.snapshots: dict[NodeGroup, Snapshot] = {}
        self.joined: list[NodeGroup] = []
        self.wakes: set[asyncio.Event] = set()

    def publish(self, key: NodeGroup, snapshot: Snapshot) -> None:
        self.snapshots[key] = snapshot
        for wake in self.wakes:
            wake.set()

    def join(self, key: NodeGroup, identity: str | None = None) -> None:
        self.joined.append(key)

    def leave(self, key: NodeGroup, identity: str | None = None) -> None:
        self.joined.remove(key)

    def watch(self, wake: asyncio.Event) -> Callable[[], None]:
        self.wakes.add(wake)
        return lambda: self.wakes.discard(wake)

    def snapshot(self, key: NodeGroup) -> Snapshot | None:
        return self.snapshots.get(key)

    def commit_time(self, revision: int) -> float | None:
        return None


class RecordingContext:
    """The little of grpc.aio.ServicerContext the servicer uses; keeps what it wrote."""

    def __init__(self) -> None:
        self.written: asyncio.Queue[DiscoveryResponse] = asyncio.Queue()
        self.aborted: tuple[grpc.StatusCode, str] | None = None

    def auth_context(self) -> dict[str, list[bytes]]:
        return {}

    def peer(self) -> str:
        return "ipv4:127.0.0.1:1"

    async def write(self, message: DiscoveryResponse) -> None:
        self.written.put_nowait(message)

    async def abort(self, code: grpc.StatusCode, details: str) -> None:
        # grpc.aio's abort ends the handler by raising; so does this one.
        self.aborted = (code, details)
        raise Aborted(code, details)


class Aborted(Exception):
    """What `RecordingContext.abort` raises, as grpc.aio raises `AbortError`."""


class Stream:
    """A request stream the test feeds; `close()` is the client's half-close."""

    def __init__(self) -> None:
        self.requests: asyncio.Queue[DiscoveryRequest | None] = asyncio.Queue()

    def send(self, request: DiscoveryRequest) -> None:
        self.requests.put_nowait(request)

    def close(self) -> None:
        self.requests.put_nowait(None)

    async def __aiter__(self) -> AsyncIterator[DiscoveryRequest]:
        while (request := await self.requests.get()) is not None:
            yield request


async def until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 5
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.005)


def clusters(revision: int, *names: str, previous: Snapshot | None = None) -> Snapshot:
    packed = {CLUSTER_TYPE: [pack(Cluster(name=n)) for n in names]}
    return build_snapshot(revision, packed, frozenset(), {}, previous)


async def test_the_servicer_sends_what_the_watcher_publishes_and_leaves_on_close() -> None:
    watcher = FakeWatcher()
    context = RecordingContext()
    requests: asyncio.Queue[DiscoveryRequest | None] = asyncio.Queue()

    async def stream() -> AsyncIterator[DiscoveryRequest]:
        while (request := await requests.get()) is not None:
            yield request

    servicer = AggregatedDiscoveryService(watcher, ProxyRegistry())
    handler = asyncio.create_task(servicer.StreamAggregatedResources(stream(), context))  # type: ignore[arg-type]
    requests.put_nowait(DiscoveryRequest(node=Node(id="p", cluster="edge"), type_url=CLUSTER_TYPE))
    try:
        # Nothing is published for the group yet: the stream waits, writing nothing.
        async with asyncio.timeout(5):
            while not watcher.wakes:
                await asyncio.sleep(0.005)
        (key,) = watcher.joined
        assert key.group == "edge"
        assert context.written.empty()

        first = clusters(1, "a")
        watcher.publish(key, first)
        response = await asyncio.wait_for(context.written.get(), 5)
        assert (response.type_url, response.version_info) == (CLUSTER_TYPE, "1")
        assert len(response.resources) == 1
        requests.put_nowait(
            DiscoveryRequest(type_url=CLUSTER_TYPE, version_info="1", response_nonce=response.nonce)
        )

        watcher.publish(key, clusters(2, "a", "b", previous=first))
        response = await asyncio.wait_for(context.written.get(), 5)
        assert response.version_info == "2"
        assert len(response.resources) == 2

        requests.put_nowait(None)  # the client half-closes
        await asyncio.wait_for(handler, 5)
        assert watcher.joined == [] and watcher.wakes == set()
    finally:
        handler.cancel()


async def test_a_protocol_error_closes_the_stream_invalid_argument_and_undoes_every_step() -> None:
    watcher = FakeWatcher()
    context = RecordingContext()
    stream = Stream()
    registry = ProxyRegistry()
    servicer = AggregatedDiscoveryService(watcher, registry)
    handler = asyncio.create_task(
        servicer.StreamAggregatedResources(stream.__aiter__(), context)  # type: ignore[arg-type]
    )
    stream.send(DiscoveryRequest(node=Node(id="p", cluster="edge"), type_url=CLUSTER_TYPE))
    try:
        await until(lambda: bool(watcher.wakes), "the stream watches")
        assert len(registry.proxies()) == 1
        stream.send(DiscoveryRequest(type_url="type.googleapis.com/not.a.Type"))
        with pytest.raises(Aborted):
            await asyncio.wait_for(handler, 5)
        assert context.aborted is not None
        code, details = context.aborted
        assert code is grpc.StatusCode.INVALID_ARGUMENT and "not.a.Type" in details
        assert watcher.joined == [] and watcher.wakes == set()
        assert registry.proxies() == []
    finally:
        handler.cancel()


async def test_a_nacked_response_is_not_sent_again_until_the_watcher_publishes_a_change() -> None:
    watcher = FakeWatcher()
    context = RecordingContext()
    stream = Stream()
    registry = ProxyRegistry()
    servicer = AggregatedDiscoveryService(watcher, registry)
    handler = asyncio.create_task(
        servicer.StreamAggregatedResources(stream.__aiter__(), context)  # type: ignore[arg-type]
    )
    stream.send(DiscoveryRequest(node=Node(id="p", cluster="edge"), type_url=CLUSTER_TYPE))
    try:
        await until(lambda: bool(watcher.joined), "the stream joins")
        (key,) = watcher.joined
        first = clusters(1, "a")
        watcher.publish(key, first)
        response = await asyncio.wait_for(context.written.get(), 5)
        stream.send(
            DiscoveryRequest(type_url=CLUSTER_TYPE, version_info="1", response_nonce=response.nonce)
        )
        rejected = clusters(2, "a", "b", previous=first)
        watcher.publish(key, rejected)
        response = await asyncio.wait_for(context.written.get(), 5)
        assert response.version_info == "2"
        nack = DiscoveryRequest(
            type_url=CLUSTER_TYPE, version_info="1", response_nonce=response.nonce
        )
        nack.error_detail.message = "Error adding/updating cluster(s) b: bad"
        stream.send(nack)
        await until(lambda: registry.proxies()[0].types[0].state == "NACKED", "the NACK")
        # Woken again with the same content: the stream looks (it clears its wake
        # and decides in one step) and writes nothing.
        for _ in range(2):
            watcher.publish(key, rejected)
            await until(lambda: not any(w.is_set() for w in watcher.wakes), "the wake seen")
            assert context.written.empty()
        watcher.publish(key, clusters(3, "a", "c", previous=rejected))
        response = await asyncio.wait_for(context.written.get(), 5)
        assert response.version_info == "3"
        assert context.written.empty()
        stream.close()
        await asyncio.wait_for(handler, 5)
    finally:
        handler.cancel()

"""The ADS servicer against a fake `ConfigWatcher`: no cache, no gRPC server. The fake
publishes snapshots by hand; a fake context records what the servicer writes."""

import asyncio
from collections.abc import AsyncIterator, Callable

import grpc
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

    def auth_context(self) -> dict[str, list[bytes]]:
        return {}

    def peer(self) -> str:
        return "ipv4:127.0.0.1:1"

    async def write(self, message: DiscoveryResponse) -> None:
        self.written.put_nowait(message)

    async def abort(self, code: grpc.StatusCode, details: str) -> None:
        raise AssertionError(f"aborted: {code} {details}")


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

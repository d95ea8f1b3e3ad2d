"""Load reports count only from a proxy that holds a live ADS stream, for its own
clusters: real gRPC (plaintext and mTLS) against an in-process ADS + LRS server."""

import asyncio
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest
from envoy.config.core.v3.base_pb2 import Node
from envoy.config.endpoint.v3.load_report_pb2 import ClusterStats, UpstreamLocalityStats
from envoy.service.discovery.v3 import ads_pb2_grpc
from envoy.service.discovery.v3.discovery_pb2 import DiscoveryRequest
from envoy.service.load_stats.v3 import lrs_pb2_grpc
from envoy.service.load_stats.v3.lrs_pb2 import LoadStatsRequest
from prometheus_client import REGISTRY

from tests.xds.test_cache import InMemorySource, revision_other_than
from tests.xds.test_server import Requests
from tests.xds.test_server_bounds import closed_with, until
from turnout import certs
from turnout.xds.cache import SnapshotCache
from turnout.xds.identity import AllowList, cert_names
from turnout.xds.lrs import LoadStats
from turnout.xds.proxy_registry import ProxyRegistry
from turnout.xds.server import start_server, tls_credentials
from turnout.xds.snapshot import CLUSTER_TYPE

EPOCH = datetime.now(UTC) - timedelta(minutes=1)
LRS_WAIT = 0.5


class Server:
    """ADS + LRS in process; `channel()` opens a client channel (TLS with `client`)."""

    def __init__(self, tls_dir: Path | None = None, allow: AllowList | None = None) -> None:
        self.source = InMemorySource()  # one service, "s"
        self.cache = SnapshotCache()
        self.registry = ProxyRegistry()
        self.stats = LoadStats()
        self.tls_dir = tls_dir
        self.allow = allow
        self.channels: list[grpc.aio.Channel] = []

    async def __aenter__(self) -> "Server":
        self.runner = asyncio.create_task(self.cache.run(self.source, self.source))
        await revision_other_than(self.cache, None)
        kwargs: dict[str, Any] = {}
        if self.tls_dir is not None:
            d = self.tls_dir
            kwargs["credentials"] = tls_credentials(
                d / "server.pem", d / "server.key", d / "ca.pem"
            )
        if self.allow is not None:
            allow = self.allow
            kwargs["authorize"] = lambda ctx, nid, ncl: allow.check(cert_names(ctx), nid, ncl)
        self.server, self.port = await start_server(
            self.cache,
            self.registry,
            "127.0.0.1:0",
            self.stats,
            lrs_wait_seconds=LRS_WAIT,
            **kwargs,
        )
        return self

    def channel(self, client: str | None = None) -> grpc.aio.Channel:
        address = f"127.0.0.1:{self.port}"
        if self.tls_dir is None:
            channel = grpc.aio.insecure_channel(address)
        else:
            d = self.tls_dir
            creds = grpc.ssl_channel_credentials(
                (d / "ca.pem").read_bytes(),
                (d / f"{client}.key").read_bytes(),
                (d / f"{client}.pem").read_bytes(),
            )
            channel = grpc.aio.secure_channel(address, creds)
        self.channels.append(channel)
        return channel

    async def __aexit__(self, *exc: object) -> None:
        for channel in self.channels:
            await channel.close()
        await self.server.stop(0)
        self.runner.cancel()


async def ads_stream(channel: grpc.aio.Channel, node: Node) -> tuple[Any, Requests]:
    """An ADS stream that has received its clusters (so its snapshot is known)."""
    requests = Requests()
    call = ads_pb2_grpc.AggregatedDiscoveryServiceStub(channel).StreamAggregatedResources(requests)
    requests.send(DiscoveryRequest(node=node, type_url=CLUSTER_TYPE))
    await asyncio.wait_for(call.read(), 5)
    return call, requests


def report(node: Node | None, **errors: int) -> LoadStatsRequest:
    stats = [
        ClusterStats(
            cluster_name=name,
            upstream_locality_stats=[UpstreamLocalityStats(total_error_requests=count)],
        )
        for name, count in errors.items()
    ]
    return LoadStatsRequest(node=node, cluster_stats=stats)


def lrs_stream(channel: grpc.aio.Channel) -> tuple[Any, Requests]:
    requests = Requests()
    call = lrs_pb2_grpc.LoadReportingServiceStub(channel).StreamLoadStats(requests)
    return call, requests


def errors(server: Server, cluster: str) -> int:
    return server.stats.window(cluster, EPOCH).errors


def refused(reason: str) -> float:
    return REGISTRY.get_sample_value("turnout_lrs_refused_total", {"reason": reason}) or 0.0


PROXY = Node(id="proxy-1", cluster="default")


async def test_a_node_without_an_ads_stream_cannot_report_load() -> None:
    async with Server() as srv:
        call, requests = lrs_stream(srv.channel())
        requests.send(report(Node(id="forged", cluster="default"), s=5000))
        failed = await closed_with(call)
        assert failed.code() is grpc.StatusCode.PERMISSION_DENIED
        assert "'forged'" in (failed.details() or "")
        assert "holds no ADS stream" in (failed.details() or "")
        assert errors(srv, "s") == 0


async def test_a_connected_node_reports_for_its_own_clusters_only() -> None:
    async with Server() as srv:
        ads, _ = await ads_stream(srv.channel(), PROXY)
        call, requests = lrs_stream(srv.channel())
        requests.send(report(PROXY, s=5, ghost=7))
        first = await asyncio.wait_for(call.read(), 5)
        assert first.send_all_clusters
        await until(lambda: errors(srv, "s") == 5, 5, "the report for s to count")
        assert errors(srv, "ghost") == 0  # not a cluster of this node's snapshot
        ads.cancel()
        call.cancel()


async def test_a_report_claiming_another_node_cluster_is_refused() -> None:
    async with Server() as srv:
        ads, _ = await ads_stream(srv.channel(), PROXY)
        call, requests = lrs_stream(srv.channel())
        requests.send(report(Node(id="proxy-1", cluster="billing"), s=50))
        failed = await closed_with(call)
        assert failed.code() is grpc.StatusCode.PERMISSION_DENIED
        assert errors(srv, "s") == 0
        ads.cancel()


async def test_reports_lose_their_authority_when_the_ads_stream_closes() -> None:
    async with Server() as srv:
        ads, _ = await ads_stream(srv.channel(), PROXY)
        call, requests = lrs_stream(srv.channel())
        requests.send(report(PROXY, s=1))
        await until(lambda: errors(srv, "s") == 1, 5, "the first report to count")
        ads.cancel()
        await until(lambda: len(srv.registry) == 0, 5, "the ADS stream to close")
        requests.send(report(None, s=5000))
        failed = await closed_with(call)
        assert failed.code() is grpc.StatusCode.PERMISSION_DENIED
        assert "no longer holds an ADS stream" in (failed.details() or "")
        assert errors(srv, "s") == 1


async def test_an_lrs_stream_may_open_before_its_ads_stream() -> None:
    async with Server() as srv:
        call, requests = lrs_stream(srv.channel())
        requests.send(report(PROXY))
        ads, _ = await ads_stream(srv.channel(), PROXY)  # within LRS_WAIT
        await asyncio.wait_for(call.read(), 5)
        requests.send(report(None, s=3))
        await until(lambda: errors(srv, "s") == 3, 5, "the report to count")
        ads.cancel()
        call.cancel()


async def test_too_many_clusters_in_one_report_close_the_stream() -> None:
    from turnout.xds.lrs import MAX_CLUSTERS_PER_REPORT

    async with Server() as srv:
        ads, _ = await ads_stream(srv.channel(), PROXY)
        call, requests = lrs_stream(srv.channel())
        names = {f"c{i}": 1 for i in range(MAX_CLUSTERS_PER_REPORT + 1)}
        requests.send(report(PROXY, **names))
        failed = await closed_with(call)
        assert failed.code() is grpc.StatusCode.INVALID_ARGUMENT
        assert "cluster_stats" in (failed.details() or "")
        ads.cancel()


async def test_a_report_flood_closes_the_stream() -> None:
    async with Server() as srv:
        ads, _ = await ads_stream(srv.channel(), PROXY)
        before = refused("resource_exhausted")
        call = lrs_pb2_grpc.LoadReportingServiceStub(srv.channel()).StreamLoadStats()
        sent = 0
        try:
            for i in range(200):
                await call.write(report(PROXY if i == 0 else None, s=1))
                sent += 1
        except (grpc.aio.AioRpcError, asyncio.InvalidStateError):
            pass  # the server closed the stream while the client was still writing
        # The client may see its own failed write (INTERNAL) rather than the status the
        # server closed with; the server's count of refusals says which it was.
        assert await asyncio.wait_for(call.code(), 5) is not grpc.StatusCode.OK
        assert refused("resource_exhausted") == before + 1
        assert errors(srv, "s") < 20
        ads.cancel()


@pytest.fixture(scope="module")
def tls_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("certs")
    certs.init(directory, ["envoy-1", "envoy-2"], ["localhost"], ["127.0.0.1"])
    return directory


ANY_NODE = AllowList.parse([{"names": ["*"]}])
SAME_NAME = AllowList.parse([{"names": ["*"], "node_ids": ["{name}"]}])


async def test_under_mtls_a_report_needs_the_certificate_of_the_ads_stream(
    tls_dir: Path,
) -> None:
    """Even an allow-list that lets any certificate claim any node does not let
    envoy-2's certificate report for envoy-1's ADS stream."""
    node = Node(id="envoy-1", cluster="default")
    async with Server(tls_dir, ANY_NODE) as srv:
        ads, _ = await ads_stream(srv.channel("envoy-1"), node)
        call, requests = lrs_stream(srv.channel("envoy-2"))
        requests.send(report(node, s=5000))
        failed = await closed_with(call)
        assert failed.code() is grpc.StatusCode.PERMISSION_DENIED
        assert "with this certificate" in (failed.details() or "")
        assert errors(srv, "s") == 0
        # The proxy's own certificate may.
        own, own_requests = lrs_stream(srv.channel("envoy-1"))
        own_requests.send(report(node, s=2))
        await until(lambda: errors(srv, "s") == 2, 5, "the proxy's own report to count")
        ads.cancel()
        own.cancel()


async def test_under_mtls_reports_are_checked_against_the_allow_list(tls_dir: Path) -> None:
    async with Server(tls_dir, SAME_NAME) as srv:
        call, requests = lrs_stream(srv.channel("envoy-2"))
        requests.send(report(Node(id="envoy-1", cluster="default"), s=5000))
        failed = await closed_with(call)
        assert failed.code() is grpc.StatusCode.PERMISSION_DENIED
        assert "may not claim node 'envoy-1'" in (failed.details() or "")
        assert errors(srv, "s") == 0


async def test_under_mtls_one_certificate_holds_a_bounded_number_of_groups(
    tls_dir: Path,
) -> None:
    from turnout.xds.cache import MAX_GROUPS_PER_IDENTITY

    async with Server(tls_dir, ANY_NODE) as srv:
        channel = srv.channel("envoy-1")
        held = [
            await ads_stream(channel, Node(id="envoy-1", cluster=f"g{i}"))
            for i in range(MAX_GROUPS_PER_IDENTITY)
        ]
        requests = Requests()
        stub = ads_pb2_grpc.AggregatedDiscoveryServiceStub(channel)
        call = stub.StreamAggregatedResources(requests)
        requests.send(
            DiscoveryRequest(node=Node(id="envoy-1", cluster="one-more"), type_url=CLUSTER_TYPE)
        )
        failed = await closed_with(call)
        assert failed.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "client certificate" in (failed.details() or "")
        # Another certificate is not held back by envoy-1's groups.
        other, _ = await ads_stream(srv.channel("envoy-2"), Node(id="envoy-2", cluster="x"))
        for c, _r in held:
            c.cancel()
        other.cancel()
        await until(lambda: len(srv.registry) == 0, 5, "every stream to close")


async def test_a_node_connected_to_another_replica_may_report_until_it_leaves() -> None:
    """With replicas, Envoy's LRS stream may reach another replica than its ADS stream:
    the published proxy status vouches for it, rechecked while the stream lives."""
    from turnout.xds.authority import LiveNodes, NodeIdentity

    connected = {("proxy-1", "default")}
    live = LiveNodes(
        lambda nid, ncl: (nid, ncl) in connected,
        lambda: frozenset({"s"}),
        recheck_seconds=0.05,
    )
    identity = NodeIdentity("proxy-1", "default", None)
    checked: dict[str, float] = {}
    assert await live.wait_authority(identity, 1)
    assert await live.authority(identity, checked) == {"s"}
    assert not await live.wait_authority(NodeIdentity("forged", "default", None), 0.2)
    connected.clear()  # its ADS stream on the other replica closed
    await until(lambda: "elsewhere" not in checked or _expired(checked), 2, "a recheck due")
    assert await live.authority(identity, checked) is None


def _expired(checked: dict[str, float]) -> bool:
    return time.monotonic() - checked["elsewhere"] > 0.05

"""Hostile xDS and LRS clients against a real `turnout serve`, then a real Envoy.

While unknown types, name floods, NACK floods, thousands of churning streams in
distinct node groups and forged load reports hit the server, `/healthz` (the admin
API, on the same event loop as ADS) is polled and must answer within HEALTHZ_DEADLINE
every time; the server's RSS (from /proc) must grow less than RSS_LIMIT_MIB; the
connected-proxies gauge must come back to the true count; and a real Envoy must
converge and serve traffic afterwards.
"""

import asyncio
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from envoy.config.core.v3.base_pb2 import Node
from envoy.config.endpoint.v3.load_report_pb2 import ClusterStats, UpstreamLocalityStats
from envoy.service.discovery.v3 import ads_pb2_grpc
from envoy.service.discovery.v3.discovery_pb2 import DeltaDiscoveryRequest, DiscoveryRequest
from envoy.service.load_stats.v3 import lrs_pb2_grpc
from envoy.service.load_stats.v3.lrs_pb2 import LoadStatsRequest
from google.rpc.status_pb2 import Status

from turnout.testing.processes import AdminClient, EchoUpstream, wait_for, wait_status

CDS = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
EDS = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"
HEALTHZ_DEADLINE = 2.0
RSS_LIMIT_MIB = 64
CHURN = 2000


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmRSS for pid {pid}")


class Healthz:
    """Polls GET /healthz from a thread; keeps every latency (None: no answer)."""

    def __init__(self, admin_url: str) -> None:
        self.url = f"{admin_url}/healthz"
        self.latencies: list[float | None] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        with httpx.Client(timeout=HEALTHZ_DEADLINE) as client:
            while not self.stop.is_set():
                started = time.perf_counter()
                try:
                    ok = client.get(self.url).status_code == 200
                    self.latencies.append(time.perf_counter() - started if ok else None)
                except httpx.HTTPError:
                    self.latencies.append(None)
                self.stop.wait(0.02)

    def __enter__(self) -> "Healthz":
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(10)


def gauge(admin_url: str, name: str) -> float:
    text = httpx.get(f"{admin_url}/metrics", timeout=10).text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith((f"{name} ", f"{name}{{"))
    )


def refused(admin_url: str) -> float:
    text = httpx.get(f"{admin_url}/metrics", timeout=10).text
    line = 'turnout_xds_streams_refused_total{code="INVALID_ARGUMENT"}'
    return sum(float(x.rsplit(" ", 1)[1]) for x in text.splitlines() if x.startswith(line))


async def status_of(call: Any, timeout: float = 20) -> grpc.StatusCode:
    """Read `call` to its end; the status it ended with (a timeout fails the test)."""
    try:
        async with asyncio.timeout(timeout):
            async for _ in call:
                pass
    except grpc.aio.AioRpcError as exc:
        return exc.code()
    except TimeoutError:
        pytest.fail(f"the server did not close the stream within {timeout}s")
    return grpc.StatusCode.OK


async def unknown_types(stub: Any, streams: int) -> list[grpc.StatusCode]:
    async def one(i: int) -> grpc.StatusCode:
        async def requests() -> AsyncIterator[DiscoveryRequest]:
            yield DiscoveryRequest(node=Node(id=f"unknown-{i}"), type_url=CDS)
            for t in range(500):
                yield DiscoveryRequest(type_url=f"type.googleapis.com/bogus.T{t}")

        return await status_of(stub.StreamAggregatedResources(requests()))

    return await asyncio.gather(*(one(i) for i in range(streams)))


async def name_flood(stub: Any, streams: int) -> list[grpc.StatusCode]:
    async def one(i: int) -> grpc.StatusCode:
        async def requests() -> AsyncIterator[DeltaDiscoveryRequest]:
            for batch in range(40):
                yield DeltaDiscoveryRequest(
                    node=Node(id=f"flood-{i}") if batch == 0 else None,
                    type_url=EDS,
                    resource_names_subscribe=[f"{batch}-{uuid.uuid4().hex}" for _ in range(2000)],
                )

        return await status_of(stub.DeltaAggregatedResources(requests()))

    return await asyncio.gather(*(one(i) for i in range(streams)))


async def nack_flood(stub: Any, streams: int, admin: AdminClient, writes: int) -> int:
    """Streams that NACK every CDS push with a 64 KB message while services are added."""
    nacks = 0
    message = "rejected " + "x" * 65_536

    async def one(i: int) -> None:
        nonlocal nacks
        call = stub.StreamAggregatedResources()
        await call.write(DiscoveryRequest(node=Node(id=f"nack-{i}"), type_url=CDS))
        while (resp := await call.read()) is not grpc.aio.EOF:
            await call.write(
                DiscoveryRequest(
                    type_url=CDS,
                    response_nonce=resp.nonce,
                    error_detail=Status(code=13, message=message),
                )
            )
            nacks += 1

    tasks = [asyncio.create_task(one(i)) for i in range(streams)]
    try:
        async with asyncio.timeout(60):
            while nacks < streams:
                await asyncio.sleep(0.02)
            for w in range(writes):
                url = "http://127.0.0.1:9"
                await asyncio.to_thread(admin.create, "services", {"name": f"n{w}", "url": url})
                while nacks < streams * (w + 2):
                    await asyncio.sleep(0.02)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return nacks


async def churn(stub: Any, streams: int) -> dict[str, int]:
    outcomes: dict[str, int] = {}
    limit = asyncio.Semaphore(50)

    async def one(i: int) -> None:
        async with limit:
            call = stub.StreamAggregatedResources()
            await call.write(DiscoveryRequest(node=Node(id=f"c{i}", cluster=f"g{i}"), type_url=CDS))
            try:
                async with asyncio.timeout(20):
                    await call.read()
                outcome = "answered"
            except grpc.aio.AioRpcError as exc:
                outcome = exc.code().name
            call.cancel()
            outcomes[outcome] = outcomes.get(outcome, 0) + 1

    await asyncio.gather(*(one(i) for i in range(streams)))
    return outcomes


def forged_report(node_id: str, cluster: str, target: str) -> LoadStatsRequest:
    stats = ClusterStats(
        cluster_name=target,
        upstream_locality_stats=[
            UpstreamLocalityStats(total_successful_requests=0, total_error_requests=5000)
        ],
    )
    return LoadStatsRequest(node=Node(id=node_id, cluster=cluster), cluster_stats=[stats])


async def forge_load(address: str, node_id: str, cluster: str, target: str) -> grpc.StatusCode:
    async with grpc.aio.insecure_channel(address) as channel:
        stub = lrs_pb2_grpc.LoadReportingServiceStub(channel)

        async def requests() -> AsyncIterator[LoadStatsRequest]:
            for _ in range(3):
                yield forged_report(node_id, cluster, target)
                await asyncio.sleep(0.2)  # Envoy-like pacing; the server closes first

        return await status_of(stub.StreamLoadStats(requests()))


@pytest.fixture
def upstream() -> Iterator[EchoUpstream]:
    server = EchoUpstream("blue").start()
    yield server
    server.stop()


def test_hostile_clients_leave_the_server_responsive_bounded_and_serving(
    turnout: Any, admin: AdminClient, start_envoy: Any, upstream: EchoUpstream
) -> None:
    admin.create("services", {"name": "blue", "url": upstream.url})
    admin.create("routes", {"name": "api", "paths": ["/"], "service": "blue"})
    pid = turnout.proc.pid
    log: Path = turnout.log_path
    rss_before = rss_mib(pid)
    log_before = log.stat().st_size
    refused_before = refused(turnout.admin_url)

    async def attacks() -> dict[str, Any]:
        options = [("grpc.max_send_message_length", 64 * 2**20)]
        async with grpc.aio.insecure_channel(turnout.xds_address, options=options) as channel:
            stub = ads_pb2_grpc.AggregatedDiscoveryServiceStub(channel)
            started = time.monotonic()
            out = {
                "unknown": await unknown_types(stub, 100),
                "flood": await name_flood(stub, 10),
                "nacks": await nack_flood(stub, 30, admin, 5),
                "forged": await forge_load(turnout.xds_address, "forged", "default", "blue"),
            }
            churn_started = time.monotonic()
            out["churn"] = await churn(stub, CHURN)
            out["churn_seconds"] = time.monotonic() - churn_started
            out["seconds"] = time.monotonic() - started
            return out

    with Healthz(turnout.admin_url) as health:
        results = asyncio.run(attacks())
        wait_for(
            lambda: gauge(turnout.admin_url, "turnout_connected_proxies") == 0,
            20,
            "the connected-proxies gauge to come back to 0 (no stream open)",
        )
    rss_growth = rss_mib(pid) - rss_before
    refused_after = refused(turnout.admin_url)

    # Each was closed by the server with INVALID_ARGUMENT. A client still writing when
    # that happens may see its own failed write (INTERNAL) instead, so the server's
    # count of refused streams says what it did.
    assert grpc.StatusCode.OK not in results["unknown"] + results["flood"]
    assert refused_after - refused_before == 100 + 10
    assert results["nacks"] == 30 * 6
    assert results["forged"] is grpc.StatusCode.PERMISSION_DENIED
    # Idle groups make room for new ones: every churning proxy is answered, and at
    # most the cap of groups stays translated.
    assert results["churn"] == {"answered": CHURN}
    assert results["churn_seconds"] < 90
    assert gauge(turnout.admin_url, "turnout_xds_node_groups") <= 256
    # NACK logging: a handful of truncated lines per stream, not 180 x 64 KB.
    assert log.stat().st_size - log_before < 2 * 2**20
    assert rss_growth < RSS_LIMIT_MIB, f"RSS grew {rss_growth:.0f} MiB"
    answered = [t for t in health.latencies if t is not None]
    assert len(health.latencies) >= 20 and len(answered) == len(health.latencies), (
        f"/healthz unanswered {len(health.latencies) - len(answered)} times"
    )
    assert max(answered) < HEALTHZ_DEADLINE

    # A real Envoy still converges and serves.
    envoy = start_envoy("envoy-1")
    admin.wait_synced("envoy-1", admin.revision(), timeout=30)
    with httpx.Client(timeout=5) as http:
        assert wait_status(http, f"{envoy.url}/x", 200).json()["service"] == "blue"
    assert gauge(turnout.admin_url, "turnout_connected_proxies") == 1


def test_forged_load_reports_do_not_roll_back_a_plan(
    turnout: Any, admin: AdminClient, start_envoy: Any
) -> None:
    """Issue 10 item 4: a client with no ADS stream reported 5,000 errors for a plan's
    target as node "forged", and the controller rolled the plan back."""
    blue, green = EchoUpstream("blue").start(), EchoUpstream("green").start()
    try:
        admin.create("services", {"name": "blue", "url": blue.url})
        admin.create("services", {"name": "green", "url": green.url})
        admin.create("routes", {"name": "api", "paths": ["/api"], "service": "blue"})
        plan = {
            "target": "green",
            "baseline": "blue",
            "steps": [10, 100],
            "hold_seconds": 600,
            "criteria": {"max_error_rate": 0.05, "min_requests": 5},
        }
        targets = [{"service": "blue", "weight": 1}, {"service": "green", "weight": 0}]
        split = {"name": "move", "route": "api", "targets": targets, "plan": plan}
        admin.create("splits", split)
        envoy = start_envoy("envoy-1")
        admin.wait_synced("envoy-1", admin.revision(), timeout=30)
        admin.write("POST", "/splits/move/advance")
        wait_for(lambda: _plan(admin)["plan_state"]["status"] == "running", 30, "the 10% step")
        address = turnout.xds_address
        # No ADS stream at all; a real node's id with another node cluster.
        assert asyncio.run(forge_load(address, "forged", "default", "green")) is (
            grpc.StatusCode.PERMISSION_DENIED
        )
        assert asyncio.run(forge_load(address, envoy.node_id, "elsewhere", "green")) is (
            grpc.StatusCode.PERMISSION_DENIED
        )
        state = _plan(admin)
        assert state["plan_state"]["status"] == "running", state["plan_state"]
        assert state["plan_status"]["observed"]["green"]["errors"] == 0
    finally:
        blue.stop()
        green.stop()


def _plan(admin: AdminClient) -> dict[str, Any]:
    return dict(admin.http.get("/splits/move").json())

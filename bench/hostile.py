"""Hostile xDS and LRS clients against one `turnout serve`: what each attack costs.

For each attack, measured on the server process (pid of `turnout serve`):
- CPU seconds it spent (utime + stime from /proc/<pid>/stat) during the attack;
- RSS growth (VmRSS after minus before, MiB);
- `/healthz` latency p99 and max, polled every 20 ms from a thread during the attack
  (the admin API shares the event loop with ADS, so a pinned loop shows here);
- what the server did with the attack (stream closed with which status, or not).

Attacks (volumes are flags):
- unknown-types: one SotW stream sends --unknown requests, each with a new type URL;
- name-flood: one Delta stream subscribes --flood-names new EDS names per request,
  --flood-requests times;
- nack-flood: --nack-streams streams NACK every response with a --nack-bytes message,
  while --nack-writes admin writes each cause one push; also the log bytes written;
- churn: --churn streams, each with its own node.cluster, open, get CDS and close
  (--churn-concurrency at once); then the turnout_connected_proxies gauge against the
  true count (1 watcher), and write→served (one admin write until the watcher's CDS
  response carries it);
- lrs-forged: one LRS stream as node "forged" with no ADS stream sends --lrs-reports
  reports of --lrs-clusters made-up clusters with 5 errors each.

    .venv/bin/python bench/hostile.py            # starts its own turnout serve (SQLite)
"""

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine
from pathlib import Path
from typing import Any

import grpc
import httpx
from envoy.config.core.v3.base_pb2 import Node
from envoy.config.endpoint.v3.load_report_pb2 import ClusterStats, UpstreamLocalityStats
from envoy.service.discovery.v3 import ads_pb2_grpc
from envoy.service.discovery.v3.discovery_pb2 import DeltaDiscoveryRequest, DiscoveryRequest
from envoy.service.load_stats.v3 import lrs_pb2_grpc
from envoy.service.load_stats.v3.lrs_pb2 import LoadStatsRequest
from google.rpc.status_pb2 import Status
from results_io import RESULTS, percentile, write_results

from turnout.testing.processes import AdminClient, TurnoutProcess

PREFIX = "type.googleapis.com/"
CDS = PREFIX + "envoy.config.cluster.v3.Cluster"
EDS = PREFIX + "envoy.config.endpoint.v3.ClusterLoadAssignment"
TOKEN = "bench-hostile-token"


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class HealthPoller:
    """GET /healthz every 20 ms on a thread; latencies in ms (a timeout counts as 10 s)."""

    def __init__(self, admin_url: str) -> None:
        self.url = f"{admin_url}/healthz"
        self.latencies: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> "HealthPoller":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(15)

    def _run(self) -> None:
        with httpx.Client(timeout=10) as client:
            while not self._stop.is_set():
                started = time.perf_counter()
                try:
                    client.get(self.url)
                    self.latencies.append((time.perf_counter() - started) * 1000)
                except httpx.HTTPError:
                    self.latencies.append(10_000.0)
                self._stop.wait(0.02)


def node(node_id: str, cluster: str = "default") -> Node:
    return Node(id=node_id, cluster=cluster)


async def finish(call: Any) -> str:
    """Read a call to its end; its final status."""
    try:
        async for _ in call:
            pass
    except grpc.aio.AioRpcError as exc:
        return f"{exc.code().name}: {(exc.details() or '')[:80]}"
    return "OK"


# --- attacks ---------------------------------------------------------------------------


async def unknown_types(channel: grpc.aio.Channel, args: argparse.Namespace) -> dict[str, Any]:
    stub = ads_pb2_grpc.AggregatedDiscoveryServiceStub(channel)

    async def requests() -> AsyncIterator[DiscoveryRequest]:
        for i in range(args.unknown):
            yield DiscoveryRequest(
                node=node("bench-unknown") if i == 0 else None, type_url=f"{PREFIX}bogus.T{i}"
            )

    return {"status": await finish(stub.StreamAggregatedResources(requests()))}


async def name_flood(channel: grpc.aio.Channel, args: argparse.Namespace) -> dict[str, Any]:
    stub = ads_pb2_grpc.AggregatedDiscoveryServiceStub(channel)

    async def requests() -> AsyncIterator[DeltaDiscoveryRequest]:
        for i in range(args.flood_requests):
            names = [f"n{i}-{j}-{uuid.uuid4().hex[:8]}" for j in range(args.flood_names)]
            yield DeltaDiscoveryRequest(
                node=node("bench-flood") if i == 0 else None,
                type_url=EDS,
                resource_names_subscribe=names,
            )

    call = stub.DeltaAggregatedResources(requests())
    return {"status": await finish(call)}


async def nack_flood(
    channel: grpc.aio.Channel, args: argparse.Namespace, admin: AdminClient, log: Path
) -> dict[str, Any]:
    stub = ads_pb2_grpc.AggregatedDiscoveryServiceStub(channel)
    message = "x" * args.nack_bytes
    nacks = 0
    log_before = log.stat().st_size

    async def one(i: int) -> None:
        nonlocal nacks
        call = stub.StreamAggregatedResources()
        await call.write(DiscoveryRequest(node=node(f"bench-nack-{i}"), type_url=CDS))
        try:
            while (resp := await call.read()) is not grpc.aio.EOF:
                await call.write(
                    DiscoveryRequest(
                        type_url=resp.type_url,
                        response_nonce=resp.nonce,
                        error_detail=Status(code=13, message=message),
                    )
                )
                nacks += 1
        except (grpc.aio.AioRpcError, asyncio.CancelledError):
            pass

    tasks = [asyncio.create_task(one(i)) for i in range(args.nack_streams)]
    await asyncio.sleep(0)
    for w in range(args.nack_writes):
        await asyncio.to_thread(
            admin.create, "services", {"name": f"nack-{w}", "url": "http://127.0.0.1:9"}
        )
    # Writes coalesce into fewer pushes: wait until no NACK came for a second.
    deadline = time.monotonic() + 30
    seen, quiet_since = -1, time.monotonic()
    while time.monotonic() < deadline and time.monotonic() - quiet_since < 1.0:
        if nacks != seen:
            seen, quiet_since = nacks, time.monotonic()
        await asyncio.sleep(0.05)
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return {"nacks_sent": nacks, "log_mib": round((log.stat().st_size - log_before) / 2**20, 1)}


async def churn(
    channel: grpc.aio.Channel, args: argparse.Namespace, admin: AdminClient, admin_url: str
) -> dict[str, Any]:
    stub = ads_pb2_grpc.AggregatedDiscoveryServiceStub(channel)
    statuses: dict[str, int] = {}
    limit = asyncio.Semaphore(args.churn_concurrency)

    async def one(i: int) -> None:
        async with limit:
            call = stub.StreamAggregatedResources()
            try:
                await call.write(
                    DiscoveryRequest(node=node(f"churn-{i}", f"churn-group-{i}"), type_url=CDS)
                )
                await asyncio.wait_for(call.read(), 30)
                status = "answered"
            except grpc.aio.AioRpcError as exc:
                status = exc.code().name
            except TimeoutError:
                status = "no answer in 30 s"
            call.cancel()
            statuses[status] = statuses.get(status, 0) + 1

    await asyncio.gather(*(one(i) for i in range(args.churn)))
    # One watcher in the default group: how long one write takes to reach it now.
    watcher = stub.StreamAggregatedResources()
    await watcher.write(DiscoveryRequest(node=node("churn-watcher"), type_url=CDS))
    first = await watcher.read()
    await watcher.write(
        DiscoveryRequest(type_url=CDS, version_info=first.version_info, response_nonce=first.nonce)
    )
    name = f"churn-probe-{uuid.uuid4().hex[:6]}"
    await asyncio.to_thread(admin.create, "services", {"name": name, "url": "http://127.0.0.1:9"})
    written = time.perf_counter()
    while True:
        resp = await asyncio.wait_for(watcher.read(), 30)
        if any(name.encode() in r.value for r in resp.resources):
            break
    served_ms = (time.perf_counter() - written) * 1000
    gauge = await asyncio.to_thread(connected_gauge, admin_url)
    watcher.cancel()
    return {"streams": statuses, "write_to_served_ms": round(served_ms, 1), "gauge_vs_1": gauge}


def connected_gauge(admin_url: str) -> float:
    text = httpx.get(f"{admin_url}/metrics", timeout=10).text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("turnout_connected_proxies{")
    )


async def lrs_forged(channel: grpc.aio.Channel, args: argparse.Namespace) -> dict[str, Any]:
    stub = lrs_pb2_grpc.LoadReportingServiceStub(channel)

    async def requests() -> AsyncIterator[LoadStatsRequest]:
        for i in range(args.lrs_reports):
            stats = [
                ClusterStats(
                    cluster_name=f"forged-{i}-{j}",
                    upstream_locality_stats=[UpstreamLocalityStats(total_error_requests=5)],
                )
                for j in range(args.lrs_clusters)
            ]
            yield LoadStatsRequest(node=node("forged") if i == 0 else None, cluster_stats=stats)

    call = stub.StreamLoadStats(requests())
    return {"status": await finish(call)}


# --- the run ---------------------------------------------------------------------------


async def measure(
    pid: int, admin_url: str, attack: Callable[[], Coroutine[Any, Any, dict[str, Any]]]
) -> dict[str, Any]:
    cpu, rss = cpu_seconds(pid), rss_mib(pid)
    started = time.perf_counter()
    with HealthPoller(admin_url) as poller:
        outcome = await attack()
    wall = time.perf_counter() - started
    lat = poller.latencies or [0.0]
    return {
        "server_cpu_s": round(cpu_seconds(pid) - cpu, 2),
        "wall_s": round(wall, 2),
        "rss_growth_mib": round(rss_mib(pid) - rss, 1),
        "healthz_p99_ms": round(percentile(lat, 99), 1),
        "healthz_max_ms": round(max(lat), 1),
        "healthz_median_ms": round(statistics.median(lat), 1),
        **outcome,
    }


async def run(args: argparse.Namespace, proc: TurnoutProcess, log: Path) -> dict[str, Any]:
    assert proc.proc is not None
    pid = proc.proc.pid
    admin = AdminClient(proc.admin_url, TOKEN)
    for i in range(5):
        admin.create("services", {"name": f"s{i}", "url": f"http://127.0.0.1:{9000 + i}"})
        admin.create("routes", {"name": f"r{i}", "paths": [f"/r{i}"], "service": f"s{i}"})
    options = [("grpc.max_send_message_length", 64 * 2**20)]
    attacks: dict[str, Callable[[grpc.aio.Channel], Coroutine[Any, Any, dict[str, Any]]]] = {
        "unknown-types": lambda ch: unknown_types(ch, args),
        "name-flood": lambda ch: name_flood(ch, args),
        "nack-flood": lambda ch: nack_flood(ch, args, admin, log),
        "churn": lambda ch: churn(ch, args, admin, proc.admin_url),
        "lrs-forged": lambda ch: lrs_forged(ch, args),
    }
    results: dict[str, Any] = {}
    for name in args.attacks:
        async with grpc.aio.insecure_channel(proc.xds_address, options=options) as channel:
            attack = attacks[name]
            results[name] = await measure(pid, proc.admin_url, lambda: attack(channel))  # noqa: B023
        print(name, results[name], flush=True)
    admin.close()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--attacks",
        nargs="+",
        default=["unknown-types", "name-flood", "nack-flood", "churn", "lrs-forged"],
    )
    parser.add_argument("--unknown", type=int, default=20_000)
    parser.add_argument("--flood-requests", type=int, default=500)
    parser.add_argument("--flood-names", type=int, default=1_000)
    parser.add_argument("--nack-streams", type=int, default=100)
    parser.add_argument("--nack-writes", type=int, default=10)
    parser.add_argument("--nack-bytes", type=int, default=16_384)
    parser.add_argument("--churn", type=int, default=3_000)
    parser.add_argument("--churn-concurrency", type=int, default=50)
    parser.add_argument("--lrs-reports", type=int, default=1_000)
    parser.add_argument("--lrs-clusters", type=int, default=500)
    parser.add_argument("--label", default="", help="stored with the results (e.g. before)")
    parser.add_argument("--out", default=str(RESULTS / "hostile.json"))
    # Figures in README: `--label before` on main (bench/results/hostile-before.json)
    # and `--label after` on this code (bench/results/hostile.json).
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "turnout.log"
        proc = TurnoutProcess(f"sqlite:///{tmp}/turnout.db", TOKEN, log_path=log).start()
        try:
            results = asyncio.run(run(args, proc, log))
        finally:
            proc.stop()
    load = Path("/proc/loadavg").read_text().split()[:3]
    print(f"\nload average {' '.join(load)}  {args.label}")
    print(f"{'attack':14} {'cpu s':>7} {'wall s':>7} {'rss MiB':>8} {'p99 ms':>8} {'max ms':>8}")
    for name, r in results.items():
        print(
            f"{name:14} {r['server_cpu_s']:7} {r['wall_s']:7} {r['rss_growth_mib']:8} "
            f"{r['healthz_p99_ms']:8} {r['healthz_max_ms']:8}"
        )
    write_results({"label": args.label, "load_average": load, "attacks": results}, args.out)


if __name__ == "__main__":
    sys.exit(main())

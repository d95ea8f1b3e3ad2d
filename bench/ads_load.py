"""N fake Envoys on SotW ADS: connect + sync time, server memory per stream, fan-out.

Each fake proxy behaves like Envoy on one ADS stream: the first request carries
`node` (id `load-<i>`, cluster `default`, metadata `listener_port`/`listener_address`),
asks CDS wildcard, then EDS for every EDS cluster it received, then LDS wildcard, then
RDS for the route configurations its listeners name (parsed from the
HttpConnectionManager), and ACKs every response (version_info = response version,
response_nonce = nonce, same resource_names). `--nack-type Listener` (a type URL
suffix) makes it NACK that type instead (error_detail code 13, version_info = the last
version it accepted); it still follows the flow, as if the resource parsed but failed
validation.

Measured per (N, streams per channel):
- sync: from opening the first stream until every stream ACKed (or NACKed) its last
  expected response;
- server RSS (VmRSS of the `turnout serve` pid) before and after → KB per stream;
- fan-out: one admin write (a new route) → time until every stream received the new
  RDS version and sent its ACK (repeated --changes times), from the write's request
  (`fanout_from_request_*`, the headline) and from its HTTP response (`fanout_ms`).
  The admin API and ADS share the server's event loop, so the response can come
  after the fan-out: then `fanout_ms` is negative (counted in
  `write_answered_after_fanout`), and only the figure from the request means
  anything. Before the cache woke streams in batches (`SnapshotCache._wake_streams`)
  a write's response waited behind one response to every stream: 157 ms at 1,000
  streams, up to a second at 5,000;
- GET /proxies latency with N proxies connected; the registry after disconnect;
- stream errors the fake proxies saw (`client_errors`; the goal is none).

Stream errors at 5,000 streams (issue 17). Figures recorded before 2 December showed
about 1,700 "INTERNAL: Internal error from Core" and 600 "CANCELLED" per run at 5,000
streams, none at 1,000. The cause was the server's gRPC core, not the bench: it keeps
calls that arrived but that the grpc.aio handler loop has not picked up yet in a
queue with defaults of 1,000 (soft: beyond it new calls are refused at random), 3,000
(hard) and 30 s (`grpc.server_max_unrequested_time_in_server`: older ones are
cancelled). Python picks up calls one by one on the loop that also serves the
streams, so 5,000 proxies connecting at once outran it; the client saw the refusals
as INTERNAL and the expired ones as CANCELLED, then reconnected (hence the slower
sync). `turnout/xds/server.py` now sets the queue to `max_streams` and 300 s. Checked
on 3 December with the old defaults put back (load 3-5, 2 CPUs shared): 2,612
INTERNAL + 840 CANCELLED and a 27 s sync; with the fix: none, sync 12 s.

The client runs in ONE asyncio loop in this process, on the same machine as the
server: both compete for CPU, so figures are an upper bound of the server's cost.

    .venv/bin/python bench/ads_load.py --streams 1000 5000 --streams-per-channel 0 500
    .venv/bin/python bench/ads_load.py --xds-address 127.0.0.1:18000 \
        --admin-url http://127.0.0.1:8001 --token T --server-pid PID --streams 1000
"""

import argparse
import asyncio
import contextlib
import json
import os
import random
import resource
import statistics
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from envoy.config.cluster.v3.cluster_pb2 import Cluster
from envoy.config.core.v3.base_pb2 import Node
from envoy.config.listener.v3.listener_pb2 import Listener
from envoy.extensions.filters.network.http_connection_manager.v3.http_connection_manager_pb2 import (  # noqa: E501
    HttpConnectionManager,
)
from envoy.service.discovery.v3 import ads_pb2_grpc
from envoy.service.discovery.v3.discovery_pb2 import DiscoveryRequest, DiscoveryResponse
from google.protobuf.struct_pb2 import Struct
from google.rpc.status_pb2 import Status
from results_io import RESULTS, write_results

from turnout.testing.processes import AdminClient, AdminError, TurnoutProcess

PREFIX = "type.googleapis.com/"
CDS = PREFIX + "envoy.config.cluster.v3.Cluster"
EDS = PREFIX + "envoy.config.endpoint.v3.ClusterLoadAssignment"
LDS = PREFIX + "envoy.config.listener.v3.Listener"
RDS = PREFIX + "envoy.config.route.v3.RouteConfiguration"
SHORT = {CDS: "CDS", EDS: "EDS", LDS: "LDS", RDS: "RDS"}


def fmt(value: object) -> str:
    if isinstance(value, list):
        return "/".join(f"{v:.0f}" for v in value)
    return str(value)


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


def cpu_seconds(pid: int) -> float:
    """utime + stime of `pid` from /proc/<pid>/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def self_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# --- the fake proxy ------------------------------------------------------------------


@dataclass
class TypeState:
    names: list[str] = field(default_factory=list)
    """resource_names this proxy subscribes with (empty: wildcard)."""
    accepted: str = ""
    """Last version ACKed: what a NACK carries as version_info."""
    nonce: str = ""
    requested: bool = False


class Fleet:
    """Shared counters and events of all fake proxies."""

    def __init__(self, n: int, nack_type: str | None) -> None:
        self.n = n
        self.nack_type = nack_type
        self.synced = 0
        self.all_synced = asyncio.Event()
        self.sync_done_at: float | None = None
        self.rds_seen: Counter[str] = Counter()  # RDS version → proxies that answered it
        self.rds_waiters: dict[str, asyncio.Future[float]] = {}
        self.rds_done_at: dict[str, float] = {}  # RDS version → when the last proxy answered
        self.responses: Counter[str] = Counter()  # type → responses received, all proxies
        self.errors: Counter[str] = Counter()

    def final_type(self) -> str:
        # A NACKed cluster or endpoint set holds back listeners and routes for good
        # (make before break), so such a proxy is "synced" once it answered that type.
        if self.nack_type in (CDS, EDS):
            return self.nack_type
        return RDS

    def wait_rds(self, version: str) -> "asyncio.Future[float]":
        fut = self.rds_waiters.get(version)
        if fut is None:
            fut = asyncio.get_running_loop().create_future()
            self.rds_waiters[version] = fut
            if version in self.rds_done_at:
                fut.set_result(self.rds_done_at[version])
        return fut

    def answered(self, type_url: str, version: str, first: bool) -> None:
        now = time.perf_counter()
        if first and type_url == self.final_type():
            self.synced += 1
            if self.synced == self.n:
                self.sync_done_at = now
                self.all_synced.set()
        if type_url == RDS:
            self.rds_seen[version] += 1
            if self.rds_seen[version] == self.n:
                self.rds_done_at[version] = now
                fut = self.rds_waiters.get(version)
                if fut is not None and not fut.done():
                    fut.set_result(now)


def make_node(i: int, port: int) -> Node:
    metadata = Struct()
    metadata.update({"listener_port": port, "listener_address": "127.0.0.1"})
    return Node(id=f"load-{i}", cluster="default", metadata=metadata)


def eds_names(resp: DiscoveryResponse) -> list[str]:
    names = []
    for res in resp.resources:
        cluster = Cluster()
        res.Unpack(cluster)
        if cluster.type == Cluster.EDS:
            names.append(cluster.eds_cluster_config.service_name or cluster.name)
    return sorted(names)


def rds_names(resp: DiscoveryResponse) -> list[str]:
    names = set()
    for res in resp.resources:
        listener = Listener()
        res.Unpack(listener)
        for chain in listener.filter_chains:
            for flt in chain.filters:
                if flt.typed_config.Is(HttpConnectionManager.DESCRIPTOR):
                    hcm = HttpConnectionManager()
                    flt.typed_config.Unpack(hcm)
                    if hcm.HasField("rds"):
                        names.add(hcm.rds.route_config_name)
    return sorted(names)


async def fake_proxy(
    i: int, stub: ads_pb2_grpc.AggregatedDiscoveryServiceStub, fleet: Fleet, port: int
) -> None:
    """One Envoy: reopens its stream after an error with jittered backoff, as Envoy does
    (base 500 ms, doubling), starting again from an empty state."""
    answered_once: set[str] = set()
    backoff = 0.5
    while True:
        try:
            await _one_stream(i, stub, fleet, port, answered_once)
            return
        except grpc.aio.AioRpcError as exc:
            fleet.errors[f"{exc.code().name}: {exc.details()}"[:120]] += 1
        await asyncio.sleep(backoff * (0.5 + random.random()))
        backoff = min(backoff * 2, 30)


async def _one_stream(
    i: int,
    stub: ads_pb2_grpc.AggregatedDiscoveryServiceStub,
    fleet: Fleet,
    port: int,
    answered_once: set[str],
) -> None:
    call = stub.StreamAggregatedResources()
    types = {t: TypeState() for t in (CDS, EDS, LDS, RDS)}

    async def subscribe(type_url: str, names: list[str], node: Node | None = None) -> None:
        st = types[type_url]
        st.names, st.requested = names, True
        await call.write(
            DiscoveryRequest(
                node=node,
                type_url=type_url,
                resource_names=names,
                version_info=st.accepted,
                response_nonce=st.nonce,
            )
        )

    try:
        await subscribe(CDS, [], node=make_node(i, port))
        while True:
            resp = await call.read()
            if resp is grpc.aio.EOF:
                fleet.errors["eof"] += 1
                return
            type_url = resp.type_url
            st = types[type_url]
            st.nonce = resp.nonce
            fleet.responses[type_url] += 1
            request = DiscoveryRequest(
                type_url=type_url, resource_names=st.names, response_nonce=resp.nonce
            )
            if type_url == fleet.nack_type:
                request.version_info = st.accepted
                request.error_detail.CopyFrom(Status(code=13, message=f"load-{i} rejects"))
            else:
                request.version_info = st.accepted = resp.version_info
            # Envoy asks for what a response references before it ACKs the response.
            if type_url == CDS:
                wanted = eds_names(resp)
                if wanted and (wanted != types[EDS].names or not types[EDS].requested):
                    await subscribe(EDS, wanted)
            elif type_url == LDS:
                wanted = rds_names(resp)
                if wanted != types[RDS].names or not types[RDS].requested:
                    await subscribe(RDS, wanted)
            await call.write(request)
            fleet.answered(type_url, resp.version_info, type_url not in answered_once)
            answered_once.add(type_url)
            # LDS once clusters are initialised (their endpoints arrived).
            if not types[LDS].requested and (
                type_url == EDS or (type_url == CDS and not types[EDS].names)
            ):
                await subscribe(LDS, [])
    except asyncio.CancelledError:
        call.cancel()
        raise


# --- one run -------------------------------------------------------------------------


@dataclass
class Target:
    xds_address: str
    admin: AdminClient
    admin_url: str
    token: str
    pid: int | None


def make_channels(address: str, n: int, per_channel: int) -> list[grpc.aio.Channel]:
    count = 1 if per_channel <= 0 else -(-n // per_channel)
    channels = []
    for c in range(count):
        options = [
            # A channel of its own TCP connection: no subchannel sharing between channels.
            ("grpc.use_local_subchannel_pool", 1),
            ("grpc.load_test_channel", c),
            ("grpc.max_receive_message_length", 64 * 1024 * 1024),
        ]
        channels.append(grpc.aio.insecure_channel(address, options=options))
    return channels


async def proxies_latency(target: Target) -> tuple[float, int]:
    def get() -> tuple[float, int]:
        start = time.perf_counter()
        body = target.admin.proxies()
        return (time.perf_counter() - start) * 1000, len(body)

    return await asyncio.to_thread(get)


async def run_async(
    target: Target,
    n: int,
    per_channel: int,
    changes: int,
    nack_type: str | None,
    timeout: float,
    distinct_ports: bool,
    profile_fanout: str | None,
) -> dict[str, object]:
    fleet = Fleet(n, nack_type)
    channels = make_channels(target.xds_address, n, per_channel)
    for ch in channels:
        await asyncio.wait_for(ch.channel_ready(), 10)
    stubs = [ads_pb2_grpc.AggregatedDiscoveryServiceStub(ch) for ch in channels]
    pid = target.pid
    rss_before = rss_kb(pid) if pid else None
    cpu_before = cpu_seconds(pid) if pid else None
    client_cpu_before = self_cpu_seconds()

    start = time.perf_counter()
    tasks = [
        asyncio.create_task(
            fake_proxy(i, stubs[i * len(stubs) // n], fleet, 20000 + i if distinct_ports else 10000)
        )
        for i in range(n)
    ]
    result: dict[str, object] = {
        "benchmark": "ads_load",
        "streams": n,
        "channels": len(channels),
        "streams_per_channel": -(-n // len(channels)),
        "nack_type": SHORT.get(nack_type or ""),
        "distinct_listener_ports": distinct_ports,
    }
    try:
        try:
            await asyncio.wait_for(fleet.all_synced.wait(), timeout)
        except TimeoutError:
            result["sync_s"] = None
            result["synced_at_timeout"] = fleet.synced
            return result
        assert fleet.sync_done_at is not None
        result["sync_s"] = round(fleet.sync_done_at - start, 3)
        result["server_cpu_sync_s"] = (
            round(cpu_seconds(pid) - cpu_before, 2) if pid and cpu_before is not None else None
        )
        result["client_cpu_sync_s"] = round(self_cpu_seconds() - client_cpu_before, 2)
        await asyncio.sleep(1)  # let the server settle (proxy revisions, GC)
        if pid and rss_before is not None:
            rss_after = rss_kb(pid)
            result["server_rss_before_mb"] = round(rss_before / 1024, 1)
            result["server_rss_after_mb"] = round(rss_after / 1024, 1)
            result["kb_per_stream"] = round((rss_after - rss_before) / n, 1)
        ms, count = await proxies_latency(target)
        result["get_proxies_ms"] = round(ms, 1)
        result["get_proxies_count"] = count

        samples: list[float] = []  # from the write's HTTP response (< 0: all were done first)
        from_request: list[float] = []  # from sending the write
        write_ms: list[float] = []
        responses_before = dict(fleet.responses)
        server_cpu_fan: list[float] = []
        if fleet.final_type() == RDS:
            for c in range(changes):
                loop = asyncio.get_running_loop()
                cpu0 = cpu_seconds(pid) if pid else 0.0

                def write(c: int = c) -> tuple[int, float, float]:
                    sent = time.perf_counter()
                    revision = target.admin.create(
                        "routes",
                        {
                            "name": f"fanout-{time.time_ns()}-{c}",
                            "paths": [f"/fanout/{c}"],
                            "service": "load",
                        },
                    )
                    return revision, sent, time.perf_counter()

                spy = None
                if profile_fanout and pid and c == changes - 1:
                    spy = await asyncio.create_subprocess_exec(
                        str(Path(sys.executable).parent / "py-spy"),
                        "record",
                        "--pid",
                        str(pid),
                        "--rate",
                        "200",
                        "--duration",
                        "30",
                        "--nonblocking",
                        "--format",
                        "raw" if profile_fanout.endswith(".txt") else "flamegraph",
                        "-o",
                        profile_fanout,
                        stdout=asyncio.subprocess.DEVNULL,
                        stderr=asyncio.subprocess.DEVNULL,
                    )
                    await asyncio.sleep(1)
                revision, t_sent, t_write = await loop.run_in_executor(None, write)
                done_at = await asyncio.wait_for(fleet.wait_rds(str(revision)), timeout)
                samples.append((done_at - t_write) * 1000)
                from_request.append((done_at - t_sent) * 1000)
                write_ms.append((t_write - t_sent) * 1000)
                if pid:
                    server_cpu_fan.append(cpu_seconds(pid) - cpu0)
                if spy is not None:
                    spy.send_signal(2)
                    await spy.wait()
                await asyncio.sleep(0.5)
        extra = {
            SHORT[t]: fleet.responses[t] - responses_before.get(t, 0) for t in (CDS, EDS, LDS, RDS)
        }
        result["fanout_ms"] = [round(s, 1) for s in samples]
        result["write_answered_after_fanout"] = sum(1 for s in samples if s < 0)
        result["fanout_p50_ms"] = round(statistics.median(samples), 1) if samples else None
        result["fanout_max_ms"] = round(max(samples), 1) if samples else None
        result["fanout_from_request_ms"] = [round(s, 1) for s in from_request]
        result["fanout_from_request_p50_ms"] = (
            round(statistics.median(from_request), 1) if from_request else None
        )
        result["fanout_from_request_max_ms"] = round(max(from_request), 1) if from_request else None
        result["write_ms"] = [round(s, 1) for s in write_ms]
        result["write_max_ms"] = round(max(write_ms), 1) if write_ms else None
        result["server_cpu_per_fanout_s"] = (
            round(statistics.median(server_cpu_fan), 2) if server_cpu_fan else None
        )
        result["responses_during_changes"] = extra
        result["responses_per_stream_per_change"] = (
            round(extra["RDS"] / n / changes, 2) if changes and samples else None
        )
    finally:
        result["client_errors"] = dict(fleet.errors)
        result["stream_errors"] = sum(fleet.errors.values())
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for ch in channels:
            await ch.close()
    # Every stream is gone: the registry must be empty again.
    deadline = time.monotonic() + 30
    while True:
        _, left = await proxies_latency(target)
        if left == 0 or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.2)
    result["proxies_after_close"] = left
    if pid:
        result["server_rss_after_close_mb"] = round(rss_kb(pid) / 1024, 1)
    return result


def run(args: argparse.Namespace, n: int, per_channel: int) -> dict[str, object]:
    nack_type = None
    if args.nack_type:
        by_short = {v: k for k, v in SHORT.items()}
        nack_type = by_short.get(args.nack_type) or next(
            t for t in SHORT if t.endswith("." + args.nack_type)
        )
    run_args = (
        n,
        per_channel,
        args.changes,
        nack_type,
        args.timeout,
        args.distinct_ports,
        args.profile_fanout,
    )
    if args.xds_address:
        admin = AdminClient(args.admin_url, args.token)
        try:
            with contextlib.suppress(AdminError):  # already there from an earlier run
                admin.create("services", {"name": "load", "url": "http://10.0.0.1:8080"})
            target = Target(args.xds_address, admin, args.admin_url, args.token, args.server_pid)
            return asyncio.run(run_async(target, *run_args))
        finally:
            admin.close()
    with tempfile.TemporaryDirectory() as tmp:
        env = {"TURNOUT_LOG_LEVEL": args.server_log_level}
        turnout = TurnoutProcess(
            f"sqlite:///{tmp}/load.db", "load-token", log_path=Path(tmp) / "turnout.log", env=env
        ).start()
        admin = AdminClient(turnout.admin_url, "load-token")
        try:
            admin.create("services", {"name": "load", "url": "http://10.0.0.1:8080"})
            admin.create("routes", {"name": "load", "paths": ["/"], "service": "load"})
            assert turnout.proc is not None
            target = Target(
                turnout.xds_address, admin, turnout.admin_url, "load-token", turnout.proc.pid
            )
            if args.hold:
                print(f"server pid {turnout.proc.pid}", file=sys.stderr)
            return asyncio.run(run_async(target, *run_args))
        finally:
            admin.close()
            turnout.stop()
            if args.keep_log:
                Path(args.keep_log).write_bytes((Path(tmp) / "turnout.log").read_bytes())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, nargs="+", default=[1000, 5000])
    parser.add_argument(
        "--streams-per-channel",
        type=int,
        nargs="+",
        default=[500],
        help="streams per gRPC channel (own TCP connection); 0 = all on one channel",
    )
    parser.add_argument("--changes", type=int, default=3, help="admin writes for fan-out")
    parser.add_argument(
        "--nack-type",
        help="type URL suffix to NACK: Cluster, "
        "ClusterLoadAssignment, Listener or RouteConfiguration",
    )
    parser.add_argument(
        "--distinct-ports",
        action="store_true",
        help="each proxy its own listener_port (one node group per proxy)",
    )
    parser.add_argument("--timeout", type=float, default=300)
    parser.add_argument("--xds-address", help="use a running Turnout instead of starting one")
    parser.add_argument("--admin-url", default="http://127.0.0.1:8001")
    parser.add_argument("--token", default=os.environ.get("TURNOUT_ADMIN_TOKEN", ""))
    parser.add_argument("--server-pid", type=int, help="pid of the running Turnout (for RSS)")
    parser.add_argument("--server-log-level", default="INFO")
    parser.add_argument("--profile-fanout", help="py-spy record the last fan-out to this SVG")
    parser.add_argument("--keep-log", help="copy the started server's log here")
    parser.add_argument("--hold", action="store_true", help="print the server pid")
    parser.add_argument("--out", default=str(RESULTS / "ads_load.json"))
    args = parser.parse_args()

    results = []
    for per_channel in args.streams_per_channel:
        for n in args.streams:
            r = run(args, n, per_channel)
            results.append(r)
            print(json.dumps(r), file=sys.stderr, flush=True)

    cols = [
        ("streams", "streams"),
        ("channels", "chans"),
        ("sync_s", "sync s"),
        ("server_rss_before_mb", "rss0 MB"),
        ("server_rss_after_mb", "rss1 MB"),
        ("kb_per_stream", "KB/strm"),
        ("fanout_p50_ms", "fan p50 ms"),
        ("fanout_max_ms", "fan max ms"),
        ("fanout_from_request_p50_ms", "req→all p50"),
        ("write_ms", "write ms"),
        ("server_cpu_per_fanout_s", "srv cpu/fan s"),
        ("get_proxies_ms", "/proxies ms"),
        ("stream_errors", "strm errors"),
    ]
    print(" ".join(f"{h:>13}" for _, h in cols))
    for r in results:
        print(" ".join(f"{fmt(r.get(k)):>13}" for k, _ in cols))
    print(
        f"client and server share this machine ({os.cpu_count()} CPUs): "
        "figures include the client's CPU competition"
    )
    write_results(results, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())

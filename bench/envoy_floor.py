"""Envoy's floor: a minimal ADS server pushes Turnout's bytes → first 200 through Envoy.

What no control plane can beat on this machine: the time Envoy itself takes from
receiving a RouteConfiguration to serving a request by it. A bare State-of-the-World
ADS server (grpcio, the generated Envoy protos Turnout's server uses) holds resources
produced by Turnout's own translation (`turnout.xds.translate.pipeline.translate`)
for the declaration `write_to_served.py` writes, every change translated and packed
*before* the clock runs. Per change: the clock starts when the new RouteConfiguration
is handed to every stream and stops when every Envoy answered 200 on the new exact
path (`served.py`, the same harness and stop condition as `write_to_served.py`).

    python bench/envoy_floor.py --changes 200 --envoys 1 20
"""

import argparse
import itertools
import queue
import sys
import threading
import time
from collections.abc import Iterator
from concurrent import futures
from dataclasses import dataclass, field

import grpc
from envoy.service.discovery.v3 import ads_pb2_grpc
from envoy.service.discovery.v3.discovery_pb2 import DiscoveryRequest, DiscoveryResponse
from google.protobuf.any_pb2 import Any
from results_io import RESULTS, write_results
from served import SERVICE, bench_path, fleet, present_bodies, route_body, summary

from turnout.models.declaration import Declaration
from turnout.models.route import RouteSpec
from turnout.models.service import ServiceSpec
from turnout.testing.processes import free_port, wait_for
from turnout.xds.memo import TranslationMemo
from turnout.xds.node import node_group
from turnout.xds.snapshot import TYPE_ORDER, pack
from turnout.xds.translate import LISTENER_TYPE, ROUTE_TYPE, NodeGroup
from turnout.xds.translate.listener import build_listener
from turnout.xds.translate.pipeline import translate

MAX_QUEUED = 64
"""Responses waiting on one stream; the benchmark never has more than a few."""


@dataclass
class _Stream:
    out: "queue.Queue[DiscoveryResponse | None]" = field(
        default_factory=lambda: queue.Queue(MAX_QUEUED)
    )
    listener: Any | None = None
    sent: dict[str, str] = field(default_factory=dict)
    """Type URL → version last sent."""
    acked: dict[str, str] = field(default_factory=dict)
    """Type URL → version last acknowledged."""


class FloorServer(ads_pb2_grpc.AggregatedDiscoveryServiceServicer):
    """SotW ADS: answers each type once per version, pushes new resources to every stream."""

    def __init__(self, shared: dict[str, list[Any]], routes: list[Any]) -> None:
        self._lock = threading.Lock()
        self._streams: list[_Stream] = []
        self._nonces = itertools.count(1)
        self._version = "1"
        self._shared = {**shared, ROUTE_TYPE: routes}
        """Type URL → packed resources, except listeners (built per node)."""
        self.rejections: list[str] = []
        self.port = free_port()
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=64))
        ads_pb2_grpc.add_AggregatedDiscoveryServiceServicer_to_server(self, self._server)
        self._server.add_insecure_port(f"127.0.0.1:{self.port}")

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> "FloorServer":
        self._server.start()
        return self

    def stop(self) -> None:
        with self._lock:
            for s in self._streams:
                s.out.put(None)
        self._server.stop(grace=0)

    def _response(self, stream: _Stream, type_url: str) -> DiscoveryResponse:
        if type_url == LISTENER_TYPE:
            resources = [stream.listener] if stream.listener is not None else []
        else:
            resources = self._shared.get(type_url, [])
        nonce = str(next(self._nonces))
        return DiscoveryResponse(
            version_info=self._version, type_url=type_url, resources=resources, nonce=nonce
        )

    def _on_request(self, stream: _Stream, request: DiscoveryRequest) -> None:
        with self._lock:
            if stream.listener is None and request.node.id:
                stream.listener = pack(build_listener(node_group(request.node))).any
            if request.error_detail.message:
                # A NACK means these are not the bytes Turnout serves: the run is void.
                self.rejections.append(f"{request.type_url}: {request.error_detail.message}")
            if request.response_nonce:
                stream.acked[request.type_url] = request.version_info
            if stream.sent.get(request.type_url) != self._version:
                stream.sent[request.type_url] = self._version
                stream.out.put(self._response(stream, request.type_url))

    def StreamAggregatedResources(  # noqa: N802 (gRPC method name)
        self, request_iterator: Iterator[DiscoveryRequest], context: grpc.ServicerContext
    ) -> Iterator[DiscoveryResponse]:
        stream = _Stream()
        with self._lock:
            self._streams.append(stream)

        def read() -> None:
            try:
                for request in request_iterator:
                    self._on_request(stream, request)
            finally:
                stream.out.put(None)

        threading.Thread(target=read, daemon=True).start()
        try:
            while (response := stream.out.get()) is not None:
                yield response
        finally:
            with self._lock:
                self._streams.remove(stream)

    def push(self, type_url: str, resources: list[Any], version: str) -> None:
        """Hand `resources` (already packed) to every stream that asked for `type_url`."""
        with self._lock:
            self._version = version
            self._shared[type_url] = resources
            for s in self._streams:
                if type_url in s.sent:
                    s.sent[type_url] = version
                    s.out.put(self._response(s, type_url))

    def acked(self, type_url: str, version: str, streams: int = 1) -> bool:
        """At least `streams` streams acknowledged `version` of `type_url`."""
        with self._lock:
            if self.rejections:
                raise RuntimeError(f"Envoy rejected: {self.rejections[:3]}")
            live = [s for s in self._streams if s.acked.get(type_url) == version]
            return len(live) >= streams


def declarations(upstream_url: str, changes: int, present: int = 0) -> list[Declaration]:
    """The declaration before any change, then after each: what write_to_served writes."""
    service = ServiceSpec(name=SERVICE, url=upstream_url)
    routes = {
        spec.name: spec for spec in (RouteSpec.model_validate(b) for b in present_bodies(present))
    }
    out = [Declaration(revision=1, services={SERVICE: service}, routes=routes)]
    for i in range(changes):
        spec = RouteSpec.model_validate(route_body(i))
        routes = {**routes, spec.name: spec}
        out.append(Declaration(revision=i + 2, services={SERVICE: service}, routes=routes))
    for i in range(changes if present else 0):  # then removed again, one by one
        routes = {k: v for k, v in routes.items() if k != f"r{i}"}
        revision = changes + i + 2
        out.append(Declaration(revision=revision, services={SERVICE: service}, routes=routes))
    return out


def prepare(
    upstream_url: str, changes: int, present: int = 0
) -> tuple[dict[str, list[Any]], list[list[Any]]]:
    """Turnout's translation of every step, packed: shared resources, routes per step."""
    memo = TranslationMemo()
    group = NodeGroup(address="127.0.0.1", port=10000, group="default")
    shared: dict[str, list[Any]] = {}
    routes: list[list[Any]] = []
    for decl in declarations(upstream_url, changes, present):
        t = translate(decl, group, memo)
        if not shared:
            skip = (LISTENER_TYPE, ROUTE_TYPE)
            shared = {u: [p.any for p in t.packed[u]] for u in TYPE_ORDER if u not in skip}
        routes.append([p.any for p in t.packed[ROUTE_TYPE]])
    return shared, routes


def run(changes: int, envoys: int, present: int = 0) -> dict[str, object]:
    with fleet() as f:
        shared, routes = prepare(f.upstream.url, changes, present)
        server = FloorServer(shared, routes[0]).start()
        try:
            f.add_envoys(envoys, server.address, prefix="floor")
            wait_for(lambda: server.acked(ROUTE_TYPE, "1", envoys), 30, "Envoys to ACK routes")
            samples: list[float] = []
            trivial = 0
            for i in range(changes):
                path = bench_path(i)
                if f.already_served(path):
                    trivial += 1
                start = time.perf_counter()
                server.push(ROUTE_TYPE, routes[i + 1], str(i + 2))
                samples.append((f.wait_served(path) - start) * 1000)
            removed: list[float] = []
            for i in range(changes if present else 0):
                start = time.perf_counter()
                server.push(ROUTE_TYPE, routes[changes + i + 1], str(changes + i + 2))
                removed.append((f.wait_served(bench_path(i), 404) - start) * 1000)
            if server.rejections:
                raise RuntimeError(f"Envoy rejected: {server.rejections[:3]}")
        finally:
            server.stop()
    route_bytes = sum(len(r.value) for r in routes[-1])
    return {
        "benchmark": "envoy_floor",
        "envoys": envoys,
        "changes": changes,
        "present_routes": present,
        **summary(samples),
        **(summary(removed, "remove_") if removed else {}),
        "route_configuration_bytes": route_bytes,
        "trivial_samples": trivial,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--changes", type=int, default=100)
    parser.add_argument("--envoys", type=int, nargs="+", default=[1])
    parser.add_argument(
        "--present", type=int, default=0, help="routes declared before the first change"
    )
    args = parser.parse_args()
    results = [run(args.changes, n, args.present) for n in args.envoys]
    print(f"{'envoys':>6} {'changes':>7} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} {'max ms':>8}")
    for r in results:
        print(
            f"{r['envoys']:>6} {r['changes']:>7} {r['p50_ms']:>8} {r['p90_ms']:>8} "
            f"{r['p99_ms']:>8} {r['max_ms']:>8}"
        )
    stem = "envoy_floor-present" if args.present else "envoy_floor"
    write_results(results, RESULTS / f"{stem}.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())

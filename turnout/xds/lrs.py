"""Envoy's load reporting service (LRS): per-cluster request and error counts.

Each proxy opens one `StreamLoadStats` stream (enabled by
`cluster_manager.load_stats_config` in envoy/bootstrap/ads.yaml). Turnout answers
its first request once, asking for every cluster (`send_all_clusters`) every
`interval` seconds; from then on the proxy sends one report per interval, each
with the counts since its previous report (deltas). `LoadStats` keeps those
deltas, timestamped on arrival, for `RETENTION` and answers "how many requests
and errors did cluster X serve since T" for the plan controller
(`turnout/models/load_stats.py`). With several replicas, each also keeps the
samples it has not yet published (`keep_unpublished`), which
`turnout.models.replicas.SharedLoadStats` writes to the database so the leader's
controller sees the reports every replica received.

Errors are Envoy's `total_error_requests`: responses with a 5xx status and
requests that failed upstream (reset, timeout), as Envoy charges them per host.

https://www.envoyproxy.io/docs/envoy/latest/api-v3/service/load_stats/v3/lrs.proto
"""

import logging
import threading
from collections import deque
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import grpc
from envoy.service.load_stats.v3 import lrs_pb2_grpc
from envoy.service.load_stats.v3.lrs_pb2 import LoadStatsRequest, LoadStatsResponse
from google.protobuf.duration_pb2 import Duration

from turnout.models.load_stats import Load, Sample

log = logging.getLogger(__name__)

DEFAULT_INTERVAL_SECONDS = 1.0
RETENTION = timedelta(hours=1)


class LoadStats:
    """Reported deltas per cluster, summed on demand over a time window. Thread-safe."""

    def __init__(self, interval_seconds: float = DEFAULT_INTERVAL_SECONDS) -> None:
        self.interval_seconds = interval_seconds
        self._lock = threading.Lock()
        self._samples: dict[str, deque[tuple[datetime, int, int]]] = {}
        self._unpublished: list[Sample] | None = None

    def keep_unpublished(self) -> None:
        """Also keep each new sample until `take_unpublished` (to share it)."""
        with self._lock:
            if self._unpublished is None:
                self._unpublished = []

    def take_unpublished(self) -> list[Sample]:
        """The samples recorded since the last call (oldest first)."""
        with self._lock:
            taken, self._unpublished = self._unpublished or [], []
        return taken

    def record(self, cluster: str, requests: int, errors: int, at: datetime | None = None) -> None:
        at = at or datetime.now(UTC)
        with self._lock:
            samples = self._samples.setdefault(cluster, deque())
            samples.append((at, requests, errors))
            while samples and samples[0][0] < at - RETENTION:
                samples.popleft()
            if self._unpublished is not None:
                self._unpublished.append(Sample(cluster, at, requests, errors))

    def window(self, cluster: str, since: datetime) -> Load:
        with self._lock:
            samples = list(self._samples.get(cluster, ()))
        requests = errors = 0
        for at, r, e in samples:
            if at >= since:
                requests += r
                errors += e
        return Load(requests=requests, errors=errors)

    def report_interval_seconds(self) -> float:
        return self.interval_seconds

    def record_request(self, request: LoadStatsRequest) -> None:
        for stats in request.cluster_stats:
            if stats.cluster_name.startswith("_"):
                continue  # Turnout's own cluster, not a service
            ok = sum(loc.total_successful_requests for loc in stats.upstream_locality_stats)
            errors = sum(loc.total_error_requests for loc in stats.upstream_locality_stats)
            if ok or errors:
                self.record(stats.cluster_name, ok + errors, errors)


class LoadReportingService(lrs_pb2_grpc.LoadReportingServiceServicer):
    def __init__(self, stats: LoadStats) -> None:
        self._stats = stats

    async def StreamLoadStats(  # noqa: N802 (gRPC method name)
        self,
        request_iterator: AsyncIterator[LoadStatsRequest],
        context: grpc.aio.ServicerContext,
    ) -> None:
        node = "?"
        answered = False
        async for request in request_iterator:
            if request.HasField("node"):
                node = request.node.id
            self._stats.record_request(request)
            if not answered:
                interval = Duration()
                interval.FromNanoseconds(int(self._stats.interval_seconds * 1e9))
                await context.write(
                    LoadStatsResponse(send_all_clusters=True, load_reporting_interval=interval)
                )
                answered = True
                log.info("load reports from node %s every %ss", node, self._stats.interval_seconds)
        log.info("load report stream from node %s closed", node)


def add_to_server(server: grpc.aio.Server, stats: LoadStats) -> None:
    lrs_pb2_grpc.add_LoadReportingServiceServicer_to_server(LoadReportingService(stats), server)

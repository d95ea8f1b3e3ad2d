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
`turnout.storage.replicas.SharedLoadStats` writes to the database so the leader's
controller sees the reports every replica received.

Only a proxy with a live ADS stream may report, and only for its own clusters:
the first request must carry `node`, whose id and cluster (and under mTLS the
peer certificate, checked against the same allow-list) must be those of an open
ADS stream (`LiveNodes`); a stream whose ADS stream has not appeared within
ADS_WAIT_SECONDS is closed with PERMISSION_DENIED, and so is a report that
arrives after the node's last ADS stream closed. Entries for clusters that are
not in the node's current snapshot are not counted; a report with more than
MAX_CLUSTERS_PER_REPORT entries closes the stream with INVALID_ARGUMENT, and a
stream reporting far more often than asked (REPORT_BURST, then
REPORTS_PER_INTERVAL per interval) with RESOURCE_EXHAUSTED.

Errors are Envoy's `total_error_requests`: responses with a 5xx status and
requests that failed upstream (reset, timeout), as Envoy charges them per host.

https://www.envoyproxy.io/docs/envoy/latest/api-v3/service/load_stats/v3/lrs.proto
"""

import logging
import threading
from collections import deque
from collections.abc import AsyncIterator, Callable, Collection, Mapping, Sequence
from datetime import UTC, datetime, timedelta

import grpc
from envoy.service.load_stats.v3 import lrs_pb2_grpc
from envoy.service.load_stats.v3.lrs_pb2 import LoadStatsRequest, LoadStatsResponse
from google.protobuf.duration_pb2 import Duration

from turnout.models.load_stats import Load, Sample
from turnout.xds.authority import LiveNodes, NodeIdentity, certificate_fingerprint
from turnout.xds.identity import IdentityRefused
from turnout.xds.limits import TokenBucket
from turnout.xds.metrics import LRS_REPORTS_REFUSED

log = logging.getLogger(__name__)

DEFAULT_INTERVAL_SECONDS = 1.0
RETENTION = timedelta(hours=1)
ADS_WAIT_SECONDS = 5.0
"""How long a new LRS stream waits for its node's ADS stream (Envoy opens both at
startup, in no fixed order)."""
MAX_CLUSTERS_PER_REPORT = 16_384
REPORT_BURST = 10
REPORTS_PER_INTERVAL = 4

Authorizer = Callable[[Mapping[str, Sequence[bytes]], str, str], None]
"""(peer auth context, node id, node cluster) -> None, or raise IdentityRefused."""


class ReportRefused(Exception):
    """A load report stream may not go on; carries the gRPC status to close it with."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code


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

    def record_request(
        self, request: LoadStatsRequest, allowed: Collection[str] | None = None
    ) -> int:
        """Record the report's counts; with `allowed`, only for those clusters.
        Return how many entries were left out for naming another cluster."""
        refused = 0
        for stats in request.cluster_stats:
            if stats.cluster_name.startswith("_"):
                continue  # Turnout's own cluster, not a service
            if allowed is not None and stats.cluster_name not in allowed:
                refused += 1
                continue
            ok = sum(loc.total_successful_requests for loc in stats.upstream_locality_stats)
            errors = sum(loc.total_error_requests for loc in stats.upstream_locality_stats)
            if ok or errors:
                self.record(stats.cluster_name, ok + errors, errors)
        return refused


class LoadReportingService(lrs_pb2_grpc.LoadReportingServiceServicer):
    def __init__(
        self,
        stats: LoadStats,
        live: LiveNodes | None = None,
        authorize: Authorizer | None = None,
        ads_wait_seconds: float = ADS_WAIT_SECONDS,
    ) -> None:
        self._stats = stats
        self._live = live
        self._authorize = authorize
        self._ads_wait_seconds = ads_wait_seconds

    async def StreamLoadStats(  # noqa: N802 (gRPC method name)
        self,
        request_iterator: AsyncIterator[LoadStatsRequest],
        context: grpc.aio.ServicerContext,
    ) -> None:
        node = "?"
        try:
            node = await self._stream(request_iterator, context)
        except ReportRefused as exc:
            log.warning("load report stream from %s closed: %s", context.peer(), exc)
            LRS_REPORTS_REFUSED.labels(exc.code.name.lower()).inc()
            await context.abort(exc.code, str(exc))
        log.info("load report stream from node %s closed", node)

    async def _stream(
        self, requests: AsyncIterator[LoadStatsRequest], context: grpc.aio.ServicerContext
    ) -> str:
        identity: NodeIdentity | None = None
        checked: dict[str, float] = {}  # when another replica last vouched for the node
        budget = TokenBucket(REPORTS_PER_INTERVAL / self._stats.interval_seconds, REPORT_BURST)
        async for request in requests:
            if identity is None:
                identity = await self._admit(request, context)
                await self._answer(context, identity.node_id)
            if len(request.cluster_stats) > MAX_CLUSTERS_PER_REPORT:
                raise ReportRefused(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    f"cluster_stats: {len(request.cluster_stats)} entries, more than "
                    f"{MAX_CLUSTERS_PER_REPORT}",
                )
            if not budget.try_take():
                raise ReportRefused(
                    grpc.StatusCode.RESOURCE_EXHAUSTED,
                    f"node {identity.node_id!r} sends load reports far more often than "
                    f"every {self._stats.interval_seconds}s",
                )
            allowed: frozenset[str] | None = None
            if self._live is not None:
                allowed = await self._live.authority(identity, checked)
                if allowed is None:
                    raise ReportRefused(
                        grpc.StatusCode.PERMISSION_DENIED,
                        f"node {identity.node_id!r} (cluster {identity.node_cluster!r}) no "
                        "longer holds an ADS stream; its load reports are not accepted",
                    )
            refused = self._stats.record_request(request, allowed)
            if refused:
                LRS_REPORTS_REFUSED.labels("cluster_not_in_snapshot").inc(refused)
        return identity.node_id if identity else "?"

    async def _admit(
        self, request: LoadStatsRequest, context: grpc.aio.ServicerContext
    ) -> NodeIdentity:
        """The stream's identity, once it is known to hold a live ADS stream."""
        if not request.HasField("node") or not request.node.id:
            raise ReportRefused(
                grpc.StatusCode.INVALID_ARGUMENT,
                "the first load report must carry node (with its id)",
            )
        node = request.node
        auth = context.auth_context()
        if self._authorize is not None:
            try:
                self._authorize(auth, node.id, node.cluster)
            except IdentityRefused as exc:
                raise ReportRefused(grpc.StatusCode.PERMISSION_DENIED, str(exc)) from exc
        identity = NodeIdentity(node.id, node.cluster, certificate_fingerprint(auth))
        if self._live is not None and not await self._live.wait_authority(
            identity, self._ads_wait_seconds
        ):
            raise ReportRefused(
                grpc.StatusCode.PERMISSION_DENIED,
                f"node {node.id!r} (cluster {node.cluster!r}) holds no ADS stream"
                + (" with this certificate" if identity.certificate else "")
                + "; only a connected proxy may report load",
            )
        return identity

    async def _answer(self, context: grpc.aio.ServicerContext, node: str) -> None:
        interval = Duration()
        interval.FromNanoseconds(int(self._stats.interval_seconds * 1e9))
        await context.write(
            LoadStatsResponse(send_all_clusters=True, load_reporting_interval=interval)
        )
        log.info("load reports from node %s every %ss", node, self._stats.interval_seconds)


def add_to_server(
    server: grpc.aio.Server,
    stats: LoadStats,
    live: LiveNodes | None = None,
    authorize: Authorizer | None = None,
    ads_wait_seconds: float = ADS_WAIT_SECONDS,
) -> None:
    lrs_pb2_grpc.add_LoadReportingServiceServicer_to_server(
        LoadReportingService(stats, live, authorize, ads_wait_seconds), server
    )

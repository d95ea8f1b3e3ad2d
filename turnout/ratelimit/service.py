"""`envoy.service.ratelimit.v3.RateLimitService` on grpc.aio, counting in Redis.

Each descriptor Envoy sends is either limited (it has an entry `quota=<N>/<window>`)
or not (answered OK). The other entries name the counter: `route=api, consumer=
alice` counts alice on that route; `consumer=alice` counts her everywhere.

When Redis cannot be reached the answer follows the failure mode: `open` (the
default) lets the request through, `closed` answers OVER_LIMIT (429). Either way
it is logged (at most once per LOG_EVERY_SECONDS) and counted in
`turnout_ratelimit_redis_errors_total`.
"""

import logging
import time
from dataclasses import dataclass
from enum import StrEnum

import grpc
from envoy.service.ratelimit.v3 import rls_pb2, rls_pb2_grpc
from envoy.service.ratelimit.v3.rls_pb2 import RateLimitRequest, RateLimitResponse
from google.protobuf.duration_pb2 import Duration
from google.protobuf.message import DecodeError
from prometheus_client import Counter
from redis import RedisError

from turnout.ratelimit.counters import RedisCounters, Window, window_for
from turnout.ratelimit.h2grpc import GrpcError
from turnout.ratelimit.h2wire import GRPC_INVALID_ARGUMENT

log = logging.getLogger(__name__)

SHOULD_RATE_LIMIT = (
    f"/{rls_pb2.DESCRIPTOR.services_by_name['RateLimitService'].full_name}/ShouldRateLimit"
)
"""The gRPC method path Envoy's `ratelimit` filter calls."""
QUOTA_KEY = "quota"
LOG_EVERY_SECONDS = 10.0
_UNITS = {
    "minute": (60, RateLimitResponse.RateLimit.MINUTE),
    "hour": (3600, RateLimitResponse.RateLimit.HOUR),
    "day": (86400, RateLimitResponse.RateLimit.DAY),
    "month": (30 * 86400, RateLimitResponse.RateLimit.MONTH),
    "second": (1, RateLimitResponse.RateLimit.SECOND),
}

DECISIONS = Counter(
    "turnout_ratelimit_decisions", "Rate limit descriptors decided, by result.", ["result"]
)
REDIS_ERRORS = Counter(
    "turnout_ratelimit_redis_errors", "Decisions made without Redis, by failure mode.", ["mode"]
)


class FailureMode(StrEnum):
    OPEN = "open"
    CLOSED = "closed"


@dataclass(frozen=True)
class Quota:
    identity: str
    """The descriptor's other entries, which name the counter."""
    requests: int
    unit: str


def parse_quota(domain: str, entries: list[tuple[str, str]]) -> Quota | None:
    """The descriptor's quota, or None when it carries none (or a malformed one)."""
    quota = [v for k, v in entries if k == QUOTA_KEY]
    if len(quota) != 1:
        return None
    requests, _, unit = quota[0].partition("/")
    if not requests.isdigit() or unit not in _UNITS or int(requests) < 1:
        return None
    identity = "\x1f".join(f"{k}={v}" for k, v in entries if k != QUOTA_KEY)
    return Quota(f"{domain}\x1e{identity}", int(requests), unit)


class RateLimitService(rls_pb2_grpc.RateLimitServiceServicer):
    """Answers Envoy's `ShouldRateLimit` from Redis counters."""

    def __init__(self, counters: RedisCounters | None, failure_mode: FailureMode) -> None:
        self._counters = counters
        self._failure_mode = failure_mode
        self._last_error_log = 0.0

    async def ShouldRateLimit(  # noqa: N802 (gRPC method name)
        self, request: RateLimitRequest, context: grpc.aio.ServicerContext
    ) -> RateLimitResponse:
        return await self.decide(request)

    async def handle(self, message: bytes) -> bytes:
        """`ShouldRateLimit` on serialized messages, for the lean HTTP/2 transport."""
        try:
            request = RateLimitRequest.FromString(message)
        except DecodeError as exc:
            raise GrpcError(GRPC_INVALID_ARGUMENT, f"not a RateLimitRequest: {exc}") from exc
        return (await self.decide(request)).SerializeToString()

    async def decide(
        self, request: RateLimitRequest, now: float | None = None
    ) -> RateLimitResponse:
        now = time.time() if now is None else now
        quotas = [
            parse_quota(request.domain, [(e.key, e.value) for e in d.entries])
            for d in request.descriptors
        ]
        limited = [(i, q) for i, q in enumerate(quotas) if q is not None]
        statuses = [RateLimitResponse.DescriptorStatus(code=RateLimitResponse.OK) for _ in quotas]
        if not limited:
            return RateLimitResponse(overall_code=RateLimitResponse.OK, statuses=statuses)
        windows = [window_for(q.identity, _UNITS[q.unit][0], now, self._prefix) for _, q in limited]
        counts = await self._hit(windows, request.hits_addend or 1)
        overall = RateLimitResponse.OK
        for (i, quota), window, count in zip(limited, windows, counts, strict=True):
            status = statuses[i]
            status.current_limit.requests_per_unit = quota.requests
            status.current_limit.unit = _UNITS[quota.unit][1]
            status.duration_until_reset.CopyFrom(Duration(seconds=window.reset_in))
            if count is None:  # Redis unreachable
                over = self._failure_mode is FailureMode.CLOSED
                status.limit_remaining = 0
            else:
                over = count > quota.requests
                status.limit_remaining = max(0, quota.requests - count)
            if over:
                status.code = RateLimitResponse.OVER_LIMIT
                overall = RateLimitResponse.OVER_LIMIT
            DECISIONS.labels("over_limit" if over else "ok").inc()
        return RateLimitResponse(overall_code=overall, statuses=statuses)

    @property
    def _prefix(self) -> str:
        return self._counters.prefix if self._counters else ""

    async def _hit(self, windows: list[Window], hits: int) -> list[int | None]:
        if self._counters is not None:
            try:
                return list(await self._counters.hit(windows, hits))
            except (RedisError, OSError) as exc:
                self._redis_failed(f"Redis unreachable: {exc}")
        else:
            self._redis_failed("TURNOUT_REDIS_URL is not set")
        return [None] * len(windows)

    def _redis_failed(self, reason: str) -> None:
        REDIS_ERRORS.labels(self._failure_mode.value).inc()
        now = time.monotonic()
        if now - self._last_error_log >= LOG_EVERY_SECONDS:
            self._last_error_log = now
            log.warning(
                "rate limit quotas cannot be counted (%s); failing %s", reason, self._failure_mode
            )


def add_rate_limit_service(server: grpc.aio.Server, service: RateLimitService) -> None:
    rls_pb2_grpc.add_RateLimitServiceServicer_to_server(service, server)

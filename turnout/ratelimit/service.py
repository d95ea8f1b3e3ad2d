"""`envoy.service.ratelimit.v3.RateLimitService`: deciding, apart from any transport.

Each descriptor Envoy sends is either limited (it has an entry `quota=<N>/<window>`)
or not (answered OK). The other entries name the counter: `route=api, consumer=
alice` counts alice on that route; `consumer=alice` counts her everywhere.

A decision is two pure halves around one Redis round trip: `plan` reads the request
(and refuses abuse: more than MAX_DESCRIPTORS descriptors, a `hits_addend` over
MAX_HITS_ADDEND), `answer` builds the response from the counts. `RateLimitService`
joins them for the grpc.aio servicer on the xDS port (`decide`, async counters) and
for the dedicated server (`decide_sync`, `turnout/ratelimit/server.py`).

When Redis cannot be reached the answer follows the failure mode: `open` (the
default) lets the request through, `closed` answers OVER_LIMIT (429). Either way
it is logged (at most once per LOG_EVERY_SECONDS) and counted in
`turnout_ratelimit_redis_errors_total`.
"""

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

import grpc
from envoy.service.ratelimit.v3 import rls_pb2, rls_pb2_grpc
from envoy.service.ratelimit.v3.rls_pb2 import RateLimitRequest, RateLimitResponse
from google.protobuf.message import DecodeError
from prometheus_client import Counter
from redis import RedisError

from turnout.ratelimit.counters import RedisCounters, Window, window_for

log = logging.getLogger(__name__)

SERVICE_NAME = rls_pb2.DESCRIPTOR.services_by_name["RateLimitService"].full_name
SHOULD_RATE_LIMIT = f"/{SERVICE_NAME}/ShouldRateLimit"
"""The gRPC method path Envoy's `ratelimit` filter calls."""
QUOTA_KEY = "quota"
LOG_EVERY_SECONDS = 10.0
MAX_DESCRIPTORS = 64
"""Descriptors in one call. Turnout's routes send one per quota window (a handful);
each limited one is a Redis key that lives for its window, up to 30 days."""
MAX_HITS_ADDEND = 1_000
"""Hits one call may add. Turnout's routes count each request once (hits_addend 0
or 1); a large value would put a consumer over its quota for the whole window."""
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
_DECIDED_OK, _DECIDED_OVER = DECISIONS.labels("ok"), DECISIONS.labels("over_limit")
REDIS_ERRORS = Counter(
    "turnout_ratelimit_redis_errors", "Decisions made without Redis, by failure mode.", ["mode"]
)


class FailureMode(StrEnum):
    OPEN = "open"
    CLOSED = "closed"


class InvalidRequest(Exception):
    """A request the service refuses (INVALID_ARGUMENT); the message names the field."""


class SyncCounters(Protocol):
    """What `decide_sync` needs: `turnout.ratelimit.batch.BatchedCounters`."""

    prefix: str

    def hit(self, windows: list[Window], hits: int) -> list[int]: ...


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


def quota_window(quota: Quota, now: float, prefix: str) -> Window:
    """The counter `quota` counts in at `now`: the one key layout, for deciding and
    for reading (`turnout.ratelimit.usage`)."""
    return window_for(quota.identity, _UNITS[quota.unit][0], now, prefix)


@dataclass(frozen=True)
class Plan:
    """What one request asks: its limited descriptors and their counters."""

    size: int
    """How many descriptors the request has (one status each)."""
    limited: list[tuple[int, Quota]]
    """(descriptor index, quota) of the descriptors that carry a quota."""
    windows: list[Window]
    """The counter of each limited descriptor, in the same order."""
    hits: int
    """What to add to each counter."""


def plan(request: RateLimitRequest, now: float, prefix: str) -> Plan:
    """Read a request; `InvalidRequest` for one that asks too much."""
    size = len(request.descriptors)
    if size > MAX_DESCRIPTORS:
        raise InvalidRequest(f"descriptors: {size} in one call, at most {MAX_DESCRIPTORS}")
    if request.hits_addend > MAX_HITS_ADDEND:
        raise InvalidRequest(
            f"hits_addend: {request.hits_addend} is more than {MAX_HITS_ADDEND} hits in one call"
        )
    limited = []
    for i, descriptor in enumerate(request.descriptors):
        quota = parse_quota(request.domain, [(e.key, e.value) for e in descriptor.entries])
        if quota is not None:
            limited.append((i, quota))
    windows = [quota_window(q, now, prefix) for _, q in limited]
    return Plan(size, limited, windows, request.hits_addend or 1)


def answer(
    planned: Plan, counts: Sequence[int | None], failure_mode: FailureMode
) -> RateLimitResponse:
    """The response for counts after the hits (None: Redis unreachable)."""
    statuses = [
        RateLimitResponse.DescriptorStatus(code=RateLimitResponse.OK) for _ in range(planned.size)
    ]
    overall = RateLimitResponse.OK
    for (i, quota), window, count in zip(planned.limited, planned.windows, counts, strict=True):
        status = statuses[i]
        status.current_limit.requests_per_unit = quota.requests
        status.current_limit.unit = _UNITS[quota.unit][1]
        status.duration_until_reset.seconds = window.reset_in
        if count is None:
            over = failure_mode is FailureMode.CLOSED
            status.limit_remaining = 0
        else:
            over = count > quota.requests
            status.limit_remaining = max(0, quota.requests - count)
        if over:
            status.code = RateLimitResponse.OVER_LIMIT
            overall = RateLimitResponse.OVER_LIMIT
        (_DECIDED_OVER if over else _DECIDED_OK).inc()
    if overall == RateLimitResponse.OVER_LIMIT:
        # Envoy's x-ratelimit-* headers describe the status with the lowest remaining,
        # the first on a tie: on a refusal, only the limits that refused may be it.
        for status in statuses:
            if status.code == RateLimitResponse.OK:
                status.ClearField("current_limit")
    return RateLimitResponse(overall_code=overall, statuses=statuses)


_ALL_OK = [
    answer(Plan(size, [], [], 1), [], FailureMode.OPEN).SerializeToString()
    for size in range(MAX_DESCRIPTORS + 1)
]
"""The answer to a request without quotas, by its number of descriptors."""


class RateLimitService(rls_pb2_grpc.RateLimitServiceServicer):
    """Answers Envoy's `ShouldRateLimit` from Redis counters."""

    def __init__(
        self,
        counters: RedisCounters | SyncCounters | None,
        failure_mode: FailureMode,
    ) -> None:
        self._counters = counters
        self._failure_mode = failure_mode
        self._last_error_log = 0.0

    async def ShouldRateLimit(  # noqa: N802 (gRPC method name)
        self, request: RateLimitRequest, context: grpc.aio.ServicerContext
    ) -> RateLimitResponse:
        try:
            return await self.decide(request)
        except InvalidRequest as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
            raise  # abort raises; this line is never reached

    async def decide(
        self, request: RateLimitRequest, now: float | None = None
    ) -> RateLimitResponse:
        planned = plan(request, time.time() if now is None else now, self._prefix)
        if not planned.windows:
            return answer(planned, [], self._failure_mode)
        counts: list[int | None]
        if self._counters is None:
            counts = self._redis_failed(planned, "TURNOUT_REDIS_URL is not set")
        else:
            try:
                if isinstance(self._counters, RedisCounters):
                    counts = list(await self._counters.hit(planned.windows, planned.hits))
                else:  # thread-batched counters, from the event loop
                    counts = list(
                        await asyncio.to_thread(self._counters.hit, planned.windows, planned.hits)
                    )
            except (RedisError, OSError) as exc:
                counts = self._redis_failed(planned, f"Redis unreachable: {exc}")
        return answer(planned, counts, self._failure_mode)

    def decide_wire(self, message: bytes) -> bytes:
        """`decide` on serialized messages, for a thread of grpcio's sync server
        (`server.py`; counters: `BatchedCounters`). `InvalidRequest` if refused."""
        try:
            request = RateLimitRequest.FromString(message)
        except DecodeError as exc:
            raise InvalidRequest(f"not a RateLimitRequest: {exc}") from exc
        planned = plan(request, time.time(), self._prefix)
        if not planned.windows:  # nothing to count: the answer is known in advance
            return _ALL_OK[planned.size]
        counts: list[int | None]
        if self._counters is None:
            counts = self._redis_failed(planned, "TURNOUT_REDIS_URL is not set")
        elif isinstance(self._counters, RedisCounters):
            raise TypeError("decide_wire runs in a thread: it needs BatchedCounters")
        else:
            try:
                counts = list(self._counters.hit(planned.windows, planned.hits))
            except (RedisError, OSError) as exc:
                counts = self._redis_failed(planned, f"Redis unreachable: {exc}")
        return answer(planned, counts, self._failure_mode).SerializeToString()

    @property
    def _prefix(self) -> str:
        return self._counters.prefix if self._counters else ""

    def _redis_failed(self, planned: Plan, reason: str) -> list[int | None]:
        REDIS_ERRORS.labels(self._failure_mode.value).inc()
        now = time.monotonic()
        if now - self._last_error_log >= LOG_EVERY_SECONDS:
            self._last_error_log = now
            log.warning(
                "rate limit quotas cannot be counted (%s); failing %s", reason, self._failure_mode
            )
        return [None] * len(planned.windows)


def add_rate_limit_service(server: grpc.aio.Server, service: RateLimitService) -> None:
    rls_pb2_grpc.add_RateLimitServiceServicer_to_server(service, server)

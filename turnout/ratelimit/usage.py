"""How much of each consumer's quota is used: the rate limit service's counters, read.

The key of a counter is computed by the service's own functions (`parse_quota`,
`quota_window`) from the descriptor Envoy sends (`consumer_quota_entries`), so the
dashboard reads exactly the key the service increments. One MGET per call, with a
short timeout: an unreachable Redis makes the figures unknown, never the page slow
or broken.
"""

import time
from collections.abc import Iterable
from dataclasses import dataclass

import redis
from redis import RedisError
from redis.backoff import NoBackoff
from redis.retry import Retry

from turnout.models.consumer import ConsumerSpec
from turnout.models.limits import Limit
from turnout.ratelimit.counters import DEFAULT_PREFIX
from turnout.ratelimit.service import parse_quota, quota_window
from turnout.xds.translate.ratelimit import RATELIMIT_DOMAIN, consumer_quota_entries

TIMEOUT_SECONDS = 0.25
"""Connect and read timeout of the one MGET: a page waits at most about this long."""
MAX_KEYS = 10_000
"""Counters read in one MGET; quotas beyond it show as unknown."""


@dataclass(frozen=True)
class QuotaUse:
    limit: Limit
    used: int | None
    """Requests counted in the current window; None: unknown (Redis unreachable)."""
    resets_in: int
    """Seconds until the current window ends."""


def consumer_quota_key(name: str, limit: Limit, now: float, prefix: str) -> tuple[str, int]:
    """(Redis key, seconds until reset) of consumer `name`'s counter for `limit` at `now`."""
    quota = parse_quota(RATELIMIT_DOMAIN, consumer_quota_entries(name, limit))
    assert quota is not None, limit  # a valid Limit always makes a valid quota entry
    window = quota_window(quota, now, prefix)
    return window.key, window.reset_in


class QuotaReader:
    """Reads consumers' quota counters from the Redis the rate limit service counts in."""

    def __init__(
        self, url: str, prefix: str = DEFAULT_PREFIX, timeout: float = TIMEOUT_SECONDS
    ) -> None:
        self.prefix = prefix
        # A synchronous client: pages are built in a worker thread (the pool is thread-safe).
        # No retries: one attempt bounds the wait to the timeout.
        self._redis = redis.Redis.from_url(
            url,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), 0),
        )

    def used(
        self, consumers: Iterable[ConsumerSpec], now: float | None = None
    ) -> dict[str, list[QuotaUse]]:
        """Each consumer with a quota → its quotas' use, in declaration order."""
        at = time.time() if now is None else now
        wanted: list[tuple[str, Limit, str, int]] = []
        for consumer in consumers:
            for limit in consumer.limits.quota if consumer.limits else []:
                key, resets_in = consumer_quota_key(consumer.name, limit, at, self.prefix)
                wanted.append((consumer.name, limit, key, resets_in))
        counts: list[int | None] = [None] * len(wanted)
        read = wanted[:MAX_KEYS]
        if read:
            try:
                values = self._redis.mget([key for _, _, key, _ in read])
                counts[: len(read)] = [int(v) if v is not None else 0 for v in values]
            except (RedisError, OSError, ValueError):
                pass  # unknown: the page still renders
        out: dict[str, list[QuotaUse]] = {}
        for (name, limit, _key, resets_in), count in zip(wanted, counts, strict=True):
            out.setdefault(name, []).append(QuotaUse(limit, count, resets_in))
        return out

    def close(self) -> None:
        self._redis.close()

"""The dashboard's quota figures: the very counter the rate limit service increments."""

import time

from rl_requests import request

from turnout.models.consumer import ConsumerSpec
from turnout.ratelimit.counters import RedisCounters
from turnout.ratelimit.service import FailureMode, RateLimitService
from turnout.ratelimit.usage import QuotaReader

NOW = 1_700_000_000.0
UNREACHABLE = "redis://127.0.0.1:1/0"
ACME = ConsumerSpec.model_validate(
    {
        "name": "acme",
        "limits": {"quota": [{"requests": 10, "per": "day"}, {"requests": 3, "per": "hour"}]},
    }
)


async def test_used_counts_what_the_service_counted_for_the_consumer_descriptor(
    redis_url: str, redis_prefix: str
) -> None:
    counters = RedisCounters(redis_url, redis_prefix)
    service = RateLimitService(counters, FailureMode.OPEN)
    # The descriptors Envoy sends for acme's consumer quotas (translate/ratelimit.py).
    sent = request({"consumer": "acme", "quota": "10/day"}, {"consumer": "acme", "quota": "3/hour"})
    for _ in range(4):
        await service.decide(sent, NOW)
    await counters.close()
    reader = QuotaReader(redis_url, redis_prefix)
    try:
        other = ConsumerSpec.model_validate(
            {"name": "bob", "limits": {"quota": [{"requests": 5, "per": "day"}]}}
        )
        used = reader.used([ACME, other, ConsumerSpec(name="free")], now=NOW)
        assert [(u.limit.per.value, u.used) for u in used["acme"]] == [("day", 4), ("hour", 4)]
        assert [u.used for u in used["bob"]] == [0]
        assert "free" not in used
        assert 0 < used["acme"][1].resets_in <= 3600
        # The next day is another window: nothing used yet.
        assert [u.used for u in reader.used([ACME], now=NOW + 86400)["acme"]] == [0, 0]
    finally:
        reader.close()


def test_unreachable_redis_is_unknown_and_quick() -> None:
    reader = QuotaReader(UNREACHABLE, timeout=0.25)
    started = time.monotonic()
    used = reader.used([ACME], now=NOW)
    assert time.monotonic() - started < 1.0
    assert [u.used for u in used["acme"]] == [None, None]
    reader.close()

"""The rate limit service deciding against real Redis, and without it."""

import asyncio
from collections.abc import AsyncIterator

import pytest
import redis
from envoy.service.ratelimit.v3.rls_pb2 import RateLimitResponse
from rl_requests import request

from turnout.ratelimit.counters import RedisCounters
from turnout.ratelimit.service import FailureMode, RateLimitService, parse_quota

OK, OVER = RateLimitResponse.OK, RateLimitResponse.OVER_LIMIT
NOW = 1_700_000_000.0  # a fixed clock: windows never roll over mid-test
UNREACHABLE = "redis://127.0.0.1:1/0"


@pytest.fixture
async def service(redis_url: str, redis_prefix: str) -> AsyncIterator[RateLimitService]:
    counters = RedisCounters(redis_url, redis_prefix)
    yield RateLimitService(counters, FailureMode.OPEN)
    await counters.close()


def test_parse_quota() -> None:
    assert parse_quota("d", [("route", "r"), ("quota", "5/day")]) is not None
    assert parse_quota("d", [("route", "r")]) is None
    assert parse_quota("d", [("quota", "-1/day")]) is None
    assert parse_quota("d", [("quota", "5/fortnight")]) is None


async def test_n_requests_pass_then_over_limit_with_headers_data(
    service: RateLimitService,
) -> None:
    alice = {"route": "api", "consumer": "alice", "quota": "3/day"}
    codes = [(await service.decide(request(alice), NOW)).overall_code for _ in range(5)]
    assert codes == [OK, OK, OK, OVER, OVER]
    # Another consumer, and the same consumer on another route, count apart.
    assert (await service.decide(request({**alice, "consumer": "bob"}), NOW)).overall_code == OK
    assert (await service.decide(request({**alice, "route": "x"}), NOW)).overall_code == OK
    status = (await service.decide(request(alice), NOW)).statuses[0]
    assert status.current_limit.requests_per_unit == 3
    assert status.current_limit.unit == RateLimitResponse.RateLimit.DAY
    assert status.limit_remaining == 0
    assert 0 < status.duration_until_reset.seconds <= 86400
    # The next day is a new window.
    assert (await service.decide(request(alice), NOW + 86400)).overall_code == OK


async def test_descriptors_without_quota_and_hits_addend(service: RateLimitService) -> None:
    response = await service.decide(request({"route": "api"}, {"quota": "10/hour"}, hits=4), NOW)
    assert [s.code for s in response.statuses] == [OK, OK]
    assert response.statuses[1].limit_remaining == 6
    response = await service.decide(request({"quota": "10/hour"}, hits=7), NOW)
    assert response.overall_code == OVER


async def test_replicas_share_counters(redis_url: str, redis_prefix: str) -> None:
    a, b = RedisCounters(redis_url, redis_prefix), RedisCounters(redis_url, redis_prefix)
    try:
        one, two = RateLimitService(a, FailureMode.OPEN), RateLimitService(b, FailureMode.OPEN)
        d = {"consumer": "c", "quota": "4/minute"}
        codes = [(await svc.decide(request(d), NOW)).overall_code for svc in (one, two) * 3]
        assert codes == [OK, OK, OK, OK, OVER, OVER]
    finally:
        await a.close()
        await b.close()
    client = redis.Redis.from_url(redis_url)
    try:
        assert list(client.scan_iter(match=f"{redis_prefix}*"))  # cleaned up by the fixture
    finally:
        client.close()


async def test_concurrent_calls_on_one_counter_each_get_their_own_count(
    service: RateLimitService,
) -> None:
    """Calls batched together share one Redis increment but still count one by one."""
    hot = {"route": "api", "consumer": "hot", "quota": "25/day"}
    cold = {"route": "api", "consumer": "cold", "quota": "25/day"}
    calls = [service.decide(request(hot if i % 4 else cold, hits=2), NOW) for i in range(40)]
    responses = await asyncio.gather(*calls)
    hot_calls = [r for i, r in enumerate(responses) if i % 4]
    cold_calls = responses[::4]
    # Each call sees its own count, as if they had come one by one: 2 hits each.
    fitting = [r.statuses[0].limit_remaining for r in hot_calls if r.overall_code == OK]
    assert sorted(fitting, reverse=True) == list(range(23, 0, -2))  # 12 calls, 24 hits
    assert sum(r.overall_code == OVER for r in hot_calls) == 18
    assert [r.statuses[0].limit_remaining for r in cold_calls] == list(range(23, 4, -2))


@pytest.mark.parametrize(("mode", "expected"), [(FailureMode.OPEN, OK), (FailureMode.CLOSED, OVER)])
async def test_unreachable_redis_follows_the_failure_mode(
    mode: FailureMode, expected: int, caplog: pytest.LogCaptureFixture
) -> None:
    counters = RedisCounters(UNREACHABLE, "x:")
    try:
        service = RateLimitService(counters, mode)
        response = await service.decide(request({"consumer": "c", "quota": "1/day"}), NOW)
    finally:
        await counters.close()
    assert response.overall_code == expected
    assert f"failing {mode.value}" in caplog.text
    # Unlimited descriptors never need Redis.
    assert (await service.decide(request({"route": "r"}), NOW)).overall_code == OK

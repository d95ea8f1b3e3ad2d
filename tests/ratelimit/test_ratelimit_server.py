"""The rate limit service's own port (`turnout.ratelimit.server`, grpcio's sync server)
with grpcio's client over loopback: decisions counted in real Redis by concurrent calls
sharing pipelines, failure modes without Redis, refused requests (too many descriptors,
a huge hits_addend, a malformed or oversized message), and a port already taken."""

import socket
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest
import redis
from envoy.service.ratelimit.v3.rls_pb2 import RateLimitRequest, RateLimitResponse
from envoy.service.ratelimit.v3.rls_pb2_grpc import RateLimitServiceStub
from rl_requests import request

from turnout.ratelimit.batch import BatchedCounters
from turnout.ratelimit.server import MAX_MESSAGE, RateLimitServer
from turnout.ratelimit.service import (
    MAX_DESCRIPTORS,
    MAX_HITS_ADDEND,
    SHOULD_RATE_LIMIT,
    FailureMode,
    RateLimitService,
    answer,
    plan,
)

OK, OVER = RateLimitResponse.OK, RateLimitResponse.OVER_LIMIT
DEADLINE = 5.0
UNREACHABLE = "redis://127.0.0.1:1/0"


def serve(counters: BatchedCounters | None, mode: FailureMode = FailureMode.OPEN) -> Iterator[str]:
    server = RateLimitServer(RateLimitService(counters, mode))
    port = server.start("127.0.0.1:0")
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.stop(0)
        if counters is not None:
            counters.close()


@pytest.fixture
def address(redis_url: str, redis_prefix: str) -> Iterator[str]:
    yield from serve(BatchedCounters(redis_url, redis_prefix))


@pytest.fixture
def stub(address: str) -> Iterator[RateLimitServiceStub]:
    with grpc.insecure_channel(address) as channel:
        yield RateLimitServiceStub(channel)


def test_a_quota_holds_and_the_answer_carries_the_limit(stub: RateLimitServiceStub) -> None:
    alice = {"route": "api", "consumer": "alice", "quota": "3/day"}
    codes = [stub.ShouldRateLimit(request(alice), timeout=DEADLINE).overall_code for _ in range(5)]
    assert codes == [OK, OK, OK, OVER, OVER]
    status = stub.ShouldRateLimit(request(alice), timeout=DEADLINE).statuses[0]
    assert status.current_limit.requests_per_unit == 3
    assert status.current_limit.unit == RateLimitResponse.RateLimit.DAY
    assert status.limit_remaining == 0
    assert 0 < status.duration_until_reset.seconds <= 86400
    # Descriptors without a quota are OK, one status each, without Redis.
    response = stub.ShouldRateLimit(request({"route": "api"}, {"x": "y"}), timeout=DEADLINE)
    assert [s.code for s in response.statuses] == [OK, OK]


def test_a_refusal_names_only_the_quota_that_refused() -> None:
    # The route's quota used up exactly (remaining 0, still OK), the consumer's over:
    # Envoy's headers take the lowest remaining, the first on a tie, so the route's
    # limit must not be in the answer.
    route = {"route": "api", "consumer": "alice", "quota": "3/day"}
    consumer = {"consumer": "alice", "quota": "2/day"}
    planned = plan(request(route, consumer), 0.0, "t:")
    response = answer(planned, [3, 3], FailureMode.OPEN)
    assert response.overall_code == OVER
    first, second = response.statuses
    assert first.code == OK and not first.HasField("current_limit")
    assert second.code == OVER and second.current_limit.requests_per_unit == 2
    # Allowed, every status keeps its limit (the headers of a success).
    allowed = answer(planned, [1, 1], FailureMode.OPEN)
    assert [s.current_limit.requests_per_unit for s in allowed.statuses] == [3, 2]


def test_concurrent_calls_share_pipelines_and_each_is_counted(
    stub: RateLimitServiceStub,
) -> None:
    """200 calls from 32 threads on one counter of 150: exactly 150 pass, and the
    remaining counts they saw are each value once (one by one, as if serial)."""
    hot = {"route": "api", "consumer": "hot", "quota": "150/day"}
    with ThreadPoolExecutor(32) as pool:
        responses = list(
            pool.map(lambda _: stub.ShouldRateLimit(request(hot), timeout=DEADLINE), range(200))
        )
    passed = [r.statuses[0].limit_remaining for r in responses if r.overall_code == OK]
    assert sorted(passed) == list(range(150))
    assert sum(r.overall_code == OVER for r in responses) == 50


@pytest.mark.parametrize(("mode", "expected"), [(FailureMode.OPEN, OK), (FailureMode.CLOSED, OVER)])
def test_unreachable_redis_follows_the_failure_mode(
    mode: FailureMode, expected: int, caplog: pytest.LogCaptureFixture
) -> None:
    for address in serve(BatchedCounters(UNREACHABLE, "x:", timeout=0.2), mode):
        with grpc.insecure_channel(address) as channel:
            stub = RateLimitServiceStub(channel)
            limited = request({"consumer": "c", "quota": "1/day"})
            assert stub.ShouldRateLimit(limited, timeout=DEADLINE).overall_code == expected
            # Unlimited descriptors never need Redis.
            free = stub.ShouldRateLimit(request({"route": "r"}), timeout=DEADLINE)
            assert free.overall_code == OK
    assert f"failing {mode.value}" in caplog.text


def test_without_redis_the_failure_mode_applies() -> None:
    for address in serve(None, FailureMode.CLOSED):
        with grpc.insecure_channel(address) as channel:
            response = RateLimitServiceStub(channel).ShouldRateLimit(
                request({"consumer": "c", "quota": "9/day"}), timeout=DEADLINE
            )
            assert response.overall_code == OVER


@pytest.mark.parametrize(
    ("bad", "field"),
    [
        (request(*({"consumer": f"c{i}", "quota": "5/day"} for i in range(MAX_DESCRIPTORS + 1))),
         "descriptors"),
        (request({"consumer": "c", "quota": "5/day"}, hits=MAX_HITS_ADDEND + 1), "hits_addend"),
        (request({"consumer": "c", "quota": "5/day"}, hits=4_000_000_000), "hits_addend"),
    ],
    ids=["too-many-descriptors", "hits-addend-over-the-cap", "hits-addend-4e9"],
)  # fmt: skip
def test_abusive_requests_are_invalid_argument_and_count_nothing(
    stub: RateLimitServiceStub, redis_url: str, redis_prefix: str, bad: RateLimitRequest,
    field: str,
) -> None:  # fmt: skip
    """Refused before anything is counted: not one Redis key is created."""
    with pytest.raises(grpc.RpcError) as caught:
        stub.ShouldRateLimit(bad, timeout=DEADLINE)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in caught.value.details()
    client = redis.Redis.from_url(redis_url)
    try:
        assert list(client.scan_iter(match=f"{redis_prefix}*")) == []
    finally:
        client.close()
    # The caps themselves are allowed.
    ok = request({"consumer": "c", "quota": "5000/day"}, hits=MAX_HITS_ADDEND)
    assert stub.ShouldRateLimit(ok, timeout=DEADLINE).overall_code == OK


def test_malformed_and_oversized_messages_are_refused(address: str) -> None:
    with grpc.insecure_channel(address) as channel:
        raw = channel.unary_unary(SHOULD_RATE_LIMIT)  # bytes in, bytes out
        with pytest.raises(grpc.RpcError) as caught:
            raw(b"\xff\xff\xff", timeout=DEADLINE)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "not a RateLimitRequest" in caught.value.details()
        with pytest.raises(grpc.RpcError) as caught:
            raw(b"\x00" * (MAX_MESSAGE + 1), timeout=DEADLINE)
        assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        # The connection still serves.
        answer = RateLimitServiceStub(channel).ShouldRateLimit(request(), timeout=DEADLINE)
        assert answer.overall_code == OK


def test_a_port_in_use_is_an_error_not_a_second_listener() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        server = RateLimitServer(RateLimitService(None, FailureMode.OPEN))
        with pytest.raises(OSError, match="cannot listen"):
            server.start(f"127.0.0.1:{port}")
        server.stop(0)


async def test_the_xds_port_servicer_refuses_abuse_too(redis_url: str, redis_prefix: str) -> None:
    """`turnout serve` answers on its xDS port (grpc.aio): the same caps apply there."""
    from turnout.ratelimit.counters import RedisCounters
    from turnout.ratelimit.service import add_rate_limit_service

    counters = RedisCounters(redis_url, redis_prefix)
    server = grpc.aio.server()
    add_rate_limit_service(server, RateLimitService(counters, FailureMode.OPEN))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = RateLimitServiceStub(channel)
            bad = request({"consumer": "c", "quota": "5/day"}, hits=4_000_000_000)
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await stub.ShouldRateLimit(bad, timeout=DEADLINE)
            assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert "hits_addend" in (caught.value.details() or "")
            good = request({"consumer": "c", "quota": "5/day"})
            assert (await stub.ShouldRateLimit(good, timeout=DEADLINE)).overall_code == OK
    finally:
        await server.stop(0)
        await counters.close()

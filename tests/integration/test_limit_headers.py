"""Bursts and quotas together through a real Envoy and real Redis: a consumer's own
burst replaces the route's whatever the windows; every 429 carries one set of
`x-ratelimit-*` headers, from the limit that refused; and what a refused request
counts against (measured here, documented in the README).
"""

import time
from typing import Any

import httpx
import pytest
import redis

from turnout.testing.processes import AdminClient, EchoUpstream, EnvoyProcess, wait_for

SECRET_KEY = "integration-test-secret-key"  # as in conftest.py
HEADERS = ("x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset")
pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


@pytest.fixture
def turnout_env(redis_env: dict[str, str]) -> dict[str, str]:
    """serve's own rate limit service counts quotas in this test's Redis keys."""
    return {"TURNOUT_SECRET_KEY": SECRET_KEY, **redis_env}


@pytest.fixture
def turnout_xds_mode() -> str:
    """Limits do not depend on the xDS variant (test_limits.py runs both)."""
    return "sotw"


def _declare(
    admin: AdminClient,
    upstream: EchoUpstream,
    route_limits: dict[str, Any],
    consumers: dict[str, dict[str, Any] | None],
) -> dict[str, str]:
    admin.create("services", {"name": "blue", "url": upstream.url})
    keys = {}
    for name, limits in consumers.items():
        admin.create("consumers", {"name": name} | ({"limits": limits} if limits else {}))
        response = admin.http.post(f"/consumers/{name}/keys", json={})
        assert response.status_code == 201, response.text
        keys[name] = response.json()["key"]
    admin.create(
        "routes",
        {"name": "api", "paths": ["/api"], "service": "blue", "auth": {}, "limits": route_limits},
    )
    return keys


def _burst(http: httpx.Client, url: str, key: str, n: int) -> list[httpx.Response]:
    return [http.get(f"{url}/api", headers={"apikey": key}) for _ in range(n)]


def _one_set(response: httpx.Response) -> dict[str, str]:
    """The response's x-ratelimit-* headers; each must appear exactly once."""
    got = {h: response.headers.get_list(h) for h in HEADERS}
    assert all(len(v) == 1 for v in got.values()), got
    return {h: v[0] for h, v in got.items()}


def _limit(response: httpx.Response) -> str:
    """The ceiling the response reports: `5` of `5, 5;w=86400`."""
    return _one_set(response)["x-ratelimit-limit"].split(",")[0]


def test_an_own_burst_replaces_the_routes_in_every_window(
    admin: AdminClient, envoy: EnvoyProcess, upstreams: dict[str, EchoUpstream], http: httpx.Client
) -> None:
    keys = _declare(
        admin,
        upstreams["blue"],
        {"burst": [{"requests": 3, "per": "minute"}]},
        {"alice": {"burst": [{"requests": 20, "per": "second"}]}, "bob": None},
    )
    admin.wait_synced(envoy.node_id, admin.revision())
    # 10 requests fit alice's own 20/second however slowly they go; the route's
    # 3/minute is not hers.
    alice = _burst(http, envoy.url, keys["alice"], 10)
    assert [r.status_code for r in alice] == [200] * 10
    bob = _burst(http, envoy.url, keys["bob"], 5)
    assert [r.status_code for r in bob] == [200, 200, 200, 429, 429]
    assert _limit(bob[3]) == "3"
    # A route without limits of its own: alice's burst applies there too, and bob, whom
    # no burst covers, gets no x-ratelimit-* headers (not the unlimited bucket's).
    revision = admin.create(
        "routes", {"name": "plain", "paths": ["/plain"], "service": "blue", "auth": {}}
    )
    admin.wait_synced(envoy.node_id, revision)
    plain = http.get(f"{envoy.url}/plain", headers={"apikey": keys["bob"]})
    assert plain.status_code == 200
    assert not [h for h in HEADERS if h in plain.headers], plain.headers
    own = http.get(f"{envoy.url}/plain", headers={"apikey": keys["alice"]})
    assert _limit(own) == "20"


def test_each_429_carries_the_headers_of_the_limit_that_refused(
    admin: AdminClient, envoy: EnvoyProcess, upstreams: dict[str, EchoUpstream], http: httpx.Client
) -> None:
    keys = _declare(
        admin,
        upstreams["blue"],
        {"quota": [{"requests": 4, "per": "day"}]},
        {
            "alice": {"burst": [{"requests": 100, "per": "minute"}]},  # a burst she won't reach
            "bob": None,
            "carol": {"burst": [{"requests": 2, "per": "minute"}]},
        },
    )
    admin.wait_synced(envoy.node_id, admin.revision())
    for name in ("alice", "bob"):
        got = _burst(http, envoy.url, keys[name], 6)
        assert [r.status_code for r in got] == [200] * 4 + [429] * 2, name
        for refused in got[4:]:
            assert _limit(refused) == "4", (name, refused.headers)  # the quota's, not 1e9 or 100
            assert _one_set(refused)["x-ratelimit-remaining"] == "0"
    carol = _burst(http, envoy.url, keys["carol"], 4)
    assert [r.status_code for r in carol] == [200, 200, 429, 429]
    for refused in carol[2:]:
        assert _limit(refused) == "2", refused.headers  # her burst's
    # Not a header of the unlimited default bucket anywhere.
    for response in carol[:2]:
        assert "1000000000" not in str(response.headers.get_list("x-ratelimit-limit"))


def test_what_a_refused_request_counts_against(
    admin: AdminClient,
    envoy: EnvoyProcess,
    upstreams: dict[str, EchoUpstream],
    http: httpx.Client,
    redis_url: str,
    redis_prefix: str,
) -> None:
    """Measured for the README: a burst refusal never reaches the quota counters; a quota
    refusal has taken a burst token; every quota counts a request any quota refused."""
    keys = _declare(
        admin,
        upstreams["blue"],
        {"burst": [{"requests": 3, "per": "minute"}], "quota": [{"requests": 2, "per": "day"}]},
        {"alice": None, "bob": {"quota": [{"requests": 1, "per": "day"}]}},
    )
    admin.wait_synced(envoy.node_id, admin.revision())
    alice = _burst(http, envoy.url, keys["alice"], 5)
    assert [r.status_code for r in alice] == [200, 200, 429, 429, 429]
    # 3rd: refused by the quota (2/day) after taking the burst's last token; so the 4th
    # is refused by the burst (3/minute), and never reached the quota's counter.
    assert [_limit(r) for r in alice[2:]] == ["2", "3", "3"]
    bob = _burst(http, envoy.url, keys["bob"], 2)
    assert [r.status_code for r in bob] == [200, 429]
    client = redis.Redis.from_url(redis_url)
    try:
        counts = sorted(int(client.get(k) or 0) for k in client.scan_iter(match=f"{redis_prefix}*"))
    finally:
        client.close()
    # alice's route counter saw 3 requests (the 3rd refused by it, the 4th and 5th by
    # the burst never counted); bob's route counter and his own counter saw both of
    # his requests, the 2nd refused by his own quota only.
    assert counts == [2, 2, 3], counts


def test_a_refusal_by_the_per_second_burst_takes_a_per_minute_token(
    admin: AdminClient, envoy: EnvoyProcess, upstreams: dict[str, EchoUpstream], http: httpx.Client
) -> None:
    """Envoy takes a token from each matching bucket, slowest-filling first, and stops
    at the first that is empty: the per-minute token of a request the per-second
    bucket refuses is gone."""
    keys = _declare(
        admin,
        upstreams["blue"],
        {"burst": [{"requests": 1, "per": "second"}, {"requests": 3, "per": "minute"}]},
        {"alice": None},
    )
    admin.wait_synced(envoy.node_id, admin.revision())

    def get() -> httpx.Response:
        return http.get(f"{envoy.url}/api", headers={"apikey": keys["alice"]})

    first, second = get(), get()  # minute 3 → 1, the second refused by 1/second
    assert (first.status_code, second.status_code, _limit(second)) == (200, 429, "1")
    # Once the per-second bucket has a token again (it refills one per second), the
    # third takes the last minute token and the fourth meets the empty minute bucket.
    # (Each try refused by the second would take a minute token too, so wait on the
    # clock rather than retry.)
    started = time.monotonic()
    wait_for(lambda: time.monotonic() - started >= 1.2, 5, "the per-second bucket to refill")
    third = get()
    assert third.status_code == 200, third.headers
    wait_for(lambda: time.monotonic() - started >= 2.4, 5, "the per-second bucket to refill")
    fourth = get()
    assert (fourth.status_code, _limit(fourth)) == (429, "3")

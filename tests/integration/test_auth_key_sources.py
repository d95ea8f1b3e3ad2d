"""Key sources combine on one route, in any order, through a real Envoy.

Every ordered combination of a path template, a header and a query parameter is one
route. A request is authenticated by the first header or query source carrying a
key, in the route's order; the path template is read only when none of them does
(any path matches a template, so read first it would take `today` in
`/forecast/today` for a key), and the key segment is cut from the path only when the
key came from the path. The echo upstream reports the path and headers it got.
"""

import itertools
import json
from typing import Any

import httpx
import pytest

from turnout.testing.processes import AdminClient, EchoUpstream, EnvoyProcess

KINDS = ("path", "header", "query")
ORDERS = [
    order for n in (1, 2, 3) for order in itertools.permutations(KINDS, n)
]  # 3 + 6 + 6 = 15 routes
BAD = "not-a-real-key-000000"


def _source(kind: str, prefix: str) -> dict[str, str]:
    return {"path": {"path": f"{prefix}/{{key}}"}, "header": {"header": "x-api-key"}}.get(
        kind, {"query": "apikey"}
    )


def _declare(admin: AdminClient, upstream: EchoUpstream) -> tuple[str, int]:
    admin.create("services", {"name": "blue", "url": upstream.url})
    admin.create("consumers", {"name": "alice"})
    response = admin.http.post("/consumers/alice/keys", json={})
    assert response.status_code == 201, response.text
    revision = 0
    for i, order in enumerate(ORDERS):
        prefix = f"/c{i}"
        revision = admin.create(
            "routes",
            {
                "name": f"c{i}",
                "paths": [prefix],
                "service": "blue",
                "auth": {"key_sources": [_source(kind, prefix) for kind in order]},
            },
        )
    return str(response.json()["key"]), revision


def _send(kind: str, prefix: str, key: str) -> tuple[str, dict[str, Any]]:
    """(URL path, request options) carrying `key` in a source of `kind`."""
    if kind == "path":
        return f"{prefix}/{key}/today/paris", {}
    if kind == "header":
        return f"{prefix}/today/paris", {"headers": {"x-api-key": key}}
    return f"{prefix}/today/paris", {"params": {"apikey": key}}


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_every_combination_and_order_of_key_sources(
    admin: AdminClient,
    envoy: EnvoyProcess,
    upstreams: dict[str, EchoUpstream],
    http: httpx.Client,
) -> None:
    key, revision = _declare(admin, upstreams["blue"])
    admin.wait_synced(envoy.node_id, revision)
    failures: list[str] = []

    def check(order: tuple[str, ...], what: str, got: httpx.Response, status: int) -> None:
        if got.status_code != status:
            failures.append(f"{order} {what}: {got.status_code}, wanted {status}")

    for i, order in enumerate(ORDERS):
        prefix = f"/c{i}"
        check(order, "no key", http.get(f"{envoy.url}{prefix}/today/paris"), 401)
        for kind in order:
            path, options = _send(kind, prefix, key)
            got = http.get(envoy.url + path, **options)
            check(order, f"key in {kind}", got, 200)
            if got.status_code != 200:
                continue
            seen = got.json()
            # Cut only when the key came from the path; never a segment of a header key.
            if seen["path"].split("?")[0] != f"{prefix}/today/paris":
                failures.append(f"{order} key in {kind}: upstream path {seen['path']!r}")
            if seen["headers"].get("x-consumer-name") != "alice":
                failures.append(f"{order} key in {kind}: consumer {seen['headers']}")
            if key in json.dumps(seen):
                failures.append(f"{order} key in {kind}: the key reached the upstream")
            bad_path, bad_options = _send(kind, prefix, BAD)
            check(order, f"bad key in {kind}", http.get(envoy.url + bad_path, **bad_options), 401)
        if "header" in order and "query" in order:
            # Both carry a key: the first of them in the route's order decides.
            header_first = order.index("header") < order.index("query")
            got = http.get(
                f"{envoy.url}{prefix}/x", headers={"x-api-key": key}, params={"apikey": BAD}
            )
            check(order, "good header, bad query", got, 200 if header_first else 401)
        if "path" in order and len(order) > 1:
            # An explicit key wins over the path segment, whatever the order.
            other = next(k for k in order if k != "path")
            path, options = _send(other, f"{prefix}/{key}", BAD)
            check(
                order,
                f"path key with a bad {other} key",
                http.get(envoy.url + path, **options),
                401,
            )
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_split_by_consumer_keeps_the_source_of_the_key_on_its_second_match(
    admin: AdminClient,
    envoy: EnvoyProcess,
    upstreams: dict[str, EchoUpstream],
    http: httpx.Client,
) -> None:
    """Sticky and pinned by consumer: the router matches again after authentication,
    when the header key is gone; the path must still be cut only for a path key."""
    for name, upstream in upstreams.items():
        admin.create("services", {"name": name, "url": upstream.url})
    keys = {}
    for name in ("alice", "bob"):
        admin.create("consumers", {"name": name})
        keys[name] = admin.http.post(f"/consumers/{name}/keys", json={}).json()["key"]
    sources = [{"path": "/w/{key}"}, {"header": "x-api-key"}, {"query": "apikey"}]
    admin.create(
        "routes",
        {"name": "w", "paths": ["/w"], "service": "blue", "auth": {"key_sources": sources}},
    )
    revision = admin.create(
        "splits",
        {
            "name": "w-move",
            "route": "w",
            "targets": [{"service": "blue", "weight": 50}, {"service": "green", "weight": 50}],
            "sticky": {"consumer": True},
            "pins": [{"consumer": "alice", "service": "green"}],
        },
    )
    admin.wait_synced(envoy.node_id, revision)
    for name, key in keys.items():
        served = set()
        for kind in KINDS:
            path, options = _send(kind, "/w", key)
            for _ in range(3):
                got = http.get(envoy.url + path, **options)
                assert got.status_code == 200, (name, kind, got.text)
                seen = got.json()
                assert seen["path"].split("?")[0] == "/w/today/paris", (name, kind, seen)
                assert seen["headers"]["x-consumer-name"] == name
                assert "x-turnout-key-from" not in seen["headers"], seen
                assert key not in json.dumps(seen)
                served.add(seen["service"])
        assert len(served) == 1, (name, served)  # sticky: one target whatever the source
        if name == "alice":
            assert served == {"green"}  # pinned
    forged = http.get(f"{envoy.url}/w/{keys['bob']}/x", headers={"x-turnout-key-from": "other"})
    assert forged.status_code == 401

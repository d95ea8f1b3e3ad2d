"""Pins, stickiness, freezes and revision restore, as a real Envoy serves them."""

import json
import urllib.request
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from turnout.testing.processes import AdminClient, AdminError, EchoUpstream, EnvoyProcess, wait_for


def _declare(admin: AdminClient, upstreams: dict[str, EchoUpstream], **split: Any) -> int:
    for name, upstream in upstreams.items():
        admin.create("services", {"name": name, "url": upstream.url})
    admin.create("routes", {"name": "api", "paths": ["/api"], "service": "blue"})
    body = {
        "name": "api-move",
        "route": "api",
        "targets": [{"service": "blue", "weight": 100}, {"service": "green", "weight": 0}],
        **split,
    }
    return admin.create("splits", body)


def _served_by(http: httpx.Client, envoy: EnvoyProcess, n: int, **kwargs: Any) -> Counter[str]:
    return Counter(http.get(f"{envoy.url}/api/x", **kwargs).json()["service"] for _ in range(n))


def test_pins_and_sticky_split(
    admin: AdminClient, envoy: EnvoyProcess, upstreams: dict[str, EchoUpstream], http: httpx.Client
) -> None:
    revision = _declare(
        admin,
        upstreams,
        pins=[
            {"header": "x-canary", "value": "yes", "service": "green"},
            {"cookie": "beta", "value": "1", "service": "green"},
        ],
    )
    admin.wait_synced(envoy.node_id, revision)
    # green has weight 0: only pinned requests reach it.
    assert _served_by(http, envoy, 50) == {"blue": 50}
    assert _served_by(http, envoy, 50, headers={"x-canary": "yes"}) == {"green": 50}
    assert _served_by(http, envoy, 20, headers={"x-canary": "no"}) == {"blue": 20}
    cookies = {"cookie": "a=b; beta=1; c=d"}
    assert _served_by(http, envoy, 20, headers=cookies) == {"green": 20}
    assert _served_by(http, envoy, 20, headers={"cookie": "beta=10"}) == {"blue": 20}

    # Sticky 50/50 by consumer header: each consumer stays on one target.
    revision = admin.write(
        "PATCH",
        "/splits/api-move",
        {
            "targets": [{"service": "blue", "weight": 50}, {"service": "green", "weight": 50}],
            "sticky": {"header": "x-consumer"},
        },
    )
    admin.wait_synced(envoy.node_id, revision)
    placement = {}
    for consumer in range(20):
        seen = _served_by(http, envoy, 100, headers={"x-consumer": f"consumer-{consumer}"})
        assert len(seen) == 1, (consumer, seen)
        placement[consumer] = next(iter(seen))
    assert set(placement.values()) == {"blue", "green"}  # both targets get consumers
    # Without the header the choice stays random.
    assert set(_served_by(http, envoy, 100)) == {"blue", "green"}


def _route_config(envoy: EnvoyProcess) -> dict[str, Any]:
    url = f"{envoy.admin_url}/config_dump?resource=dynamic_route_configs"
    with urllib.request.urlopen(url, timeout=5) as response:
        (config,) = json.load(response)["configs"]
    return dict(config["route_config"])


def test_global_freeze_rollback_override_and_restore(
    admin: AdminClient, envoy: EnvoyProcess, upstreams: dict[str, EchoUpstream], http: httpx.Client
) -> None:
    plan = {"target": "green", "baseline": "blue", "hold_seconds": 3600}
    revision = _declare(admin, upstreams, plan=plan)
    revision = admin.write("POST", "/splits/api-move/advance")
    revision = admin.write("POST", "/splits/api-move/promote")
    admin.wait_synced(envoy.node_id, revision)
    served_at_n, config_at_n = _served_by(http, envoy, 20), _route_config(envoy)
    assert served_at_n == {"green": 20}
    n = revision

    freeze = admin.http.post("/freezes", json={"reason": "backup", "scope": {"all": True}})
    assert freeze.status_code == 201
    # A rollback always goes through, and Envoy follows it.
    revision = admin.write("POST", "/splits/api-move/rollback", {"reason": "customer reports"})
    admin.wait_synced(envoy.node_id, revision)
    assert _served_by(http, envoy, 20) == {"blue": 20}
    after_rollback = revision

    for method, path, body in [
        ("PATCH", "/routes/api", {"priority": 1}),
        ("POST", "/services", {"name": "x", "url": "http://127.0.0.1:9"}),
        ("PATCH", "/splits/api-move", {"tags": ["frozen"]}),
        ("POST", f"/revisions/{n}/restore", None),
    ]:
        with pytest.raises(AdminError) as refused:
            admin.write(method, path, body)
        assert refused.value.response.status_code == 423
        assert refused.value.response.json()["freeze"]["reason"] == "backup"
    assert admin.revision() == after_rollback
    assert admin.http.get("/revisions").json()["items"][0]["number"] == after_rollback

    # An admin override with a reason goes through and is audited.
    response = admin.http.patch(
        "/routes/api",
        json={"priority": 2},
        headers={"X-Turnout-Override-Reason": "INC-7 hotfix"},
    )
    assert response.status_code == 200
    (event,) = admin.http.get("/audit", params={"entity": "route/api"}).json()[:1]
    assert event["reason"].endswith("INC-7 hotfix") and "override of freeze" in event["reason"]

    # Lift; restore revision n: Envoy serves exactly what it served at n.
    admin.http.delete(f"/freezes/{freeze.json()['id']}")
    revision = admin.write("POST", f"/revisions/{n}/restore")
    assert revision > n
    admin.wait_synced(envoy.node_id, revision)
    assert _route_config(envoy) == config_at_n
    assert _served_by(http, envoy, 20) == served_at_n
    assert admin.http.get(f"/revisions/{n}/diff/{revision}").json() == {}


def test_scheduled_freeze_starts_and_ends_by_itself(
    admin: AdminClient, envoy: EnvoyProcess, upstreams: dict[str, EchoUpstream], http: httpx.Client
) -> None:
    _declare(admin, upstreams)
    start = datetime.now(UTC) + timedelta(seconds=1.5)
    response = admin.http.post(
        "/freezes",
        json={
            "reason": "maintenance window",
            "scope": {"services": ["green"]},
            "starts_at": start.isoformat(),
            "ends_at": (start + timedelta(seconds=2)).isoformat(),
        },
    )
    assert response.json()["state"] == "scheduled"
    timeouts = iter(range(100, 100_000))

    def patch_status() -> int:
        body = {"connect_timeout_ms": next(timeouts)}
        return admin.http.patch("/services/green", json=body).status_code

    assert patch_status() == 200
    wait_for(lambda: patch_status() == 423, 15, "the freeze to start")
    assert admin.http.patch("/services/blue", json={"connect_timeout_ms": 5}).status_code == 200
    wait_for(lambda: patch_status() == 200, 15, "the freeze to end")
    revision = admin.revision()
    admin.wait_synced(envoy.node_id, revision)
    assert _served_by(http, envoy, 5) == {"blue": 5}


def test_sticky_by_consumer_keeps_each_consumer_on_one_target(
    admin: AdminClient, envoy: EnvoyProcess, upstreams: dict[str, EchoUpstream], http: httpx.Client
) -> None:
    """The hash is the authenticated consumer: a forged consumer header changes nothing."""
    keys = {}
    for i in range(12):
        name = f"consumer-{i}"
        admin.create("consumers", {"name": name})
        key = f"sticky-key-{i:02d}-0123456789"
        response = admin.http.post(f"/consumers/{name}/keys", json={"key": key})
        assert response.status_code == 201, response.text
        keys[name] = key
    for name, upstream in upstreams.items():
        admin.create("services", {"name": name, "url": upstream.url})
    admin.create("routes", {"name": "api", "paths": ["/api"], "service": "blue", "auth": {}})
    revision = admin.create(
        "splits",
        {
            "name": "api-move",
            "route": "api",
            "targets": [{"service": "blue", "weight": 50}, {"service": "green", "weight": 50}],
            "sticky": {"consumer": True},
        },
    )
    admin.wait_synced(envoy.node_id, revision)
    placement = {}
    for name, key in keys.items():
        seen = Counter()
        for i in range(100):
            # A client-sent x-consumer-name is overwritten by the authenticated one.
            headers = {"x-api-key": key, "x-consumer-name": f"forged-{i}"}
            response = http.get(f"{envoy.url}/api/x", headers=headers)
            assert response.status_code == 200, response.text
            assert response.json()["headers"]["x-consumer-name"] == name
            seen[response.json()["service"]] += 1
        assert len(seen) == 1, (name, seen)
        placement[name] = next(iter(seen))
    assert set(placement.values()) == {"blue", "green"}, placement
    assert http.get(f"{envoy.url}/api/x").status_code == 401

    # Pin by consumer: consumer-3 always on green (weight 0); forging its name does not pin.
    revision = admin.write(
        "PATCH",
        "/splits/api-move",
        {
            "targets": [{"service": "blue", "weight": 100}, {"service": "green", "weight": 0}],
            "pins": [{"consumer": "consumer-3", "service": "green"}],
        },
    )
    admin.wait_synced(envoy.node_id, revision)

    def served(key: str, forged: str | None = None) -> Counter[str]:
        headers = {"x-api-key": key} | ({"x-consumer-name": forged} if forged else {})
        return Counter(
            http.get(f"{envoy.url}/api/x", headers=headers).json()["service"] for _ in range(30)
        )

    assert served(keys["consumer-3"]) == {"green": 30}
    assert served(keys["consumer-4"], forged="consumer-3") == {"blue": 30}
    assert served(keys["consumer-4"]) == {"blue": 30}
    forged = http.get(f"{envoy.url}/api/x", headers={"x-consumer-name": "consumer-3"})
    assert forged.status_code == 401

"""A declaration made through the admin API, served by a real Envoy over ADS."""

from collections import Counter
from collections.abc import Callable

import httpx
import pytest

from turnout.testing.processes import (
    AdminClient,
    AdminError,
    EchoUpstream,
    EnvoyProcess,
    TurnoutProcess,
    wait_for,
    wait_status,
)

ROUTES_STATS = r"rds\..*update_"


def declare_backends(admin: AdminClient, upstreams: dict[str, EchoUpstream]) -> int:
    revision = 0
    for name, upstream in upstreams.items():
        revision = admin.create("services", {"name": name, "url": upstream.url})
    return revision


def test_a_new_route_turns_404_into_200_from_the_right_upstream(
    admin: AdminClient,
    envoy: EnvoyProcess,
    upstreams: dict[str, EchoUpstream],
    http: httpx.Client,
) -> None:
    assert http.get(f"{envoy.url}/shop/cart").status_code == 404
    declare_backends(admin, upstreams)
    admin.create("routes", {"name": "shop", "paths": ["/shop"], "service": "green"})
    response = wait_status(http, f"{envoy.url}/shop/cart", 200)
    assert response.json()["service"] == "green"
    assert response.json()["path"] == "/shop/cart"
    unmatched = http.get(f"{envoy.url}/other")
    # Envoy says why, so the 404 is not mistaken for the upstream's.
    assert (unmatched.status_code, unmatched.text) == (404, "no route matched\n")


def test_split_90_10_then_0_100_leaves_the_weight_0_service_without_traffic(
    admin: AdminClient,
    envoy: EnvoyProcess,
    upstreams: dict[str, EchoUpstream],
    http: httpx.Client,
) -> None:
    declare_backends(admin, upstreams)
    admin.create("routes", {"name": "api", "paths": ["/"], "service": "blue"})
    revision = admin.create(
        "splits",
        {
            "name": "api-move",
            "route": "api",
            "targets": [{"service": "blue", "weight": 90}, {"service": "green", "weight": 10}],
        },
    )
    admin.wait_synced(envoy.node_id, revision)

    seen = Counter(http.get(f"{envoy.url}/x").json()["service"] for _ in range(1000))
    # Binomial(1000, 0.1): standard deviation 9.5, so 60..140 is more than 4 sigma.
    assert 60 <= seen["green"] <= 140, seen
    assert seen["blue"] + seen["green"] == 1000

    revision = admin.write(
        "PATCH",
        "/splits/api-move",
        {"targets": [{"service": "blue", "weight": 0}, {"service": "green", "weight": 100}]},
    )
    admin.wait_synced(envoy.node_id, revision)
    blue_before = upstreams["blue"].requests
    statuses = Counter(http.get(f"{envoy.url}/y").status_code for _ in range(300))
    assert statuses == {200: 300}
    assert upstreams["blue"].requests == blue_before


@pytest.mark.parametrize(
    ("collection", "body", "status", "field"),
    [
        ("routes", {"name": "r", "paths": ["/"], "service": "nope"}, 409, "service"),
        ("routes", {"name": "r", "paths": [{"regex": "[a-z"}], "service": "blue"}, 422, "paths"),
        (
            "splits",
            {
                "name": "s",
                "route": "ok",
                "targets": [{"service": "blue", "weight": 0}, {"service": "green", "weight": 0}],
            },
            422,
            "weight",
        ),
    ],
    ids=["unknown-service", "bad-regex", "all-weights-zero"],
)
def test_an_invalid_declaration_is_refused_and_nothing_reaches_envoy(
    admin: AdminClient,
    envoy: EnvoyProcess,
    upstreams: dict[str, EchoUpstream],
    http: httpx.Client,
    collection: str,
    body: dict[str, object],
    status: int,
    field: str,
) -> None:
    declare_backends(admin, upstreams)
    revision = admin.create("routes", {"name": "ok", "paths": ["/ok"], "service": "blue"})
    admin.wait_synced(envoy.node_id, revision)
    updates_before = envoy.stats(ROUTES_STATS)

    with pytest.raises(AdminError) as refused:
        admin.create(collection, body)
    assert refused.value.response.status_code == status
    assert field in refused.value.response.text

    assert admin.revision() == revision
    proxy = admin.proxy(envoy.node_id)
    assert proxy is not None and proxy["revision"] == revision
    assert envoy.stats(ROUTES_STATS) == updates_before
    assert http.get(f"{envoy.url}/ok").status_code == 200


def test_a_rejected_version_shows_in_proxies_is_not_resent_and_the_next_change_lands(
    admin: AdminClient,
    start_envoy: Callable[..., EnvoyProcess],
    upstreams: dict[str, EchoUpstream],
    http: httpx.Client,
) -> None:
    # This Envoy allows smaller regexes than Turnout checks for (Envoy's default is
    # 100), so a regex route Turnout accepts is one it must reject: a real NACK.
    envoy = start_envoy("strict-envoy", runtime={"re2.max_program_size.error_level": 8})
    declare_backends(admin, upstreams)
    good = admin.create("routes", {"name": "ok", "paths": ["/ok"], "service": "blue"})
    admin.wait_synced(envoy.node_id, good)

    admin.create(
        "routes",
        {"name": "fancy", "paths": [{"regex": "/v[0-9]+/items/[a-z]+"}], "service": "green"},
    )

    def rejected() -> str | None:
        proxy = admin.proxy(envoy.node_id)
        assert proxy is not None
        return next((t["last_nack"] for t in proxy["types"] if t["last_nack"]), None)

    wait_for(lambda: rejected() is not None, 10, "the NACK to show in GET /proxies")
    assert "program size" in (rejected() or "")
    proxy = admin.proxy(envoy.node_id)
    assert proxy is not None and proxy["revision"] == good  # still runs the good one
    assert http.get(f"{envoy.url}/ok").status_code == 200  # and keeps serving it
    assert http.get(f"{envoy.url}/v1/items/abc").status_code == 404

    fixed = admin.write("DELETE", "/routes/fancy")
    admin.create("routes", {"name": "more", "paths": ["/more"], "service": "green"})
    admin.wait_synced(envoy.node_id, fixed)
    assert wait_status(http, f"{envoy.url}/more", 200).json()["service"] == "green"
    stats = envoy.stats(ROUTES_STATS)
    rejected_count = sum(v for k, v in stats.items() if k.endswith("update_rejected"))
    assert rejected_count == 1, stats  # the rejected version was never sent again


def test_envoy_restarted_converges_again(
    admin: AdminClient,
    start_envoy: Callable[..., EnvoyProcess],
    upstreams: dict[str, EchoUpstream],
    http: httpx.Client,
) -> None:
    declare_backends(admin, upstreams)
    admin.create("routes", {"name": "api", "paths": ["/"], "service": "blue"})
    first = start_envoy("restarting")
    wait_status(http, f"{first.url}/", 200)
    first.stop()
    second = start_envoy(
        "restarting", listener_port=first.listener_port, admin_port=first.admin_port
    )
    # Ready means it received listeners and routes: the first request is served.
    assert http.get(f"{second.url}/").json()["service"] == "blue"


def test_envoy_keeps_serving_while_turnout_is_down_and_converges_when_it_returns(
    turnout: TurnoutProcess,
    admin: AdminClient,
    envoy: EnvoyProcess,
    upstreams: dict[str, EchoUpstream],
    http: httpx.Client,
) -> None:
    declare_backends(admin, upstreams)
    admin.create("routes", {"name": "api", "paths": ["/api"], "service": "blue"})
    wait_status(http, f"{envoy.url}/api", 200)

    turnout.stop(kill=True)
    statuses = Counter(http.get(f"{envoy.url}/api").status_code for _ in range(200))
    assert statuses == {200: 200}

    turnout.start()
    revision = admin.create("routes", {"name": "later", "paths": ["/later"], "service": "green"})
    admin.wait_synced(envoy.node_id, revision, timeout=30)  # Envoy reconnects with backoff
    assert http.get(f"{envoy.url}/later").json()["service"] == "green"
    assert http.get(f"{envoy.url}/api").json()["service"] == "blue"

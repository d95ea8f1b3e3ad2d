"""One entity a real Envoy rejects is quarantined; the rest of the fleet's changes flow.

The rejections are real. For routes, this Envoy runs with a lower RE2 program size limit
(runtime `re2.max_program_size.error_level`) than Turnout checks for (Envoy's
default, 100), as an Envoy of another version or with another runtime might. A
regex route the admin API accepts is then one this Envoy must refuse, and it
refuses the group's whole RouteConfiguration: without quarantine, no route change
would reach it until the regex route went away. For clusters, this Envoy
runs without its upstream TLS extension (`--disable-extensions`), as a trimmed or older
build might: an https service the admin API rightly accepts is one it must refuse.
"""

from collections.abc import Callable
from typing import Any

import httpx

from turnout.testing.processes import (
    AdminClient,
    EchoUpstream,
    EnvoyProcess,
    wait_for,
    wait_status,
)
from turnout.xds.snapshot import CLUSTER_TYPE, ROUTE_TYPE

STRICT_RUNTIME = {"re2.max_program_size.error_level": 8}
FANCY_REGEX = "/v[0-9]+/items/[a-z]+"
ROUTES_STATS = r"rds\..*update_"


def _types(proxy: dict[str, Any]) -> dict[str, str]:
    return {t["type_url"]: t["state"] for t in proxy["types"]}


def _proxy(admin: AdminClient, node_id: str) -> dict[str, Any]:
    proxy = admin.proxy(node_id)
    assert proxy is not None, f"{node_id} is not connected"
    return proxy


def test_a_rejected_route_is_quarantined_and_unrelated_routes_are_still_served(
    admin: AdminClient,
    start_envoy: Callable[..., EnvoyProcess],
    upstreams: dict[str, EchoUpstream],
    http: httpx.Client,
) -> None:
    envoy = start_envoy("strict-envoy", runtime=STRICT_RUNTIME)
    for name, upstream in upstreams.items():
        admin.create("services", {"name": name, "url": upstream.url})
    good = admin.create("routes", {"name": "ok", "paths": ["/ok"], "service": "blue"})
    admin.wait_synced(envoy.node_id, good)

    admin.create("routes", {"name": "fancy", "paths": [{"regex": FANCY_REGEX}], "service": "green"})
    wait_for(lambda: bool(_proxy(admin, envoy.node_id)["quarantined"]), 10, "the route quarantined")
    (held,) = _proxy(admin, envoy.node_id)["quarantined"]
    assert held["kind"] == "route" and held["name"] == "fancy"
    assert held["type_url"] == ROUTE_TYPE
    assert "program size" in held["message"] and FANCY_REGEX in held["message"]

    # An unrelated change after the rejection: a new service and a route to it.
    admin.create("services", {"name": "later", "url": upstreams["blue"].url})
    more = admin.create("routes", {"name": "more", "paths": ["/more"], "service": "later"})
    assert wait_status(http, f"{envoy.url}/more", 200).json()["service"] == "blue"
    assert http.get(f"{envoy.url}/ok").status_code == 200
    assert http.get(f"{envoy.url}/v1/items/abc").status_code == 404  # fancy is held back

    def others_synced() -> bool:
        states = _types(_proxy(admin, envoy.node_id))
        others = {t: s for t, s in states.items() if t != ROUTE_TYPE}
        return set(others.values()) == {"SYNCED"} and states[ROUTE_TYPE] == "NACKED"

    wait_for(others_synced, 10, "every type but routes SYNCED, routes NACKED")
    proxy = _proxy(admin, envoy.node_id)
    routes = next(t for t in proxy["types"] if t["type_url"] == ROUTE_TYPE)
    assert routes["version_acked"] is not None and int(routes["version_acked"]) >= more
    assert proxy["revision"] == good  # "acknowledged in full" stays honest
    assert _metric(admin, "turnout_xds_quarantined_resources", ROUTE_TYPE) == 1
    entity = {"kind": "route", "name": "fancy"}
    assert _metric(admin, "turnout_xds_quarantined_entity", ROUTE_TYPE, **entity) == 1

    # Fixing the route tries its new version; the proxy converges completely.
    fixed = admin.write("PATCH", "/routes/fancy", {"paths": ["/v1/items"]})
    admin.wait_synced(envoy.node_id, fixed)
    proxy = _proxy(admin, envoy.node_id)
    assert proxy["quarantined"] == []
    assert set(_types(proxy).values()) == {"SYNCED"}
    assert _metric(admin, "turnout_xds_quarantined_entity", ROUTE_TYPE, **entity) == 0
    assert wait_status(http, f"{envoy.url}/v1/items/abc", 200).json()["service"] == "green"
    stats = envoy.stats(ROUTES_STATS)
    rejected = sum(v for k, v in stats.items() if k.endswith("update_rejected"))
    assert rejected == 1, stats  # the rejected version was never sent again


def test_a_rejected_change_to_a_route_keeps_its_accepted_form(
    admin: AdminClient,
    start_envoy: Callable[..., EnvoyProcess],
    upstreams: dict[str, EchoUpstream],
    http: httpx.Client,
) -> None:
    envoy = start_envoy("strict-envoy", runtime=STRICT_RUNTIME)
    admin.create("services", {"name": "old", "url": upstreams["blue"].url})
    admin.create("services", {"name": "green", "url": upstreams["green"].url})
    v1 = admin.create("routes", {"name": "a", "paths": ["/a"], "service": "old"})
    admin.wait_synced(envoy.node_id, v1)
    assert wait_status(http, f"{envoy.url}/a", 200).json()["service"] == "blue"

    # v2 of /a goes to green and adds a regex this Envoy refuses; the service v1
    # used is deleted meanwhile, which the proxy's kept /a still needs.
    change = {"paths": ["/a", {"regex": FANCY_REGEX}], "service": "green"}
    admin.write("PATCH", "/routes/a", change)
    wait_for(lambda: bool(_proxy(admin, envoy.node_id)["quarantined"]), 10, "/a quarantined")
    (held,) = _proxy(admin, envoy.node_id)["quarantined"]
    assert (held["kind"], held["name"], held["type_url"]) == ("route", "a", ROUTE_TYPE)
    assert "program size" in held["message"] and FANCY_REGEX in held["message"]
    admin.write("DELETE", "/services/old")

    # Unrelated changes flow; /a keeps v1's behaviour: it reaches blue, not green.
    admin.create("routes", {"name": "b", "paths": ["/b"], "service": "green"})
    assert wait_status(http, f"{envoy.url}/b", 200).json()["service"] == "green"
    blue, green = upstreams["blue"].requests, upstreams["green"].requests
    for _ in range(5):
        assert wait_status(http, f"{envoy.url}/a", 200).json()["service"] == "blue"
    assert upstreams["blue"].requests - blue == 5 and upstreams["green"].requests == green
    assert http.get(f"{envoy.url}/v1/items/abc").status_code == 404  # v2's regex: never

    # A brand-new route that is rejected is never served; the next one is.
    admin.create(
        "routes", {"name": "c", "paths": [{"regex": "/c[0-9]+/x/[a-z]+"}], "service": "green"}
    )
    wait_for(lambda: len(_proxy(admin, envoy.node_id)["quarantined"]) == 2, 10, "c quarantined")
    admin.create("routes", {"name": "d", "paths": ["/d"], "service": "green"})
    assert wait_status(http, f"{envoy.url}/d", 200).json()["service"] == "green"
    assert http.get(f"{envoy.url}/c1/x/abc").status_code == 404
    assert http.get(f"{envoy.url}/a").json()["service"] == "blue"
    names = {q["name"] for q in _proxy(admin, envoy.node_id)["quarantined"]}
    assert names == {"a", "c"}
    assert _metric(admin, "turnout_xds_quarantined_entity", ROUTE_TYPE, kind="route", name="a") == 1

    # Fixing /a sends its new version; the cluster kept for v1 can then go.
    assert "old" in _envoy_clusters(http, envoy)  # held for the kept form of /a
    admin.write("PATCH", "/routes/a", {"paths": ["/a"]})
    fixed = admin.write("DELETE", "/routes/c")
    admin.wait_synced(envoy.node_id, fixed)
    assert _proxy(admin, envoy.node_id)["quarantined"] == []
    assert wait_status(http, f"{envoy.url}/a", 200).json()["service"] == "green"
    wait_for(lambda: "old" not in _envoy_clusters(http, envoy), 10, "v1's cluster removed")


def _envoy_clusters(http: httpx.Client, envoy: EnvoyProcess) -> set[str]:
    """The clusters the Envoy holds, from its admin interface."""
    data = http.get(f"{envoy.admin_url}/clusters?format=json").json()
    return {c["name"] for c in data.get("cluster_statuses", [])}


def test_a_route_deleted_while_quarantined_releases_the_proxy(
    admin: AdminClient,
    start_envoy: Callable[..., EnvoyProcess],
    upstreams: dict[str, EchoUpstream],
    http: httpx.Client,
) -> None:
    envoy = start_envoy("strict-envoy", runtime=STRICT_RUNTIME)
    admin.create("services", {"name": "green", "url": upstreams["green"].url})
    admin.create("routes", {"name": "fancy", "paths": [{"regex": FANCY_REGEX}], "service": "green"})
    wait_for(lambda: bool(_proxy(admin, envoy.node_id)["quarantined"]), 10, "the route quarantined")
    assert _metric(admin, "turnout_xds_quarantined_resources", ROUTE_TYPE) == 1
    gone = admin.write("DELETE", "/routes/fancy")
    admin.wait_synced(envoy.node_id, gone)
    proxy = _proxy(admin, envoy.node_id)
    assert proxy["quarantined"] == [] and set(_types(proxy).values()) == {"SYNCED"}
    assert _metric(admin, "turnout_xds_quarantined_resources", ROUTE_TYPE) == 0


def _metric(admin: AdminClient, metric: str, type_url: str, **labels: str) -> float:
    """A series of Turnout's /metrics, 0 if absent (the exposition sorts labels)."""
    text = admin.http.get("/metrics").text
    pairs = ",".join(f'{k}="{v}"' for k, v in sorted({"type_url": type_url, **labels}.items()))
    prefix = f"{metric}{{{pairs}}} "
    values = [float(line[len(prefix) :]) for line in text.splitlines() if line.startswith(prefix)]
    return sum(values)


# An Envoy built without upstream TLS, as an older or trimmed build might be: a service
# the admin API rightly accepts (https upstream) is one this Envoy must refuse.
WITHOUT_TLS = [
    "--disable-extensions",
    "envoy.transport_sockets.upstream/envoy.transport_sockets.tls",
]


def test_a_rejected_service_is_quarantined_and_new_services_and_routes_still_flow(
    admin: AdminClient,
    start_envoy: Callable[..., EnvoyProcess],
    upstreams: dict[str, EchoUpstream],
    http: httpx.Client,
) -> None:
    envoy = start_envoy("cds-envoy", args=WITHOUT_TLS)
    admin.create("services", {"name": "blue", "url": upstreams["blue"].url})
    good = admin.create("routes", {"name": "ok", "paths": ["/ok"], "service": "blue"})
    admin.wait_synced(envoy.node_id, good)

    admin.create(
        "services", {"name": "bad", "url": upstreams["green"].url.replace("http:", "https:")}
    )
    admin.create("routes", {"name": "to-bad", "paths": ["/bad"], "service": "bad"})
    wait_for(
        lambda: bool(_proxy(admin, envoy.node_id)["quarantined"]), 10, "the service quarantined"
    )
    (held,) = _proxy(admin, envoy.node_id)["quarantined"]
    assert (held["kind"], held["name"], held["type_url"]) == ("service", "bad", CLUSTER_TYPE)
    assert "bad" in held["message"]

    admin.create("services", {"name": "green", "url": upstreams["green"].url})
    admin.create("routes", {"name": "more", "paths": ["/more"], "service": "green"})
    assert wait_status(http, f"{envoy.url}/more", 200).json()["service"] == "green"
    assert http.get(f"{envoy.url}/ok").status_code == 200
    # The route to the rejected cluster is withheld: no route to a missing cluster.
    assert http.get(f"{envoy.url}/bad").status_code == 404

    def others_synced() -> bool:
        states = _types(_proxy(admin, envoy.node_id))
        return states.pop(CLUSTER_TYPE) == "NACKED" and set(states.values()) == {"SYNCED"}

    wait_for(others_synced, 10, "every type but clusters SYNCED, clusters NACKED")

    fixed = admin.write("PUT", "/services/bad", {"name": "bad", "url": upstreams["green"].url})
    admin.wait_synced(envoy.node_id, fixed)
    proxy = _proxy(admin, envoy.node_id)
    assert proxy["quarantined"] == [] and set(_types(proxy).values()) == {"SYNCED"}
    assert wait_status(http, f"{envoy.url}/bad", 200).json()["service"] == "green"

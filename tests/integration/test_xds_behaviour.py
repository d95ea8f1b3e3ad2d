"""xDS behaviour a fleet relies on, against real Envoys (SotW and Delta alike):
zero failed requests through a whole migration, node groups, bursts, status."""

import threading
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import httpx

from turnout.testing.processes import AdminClient, EchoUpstream, EnvoyProcess, wait_for, wait_status

ROUTE_TYPE = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"


@contextmanager
def steady_traffic(url: str) -> Iterator[Counter[int]]:
    """Send requests to `url` back to back until the block ends; count every status
    (a transport error counts as 0)."""
    statuses: Counter[int] = Counter()
    stop = threading.Event()

    def loop() -> None:
        with httpx.Client(timeout=5) as client:
            while not stop.is_set():
                try:
                    statuses[client.get(url).status_code] += 1
                except httpx.TransportError:
                    statuses[0] += 1

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        yield statuses
    finally:
        stop.set()
        thread.join(10)


def test_a_whole_migration_under_load_fails_not_one_request(
    admin: AdminClient,
    envoy: EnvoyProcess,
    upstreams: dict[str, EchoUpstream],
    http: httpx.Client,
) -> None:
    blue, green = upstreams["blue"], upstreams["green"]
    admin.create("services", {"name": "blue", "url": blue.url})
    synced = admin.create("routes", {"name": "api", "paths": ["/api"], "service": "blue"})
    admin.wait_synced(envoy.node_id, synced)

    def step(method: str, path: str, body: object | None = None) -> None:
        admin.wait_synced(envoy.node_id, admin.write(method, path, body))

    with steady_traffic(f"{envoy.url}/api/orders") as statuses:
        wait_for(lambda: statuses[200] > 20, 10, "steady traffic to start")
        # A brand-new service and route: the first request after the ACK is served.
        admin.create("services", {"name": "green", "url": green.url})
        revision = admin.create("routes", {"name": "new", "paths": ["/new"], "service": "green"})
        admin.wait_synced(envoy.node_id, revision)
        assert http.get(f"{envoy.url}/new").json()["service"] == "green"

        def targets(green_weight: int) -> list[dict[str, object]]:
            return [
                {"service": "blue", "weight": 100 - green_weight},
                {"service": "green", "weight": green_weight},
            ]

        step("POST", "/splits", {"name": "move", "route": "api", "targets": targets(0)})
        for weight in (1, 10, 50, 100, 0):
            step("PATCH", "/splits/move", {"targets": targets(weight)})
        step("DELETE", "/splits/move")
        # Rename the route's backend cluster, then delete the old service.
        admin.create("services", {"name": "blue-v2", "url": blue.url})
        step("PATCH", "/routes/api", {"service": "blue-v2"})
        step("DELETE", "/services/blue")
        before = sum(statuses.values())
        wait_for(lambda: sum(statuses.values()) > before + 20, 10, "traffic after the last step")

    assert set(statuses) == {200}, statuses
    assert statuses[200] > 100
    config = admin.http.get(f"/proxies/{envoy.node_id}/config").json()
    clusters = {c["name"] for c in config["type.googleapis.com/envoy.config.cluster.v3.Cluster"]}
    assert clusters == {"blue-v2", "green"}  # the old cluster went once routes left it


def test_node_groups_see_only_their_routes(
    admin: AdminClient,
    start_envoy: Callable[..., EnvoyProcess],
    upstreams: dict[str, EchoUpstream],
    http: httpx.Client,
) -> None:
    edge = start_envoy("edge-1")
    internal = start_envoy("internal-1", node_cluster="internal")
    admin.create("services", {"name": "blue", "url": upstreams["blue"].url})
    admin.create("routes", {"name": "public", "paths": ["/public"], "service": "blue"})
    admin.create(
        "routes",
        {"name": "private", "paths": ["/private"], "service": "blue", "groups": ["internal"]},
    )
    revision = admin.create(
        "routes",
        {"name": "both", "paths": ["/both"], "service": "blue", "groups": ["default", "internal"]},
    )
    admin.wait_synced(edge.node_id, revision)
    admin.wait_synced(internal.node_id, revision)
    assert [http.get(f"{edge.url}{p}").status_code for p in ("/public", "/private", "/both")] == [
        200,
        404,
        200,
    ]
    assert [
        http.get(f"{internal.url}{p}").status_code for p in ("/public", "/private", "/both")
    ] == [404, 200, 200]
    proxy = admin.proxy(internal.node_id)
    assert proxy is not None and proxy["node_cluster"] == "internal"


def metric(admin: AdminClient, name: str) -> float:
    for line in admin.http.get("/metrics").text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_concurrent_writes_coalesce_and_the_last_state_arrives(
    admin: AdminClient,
    envoy: EnvoyProcess,
    upstreams: dict[str, EchoUpstream],
    http: httpx.Client,
) -> None:
    """Through the admin API one write costs a few ms here, so writes seldom fall
    inside the 5 ms quiet period; tests/xds/test_cache.py shows 1,000 commits in a
    second making a handful of reloads. Here: one push per reload at most, fewer
    reloads than writes, and the newest state always arrives."""
    admin.create("services", {"name": "blue", "url": upstreams["blue"].url})
    revision = admin.create("routes", {"name": "r0", "paths": ["/r0"], "service": "blue"})
    admin.wait_synced(envoy.node_id, revision)
    pushes_before = sum(envoy.stats(r"rds\..*update_success").values())
    reloads_before = metric(admin, "turnout_declaration_reloads_total")

    def write(i: int) -> int:
        return admin.create("routes", {"name": f"b{i}", "paths": [f"/b{i}"], "service": "blue"})

    with ThreadPoolExecutor(8) as pool:
        revisions = list(pool.map(write, range(300)))
    admin.wait_synced(envoy.node_id, max(revisions), timeout=30)
    pushes = sum(envoy.stats(r"rds\..*update_success").values()) - pushes_before
    reloads = metric(admin, "turnout_declaration_reloads_total") - reloads_before
    assert 1 <= pushes <= reloads < 300, (pushes, reloads)
    assert wait_status(http, f"{envoy.url}/b299", 200).json()["service"] == "blue"
    assert http.get(f"{envoy.url}/b0").status_code == 200


def test_proxy_status_metrics_and_config_show_what_the_proxy_runs(
    admin: AdminClient,
    envoy: EnvoyProcess,
    upstreams: dict[str, EchoUpstream],
) -> None:
    admin.create("services", {"name": "blue", "url": upstreams["blue"].url})
    revision = admin.create("routes", {"name": "api", "paths": ["/api"], "service": "blue"})
    admin.wait_synced(envoy.node_id, revision)

    status = admin.http.get(f"/proxies/{envoy.node_id}").json()
    assert status["revision"] == revision
    assert {t["state"] for t in status["types"]} == {"SYNCED"}
    assert len(status["types"]) == 5  # CDS, EDS, ECDS (API keys), LDS, RDS
    assert admin.http.get("/proxies/nobody").status_code == 404

    config = admin.http.get(f"/proxies/{envoy.node_id}/config").json()
    (routes,) = config[ROUTE_TYPE]
    names = [r["name"] for vh in routes["virtual_hosts"] for r in vh.get("routes", [])]
    assert names == ["api"]

    metrics = admin.http.get("/metrics").text
    assert 'turnout_connected_proxies{xds="' in metrics
    assert "turnout_xds_pushes_total" in metrics
    assert "turnout_xds_commit_to_ack_seconds_count" in metrics

"""Quarantine transitions of the per-stream state machine (xds/stream.py, quarantine.py).

Snapshots come from the real translation (cache + memo), so route configurations
carry their per-route parts as in production; requests are shaped as Envoy sends
them, with Envoy's own wording in `error_detail`.
"""

from collections.abc import Iterable

import pytest
from envoy.config.route.v3.route_pb2 import RouteConfiguration
from google.rpc.status_pb2 import Status
from prometheus_client import REGISTRY
from test_stream import delta_request, drain, request

from turnout.models.declaration import Declaration
from turnout.models.route import RouteSpec
from turnout.models.service import ServiceSpec
from turnout.models.split import SplitSpec
from turnout.xds.cache import _build_group
from turnout.xds.memo import TranslationMemo
from turnout.xds.nack import NACK_MESSAGE_LIMIT, NackLog, nack_text, pinned_names
from turnout.xds.proxy_registry import ConnectedProxy, ProxyRegistry
from turnout.xds.snapshot import (
    CLUSTER_TYPE,
    ENDPOINT_TYPE,
    LISTENER_TYPE,
    ROUTE_TYPE,
    Snapshot,
)
from turnout.xds.stream import Response, State, StreamState, TypeState
from turnout.xds.translate import NodeGroup

ROUTES = "turnout_routes_default"
REGEX = "/v[0-9]+/items/[a-z]+"
RE2_MESSAGE = (
    f"regex '{REGEX}' RE2 program size of 23 > max program size of 8 set for the error "
    "level threshold. Increase configured max program size if necessary."
)


def cds_error(name: str) -> str:
    """Envoy's wording (cds_api_helper.cc)."""
    return (
        f"Error adding/updating cluster(s) {name}: SNI names containing NULL-byte are not allowed"
    )


def service(name: str, port: int = 80, timeout_ms: int = 1000) -> ServiceSpec:
    """`port` changes its endpoints, `timeout_ms` its cluster."""
    return ServiceSpec(name=name, url=f"http://10.0.0.1:{port}", connect_timeout_ms=timeout_ms)


def route(name: str, svc: str, path: str | None = None, regex: str | None = None) -> RouteSpec:
    paths: list[object] = [{"regex": regex}] if regex else [path or f"/{name}"]
    return RouteSpec(name=name, paths=paths, service=svc)


class Group:
    """One node group's snapshots, translated as the cache translates them."""

    def __init__(self) -> None:
        self.memo = TranslationMemo()
        self.previous: Snapshot | None = None
        self.revision = 0

    def snapshot(
        self,
        services: Iterable[ServiceSpec],
        routes: Iterable[RouteSpec] = (),
        splits: Iterable[SplitSpec] = (),
    ) -> Snapshot:
        self.revision += 1
        decl = Declaration(
            revision=self.revision,
            services={s.name: s for s in services},
            routes={r.name: r for r in routes},
            splits={s.name: s for s in splits},
        )
        snap = _build_group(decl, NodeGroup(), self.previous, self.memo)
        self.previous = snap
        return snap


def answer(state: StreamState, resp: Response, error: str | None = None) -> None:
    """ACK (or NACK with `error`) a response the way Envoy would, keeping its names;
    after clusters, ask for the endpoints of the clusters it now holds, as Envoy does."""
    sub = state.subscriptions[resp.type_url]
    if state.delta:
        state.on_delta_request(delta_request(resp.type_url, nonce=resp.nonce, error=error))
    else:
        names = [] if sub.wildcard else sorted(sub.names)
        version = resp.version if error is None else (sub.version_acked or "")
        state.on_request(request(resp.type_url, names, resp.nonce, version, error))
    if resp.type_url == CLUSTER_TYPE:
        held = {r.name for r in state.resources_sent().get(CLUSTER_TYPE, [])}
        eds = state.subscriptions[ENDPOINT_TYPE]
        if state.delta:
            add, drop = sorted(held - eds.names), sorted(eds.names - held)
            if add or drop:
                state.on_delta_request(delta_request(ENDPOINT_TYPE, add, drop, eds.nonce))
        elif held != eds.names:
            nonce, version = eds.nonce, eds.version_acked or ""
            state.on_request(request(ENDPOINT_TYPE, sorted(held), nonce, version))


def settle(state: StreamState, snap: Snapshot) -> list[Response]:
    """Send whatever is due and ACK it all, until nothing is due."""
    sent: list[Response] = []
    while batch := drain(state, snap):
        for resp in batch:
            answer(state, resp)
        sent += batch
    return sent


def connect(snap: Snapshot, delta: bool = False) -> StreamState:
    state = StreamState(delta=delta)
    eds = sorted(snap.eds_cluster_names)
    if delta:
        state.on_delta_request(delta_request(CLUSTER_TYPE, node=True))
        state.on_delta_request(delta_request(ENDPOINT_TYPE, eds))
        state.on_delta_request(delta_request(LISTENER_TYPE))
        state.on_delta_request(delta_request(ROUTE_TYPE, [ROUTES]))
    else:
        state.on_request(request(CLUSTER_TYPE, node=True))
        state.on_request(request(ENDPOINT_TYPE, eds))
        state.on_request(request(LISTENER_TYPE))
        state.on_request(request(ROUTE_TYPE, [ROUTES]))
    settle(state, snap)
    assert state.in_sync(snap)
    return state


def route_names(resp: Response) -> set[str]:
    config = RouteConfiguration()
    resp.resources[ROUTES].any.Unpack(config)
    return {r.name.split("/")[0] for vh in config.virtual_hosts for r in vh.routes}


def held_route_names(state: StreamState) -> set[str]:
    config = RouteConfiguration()
    (packed,) = state.resources_sent()[ROUTE_TYPE]
    packed.any.Unpack(config)
    return {r.name.split("/")[0] for vh in config.virtual_hosts for r in vh.routes}


def held_route_clusters(state: StreamState) -> dict[str, set[str]]:
    """Route name → the clusters the proxy's entries for it send traffic to."""
    config = RouteConfiguration()
    (packed,) = state.resources_sent()[ROUTE_TYPE]
    packed.any.Unpack(config)
    out: dict[str, set[str]] = {}
    for vh in config.virtual_hosts:
        for r in vh.routes:
            names = out.setdefault(r.name.split("/")[0], set())
            if r.route.cluster:
                names.add(r.route.cluster)
            names.update(c.name for c in r.route.weighted_clusters.clusters)
    return out


def state_of(state: StreamState, snap: Snapshot, type_url: str) -> TypeState:
    return state.type_state(state.subscriptions[type_url], snap)


# --- clusters -----------------------------------------------------------------------


@pytest.mark.parametrize("delta", [False, True], ids=["sotw", "delta"])
def test_a_rejected_new_cluster_is_held_back_and_the_rest_flows(delta: bool) -> None:
    group = Group()
    a = service("a")
    state = connect(group.snapshot([a], [route("ra", "a")]), delta)

    snap = group.snapshot([a, service("bad", port=81), service("c", port=82)], [route("ra", "a")])
    (cds,) = drain(state, snap)
    assert set(cds.resources) >= {"bad", "c"}
    answer(state, cds, error=cds_error("bad"))
    (held,) = state.quarantine()
    assert (held.kind, held.name, held.type_url) == ("service", "bad", CLUSTER_TYPE)
    # `c` was applied: an answer is owed so that the proxy ACKs it.
    assert state.subscriptions[CLUSTER_TYPE].state is State.MUST_RESPOND
    assert "NULL-byte" in held.message

    # The rest of the response is confirmed, without the rejected cluster.
    sent = settle(state, snap)
    cds_again = next(r for r in sent if r.type_url == CLUSTER_TYPE)
    assert "bad" not in cds_again.resources
    # Unrelated changes keep flowing: a new route to `c` reaches the proxy.
    snap = group.snapshot(
        [a, service("bad", port=81), service("c", port=82)], [route("ra", "a"), route("rc", "c")]
    )
    sent = settle(state, snap)
    assert {r.type_url for r in sent} >= {ROUTE_TYPE}
    assert held_route_names(state) == {"ra", "rc"}
    for type_url in (ENDPOINT_TYPE, LISTENER_TYPE, ROUTE_TYPE):
        assert state_of(state, snap, type_url) is TypeState.SYNCED
    assert state_of(state, snap, CLUSTER_TYPE) is TypeState.NACKED
    assert not state.in_sync(snap)
    # Not resent in a loop: nothing is due while the declaration stays.
    assert drain(state, snap) == []


def test_a_rejected_change_keeps_the_accepted_version_until_the_service_changes() -> None:
    group = Group()
    state = connect(group.snapshot([service("a"), service("b", port=81)]))
    accepted = state.resources_sent()[CLUSTER_TYPE]

    rejected = group.snapshot([service("a"), service("b", port=81, timeout_ms=2000)])
    cds, eds = drain(state, rejected)  # a changed cluster gets its endpoints again
    answer(state, cds, error=cds_error("b"))
    # Only `b` changed, and it is quarantined: nothing is owed, nothing is due.
    assert state.subscriptions[CLUSTER_TYPE].state is State.WATCHING
    answer(state, eds)
    assert drain(state, rejected) == []  # only `b` changed: the proxy holds what it had
    assert state.resources_sent()[CLUSTER_TYPE] == accepted
    assert [q.name for q in state.quarantine()] == ["b"]

    fixed = group.snapshot([service("a"), service("b", port=81, timeout_ms=3000)])
    cds, *rest = drain(state, fixed)  # a new version of `b` is tried
    assert cds.resources["b"].hash == fixed.resources(CLUSTER_TYPE)["b"].hash
    assert state.quarantine() == []
    for resp in [cds, *rest]:
        answer(state, resp)
    settle(state, fixed)
    assert state.in_sync(fixed)


def test_a_deleted_quarantined_service_releases_the_proxy() -> None:
    group = Group()
    a = service("a")
    state = connect(group.snapshot([a]))
    snap = group.snapshot([a, service("bad", port=81)])
    (cds,) = drain(state, snap)
    answer(state, cds, error=cds_error("bad"))
    assert state.quarantine()
    snap = group.snapshot([a])
    settle(state, snap)
    assert state.quarantine() == [] and state.in_sync(snap)


@pytest.mark.parametrize("delta", [False, True], ids=["sotw", "delta"])
def test_a_route_to_a_rejected_cluster_the_proxy_never_had_is_withheld(delta: bool) -> None:
    group = Group()
    a = service("a")
    state = connect(group.snapshot([a], [route("ra", "a")]), delta)
    bad = service("bad", port=81)
    snap = group.snapshot([a, bad], [route("ra", "a"), route("rbad", "bad")])
    (cds,) = drain(state, snap)  # routes wait for the clusters (make before break)
    answer(state, cds, error=cds_error("bad"))
    settle(state, snap)
    assert held_route_names(state) == {"ra"}  # never a route to a cluster it lacks

    snap = group.snapshot(
        [a, service("bad", port=81, timeout_ms=2000)], [route("ra", "a"), route("rbad", "bad")]
    )
    sent = settle(state, snap)  # the service changed: tried again, and accepted
    assert [r.type_url for r in sent].index(CLUSTER_TYPE) < [r.type_url for r in sent].index(
        ROUTE_TYPE
    )
    assert held_route_names(state) == {"ra", "rbad"}
    assert state.in_sync(snap)


def test_a_split_towards_a_rejected_cluster_keeps_the_routes_accepted_form() -> None:
    group = Group()
    services = [service("a"), service("bad", port=81)]
    state = connect(group.snapshot([service("a")], [route("r", "a")]))
    split = SplitSpec(
        name="s",
        route="r",
        targets=[{"service": "a", "weight": 90}, {"service": "bad", "weight": 10}],
    )
    snap = group.snapshot(services, [route("r", "a"), route("other", "a")], [split])
    (cds,) = drain(state, snap)
    answer(state, cds, error=cds_error("bad"))
    settle(state, snap)
    # The split route keeps its accepted form, which does not point at `bad`; the
    # unrelated one arrives.
    assert held_route_names(state) == {"r", "other"}
    assert held_route_clusters(state)["r"] == {"a"}


# --- routes -------------------------------------------------------------------------


@pytest.mark.parametrize("delta", [False, True], ids=["sotw", "delta"])
def test_a_rejected_route_is_left_out_and_other_routes_flow(delta: bool) -> None:
    group = Group()
    a = service("a")
    state = connect(group.snapshot([a], [route("ok", "a")]), delta)

    snap = group.snapshot([a], [route("ok", "a"), route("fancy", "a", regex=REGEX)])
    (rds,) = drain(state, snap)
    assert route_names(rds) == {"ok", "fancy"}
    answer(state, rds, error=RE2_MESSAGE)
    (held,) = state.quarantine()
    assert (held.kind, held.name, held.type_url) == ("route", "fancy", ROUTE_TYPE)

    (rds,) = drain(state, snap)  # the configuration without the rejected route
    assert route_names(rds) == {"ok"}
    answer(state, rds)
    assert drain(state, snap) == []  # the rejected one is never sent again
    assert state_of(state, snap, ROUTE_TYPE) is TypeState.NACKED

    snap = group.snapshot(
        [a], [route("ok", "a"), route("fancy", "a", regex=REGEX), route("more", "a")]
    )
    (rds,) = drain(state, snap)  # an unrelated route is delivered
    assert route_names(rds) == {"ok", "more"}
    answer(state, rds)

    snap = group.snapshot([a], [route("ok", "a"), route("fancy", "a"), route("more", "a")])
    (rds,) = drain(state, snap)  # the route changed: its new version is tried
    assert route_names(rds) == {"ok", "fancy", "more"}
    answer(state, rds)
    assert state.quarantine() == [] and state.in_sync(snap)


@pytest.mark.parametrize("delta", [False, True], ids=["sotw", "delta"])
def test_a_rejected_change_to_a_route_keeps_its_accepted_form_and_its_cluster(
    delta: bool,
) -> None:
    group = Group()
    a, old = service("a"), service("old", port=81)
    state = connect(group.snapshot([a, old], [route("ok", "a"), route("r", "old")]), delta)

    changed = RouteSpec(name="r", paths=["/r", {"regex": REGEX}], service="a")
    snap = group.snapshot([a, old], [route("ok", "a"), changed])
    (rds,) = drain(state, snap)
    answer(state, rds, error=RE2_MESSAGE)
    assert [(q.kind, q.name) for q in state.quarantine()] == [("route", "r")]
    # The service the accepted form uses goes; the proxy keeps both until r changes.
    snap = group.snapshot([a], [route("ok", "a"), changed, route("more", "a")])
    settle(state, snap)
    assert held_route_clusters(state) == {"ok": {"a"}, "r": {"old"}, "more": {"a"}}
    assert {r.name for r in state.resources_sent()[CLUSTER_TYPE]} == {"a", "old"}
    assert state_of(state, snap, ROUTE_TYPE) is TypeState.NACKED
    assert drain(state, snap) == []

    snap = group.snapshot([a], [route("ok", "a"), route("r", "a"), route("more", "a")])
    settle(state, snap)  # fixed: the new form goes out, then the old cluster
    assert held_route_clusters(state) == {"ok": {"a"}, "r": {"a"}, "more": {"a"}}
    assert {r.name for r in state.resources_sent()[CLUSTER_TYPE]} == {"a"}
    assert state.quarantine() == [] and state.in_sync(snap)


def test_an_unpinned_route_rejection_holds_the_whole_configuration() -> None:
    group = Group()
    a = service("a")
    state = connect(group.snapshot([a], [route("ok", "a")]))
    snap = group.snapshot([a], [route("ok", "a"), route("new", "a")])
    (rds,) = drain(state, snap)
    answer(state, rds, error="something Envoy did not explain")
    (held,) = state.quarantine()
    assert (held.kind, held.name) == ("route_configuration", ROUTES)
    assert drain(state, snap) == []  # the proxy keeps its accepted configuration
    assert held_route_names(state) == {"ok"}
    snap = group.snapshot([a], [route("ok", "a"), route("newer", "a")])
    (rds,) = drain(state, snap)
    assert route_names(rds) == {"ok", "newer"}


# --- the NACK text, its log, the status -------------------------------------------------


def test_nack_text_is_short_and_has_no_control_characters() -> None:
    text = nack_text(Status(message="line\nforged " + "x" * 70_000))
    assert len(text) <= NACK_MESSAGE_LIMIT
    assert "\n" not in text and "\\x0a" in text and "70012 chars" in text
    assert nack_text(Status(code=3)) == "rejected with code 3"


def test_pinning_needs_the_name_as_envoy_writes_it() -> None:
    names = ["a", "bad", "c"]
    assert pinned_names(cds_error("bad"), names) == {"bad"}
    assert pinned_names("Error adding/updating cluster(s) a: x, c: y", names) == {"a", "c"}
    assert pinned_names("cluster 'c' is broken", names) == {"c"}
    assert pinned_names("a bad thing happened", names) == set()


def test_nack_log_allows_a_burst_per_window_then_reports_what_it_dropped() -> None:
    now = [0.0]
    log = NackLog(lambda: now[0], window=10, burst=2)
    assert [log.allow() for _ in range(5)] == [(True, 0), (True, 0)] + [(False, 0)] * 3
    now[0] = 10.0
    assert log.allow() == (True, 3)


def test_proxies_name_the_quarantined_entity_and_envoys_message() -> None:
    group = Group()
    a = service("a")
    state = connect(group.snapshot([a], [route("ok", "a")]))
    snap = group.snapshot([a], [route("ok", "a"), route("fancy", "a", regex=REGEX)])
    (rds,) = drain(state, snap)
    answer(state, rds, error=RE2_MESSAGE)
    assert state.node is not None
    registry = ProxyRegistry()
    proxy = ConnectedProxy(1, state.node.id, NodeGroup(), state, snapshot=snap)
    registry.add(proxy)
    (status,) = registry.proxies()
    (held,) = status.quarantined
    assert (held.kind, held.name, held.type_url) == ("route", "fancy", ROUTE_TYPE)
    assert held.message == RE2_MESSAGE
    states = {t.type_url: t.state for t in status.types}
    assert states[ROUTE_TYPE] == "NACKED" and states[CLUSTER_TYPE] == "SYNCED"

    labels = {"type_url": ROUTE_TYPE, "kind": "route", "name": "fancy"}
    before = REGISTRY.get_sample_value(
        "turnout_xds_quarantined_resources", {"type_url": ROUTE_TYPE}
    )
    proxy.count_quarantine()
    proxy.count_quarantine()  # counted once per stream, however often it is asked
    assert REGISTRY.get_sample_value("turnout_xds_quarantined_entity", labels) == 1
    after = REGISTRY.get_sample_value("turnout_xds_quarantined_resources", {"type_url": ROUTE_TYPE})
    assert (after or 0) - (before or 0) == 1
    proxy.count_quarantine(closing=True)
    assert REGISTRY.get_sample_value("turnout_xds_quarantined_entity", labels) is None
    closed = REGISTRY.get_sample_value(
        "turnout_xds_quarantined_resources", {"type_url": ROUTE_TYPE}
    )
    assert closed == before or (closed == 0 and before is None)

"""The per-stream SotW state machine, without sockets (xds/stream.py)."""

import itertools
from collections.abc import Iterable

import pytest
from envoy.config.cluster.v3.cluster_pb2 import Cluster
from envoy.config.core.v3.base_pb2 import Node
from envoy.config.endpoint.v3.endpoint_pb2 import ClusterLoadAssignment
from envoy.config.listener.v3.listener_pb2 import Listener
from envoy.config.route.v3.route_pb2 import RouteConfiguration
from envoy.service.discovery.v3.discovery_pb2 import DeltaDiscoveryRequest, DiscoveryRequest
from google.rpc.status_pb2 import Status

from turnout.xds.snapshot import (
    CLUSTER_TYPE,
    ENDPOINT_TYPE,
    LISTENER_TYPE,
    ROUTE_TYPE,
    Snapshot,
    build_snapshot,
    pack,
)
from turnout.xds.stream import (
    _TRANSITIONS,
    Input,
    ProtocolError,
    Response,
    State,
    StreamState,
    Subscription,
)


def snapshot(
    revision: int,
    clusters: dict[str, bytes] | None = None,
    routes: str = "r0",
    previous: Snapshot | None = None,
    refs: Iterable[str] = (),
) -> Snapshot:
    """Clusters by name (the bytes vary their content), all with EDS endpoints."""
    clusters = {"a": b"", "b": b""} if clusters is None else clusters
    packed = {
        CLUSTER_TYPE: [
            pack(Cluster(name=n, alt_stat_name=v.decode())) for n, v in clusters.items()
        ],
        ENDPOINT_TYPE: [pack(ClusterLoadAssignment(cluster_name=n)) for n in clusters],
        LISTENER_TYPE: [pack(Listener(name="http"))],
        ROUTE_TYPE: [pack(RouteConfiguration(name="routes", internal_only_headers=[routes]))],
    }
    route_refs = {"routes": frozenset(refs)}
    return build_snapshot(revision, packed, frozenset(clusters), route_refs, previous)


def request(
    type_url: str,
    names: list[str] | None = None,
    nonce: str = "",
    version: str = "",
    error: str | None = None,
    node: bool = False,
) -> DiscoveryRequest:
    req = DiscoveryRequest(
        type_url=type_url,
        resource_names=names or [],
        response_nonce=nonce,
        version_info=version,
    )
    if node:
        req.node.CopyFrom(Node(id="envoy-1", cluster="default"))
    if error is not None:
        req.error_detail.CopyFrom(Status(code=13, message=error))
    return req


def drain(state: StreamState, snap: Snapshot) -> list[Response]:
    sent = []
    while (resp := state.next_response(snap)) is not None:
        state.on_sent(resp)
        sent.append(resp)
    return sent


def ack(state: StreamState, resp: Response, names: list[str] | None = None) -> None:
    state.on_request(request(resp.type_url, names, resp.nonce, resp.version))


def connect(snap: Snapshot) -> StreamState:
    """An Envoy's start-up: CDS, EDS for every cluster, LDS, RDS; all ACKed."""
    state = StreamState()
    state.on_request(request(CLUSTER_TYPE, node=True))
    (cds,) = drain(state, snap)
    ack(state, cds)
    eds_names = sorted(snap.resources(CLUSTER_TYPE))
    state.on_request(request(ENDPOINT_TYPE, eds_names))
    (eds,) = drain(state, snap)
    ack(state, eds, eds_names)
    state.on_request(request(LISTENER_TYPE))
    (lds,) = drain(state, snap)
    ack(state, lds)
    state.on_request(request(ROUTE_TYPE, ["routes"]))
    (rds,) = drain(state, snap)
    ack(state, rds, ["routes"])
    assert drain(state, snap) == []
    return state


# --- the transition table, over every (state, input) pair -----------------------------


@pytest.mark.parametrize(("state", "inp"), list(itertools.product(State, Input)))
def test_every_state_input_pair_is_in_the_table_or_a_protocol_error(
    state: State, inp: Input
) -> None:
    sub = Subscription(CLUSTER_TYPE, state=state)
    if (state, inp) in _TRANSITIONS:
        sub.process_input(inp)
        assert sub.state is _TRANSITIONS[(state, inp)]
    else:
        with pytest.raises(ProtocolError):
            sub.process_input(inp)


def test_the_table_says_when_a_response_may_go_and_what_it_pays() -> None:
    """The shape the stream relies on: a response goes only from a state with nothing
    in flight, and pays what was owed; only the response in flight is answered;
    a nonce-less request or new names always owe an answer once something is
    requested."""
    for state in State:
        assert ((state, Input.SEND_RESPONSE) in _TRANSITIONS) is state.watching
        if state.watching:
            assert _TRANSITIONS[(state, Input.SEND_RESPONSE)] is State.AWAITING_ACK
        for answer in (Input.RECV_ACK, Input.RECV_NACK, Input.RECV_NACK_QUARANTINED):
            assert ((state, answer) in _TRANSITIONS) is state.awaiting_ack
        assert _TRANSITIONS[(state, Input.RECV_REQUEST)].owed
        after_names = _TRANSITIONS[(state, Input.RECV_NEW_NAMES)]
        assert after_names.owed or state is State.IDLE
        # What the client said of the last response survives an owed answer.
        assert after_names.nacked is state.nacked
    assert not _TRANSITIONS[(State.AWAITING_ACK, Input.RECV_ACK)].owed
    assert _TRANSITIONS[(State.AWAITING_ACK_MUST_RESPOND, Input.RECV_ACK)].owed
    assert _TRANSITIONS[(State.AWAITING_ACK, Input.RECV_NACK_PARTIAL)].owed


def test_a_subscription_walks_the_table_ack_new_names_in_flight_and_nack() -> None:
    snap = snapshot(1)
    state = StreamState()
    state.on_request(request(CLUSTER_TYPE, node=True))
    cds = state.subscriptions[CLUSTER_TYPE]
    assert cds.state is State.MUST_RESPOND
    (resp,) = drain(state, snap)
    assert cds.state is State.AWAITING_ACK
    ack(state, resp)
    assert cds.state is State.ACKED

    state.on_request(request(ENDPOINT_TYPE, ["a"]))
    eds = state.subscriptions[ENDPOINT_TYPE]
    (resp,) = drain(state, snap)
    # Names added while the response is in flight: owed an answer after the ACK,
    # even though nothing changed.
    state.on_request(request(ENDPOINT_TYPE, ["a", "b"], nonce="1", version="1"))
    assert eds.state is State.AWAITING_ACK_MUST_RESPOND
    assert drain(state, snap) == []
    ack(state, resp, ["a", "b"])
    assert eds.state is State.MUST_RESPOND
    (resp,) = drain(state, snap)
    assert resp.names == ("a", "b")
    ack(state, resp, ["a", "b"])
    assert eds.state is State.ACKED
    # A names change with the current nonce that adds nothing keeps the state.
    state.on_request(request(ENDPOINT_TYPE, ["a"], resp.nonce, resp.version))
    assert eds.state is State.ACKED

    # A response that only removes a cluster changed nothing a quarantine could pin.
    snap2 = snapshot(2, clusters={"a": b""}, previous=snap)
    (resp,) = drain(state, snap2)
    state.on_request(request(CLUSTER_TYPE, nonce=resp.nonce, version="1", error="bad"))
    assert not state.quarantine()
    assert cds.state is State.NACKED
    assert state.type_state(cds, snap2).name == "NACKED"
    assert drain(state, snap2) == []  # rejected and newest: not sent again
    # A reconnect-like request (no nonce) is owed an answer; the proxy shows NACKED
    # until it goes out.
    state.on_request(request(CLUSTER_TYPE))
    assert cds.state is State.NACKED_MUST_RESPOND
    assert state.type_state(cds, snap2).name == "NACKED"
    (again,) = drain(state, snap2)
    assert again.type_url == CLUSTER_TYPE and cds.state is State.AWAITING_ACK
    ack(state, again)
    assert cds.state is State.ACKED and state.type_state(cds, snap2).name == "SYNCED"


# --- rule 1: node ---------------------------------------------------------------------


def test_first_request_must_carry_node() -> None:
    with pytest.raises(ProtocolError, match="node"):
        StreamState().on_request(request(CLUSTER_TYPE))


def test_node_is_kept_from_the_first_request() -> None:
    state = StreamState()
    state.on_request(request(CLUSTER_TYPE, node=True))
    state.on_request(request(LISTENER_TYPE))  # no node: fine
    assert state.node is not None and state.node.id == "envoy-1"


def test_missing_type_url_is_a_protocol_error() -> None:
    with pytest.raises(ProtocolError, match="type_url"):
        StreamState().on_request(request("", node=True))


# --- rules 2 and 4: nonces, one response in flight ------------------------------------


def test_nonces_are_unique_within_the_stream() -> None:
    snap = snapshot(1)
    state = connect(snap)
    nonces = [s.nonce for s in state.subscriptions.values()]
    assert len(set(nonces)) == len(nonces)


def test_at_most_one_unacked_response_per_type_and_changes_collapse() -> None:
    snap1 = snapshot(1)
    state = connect(snap1)
    snap2 = snapshot(2, routes="r2", previous=snap1)
    (rds2,) = drain(state, snap2)
    assert rds2.type_url == ROUTE_TYPE and rds2.version == "2"
    snap3 = snapshot(3, routes="r3", previous=snap2)
    snap4 = snapshot(4, routes="r4", previous=snap3)
    assert drain(state, snap3) == []  # rds2 not acked yet
    assert drain(state, snap4) == []
    ack(state, rds2, ["routes"])
    (rds4,) = drain(state, snap4)  # 3 and 4 collapse into the newest
    assert rds4.version == "4"


def test_unchanged_types_are_not_pushed_again() -> None:
    snap1 = snapshot(1)
    state = connect(snap1)
    snap2 = snapshot(2, routes="changed", previous=snap1)
    assert [r.type_url for r in drain(state, snap2)] == [ROUTE_TYPE]
    assert snap2.version(CLUSTER_TYPE) == "1"


# --- rule 3: NACK -----------------------------------------------------------------------


def test_nack_is_recorded_and_the_rejected_version_not_resent() -> None:
    snap1 = snapshot(1)
    state = connect(snap1)
    snap2 = snapshot(2, routes="bad", previous=snap1)
    (rds,) = drain(state, snap2)
    outcome = state.on_request(request(ROUTE_TYPE, ["routes"], rds.nonce, "1", error="bad regex"))
    assert outcome.nack == "bad regex"
    sub = state.subscriptions[ROUTE_TYPE]
    assert sub.version_acked == "1" and sub.nacked_version == "2"
    assert sub.last_nack == "bad regex"
    assert drain(state, snap2) == []  # not resent in a loop
    snap3 = snapshot(3, routes="good", previous=snap2)
    (rds3,) = drain(state, snap3)  # the next change is delivered
    assert rds3.version == "3"
    ack(state, rds3, ["routes"])
    assert state.subscriptions[ROUTE_TYPE].version_acked == "3"


def test_nack_with_empty_version_on_first_response() -> None:
    snap = snapshot(1)
    state = StreamState()
    state.on_request(request(CLUSTER_TYPE, node=True))
    (cds,) = drain(state, snap)
    outcome = state.on_request(request(CLUSTER_TYPE, nonce=cds.nonce, error="no"))
    assert outcome.nack == "no"
    assert state.subscriptions[CLUSTER_TYPE].version_acked is None
    assert drain(state, snap) == []


# --- rule 5: stale nonce ------------------------------------------------------------------


def test_stale_nonce_gets_no_response_but_its_names_are_applied() -> None:
    snap1 = snapshot(1)
    state = connect(snap1)
    snap2 = snapshot(2, clusters={"a": b"x", "b": b""}, previous=snap1)
    _cds2, eds2 = drain(state, snap2)
    # A request carrying an old nonce that also narrows the subscription to "a".
    outcome = state.on_request(request(ENDPOINT_TYPE, ["a"], nonce="1", version="1"))
    assert outcome.stale
    assert state.subscriptions[ENDPOINT_TYPE].names == {"a"}
    assert state.subscriptions[ENDPOINT_TYPE].state is State.AWAITING_ACK
    assert drain(state, snap2) == []
    ack(state, eds2, ["a", "b"])
    assert state.subscriptions[ENDPOINT_TYPE].names == {"a", "b"}


# --- rule 6: full state for listeners and clusters, named for routes and endpoints --------


def test_clusters_are_sent_whole_and_endpoints_by_name() -> None:
    snap = snapshot(1, clusters={"a": b"", "b": b"", "c": b""})
    state = StreamState()
    state.on_request(request(CLUSTER_TYPE, node=True))
    (cds,) = drain(state, snap)
    assert cds.names == ("a", "b", "c")
    ack(state, cds)
    state.on_request(request(ENDPOINT_TYPE, ["b"]))
    (eds,) = drain(state, snap)
    assert eds.names == ("b",)


# --- rule 7: wildcard ---------------------------------------------------------------------


def test_legacy_wildcard_then_empty_list_unsubscribes() -> None:
    sub = Subscription(ENDPOINT_TYPE)
    sub.set_names([])
    assert sub.wildcard
    sub.set_names(["a"])
    assert not sub.wildcard and sub.names == {"a"}
    sub.set_names([])
    assert not sub.wildcard and sub.names == set()


def test_explicit_wildcard_with_names() -> None:
    clusters = snapshot(1).resources(CLUSTER_TYPE)
    sub = Subscription(CLUSTER_TYPE)
    sub.set_names(["*", "a"])
    assert sub.wildcard and sub.names == {"a"}
    assert list(sub.wanted(clusters)) == ["a", "b"]
    sub.set_names(["a"])
    assert not sub.wildcard and list(sub.wanted(clusters)) == ["a"]


# --- rule 8: new names are answered; unknown names are remembered ---------------------------


def test_newly_requested_name_is_sent_even_if_unchanged() -> None:
    snap = snapshot(1)
    state = connect(snap)
    eds = state.subscriptions[ENDPOINT_TYPE]
    state.on_request(request(ENDPOINT_TYPE, ["a"], eds.nonce, eds.version_sent or ""))
    assert drain(state, snap) == []  # narrowing needs no answer
    state.on_request(request(ENDPOINT_TYPE, ["a", "b"], eds.nonce, eds.version_sent or ""))
    (resp,) = drain(state, snap)
    assert resp.names == ("a", "b") and resp.version == "1"


def test_name_requested_before_it_exists_is_sent_when_it_appears() -> None:
    snap1 = snapshot(1, clusters={"a": b""})
    state = connect(snap1)
    eds = state.subscriptions[ENDPOINT_TYPE]
    state.on_request(request(ENDPOINT_TYPE, ["a", "later"], eds.nonce, eds.version_sent or ""))
    (resp,) = drain(state, snap1)
    assert resp.names == ("a",)
    ack(state, resp, ["a", "later"])
    snap2 = snapshot(2, clusters={"a": b"", "later": b""}, previous=snap1)
    cds, eds2 = drain(state, snap2)
    assert cds.type_url == CLUSTER_TYPE
    assert eds2.type_url == ENDPOINT_TYPE and eds2.names == ("a", "later")


# --- rule 12 (and make-before-break ordering) ----------------------------------------------


def test_reconnect_is_always_answered() -> None:
    snap = snapshot(5)
    state = StreamState()
    state.on_request(request(CLUSTER_TYPE, version="5", node=True))
    (cds,) = drain(state, snap)
    assert cds.version == "5"


def test_routes_wait_until_new_clusters_and_endpoints_are_acked() -> None:
    snap1 = snapshot(1)
    state = connect(snap1)
    snap2 = snapshot(2, clusters={"a": b"", "b": b"", "new": b""}, routes="to-new", previous=snap1)
    sent = drain(state, snap2)
    assert [r.type_url for r in sent] == [CLUSTER_TYPE]  # no RDS yet
    ack(state, sent[0])
    assert drain(state, snap2) == []  # the proxy has not asked for "new" endpoints yet
    state.on_request(request(ENDPOINT_TYPE, ["a", "b", "new"], sent[0].nonce))
    (eds,) = drain(state, snap2)
    assert eds.type_url == ENDPOINT_TYPE and "new" in eds.names
    assert drain(state, snap2) == []  # EDS not acked
    ack(state, eds, ["a", "b", "new"])
    (rds,) = drain(state, snap2)
    assert rds.type_url == ROUTE_TYPE and rds.version == "2"


def test_endpoints_are_resent_when_a_cluster_changes() -> None:
    snap1 = snapshot(1)
    state = connect(snap1)
    snap2 = snapshot(2, clusters={"a": b"changed", "b": b""}, previous=snap1)
    assert snap2.version(ENDPOINT_TYPE) == "1"  # the endpoints themselves did not change
    cds, eds = drain(state, snap2)  # Envoy ACKs the cluster only once it has warmed
    assert cds.type_url == CLUSTER_TYPE
    assert eds.type_url == ENDPOINT_TYPE and eds.names == ("a", "b")
    ack(state, eds, ["a", "b"])
    ack(state, cds)
    assert drain(state, snap2) == []
    assert state.in_sync(snap2)


def test_a_new_cluster_alone_pushes_no_endpoints_until_asked() -> None:
    snap1 = snapshot(1)
    state = connect(snap1)
    snap2 = snapshot(2, clusters={"a": b"", "b": b"", "new": b""}, previous=snap1)
    (cds,) = drain(state, snap2)  # a and b are unchanged for this proxy
    assert cds.type_url == CLUSTER_TYPE
    assert not state.in_sync(snap2)


def test_in_sync_after_start_up_and_not_while_a_response_is_in_flight() -> None:
    snap1 = snapshot(1)
    state = connect(snap1)
    assert state.in_sync(snap1)
    snap2 = snapshot(2, routes="r2", previous=snap1)
    (rds,) = drain(state, snap2)
    assert not state.in_sync(snap2)
    ack(state, rds, ["routes"])
    assert state.in_sync(snap2)


def test_a_cluster_routes_still_use_is_removed_only_after_new_routes_are_acked() -> None:
    snap1 = snapshot(1, clusters={"old": b"", "new": b""}, refs=["old"])
    state = connect(snap1)
    # The route moves from "old" to "new" and "old" is deleted in the same revision.
    snap2 = snapshot(2, clusters={"new": b""}, routes="to-new", previous=snap1, refs=["new"])
    (rds,) = drain(state, snap2)  # "old" is kept: the acked routes still use it
    assert rds.type_url == ROUTE_TYPE
    assert "old" in state.subscriptions[CLUSTER_TYPE].sent
    ack(state, rds, ["routes"])
    (cds,) = drain(state, snap2)  # now nothing uses "old": it goes
    assert cds.type_url == CLUSTER_TYPE and cds.names == ("new",)
    ack(state, cds)
    assert state.in_sync(snap2)


# --- Delta xDS ------------------------------------------------------------------------------


def delta_request(
    type_url: str,
    subscribe: list[str] | None = None,
    unsubscribe: list[str] | None = None,
    nonce: str = "",
    error: str | None = None,
    initial: dict[str, str] | None = None,
    node: bool = False,
) -> DeltaDiscoveryRequest:
    req = DeltaDiscoveryRequest(
        type_url=type_url,
        resource_names_subscribe=subscribe or [],
        resource_names_unsubscribe=unsubscribe or [],
        response_nonce=nonce,
        initial_resource_versions=initial or {},
    )
    if node:
        req.node.CopyFrom(Node(id="envoy-1", cluster="default"))
    if error is not None:
        req.error_detail.CopyFrom(Status(code=13, message=error))
    return req


def delta_ack(state: StreamState, resp: Response) -> None:
    state.on_delta_request(delta_request(resp.type_url, nonce=resp.nonce))


def delta_connect(snap: Snapshot) -> StreamState:
    state = StreamState(delta=True)
    state.on_delta_request(delta_request(CLUSTER_TYPE, node=True))
    (cds,) = drain(state, snap)
    delta_ack(state, cds)
    state.on_delta_request(delta_request(ENDPOINT_TYPE, sorted(snap.resources(CLUSTER_TYPE))))
    (eds,) = drain(state, snap)
    delta_ack(state, eds)
    state.on_delta_request(delta_request(LISTENER_TYPE))
    (lds,) = drain(state, snap)
    delta_ack(state, lds)
    state.on_delta_request(delta_request(ROUTE_TYPE, ["routes"]))
    (rds,) = drain(state, snap)
    delta_ack(state, rds)
    assert state.in_sync(snap)
    return state


def test_delta_first_wildcard_request_is_answered_even_when_empty() -> None:
    state = StreamState(delta=True)
    state.on_delta_request(delta_request(CLUSTER_TYPE, node=True))
    (cds,) = drain(state, snapshot(1, clusters={}))
    assert cds.names == () and cds.removed == ()


def test_delta_sends_only_changed_resources_and_removes_deleted_ones() -> None:
    snap1 = snapshot(1, clusters={"a": b"", "b": b"", "c": b""})
    state = delta_connect(snap1)
    snap2 = snapshot(2, clusters={"a": b"changed", "b": b""}, previous=snap1)
    cds, eds = drain(state, snap2)
    assert cds.names == ("a",) and cds.removed == ("c",)
    assert eds.names == ("a",)  # the changed cluster's endpoints, though unchanged
    assert eds.removed == ("c",)


def test_delta_unknown_name_is_reported_removed_then_sent_when_it_appears() -> None:
    snap1 = snapshot(1, clusters={"a": b""})
    state = delta_connect(snap1)
    rds_sub = state.subscriptions[ROUTE_TYPE]
    state.on_delta_request(delta_request(ROUTE_TYPE, ["later"], nonce=rds_sub.nonce))
    (resp,) = drain(state, snap1)
    assert resp.names == () and resp.removed == ("later",)
    delta_ack(state, resp)
    assert drain(state, snap1) == []  # told once


def test_delta_reconnect_skips_what_the_client_already_has() -> None:
    snap = snapshot(7, clusters={"a": b"", "b": b""})
    known = {name: r.hash for name, r in snap.resources(CLUSTER_TYPE).items()}
    known["gone"] = "x"
    state = StreamState(delta=True)
    state.on_delta_request(delta_request(CLUSTER_TYPE, initial=known, node=True))
    (cds,) = drain(state, snap)
    assert cds.names == () and cds.removed == ("gone",)


def test_delta_stale_nonce_still_applies_subscription_changes() -> None:
    snap1 = snapshot(1, clusters={"a": b"", "b": b""})
    state = delta_connect(snap1)
    snap2 = snapshot(2, clusters={"a": b"x", "b": b""}, previous=snap1)
    _cds, _eds = drain(state, snap2)
    outcome = state.on_delta_request(delta_request(ENDPOINT_TYPE, unsubscribe=["b"], nonce="1"))
    assert outcome.stale
    assert state.subscriptions[ENDPOINT_TYPE].names == {"a"}


def test_delta_nack_is_not_resent_until_the_next_change() -> None:
    snap1 = snapshot(1)
    state = delta_connect(snap1)
    snap2 = snapshot(2, routes="bad", previous=snap1)
    (rds,) = drain(state, snap2)
    outcome = state.on_delta_request(delta_request(ROUTE_TYPE, nonce=rds.nonce, error="bad"))
    assert outcome.nack == "bad"
    assert drain(state, snap2) == []
    assert state.type_state(state.subscriptions[ROUTE_TYPE], snap2).value == "NACKED"
    snap3 = snapshot(3, routes="good", previous=snap2)
    (rds3,) = drain(state, snap3)
    assert rds3.names == ("routes",)

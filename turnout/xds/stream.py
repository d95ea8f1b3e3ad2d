"""Per-stream ADS protocol state, State of the World and Delta. No I/O, no clock.

One `StreamState` per gRPC stream holds one `Subscription` per type URL. The server
feeds it every request (`on_request` / `on_delta_request`), asks it what to send
(`next_response`) whenever a request arrives or the snapshot changes, and records
what went out (`on_sent`). It coordinates: `subscription.py` (one type's names and
versions), `state_machine.py` (the table of its states: whether a response is in
flight, owed, and how the last one was taken; every change of them is an input to
that table), `holdings.py` (what the
client was sent and accepted), `ordering.py` (make before break), `splice.py`
(quarantine and route cuts) and `sync_state.py` (where each type stands). Rules
it enforces (xDS spec, docs/root/api-docs/xds_protocol.rst):

1. Only the first request is sure to carry `node`; it is kept for the stream.
2. Nonces are unique within the stream (a counter); versions are per type.
3. A NACK is a request with `error_detail`. What a client was sent is tracked by
   content, so a rejected version is never sent again while it is the newest
   (go-control-plane#962 shows the loop this avoids); the next change goes out.
   The rejected entities are quarantined (`quarantine.py`, `splice.py`): the
   client keeps its last accepted version of each (or gets none) until the
   declaration changes it, and everything else is sent; a route is never sent pointing at a cluster
   the client rejected and does not hold.
4. At most one unacknowledged response per type; changes made meanwhile collapse
   into the newest snapshot, sent when the ACK arrives.
5. A stale nonce gets no response, but its resource names are applied
   (envoy#10363); in Delta, subscription changes are always honoured.
6. SotW listeners and clusters are sent whole; routes and endpoints by name.
7. Wildcard is `*`, or an empty first request; once names were sent, an empty
   SotW list unsubscribes.
8. Newly requested names are sent even when unchanged; names that do not exist
   are remembered and sent when they appear (Delta: listed as removed first).
9. Make before break: clusters, endpoints, listeners, routes, in that order.
   Listeners and routes wait until every cluster and its endpoints are
   acknowledged, so a route never points at a warming cluster; a cluster that the
   proxy's routes still use stays until routes without it are acknowledged.
   Endpoints do not wait for the clusters' ACK: Envoy acknowledges new clusters
   only once they warmed, which takes their endpoints.
"""

from envoy.config.core.v3.base_pb2 import Node
from envoy.service.discovery.v3.discovery_pb2 import DeltaDiscoveryRequest, DiscoveryRequest

from turnout.xds import sync_state
from turnout.xds.holdings import Holdings
from turnout.xds.nack import nack_text
from turnout.xds.ordering import held_back, version_label
from turnout.xds.quarantine import Quarantined
from turnout.xds.responses import RequestOutcome, Response
from turnout.xds.route_parts import RouteCut
from turnout.xds.snapshot import (
    CLUSTER_TYPE,
    ENDPOINT_TYPE,
    LISTENER_TYPE,
    ROUTE_TYPE,
    TYPE_ORDER,
    PackedResource,
    Snapshot,
)
from turnout.xds.splice import (
    effective,
    enter_quarantine,
    held_for_quarantine,
    quarantined,
    release,
    route_cuts,
)
from turnout.xds.state_machine import _TRANSITIONS, Input, ProtocolError, State
from turnout.xds.subscription import FULL_STATE_TYPES, WILDCARD, Subscription, TypeState

# The stream's vocabulary: the server, `limits.py` and the tests import it from here.
__all__ = [
    "FULL_STATE_TYPES",
    "WILDCARD",
    "_TRANSITIONS",
    "Input",
    "ProtocolError",
    "RequestOutcome",
    "Response",
    "State",
    "StreamState",
    "Subscription",
    "TypeState",
]


class StreamState:
    """All protocol state of one ADS stream (SotW, or Delta when `delta`)."""

    def __init__(self, delta: bool = False) -> None:
        self.delta = delta
        self.node: Node | None = None
        self.subscriptions: dict[str, Subscription] = {}
        self._nonce_counter = 0
        self._holdings = Holdings()
        self.quarantine_version = 0
        """Bumped whenever an entry is quarantined or released (part of every basis)."""

    # --- requests ---------------------------------------------------------------------

    def on_request(self, request: DiscoveryRequest) -> RequestOutcome:
        sub = self._subscription(request.node if request.HasField("node") else None, request)
        sub.set_names(request.resource_names)
        return self._on_nonce(sub, request.response_nonce, request)

    def on_delta_request(self, request: DeltaDiscoveryRequest) -> RequestOutcome:
        sub = self._subscription(request.node if request.HasField("node") else None, request)
        if sub.state is State.IDLE and request.initial_resource_versions:
            # A reconnect: the client still holds these; send only what differs.
            sub.sent = dict(request.initial_resource_versions)
            sub.acked = dict(sub.sent)
        sub.change_names(request.resource_names_subscribe, request.resource_names_unsubscribe)
        return self._on_nonce(sub, request.response_nonce, request)

    def _subscription(
        self, node: Node | None, request: DiscoveryRequest | DeltaDiscoveryRequest
    ) -> Subscription:
        if self.node is None:
            if node is None:
                raise ProtocolError("the first request on a stream must carry node")
            self.node = node
        if not request.type_url:
            raise ProtocolError("a request on ADS must carry type_url")
        return self.subscriptions.setdefault(request.type_url, Subscription(request.type_url))

    def _on_nonce(
        self, sub: Subscription, nonce: str, request: DiscoveryRequest | DeltaDiscoveryRequest
    ) -> RequestOutcome:
        outcome = RequestOutcome()
        if not nonce:
            # A new subscription or a reconnect: always answered.
            sub.process_input(Input.RECV_REQUEST)
            return outcome
        if nonce != sub.nonce:
            outcome.stale = True  # names were applied above; nothing else
            return outcome
        if not sub.state.awaiting_ack:
            sub.process_input(Input.RECV_UPDATE)  # a names change after the answer
            return outcome
        if request.HasField("error_detail"):
            sub.nacked_version = sub.version_sent
            sub.last_nack = nack_text(request.error_detail)
            outcome.nack = sub.last_nack
            quarantined, rest_applied = enter_quarantine(
                sub, request.error_detail.message, self._holdings
            )
            if not quarantined:
                sub.process_input(Input.RECV_NACK)
            elif rest_applied:
                sub.process_input(Input.RECV_NACK_PARTIAL)
            else:
                sub.process_input(Input.RECV_NACK_QUARANTINED)
            outcome.quarantined = quarantined
            if quarantined:
                self.quarantine_version += 1
        else:
            sub.process_input(Input.RECV_ACK)
            sub.version_acked, sub.acked = sub.version_sent, dict(sub.sent)
            self._holdings.on_ack(sub.type_url, routes=sub.type_url == ROUTE_TYPE)
            if sub.type_url == ROUTE_TYPE:
                sub.acked_parts = dict(sub.sent_cuts)
            outcome.ack = True
        return outcome

    # --- responses --------------------------------------------------------------------

    def next_response(self, snapshot: Snapshot) -> Response | None:
        """The first response due, in make-before-break order; None if none is."""
        self.quarantine_version += release(self.subscriptions, snapshot, self._holdings)
        for type_url in TYPE_ORDER:
            sub = self.subscriptions.get(type_url)
            if sub is None or not sub.state.watching:
                continue
            if type_url in (LISTENER_TYPE, ROUTE_TYPE) and not self._clusters_settled(snapshot):
                continue
            basis = self._basis(sub, snapshot)
            if self._clean(sub, basis):
                continue  # nothing this client wants changed since it was last checked
            wanted = self._wanted(sub, snapshot)
            updated = {
                n: r for n, r in wanted.items() if sub.sent.get(n) != r.hash or n in sub.resend
            }
            gone = tuple(n for n in sub.sent if n not in wanted)
            missing = tuple(sorted(sub.names - wanted.keys() - sub.told_missing - set(gone)))
            if self.delta:
                due = sub.state.owed or updated or gone or missing
                resources, removed = updated, tuple(sorted(gone)) + missing
            else:
                due = sub.state.owed or updated or (gone and type_url in FULL_STATE_TYPES)
                resources, removed = wanted, ()
            if not due:
                sub.clean_basis = basis
                continue
            self._nonce_counter += 1
            version = version_label(snapshot.version(type_url), wanted, snapshot, type_url)
            refs: dict[str, frozenset[str]] = {}
            parts = {n: snapshot.route_parts[n] for n in resources if n in snapshot.route_parts}
            cuts: dict[str, RouteCut] = {}
            if type_url == ROUTE_TYPE:
                cds = self.subscriptions.get(CLUSTER_TYPE)
                spliced = route_cuts(sub, cds, snapshot, resources, self._holdings)
                cuts = {n: spliced.get(n) or RouteCut(p) for n, p in parts.items()}
                # Make before break: the clusters an old form spliced in still uses
                # stay while it is sent (`held_back`).
                refs = {
                    n: snapshot.route_refs.get(n, frozenset())
                    | (cuts[n].services() if n in cuts else frozenset())
                    for n in resources
                }
            nonce = str(self._nonce_counter)
            return Response(
                type_url,
                version,
                resources,
                removed,
                nonce,
                refs,
                basis,
                tuple(updated),
                parts,
                cuts,
            )
        return None

    def on_sent(self, response: Response) -> None:
        sub = self.subscriptions[response.type_url]
        sub.process_input(Input.SEND_RESPONSE)
        sub.nonce, sub.version_sent = response.nonce, response.version
        sub.clean_basis = response.basis
        sub.last_updated = response.updated
        if response.type_url == ROUTE_TYPE:
            sub.sent_parts = response.route_parts
            if not self.delta:
                sub.sent_cuts = {}
            sub.sent_cuts.update(response.route_cuts)
            for name in response.removed:
                sub.sent_cuts.pop(name, None)
        if response.type_url == CLUSTER_TYPE:
            self._resend_endpoints_of_changed_clusters(sub.sent, response.resources)
        routes = response.type_url == ROUTE_TYPE
        self._holdings.on_sent(
            response.type_url,
            response.resources,
            response.removed,
            response.route_refs if routes else None,
            self.delta,
        )
        hashes = {n: r.hash for n, r in response.resources.items()}
        if self.delta:
            sub.sent.update(hashes)
            for name in response.removed:
                sub.sent.pop(name, None)
                if name in sub.names:
                    sub.told_missing.add(name)
        else:
            sub.sent = hashes
        if sub.resend:  # in place: `-=` with dict keys builds a new set per response
            sub.resend.difference_update(response.resources)

    def _wanted(self, sub: Subscription, snapshot: Snapshot) -> dict[str, PackedResource]:
        cds = self.subscriptions.get(CLUSTER_TYPE)
        wanted = effective(sub, cds, snapshot, self._holdings)
        wanted = held_for_quarantine(sub, wanted, self._holdings)
        holding = self._holdings.sent.get(sub.type_url, {})
        for name in self._held_back(sub, snapshot):
            wanted[name] = holding[name]
        return dict(sorted(wanted.items()))

    def _held_back(self, sub: Subscription, snapshot: Snapshot) -> tuple[str, ...]:
        holding = self._holdings.sent.get(sub.type_url, {})
        return held_back(sub, snapshot, self._holdings.route_refs(), holding)

    def _basis(self, sub: Subscription, snapshot: Snapshot) -> tuple[object, ...]:
        """Everything a type's response depends on: the snapshot's content of the type
        (its digest), what the client subscribed to, and what is held back for it."""
        entry = snapshot.types.get(sub.type_url)
        held = self._held_back(sub, snapshot)
        return (entry.digest if entry else "", sub.names_version, held, self.quarantine_version)

    @staticmethod
    def _clean(sub: Subscription, basis: tuple[object, ...]) -> bool:
        return not sub.state.owed and not sub.resend and sub.clean_basis == basis

    def _resend_endpoints_of_changed_clusters(
        self, before: dict[str, str], after: dict[str, PackedResource]
    ) -> None:
        """A changed cluster warms until it receives endpoints, even unchanged ones
        (xDS spec "Resource warming"; go-control-plane#245)."""
        changed = {n for n, r in after.items() if n in before and before[n] != r.hash}
        if changed:
            eds = self.subscriptions.setdefault(ENDPOINT_TYPE, Subscription(ENDPOINT_TYPE))
            eds.resend |= changed

    def quarantine(self) -> list[Quarantined]:
        """Every entity this client is kept on an old version of (or without)."""
        return quarantined(self.subscriptions)

    # --- status -----------------------------------------------------------------------

    def resources_sent(self) -> dict[str, list[PackedResource]]:
        """By type URL, what the client holds if it accepted everything sent."""
        return self._holdings.resources_sent()

    def type_state(self, sub: Subscription, snapshot: Snapshot) -> TypeState:
        return sync_state.type_state(
            sub,
            lambda s: self._clean(s, self._basis(s, snapshot)),
            lambda s: self._wanted(s, snapshot),
        )

    def in_sync(self, snapshot: Snapshot) -> bool:
        """Every subscribed type acknowledged with the snapshot's content."""
        active = [s for s in self.subscriptions.values() if s.state is not State.IDLE]
        return bool(active) and all(
            self.type_state(sub, snapshot) is TypeState.SYNCED for sub in active
        )

    def _clusters_settled(self, snapshot: Snapshot) -> bool:
        def clean(sub: Subscription) -> bool:
            return self._clean(sub, self._basis(sub, snapshot))

        return sync_state.clusters_settled(self.subscriptions, snapshot, self._holdings, clean)

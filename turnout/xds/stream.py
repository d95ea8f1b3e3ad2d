"""Per-stream State-of-the-World ADS protocol state. No I/O, no clock, no asyncio.

One `StreamState` per gRPC stream holds one `Subscription` per type URL. The server
feeds it every request (`on_request`) and asks it what to send (`next_response`)
whenever a request arrives or the snapshot changes; it records what went out
(`on_sent`). Rules it enforces (xDS spec, docs/root/api-docs/xds_protocol.rst):

1. Only the first request is sure to carry `node`; it is kept for the stream.
2. Nonces are unique within the stream (a counter).
3. A NACK is a request with `error_detail`; the rejected version is not sent again
   while it is still the newest (go-control-plane#962 shows the loop this avoids).
4. At most one unacknowledged response per type; changes made meanwhile collapse
   into the newest snapshot, sent when the ACK arrives.
5. A request with a stale nonce gets no response, but its resource names are
   applied (envoy#10363): the change is honoured with the next response.
6. Listeners and clusters are sent whole; routes and endpoints by requested name.
7. Wildcard is `*`, or an empty list on a stream that never named anything.
8. Newly requested names are sent even when unchanged; names that do not exist
   yet are remembered and sent when they appear.
9. Make before break: types go out in the order clusters, endpoints, listeners,
   routes; listeners and routes wait until every cluster and its endpoints are
   acknowledged, so a route never points at a warming cluster. Endpoints do not
   wait for the clusters' ACK: Envoy acknowledges new clusters only once they have
   warmed, which takes their endpoints.
"""

from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import Enum, auto

from envoy.config.core.v3.base_pb2 import Node
from envoy.service.discovery.v3.discovery_pb2 import DiscoveryRequest

from turnout.models.errors import TurnoutError
from turnout.xds.snapshot import (
    CLUSTER_TYPE,
    ENDPOINT_TYPE,
    LISTENER_TYPE,
    ROUTE_TYPE,
    TYPE_ORDER,
    PackedResource,
    Snapshot,
)

WILDCARD = "*"
FULL_STATE_TYPES = frozenset({CLUSTER_TYPE, LISTENER_TYPE})


class ProtocolError(TurnoutError):
    """The client broke the protocol; the stream is closed with INVALID_ARGUMENT."""


class State(Enum):
    IDLE = auto()  # nothing requested yet for this type
    WATCHING = auto()  # requested; nothing unacknowledged in flight
    AWAITING_ACK = auto()  # one response in flight


class Input(Enum):
    RECV_REQUEST = auto()
    SEND_RESPONSE = auto()
    RECV_ACK = auto()
    RECV_NACK = auto()


_TRANSITIONS: dict[tuple[State, Input], State] = {
    (State.IDLE, Input.RECV_REQUEST): State.WATCHING,
    (State.WATCHING, Input.RECV_REQUEST): State.WATCHING,
    (State.WATCHING, Input.SEND_RESPONSE): State.AWAITING_ACK,
    (State.AWAITING_ACK, Input.RECV_REQUEST): State.AWAITING_ACK,
    (State.AWAITING_ACK, Input.RECV_ACK): State.WATCHING,
    (State.AWAITING_ACK, Input.RECV_NACK): State.WATCHING,
}


@dataclass
class Subscription:
    """What one stream asked for and received of one resource type."""

    type_url: str
    state: State = State.IDLE
    names: set[str] = field(default_factory=set)
    """Explicitly requested names (without `*`)."""
    wildcard: bool = False
    """The client wants every resource of this type."""
    ever_named: bool = False
    """A name was sent once; an empty list no longer means wildcard."""
    must_respond: bool = False
    """New names (or a new stream) need an answer even if nothing changed."""
    nonce: str = ""
    """Nonce of the last response sent."""
    version_sent: str | None = None
    sent: dict[str, str] = field(default_factory=dict)
    """Name → content hash of each resource in the last response."""
    version_acked: str | None = None
    acked: dict[str, str] = field(default_factory=dict)
    """Name → content hash of each resource the client last accepted."""
    resend: set[str] = field(default_factory=set)
    """Names to send again even if unchanged (endpoints of a changed cluster)."""
    nacked_version: str | None = None
    last_nack: str | None = None

    def process_input(self, inp: Input) -> None:
        try:
            self.state = _TRANSITIONS[(self.state, inp)]
        except KeyError:
            raise ProtocolError(f"{inp.name} in {self.state.name} for {self.type_url}") from None

    def set_names(self, requested: Iterable[str]) -> None:
        """Apply a request's `resource_names` (spec: "How the client specifies ...")."""
        names = set(requested)
        if not names:
            wildcard, names = not self.ever_named, set()
        else:
            self.ever_named = True
            wildcard = WILDCARD in names
            names.discard(WILDCARD)
        if (wildcard and not self.wildcard) or (names - self.names):
            self.must_respond = True
        self.wildcard, self.names = wildcard, names

    def wanted(self, available: dict[str, PackedResource]) -> dict[str, str]:
        """Name → hash of the snapshot's resources this subscription asks for."""
        if self.wildcard:
            return {name: r.hash for name, r in available.items()}
        return {name: r.hash for name, r in available.items() if name in self.names}


@dataclass(frozen=True)
class Response:
    """What the server must send: the snapshot resources named, at `version`."""

    type_url: str
    version: str
    resources: dict[str, str]
    """Name → hash of each resource to send, in name order."""
    nonce: str

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self.resources)


@dataclass
class RequestOutcome:
    """What a request turned out to be, for metrics and logs."""

    stale: bool = False
    ack: bool = False
    nack: str | None = None
    suppressed_resend: bool = False


class StreamState:
    """All protocol state of one ADS stream."""

    def __init__(self) -> None:
        self.node: Node | None = None
        self.subscriptions: dict[str, Subscription] = {}
        self._nonce_counter = 0

    def on_request(self, request: DiscoveryRequest) -> RequestOutcome:
        if self.node is None:
            if not request.HasField("node"):
                raise ProtocolError("the first request on a stream must carry node")
            self.node = request.node
        if not request.type_url:
            raise ProtocolError("a request on ADS must carry type_url")
        sub = self.subscriptions.setdefault(request.type_url, Subscription(request.type_url))
        outcome = RequestOutcome()
        sub.set_names(request.resource_names)

        if not request.response_nonce:
            # A new subscription or a reconnect: always answered (rule 12).
            sub.must_respond = True
            if sub.state is State.IDLE:
                sub.process_input(Input.RECV_REQUEST)
            return outcome
        if request.response_nonce != sub.nonce:
            outcome.stale = True  # names were applied above; nothing else
            return outcome
        if sub.state is not State.AWAITING_ACK:
            sub.process_input(Input.RECV_REQUEST)  # a names change after the ACK
            return outcome
        if request.HasField("error_detail"):
            sub.process_input(Input.RECV_NACK)
            sub.nacked_version = sub.version_sent
            sub.last_nack = request.error_detail.message
            outcome.nack = request.error_detail.message
            outcome.suppressed_resend = True
        else:
            sub.process_input(Input.RECV_ACK)
            sub.version_acked = sub.version_sent
            sub.acked = sub.sent
            outcome.ack = True
        return outcome

    def next_response(self, snapshot: Snapshot) -> Response | None:
        """The first response due, in make-before-break order; None if none is."""
        for type_url in TYPE_ORDER:
            sub = self.subscriptions.get(type_url)
            if sub is None or sub.state is not State.WATCHING:
                continue
            if type_url in (LISTENER_TYPE, ROUTE_TYPE) and not self._clusters_settled(snapshot):
                continue
            version = snapshot.version(type_url)
            wanted = sub.wanted(snapshot.resources(type_url))
            if not (sub.must_respond or self._changed(sub, version, wanted)):
                continue
            self._nonce_counter += 1
            return Response(type_url, version, wanted, str(self._nonce_counter))
        return None

    @staticmethod
    def _changed(sub: Subscription, version: str, wanted: dict[str, str]) -> bool:
        if sub.type_url in FULL_STATE_TYPES:
            # The whole set goes out; a NACKed version waits for the next change.
            return version != sub.version_sent and version != sub.nacked_version
        # Routes and endpoints: only what this client asked for counts. A name that
        # does not exist yet is absent until it appears; one it dropped needs no answer.
        return not _covers(sub.sent, wanted) or bool(sub.resend & wanted.keys())

    def on_sent(self, response: Response) -> None:
        sub = self.subscriptions[response.type_url]
        sub.process_input(Input.SEND_RESPONSE)
        sub.nonce = response.nonce
        sub.version_sent = response.version
        if response.type_url == CLUSTER_TYPE:
            self._resend_endpoints_of_changed_clusters(sub.sent, response.resources)
        sub.sent = response.resources
        sub.resend -= response.resources.keys()
        sub.must_respond = False

    def _resend_endpoints_of_changed_clusters(
        self, before: dict[str, str], after: dict[str, str]
    ) -> None:
        """A changed cluster warms until it receives endpoints, even unchanged ones
        (xDS spec "Knowing When a Requested Resource Does Not Exist"; go-control-plane#245)."""
        changed = {name for name, h in after.items() if name in before and before[name] != h}
        if changed:
            eds = self.subscriptions.setdefault(ENDPOINT_TYPE, Subscription(ENDPOINT_TYPE))
            eds.resend |= changed

    def in_sync(self, snapshot: Snapshot) -> bool:
        """Every subscribed type acknowledged with the snapshot's content."""
        active = [s for s in self.subscriptions.values() if s.state is not State.IDLE]
        return bool(active) and all(
            sub.state is State.WATCHING
            and not sub.must_respond
            and sub.version_acked == sub.version_sent
            and not self._changed(sub, snapshot.version(sub.type_url), sub.acked)
            and _covers(sub.acked, sub.wanted(snapshot.resources(sub.type_url)))
            for sub in active
        )

    def _clusters_settled(self, snapshot: Snapshot) -> bool:
        """Every cluster of the snapshot reached the proxy with its endpoints."""
        cds = self.subscriptions.get(CLUSTER_TYPE)
        if cds is None:
            return True  # not a proxy that uses CDS over this stream
        if cds.state is not State.WATCHING or not _covers(
            cds.acked, cds.wanted(snapshot.resources(CLUSTER_TYPE))
        ):
            return False
        needed = snapshot.eds_cluster_names
        if not needed:
            return True
        eds = self.subscriptions.get(ENDPOINT_TYPE)
        if eds is None or eds.state is not State.WATCHING or eds.resend & needed:
            return False
        endpoints = snapshot.resources(ENDPOINT_TYPE)
        return all(eds.acked.get(name) == endpoints[name].hash for name in needed)


def _covers(have: dict[str, str], wanted: dict[str, str]) -> bool:
    """`have` holds every wanted resource at the wanted content."""
    return all(have.get(name) == digest for name, digest in wanted.items())

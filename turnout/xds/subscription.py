"""One stream's subscription to one resource type.

Follows go-control-plane `pkg/server/stream/v3/subscription.go` (names, wildcard,
nonce, versions per type URL); its protocol state steps through the table of
`state_machine.py`, and only `process_input` changes it: the other fields are data
(what was asked, sent, accepted, quarantined), not state. The rules the fields serve
are listed in `stream.py`. No I/O.
"""

from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import Enum

from turnout.xds.quarantine import Quarantined
from turnout.xds.route_parts import RouteCut, RouteParts
from turnout.xds.snapshot import CLUSTER_TYPE, LISTENER_TYPE, PackedResource
from turnout.xds.state_machine import Input, State, next_state

WILDCARD = "*"
FULL_STATE_TYPES = frozenset({CLUSTER_TYPE, LISTENER_TYPE})


class TypeState(Enum):
    """Where one type stands on one proxy, as `GET /proxies` shows it."""

    SYNCED = "SYNCED"  # acknowledged the current content
    STALE = "STALE"  # behind: a response is in flight or due
    NACKED = "NACKED"  # rejected the newest content; waits for the next change


@dataclass(slots=True)  # one per type per stream: thousands of them; slots save ~1 KB each
class Subscription:
    """What one stream asked for and received of one resource type."""

    type_url: str
    state: State = State.IDLE
    """The protocol state (`state_machine.py`); only `process_input` changes it."""
    names: set[str] = field(default_factory=set)
    """Explicitly requested names (without `*`)."""
    wildcard: bool = False
    """The client wants every resource of this type."""
    ever_named: bool = False
    """A name was sent once; an empty SotW list no longer means wildcard."""
    nonce: str = ""
    """Nonce of the last response sent."""
    version_sent: str | None = None
    sent: dict[str, str] = field(default_factory=dict)
    """Name → hash of what the client holds if it accepts everything sent."""
    version_acked: str | None = None
    acked: dict[str, str] = field(default_factory=dict)
    """Name → hash of what the client accepted."""
    resend: set[str] = field(default_factory=set)
    """Names to send again even if unchanged (endpoints of a changed cluster)."""
    told_missing: set[str] = field(default_factory=set)
    """Delta: requested names already reported as not existing."""
    nacked_version: str | None = None
    """The version of the last response the client rejected (for `GET /proxies`)."""
    last_nack: str | None = None
    """The client's message for that rejection (`nack.py` bounds and redacts it)."""
    names_version: int = 0
    """Bumped whenever `names` or `wildcard` change."""
    clean_basis: tuple[object, ...] | None = None
    """The basis (see `StreamState._basis`) at which what was sent covers what the
    client wants: while it holds, there is nothing to compute for this type."""
    last_updated: tuple[str, ...] = ()
    """Names the last response sent changed for the client (what a NACK can be about)."""
    sent_parts: dict[str, RouteParts] = field(default_factory=dict)
    """Routes only: the parts of the route configurations last sent."""
    sent_cuts: dict[str, RouteCut] = field(default_factory=dict)
    """Routes only: what the client holds of each route configuration if it accepts
    everything sent (which routes were cut, which old forms spliced in)."""
    acked_parts: dict[str, RouteCut] = field(default_factory=dict)
    """Routes only: what the client accepted of each route configuration: the forms
    a quarantined route falls back to."""
    quarantined: dict[str, Quarantined] = field(default_factory=dict)
    """Name → the rejected version of a resource the client keeps its old one of."""
    quarantined_routes: dict[str, Quarantined] = field(default_factory=dict)
    """Routes only: route name → its rejected entries, replaced by the last accepted
    form of the route (or left out when the client never accepted one)."""

    def process_input(self, inp: Input) -> None:
        self.state = next_state(self.state, inp, self.type_url)

    def set_names(self, requested: Iterable[str]) -> None:
        """Apply a SotW request's `resource_names`."""
        names = set(requested)
        if not names:
            wildcard, names = not self.ever_named, set()
        else:
            self.ever_named = True
            wildcard = WILDCARD in names
            names.discard(WILDCARD)
        self._apply(wildcard, names)

    def change_names(self, subscribe: Iterable[str], unsubscribe: Iterable[str]) -> None:
        """Apply a Delta request's subscribe and unsubscribe lists."""
        add, drop = set(subscribe), set(unsubscribe)
        wildcard = self.wildcard
        if self.state is State.IDLE and not add and not self.ever_named:
            wildcard = True  # an empty first request is a wildcard subscription
        if WILDCARD in add:
            wildcard = True
        if WILDCARD in drop:
            wildcard = False
        self.ever_named = True
        names = (self.names | add) - drop - {WILDCARD}
        for name in drop - {WILDCARD}:
            self.told_missing.discard(name)
            self.names_version += 1
            if wildcard:
                self.resend.add(name)  # spec: reply with it, still covered by `*`
            else:
                self.sent.pop(name, None)  # the client forgets it
                self.acked.pop(name, None)
        self._apply(wildcard, names)

    def _apply(self, wildcard: bool, names: set[str]) -> None:
        if (wildcard and not self.wildcard) or (names - self.names):
            self.process_input(Input.RECV_NEW_NAMES)
        if wildcard != self.wildcard or names != self.names:
            self.names_version += 1
        self.wildcard, self.names = wildcard, names

    def wanted(self, available: dict[str, PackedResource]) -> dict[str, PackedResource]:
        """The snapshot's resources this subscription asks for, by name."""
        if self.wildcard:
            return dict(available)
        return {name: r for name, r in available.items() if name in self.names}

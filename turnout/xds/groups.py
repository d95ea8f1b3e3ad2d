"""Which node groups have streams, and which may be forgotten: the cache's bookkeeping.

Every change of the declaration is translated for every node group the cache knows,
so groups must not outlive their proxies. A stream `join`s its group when it starts
and `leave`s it when it ends. A group without streams is idle; it is evicted once
it has been idle `grace` seconds (proxies that lost their stream usually reconnect
at once, and find their group still translated), or earlier when `max_groups` is
reached and a new group needs the room. A new group is refused (`TooManyGroups`)
only when every known group has a live stream.

Under mTLS each stream carries an identity (its certificate's fingerprint): one
identity may hold streams in at most `max_per_identity` groups, so one certificate
cannot make the control plane translate for thousands of groups. Without mTLS
there is no identity to bound and only `max_groups` holds.

No I/O and no event loop: the cache calls `sweep` when the next idle group is due.
"""

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from turnout.models.errors import TurnoutError
from turnout.xds.translate import NodeGroup


class TooManyGroups(TurnoutError):
    """A new node group would exceed a bound; the stream is closed (RESOURCE_EXHAUSTED)."""


@dataclass
class _Group:
    streams: int = 0
    """Live streams in the group."""
    idle_since: float | None = None
    """`clock()` when the last stream left; None while it has streams."""
    identities: Counter[str] = field(default_factory=Counter)
    """Live streams per identity (mTLS certificate fingerprint)."""


class GroupBook:
    """Live streams per node group; idle groups evicted after a grace period."""

    def __init__(
        self,
        max_groups: int,
        max_per_identity: int,
        grace_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_groups = max_groups
        self.max_per_identity = max_per_identity
        self.grace_seconds = grace_seconds
        self._clock = clock
        self._groups: dict[NodeGroup, _Group] = {}
        self._by_identity: dict[str, set[NodeGroup]] = {}

    def __len__(self) -> int:
        return len(self._groups)

    def __contains__(self, node_group: object) -> bool:
        return node_group in self._groups

    def join(
        self,
        node_group: NodeGroup,
        identity: str | None,
        evictable: Callable[[NodeGroup], bool] = lambda _k: True,
    ) -> list[NodeGroup]:
        """Count one more stream in `node_group`; return the idle groups evicted to make room
        (the caller drops their snapshots). Raise `TooManyGroups` naming the bound."""
        if identity is not None:
            held = self._by_identity.get(identity, set())
            if node_group not in held and len(held) >= self.max_per_identity:
                raise TooManyGroups(
                    f"node group {node_group.group!r} refused: this client certificate already "
                    f"holds streams in {len(held)} node groups (the limit)"
                )
        evicted: list[NodeGroup] = []
        if node_group not in self._groups and len(self._groups) >= self.max_groups:
            idle = sorted(
                (g.idle_since, k)
                for k, g in self._groups.items()
                if g.idle_since is not None and evictable(k)
            )
            if not idle:
                raise TooManyGroups(
                    f"node group {node_group.group!r} refused: {len(self._groups)} node groups "
                    "have live streams (the limit)"
                )
            evicted.append(idle[0][1])
            del self._groups[idle[0][1]]
        group = self._groups.setdefault(node_group, _Group())
        group.streams += 1
        group.idle_since = None
        if identity is not None:
            group.identities[identity] += 1
            self._by_identity.setdefault(identity, set()).add(node_group)
        return evicted

    def leave(self, node_group: NodeGroup, identity: str | None) -> None:
        """One stream of `node_group` ended (called exactly once per successful `join`)."""
        group = self._groups.get(node_group)
        if group is None:
            return
        group.streams -= 1
        if identity is not None:
            group.identities[identity] -= 1
            if group.identities[identity] <= 0:
                del group.identities[identity]
                held = self._by_identity.get(identity, set())
                held.discard(node_group)
                if not held:
                    self._by_identity.pop(identity, None)
        if group.streams <= 0:
            group.idle_since = self._clock()

    def sweep(
        self, evictable: Callable[[NodeGroup], bool] = lambda _k: True
    ) -> tuple[list[NodeGroup], float | None]:
        """Forget groups idle for the grace period; return them and the seconds until
        the next idle group is due (None: no group is idle)."""
        now = self._clock()
        due: list[NodeGroup] = []
        next_in: float | None = None
        for node_group, group in list(self._groups.items()):
            if group.idle_since is None:
                continue
            left = group.idle_since + self.grace_seconds - now
            if left <= 0 and evictable(node_group):
                due.append(node_group)
                del self._groups[node_group]
            else:
                wait = max(left, 0.05)
                next_in = wait if next_in is None else min(next_in, wait)
        return due, next_in

"""Where one stream's client stands: the `TypeState` of each type (`GET /proxies`,
`in_sync`), and whether the snapshot's clusters reached it with their endpoints,
the gate listeners and routes wait behind (rule 9 of `stream.py`). Pure functions;
`clean` and `wanted` are the stream's own views of a subscription. No I/O.
"""

from collections.abc import Callable, Mapping

from turnout.xds.holdings import Holdings
from turnout.xds.snapshot import CLUSTER_TYPE, ENDPOINT_TYPE, PackedResource, Snapshot
from turnout.xds.splice import held_for_quarantine
from turnout.xds.state_machine import State
from turnout.xds.subscription import FULL_STATE_TYPES, Subscription, TypeState

Clean = Callable[[Subscription], bool]
"""Nothing the client wants of the subscription's type changed since it was checked."""
Wanted = Callable[[Subscription], dict[str, PackedResource]]
"""What the stream would send of the subscription's type now."""


def type_state(sub: Subscription, clean: Clean, wanted: Wanted) -> TypeState:
    if sub.state.nacked or sub.quarantined or sub.quarantined_routes:
        return TypeState.NACKED
    if not sub.state.watching:
        return TypeState.STALE
    if sub.state is State.ACKED and clean(sub):
        return TypeState.SYNCED
    due = wanted(sub)
    synced = (
        not sub.state.owed
        and not sub.resend & due.keys()
        and {n: r.hash for n, r in due.items()} == _restrict(sub.acked, sub, due)
    )
    return TypeState.SYNCED if synced else TypeState.STALE


def clusters_settled(
    subscriptions: Mapping[str, Subscription],
    snapshot: Snapshot,
    holdings: Holdings,
    clean: Clean,
) -> bool:
    """Every cluster of the snapshot reached the proxy with its endpoints."""
    cds = subscriptions.get(CLUSTER_TYPE)
    if cds is None:
        return True  # not a proxy that uses CDS over this stream
    if not cds.state.watching:
        return False
    eds = subscriptions.get(ENDPOINT_TYPE)
    needed = snapshot.eds_cluster_names
    if (
        cds.state is State.ACKED
        and clean(cds)
        and (
            not needed
            or (
                eds is not None
                and eds.state is State.ACKED
                and (eds.wildcard or needed <= eds.names)
                and clean(eds)
            )
        )
    ):
        return True  # the common case, without comparing every resource
    clusters = cds.wanted(snapshot.resources(CLUSTER_TYPE))
    clusters = held_for_quarantine(cds, clusters, holdings)
    if any(cds.acked.get(n) != r.hash for n, r in clusters.items()):
        return False
    # A quarantined cluster the client holds an old version of (or none) does
    # not wait for the endpoints of the rejected one.
    needed = (snapshot.eds_cluster_names & clusters.keys()) - set(cds.quarantined)
    if not needed:
        return True
    if eds is None or not eds.state.watching or eds.resend & needed:
        return False
    available = snapshot.resources(ENDPOINT_TYPE)
    endpoints = {n: available[n] for n in needed if n in available}
    endpoints = held_for_quarantine(eds, endpoints, holdings)
    return all(eds.acked.get(name) == r.hash for name, r in endpoints.items())


def _restrict(acked: dict[str, str], sub: Subscription, wanted: dict[str, object]) -> dict:
    """SotW routes and endpoints: names the client dropped do not count against it."""
    if sub.type_url in FULL_STATE_TYPES:
        return acked
    return {n: h for n, h in acked.items() if n in wanted}

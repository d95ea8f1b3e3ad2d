"""What a stream sends in place of what its client rejected (rule 3 of `stream.py`;
`quarantine.py` decides what a NACK names). A quarantined resource goes at the
client's accepted version, or not at all; a quarantined route, or a route to a
cluster the client rejected and does not hold, is cut from its route
configuration and its last accepted form spliced in (`RouteCut`). Functions over
one stream's subscriptions and `Holdings`; no I/O.
"""

from collections.abc import Iterable, Mapping

from turnout.xds.holdings import Holdings
from turnout.xds.ordering import missing_clusters
from turnout.xds.quarantine import Quarantined, pin_resources, pin_routes
from turnout.xds.route_parts import RouteCut, RouteForm
from turnout.xds.snapshot import CLUSTER_TYPE, ROUTE_TYPE, TYPE_ORDER, PackedResource, Snapshot
from turnout.xds.subscription import Subscription


def enter_quarantine(
    sub: Subscription, message: str, holdings: Holdings
) -> tuple[list[Quarantined], bool]:
    """Quarantine what a NACK of the last response rejected. Returns what was
    quarantined (empty: nothing could be pinned, the NACK stays unexplained), and
    whether the client applied other changed resources of that response, which
    are owed an answer (`Input.RECV_NACK_PARTIAL`). Once entries say what is
    rejected, and for how long, the NACK as such is settled."""
    text = sub.last_nack or ""
    if sub.type_url == ROUTE_TYPE:
        routes = pin_routes(message, text, sub.last_updated, sub.sent_parts)
        if routes:
            sub.quarantined_routes.update(routes)
            return list(routes.values()), False
    found = pin_resources(sub.type_url, message, text, sub.last_updated, sub.sent)
    if not found:
        return [], False
    sub.quarantined.update(found)
    # Envoy kept its previous version of each rejected resource (or has none),
    # and applied the rest of the response (cds_api_helper.cc, lds_api.cc).
    for name in found:
        if name in sub.acked:
            sub.sent[name] = sub.acked[name]
        else:
            sub.sent.pop(name, None)
    holdings.fall_back(sub.type_url, found)
    # An ACK of the rest is what lets listeners follow.
    return list(found.values()), bool(set(sub.last_updated) - found.keys())


def release(
    subscriptions: Mapping[str, Subscription], snapshot: Snapshot, holdings: Holdings
) -> int:
    """Drop entries whose entity changed or went, so its new version is tried; how
    many were dropped."""
    released = 0
    for sub in subscriptions.values():
        for route, q in list(sub.quarantined_routes.items()):
            parts = snapshot.route_parts.values()
            if not any(p.route_hash(route) == q.fingerprint for p in parts):
                del sub.quarantined_routes[route]
                released += 1
    # In type order: a released cluster changes which routes the routes type omits.
    for type_url in TYPE_ORDER:
        sub = subscriptions.get(type_url)
        if sub is None or not sub.quarantined:
            continue
        current = effective(sub, subscriptions.get(CLUSTER_TYPE), snapshot, holdings)
        for name, q in list(sub.quarantined.items()):
            resource = current.get(name)
            if resource is None or resource.hash != q.fingerprint:
                del sub.quarantined[name]
                released += 1
    return released


def effective(
    sub: Subscription, cds: Subscription | None, snapshot: Snapshot, holdings: Holdings
) -> dict[str, PackedResource]:
    """What the subscription wants, with quarantined routes and routes to clusters
    the client rejected and never held at their last accepted form in route
    configurations, or left out where the client never accepted one."""
    wanted = sub.wanted(snapshot.resources(sub.type_url))
    if sub.type_url != ROUTE_TYPE or not snapshot.route_parts:
        return wanted
    for name, cut in route_cuts(sub, cds, snapshot, wanted, holdings).items():
        wanted[name] = cut.parts.with_entries(cut.excluded, cut.old)
    return wanted


def route_cuts(
    sub: Subscription,
    cds: Subscription | None,
    snapshot: Snapshot,
    names: Iterable[str],
    holdings: Holdings,
) -> dict[str, RouteCut]:
    """The route configurations among `names` that cannot go whole, and how each
    is cut: which routes' current entries are replaced, and by which old form."""
    missing = missing_clusters(cds, snapshot, holdings.acked[CLUSTER_TYPE])
    quarantined = list(sub.quarantined_routes.items())
    if not missing and not quarantined:
        return {}
    cuts: dict[str, RouteCut] = {}
    for name in names:
        parts = snapshot.route_parts.get(name)
        if parts is None:
            continue
        excluded = {r for r, q in quarantined if parts.route_hash(r) == q.fingerprint}
        if missing:
            excluded |= parts.routes_using(missing)
        if not excluded:
            continue
        accepted = sub.acked_parts.get(name)
        old: dict[str, RouteForm] = {}
        for route in sorted(excluded) if accepted is not None else ():
            form = accepted.form(route) if accepted is not None else None
            # Never a kept form that points at a cluster the client lacks.
            if form is not None and not form.services & missing:
                old[route] = form
        cuts[name] = RouteCut(parts, frozenset(excluded), old)
    return cuts


def held_for_quarantine(
    sub: Subscription, wanted: dict[str, PackedResource], holdings: Holdings
) -> dict[str, PackedResource]:
    """`wanted` with each quarantined resource at the client's accepted version,
    or left out if it never accepted one."""
    if not sub.quarantined:
        return wanted
    accepted = holdings.acked[sub.type_url]
    for name, q in list(sub.quarantined.items()):
        resource = wanted.get(name)
        if resource is None or resource.hash != q.fingerprint:
            continue  # released on the next `release`
        if name in accepted:
            wanted[name] = accepted[name]
        else:
            del wanted[name]
    return wanted


def quarantined(subscriptions: Mapping[str, Subscription]) -> list[Quarantined]:
    """Every entity the client is kept on an old version of (or without)."""
    out: list[Quarantined] = []
    for type_url in TYPE_ORDER:
        sub = subscriptions.get(type_url)
        if sub is not None:
            out += list(sub.quarantined.values()) + list(sub.quarantined_routes.values())
    return out

"""Which entities a NACK rejected: the quarantine entries a stream keeps.

A proxy that rejects one resource keeps its last accepted version of it (or never
gets one) and every unrelated change keeps flowing. This module decides what a
rejection names; the stream keeps the entries and `splice.py` leaves their rejected
versions out of what it sends. Rules:

1. Envoy's message names the rejected resources ("Error adding/updating
   cluster(s) bad: ..."): those of the rejected response are quarantined.
2. A RouteConfiguration carries every route of a group, and Envoy rejects it
   whole; its message quotes what failed (a regex): the routes whose entries
   contain it are quarantined, not the configuration.
3. Nothing pinned down: every resource the response changed is held, i.e. the
   whole response, as before.
4. An entry holds while the entity's translation is the one rejected (its hash);
   once the declaration changes it, the new version is tried again.
"""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from turnout.xds.nack import pinned_names, quoted_fragments
from turnout.xds.route_parts import RouteParts
from turnout.xds.snapshot import (
    CLUSTER_TYPE,
    ENDPOINT_TYPE,
    EXTENSION_CONFIG_TYPE,
    LISTENER_TYPE,
    ROUTE_TYPE,
)

KINDS: dict[str, str] = {
    CLUSTER_TYPE: "service",
    ENDPOINT_TYPE: "service",
    EXTENSION_CONFIG_TYPE: "extension_config",
    LISTENER_TYPE: "listener",
    ROUTE_TYPE: "route_configuration",
}
"""What a quarantined resource of each type is, in the words of the admin API."""
ROUTE_KIND = "route"


@dataclass(frozen=True)
class Quarantined:
    """One resource, or one route of a RouteConfiguration, that a proxy rejected."""

    type_url: str
    """The type of the response that was rejected."""
    kind: str
    """`KINDS[type_url]`, or "route" for one route of a RouteConfiguration."""
    name: str
    """The resource's (or route's) name."""
    fingerprint: str
    """Hash of the rejected version: held while the snapshot's version is this one."""
    message: str
    """Envoy's message, as `nack.nack_text` keeps it."""


def pin_routes(
    message: str, text: str, configs: Iterable[str], parts: Mapping[str, RouteParts]
) -> dict[str, Quarantined]:
    """Rule 2: the routes of the rejected configurations that the message points at."""
    fragments = quoted_fragments(message)
    found: dict[str, Quarantined] = {}
    for config in configs:
        config_parts = parts.get(config)
        if config_parts is None:
            continue
        routes = pinned_names(message, config_parts.route_names())
        if fragments:
            routes |= config_parts.routes_containing(fragments)
        for route in sorted(routes):
            fingerprint = config_parts.route_hash(route)
            if fingerprint is not None:
                found[route] = Quarantined(ROUTE_TYPE, ROUTE_KIND, route, fingerprint, text)
    return found


def pin_resources(
    type_url: str, message: str, text: str, updated: Iterable[str], sent: Mapping[str, str]
) -> dict[str, Quarantined]:
    """Rules 1 and 3: the resources of the rejected response the message names, or
    all it changed when it names none."""
    changed = [n for n in updated if n in sent]
    names = pinned_names(message, changed) or set(changed)
    kind = KINDS.get(type_url, "resource")
    return {n: Quarantined(type_url, kind, n, sent[n], text) for n in sorted(names)}

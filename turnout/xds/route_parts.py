"""A RouteConfiguration kept in its per-route parts, so one route can be left out.

A group's routes all travel in one RouteConfiguration, and Envoy rejects it whole.
To quarantine one route (DESIGN.md "A rejected resource is quarantined") a stream
sends the configuration without that route, and without routes that point at a
cluster the proxy rejected and never held (make before break). The parts are the
serialized `Route` records the memo already caches (see `memo.py` for why
concatenating them gives the exact bytes of the whole message); a variant is one
more join, cached per set of excluded routes and shared by every stream of the
group. Knows nothing of streams or the declaration.
"""

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from google.protobuf.any_pb2 import Any
from google.protobuf.internal.encoder import _VarintBytes  # type: ignore[attr-defined]

from turnout.models.route import RouteSpec
from turnout.models.split import SplitSpec
from turnout.xds.snapshot import ROUTE_TYPE, PackedResource, packed_bytes

VIRTUAL_HOSTS_FIELD = 2
"""`RouteConfiguration.virtual_hosts` (memo.py checks it against the descriptor)."""
_VARIANTS_KEPT = 16
"""Variants cached per configuration: one per distinct quarantine set in the fleet."""


def _record(field_number: int, payload: bytes) -> bytes:
    return _VarintBytes(field_number << 3 | 2) + _VarintBytes(len(payload)) + payload


def services_of_route(route: RouteSpec, split: SplitSpec | None) -> frozenset[str]:
    """The clusters a route sends traffic to."""
    if split is None:
        return frozenset({route.service})
    names = {t.service for t in split.targets if t.weight > 0}
    names.update(pin.service for pin in split.pins)
    return frozenset(names)


@dataclass(frozen=True, eq=False)
class RouteParts:
    """One RouteConfiguration as (route name, serialized entries) per virtual host."""

    name: str
    """The RouteConfiguration's name."""
    head: bytes
    """Serialized `RouteConfiguration(name)`."""
    vhosts: tuple[tuple[bytes, tuple[tuple[str, bytes], ...]], ...]
    """Per virtual host: serialized `VirtualHost(name, domains)` and its entries, as
    (route name, `routes` field records), in match order."""
    refs: Mapping[str, frozenset[str]]
    """Route name → the clusters it sends traffic to."""
    full: PackedResource
    """Every route: what the group's streams share."""
    _variants: dict[frozenset[str], PackedResource] = field(default_factory=dict, repr=False)
    _hashes: dict[str, str] = field(default_factory=dict, repr=False)

    def route_hash(self, route: str) -> str | None:
        """Fingerprint of one route's entries: it changes when the route's translation
        does, which is when a quarantined route is tried again."""
        return self._route_hashes().get(route)

    def routes(self) -> set[str]:
        return set(self._route_hashes())

    def _route_hashes(self) -> dict[str, str]:
        if not self._hashes:
            digests: dict[str, hashlib._Hash] = {}
            for _head, entries in self.vhosts:
                for name, record in entries:
                    digests.setdefault(name, hashlib.sha256()).update(record)
            # One assignment per key: readers on other threads see whole entries.
            self._hashes.update({n: d.hexdigest() for n, d in digests.items()})
        return self._hashes

    def routes_using(self, clusters: Iterable[str]) -> set[str]:
        wanted = set(clusters)
        return {name for name, refs in self.refs.items() if refs & wanted}

    def routes_containing(self, fragments: Iterable[str]) -> set[str]:
        """Routes whose serialized entries contain one of `fragments` (a regex Envoy
        quoted in its rejection appears verbatim in the route's bytes)."""
        needles = [f.encode() for f in fragments]
        return {
            name
            for _head, entries in self.vhosts
            for name, record in entries
            if any(n in record for n in needles)
        }

    def without(self, excluded: frozenset[str]) -> PackedResource:
        """The configuration with the `excluded` routes' entries left out."""
        if not excluded & self._route_hashes().keys():
            return self.full
        cached = self._variants.get(excluded)
        if cached is not None:
            return cached
        vhosts = [
            _record(
                VIRTUAL_HOSTS_FIELD,
                head + b"".join(rec for name, rec in entries if name not in excluded),
            )
            for head, entries in self.vhosts
        ]
        value = self.head + b"".join(vhosts)
        variant = packed_bytes(self.name, Any(type_url=ROUTE_TYPE, value=value))
        if len(self._variants) >= _VARIANTS_KEPT:
            self._variants.pop(next(iter(self._variants)))
        self._variants[excluded] = variant
        return variant

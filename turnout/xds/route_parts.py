"""A RouteConfiguration kept in its per-route parts, so one route can be left out.

A group's routes all travel in one RouteConfiguration, and Envoy rejects it whole.
To quarantine one route a stream
sends the configuration with that route's last accepted form spliced in instead of
its rejected one (or without it, when the proxy never accepted one), and likewise
for routes that point at a cluster the proxy rejected and never held (make before
break). The parts are the
serialized `Route` records the memo already caches (see `memo.py` for why
concatenating them gives the exact bytes of the whole message); a variant is one
more join, cached per set of excluded routes and shared by every stream of the
group. Knows nothing of streams or the declaration.
"""

import hashlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
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


_VariantKey = tuple[frozenset[str], frozenset[tuple[str, str]]]
"""The routes excluded, and (route, fingerprint) of each old form spliced in."""


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
    """One RouteConfiguration as per-route serialized entries per virtual host.

    Building it costs two list copies per revision; everything per route (hashes,
    references, variants) is worked out only once a stream needs it, which is only
    while one of its proxies holds something in quarantine."""

    name: str
    """The RouteConfiguration's name."""
    head: bytes
    """Serialized `RouteConfiguration(name)`."""
    layout: Sequence[tuple[bytes, Sequence[tuple[str, int]]]]
    """Per virtual host: serialized `VirtualHost(name, domains)` and its entries as
    (route name, path index), in match order."""
    records: Sequence[Sequence[bytes]]
    """Per virtual host, each entry's `routes` field records, in the same order."""
    routes: Mapping[str, RouteSpec]
    """The route specs the entries were built from."""
    splits: Mapping[str, SplitSpec]
    """The splits the entries were built from, by route name."""
    full: PackedResource
    """Every route: what the group's streams share."""
    _variants: dict[_VariantKey, PackedResource] = field(default_factory=dict, repr=False)
    _hashes: dict[str, str] = field(default_factory=dict, repr=False)
    _refs: dict[str, frozenset[str]] = field(default_factory=dict, repr=False)
    _forms: dict[str, "RouteForm | None"] = field(default_factory=dict, repr=False)

    def _entries(self) -> Iterator[tuple[int, str, bytes]]:
        pairs = zip(self.layout, self.records, strict=True)
        for vhost, ((_head, entries), records) in enumerate(pairs):
            for (name, _index), record in zip(entries, records, strict=True):
                yield vhost, name, record

    def route_names(self) -> set[str]:
        return set(self._route_hashes())

    def route_hash(self, route: str) -> str | None:
        """Fingerprint of one route's entries: it changes when the route's translation
        does, which is when a quarantined route is tried again."""
        return self._route_hashes().get(route)

    def _route_hashes(self) -> dict[str, str]:
        if not self._hashes:
            digests: dict[str, hashlib._Hash] = {}
            for _vhost, name, record in self._entries():
                digests.setdefault(name, hashlib.sha256()).update(record)
            # One update: readers on the admin's threads see all entries or none.
            self._hashes.update({n: d.hexdigest() for n, d in digests.items()})
        return self._hashes

    def routes_using(self, clusters: Iterable[str]) -> set[str]:
        """Routes that send traffic to one of `clusters`."""
        if not self._refs:
            self._refs.update(
                {n: services_of_route(r, self.splits.get(n)) for n, r in self.routes.items()}
            )
        wanted = set(clusters)
        placed = self._route_hashes()
        return {name for name, refs in self._refs.items() if refs & wanted and name in placed}

    def routes_containing(self, fragments: Iterable[str]) -> set[str]:
        """Routes whose serialized entries contain one of `fragments` (a regex Envoy
        quoted in its rejection appears verbatim in the route's bytes)."""
        needles = [f.encode() for f in fragments]
        return {name for _v, name, record in self._entries() if any(n in record for n in needles)}

    def form(self, route: str) -> "RouteForm | None":
        """One route's entries as this configuration holds them (None: not placed)."""
        if route in self._forms:
            return self._forms[route]
        entries = tuple(
            (self.layout[vhost][0], record)
            for vhost, name, record in self._entries()
            if name == route
        )
        form = None
        if entries:
            spec = self.routes.get(route)
            services = services_of_route(spec, self.splits.get(route)) if spec else frozenset()
            form = RouteForm(entries, services)
        if len(self._forms) >= _VARIANTS_KEPT:
            self._forms.pop(next(iter(self._forms)), None)
        self._forms[route] = form
        return form

    def without(self, excluded: frozenset[str]) -> PackedResource:
        """The configuration with the `excluded` routes' entries left out."""
        return self.with_entries(excluded, {})

    def with_entries(
        self, excluded: frozenset[str], old: Mapping[str, "RouteForm"]
    ) -> PackedResource:
        """The configuration with the `excluded` routes' entries replaced by their
        `old` form where there is one, left out where there is none. An old entry
        takes the place of the route's current entries in the same virtual host, or
        is dropped with a virtual host the configuration no longer has (two virtual
        hosts must not share a domain)."""
        if not excluded & self._route_hashes().keys():
            return self.full
        old = {r: f for r, f in old.items() if r in excluded}
        key = (excluded, frozenset((r, f.fingerprint) for r, f in old.items()))
        cached = self._variants.get(key)
        if cached is not None:
            return cached
        vhosts = []
        for (head, entries), records in zip(self.layout, self.records, strict=True):
            kept: list[bytes] = []
            placed: set[str] = set()
            for (name, _index), record in zip(entries, records, strict=True):
                if name not in excluded:
                    kept.append(record)
                elif name in old and name not in placed:
                    placed.add(name)
                    kept += [r for h, r in old[name].entries if h == head]
            for name in sorted(old.keys() - placed):
                # Not in this virtual host any more: its old entries stay at the end.
                kept += [r for h, r in old[name].entries if h == head]
            vhosts.append(_record(VIRTUAL_HOSTS_FIELD, head + b"".join(kept)))
        value = self.head + b"".join(vhosts)
        variant = packed_bytes(self.name, Any(type_url=ROUTE_TYPE, value=value))
        if len(self._variants) >= _VARIANTS_KEPT:
            self._variants.pop(next(iter(self._variants)), None)
        self._variants[key] = variant
        return variant


@dataclass(frozen=True)
class RouteForm:
    """One route's entries as a proxy was sent them."""

    entries: tuple[tuple[bytes, bytes], ...]
    """(serialized virtual host head, the entry's records), in match order."""
    services: frozenset[str]
    """The clusters those entries send traffic to."""

    @property
    def fingerprint(self) -> str:
        digest = hashlib.sha256()
        for head, record in self.entries:
            digest.update(len(head).to_bytes(4, "big") + head + record)
        return digest.hexdigest()


@dataclass(frozen=True)
class RouteCut:
    """What one stream sent of a RouteConfiguration: its parts, the routes cut out,
    and the old forms spliced in for some of them. Cheap to keep (references only);
    a route's form is worked out only when a later rejection needs it."""

    parts: RouteParts
    excluded: frozenset[str] = frozenset()
    old: Mapping[str, RouteForm] = field(default_factory=dict)

    def form(self, route: str) -> RouteForm | None:
        if route in self.excluded:
            return self.old.get(route)
        return self.parts.form(route)

    def services(self) -> frozenset[str]:
        """The clusters the spliced old forms send traffic to."""
        return frozenset().union(*(f.services for f in self.old.values()))

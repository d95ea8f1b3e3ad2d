"""Per-entity translation results, reused across revisions.

`Store.load_since` hands back the very same spec objects for entities that did
not change, so a result is reused when its inputs are identical (`is`), and a
change rebuilds only the resources whose inputs changed. The route configuration
is assembled from each entry's cached serialized `Route`: protobuf encodes a
repeated message field as concatenated (tag, length, bytes) records, and the
deterministic serializer writes fields in number order, so appending the routes to
a serialized `VirtualHost(name, domains)` (fields 1, 2; routes are 3), and the
virtual hosts to a serialized `RouteConfiguration(name)` (field 1; virtual hosts
are 2), gives exactly the bytes of the whole message (a unit test holds it to
that).
"""

import bisect
from collections import Counter
from dataclasses import dataclass, field

from envoy.config.cluster.v3.cluster_pb2 import Cluster
from envoy.config.endpoint.v3.endpoint_pb2 import ClusterLoadAssignment
from envoy.config.route.v3.route_components_pb2 import VirtualHost
from envoy.config.route.v3.route_pb2 import RouteConfiguration
from google.protobuf.any_pb2 import Any
from google.protobuf.internal.encoder import _VarintBytes  # type: ignore[attr-defined]

from turnout.models.declaration import Declaration
from turnout.models.route import RouteSpec
from turnout.models.service import ServiceSpec
from turnout.models.split import SplitSpec
from turnout.xds.route_parts import VIRTUAL_HOSTS_FIELD, RouteParts
from turnout.xds.snapshot import ROUTE_TYPE, PackedResource, pack, packed_bytes
from turnout.xds.translate import build_cluster, build_cluster_load_assignment
from turnout.xds.translate.api_key_auth import build_api_key_auth_config, build_kong_headers_config
from turnout.xds.translate.cluster import uses_eds
from turnout.xds.translate.consistency import route_clusters_of
from turnout.xds.translate.options import ListenerOptions, route_configuration_name
from turnout.xds.translate.route import (
    CATCH_ALL_VIRTUAL_HOST,
    HOST_VIRTUAL_HOST_PREFIX,
    RouteEntry,
    build_routes,
    host_covers,
    route_entries,
    virtual_host_layout,
)

_MAX_PLACED = 64
"""Routes added or removed at once beyond which a re-sort is cheaper."""
_ROUTES_FIELD = VirtualHost.DESCRIPTOR.fields_by_name["routes"].number
_VIRTUAL_HOSTS_FIELD = RouteConfiguration.DESCRIPTOR.fields_by_name["virtual_hosts"].number
assert _VIRTUAL_HOSTS_FIELD == VIRTUAL_HOSTS_FIELD


def _record(field_number: int, payload: bytes) -> bytes:
    """One length-delimited field: tag, length, payload."""
    return _VarintBytes(field_number << 3 | 2) + _VarintBytes(len(payload)) + payload


@dataclass(frozen=True)
class _ServiceResult:
    spec: ServiceSpec
    cluster: PackedResource
    endpoints: PackedResource | None
    eds_name: str | None
    """The EDS service name the cluster asks endpoints for (None: not EDS)."""


@dataclass(frozen=True)
class SharedResources:
    """Resources every node group shares at one revision."""

    clusters: list[PackedResource]
    endpoints: list[PackedResource]
    eds_cluster_names: frozenset[str]
    """The clusters whose endpoints come over EDS (their ClusterLoadAssignments)."""
    eds_services: frozenset[str]
    """The EDS service names the clusters ask endpoints for."""
    extension_configs: list[PackedResource]


@dataclass(frozen=True)
class _EntryResult:
    route: RouteSpec
    split: SplitSpec | None
    consumers: object
    """`_consumer_basis` the entry was built with, for routes with auth or limits."""
    record: bytes
    """The serialized Routes (pins, then the entry) as `routes` field records."""
    clusters: frozenset[str]
    """The clusters those Routes send traffic to."""


def _layout_key(route: RouteSpec) -> tuple[object, ...]:
    """The fields that place a route's entries in virtual hosts and in match order."""
    return (
        tuple(route.hosts),
        tuple((p.kind, p.value) for p in route.paths),
        route.priority,
        tuple(route.methods),
        tuple(sorted(route.headers.items())),
        tuple(route.groups),
    )


@dataclass
class _Layout:
    """One group's virtual hosts and entry order, with what it was computed from."""

    placed: dict[str, RouteSpec]
    """The spec objects the layout was computed from."""
    routes: dict[str, RouteSpec]
    """The spec object of every route the records were built from."""
    splits: dict[str, SplitSpec]
    """The split of every route the records were built from, by route name."""
    vhosts: list[tuple[bytes, list[tuple[str, int]]]]
    """Per virtual host: serialized `VirtualHost(name, domains)` and its entries as
    (route name, path index) in match order."""
    patterns: list[str | None]
    """Per virtual host, its host pattern (None: the catch-all)."""
    host_routes: Counter[str]
    """Host pattern → how many of the group's routes name it."""
    positions: dict[str, list[tuple[int, int]]] | None
    """Route name → (virtual host, position) of each of its entries (None: work it
    out again, after routes were placed or removed)."""
    records: list[list[bytes]] = field(default_factory=list)
    """Per virtual host, the serialized entries (filled on first use)."""
    clusters: dict[str, frozenset[str]] = field(default_factory=dict)
    """Route name → the clusters its entries send traffic to."""
    consumers: object = None
    """`_consumer_basis` the records were built with."""

    def fits(self, name: str, route: RouteSpec) -> bool:
        """Whether `route` keeps the place of the route it replaces."""
        placed = self.placed[name]
        return (
            route is placed
            or route is self.routes[name]
            or _layout_key(route) == _layout_key(placed)
        )

    def entry_positions(self) -> dict[str, list[tuple[int, int]]]:
        if self.positions is None:
            self.positions = {}
            for vhost, (_head, entries) in enumerate(self.vhosts):
                for position, (name, _index) in enumerate(entries):
                    self.positions.setdefault(name, []).append((vhost, position))
        return self.positions

    def vhosts_of(self, route: RouteSpec) -> list[int]:
        """The virtual hosts that hold `route` (a route of the group)."""
        if not route.hosts:
            return list(range(len(self.vhosts)))
        return [
            v
            for v, pattern in enumerate(self.patterns)
            if pattern is not None and any(host_covers(h, pattern) for h in route.hosts)
        ]

    def still_fits(self, decl: Declaration) -> bool:
        """True unless a route was added, removed or moved; a change of backend,
        split or rewrite leaves the layout as it is (the usual migration step)."""
        if decl.routes.keys() != self.routes.keys():
            return False
        return all(self.fits(name, route) for name, route in decl.routes.items())

    def changed_routes(self, decl: Declaration, splits: dict[str, SplitSpec]) -> set[str]:
        """Routes whose spec or split is not the one their records were built from."""
        changed = {n for n, r in decl.routes.items() if r is not self.routes[n]}
        changed |= {
            n for n in splits.keys() | self.splits.keys() if splits.get(n) is not self.splits.get(n)
        }
        self.routes, self.splits = dict(decl.routes), dict(splits)
        return changed


class TranslationMemo:
    """Results by entity name, valid while the entity's spec object is the same."""

    def __init__(self) -> None:
        self._services: dict[str, _ServiceResult] = {}
        self._entries: dict[tuple[str, int], _EntryResult] = {}
        self._route_entries: dict[str, tuple[RouteSpec, list[RouteEntry]]] = {}
        self._layouts: dict[str, _Layout] = {}
        self._api_keys: tuple[object, PackedResource] | None = None
        self._kong_headers: tuple[object, PackedResource] | None = None
        """The keys the credentials' ECDS resource was built from, and the resource."""
        self._shared: tuple[Declaration, SharedResources] | None = None

    def shared(self, decl: Declaration) -> SharedResources:
        """Clusters, endpoints and credentials: built once per declaration."""
        if self._shared is None or self._shared[0] is not decl:
            results = self.services(decl)
            endpoints = [r.endpoints for r in results if r.endpoints is not None]
            shared = SharedResources(
                [r.cluster for r in results],
                endpoints,
                frozenset(e.name for e in endpoints),
                frozenset(r.eds_name for r in results if r.eds_name is not None),
                [self.api_key_auth_config(decl), self.kong_headers_config(decl)],
            )
            self._shared = (decl, shared)
        return self._shared[1]

    def services(self, decl: Declaration) -> list[_ServiceResult]:
        results = []
        for name in sorted(decl.services):
            spec = decl.services[name]
            cached = self._services.get(name)
            if cached is None or cached.spec is not spec:
                cla: ClusterLoadAssignment | None = (
                    build_cluster_load_assignment(spec) if uses_eds(spec) else None
                )
                cluster = build_cluster(spec)
                eds_name = None
                if cluster.type == Cluster.EDS:
                    eds_name = cluster.eds_cluster_config.service_name or cluster.name
                cached = _ServiceResult(
                    spec, pack(cluster), pack(cla) if cla is not None else None, eds_name
                )
                self._services[name] = cached
            results.append(cached)
        for gone in self._services.keys() - decl.services.keys():
            del self._services[gone]
        return results

    def forget_layouts_except(self, groups: set[str]) -> None:
        """Drop the route layouts of node groups no longer in use (evicted groups)."""
        for gone in self._layouts.keys() - groups:
            del self._layouts[gone]

    def kong_headers_config(self, decl: Declaration) -> PackedResource:
        """Kong's consumer headers (ECDS), rebuilt only when a Kong id changed."""
        basis = tuple(
            (n, c.kong_id, c.custom_id)
            for n, c in sorted(decl.consumers.items())
            if c.kong_id is not None or c.custom_id is not None
        )
        cached = self._kong_headers
        if cached is None or cached[0] != basis:
            cached = (basis, pack(build_kong_headers_config(decl)))
            self._kong_headers = cached
        return cached[1]

    def api_key_auth_config(self, decl: Declaration) -> PackedResource:
        """The credentials (ECDS), rebuilt only when the keys changed."""
        if self._api_keys is None or self._api_keys[0] is not decl.api_keys:
            self._api_keys = (decl.api_keys, pack(build_api_key_auth_config(decl)))
        return self._api_keys[1]

    def route_configuration(self, decl: Declaration, opts: ListenerOptions) -> PackedResource:
        """The group's RouteConfiguration, packed, from cached route entries."""
        return self.route_parts(decl, opts).full

    def route_parts(self, decl: Declaration, opts: ListenerOptions) -> RouteParts:
        """The group's RouteConfiguration with its per-route parts (`route_parts.py`)."""
        splits = {split.route: split for split in decl.splits.values()}
        consumers = _consumer_basis(decl)
        layout = self._layouts.get(opts.group)
        if (
            layout is not None
            and decl.routes.keys() != layout.routes.keys()
            and not self._place(layout, decl, opts.group, splits, consumers)
        ):
            layout = None
        if layout is None or not layout.still_fits(decl):
            layout = self._layout(decl, opts.group, splits)
            self._layouts[opts.group] = layout
            layout.records = []
            for _head, entries in layout.vhosts:
                built = [self._entry(decl, n, i, splits.get(n), consumers) for n, i in entries]
                layout.records.append([e.record for e in built])
                for (name, _index), e in zip(entries, built, strict=True):
                    layout.clusters[name] = e.clusters
        else:
            changed = layout.changed_routes(decl, splits)
            if consumers != layout.consumers:
                # Consumers changed: every route that authenticates or limits.
                changed |= {n for n, r in decl.routes.items() if _uses_consumers(r)}
                layout.consumers = consumers
            for name in changed:
                for vhost, position in layout.entry_positions().get(name, ()):
                    index = layout.vhosts[vhost][1][position][1]
                    built = self._entry(decl, name, index, splits.get(name), consumers)
                    layout.records[vhost][position] = built.record
                    layout.clusters[name] = built.clusters
        vhosts = [
            _record(_VIRTUAL_HOSTS_FIELD, head + b"".join(records))
            for (head, _entries), records in zip(layout.vhosts, layout.records, strict=True)
        ]
        config_name = route_configuration_name(opts)
        head = RouteConfiguration(name=config_name).SerializeToString(deterministic=True)
        value = head + b"".join(vhosts)
        full = packed_bytes(config_name, Any(type_url=ROUTE_TYPE, value=value))
        # The layout's entry lists are never changed in place, its records are: copy
        # those (references only) so the parts stay as they were at this revision.
        records = [list(r) for r in layout.records]
        return RouteParts(config_name, head, layout.vhosts, records, decl.routes, splits, full)

    def route_clusters(self, group: str) -> dict[str, frozenset[str]]:
        """Route name → the clusters it sends traffic to, in the group's last layout."""
        return self._layouts[group].clusters

    def _layout(self, decl: Declaration, group: str, splits: dict[str, SplitSpec]) -> _Layout:
        vhosts = []
        patterns: list[str | None] = []
        for name, domains, entries in virtual_host_layout(decl, group, self._entries_of):
            head = VirtualHost(name=name, domains=domains).SerializeToString(deterministic=True)
            vhosts.append((head, [(e.route.name, e.index) for e in entries]))
            patterns.append(
                None if name == CATCH_ALL_VIRTUAL_HOST else name[len(HOST_VIRTUAL_HOST_PREFIX) :]
            )
        hosts = Counter(h for r in decl.routes.values() if group in r.groups for h in r.hosts)
        layout = _Layout(
            dict(decl.routes), dict(decl.routes), dict(splits), vhosts, patterns, hosts, None
        )
        layout.consumers = _consumer_basis(decl)
        return layout

    def _place(
        self,
        layout: _Layout,
        decl: Declaration,
        group: str,
        splits: dict[str, SplitSpec],
        consumers: object,
    ) -> bool:
        """Insert added routes' entries and drop removed ones in place of a re-sort
        (entry order is a total order, so a binary search finds each place). False,
        with the layout untouched, when the virtual hosts themselves would change (a
        host pattern appears or goes), a kept route moved, or many routes changed."""
        added = sorted(decl.routes.keys() - layout.routes.keys())
        removed = sorted(layout.routes.keys() - decl.routes.keys())
        if len(added) + len(removed) > _MAX_PLACED:
            return False
        hosts = Counter[str]()
        for name in removed:
            if group in (old := layout.placed[name]).groups:
                hosts.subtract(old.hosts)
        for name in added:
            if group in (new := decl.routes[name]).groups:
                hosts.update(new.hosts)
        if any(
            (layout.host_routes[h] > 0) != (layout.host_routes[h] + c > 0) for h, c in hosts.items()
        ):
            return False
        if not all(layout.fits(n, r) for n, r in decl.routes.items() if n in layout.placed):
            return False

        def key(entry: tuple[str, int]) -> tuple[object, ...]:
            route = decl.routes.get(entry[0]) or layout.placed[entry[0]]
            return self._entries_of(route)[entry[1]].sort_key

        copied: set[int] = set()

        def writable(vhost: int) -> tuple[list[tuple[str, int]], list[bytes]]:
            # RouteParts of earlier revisions share the entry lists: copy on write.
            if vhost not in copied:
                head, entries = layout.vhosts[vhost]
                layout.vhosts[vhost] = (head, list(entries))
                copied.add(vhost)
            return layout.vhosts[vhost][1], layout.records[vhost]

        for name in removed:
            old = layout.placed[name]
            if group not in old.groups:
                continue
            for vhost in layout.vhosts_of(old):
                entries, records = writable(vhost)
                for index in range(len(old.paths) or 1):
                    at = bisect.bisect_left(entries, key((name, index)), key=key)
                    del entries[at], records[at]
        for name in removed:
            del layout.placed[name], layout.routes[name]
            layout.clusters.pop(name, None)
        for name in added:
            new = layout.placed[name] = layout.routes[name] = decl.routes[name]
            if group not in new.groups:
                continue
            for vhost in layout.vhosts_of(new):
                entries, records = writable(vhost)
                for entry in self._entries_of(new):
                    at = bisect.bisect_left(entries, entry.sort_key, key=key)
                    built = self._entry(decl, name, entry.index, splits.get(name), consumers)
                    entries.insert(at, (name, entry.index))
                    records.insert(at, built.record)
                    layout.clusters[name] = built.clusters
        layout.host_routes.update(hosts)
        layout.positions = None
        return True

    def _entries_of(self, route: RouteSpec) -> list[RouteEntry]:
        cached = self._route_entries.get(route.name)
        if cached is None or cached[0] is not route:
            cached = (route, route_entries(route))
            self._route_entries[route.name] = cached
        return cached[1]

    def _entry(
        self,
        decl: Declaration,
        name: str,
        index: int,
        split: SplitSpec | None,
        consumers: object,
    ) -> _EntryResult:
        route = decl.routes[name]
        basis = consumers if _uses_consumers(route) else None
        key = (name, index)
        cached = self._entries.get(key)
        if (
            cached is None
            or cached.route is not route
            or cached.split is not split
            or cached.consumers != basis
        ):
            entry = self._entries_of(route)[index]
            routes = build_routes(entry, split, decl)
            built = b"".join(
                _record(_ROUTES_FIELD, r.SerializeToString(deterministic=True)) for r in routes
            )
            clusters = frozenset(c for r in routes for c in route_clusters_of(r))
            cached = _EntryResult(route, split, basis, built, clusters)
            self._entries[key] = cached
        return cached

    def forget_routes_except(self, decl: Declaration) -> None:
        """Drop entries of deleted routes (memory only; correctness never needs it)."""
        for key in [k for k in self._entries if k[0] not in decl.routes]:
            del self._entries[key]
        for name in self._route_entries.keys() - decl.routes.keys():
            del self._route_entries[name]


def _uses_consumers(route: RouteSpec) -> bool:
    """Whether the route's translation reads consumers."""
    return route.auth is not None or route.limits is not None


@dataclass(frozen=True, eq=False)
class _ConsumerBasis:
    """The consumer specs a translation read (allowed consumers by group, limits).
    Equal when they are the same objects: `Store.load_since` keeps them while they do
    not change. (Holding the objects, not their ids, so a freed id can never match a
    new object.) Keys are not part of it: they travel in ECDS, not in routes."""

    consumers: tuple[object, ...]

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, _ConsumerBasis)
            and len(self.consumers) == len(other.consumers)
            and all(a is b for a, b in zip(self.consumers, other.consumers, strict=True))
        )

    __hash__ = None  # type: ignore[assignment]


def _consumer_basis(decl: Declaration) -> _ConsumerBasis:
    return _ConsumerBasis(tuple(decl.consumers.values()))

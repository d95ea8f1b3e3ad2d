"""Per-entity translation results, reused across revisions.

`Store.load_since` hands back the very same spec objects for entities that did
not change, so what changed is the set of names whose spec object is not the one
seen last (`_touched`, one identity diff per entity dict), and a change rebuilds
only the resources of those names. The route configuration is assembled from each
entry's cached serialized `Route`: protobuf encodes a repeated message field as
concatenated (tag, length, bytes) records, and the deterministic serializer writes
fields in number order, so appending the routes to a serialized
`VirtualHost(name, domains)` (fields 1, 2; routes are 3), and the virtual hosts to
a serialized `RouteConfiguration(name)` (field 1; virtual hosts are 2), gives
exactly the bytes of the whole message (a unit test holds it to that).

The layout (virtual hosts, entry order) is kept per node group and changed in
place: a touched route's entries are taken out of and put into each virtual host
at the place a binary search on the entries' sort keys finds (entry order is a
total order), a host pattern that appears or goes adds or drops its one virtual
host, and each route's clusters are kept with a reverse index (cluster → routes),
so the reference check and the set of clusters in use follow the change too.
"""

import bisect
import gc
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import TypeVar

from envoy.config.cluster.v3.cluster_pb2 import Cluster
from envoy.config.listener.v3.listener_pb2 import Listener
from envoy.config.route.v3.route_components_pb2 import VirtualHost
from envoy.config.route.v3.route_pb2 import RouteConfiguration
from google.protobuf.any_pb2 import Any
from google.protobuf.internal.encoder import _VarintBytes  # type: ignore[attr-defined]
from google.protobuf.message import Message

from turnout.models.declaration import Declaration
from turnout.models.route import RouteSpec
from turnout.models.service import ServiceSpec
from turnout.models.split import SplitSpec
from turnout.xds.route_parts import VIRTUAL_HOSTS_FIELD, RouteParts
from turnout.xds.snapshot import (
    CLUSTER_TYPE,
    ENDPOINT_TYPE,
    EXTENSION_CONFIG_TYPE,
    ROUTE_TYPE,
    PackedResource,
    pack,
    packed_bytes,
)
from turnout.xds.translate import build_cluster, build_cluster_load_assignment
from turnout.xds.translate.api_key_auth import (
    API_KEY_AUTH_FILTER,
    build_kong_headers_config,
    serialized_api_key_auth_config,
)
from turnout.xds.translate.consistency import Scope, route_clusters_of
from turnout.xds.translate.listener import build_listener
from turnout.xds.translate.options import NodeGroup, route_configuration_name
from turnout.xds.translate.route import (
    CATCH_ALL_VIRTUAL_HOST,
    HOST_VIRTUAL_HOST_PREFIX,
    RouteEntry,
    build_routes,
    host_covers,
    route_entries,
    virtual_host_layout,
)

_MAX_TOUCHED = 256
"""Routes changed at once beyond which laying the group out again is cheaper."""
_MAX_SERVICES_PATCHED = 256
"""Services changed at once beyond which the name order is sorted again."""
_MAX_PENDING = 4096
"""Names awaiting a scoped reference check beyond which the whole check runs."""
_DIFFS_KEPT = 8
"""Identity diffs remembered: node groups at the same revision share one."""
_ROUTES_FIELD = VirtualHost.DESCRIPTOR.fields_by_name["routes"].number
_VIRTUAL_HOSTS_FIELD = RouteConfiguration.DESCRIPTOR.fields_by_name["virtual_hosts"].number
assert _VIRTUAL_HOSTS_FIELD == VIRTUAL_HOSTS_FIELD

_V = TypeVar("_V")
SortKey = tuple[int, int, int, int, str, str, int]


def _record(field_number: int, payload: bytes) -> bytes:
    """One length-delimited field: tag, length, payload."""
    return _VarintBytes(field_number << 3 | 2) + _VarintBytes(len(payload)) + payload


@contextmanager
def _no_cyclic_gc() -> Iterator[None]:
    """Pause the cyclic collector while a whole declaration is translated: it makes
    ~100,000 acyclic objects, and the collections they trigger cost a third of the
    time at 10,000 routes. Reference counting still frees them; the collector runs
    again after (a pause of under a second, once per start or large change)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _touched(old: Mapping[str, _V], new: Mapping[str, _V]) -> set[str]:
    """Names added, removed or given another spec object between two versions of an
    entity dict (the store keeps the object of an entity nobody wrote)."""
    if old is new:
        return set()
    touched = {n for n, v in new.items() if old.get(n) is not v}
    added = sum(1 for n in touched if n not in old)
    if len(new) - added != len(old):  # some old name is gone: only then the set difference
        touched.update(old.keys() - new.keys())
    return touched


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
    cluster_names: frozenset[str] = frozenset()
    """The clusters' names (what routes may send traffic to)."""


@dataclass(frozen=True)
class _EntryResult:
    route: RouteSpec
    split: SplitSpec | None
    consumers: int | None
    """The consumer epoch the entry was built at, for routes with auth or limits."""
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
class _VirtualHost:
    """One virtual host: its entries in match order, with their sort keys and records."""

    pattern: str | None
    """Its host pattern (None: the catch-all)."""
    head: bytes
    """Serialized `VirtualHost(name, domains)`."""
    entries: list[tuple[str, int]]
    """(route name, path index) in match order."""
    keys: list[SortKey]
    """Each entry's sort key (ascending: what a binary search looks in)."""
    records: list[bytes]
    """Each entry's serialized `routes` field records."""
    lent: bool = False
    """`entries` and `records` are held by a RouteParts: copy them before a change."""
    joined: bytes | None = None
    """The serialized virtual host (None: changed since it was last joined)."""

    def writable(self) -> "_VirtualHost":
        if self.lent:
            self.entries, self.records = list(self.entries), list(self.records)
            self.lent = False
        self.joined = None
        return self

    def find(self, key: SortKey) -> int:
        at = bisect.bisect_left(self.keys, key)
        assert at < len(self.keys) and self.keys[at] == key, key
        return at

    def insert(self, key: SortKey, entry: tuple[str, int], record: bytes) -> None:
        at = bisect.bisect_left(self.keys, key)
        self.keys.insert(at, key)
        self.entries.insert(at, entry)
        self.records.insert(at, record)

    def remove(self, key: SortKey) -> None:
        at = self.find(key)
        del self.keys[at], self.entries[at], self.records[at]

    def serialized(self) -> bytes:
        if self.joined is None:
            self.joined = _record(_VIRTUAL_HOSTS_FIELD, self.head + b"".join(self.records))
        return self.joined


def _virtual_host(pattern: str | None) -> tuple[str, bytes]:
    if pattern is None:
        name, domains = CATCH_ALL_VIRTUAL_HOST, ["*"]
    else:
        name, domains = HOST_VIRTUAL_HOST_PREFIX + pattern, [pattern]
    return name, VirtualHost(name=name, domains=domains).SerializeToString(deterministic=True)


@dataclass
class _Layout:
    """One group's virtual hosts and entry order, with what it was computed from."""

    routes: Mapping[str, RouteSpec]
    """The declaration's routes the layout is at (that dict itself: never changed)."""
    splits: Mapping[str, SplitSpec]
    """The split of every route the records were built from, by route name."""
    epoch: int
    """The consumer epoch the records were built at."""
    patterns: list[str]
    """The host patterns, sorted: one virtual host each."""
    vhosts: list[_VirtualHost]
    """Per pattern, in the same order, then the catch-all."""
    by_host: dict[str, set[str]] = field(default_factory=dict)
    """Host pattern → the group's routes that name it."""
    clusters: dict[str, frozenset[str]] = field(default_factory=dict)
    """Route name → the clusters its entries send traffic to."""
    users: dict[str, set[str]] = field(default_factory=dict)
    """Cluster → the routes that send traffic to it (the reverse of `clusters`)."""
    in_use: frozenset[str] | None = None
    """`users`' keys, kept until one appears or goes."""
    consumer_routes: set[str] = field(default_factory=set)
    """The group's routes whose translation reads consumers."""
    pending_routes: set[str] | None = None
    """Routes touched since the references last checked out (None: check all)."""
    pending_services: set[str] | None = None
    """Clusters, EDS names and endpoints touched since then (None: check all)."""

    def vhosts_of(self, route: RouteSpec) -> list[_VirtualHost]:
        """The virtual hosts that hold `route` (a route of the group)."""
        if not route.hosts:
            return list(self.vhosts)
        found: dict[int, None] = {}
        for host in route.hosts:
            if host.startswith("*."):
                found.update((i, None) for i, p in enumerate(self.patterns) if host_covers(host, p))
            else:  # a plain host covers only itself
                at = bisect.bisect_left(self.patterns, host)
                if at < len(self.patterns) and self.patterns[at] == host:
                    found[at] = None
        return [self.vhosts[i] for i in sorted(found)]

    def set_clusters(self, name: str, clusters: frozenset[str] | None) -> None:
        """Record the clusters route `name` sends traffic to (None: it has no entries)."""
        old = self.clusters.pop(name, frozenset())
        for cluster in old - (clusters or frozenset()):
            users = self.users[cluster]
            users.discard(name)
            if not users:
                del self.users[cluster]
                self.in_use = None
        if clusters is None:
            return
        self.clusters[name] = clusters
        for cluster in clusters - old:
            if cluster not in self.users:
                self.users[cluster] = set()
                self.in_use = None
            self.users[cluster].add(name)

    def clusters_in_use(self) -> frozenset[str]:
        if self.in_use is None:
            self.in_use = frozenset(self.users)
        return self.in_use

    def note_pending(self, routes: Iterable[str], services: Iterable[str]) -> None:
        if self.pending_routes is not None:
            self.pending_routes.update(routes)
            if len(self.pending_routes) > _MAX_PENDING:
                self.pending_routes = None
        if self.pending_services is not None:
            self.pending_services.update(services)
            if len(self.pending_services) > _MAX_PENDING:
                self.pending_services = None


class TranslationMemo:
    """Results by entity name, valid while the entity's spec object is the same."""

    def __init__(self) -> None:
        self._services: dict[str, _ServiceResult] = {}
        self._service_names: list[str] | None = None
        """`_services`' names in order (the order of the shared clusters)."""
        self._endpoint_names: list[str] = []
        """The shared endpoints' names, in their order."""
        self._services_seen: Mapping[str, ServiceSpec] = {}
        self._entries: dict[tuple[str, int], _EntryResult] = {}
        self._indices: dict[str, set[int]] = {}
        """Route name → the path indices `_entries` holds for it."""
        self._created: set[str] = set()
        """Routes given entries since `forget_routes_except` last ran."""
        self._forgot_at: Mapping[str, RouteSpec] | None = None
        self._route_entries: dict[str, tuple[RouteSpec, list[RouteEntry]]] = {}
        self._layouts: dict[str, _Layout] = {}
        self._listeners: dict[NodeGroup, tuple[Listener, PackedResource]] = {}
        self._api_keys: tuple[object, PackedResource] | None = None
        self._kong_headers: tuple[object, tuple[object, ...], PackedResource] | None = None
        """The consumers Kong's headers (ECDS) were built from, their ids, the resource."""
        """The keys the credentials' ECDS resource was built from, and the resource."""
        self._shared: SharedResources | None = None
        self._shared_decl: Declaration | None = None
        self._splits: tuple[Mapping[str, SplitSpec], dict[str, SplitSpec]] | None = None
        """The last declaration's splits and the same by route name."""
        self._consumers_seen: Mapping[str, object] = {}
        self._epoch = 0
        """Counts the changes of consumers seen: what consumer-reading entries are at."""
        self._diffs: list[tuple[Mapping[str, object], Mapping[str, object], set[str]]] = []

    # --- what changed -----------------------------------------------------------------

    def _diff(self, old: Mapping[str, _V], new: Mapping[str, _V]) -> set[str]:
        """`_touched`, computed once for every group that moves between the same two."""
        for a, b, touched in self._diffs:
            if a is old and b is new:
                return touched
        touched = _touched(old, new)
        self._diffs.append((old, new, touched))  # type: ignore[arg-type]
        del self._diffs[:-_DIFFS_KEPT]
        return touched

    def _consumer_epoch(self, decl: Declaration) -> int:
        if decl.consumers is not self._consumers_seen:
            if _touched(self._consumers_seen, decl.consumers):
                self._epoch += 1
            self._consumers_seen = decl.consumers
        return self._epoch

    def _splits_by_route(self, decl: Declaration) -> dict[str, SplitSpec]:
        """Route name → its split (a route has at most one: the store holds it to that)."""
        if self._splits is not None and self._splits[0] is decl.splits:
            return self._splits[1]
        touched = _touched(self._splits[0], decl.splits) if self._splits is not None else None
        if self._splits is None or touched is None or len(touched) > _MAX_TOUCHED:
            by_route = {split.route: split for split in decl.splits.values()}
        else:
            before, by_route = self._splits[0], dict(self._splits[1])
            for name in touched:
                old, new = before.get(name), decl.splits.get(name)
                if old is not None and by_route.get(old.route) is old:
                    del by_route[old.route]
            for name in touched:
                if (new := decl.splits.get(name)) is not None:
                    by_route[new.route] = new
        self._splits = (decl.splits, by_route)
        return by_route

    # --- shared: clusters, endpoints, credentials ------------------------------------

    def shared(self, decl: Declaration) -> SharedResources:
        """Clusters, endpoints and credentials: built again only when services or keys
        changed, and then only the changed services' resources."""
        if self._shared is not None and self._shared_decl is decl:
            return self._shared
        touched = _touched(self._services_seen, decl.services)
        if self._shared is None or len(touched) > _MAX_SERVICES_PATCHED:
            try:
                with _no_cyclic_gc():
                    results = self.services(decl)
            except BaseException:
                self._shared = None  # half-updated: build it whole next time
                raise
            endpoints = [r.endpoints for r in results if r.endpoints is not None]
            self._endpoint_names = [e.name for e in endpoints]
            previous, self._shared = (
                self._shared,
                SharedResources(
                    [r.cluster for r in results],
                    endpoints,
                    frozenset(self._endpoint_names),
                    frozenset(r.eds_name for r in results if r.eds_name is not None),
                    self._extension_configs(decl),
                    frozenset(self._services),
                ),
            )
            if previous is not None:
                for layout in self._layouts.values():
                    layout.pending_services = None  # too many to name: check all
        elif touched:
            try:
                self._shared = self._patch_shared(self._shared, decl, touched)
            except BaseException:
                self._shared = None
                raise
        else:
            extensions = self._extension_configs(decl)
            if any(
                a is not b for a, b in zip(extensions, self._shared.extension_configs, strict=True)
            ):
                self._shared = replace(self._shared, extension_configs=extensions)
        self._services_seen, self._shared_decl = decl.services, decl
        return self._shared

    def _patch_shared(
        self, shared: SharedResources, decl: Declaration, touched: set[str]
    ) -> SharedResources:
        """`shared` with the `touched` services' resources replaced, put in or taken
        out at their place in name order (copies: `shared` stays as it was)."""
        assert self._service_names is not None
        names, clusters = list(self._service_names), list(shared.clusters)
        endpoint_names, endpoints = list(self._endpoint_names), list(shared.endpoints)
        eds_names, eds_services = set(shared.eds_cluster_names), set(shared.eds_services)
        pending = set(touched)
        for name in sorted(touched):
            old, spec = self._services.get(name), decl.services.get(name)
            new = None
            if spec is not None:
                new = old if old is not None and old.spec is spec else _service_result(spec)
            at = bisect.bisect_left(names, name)
            if at < len(names) and names[at] == name:
                del names[at], clusters[at]
            if old is not None:
                if old.endpoints is not None:
                    eds_names.discard(old.endpoints.name)
                    e_at = bisect.bisect_left(endpoint_names, old.endpoints.name)
                    del endpoint_names[e_at], endpoints[e_at]
                if old.eds_name is not None:
                    eds_services.discard(old.eds_name)
                    pending.add(old.eds_name)
            if new is None:
                self._services.pop(name, None)
                continue
            self._services[name] = new
            names.insert(at, name)
            clusters.insert(at, new.cluster)
            if new.endpoints is not None:
                eds_names.add(new.endpoints.name)
                e_at = bisect.bisect_left(endpoint_names, new.endpoints.name)
                endpoint_names.insert(e_at, new.endpoints.name)
                endpoints.insert(e_at, new.endpoints)
            if new.eds_name is not None:
                eds_services.add(new.eds_name)
                pending.add(new.eds_name)
        same_names = len(names) == len(self._service_names) and all(
            n in shared.cluster_names for n in touched if n in self._services
        )
        self._service_names, self._endpoint_names = names, endpoint_names
        for layout in self._layouts.values():
            layout.note_pending((), pending)
        return SharedResources(
            clusters,
            endpoints,
            frozenset(eds_names),
            frozenset(eds_services),
            self._extension_configs(decl),
            shared.cluster_names if same_names else frozenset(names),
        )

    def services(self, decl: Declaration) -> list[_ServiceResult]:
        """Every service's resources in name order (reusing those whose spec is the
        same object)."""
        names = sorted(decl.services)
        for gone in self._services.keys() - decl.services.keys():
            del self._services[gone]
        for name in names:
            spec = decl.services[name]
            cached = self._services.get(name)
            if cached is None or cached.spec is not spec:
                self._services[name] = _service_result(spec)
        self._service_names = names
        return [self._services[n] for n in names]

    def _extension_configs(self, decl: Declaration) -> list[PackedResource]:
        return [self.api_key_auth_config(decl), self.kong_headers_config(decl)]

    def kong_headers_config(self, decl: Declaration) -> PackedResource:
        """Kong's consumer headers (ECDS), rebuilt only when a Kong id changed."""
        cached = self._kong_headers
        if cached is not None and cached[0] is decl.consumers:
            return cached[2]
        basis = tuple(
            (n, c.kong_id, c.custom_id)
            for n, c in sorted(decl.consumers.items())
            if c.kong_id is not None or c.custom_id is not None
        )
        if cached is None or cached[1] != basis:
            packed = pack(build_kong_headers_config(decl))
        else:
            packed = cached[2]
        self._kong_headers = (decl.consumers, basis, packed)
        return packed

    def api_key_auth_config(self, decl: Declaration) -> PackedResource:
        """The credentials (ECDS), rebuilt only when the keys changed."""
        if self._api_keys is None or self._api_keys[0] is not decl.api_keys:
            value = serialized_api_key_auth_config(decl)
            packed = Any(type_url=EXTENSION_CONFIG_TYPE, value=value)
            self._api_keys = (decl.api_keys, packed_bytes(API_KEY_AUTH_FILTER, packed))
        return self._api_keys[1]

    def listener(self, opts: NodeGroup) -> tuple[Listener, PackedResource]:
        """The group's listener (a function of its options only), built once."""
        cached = self._listeners.get(opts)
        if cached is None:
            listener = build_listener(opts)
            cached = self._listeners[opts] = (listener, pack(listener))
        return cached

    def forget_layouts_except(self, groups: set[str]) -> None:
        """Drop the route layouts of node groups no longer in use (evicted groups)."""
        for gone in self._layouts.keys() - groups:
            del self._layouts[gone]
        for opts in [o for o in self._listeners if o.group not in groups]:
            del self._listeners[opts]

    # --- routes -----------------------------------------------------------------------

    def route_configuration(self, decl: Declaration, opts: NodeGroup) -> PackedResource:
        """The group's RouteConfiguration, packed, from cached route entries."""
        return self.route_parts(decl, opts).full

    def route_parts(self, decl: Declaration, opts: NodeGroup) -> RouteParts:
        """The group's RouteConfiguration with its per-route parts (`route_parts.py`)."""
        splits = self._splits_by_route(decl)
        epoch = self._consumer_epoch(decl)
        layout = self._layouts.get(opts.group)
        try:
            if layout is None or not self._update(layout, decl, opts.group, splits, epoch):
                with _no_cyclic_gc():
                    layout = self._layout(decl, opts.group, splits, epoch)
                self._layouts[opts.group] = layout
        except BaseException:
            self._layouts.pop(opts.group, None)  # half-changed: lay it out again next time
            raise
        config_name = route_configuration_name(opts)
        head = RouteConfiguration(name=config_name).SerializeToString(deterministic=True)
        value = head + b"".join(v.serialized() for v in layout.vhosts)
        full = packed_bytes(config_name, Any(type_url=ROUTE_TYPE, value=value))
        # The parts keep the lists as they are at this revision: changed copy-on-write.
        for vhost in layout.vhosts:
            vhost.lent = True
        return RouteParts(
            config_name,
            head,
            [(v.head, v.entries) for v in layout.vhosts],
            [v.records for v in layout.vhosts],
            decl.routes,
            splits,
            full,
        )

    def route_clusters(self, group: str) -> dict[str, frozenset[str]]:
        """Route name → the clusters it sends traffic to, in the group's last layout."""
        return self._layouts[group].clusters

    def clusters_in_use(self, group: str) -> frozenset[str]:
        """Every cluster a route of the group sends traffic to."""
        return self._layouts[group].clusters_in_use()

    def check_scope(self, group: str) -> Scope | None:
        """What may have broken a reference since the group's last check passed (None:
        check everything)."""
        layout = self._layouts[group]
        if layout.pending_routes is None or layout.pending_services is None:
            return None
        return Scope(layout.pending_services, layout.pending_routes, layout.users)

    def checked(self, group: str) -> None:
        """The group's references checked out: later checks look at later changes."""
        layout = self._layouts[group]
        layout.pending_routes, layout.pending_services = set(), set()

    def _layout(
        self, decl: Declaration, group: str, splits: Mapping[str, SplitSpec], epoch: int
    ) -> _Layout:
        """The group laid out from scratch (from cached entries where they hold)."""
        patterns: list[str] = []
        vhosts = []
        built: dict[tuple[str, int], _EntryResult] = {}
        for name, _domains, entries in virtual_host_layout(decl, group, self._entries_of):
            host_vhost = name != CATCH_ALL_VIRTUAL_HOST
            pattern = name[len(HOST_VIRTUAL_HOST_PREFIX) :] if host_vhost else None
            records = []
            for e in entries:
                key = (e.route.name, e.index)
                result = built.get(key)
                if result is None:
                    result = built[key] = self._entry(decl, key[0], e.index, splits, epoch)
                records.append(result.record)
            vhosts.append(
                _VirtualHost(
                    pattern,
                    _virtual_host(pattern)[1],
                    [(e.route.name, e.index) for e in entries],
                    [e.sort_key for e in entries],
                    records,
                )
            )
            if pattern is not None:
                patterns.append(pattern)
        layout = _Layout(decl.routes, splits, epoch, patterns, vhosts)
        for route in decl.routes.values():
            if group in route.groups:
                self._track(layout, route, decl, splits, epoch, built)
        return layout

    def _track(
        self,
        layout: _Layout,
        route: RouteSpec,
        decl: Declaration,
        splits: Mapping[str, SplitSpec],
        epoch: int,
        built: Mapping[tuple[str, int], _EntryResult] | None = None,
    ) -> None:
        """Note a route of the group: its hosts, clusters and use of consumers
        (`built`: its entries, when the caller has them)."""
        for host in route.hosts:
            layout.by_host.setdefault(host, set()).add(route.name)
        clusters: frozenset[str] = frozenset()
        for entry in self._entries_of(route):
            result = built.get((route.name, entry.index)) if built is not None else None
            if result is None:
                result = self._entry(decl, route.name, entry.index, splits, epoch)
            clusters |= result.clusters
        layout.set_clusters(route.name, clusters)
        if _uses_consumers(route):
            layout.consumer_routes.add(route.name)
        else:
            layout.consumer_routes.discard(route.name)

    def _untrack(self, layout: _Layout, route: RouteSpec) -> list[str]:
        """Forget a route of the group; the host patterns no route names any more."""
        emptied = []
        for host in route.hosts:
            names = layout.by_host.get(host)
            if names is not None:
                names.discard(route.name)
                if not names:
                    del layout.by_host[host]
                    emptied.append(host)
        layout.set_clusters(route.name, None)
        layout.consumer_routes.discard(route.name)
        return emptied

    def _update(
        self,
        layout: _Layout,
        decl: Declaration,
        group: str,
        splits: Mapping[str, SplitSpec],
        epoch: int,
    ) -> bool:
        """Bring the layout to `decl` in place, from the routes whose spec or split
        changed (and those that read consumers, when consumers changed). False, with
        the layout untouched, when so many changed that a fresh layout is cheaper."""
        touched = self._diff(layout.routes, decl.routes) | self._diff(layout.splits, splits)
        if epoch != layout.epoch:
            touched |= layout.consumer_routes
        if len(touched) > _MAX_TOUCHED:
            return False
        before = layout.routes
        out: list[RouteSpec] = []
        into: list[RouteSpec] = []
        kept: list[RouteSpec] = []
        for name in sorted(touched):
            old, new = before.get(name), decl.routes.get(name)
            old_in = old is not None and group in old.groups
            new_in = new is not None and group in new.groups
            if old_in and new_in and (old is new or _layout_key(old) == _layout_key(new)):  # type: ignore[union-attr, arg-type]
                kept.append(new)  # type: ignore[arg-type]
                continue
            if old_in:
                out.append(old)  # type: ignore[arg-type]
            if new_in:
                into.append(new)  # type: ignore[arg-type]
        for old in out:
            for vhost in layout.vhosts_of(old):
                vhost = vhost.writable()
                for entry in self._entries_of(old, keep=False):
                    vhost.remove(entry.sort_key)
        for old in out:
            for pattern in self._untrack(layout, old):
                at = bisect.bisect_left(layout.patterns, pattern)
                del layout.patterns[at], layout.vhosts[at]
        for route in kept:  # same place: only the records change
            for vhost in layout.vhosts_of(route):
                vhost = vhost.writable()
                for entry in self._entries_of(route):
                    built = self._entry(decl, route.name, entry.index, splits, epoch)
                    vhost.records[vhost.find(entry.sort_key)] = built.record
            self._track(layout, route, decl, splits, epoch)
        new_patterns = sorted({h for r in into for h in r.hosts} - layout.by_host.keys())
        for pattern in new_patterns:
            self._add_virtual_host(layout, pattern, decl, splits, epoch)
        for route in into:
            for vhost in layout.vhosts_of(route):
                vhost = vhost.writable()
                for entry in self._entries_of(route):
                    built = self._entry(decl, route.name, entry.index, splits, epoch)
                    vhost.insert(entry.sort_key, (route.name, entry.index), built.record)
            self._track(layout, route, decl, splits, epoch)
        layout.routes, layout.splits, layout.epoch = decl.routes, splits, epoch
        layout.note_pending(touched, ())
        return True

    def _add_virtual_host(
        self,
        layout: _Layout,
        pattern: str,
        decl: Declaration,
        splits: Mapping[str, SplitSpec],
        epoch: int,
    ) -> None:
        """A virtual host for a new host pattern, holding the routes already laid out
        that cover it (by a wildcard) and every host-less route (`route.py`)."""
        catch_all = layout.vhosts[-1]
        items = list(zip(catch_all.keys, catch_all.entries, catch_all.records, strict=True))
        covering = {
            name
            for host, names in layout.by_host.items()
            if host != pattern and host_covers(host, pattern)
            for name in names
        }
        for name in covering:
            route = decl.routes[name]
            for entry in self._entries_of(route):
                built = self._entry(decl, name, entry.index, splits, epoch)
                items.append((entry.sort_key, (name, entry.index), built.record))
        items.sort(key=lambda item: item[0])
        at = bisect.bisect_left(layout.patterns, pattern)
        layout.patterns.insert(at, pattern)
        layout.vhosts.insert(
            at,
            _VirtualHost(
                pattern,
                _virtual_host(pattern)[1],
                [e for _k, e, _r in items],
                [k for k, _e, _r in items],
                [r for _k, _e, r in items],
            ),
        )

    def _entries_of(self, route: RouteSpec, keep: bool = True) -> list[RouteEntry]:
        """The route's entries, made once per spec object (`keep`: cache them; False for
        a spec on its way out, which must not evict its successor's)."""
        cached = self._route_entries.get(route.name)
        if cached is None or cached[0] is not route:
            if not keep:
                return route_entries(route)
            cached = (route, route_entries(route))
            self._route_entries[route.name] = cached
        return cached[1]

    def _entry(
        self,
        decl: Declaration,
        name: str,
        index: int,
        splits: Mapping[str, SplitSpec],
        epoch: int,
    ) -> _EntryResult:
        route = decl.routes[name]
        split = splits.get(name)
        basis = epoch if _uses_consumers(route) else None
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
            indices = self._indices.setdefault(name, set())
            if not indices:
                self._created.add(name)
            indices.add(index)
        return cached

    def forget_routes_except(self, decl: Declaration) -> None:
        """Drop entries of deleted routes (memory only; correctness never needs it)."""
        if self._forgot_at is None:
            candidates: Iterable[str] = list(self._indices)
        else:
            candidates = self._diff(self._forgot_at, decl.routes) | self._created
        for name in candidates:
            if name not in decl.routes:
                for index in self._indices.pop(name, ()):
                    self._entries.pop((name, index), None)
                self._route_entries.pop(name, None)
        self._forgot_at, self._created = decl.routes, set()


def _service_result(spec: ServiceSpec) -> _ServiceResult:
    cluster = build_cluster(spec)
    eds_name = cla = None
    if cluster.type == Cluster.EDS:  # `uses_eds` decided it: not asked again
        eds_name = cluster.eds_cluster_config.service_name or cluster.name
        cla = _pack(ENDPOINT_TYPE, spec.name, build_cluster_load_assignment(spec))
    return _ServiceResult(spec, _pack(CLUSTER_TYPE, spec.name, cluster), cla, eds_name)


def _pack(type_url: str, name: str, message: Message) -> PackedResource:
    """`pack`, knowing the type URL and name (the same bytes, without looking them up)."""
    value = message.SerializeToString(deterministic=True)
    return packed_bytes(name, Any(type_url=type_url, value=value))


def _uses_consumers(route: RouteSpec) -> bool:
    """Whether the route's translation reads consumers."""
    return route.auth is not None or route.limits is not None

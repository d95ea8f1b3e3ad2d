"""Cross-reference checks on a translated snapshot, before it is published.

Like go-control-plane's `Snapshot.Consistent`: a proxy given an inconsistent set
warms forever (an EDS cluster without endpoints, a listener without its routes) or
answers 503 (a route to a missing cluster). Owns no translation; reads resources
only.
"""

from collections.abc import Iterable, Mapping, Sequence, Set
from dataclasses import dataclass

from envoy.config.cluster.v3.cluster_pb2 import Cluster
from envoy.config.listener.v3.listener_pb2 import Listener
from envoy.config.route.v3.route_pb2 import RouteConfiguration
from envoy.extensions.filters.network.http_connection_manager.v3.http_connection_manager_pb2 import (  # noqa: E501
    HttpConnectionManager,
)
from google.protobuf.message import Message

from turnout.xds.translate.errors import TranslationError
from turnout.xds.translate.resources import (
    CLUSTER_TYPE,
    ENDPOINT_TYPE,
    EXTENSION_CONFIG_TYPE,
    LISTENER_TYPE,
    ROUTE_TYPE,
    resource_name,
)

_KNOWN_TYPES = (CLUSTER_TYPE, ENDPOINT_TYPE, EXTENSION_CONFIG_TYPE, LISTENER_TYPE, ROUTE_TYPE)


@dataclass(frozen=True)
class References:
    """What a snapshot provides and what it refers to, by name: the input of the one
    consistency check. `check_consistent` reads it off messages; the served path
    (`translate.pipeline`) keeps it as it translates, without unpacking anything."""

    clusters: Set[str]
    eds_clusters: Set[str]
    """The EDS service names of the EDS clusters."""
    endpoints: Set[str]
    """The ClusterLoadAssignments' names."""
    route_configs: Set[str]
    extension_configs: Set[str]
    listeners: Mapping[str, tuple[Sequence[str], Sequence[str]]]
    """Listener name → (RDS names it asks for, filter configs it discovers)."""
    route_clusters: Mapping[str, Iterable[str]]
    """Route entry name → the clusters it sends traffic to."""


@dataclass(frozen=True)
class Scope:
    """What changed since the references last checked out: only a reference from or to
    one of these can have broken since. The served path keeps it per node group, so a
    change costs a check of what it touched, not of every route."""

    services: Set[str]
    """Clusters, EDS service names and ClusterLoadAssignments added, changed or gone."""
    routes: Set[str]
    """Route entry names (route names on the served path) added, changed or gone."""
    cluster_users: Mapping[str, Set[str]]
    """Cluster → the routes that send traffic to it, over every route."""


def check_references(refs: References, scope: Scope | None = None) -> None:
    """Raise `TranslationError` naming the first broken reference.

    - every EDS cluster has a ClusterLoadAssignment, and every one belongs to one;
    - every RDS name a listener asks for exists as a RouteConfiguration;
    - every filter config a listener discovers (ECDS) exists;
    - every cluster a route sends traffic to exists.

    With a `scope`, only references from or to what it names are looked at (the
    listeners always): enough when the same check passed before that change.
    """
    if scope is None:
        for name in sorted(refs.eds_clusters - refs.endpoints):
            raise TranslationError(f"EDS cluster {name!r} has no ClusterLoadAssignment")
        for name in sorted(refs.endpoints - refs.eds_clusters):
            raise TranslationError(f"ClusterLoadAssignment {name!r} belongs to no EDS cluster")
    else:
        for name in sorted(scope.services):
            if name in refs.eds_clusters and name not in refs.endpoints:
                raise TranslationError(f"EDS cluster {name!r} has no ClusterLoadAssignment")
            if name in refs.endpoints and name not in refs.eds_clusters:
                raise TranslationError(f"ClusterLoadAssignment {name!r} belongs to no EDS cluster")
    for listener, (rds_names, filter_names) in refs.listeners.items():
        for rds in rds_names:
            if rds not in refs.route_configs:
                raise TranslationError(
                    f"listener {listener!r} uses RouteConfiguration {rds!r}, which does not exist"
                )
        for filter_name in filter_names:
            if filter_name not in refs.extension_configs:
                raise TranslationError(
                    f"listener {listener!r} discovers filter config "
                    f"{filter_name!r}, which does not exist"
                )
    if scope is None:
        routes: Iterable[tuple[str, Iterable[str]]] = refs.route_clusters.items()
    else:
        # A route touched, or a cluster gone that an untouched route still uses.
        names = set(scope.routes)
        for cluster in scope.services:
            if cluster not in refs.clusters:
                names.update(scope.cluster_users.get(cluster, ()))
        routes = ((n, refs.route_clusters.get(n, ())) for n in sorted(names))
    for route, clusters in routes:
        for cluster in clusters:
            if cluster not in refs.clusters:
                raise TranslationError(
                    f"route {route!r} sends traffic to cluster {cluster!r}, which does not exist"
                )


def check_consistent(resources: Mapping[str, Sequence[Message]]) -> None:
    """Raise `TranslationError` naming the first broken reference or duplicate name:
    every message matches its type URL, names are unique within a type, then
    `check_references`."""
    for type_url, messages in resources.items():
        if type_url not in _KNOWN_TYPES:
            raise TranslationError(f"unknown resource type {type_url!r}")
        _check_types_and_names(type_url, messages)
    check_references(references_of(resources))


def references_of(resources: Mapping[str, Sequence[Message]]) -> References:
    """The `References` of translated messages."""
    clusters = [m for m in resources.get(CLUSTER_TYPE, ()) if isinstance(m, Cluster)]
    route_configs = [m for m in resources.get(ROUTE_TYPE, ()) if isinstance(m, RouteConfiguration)]
    listeners: dict[str, tuple[list[str], list[str]]] = {}
    for listener in resources.get(LISTENER_TYPE, ()):
        assert isinstance(listener, Listener)
        rds_names, filter_names = listeners.setdefault(listener.name, ([], []))
        for hcm in _http_connection_managers(listener):
            if hcm.HasField("rds"):
                rds_names.append(hcm.rds.route_config_name)
            filter_names.extend(f.name for f in hcm.http_filters if f.HasField("config_discovery"))
    route_clusters: dict[str, list[str]] = {}
    for config in route_configs:
        for vhost in config.virtual_hosts:
            for route in vhost.routes:
                route_clusters.setdefault(route.name, []).extend(route_clusters_of(route))
    return References(
        clusters=frozenset(c.name for c in clusters),
        eds_clusters=frozenset(_eds_name(c) for c in clusters if c.type == Cluster.EDS),
        endpoints=frozenset(resource_name(m) for m in resources.get(ENDPOINT_TYPE, ())),
        route_configs=frozenset(r.name for r in route_configs),
        extension_configs=frozenset(
            resource_name(m) for m in resources.get(EXTENSION_CONFIG_TYPE, ())
        ),
        listeners=listeners,
        route_clusters=route_clusters,
    )


def _check_types_and_names(type_url: str, messages: Sequence[Message]) -> None:
    seen: set[str] = set()
    for message in messages:
        full_name = message.DESCRIPTOR.full_name
        if not type_url.endswith("/" + full_name):
            raise TranslationError(f"a {full_name} is listed under {type_url!r}")
        name = resource_name(message)
        if name in seen:
            raise TranslationError(f"duplicate {full_name} name {name!r}")
        seen.add(name)


def _eds_name(cluster: Cluster) -> str:
    return cluster.eds_cluster_config.service_name or cluster.name


def _http_connection_managers(listener: Listener) -> Iterable[HttpConnectionManager]:
    chains = list(listener.filter_chains)
    if listener.HasField("default_filter_chain"):
        chains.append(listener.default_filter_chain)
    for chain in chains:
        for network_filter in chain.filters:
            typed = network_filter.typed_config
            if typed.Is(HttpConnectionManager.DESCRIPTOR):
                hcm = HttpConnectionManager()
                typed.Unpack(hcm)
                yield hcm


def route_clusters_of(route: Message) -> Iterable[str]:
    """The clusters one Envoy `Route` sends traffic to."""
    action = route.route  # type: ignore[attr-defined]
    if action.cluster:
        yield action.cluster
    for weighted in action.weighted_clusters.clusters:
        yield weighted.name

"""Cross-reference checks on a translated snapshot, before it is published.

Like go-control-plane's `Snapshot.Consistent`: a proxy given an inconsistent set
warms forever (an EDS cluster without endpoints, a listener without its routes) or
answers 503 (a route to a missing cluster). Owns no translation; reads resources
only.
"""

from collections.abc import Iterable, Mapping, Sequence

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


def check_consistent(resources: Mapping[str, Sequence[Message]]) -> None:
    """Raise `TranslationError` naming the first broken reference.

    - no duplicate names within a type, and every message matches its type URL;
    - every EDS cluster has a ClusterLoadAssignment, and every one belongs to one;
    - every RDS name a listener asks for exists as a RouteConfiguration;
    - every filter config a listener discovers (ECDS) exists;
    - every cluster a route sends traffic to exists.
    """
    for type_url, messages in resources.items():
        if type_url not in _KNOWN_TYPES:
            raise TranslationError(f"unknown resource type {type_url!r}")
        _check_types_and_names(type_url, messages)

    clusters = [m for m in resources.get(CLUSTER_TYPE, ()) if isinstance(m, Cluster)]
    cluster_names = {c.name for c in clusters}
    eds_names = {_eds_name(c) for c in clusters if c.type == Cluster.EDS}
    cla_names = {resource_name(m) for m in resources.get(ENDPOINT_TYPE, ())}
    for name in sorted(eds_names - cla_names):
        raise TranslationError(f"EDS cluster {name!r} has no ClusterLoadAssignment")
    for name in sorted(cla_names - eds_names):
        raise TranslationError(f"ClusterLoadAssignment {name!r} belongs to no EDS cluster")

    route_configs = [m for m in resources.get(ROUTE_TYPE, ()) if isinstance(m, RouteConfiguration)]
    route_config_names = {r.name for r in route_configs}
    extension_names = {resource_name(m) for m in resources.get(EXTENSION_CONFIG_TYPE, ())}
    for listener in resources.get(LISTENER_TYPE, ()):
        assert isinstance(listener, Listener)
        for hcm in _http_connection_managers(listener):
            if hcm.HasField("rds") and hcm.rds.route_config_name not in route_config_names:
                raise TranslationError(
                    f"listener {listener.name!r} uses RouteConfiguration "
                    f"{hcm.rds.route_config_name!r}, which does not exist"
                )
            for http_filter in hcm.http_filters:
                if http_filter.HasField("config_discovery") and (
                    http_filter.name not in extension_names
                ):
                    raise TranslationError(
                        f"listener {listener.name!r} discovers filter config "
                        f"{http_filter.name!r}, which does not exist"
                    )

    for config in route_configs:
        for vhost in config.virtual_hosts:
            for route in vhost.routes:
                for cluster in _route_clusters(route):
                    if cluster not in cluster_names:
                        raise TranslationError(
                            f"route {route.name!r} in virtual host {vhost.name!r} sends "
                            f"traffic to cluster {cluster!r}, which does not exist"
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


def _route_clusters(route: Message) -> Iterable[str]:
    action = route.route  # type: ignore[attr-defined]
    if action.cluster:
        yield action.cluster
    for weighted in action.weighted_clusters.clusters:
        yield weighted.name

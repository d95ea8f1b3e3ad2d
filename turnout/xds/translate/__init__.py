"""Pure translation of a `Declaration` into Envoy v3 resources.

    options.py      NodeGroup and the names derived from it
    cluster.py      services → Cluster
    endpoint.py     services with IP endpoints → ClusterLoadAssignment (EDS)
    route.py        routes + splits → RouteConfiguration (virtual hosts, order)
    listener.py     NodeGroup → Listener (HTTP connection manager over RDS)
    api_key_auth.py route auth → api_key_auth (credentials over ECDS) and path keys
    resources.py    everything by type URL
    consistency.py  the one reference check before publishing
    pipeline.py     translate(): incremental, what the cache serves (via xds/memo.py)
    errors.py       TranslationError

Takes validated specs, never ORM rows; uses no database, clock, randomness or I/O.
`pipeline` is not imported here: it builds on `turnout.xds.memo`, which imports this.
"""

from turnout.xds.translate.cluster import build_cluster, build_clusters
from turnout.xds.translate.consistency import check_consistent
from turnout.xds.translate.endpoint import build_cluster_load_assignment, build_endpoints
from turnout.xds.translate.errors import TranslationError
from turnout.xds.translate.listener import build_listener
from turnout.xds.translate.options import NodeGroup, listener_name, route_configuration_name
from turnout.xds.translate.resources import (
    CLUSTER_TYPE,
    ENDPOINT_TYPE,
    EXTENSION_CONFIG_TYPE,
    LISTENER_TYPE,
    ROUTE_TYPE,
    build_resources,
    resource_name,
)
from turnout.xds.translate.route import build_route_configuration

__all__ = [
    "CLUSTER_TYPE",
    "ENDPOINT_TYPE",
    "EXTENSION_CONFIG_TYPE",
    "LISTENER_TYPE",
    "ROUTE_TYPE",
    "NodeGroup",
    "TranslationError",
    "build_cluster",
    "build_cluster_load_assignment",
    "build_clusters",
    "build_endpoints",
    "build_listener",
    "build_resources",
    "build_route_configuration",
    "check_consistent",
    "listener_name",
    "resource_name",
    "route_configuration_name",
]

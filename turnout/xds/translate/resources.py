"""The whole translation: a declaration and a group's options → resources by type URL.

Owns the type URLs and the shape of a snapshot (`{type_url: [messages sorted by
name]}`). Pure: no database, clock, randomness or I/O; equal inputs give
byte-identical messages (`SerializeToString(deterministic=True)`).
"""

from google.protobuf.message import Message

from turnout.models.declaration import Declaration
from turnout.xds.translate.api_key_auth import build_api_key_auth_config, build_kong_headers_config
from turnout.xds.translate.cluster import build_clusters
from turnout.xds.translate.endpoint import build_endpoints
from turnout.xds.translate.listener import build_listener
from turnout.xds.translate.options import NodeGroup
from turnout.xds.translate.route import build_route_configuration

_PREFIX = "type.googleapis.com/"
CLUSTER_TYPE = _PREFIX + "envoy.config.cluster.v3.Cluster"
ENDPOINT_TYPE = _PREFIX + "envoy.config.endpoint.v3.ClusterLoadAssignment"
EXTENSION_CONFIG_TYPE = _PREFIX + "envoy.config.core.v3.TypedExtensionConfig"
"""ECDS: filter configs the listener's filters fetch by name (the API keys)."""
LISTENER_TYPE = _PREFIX + "envoy.config.listener.v3.Listener"
ROUTE_TYPE = _PREFIX + "envoy.config.route.v3.RouteConfiguration"


def resource_name(message: Message) -> str:
    """The xDS name of a resource (a ClusterLoadAssignment's is its `cluster_name`)."""
    name = getattr(message, "name", None)
    if isinstance(name, str):
        return name
    return str(message.cluster_name)  # type: ignore[attr-defined]


def build_resources(decl: Declaration, opts: NodeGroup) -> dict[str, list[Message]]:
    """Every resource of one node group, by type URL, each list sorted by name.

    Does not call `check_consistent`; the caller does before publishing.
    """
    resources: dict[str, list[Message]] = {
        CLUSTER_TYPE: list(build_clusters(decl)),
        ENDPOINT_TYPE: list(build_endpoints(decl)),
        EXTENSION_CONFIG_TYPE: [build_api_key_auth_config(decl), build_kong_headers_config(decl)],
        LISTENER_TYPE: [build_listener(opts)],
        ROUTE_TYPE: [build_route_configuration(decl, opts)],
    }
    return {type_url: sorted(msgs, key=resource_name) for type_url, msgs in resources.items()}

"""`NodeGroup` → the one HTTP `Listener` of a node group.

Owns the HTTP connection manager settings. The listener does not depend on the
declaration: routes arrive over RDS, so a route change never rebuilds (and never
drains) the listener. Knows nothing of services or clusters.
"""

from envoy.config.accesslog.v3.accesslog_pb2 import AccessLogFilter, ResponseFlagFilter
from envoy.config.core.v3.address_pb2 import Address, SocketAddress
from envoy.config.core.v3.base_pb2 import DataSource
from envoy.config.core.v3.extension_pb2 import TypedExtensionConfig
from envoy.config.listener.v3.listener_components_pb2 import Filter, FilterChain
from envoy.config.listener.v3.listener_pb2 import Listener
from envoy.config.route.v3.route_pb2 import RouteConfiguration
from envoy.extensions.filters.http.router.v3.router_pb2 import Router
from envoy.extensions.filters.network.http_connection_manager.v3.http_connection_manager_pb2 import (  # noqa: E501
    HttpConnectionManager,
    HttpFilter,
    LocalReplyConfig,
    Rds,
    ResponseMapper,
)
from google.protobuf.any_pb2 import Any
from google.protobuf.message import Message
from google.protobuf.wrappers_pb2 import BoolValue

from turnout.xds.translate.api_key_auth import build_auth_http_filters
from turnout.xds.translate.cluster import ads_config_source
from turnout.xds.translate.options import NodeGroup, listener_name, route_configuration_name
from turnout.xds.translate.policies import build_cors_http_filter, build_rbac_http_filter
from turnout.xds.translate.ratelimit import build_ratelimit_http_filters
from turnout.xds.translate.split import build_rematch_http_filter

HTTP_CONNECTION_MANAGER = "envoy.filters.network.http_connection_manager"
ROUTER_FILTER = "envoy.filters.http.router"
STAT_PREFIX = "turnout_http"
NO_ROUTE_BODY = "no route matched\n"
"""The body of Envoy's 404 when no route matches (response flag NR); empty otherwise."""


def _pack(message: Message) -> Any:
    packed = Any()
    packed.Pack(message)
    return packed


def build_http_connection_manager(opts: NodeGroup) -> HttpConnectionManager:
    return HttpConnectionManager(
        stat_prefix=STAT_PREFIX,
        codec_type=HttpConnectionManager.AUTO,
        rds=Rds(
            route_config_name=route_configuration_name(opts),
            config_source=ads_config_source(),
        ),
        # Virtual hosts list bare host names; `example.com:10000` must match them.
        strip_any_host_port=True,
        # Turnout sits behind whatever terminates client connections; trust XFF as is.
        use_remote_address=BoolValue(value=False),
        # RFC 3986 normalisation before matching, so `/a/../admin` cannot dodge a
        # route; slashes are not merged because upstreams may tell `//` apart.
        normalize_path=BoolValue(value=True),
        merge_slashes=False,
        # Say why: an empty 404 looks like the upstream's answer.
        local_reply_config=LocalReplyConfig(
            mappers=[
                ResponseMapper(
                    filter=AccessLogFilter(response_flag_filter=ResponseFlagFilter(flags=["NR"])),
                    body=DataSource(inline_string=NO_ROUTE_BODY),
                )
            ]
        ),
        # Auth filters are off unless a route turns them on (auth.py): key changes
        # travel in ECDS and never rebuild this listener.
        http_filters=[
            build_cors_http_filter(),
            *build_auth_http_filters(),
            # After authentication, as Kong runs ip-restriction after key-auth.
            build_rbac_http_filter(),
            # Re-match after authentication, for splits sticky by consumer (split.py).
            build_rematch_http_filter(),
            *build_ratelimit_http_filters(),
            # No x-envoy-* headers upstream: x-envoy-original-path would carry a key
            # taken from the URL path (auth.py) to the upstream.
            HttpFilter(name=ROUTER_FILTER, typed_config=_pack(Router(suppress_envoy_headers=True))),
        ],
    )


def build_listener(opts: NodeGroup) -> Listener:
    """`turnout_http_<port>` on `opts.address:opts.port` with one filter chain."""
    return Listener(
        name=listener_name(opts),
        address=Address(socket_address=SocketAddress(address=opts.address, port_value=opts.port)),
        filter_chains=[
            FilterChain(
                filters=[
                    Filter(
                        name=HTTP_CONNECTION_MANAGER,
                        typed_config=_pack(build_http_connection_manager(opts)),
                    )
                ]
            )
        ],
    )


def inline_discovered(
    listener: Listener,
    routes: dict[str, RouteConfiguration],
    extension_configs: dict[str, TypedExtensionConfig],
) -> None:
    """Put in the listener what it would fetch over xDS — its route configuration
    (RDS) and its filters' configs (ECDS) — for a configuration without a control
    plane (`turnout export-static`)."""
    for chain in listener.filter_chains:
        for network_filter in chain.filters:
            if network_filter.name != HTTP_CONNECTION_MANAGER:
                continue
            hcm = HttpConnectionManager()
            network_filter.typed_config.Unpack(hcm)
            hcm.route_config.CopyFrom(routes[hcm.rds.route_config_name])
            hcm.ClearField("rds")
            for http_filter in hcm.http_filters:
                if http_filter.HasField("config_discovery"):
                    config = extension_configs[http_filter.name].typed_config
                    http_filter.typed_config.CopyFrom(config)  # replaces config_discovery
            network_filter.typed_config.Pack(hcm)

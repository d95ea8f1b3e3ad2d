"""Route request policies and service upstream policies → Envoy route and cluster fields.

Owns: header changes (`request_headers_to_add/remove`, `response_headers_to_add/
remove`), path rewrite (`prefix_rewrite`, `regex_rewrite`), `host_rewrite_literal`,
the route timeout, idle timeout and retry policy, CORS (the `cors` filter's
per-route policy) and IP allow/deny lists (the `rbac` filter's) on routes; and on
clusters the upstream protocol, active HTTP health checks, outlier detection,
circuit breakers (with the retry budget) and upstream TLS with a CA.
route.py and cluster.py call the two `apply_*` functions on what they built.
"""

from envoy.config.cluster.v3.circuit_breaker_pb2 import CircuitBreakers
from envoy.config.cluster.v3.cluster_pb2 import Cluster
from envoy.config.cluster.v3.outlier_detection_pb2 import OutlierDetection
from envoy.config.core.v3.address_pb2 import CidrRange
from envoy.config.core.v3.base_pb2 import (
    DataSource,
    HeaderValue,
    HeaderValueOption,
    TransportSocket,
)
from envoy.config.core.v3.health_check_pb2 import HealthCheck
from envoy.config.core.v3.protocol_pb2 import Http2ProtocolOptions
from envoy.config.rbac.v3 import rbac_pb2 as rbac_config
from envoy.config.rbac.v3.rbac_pb2 import Permission, Policy, Principal
from envoy.config.route.v3.route_components_pb2 import FilterConfig, RetryPolicy, Route
from envoy.extensions.filters.http.cors.v3.cors_pb2 import Cors, CorsPolicy
from envoy.extensions.filters.http.rbac.v3.rbac_pb2 import RBAC, RBACPerRoute
from envoy.extensions.filters.network.http_connection_manager.v3.http_connection_manager_pb2 import (  # noqa: E501
    HttpFilter,
)
from envoy.extensions.transport_sockets.tls.v3.common_pb2 import CertificateValidationContext
from envoy.extensions.transport_sockets.tls.v3.tls_pb2 import CommonTlsContext, UpstreamTlsContext
from envoy.extensions.upstreams.http.v3.http_protocol_options_pb2 import HttpProtocolOptions
from envoy.type.matcher.v3.regex_pb2 import RegexMatchAndSubstitute, RegexMatcher
from envoy.type.matcher.v3.string_pb2 import StringMatcher
from envoy.type.v3.http_pb2 import CodecClientType
from envoy.type.v3.percent_pb2 import Percent
from google.protobuf.any_pb2 import Any
from google.protobuf.duration_pb2 import Duration
from google.protobuf.message import Message
from google.protobuf.wrappers_pb2 import BoolValue, UInt32Value

from turnout.models.policies import HeaderChanges, Protocol, RoutePolicies, ServicePolicies
from turnout.models.policies import OutlierDetection as OutlierDetectionSpec
from turnout.models.service import ServiceSpec, is_ip, parse_url

CORS_FILTER = "envoy.filters.http.cors"
RBAC_FILTER = "envoy.filters.http.rbac"
HTTP_PROTOCOL_OPTIONS = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
TLS_TRANSPORT_SOCKET = "envoy.transport_sockets.tls"


def _pack(message: Message) -> Any:
    packed = Any()
    packed.Pack(message, deterministic=True)
    return packed


def _ms(value: int) -> Duration:
    duration = Duration()
    duration.FromMilliseconds(value)
    return duration


def build_cors_http_filter() -> HttpFilter:
    """Before authentication, so a CORS preflight is answered without a key."""
    return HttpFilter(name=CORS_FILTER, typed_config=_pack(Cors()))


def build_rbac_http_filter() -> HttpFilter:
    """Off unless a route has `ip_allow`/`ip_deny` (its per-route config turns it on)."""
    return HttpFilter(name=RBAC_FILTER, typed_config=_pack(RBAC()), disabled=True)


def _cidr(value: str) -> CidrRange:
    address, _, length = value.partition("/")
    return CidrRange(address_prefix=address, prefix_len=UInt32Value(value=int(length)))


def _any_of(cidrs: list[str]) -> Principal:
    ids = [Principal(direct_remote_ip=_cidr(c)) for c in cidrs]
    return Principal(or_ids=Principal.Set(ids=ids))


def build_ip_rbac(policies: RoutePolicies) -> FilterConfig:
    """One DENY policy: the peer is in `ip_deny`, or `ip_allow` is set and it is not in it.

    The TCP peer (`direct_remote_ip`), never X-Forwarded-For, which a client writes
    itself; this is Kong's ip-restriction without trusted proxies. Deny wins over
    allow, as in Kong.
    """
    denied: list[Principal] = []
    if policies.ip_deny:
        denied.append(_any_of(policies.ip_deny))
    if policies.ip_allow:
        denied.append(Principal(not_id=_any_of(policies.ip_allow)))
    policy = Policy(
        permissions=[Permission(any=True)], principals=[Principal(or_ids=Principal.Set(ids=denied))]
    )
    rules = rbac_config.RBAC(
        action=rbac_config.RBAC.DENY, policies={"turnout-ip-restriction": policy}
    )
    return FilterConfig(config=_pack(RBACPerRoute(rbac=RBAC(rules=rules))))


def _header_options(changes: HeaderChanges) -> list[HeaderValueOption]:
    # Envoy applies these in order: `replace` before `add_if_absent`, so a header in
    # both gets Kong's result (replaced if sent, added if not), then `add` appends.
    actions = (
        (changes.replace, HeaderValueOption.OVERWRITE_IF_EXISTS),
        (changes.add_if_absent, HeaderValueOption.ADD_IF_ABSENT),
        (changes.add, HeaderValueOption.APPEND_IF_EXISTS_OR_ADD),
        (changes.set, HeaderValueOption.OVERWRITE_IF_EXISTS_OR_ADD),
    )
    return [
        HeaderValueOption(header=HeaderValue(key=k, value=v), append_action=action)
        for items, action in actions
        for k, v in sorted(items.items())
    ]


def _cors(policies: RoutePolicies) -> CorsPolicy:
    assert policies.cors is not None
    cors = policies.cors
    policy = CorsPolicy(
        allow_origin_string_match=[
            StringMatcher(safe_regex=RegexMatcher(regex=".*"))
            if origin == "*"
            else StringMatcher(exact=origin)
            for origin in cors.allow_origins
        ],
        allow_methods=", ".join(cors.allow_methods),
        allow_headers=", ".join(cors.allow_headers),
        expose_headers=", ".join(cors.expose_headers),
        allow_credentials=BoolValue(value=cors.allow_credentials),
    )
    if cors.max_age_s is not None:
        policy.max_age = str(cors.max_age_s)
    return policy


def apply_route_policies(route: Route, policies: RoutePolicies | None) -> None:
    """Apply a route's request policies to the Envoy route built by route.py."""
    if policies is None:
        return
    if policies.request_headers:
        route.request_headers_to_add.extend(_header_options(policies.request_headers))
        route.request_headers_to_remove.extend(policies.request_headers.remove)
    if policies.response_headers:
        route.response_headers_to_add.extend(_header_options(policies.response_headers))
        route.response_headers_to_remove.extend(policies.response_headers.remove)
    action = route.route
    rewrite = policies.rewrite
    if rewrite is not None and rewrite.prefix is not None:
        action.prefix_rewrite = rewrite.prefix
    elif rewrite is not None:
        assert rewrite.regex is not None and rewrite.substitution is not None
        action.regex_rewrite.CopyFrom(
            RegexMatchAndSubstitute(
                pattern=RegexMatcher(regex=rewrite.regex), substitution=rewrite.substitution
            )
        )
    if policies.host_rewrite:
        action.host_rewrite_literal = policies.host_rewrite
    if policies.timeout_ms is not None:
        action.timeout.CopyFrom(_ms(policies.timeout_ms))
    if policies.idle_timeout_ms is not None:
        action.idle_timeout.CopyFrom(_ms(policies.idle_timeout_ms))
    if policies.retries is not None:
        retry = RetryPolicy(
            retry_on=",".join(sorted(r.value for r in policies.retries.on)),
            num_retries=UInt32Value(value=policies.retries.attempts),
        )
        if policies.retries.per_try_timeout_ms is not None:
            retry.per_try_timeout.CopyFrom(_ms(policies.retries.per_try_timeout_ms))
        action.retry_policy.CopyFrom(retry)
    if policies.cors is not None:
        route.typed_per_filter_config[CORS_FILTER].CopyFrom(_pack(_cors(policies)))
    if policies.ip_allow or policies.ip_deny:
        route.typed_per_filter_config[RBAC_FILTER].CopyFrom(_pack(build_ip_rbac(policies)))


def _tls(service: ServiceSpec, policies: ServicePolicies) -> TransportSocket:
    sni = policies.tls.sni if policies.tls else None
    if sni is None and service.url is not None:
        host = parse_url(service.url).host
        sni = None if is_ip(host) else host.rstrip(".")
    common = CommonTlsContext()
    if policies.tls is not None and policies.tls.ca_pem is not None:
        common.validation_context.CopyFrom(
            CertificateValidationContext(trusted_ca=DataSource(inline_string=policies.tls.ca_pem))
        )
    if policies.protocol is not Protocol.HTTP1:
        common.alpn_protocols.append("h2")
    tls = UpstreamTlsContext(sni=sni or "", common_tls_context=common)
    return TransportSocket(name=TLS_TRANSPORT_SOCKET, typed_config=_pack(tls))


def _outlier_detection(outlier: OutlierDetectionSpec) -> OutlierDetection:
    """Only the consecutive counters the spec names eject (Envoy's enforcing_* at 100 or 0).

    Envoy enables success-rate ejection by default (enforcing 100) and gateway
    failures off (enforcing 0); both are set so the cluster does what the spec says.
    """
    detection = OutlierDetection(
        consecutive_5xx=UInt32Value(value=max(1, outlier.consecutive_5xx)),
        enforcing_consecutive_5xx=UInt32Value(value=100 if outlier.consecutive_5xx else 0),
        enforcing_success_rate=UInt32Value(value=0),
        interval=_ms(outlier.interval_ms),
        base_ejection_time=_ms(outlier.base_ejection_time_ms),
        max_ejection_percent=UInt32Value(value=outlier.max_ejection_percent),
    )
    gateway = outlier.consecutive_gateway_failure
    if gateway is not None:
        detection.consecutive_gateway_failure.value = gateway
        detection.enforcing_consecutive_gateway_failure.value = 100
    if outlier.split_local_origin_errors:
        detection.split_external_local_origin_errors = True
        local = outlier.consecutive_local_origin_failure
        if local is not None:
            detection.consecutive_local_origin_failure.value = local
        # Envoy counts local-origin failures with enforcing 100 by default.
        detection.enforcing_consecutive_local_origin_failure.value = 100 if local else 0
        detection.enforcing_local_origin_success_rate.value = 0
    return detection


def apply_service_policies(cluster: Cluster, service: ServiceSpec) -> None:
    """Apply a service's upstream policies to the cluster built by cluster.py."""
    policies = service.policies
    if policies is None:
        return
    h2 = policies.protocol is not Protocol.HTTP1
    if h2:
        options = HttpProtocolOptions()
        options.explicit_http_config.http2_protocol_options.CopyFrom(Http2ProtocolOptions())
        cluster.typed_extension_protocol_options[HTTP_PROTOCOL_OPTIONS].CopyFrom(_pack(options))
    if policies.tls is not None or (h2 and service.scheme == "https"):
        cluster.transport_socket.CopyFrom(_tls(service, policies))
    check = policies.health_check
    if check is not None:
        cluster.health_checks.append(
            HealthCheck(
                timeout=_ms(check.timeout_ms),
                interval=_ms(check.interval_ms),
                # Envoy probes a cluster without recent traffic every 60 s unless
                # told otherwise; `interval_ms` is the interval, traffic or not.
                no_traffic_interval=_ms(check.interval_ms),
                unhealthy_threshold=UInt32Value(value=check.unhealthy_threshold),
                healthy_threshold=UInt32Value(value=check.healthy_threshold),
                http_health_check=HealthCheck.HttpHealthCheck(
                    path=check.path,
                    codec_client_type=CodecClientType.HTTP2 if h2 else CodecClientType.HTTP1,
                ),
            )
        )
    outlier = policies.outlier_detection
    if outlier is not None:
        cluster.outlier_detection.CopyFrom(_outlier_detection(outlier))
    breakers = policies.circuit_breakers
    if breakers is not None:
        thresholds = CircuitBreakers.Thresholds()
        for field in ("max_connections", "max_pending_requests", "max_requests", "max_retries"):
            value = getattr(breakers, field)
            if value is not None:
                getattr(thresholds, field).value = value
        if breakers.retry_budget_percent is not None:
            thresholds.retry_budget.budget_percent.CopyFrom(
                Percent(value=breakers.retry_budget_percent)
            )
        cluster.circuit_breakers.thresholds.append(thresholds)

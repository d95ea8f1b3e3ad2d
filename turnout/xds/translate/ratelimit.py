"""Route and consumer `limits` → Envoy's `local_ratelimit` and `ratelimit` filters.

Owns the two rate limit filters of every listener (off unless a route turns them
on, like the auth filters, so limit changes travel in RDS) and the per-route
configuration. Runs after `api_key_auth`, which puts the consumer's name in the
route's `consumer_header`: that header keys every per-consumer bucket and counter.

Bursts (`local_ratelimit`, in each Envoy)
-----------------------------------------
One `rate_limits` entry per window, producing the descriptor
`[consumer=<name>, burst=<window>]` (per consumer, auth routes) or `[burst=<window>]`
(route as a whole). The route's burst is a dynamic descriptor (`consumer=""`, one
bucket per consumer seen, up to MAX_DYNAMIC_DESCRIPTORS); a consumer with its own
burst gets an exact descriptor, which Envoy prefers over the dynamic one. Its own
burst replaces the route's in every window: a route window the consumer has no
limit for gets an exact descriptor with an unlimited bucket, so the route's
dynamic one never applies to that consumer. Envoy requires a default bucket
in a per-route config; it is unlimited and serves the requests no descriptor
matches (a consumer without a burst of its own on a route without one).

Headers
-------
Each filter adds `x-ratelimit-limit/-remaining/-reset` to every response it saw:
`local_ratelimit` from the bucket that refused (or the tightest one), `ratelimit`
from the rate limit service's answer. A request refused by a quota has passed the
burst, so both would speak and disagree. The quota's come first in the response
(the filter nearer the router encodes first), so on a route with both the
`header_mutation` filter (before both) keeps only the first value of each header:
the limit that refused, or on a success the quota's. A burst refusal never reaches
the quota filter and carries the burst's alone. The unlimited default bucket
reports `x-ratelimit-limit: 1000000000`, which is no limit at all: a listener filter
just before `local_ratelimit` (a `header_mutation` behind a `match_delegate`
matcher on the response header) removes the three headers when that is all they
say.

Quotas (`ratelimit`, Turnout's rate limit service, counters in Redis)
---------------------------------------------------------------------
The limit travels inside the descriptor as the entry `quota=<requests>/<window>`,
so the rate limit service needs no copy of the declaration and scales alone:

- route quota, auth route: `[route=<route>, consumer=<name>, quota=N/window]`;
- route quota, open route: `[route=<route>, quota=N/window]`; routes whose
  `limits.shared` is S count together under `route=shared:S`;
- consumer quota (all routes together): `[consumer=<name>, quota=N/window]`, made
  by a `header_value_match` on the consumer header, one per consumer with a quota.
"""

from envoy.config.common.mutation_rules.v3.mutation_rules_pb2 import HeaderMutation as Mutation
from envoy.config.core.v3.base_pb2 import HeaderValue, HeaderValueOption, RuntimeFractionalPercent
from envoy.config.core.v3.extension_pb2 import TypedExtensionConfig
from envoy.config.core.v3.grpc_service_pb2 import GrpcService
from envoy.config.ratelimit.v3.rls_pb2 import RateLimitServiceConfig
from envoy.config.route.v3.route_components_pb2 import (
    FilterConfig,
    HeaderMatcher,
    RateLimit,
    Route,
)
from envoy.extensions.common.matching.v3.extension_matcher_pb2 import ExtensionWithMatcher
from envoy.extensions.common.ratelimit.v3.ratelimit_pb2 import (
    LocalRateLimitDescriptor,
    RateLimitDescriptor,
    XRateLimitHeadersRFCVersion,
)
from envoy.extensions.filters.common.matcher.action.v3.skip_action_pb2 import SkipFilter
from envoy.extensions.filters.http.header_mutation.v3.header_mutation_pb2 import (
    HeaderMutation,
    HeaderMutationPerRoute,
    Mutations,
)
from envoy.extensions.filters.http.local_ratelimit.v3.local_rate_limit_pb2 import LocalRateLimit
from envoy.extensions.filters.http.ratelimit.v3.rate_limit_pb2 import (
    RateLimit as RateLimitFilter,
)
from envoy.extensions.filters.http.ratelimit.v3.rate_limit_pb2 import RateLimitPerRoute
from envoy.extensions.filters.network.http_connection_manager.v3.http_connection_manager_pb2 import (  # noqa: E501
    HttpFilter,
)
from envoy.type.matcher.v3.http_inputs_pb2 import HttpResponseHeaderMatchInput
from envoy.type.matcher.v3.string_pb2 import StringMatcher
from envoy.type.v3.percent_pb2 import FractionalPercent
from envoy.type.v3.token_bucket_pb2 import TokenBucket
from google.protobuf.any_pb2 import Any
from google.protobuf.duration_pb2 import Duration
from google.protobuf.message import Message
from google.protobuf.wrappers_pb2 import BoolValue, UInt32Value
from xds.core.v3.extension_pb2 import TypedExtensionConfig as XdsTypedExtensionConfig
from xds.type.matcher.v3.matcher_pb2 import Matcher
from xds.type.matcher.v3.string_pb2 import StringMatcher as XdsStringMatcher

from turnout.models.declaration import Declaration
from turnout.models.limits import WINDOW_SECONDS, Limit, Window
from turnout.models.route import RouteSpec
from turnout.xds.translate.api_key_auth import HEADER_MUTATION_FILTER

LOCAL_RATELIMIT_FILTER = "envoy.filters.http.local_ratelimit"
RATELIMIT_FILTER = "envoy.filters.http.ratelimit"
RATELIMIT_CLUSTER = "_turnout_ratelimit"
"""Bootstrap cluster of the rate limit service (`turnout serve` or `turnout ratelimit`)."""
RATELIMIT_DOMAIN = "turnout"
LOCAL_STAT_PREFIX = "turnout_burst"
MAX_DYNAMIC_DESCRIPTORS = 100_000
RATELIMIT_TIMEOUT_MS = 200
QUOTA_KEY, BURST_KEY, ROUTE_KEY, CONSUMER_KEY = "quota", "burst", "route", "consumer"
RATELIMIT_HEADERS = ("x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset")
_UNLIMITED = 1_000_000_000


def _pack(message: Message) -> Any:
    packed = Any()
    packed.Pack(message, deterministic=True)
    return packed


def _all_requests() -> RuntimeFractionalPercent:
    return RuntimeFractionalPercent(
        default_value=FractionalPercent(numerator=100, denominator=FractionalPercent.HUNDRED)
    )


PLACEHOLDER_FILTER = "turnout.ratelimit_placeholder"
"""Drops the x-ratelimit-* headers of the unlimited default bucket (docstring)."""


def _placeholder_filter() -> HttpFilter:
    remove = HeaderMutation(
        mutations=Mutations(response_mutations=[Mutation(remove=h) for h in RATELIMIT_HEADERS])
    )
    only_placeholder = Matcher.MatcherList.Predicate.SinglePredicate(
        input=XdsTypedExtensionConfig(
            name="x-ratelimit-limit",
            typed_config=_pack(HttpResponseHeaderMatchInput(header_name="x-ratelimit-limit")),
        ),
        value_match=XdsStringMatcher(exact=str(_UNLIMITED)),
    )
    skip = Matcher.OnMatch(
        action=XdsTypedExtensionConfig(name="skip", typed_config=_pack(SkipFilter()))
    )
    matcher = Matcher(
        matcher_list=Matcher.MatcherList(
            matchers=[
                Matcher.MatcherList.FieldMatcher(
                    predicate=Matcher.MatcherList.Predicate(
                        not_matcher=Matcher.MatcherList.Predicate(single_predicate=only_placeholder)
                    ),
                    on_match=skip,
                )
            ]
        )
    )
    config = ExtensionWithMatcher(
        xds_matcher=matcher,
        extension_config=TypedExtensionConfig(
            name="envoy.filters.http.header_mutation", typed_config=_pack(remove)
        ),
    )
    return HttpFilter(name=PLACEHOLDER_FILTER, typed_config=_pack(config))


def build_ratelimit_http_filters() -> list[HttpFilter]:
    """The limit filters of every listener, after auth, off unless a route enables them."""
    local = LocalRateLimit(stat_prefix=LOCAL_STAT_PREFIX)
    quota = RateLimitFilter(
        domain=RATELIMIT_DOMAIN,
        # The service itself decides what Redis being down means (fail open or
        # closed); Envoy fails open only when the service cannot be reached.
        failure_mode_deny=False,
        timeout=Duration(nanos=RATELIMIT_TIMEOUT_MS * 1_000_000),
        enable_x_ratelimit_headers=XRateLimitHeadersRFCVersion.DRAFT_VERSION_03,
        rate_limit_service=RateLimitServiceConfig(
            grpc_service=GrpcService(
                envoy_grpc=GrpcService.EnvoyGrpc(cluster_name=RATELIMIT_CLUSTER)
            ),
            transport_api_version=2,  # V3
        ),
    )
    return [
        _placeholder_filter(),
        HttpFilter(name=LOCAL_RATELIMIT_FILTER, typed_config=_pack(local), disabled=True),
        HttpFilter(name=RATELIMIT_FILTER, typed_config=_pack(quota), disabled=True),
    ]


def _bucket(limit: Limit) -> TokenBucket:
    return TokenBucket(
        max_tokens=limit.requests,
        tokens_per_fill=UInt32Value(value=limit.requests),
        fill_interval=Duration(seconds=WINDOW_SECONDS[limit.per]),
    )


def _unlimited(window: Window) -> TokenBucket:
    """A bucket that never runs dry: for a window a consumer's own burst leaves open.
    Envoy takes tokens from the slowest-filling bucket first and reports that one, so
    this one is never reported while the consumer's own limit matches too."""
    return TokenBucket(
        max_tokens=_UNLIMITED,
        tokens_per_fill=UInt32Value(value=_UNLIMITED),
        fill_interval=Duration(seconds=WINDOW_SECONDS[window]),
    )


def _generic(key: str, value: str) -> RateLimit.Action:
    return RateLimit.Action(
        generic_key=RateLimit.Action.GenericKey(descriptor_key=key, descriptor_value=value)
    )


def _consumer_from(header: str) -> RateLimit.Action:
    return RateLimit.Action(
        request_headers=RateLimit.Action.RequestHeaders(
            header_name=header, descriptor_key=CONSUMER_KEY
        )
    )


def _consumer_is(header: str, name: str) -> RateLimit.Action:
    return RateLimit.Action(
        header_value_match=RateLimit.Action.HeaderValueMatch(
            descriptor_key=CONSUMER_KEY,
            descriptor_value=name,
            headers=[HeaderMatcher(name=header, string_match=StringMatcher(exact=name))],
        )
    )


def _entries(*pairs: tuple[str, str]) -> list[RateLimitDescriptor.Entry]:
    return [RateLimitDescriptor.Entry(key=k, value=v) for k, v in pairs]


def quota_value(limit: Limit) -> str:
    """`<requests>/<window>`: the limit as the rate limit service reads it."""
    return f"{limit.requests}/{limit.per.value}"


def build_local_ratelimit(route: RouteSpec, decl: Declaration) -> LocalRateLimit | None:
    """The route's burst limits, or None when neither it nor a consumer has one."""
    route_burst = route.limits.burst if route.limits else []
    authed = route.auth is not None and route.auth.required
    consumer_bursts = (
        {c.name: c.limits.burst for c in decl.consumers.values() if c.limits and c.limits.burst}
        if authed
        else {}
    )
    if not route_burst and not consumer_bursts:
        return None
    config = LocalRateLimit(
        stat_prefix=LOCAL_STAT_PREFIX,
        token_bucket=_unlimited(Window.SECOND),
        filter_enabled=_all_requests(),
        filter_enforced=_all_requests(),
        always_consume_default_token_bucket=BoolValue(value=False),
        enable_x_ratelimit_headers=XRateLimitHeadersRFCVersion.DRAFT_VERSION_03,
    )
    if not authed:
        for limit in route_burst:
            config.rate_limits.append(RateLimit(actions=[_generic(BURST_KEY, limit.per.value)]))
            config.descriptors.append(
                LocalRateLimitDescriptor(
                    entries=_entries((BURST_KEY, limit.per.value)), token_bucket=_bucket(limit)
                )
            )
        return config
    assert route.auth is not None
    header = route.auth.consumer_header
    windows = sorted(
        {limit.per for limit in route_burst}
        | {limit.per for limits in consumer_bursts.values() for limit in limits},
        key=lambda w: WINDOW_SECONDS[w],
    )
    for window in windows:
        config.rate_limits.append(
            RateLimit(actions=[_consumer_from(header), _generic(BURST_KEY, window.value)])
        )
    for limit in route_burst:
        config.descriptors.append(
            LocalRateLimitDescriptor(
                entries=_entries((CONSUMER_KEY, ""), (BURST_KEY, limit.per.value)),
                token_bucket=_bucket(limit),
            )
        )
    if route_burst:
        config.max_dynamic_descriptors.value = MAX_DYNAMIC_DESCRIPTORS
    for name in sorted(consumer_bursts):
        own = {limit.per: limit for limit in consumer_bursts[name]}
        for window in windows:
            limit = own.get(window)
            if limit is None and window not in {r.per for r in route_burst}:
                continue
            config.descriptors.append(
                LocalRateLimitDescriptor(
                    entries=_entries((CONSUMER_KEY, name), (BURST_KEY, window.value)),
                    token_bucket=_unlimited(window) if limit is None else _bucket(limit),
                )
            )
    return config


def consumer_quota_entries(name: str, limit: Limit) -> list[tuple[str, str]]:
    """The descriptor Envoy sends for consumer `name`'s quota `limit` (the actions
    `build_quota_rate_limits` gives it), as (key, value) entries: what the
    dashboard reads the counter of (`turnout.ratelimit.usage`)."""
    return [(CONSUMER_KEY, name), (QUOTA_KEY, quota_value(limit))]


def build_quota_rate_limits(route: RouteSpec, decl: Declaration) -> list[RateLimit]:
    """The route's descriptors for the rate limit service (empty: no quota applies)."""
    authed = route.auth is not None and route.auth.required
    out = []
    for limit in route.limits.quota if route.limits else []:
        # A name cannot hold ":", so a shared counter never meets a route's own.
        counter = f"shared:{route.limits.shared}" if route.limits.shared else route.name
        actions = [_generic(ROUTE_KEY, counter)]
        if authed:
            assert route.auth is not None
            actions.append(_consumer_from(route.auth.consumer_header))
        actions.append(_generic(QUOTA_KEY, quota_value(limit)))
        out.append(RateLimit(actions=actions))
    if authed:
        assert route.auth is not None
        for name in sorted(decl.consumers):
            consumer = decl.consumers[name]
            for limit in consumer.limits.quota if consumer.limits else []:
                out.append(
                    RateLimit(
                        actions=[
                            _consumer_is(route.auth.consumer_header, name),
                            _generic(QUOTA_KEY, quota_value(limit)),
                        ]
                    )
                )
    return out


def _keep_first_ratelimit_headers(route: Route) -> None:
    """Have `header_mutation` keep the first value of each x-ratelimit-* header (the
    module docstring), merged into the route's own mutations (auth.py's)."""
    per_route = HeaderMutationPerRoute()
    existing = route.typed_per_filter_config.get(HEADER_MUTATION_FILTER)
    if existing is not None:
        wrapper = FilterConfig()
        existing.Unpack(wrapper)
        wrapper.config.Unpack(per_route)
    for header in RATELIMIT_HEADERS:
        per_route.mutations.response_mutations.append(
            Mutation(
                append=HeaderValueOption(
                    # %RESP(h)% is the header's first value.
                    header=HeaderValue(key=header, value=f"%RESP({header})%"),
                    append_action=HeaderValueOption.OVERWRITE_IF_EXISTS,
                )
            )
        )
    route.typed_per_filter_config[HEADER_MUTATION_FILTER].CopyFrom(
        _pack(FilterConfig(config=_pack(per_route)))
    )


def apply_route_limits(route: Route, spec: RouteSpec, decl: Declaration) -> None:
    """Turn on the limit filters for `route` (built by route.py) where limits apply."""
    local = build_local_ratelimit(spec, decl)
    if local is not None:
        route.typed_per_filter_config[LOCAL_RATELIMIT_FILTER].CopyFrom(
            _pack(FilterConfig(config=_pack(local)))
        )
    quotas = build_quota_rate_limits(spec, decl)
    if quotas:
        per_route = RateLimitPerRoute(rate_limits=quotas)
        route.typed_per_filter_config[RATELIMIT_FILTER].CopyFrom(
            _pack(FilterConfig(config=_pack(per_route)))
        )
    if local is not None and quotas:
        _keep_first_ratelimit_headers(route)

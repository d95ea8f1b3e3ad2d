"""A split's pins and stickiness → extra route entries and a hash policy.

Owns what a split adds to a route entry beyond its weights; `route.py` builds the
entry (match + weighted action) and passes it here.

Pins: each pin becomes its own route entry placed right BEFORE the weighted one,
with the same match plus one more condition, and a plain `cluster` action. Envoy
takes the first matching entry, so a pinned request never reaches the weighted
choice, whatever the target's weight (0 included: its cluster always exists).
- header pin → `HeaderMatcher(name, exact value)`;
- cookie pin → a `cookie` header matcher with an RE2 regex matching `name=value`
  as one whole cookie pair (Envoy has no cookie matcher on routes).
Pin entry names: `<entry>~pin<i>`, i the pin's index in the split.

Stickiness: `hash_policy` on the action (header or cookie value) and
`weighted_clusters.use_hash_policy: true` (Envoy >= 1.31), so the weighted choice
is made from the request's hash instead of a random number: the same value always
lands on the same target while the weights hold. Requests without the header or
cookie fall back to a random choice. Sticky by consumer hashes the route's
`auth.consumer_header`, which `api_key_auth` sets (overwriting whatever the client
sent). Envoy picks the weighted cluster when it matches the route, which happens
before authentication (the auth filter's per-route config needs the route), so a
Lua filter placed right after `api_key_auth`, off unless a sticky-by-consumer route
turns it on, clears the route cache: the router matches again, now with the
authenticated consumer's header, and hashes it. Pins by consumer match that header
the same way: every entry of the route carries the Lua filter, so a client that
forges the header may land on a pin entry first (same auth config), but the
re-match after authentication decides. Without the route's auth there is
nothing to hash and the choice stays random.
"""

from envoy.config.core.v3.base_pb2 import DataSource
from envoy.config.route.v3.route_components_pb2 import (
    FilterConfig,
    HeaderMatcher,
    Route,
    RouteAction,
)
from envoy.extensions.filters.http.lua.v3.lua_pb2 import Lua, LuaPerRoute
from envoy.extensions.filters.network.http_connection_manager.v3.http_connection_manager_pb2 import (  # noqa: E501
    HttpFilter,
)
from envoy.type.matcher.v3.regex_pb2 import RegexMatcher
from envoy.type.matcher.v3.string_pb2 import StringMatcher
from google.protobuf.any_pb2 import Any

from turnout.models.regex import cookie_pair_regex
from turnout.models.route_auth import RouteAuth
from turnout.models.split import SplitPin, SplitSpec

REMATCH_FILTER = "envoy.filters.http.lua"
"""Clears the route cache after authentication (sticky by consumer); off by default."""
_REMATCH_LUA = "function envoy_on_request(handle)\n  handle:clearRouteCache()\nend\n"


def _pack(message: Lua | LuaPerRoute | FilterConfig) -> Any:
    packed = Any()
    packed.Pack(message)
    return packed


def build_rematch_http_filter() -> HttpFilter:
    """The listener's Lua filter (after the auth filters), disabled unless a route enables it."""
    return HttpFilter(name=REMATCH_FILTER, typed_config=_pack(Lua()), disabled=True)


def _rematch_per_route() -> Any:
    code = LuaPerRoute(source_code=DataSource(inline_string=_REMATCH_LUA))
    return _pack(FilterConfig(config=_pack(code)))


def pin_matcher(pin: SplitPin, auth: RouteAuth | None = None) -> HeaderMatcher:
    """The extra match of a pin; a consumer pin matches the route's consumer header."""
    if pin.consumer is not None:
        header = auth.consumer_header if auth is not None else ""
        return HeaderMatcher(name=header, string_match=StringMatcher(exact=pin.consumer))
    if pin.header is not None:
        return HeaderMatcher(name=pin.header, string_match=StringMatcher(exact=pin.value or ""))
    regex = RegexMatcher(regex=cookie_pair_regex(pin.cookie or "", pin.value or ""))
    return HeaderMatcher(name="cookie", string_match=StringMatcher(safe_regex=regex))


def build_pin_route(
    weighted: Route, pin: SplitPin, index: int, auth: RouteAuth | None = None
) -> Route:
    route = Route()
    route.CopyFrom(weighted)
    route.name = f"{weighted.name}~pin{index}"
    route.match.headers.append(pin_matcher(pin, auth))
    route.route.ClearField("weighted_clusters")
    route.route.ClearField("hash_policy")
    route.route.cluster = pin.service
    return route


def apply_sticky(weighted: Route, split: SplitSpec, auth: RouteAuth | None = None) -> None:
    """Make the weighted choice hash-based; `auth` is the route's (for sticky by consumer)."""
    sticky = split.sticky
    if sticky is None:
        return
    policy = RouteAction.HashPolicy()
    if sticky.consumer:
        if auth is None or not auth.required:
            return  # refused on write; a declaration without it stays random
        policy.header.header_name = auth.consumer_header
    elif sticky.header is not None:
        policy.header.header_name = sticky.header
    else:
        policy.cookie.name = sticky.cookie or ""
    weighted.route.hash_policy.append(policy)
    weighted.route.weighted_clusters.use_hash_policy.value = True


def needs_rematch(split: SplitSpec | None, auth: RouteAuth | None) -> bool:
    """Whether the route's entries match again after authentication (by consumer)."""
    if split is None or auth is None or not auth.required:
        return False
    return any(p.consumer for p in split.pins) or bool(split.sticky and split.sticky.consumer)


def split_routes(
    weighted: Route, split: SplitSpec | None, auth: RouteAuth | None = None
) -> list[Route]:
    """The route entries for one route entry under `split`: pins first, then the split."""
    if split is None:
        return [weighted]
    apply_sticky(weighted, split, auth)
    authenticated = auth is not None and auth.required
    if needs_rematch(split, auth):
        # On every entry of the route (pins copy it): the first match may land on any
        # of them, on the headers the client sent; all carry the same auth config.
        weighted.typed_per_filter_config[REMATCH_FILTER].CopyFrom(_rematch_per_route())
    pins = [
        build_pin_route(weighted, pin, i, auth)
        for i, pin in enumerate(split.pins)
        if pin.consumer is None or authenticated  # refused on write; never match unverified
    ]
    return [*pins, weighted]

"""Route `auth` → Envoy's `api_key_auth`: credentials over ECDS, the rest per route.

Owns the HTTP filters that authentication needs in the listener, the extension
config holding every credential, and the per-route configuration that turns the
filters on. Knows nothing of clusters.

Why ECDS for the credentials
----------------------------
Keys change all the time (a developer portal issues and revokes them), and a
listener change drains every connection. So the listener carries the auth filters
once, `disabled`, for every declaration alike; `api_key_auth` takes its config
(the credentials) from the extension config `envoy.filters.http.api_key_auth`
delivered over ECDS on the ADS stream. Envoy applies a new extension config to the
next request without touching the listener, so a key change is one ECDS update of
the credential list, whatever the number of routes. Each authenticated route
enables the filter with `typed_per_filter_config` holding an `ApiKeyAuthPerRoute`
with only its own part (key sources, allowed consumers, forwarding): a per-route
config without `credentials` uses the filter's. (Credentials per route would put
every key in every authenticated route: 3.7 MB per route at 100,000 keys.)

Key sources
-----------
header → `header`; query → `query`; path template → Envoy moves the segment into
the header `x-turnout-path-key` before authentication, without Lua:

1. `header_to_metadata` reads `:path`, and a `regex_value_rewrite` keeps only the
   `{key}` segment, stored as dynamic metadata `turnout.path_key`;
2. `header_mutation` removes any client-sent `x-turnout-path-key`, then sets it to
   `%DYNAMIC_METADATA(turnout:path_key)%`;
3. `api_key_auth` reads that header like any other; `hide_credentials` removes
   every key source (headers, query parameter) before the request goes upstream;
4. the route's `regex_rewrite` removes the segment from the path. The router
   would put the original path in `x-envoy-original-path`; the listener's router
   sets `suppress_envoy_headers` (a route's `request_headers_to_remove` runs
   before the router adds it, so it cannot).

Combining sources
-----------------
`api_key_auth` takes the first of its `key_sources` PRESENT in the request. Any
path matches a template (`/forecast/today` has a segment where the key would be),
so a path source would shadow every header and query source, and its cut would
hit requests authenticated by a header. So on a route with a path source and
others, the path is read only when no header or query source carries a key, and
the (route, path) entry becomes several Envoy entries (`build_auth_routes`):

1. one entry per header/query source, matching on that header or query parameter
   being present (`present_match`), authenticating from the header and query
   sources in the route's order (Envoy then takes the first present), no cut;
2. the last entry, without extra conditions: the path source only, copied into
   `x-turnout-path-key` and cut from the path as above.

A split sticky or pinned by consumer makes the router match again after
authentication (split.py), when `hide_credentials` has removed the header or
query key: that second match would land on the path entry and cut a segment. So
on such routes the presence entries also set `x-turnout-key-from` (header_mutation,
before auth) and one entry matching it comes first; every entry removes it before
the request goes upstream. A client forging it lands there before authentication
and is asked for a header or query key: it can only lose.

Allowed consumers: `allow_consumers` plus every member of `allow_groups` becomes
`allowed_clients` (403 for a valid key of anyone else); the consumer's name goes
upstream in `consumer_header`.
"""

from envoy.config.common.mutation_rules.v3.mutation_rules_pb2 import HeaderMutation as Mutation
from envoy.config.core.v3.base_pb2 import DataSource, HeaderValue, HeaderValueOption
from envoy.config.core.v3.config_source_pb2 import ExtensionConfigSource
from envoy.config.core.v3.extension_pb2 import TypedExtensionConfig
from envoy.config.route.v3.route_components_pb2 import (
    FilterConfig,
    HeaderMatcher,
    QueryParameterMatcher,
    Route,
)
from envoy.extensions.filters.http.api_key_auth.v3.api_key_auth_pb2 import (
    ApiKeyAuth,
    ApiKeyAuthPerRoute,
    Forwarding,
    KeySource,
)
from envoy.extensions.filters.http.header_mutation.v3.header_mutation_pb2 import (
    HeaderMutation,
    HeaderMutationPerRoute,
    Mutations,
)
from envoy.extensions.filters.http.header_to_metadata.v3.header_to_metadata_pb2 import (
    Config as HeaderToMetadata,
)
from envoy.extensions.filters.http.lua.v3.lua_pb2 import Lua, LuaPerRoute
from envoy.extensions.filters.network.http_connection_manager.v3.http_connection_manager_pb2 import (  # noqa: E501
    HttpFilter,
)
from envoy.type.matcher.v3.regex_pb2 import RegexMatchAndSubstitute, RegexMatcher
from google.protobuf.any_pb2 import Any
from google.protobuf.message import Message
from google.protobuf.struct_pb2 import Struct

from turnout.models.declaration import Declaration
from turnout.models.route_auth import KeySource as KeySourceSpec
from turnout.models.route_auth import RouteAuth
from turnout.xds.translate.cluster import ads_config_source
from turnout.xds.translate.credentials import field_head, serialized_credentials

API_KEY_AUTH_FILTER = "envoy.filters.http.api_key_auth"
"""The filter's name in the listener, in routes, and of its ECDS resource."""
API_KEY_AUTH_TYPE = "type.googleapis.com/" + ApiKeyAuth.DESCRIPTOR.full_name
HEADER_TO_METADATA_FILTER = "envoy.filters.http.header_to_metadata"
HEADER_MUTATION_FILTER = "envoy.filters.http.header_mutation"
PATH_KEY_HEADER = "x-turnout-path-key"
KEY_FROM_HEADER = "x-turnout-key-from"
"""Marks a request authenticated from a header or query key, for the second match."""
KONG_HEADERS_FILTER = "envoy.filters.http.lua.kong_consumer"
"""Lua after `api_key_auth` setting Kong's consumer headers; its code comes over ECDS."""
LUA_TYPE = "type.googleapis.com/" + Lua.DESCRIPTOR.full_name
KONG_HEADERS_CODE = "kong"
PATH_KEY_NAMESPACE = "turnout"
PATH_KEY_METADATA = "path_key"
NOBODY = "-"
"""An `allowed_clients` entry no consumer can have (names start with a letter or
digit): an empty list would mean "everyone"."""

_RE2_SPECIAL = frozenset("\\.+*?()|[]{}^$")


def _pack(message: Message) -> Any:
    packed = Any()
    packed.Pack(message, deterministic=True)
    return packed


def _re2_escape(text: str) -> str:
    return "".join("\\" + c if c in _RE2_SPECIAL else c for c in text)


def build_auth_http_filters() -> list[HttpFilter]:
    """The auth filters of every listener, in order, all off unless a route enables them."""
    return [
        HttpFilter(
            name=HEADER_TO_METADATA_FILTER, typed_config=_pack(HeaderToMetadata()), disabled=True
        ),
        HttpFilter(
            name=HEADER_MUTATION_FILTER, typed_config=_pack(HeaderMutation()), disabled=True
        ),
        HttpFilter(
            name=API_KEY_AUTH_FILTER,
            config_discovery=ExtensionConfigSource(
                config_source=ads_config_source(), type_urls=[API_KEY_AUTH_TYPE]
            ),
            disabled=True,
        ),
        HttpFilter(
            name=KONG_HEADERS_FILTER,
            config_discovery=ExtensionConfigSource(
                config_source=ads_config_source(), type_urls=[LUA_TYPE]
            ),
            disabled=True,
        ),
    ]


def allowed_clients(auth: RouteAuth, decl: Declaration) -> list[str]:
    """The consumer names allowed on the route; empty when everyone with a key is."""
    if not auth.restricted:
        return []
    groups = set(auth.allow_groups)
    names = set(auth.allow_consumers) | {
        c.name for c in decl.consumers.values() if groups & set(c.groups)
    }
    return sorted(names) or [NOBODY]


def _key_source(source: KeySourceSpec) -> KeySource:
    if source.header is not None:
        return KeySource(header=source.header)
    if source.query is not None:
        return KeySource(query=source.query)
    return KeySource(header=PATH_KEY_HEADER)


def build_api_key_auth_config(decl: Declaration) -> TypedExtensionConfig:
    """The ECDS resource: `api_key_auth` with every credential of the declaration.

    Every node group gets all of them, even one where no route checks keys yet: a
    group losing its last authenticated route would otherwise get an empty list
    before its routes stop asking for keys (ECDS goes before RDS), and valid keys
    would meet 401 in between."""
    config = Any(type_url=API_KEY_AUTH_TYPE, value=serialized_credentials(decl.api_keys))
    return TypedExtensionConfig(name=API_KEY_AUTH_FILTER, typed_config=config)


def serialized_api_key_auth_config(decl: Declaration) -> bytes:
    """`build_api_key_auth_config(decl)` serialized, written as bytes around the spliced
    credentials in one join: building the messages, or concatenating, copies the
    3.5 MB list several more times (~15 ms per key change on a loaded host).
    TypedExtensionConfig is `name` (1), `typed_config` (2); Any is `type_url` (1),
    `value` (2, left out when empty)."""
    credentials = serialized_credentials(decl.api_keys)
    name, type_url = API_KEY_AUTH_FILTER.encode(), API_KEY_AUTH_TYPE.encode()
    value = [field_head(2, len(credentials)), credentials] if credentials else []
    packed = [field_head(1, len(type_url)), type_url, *value]
    size = sum(map(len, packed))
    return b"".join([field_head(1, len(name)), name, field_head(2, size), *packed])


def build_api_key_auth_per_route(auth: RouteAuth, decl: Declaration) -> ApiKeyAuthPerRoute:
    """The route's own part; the credentials come from the filter's config (ECDS)."""
    return ApiKeyAuthPerRoute(
        key_sources=[_key_source(s) for s in auth.key_sources],
        allowed_clients=allowed_clients(auth, decl),
        forwarding=Forwarding(header=auth.consumer_header, hide_credentials=True),
    )


def path_key_regex(source: KeySourceSpec) -> str:
    """RE2 for the whole `:path` (query included) capturing the key segment as \\1."""
    prefix, suffix = _re2_escape(source.path_prefix), _re2_escape(source.path_suffix)
    return f"^{prefix}/([^/?]+){suffix}(?:[/?].*)?$"


def path_key_rewrite(source: KeySourceSpec) -> RegexMatchAndSubstitute:
    """Remove the key segment from the path sent upstream (the query string is kept)."""
    prefix, suffix = source.path_prefix, source.path_suffix
    if not prefix and not suffix:
        return RegexMatchAndSubstitute(pattern=RegexMatcher(regex="^/[^/]+/?"), substitution="/")
    return RegexMatchAndSubstitute(
        pattern=RegexMatcher(regex=f"^{_re2_escape(prefix)}/[^/]+{_re2_escape(suffix)}"),
        substitution=(prefix + suffix).replace("\\", "\\\\"),
    )


def _enable(config: Message | Any) -> Any:
    """Wrap a per-route config so that it also turns on a filter disabled by default."""
    inner = config if isinstance(config, Any) else _pack(config)
    return _pack(FilterConfig(config=inner))


def _path_key_filters(source: KeySourceSpec) -> dict[str, Any]:
    to_metadata = HeaderToMetadata(
        request_rules=[
            HeaderToMetadata.Rule(
                header=":path",
                on_header_present=HeaderToMetadata.KeyValuePair(
                    metadata_namespace=PATH_KEY_NAMESPACE,
                    key=PATH_KEY_METADATA,
                    regex_value_rewrite=RegexMatchAndSubstitute(
                        pattern=RegexMatcher(regex=path_key_regex(source)), substitution="\\1"
                    ),
                ),
            )
        ]
    )
    mutation = HeaderMutationPerRoute(
        mutations=Mutations(
            request_mutations=[
                Mutation(remove=PATH_KEY_HEADER),
                Mutation(
                    append=HeaderValueOption(
                        header=HeaderValue(
                            key=PATH_KEY_HEADER,
                            value=f"%DYNAMIC_METADATA({PATH_KEY_NAMESPACE}:{PATH_KEY_METADATA})%",
                        ),
                        append_action=HeaderValueOption.OVERWRITE_IF_EXISTS_OR_ADD,
                    )
                ),
            ]
        )
    )
    return {
        HEADER_TO_METADATA_FILTER: _enable(to_metadata),
        HEADER_MUTATION_FILTER: _enable(mutation),
    }


def _route_filters(auth: RouteAuth, decl: Declaration, sources: list[KeySourceSpec]) -> Any:
    per_route = build_api_key_auth_per_route(auth, decl)
    per_route.ClearField("key_sources")
    per_route.key_sources.extend(_key_source(s) for s in sources)
    return _enable(per_route)


def _set_filters(route: Route, filters: dict[str, Any]) -> None:
    for name in sorted(filters):
        route.typed_per_filter_config[name].CopyFrom(filters[name])


def _presence(route: Route, source: KeySourceSpec) -> None:
    """Make `route` match only when `source` (a header or query source) is present."""
    if source.header is not None:
        route.match.headers.append(HeaderMatcher(name=source.header, present_match=True))
    else:
        route.match.query_parameters.append(
            QueryParameterMatcher(name=source.query or "", present_match=True)
        )


def _mark_key_from() -> Any:
    mutation = HeaderMutationPerRoute(
        mutations=Mutations(
            request_mutations=[
                Mutation(
                    append=HeaderValueOption(
                        header=HeaderValue(key=KEY_FROM_HEADER, value="other"),
                        append_action=HeaderValueOption.OVERWRITE_IF_EXISTS_OR_ADD,
                    )
                )
            ]
        )
    )
    return _enable(mutation)


def build_auth_routes(
    route: Route, auth: RouteAuth | None, decl: Declaration, *, rematch: bool = False
) -> list[Route]:
    """The Envoy entries for one entry `route` (built by route.py) under `auth`, in
    match order: one unless a path source is combined with others (module docstring).
    `rematch`: the router matches again after authentication (split.py)."""
    if auth is None or not auth.required:
        apply_route_auth(route, auth, decl)  # an open route may drop Kong's headers
        return [route]
    source = auth.path_source
    others = [s for s in auth.key_sources if s.path is None]
    if source is None or not others:
        apply_route_auth(route, auth, decl)
        return [route]
    explicit = _route_filters(auth, decl, others)
    _consumer_headers(route, auth)  # before the copies: every entry gets them
    entries: list[Route] = []
    if rematch:
        marked = Route()
        marked.CopyFrom(route)
        marked.name = f"{route.name}~keyed"
        marked.match.headers.append(HeaderMatcher(name=KEY_FROM_HEADER, present_match=True))
        _set_filters(marked, {API_KEY_AUTH_FILTER: explicit})
        entries.append(marked)
    for index, other in enumerate(auth.key_sources):
        if other.path is not None:
            continue
        present = Route()
        present.CopyFrom(route)
        present.name = f"{route.name}~key{index}"
        _presence(present, other)
        filters = {API_KEY_AUTH_FILTER: explicit}
        if rematch:
            filters[HEADER_MUTATION_FILTER] = _mark_key_from()
        _set_filters(present, filters)
        entries.append(present)
    filters = {API_KEY_AUTH_FILTER: _route_filters(auth, decl, [source])}
    filters.update(_path_key_filters(source))
    route.route.regex_rewrite.CopyFrom(path_key_rewrite(source))
    _set_filters(route, filters)
    entries.append(route)
    if rematch:
        for entry in entries:
            entry.request_headers_to_remove.append(KEY_FROM_HEADER)
    return entries


def apply_route_auth(route: Route, auth: RouteAuth | None, decl: Declaration) -> None:
    """Turn on key authentication for `route` (built by route.py) when `auth` asks;
    for a path source combined with others use `build_auth_routes`."""
    if auth is not None and not auth.required and auth.kong_consumer_headers:
        route.request_headers_to_remove.extend(KONG_CONSUMER_HEADERS)
    if auth is None or not auth.required:
        return
    filters = {API_KEY_AUTH_FILTER: _enable(build_api_key_auth_per_route(auth, decl))}
    source = auth.path_source
    if source is not None:
        filters.update(_path_key_filters(source))
        route.route.regex_rewrite.CopyFrom(path_key_rewrite(source))
    _set_filters(route, filters)
    _consumer_headers(route, auth)


KONG_CONSUMER_HEADERS = (
    "x-consumer-id",
    "x-consumer-custom-id",
    "x-consumer-username",
    "x-consumer-groups",
    "x-credential-identifier",
    "x-anonymous-consumer",
)
"""What Kong's auth plugins send upstream; a client must not be able to forge them."""

_LUA_SAFE = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 _.-:@/")


def _lua_string(text: str) -> str:
    """A Lua string literal of `text`: anything but plain characters as `\\ddd`."""
    return (
        '"' + "".join(c if c in _LUA_SAFE else f"\\{b:03d}" for c in text for b in c.encode()) + '"'
    )


_KONG_LUA = """
local strip = {%(strip)s}
function envoy_on_request(handle)
  local headers = handle:headers()
  local from = handle:metadata():get("consumer_header") or "x-consumer-name"
  local name = headers:get(from)
  for _, header in ipairs(strip) do headers:remove(header) end
  if name == nil then return end
  headers:add("x-consumer-username", name)
  local entry = ids[name]
  if entry == nil then return end
  if entry[1] ~= "" then headers:add("x-consumer-id", entry[1]) end
  if entry[2] ~= "" then headers:add("x-consumer-custom-id", entry[2]) end
end
"""


def kong_headers_code(decl: Declaration) -> str:
    """The Lua code: consumer name → (Kong id, custom_id) for every consumer with one."""
    rows = [
        "["
        + _lua_string(c.name)
        + "]={"
        + _lua_string(c.kong_id or "")
        + ","
        + _lua_string(c.custom_id or "")
        + "}"
        for _, c in sorted(decl.consumers.items())
        if c.kong_id is not None or c.custom_id is not None
    ]
    strip = ",".join(_lua_string(h) for h in KONG_CONSUMER_HEADERS)
    return "local ids = {\n" + ",\n".join(rows) + "\n}\n" + _KONG_LUA.replace("%(strip)s", strip)


def build_kong_headers_config(decl: Declaration) -> TypedExtensionConfig:
    """The ECDS resource of the Kong headers filter (every node group gets it)."""
    lua = Lua(source_codes={KONG_HEADERS_CODE: DataSource(inline_string=kong_headers_code(decl))})
    return TypedExtensionConfig(name=KONG_HEADERS_FILTER, typed_config=_pack(lua))


def _kong_consumer_headers(route: Route, auth: RouteAuth) -> None:
    """Kong's consumer headers, set by the Lua filter after authentication.

    The router applies route headers after every filter, so it must not remove what
    the Lua filter set: the filter itself drops every client-sent copy first. The
    route tells it which header `api_key_auth` put the consumer's name in.
    """
    route.typed_per_filter_config[KONG_HEADERS_FILTER].CopyFrom(
        _enable(LuaPerRoute(name=KONG_HEADERS_CODE))
    )
    meta = Struct()
    meta.update({"consumer_header": auth.consumer_header})
    route.metadata.filter_metadata[KONG_HEADERS_FILTER].CopyFrom(meta)


def _consumer_headers(route: Route, auth: RouteAuth) -> None:
    """Kong's headers when asked; on every other route that checks keys, client-sent
    copies are dropped all the same (an upstream may still trust them)."""
    if auth.kong_consumer_headers:
        _kong_consumer_headers(route, auth)
    else:
        route.request_headers_to_remove.extend(KONG_CONSUMER_HEADERS)

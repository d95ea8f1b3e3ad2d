"""Routes and splits → the group's `RouteConfiguration`.

Owns virtual host composition, route entry order, matching and the route action
(cluster, weighted clusters, path stripping). Knows nothing of listeners; refers
to clusters by service name only (`check_consistent` verifies they exist).

Virtual hosts
-------------
Envoy picks exactly ONE virtual host per request from the Host header (exact
domain first, then the longest `*.suffix` wildcard, then `*`) and never falls
through to another one. So every virtual host must carry every route that may
serve its hosts:

- one virtual host `host:<pattern>` (domains `[<pattern>]`) per distinct host
  pattern across all routes, holding every route with a host that covers the
  pattern (equal to it, or a wildcard `*.x.com` that matches it, including a more
  specific wildcard such as `*.a.x.com`) plus every route without hosts;
- one last virtual host `any` (domains `["*"]`) holding the routes without hosts.
  It always exists, even empty, so an unknown host gets a clean 404.

Host virtual hosts are sorted by pattern; `any` comes last.

Route entry order
-----------------
Each (route, path matcher) pair is one Envoy route entry; a route without paths
has the single matcher prefix `/`. Envoy tries entries in order and the first
match wins, so entries are sorted most specific first (Kong-like), by:

1. `priority`, higher first;
2. path kind: exact, then regex, then prefix;
3. path length, longer first (a longer prefix or regex before a shorter one);
4. number of match conditions, more first: one per header, +1 if methods are
   given, +1 if hosts are given;
5. route name, then path value, then the path's index in the route, ascending
   (a total order: equal input always gives the same bytes).

Route entry names: `<route>` when the route has at most one path, otherwise
`<route>#<i>` with `i` the index of the path in the route's `paths` list.

Matching and action
-------------------
- prefix → `prefix`; exact → `path`; regex → `safe_regex` (RE2, Envoy's default
  engine). Envoy matches a regex against the WHOLE path without the query string:
  `^/v[0-9]+/` matches `/v1/` but not `/v1/users` (write `^/v[0-9]+/.*`).
- methods → a `:method` header matcher: exact for one method, else `^(A|B)$`
  (methods sorted); headers → exact value matchers, sorted by name.
- A split for the route → `weighted_clusters`, one entry per target with weight
  > 0 (weight 0 means no traffic; its cluster still exists), sorted by service.
  Otherwise → `cluster: <service>`.
- `strip_path` on a prefix P other than `/` → `regex_rewrite` of `^<P>/?` to `/`:
  with P = `/api`, `/api/users` → `/users`, `/api` and `/api/` → `/`, and the query
  string is kept. The Host header is passed on unchanged; timeouts are Envoy's.

`opts.group` only names the configuration for now: every group sees every route.
"""

import operator
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property

from envoy.config.route.v3.route_components_pb2 import (
    Route,
    RouteAction,
    RouteMatch,
    VirtualHost,
)
from envoy.config.route.v3.route_pb2 import RouteConfiguration

from turnout.models.declaration import Declaration
from turnout.models.regex import methods_regex, strip_prefix_regex
from turnout.models.route import DEFAULT_GROUP, PathKind, PathMatch, RouteSpec
from turnout.models.split import SplitSpec
from turnout.xds.translate.api_key_auth import build_auth_routes
from turnout.xds.translate.options import NodeGroup, route_configuration_name
from turnout.xds.translate.policies import apply_route_policies
from turnout.xds.translate.ratelimit import apply_route_limits
from turnout.xds.translate.split import needs_rematch, split_routes

CATCH_ALL_VIRTUAL_HOST = "any"
HOST_VIRTUAL_HOST_PREFIX = "host:"

_ANY_PATH = PathMatch(kind=PathKind.PREFIX, value="/")
_KIND_RANK = {PathKind.EXACT: 0, PathKind.REGEX: 1, PathKind.PREFIX: 2}


@dataclass(frozen=True)
class RouteEntry:
    """One Envoy route entry: a route with one of its path matchers."""

    route: RouteSpec
    """The declared route."""
    path: PathMatch
    """The path matcher this entry matches on (prefix `/` for a route without paths)."""
    index: int
    """Position of `path` in `route.paths` (0 for a route without paths)."""

    @property
    def name(self) -> str:
        if len(self.route.paths) > 1:
            return f"{self.route.name}#{self.index}"
        return self.route.name

    @cached_property
    def sort_key(self) -> tuple[int, int, int, int, str, str, int]:
        """Most specific first; see the module docstring."""
        route = self.route
        conditions = len(route.headers) + bool(route.methods) + bool(route.hosts)
        return (
            -route.priority,
            _KIND_RANK[self.path.kind],
            -len(self.path.value),
            -conditions,
            route.name,
            self.path.value,
            self.index,
        )


def route_entries(route: RouteSpec) -> list[RouteEntry]:
    paths = route.paths or [_ANY_PATH]
    return [RouteEntry(route=route, path=path, index=i) for i, path in enumerate(paths)]


EntriesOf = Callable[[RouteSpec], list[RouteEntry]]


def sort_route_entries(
    routes: list[RouteSpec], entries_of: EntriesOf = route_entries
) -> list[RouteEntry]:
    """Every entry of `routes`, in the order Envoy must try them. `entries_of` may
    hand back entries made earlier for the same route (their sort keys are kept)."""
    entries = [entry for route in routes for entry in entries_of(route)]
    return sorted(entries, key=_SORT_KEY)


_SORT_KEY = operator.attrgetter("sort_key")


def host_covers(host: str, pattern: str) -> bool:
    """True when every Host that `pattern` matches is also matched by `host`.

    `*.x.com` covers `a.x.com`, `*.a.x.com` and itself, but not `x.com`: an Envoy
    wildcard never matches the empty string.
    """
    if host == pattern:
        return True
    return host.startswith("*.") and pattern.endswith(host[1:])


def build_route_match(entry: RouteEntry) -> RouteMatch:
    match = RouteMatch()
    _fill_route_match(match, entry)
    return match


def _fill_route_match(match: RouteMatch, entry: RouteEntry) -> None:
    # Set in place: a sub-message given to a constructor is copied into its parent.
    value = entry.path.value
    if entry.path.kind is PathKind.EXACT:
        match.path = value
    elif entry.path.kind is PathKind.REGEX:
        match.safe_regex.regex = value
    else:
        match.prefix = value
    methods = sorted(entry.route.methods)
    if len(methods) == 1:
        match.headers.add(name=":method").string_match.exact = methods[0]
    elif methods:
        header = match.headers.add(name=":method")
        header.string_match.safe_regex.regex = methods_regex(methods)
    headers = entry.route.headers
    for name in sorted(headers):
        match.headers.add(name=name).string_match.exact = headers[name]


def build_route_action(entry: RouteEntry, split: SplitSpec | None) -> RouteAction:
    action = RouteAction()
    _fill_route_action(action, entry, split)
    return action


def _fill_route_action(action: RouteAction, entry: RouteEntry, split: SplitSpec | None) -> None:
    if split is None:
        action.cluster = entry.route.service
    else:
        targets = sorted((t for t in split.targets if t.weight > 0), key=lambda t: t.service)
        weighted = action.weighted_clusters
        weighted.SetInParent()  # present even with no target of weight > 0
        for t in targets:
            weighted.clusters.add(name=t.service).weight.value = t.weight
    prefix = entry.path.value
    if entry.route.strip_path and entry.path.kind is PathKind.PREFIX and prefix != "/":
        rewrite = action.regex_rewrite
        rewrite.pattern.regex = strip_prefix_regex(prefix)
        rewrite.substitution = "/"


def build_route(entry: RouteEntry, split: SplitSpec | None) -> Route:
    route = Route(name=entry.name)
    _fill_route_match(route.match, entry)
    route.match.SetInParent()
    _fill_route_action(route.route, entry, split)
    route.route.SetInParent()
    return route


def build_virtual_host(
    name: str,
    domains: list[str],
    entries: list[RouteEntry],
    decl: Declaration,
    splits: dict[str, SplitSpec],
) -> VirtualHost:
    """`entries` must already be in match order (`sort_route_entries`); `splits` maps
    a route name to its split."""
    routes: list[Route] = []
    for e in entries:
        routes.extend(build_routes(e, splits.get(e.route.name), decl))
    return VirtualHost(name=name, domains=domains, routes=routes)


def build_routes(entry: RouteEntry, split: SplitSpec | None, decl: Declaration) -> list[Route]:
    """The Envoy route entries for one (route, path): the split's pins first (split.py),
    each with the route's key auth, limits and request policies."""
    auth = entry.route.auth
    rematch = needs_rematch(split, auth)
    # auth.py: API keys per route; several entries when a path key combines with others.
    keyed = build_auth_routes(build_route(entry, split), auth, decl, rematch=rematch)
    routes: list[Route] = []
    for route in keyed:
        apply_route_limits(route, entry.route, decl)  # ratelimit.py: bursts and quotas
        apply_route_policies(route, entry.route.policies)  # policies.py: headers, retries ...
        routes.extend(split_routes(route, split, auth))
    return routes


def virtual_host_layout(
    decl: Declaration, group: str = DEFAULT_GROUP, entries_of: EntriesOf = route_entries
) -> list[tuple[str, list[str], list[RouteEntry]]]:
    """(name, domains, entries in match order) of each virtual host of one node group:
    only the routes attached to the group."""
    routes = [r for name in sorted(decl.routes) if group in (r := decl.routes[name]).groups]
    host_less = [r for r in routes if not r.hosts]
    by_host: dict[str, list[RouteSpec]] = {}
    for route in routes:
        for host in route.hosts:
            by_host.setdefault(host, []).append(route)
    wildcards = [h for h in by_host if h.startswith("*.")]
    layout = []
    for pattern in sorted(by_host):
        # The routes naming this pattern or a wildcard that covers it, each once.
        hosts = [pattern, *(w for w in wildcards if w != pattern and host_covers(w, pattern))]
        covering = list({id(r): r for h in hosts for r in by_host[h]}.values())
        entries = sort_route_entries(covering + host_less, entries_of)
        layout.append((HOST_VIRTUAL_HOST_PREFIX + pattern, [pattern], entries))
    layout.append((CATCH_ALL_VIRTUAL_HOST, ["*"], sort_route_entries(host_less, entries_of)))
    return layout


def build_virtual_hosts(decl: Declaration, group: str = DEFAULT_GROUP) -> list[VirtualHost]:
    splits = {split.route: split for split in decl.splits.values()}
    return [
        build_virtual_host(name, domains, entries, decl, splits)
        for name, domains, entries in virtual_host_layout(decl, group)
    ]


def build_route_configuration(decl: Declaration, opts: NodeGroup) -> RouteConfiguration:
    return RouteConfiguration(
        name=route_configuration_name(opts), virtual_hosts=build_virtual_hosts(decl, opts.group)
    )

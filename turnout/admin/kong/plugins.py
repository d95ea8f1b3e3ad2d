"""Kong plugins with a Turnout equivalent → the route fields they become.

Each mapper takes one plugin's `config` and returns the Turnout route field part
it becomes, or None when it cannot be mapped; every approximation goes to
`differs` and every refusal to `not_mapped`, never silently. Kong picks the most
specific plugin of a name (route over service over global); `route_fields` does
the same per route. Consumer-side mapping lives in consumers.py.
"""

from typing import Any

from turnout.admin.kong.report import KongImport
from turnout.admin.kong.transform import request_transformer

MAPPED_PLUGINS = (
    "key-auth",
    "rate-limiting",
    "request-transformer",
    "acl",
    "ip-restriction",
    "cors",
)
"""Plugins with a Turnout equivalent; others are reported as not mapped."""
_KONG_KEY_AUTH_DEFAULTS: dict[str, Any] = {
    "key_names": ["apikey"],
    "key_in_header": True,
    "key_in_query": True,
    "key_in_body": False,
    "hide_credentials": False,
    "anonymous": None,
}
"""Kong 3.x key-auth defaults (a decK file omits fields left at their default)."""
_BURSTS = ("second", "minute")
_QUOTAS = ("hour", "day", "month")
_FLEET_POLICIES = ("redis", "cluster")
KONG_CORS_METHODS = ["GET", "HEAD", "PUT", "PATCH", "POST", "DELETE", "OPTIONS", "TRACE", "CONNECT"]
_REGEX_META = frozenset("\\^$|?+()[]{}")


def key_auth(
    config: dict[str, Any], origin: str, out: KongImport, path_keys: dict[str, str] | None = None
) -> dict[str, Any] | None:
    """Kong `key-auth` → route `auth` (required), keys read where Kong reads them.

    `path_keys` maps a header to a path template (`/forecast/{key}`) when the
    route's request-transformer fills that header from a URI capture: that key is
    read from the path (Turnout's `path` key source).
    """
    conf = {**_KONG_KEY_AUTH_DEFAULTS, **{k: v for k, v in config.items() if v is not None}}
    if conf["anonymous"]:
        # Kong lets keyless requests through as the anonymous consumer: the route is
        # open, and turning it into a closed one would break those clients.
        out.not_mapped.append(f"{origin}: key-auth with anonymous consumer not mapped (left open)")
        return None
    sources: list[dict[str, str]] = []
    for name in conf["key_names"]:
        template = (path_keys or {}).get(name.lower())
        if template is not None:
            sources.insert(0, {"path": template})
            out.imported.append(f"{origin}: key {name} read from the URL path {template}")
            continue
        if conf["key_in_header"]:
            sources.append({"header": name.lower()})
        if conf["key_in_query"]:
            sources.append({"query": name})
    if conf["key_in_body"]:
        out.not_mapped.append(f"{origin}: key-auth key_in_body not mapped (headers/query only)")
    if not conf["hide_credentials"]:
        out.not_mapped.append(
            f"{origin}: key-auth hide_credentials=false not mapped "
            "(Turnout always removes the key before the upstream)"
        )
    if not sources:
        out.not_mapped.append(f"{origin}: key-auth reads keys nowhere Turnout can; left open")
        return None
    out.once(
        "key-auth: the upstream gets X-Consumer-Username (and x-consumer-name); Kong's "
        "X-Consumer-ID, X-Consumer-Custom-ID and X-Credential-Identifier are not sent"
    )
    return {"required": True, "key_sources": sources[:8], "kong_consumer_headers": True}


def rate_limiting(
    config: dict[str, Any], origin: str, has_auth: bool, out: KongImport
) -> dict[str, Any] | None:
    """Kong `rate-limiting` → route `limits`.

    Kong's `policy` says where it counts: `local` in each Kong node, `redis` and
    `cluster` across the fleet. Fleet policies become quotas (Turnout's rate limit
    service, counted in Redis across every Envoy) for every window quotas have
    (minute and longer); `local` keeps second/minute as bursts in each Envoy.
    Turnout counts per consumer on an authenticated route; Kong's `limit_by:
    consumer` falls back to the client IP without a consumer, which Turnout does
    not do, so such a route gets no limit (reported).
    """
    limit_by = config.get("limit_by") or "consumer"
    if limit_by not in ("consumer", "credential"):
        out.not_mapped.append(f"{origin}: rate-limiting limit_by={limit_by!r} not mapped")
        return None
    if not has_auth:
        out.not_mapped.append(
            f"{origin}: rate-limiting not mapped: no key-auth, so Kong counts per client IP, "
            "which Turnout does not"
        )
        return None
    if config.get("year"):
        out.not_mapped.append(f"{origin}: rate-limiting year={config['year']} not mapped")
    policy = config.get("policy") or "local"
    limits = windows(config, fleet=policy in _FLEET_POLICIES)
    if policy in _FLEET_POLICIES and limits["burst"]:
        out.differs.append(
            f"{origin}: rate-limiting policy {policy}: the per-second limit is counted "
            "in each Envoy (N Envoys allow N times it); minute and longer across the fleet"
        )
    elif policy not in _FLEET_POLICIES and limits["quota"]:
        out.differs.append(
            f"{origin}: rate-limiting policy local: hour/day/month limits are counted "
            "across the fleet (Kong counted them in each node)"
        )
    for key, default in (("error_code", 429), ("hide_client_headers", False)):
        if config.get(key) not in (None, default):
            out.not_mapped.append(f"{origin}: rate-limiting {key}={config[key]!r} not mapped")
    out.once(
        "rate-limiting: Envoy sends x-ratelimit-* headers on refusals; Kong's "
        "X-RateLimit-Limit-<window> headers on every response are not sent"
    )
    if not limits["burst"] and not limits["quota"]:
        return None
    return limits


def windows(config: dict[str, Any], *, fleet: bool = False) -> dict[str, Any]:
    """Kong's windows → `limits`; `minute` is a quota when counted across the fleet."""
    bursts = ("second",) if fleet else _BURSTS
    quotas = ("minute", *_QUOTAS) if fleet else _QUOTAS
    return {
        "burst": [{"requests": int(config[w]), "per": w} for w in bursts if config.get(w)],
        "quota": [{"requests": int(config[w]), "per": w} for w in quotas if config.get(w)],
    }


def acl(config: dict[str, Any], origin: str, out: KongImport) -> dict[str, Any] | None:
    """Kong `acl` → `auth.allow_groups` / `allow_consumers` (Kong groups are consumer groups).

    `deny` has no Turnout form: it becomes the list of imported consumers outside
    the denied groups (a consumer added later is refused until allowed).
    Returns {"allow_groups": [...]} / {"allow_consumers": [...]} or {"nobody": True}.
    """
    consumers = out.target["consumer"]
    allow = [str(g) for g in config.get("allow") or config.get("whitelist") or []]
    deny = {str(g) for g in config.get("deny") or config.get("blacklist") or []}
    if not config.get("hide_groups_header"):
        out.once("acl: Kong's X-Consumer-Groups header is not sent upstream")
    if config.get("include_consumer_groups"):
        out.not_mapped.append(f"{origin}: acl include_consumer_groups not mapped")
    held = {g for c in consumers.values() for g in getattr(c, "groups", [])}
    if allow and not deny:
        groups = sorted(g for g in allow if g in held)
        return {"allow_groups": groups} if groups else {"nobody": True}
    names = sorted(
        name
        for name, c in consumers.items()
        if not deny & set(getattr(c, "groups", []))
        and (not allow or set(allow) & set(getattr(c, "groups", [])))
    )
    out.differs.append(
        f"{origin}: acl deny → the {len(names)} imported consumer(s) outside "
        f"{sorted(deny)} are allowed; a consumer created later is refused"
    )
    return {"allow_consumers": names} if names else {"nobody": True}


def ip_restriction(config: dict[str, Any], origin: str, out: KongImport) -> dict[str, Any] | None:
    """Kong `ip-restriction` → route `policies.ip_allow` / `ip_deny` (403, TCP peer)."""
    allow = config.get("allow") or config.get("whitelist") or []
    deny = config.get("deny") or config.get("blacklist") or []
    for key, default in (("status", 403), ("message", None)):
        if config.get(key) not in (None, default):
            out.not_mapped.append(f"{origin}: ip-restriction {key}={config[key]!r} not mapped")
    if not allow and not deny:
        return None
    return {"ip_allow": list(allow), "ip_deny": list(deny)}


def cors(config: dict[str, Any], origin: str, out: KongImport) -> dict[str, Any] | None:
    """Kong `cors` → route `policies.cors`. Kong's default: every origin, its 9 methods."""
    origins = [str(o) for o in config.get("origins") or ["*"]]
    exact = [o for o in origins if o == "*" or not _REGEX_META & set(o.replace(".", ""))]
    for dropped in sorted(set(origins) - set(exact)):
        out.not_mapped.append(f"{origin}: cors origin regex {dropped!r} not mapped (exact only)")
    if not exact:
        return None
    if config.get("preflight_continue"):
        out.not_mapped.append(f"{origin}: cors preflight_continue not mapped (Envoy answers)")
    if not config.get("headers"):
        out.differs.append(
            f"{origin}: cors without headers: Kong echoes Access-Control-Request-Headers; "
            "Envoy allows no extra request headers"
        )
    policy: dict[str, Any] = {
        "allow_origins": exact,
        "allow_methods": list(config.get("methods") or KONG_CORS_METHODS),
        "allow_headers": list(config.get("headers") or []),
        "expose_headers": list(config.get("exposed_headers") or []),
        "allow_credentials": bool(config.get("credentials")),
    }
    if config.get("max_age") is not None:
        policy["max_age_s"] = int(config["max_age"])
    return policy


def _by_name(plugins: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {p.get("name", "?"): p for p in plugins if p.get("enabled", True)}


def route_fields(
    route: list[dict[str, Any]],
    service: list[dict[str, Any]],
    everywhere: list[dict[str, Any]],
    origin: str,
    out: KongImport,
    captures: dict[str, str] | None = None,
    shared: str | None = None,
) -> dict[str, Any]:
    """The `auth`, `limits` and `policies` a route gets from the plugins that apply.

    For each plugin name the most specific one wins, as in Kong: the route's, else
    its service's, else the global one. `captures` maps the route's named URI
    captures to the path template of their segment (routes.py); `shared` names the
    quota counters of the route's service.
    """
    chosen: dict[str, tuple[dict[str, Any], str]] = {}
    for scope, plugins in (("global", everywhere), ("service", service), ("route", route)):
        for name, plugin in _by_name(plugins).items():
            if name in MAPPED_PLUGINS:
                chosen[name] = (plugin.get("config") or {}, scope)

    def where(name: str) -> str:
        return f"{origin} ({chosen[name][1]} {name})"

    fields: dict[str, Any] = {}
    policies: dict[str, Any] = {}
    path_keys: dict[str, str] = {}
    if "request-transformer" in chosen:
        conf = chosen["request-transformer"][0]
        headers, path_keys = request_transformer(
            conf, where("request-transformer"), out, captures or {}
        )
        if headers:
            policies["request_headers"] = headers
    if "key-auth" in chosen:
        auth = key_auth(chosen["key-auth"][0], where("key-auth"), out, path_keys)
        if auth is not None:
            fields["auth"] = auth
    for header in path_keys:
        if "auth" not in fields or not any(s.get("path") for s in fields["auth"]["key_sources"]):
            out.not_mapped.append(f"{origin}: header {header} from a URI capture not mapped")
    if "acl" in chosen:
        allowed = acl(chosen["acl"][0], where("acl"), out)
        if "auth" not in fields:
            # Kong's acl needs an authenticated consumer: without one it refuses.
            out.not_mapped.append(f"{where('acl')}: acl without key-auth: route skipped")
            return {"skip": True}
        if allowed and allowed.get("nobody"):
            out.not_mapped.append(f"{where('acl')}: no imported consumer is allowed: skipped")
            return {"skip": True}
        fields["auth"].update(allowed or {})
    if "rate-limiting" in chosen:
        scope = chosen["rate-limiting"][1]
        limits = rate_limiting(
            chosen["rate-limiting"][0], where("rate-limiting"), "auth" in fields, out
        )
        if limits is not None and scope != "route":
            # Kong counts a service's plugin over all its routes, a global one over
            # every route: the routes share their quota counters.
            limits["shared"] = shared or "kong-global"
            if limits["burst"]:
                out.once(
                    "rate-limiting on a service or globally: per-second/minute bursts "
                    "are counted per route (quotas over all its routes, as in Kong)"
                )
        if limits is not None:
            fields["limits"] = limits
    if "ip-restriction" in chosen:
        policies.update(
            ip_restriction(chosen["ip-restriction"][0], where("ip-restriction"), out) or {}
        )
    if "cors" in chosen:
        policy = cors(chosen["cors"][0], where("cors"), out)
        if policy is not None:
            policies["cors"] = policy
    if policies:
        fields["policies"] = policies
    if fields:
        mapped = ", ".join(sorted(chosen))
        out.imported.append(f"{origin}: {', '.join(sorted(fields))} from Kong plugins ({mapped})")
    if "auth" not in fields:
        # An open route: client-sent X-Consumer-* headers are dropped, so an upstream
        # moved from Kong (which sets them on authenticated routes) cannot be fooled.
        fields["auth"] = {"required": False, "kong_consumer_headers": True}
    return fields

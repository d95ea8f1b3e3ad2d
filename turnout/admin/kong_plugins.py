"""Kong plugins and consumers with a Turnout equivalent, for `kong_import.py`.

Each mapper takes one plugin's `config` and returns the Turnout route field it
becomes (`auth`, `limits`, `policies`), or None when it cannot be mapped; every
approximation and refusal goes to the report, never silently. Kong picks the most
specific plugin of a name (route over service over global); `route_fields` does
the same per route.

Consumers keep their keys: `consumer` returns the keys for the importer to store
through the key store's import path (`KeyRing.import_new`). Keys never reach the
report: a key that Turnout cannot store is named by its position only.
"""

import re
from typing import Any, Protocol

from turnout.models.consumer import KEY_PATTERN

MAPPED_PLUGINS = ("key-auth", "rate-limiting", "request-transformer")
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
_KEY = re.compile(KEY_PATTERN)


class Report(Protocol):
    """What a mapper writes to: `KongImport` (lists of report lines)."""

    imported: list[str]
    not_mapped: list[str]


def key_auth(config: dict[str, Any], origin: str, out: Report) -> dict[str, Any] | None:
    """Kong `key-auth` → route `auth` (required), keys read where Kong reads them."""
    conf = {**_KONG_KEY_AUTH_DEFAULTS, **{k: v for k, v in config.items() if v is not None}}
    if conf["anonymous"]:
        # Kong lets keyless requests through as the anonymous consumer: the route is
        # open, and turning it into a closed one would break those clients.
        out.not_mapped.append(f"{origin}: key-auth with anonymous consumer not mapped (left open)")
        return None
    sources: list[dict[str, str]] = []
    for name in conf["key_names"]:
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
    return {"required": True, "key_sources": sources[:8]}


def rate_limiting(
    config: dict[str, Any], origin: str, has_auth: bool, out: Report
) -> dict[str, Any] | None:
    """Kong `rate-limiting` → route `limits`: second/minute bursts, hour/day/month quotas.

    Turnout counts per consumer on an authenticated route and for the whole route
    otherwise. Kong's `limit_by: consumer` (its default) falls back to the client IP
    when no consumer is known; a route-wide count would be far stricter, so such a
    route gets no limit (reported). Other `limit_by` values have no equivalent.
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
    limits = _windows(config)
    if not limits["burst"] and not limits["quota"]:
        return None
    return limits


def _windows(config: dict[str, Any]) -> dict[str, Any]:
    return {
        "burst": [{"requests": int(config[w]), "per": w} for w in _BURSTS if config.get(w)],
        "quota": [{"requests": int(config[w]), "per": w} for w in _QUOTAS if config.get(w)],
    }


def _header_pairs(items: list[str], what: str, origin: str, out: Report) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition(":")
        if not sep or "$(" in value or "%" in value:
            out.not_mapped.append(f"{origin}: request-transformer {what} {name!r} not mapped")
            continue
        pairs[name.strip().lower()] = value
    return pairs


def request_transformer(config: dict[str, Any], origin: str, out: Report) -> dict[str, Any] | None:
    """Kong `request-transformer` headers → route `policies.request_headers`.

    remove → remove, replace → set, add and append → add. Kong's `replace` only
    acts on a header the client sent and `add` only when it did not; Turnout's
    `set` and `add` always act, the same for requests that match Kong's condition.
    Querystring and body changes, renames and templates are reported.
    """
    changes: dict[str, Any] = {"add": {}, "set": {}, "remove": []}
    for action in ("remove", "rename", "replace", "add", "append"):
        part = config.get(action) or {}
        for what in sorted(part):
            if what != "headers" and part[what]:
                out.not_mapped.append(f"{origin}: request-transformer {action}.{what} not mapped")
        headers = part.get("headers") or []
        if not headers:
            continue
        if action == "remove":
            changes["remove"] = [h.lower() for h in headers]
        elif action == "rename":
            out.not_mapped.append(f"{origin}: request-transformer rename.headers not mapped")
        elif action == "replace":
            changes["set"].update(_header_pairs(headers, "replace", origin, out))
        else:
            changes["add"].update(_header_pairs(headers, action, origin, out))
    if config.get("http_method"):
        out.not_mapped.append(f"{origin}: request-transformer http_method not mapped")
    changes = {k: v for k, v in changes.items() if v}
    return {"request_headers": changes} if changes else None


def _by_name(plugins: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {p.get("name", "?"): p for p in plugins if p.get("enabled", True)}


def route_fields(
    route: list[dict[str, Any]],
    service: list[dict[str, Any]],
    everywhere: list[dict[str, Any]],
    origin: str,
    out: Report,
) -> dict[str, Any]:
    """The `auth`, `limits` and `policies` a route gets from the plugins that apply.

    For each plugin name the most specific one wins, as in Kong: the route's, else
    its service's, else the global one.
    """
    chosen: dict[str, tuple[dict[str, Any], str]] = {}
    for scope, plugins in (("global", everywhere), ("service", service), ("route", route)):
        for name, plugin in _by_name(plugins).items():
            if name in MAPPED_PLUGINS:
                chosen[name] = (plugin.get("config") or {}, scope)
    fields: dict[str, Any] = {}
    if "key-auth" in chosen:
        conf, scope = chosen["key-auth"]
        auth = key_auth(conf, f"{origin} ({scope} key-auth)", out)
        if auth is not None:
            fields["auth"] = auth
    if "rate-limiting" in chosen:
        conf, scope = chosen["rate-limiting"]
        where = f"{origin} ({scope} rate-limiting)"
        limits = rate_limiting(conf, where, "auth" in fields, out)
        if limits is not None:
            fields["limits"] = limits
    if "request-transformer" in chosen:
        conf, scope = chosen["request-transformer"]
        policies = request_transformer(conf, f"{origin} ({scope} request-transformer)", out)
        if policies is not None:
            fields["policies"] = policies
    if fields:
        out.imported.append(f"{origin}: {', '.join(sorted(fields))} from Kong plugins")
    return fields


def consumer(
    item: dict[str, Any], name: str, tags: list[str], out: Report
) -> tuple[dict[str, Any], list[str]]:
    """A Kong consumer → (consumer spec data, its keys to import).

    Its own `rate-limiting` plugin becomes the consumer's `limits` (Kong counts a
    consumer-scoped plugin over every route, as Turnout's consumer quota does; a
    second/minute limit replaces the routes' per-consumer burst for it).
    """
    origin = f"consumer {name}"
    data: dict[str, Any] = {"name": name, "tags": tags}
    for plugin in item.get("plugins") or []:
        if not plugin.get("enabled", True):
            continue
        if plugin.get("name") == "rate-limiting":
            limits = _windows(plugin.get("config") or {})
            if limits["burst"] or limits["quota"]:
                data["limits"] = limits
                out.imported.append(f"{origin}: limits from its rate-limiting plugin")
        else:
            out.not_mapped.append(f"plugin {plugin.get('name', '?')} on {origin}: not mapped")
    keys: list[str] = []
    for i, cred in enumerate(item.get("keyauth_credentials") or []):
        key = cred.get("key")
        if not isinstance(key, str) or not _KEY.match(key):
            # Never print the key, not even a prefix: name it by position.
            out.not_mapped.append(
                f"{origin}: keyauth_credentials[{i}] not imported "
                "(Turnout keys are 16-256 of A-Z a-z 0-9 . _ ~ + = -)"
            )
        elif key in keys:
            out.not_mapped.append(f"{origin}: keyauth_credentials[{i}] repeats a key; once")
        else:
            keys.append(key)
    for other in ("basicauth_credentials", "jwt_secrets", "hmacauth_credentials", "acls"):
        if item.get(other):
            out.not_mapped.append(f"{origin}: {other} not mapped")
    return data, keys

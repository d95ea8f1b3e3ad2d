"""Kong routes → Turnout routes.

- `paths` (a `~` path is a Kong regex matched from the start: it becomes an RE2
  regex with `.*` appended, since Turnout matches the whole path; `(?<name>` is
  written `(?P<name>` as RE2 wants), `hosts`, `methods`, `headers` with one
  value, `strip_path` (Kong's default is true), `regex_priority` → `priority`;
- `preserve_host: false` (Kong's default) → `policies.host_rewrite` to the
  service's host, since Envoy keeps the client's Host by default;
- the service's `path` → a path rewrite: Kong sends service path + request path
  (stripped of the matched prefix when `strip_path`);
- a named capture that is one whole path segment (`/forecast/(?<apikey>[^/]+)`)
  is offered to the plugins as a path key template (`/forecast/{key}`).
"""

import re
from typing import Any

from turnout.admin.kong import plugins as kong_plugins
from turnout.admin.kong.report import KongImport, name_of, tags_of, unknown_fields

_FIELDS = {"id", "name", "service", "paths", "hosts", "methods", "headers", "strip_path"}
_FIELDS |= {"plugins", "regex_priority", "preserve_host", "protocols", "tags"}
_FIELDS |= {"created_at", "updated_at"}
_DEFAULTS: dict[str, Any] = {
    "https_redirect_status_code": 426,
    "path_handling": "v0",
    "request_buffering": True,
    "response_buffering": True,
    "snis": [],
    "sources": [],
    "destinations": [],
}
_LITERAL_PREFIX = re.compile(r"^(?:/[A-Za-z0-9_~-]+)*/$")
_NAMED_GROUP = re.compile(r"\(\?P?<(\w+)>")
_MAX_PRIORITY = 1000


def _group_end(rest: str) -> int:
    """Index of the `)` closing a group whose text after `(` is `rest`."""
    depth = 1
    for end, char in enumerate(rest):
        depth += {"(": 1, ")": -1}.get(char, 0)
        if depth == 0:
            return end
    return len(rest)


def _captures(paths: list[Any]) -> dict[str, str]:
    """Named captures that are one whole segment after literal segments → template."""
    found: dict[str, str] = {}
    for path in paths:
        if not isinstance(path, dict):
            continue
        regex = path["regex"]
        for match in _NAMED_GROUP.finditer(regex):
            prefix, rest = regex[: match.start()], regex[match.end() :]
            end = _group_end(rest)
            inner, after = rest[:end], rest[end + 1 :]
            try:  # the capture must stay inside one segment: it cannot match "/"
                one_segment = re.search(inner, "/") is None
            except re.error:
                one_segment = False
            segment = one_segment and (not after or after[0] in "/$(.")
            if _LITERAL_PREFIX.match(prefix) and segment:
                found.setdefault(match[1], prefix + "{key}")
    return found


def _paths(route: dict[str, Any], origin: str, out: KongImport) -> list[Any]:
    paths: list[Any] = []
    for path in route.get("paths") or []:
        if path.startswith("~"):
            regex = path[1:].removeprefix("^").replace("(?<", "(?P<")
            paths.append({"regex": regex if regex.endswith("$") else regex + ".*"})
            out.imported.append(
                f"{origin}: regex path {path!r} imported as whole-path regex {paths[-1]['regex']!r}"
            )
        else:
            paths.append(path)
    return paths


def route_data(
    route: dict[str, Any],
    index: int,
    svc: dict[str, Any],
    service: tuple[str, str, str],
    svc_policies: dict[str, Any],
    everywhere: list[dict[str, Any]],
    out: KongImport,
) -> dict[str, Any] | None:
    """A Kong route → route data. `service` is (Turnout service name, Kong path, Host).

    `svc_policies` are the timeouts and retries of its Kong service; `everywhere`
    the global plugins.
    """
    target, svc_path, host = service
    name = name_of(route.get("name") or f"{svc.get('name') or target}-route-{index}")
    origin = f"route {name}"
    unknown_fields(route, _FIELDS, _DEFAULTS, origin, out)
    if "http" not in (route.get("protocols") or ["http"]):
        out.differs.append(f"{origin}: Kong served it on https only; Turnout's listener is http")
    headers = {}
    for header, values in (route.get("headers") or {}).items():
        if len(values) != 1:
            # Dropping the condition would widen the route: skip the route instead.
            out.not_mapped.append(
                f"{origin}: skipped, header {header} has {len(values)} values "
                "(Turnout matches one exact value)"
            )
            return None
        headers[header] = values[0]
    paths = _paths(route, origin, out)
    fields = kong_plugins.route_fields(
        route.get("plugins") or [],
        svc.get("plugins") or [],
        everywhere,
        origin,
        out,
        _captures(paths),
        shared=f"kong-service-{target}"[:128],
    )
    if fields.pop("skip", False):
        return None
    policies = {**svc_policies, **fields.pop("policies", {})}
    path_key = any(s.get("path") for s in fields.get("auth", {}).get("key_sources", []))
    strip = bool(route.get("strip_path", True))
    prefixes_only = all(isinstance(p, str) for p in paths)
    if strip and (not prefixes_only or path_key):
        strip = False
        out.not_mapped.append(
            f"{origin}: strip_path dropped (Turnout strips prefix paths only, without a path key)"
        )
    base = svc_path.rstrip("/")
    if base and path_key:
        out.not_mapped.append(f"{origin}: service path {svc_path!r} not added (path key route)")
    elif base and strip:
        policies["rewrite"] = {"prefix": base}
        strip = False
    elif base:
        policies["rewrite"] = {"regex": "^(.*)$", "substitution": base.replace("\\", "") + "\\1"}
    if not route.get("preserve_host") and host:
        policies["host_rewrite"] = host
    elif not route.get("preserve_host"):
        out.differs.append(
            f"{origin}: preserve_host=false: the upstream gets the client's Host "
            "(Kong sent the upstream target's)"
        )
    priority = int(route.get("regex_priority") or 0)
    if abs(priority) > _MAX_PRIORITY:
        out.differs.append(f"{origin}: regex_priority {priority} clamped to ±{_MAX_PRIORITY}")
        priority = max(-_MAX_PRIORITY, min(_MAX_PRIORITY, priority))
    if priority and prefixes_only:
        priority = 0  # Kong orders only regex paths by it.
    elif priority and not all(isinstance(p, dict) for p in paths):
        out.differs.append(f"{origin}: regex_priority also ranks its prefix paths")
    data: dict[str, Any] = {
        **fields,
        "name": name,
        "service": target,
        "paths": paths,
        "hosts": route.get("hosts") or [],
        "methods": route.get("methods") or [],
        "headers": headers,
        "strip_path": strip,
        "priority": priority,
        "tags": tags_of(route),
    }
    if policies:
        data["policies"] = policies
    return data

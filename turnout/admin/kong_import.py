"""`turnout import kong FILE`: a decK/Kong declarative file (`_format_version: "3.0"`)
turned into a Turnout declaration, with a report of everything it could not map.

What maps:
- a service with `url` or `protocol/host/port` (http, https) → a service;
- its routes (nested or top-level naming it): `paths` (a `~` path is a Kong regex,
  matched from the start: it becomes an RE2 regex with `.*` appended, since Turnout
  matches the whole path), `hosts`, `methods`, `headers` with one value,
  `strip_path` (Kong's default is true) → routes;
- a service whose host is an upstream → one service per target
  (`<upstream>-t<i>`, weight 0 targets included) and a split per route over them
  with the targets' weights; the route's own service is the heaviest target.

- consumers (`username`, else `custom_id`; `tags`) → consumers, and their
  `keyauth_credentials` → their API keys (`keys`, stored by the caller after the
  apply through the key store's import path);
- the `key-auth`, `rate-limiting` and `request-transformer` plugins (global, on a
  service or on a route) → route `auth`, `limits` and `policies.request_headers`
  (see `kong_plugins.py`; the most specific plugin wins, as in Kong).

Everything else goes to the report, never silently: service paths (Turnout
services have no path prefix), other protocols, headers with several values,
unknown route fields, other plugins and the parts of the three above with no
Turnout equivalent. Keys are never printed.

Every imported entity carries tag `kong-import`, so the apply manages exactly
the imported entities (`--select-tag kong-import`) and leaves others alone.
"""

import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ValidationError

from turnout.admin import kong_plugins
from turnout.models.entities import ENTITIES
from turnout.models.types import Tag

IMPORT_TAG = "kong-import"
_ROUTE_FIELDS_IGNORED = {"id", "service", "protocols", "created_at", "updated_at", "tags"}
_ROUTE_FIELDS_MAPPED = {"name", "paths", "hosts", "methods", "headers", "strip_path", "plugins"}
_ROUTE_FIELD_DEFAULTS: dict[str, Any] = {
    "preserve_host": False,
    "regex_priority": 0,
    "https_redirect_status_code": 426,
    "path_handling": "v0",
    "request_buffering": True,
    "response_buffering": True,
    "plugins": [],
}
_TAG = re.compile(r"^[A-Za-z0-9._~:/=-]{1,64}$")


@dataclass
class KongImport:
    """The declaration made from a Kong file, and what was left out and why."""

    target: dict[str, dict[str, BaseModel]] = field(
        default_factory=lambda: {kind: {} for kind in ENTITIES}
    )
    imported: list[str] = field(default_factory=list)
    not_mapped: list[str] = field(default_factory=list)
    keys: dict[str, list[str]] = field(default_factory=dict, repr=False)
    """Consumer name → its Kong keys, in clear: stored after the apply, never printed."""

    def add(self, kind: str, data: dict[str, Any], origin: str) -> bool:
        try:
            spec = ENTITIES[kind].spec.model_validate(data)
        except ValidationError as exc:
            first = exc.errors(include_url=False)[0]
            where = ".".join(map(str, first["loc"]))
            self.not_mapped.append(f"{origin}: {where}: {first['msg']}")
            return False
        self.target[kind][data["name"]] = spec
        self.imported.append(f"{kind} {data['name']} (from {origin})")
        return True


def _name(text: str) -> str:
    cleaned = re.sub(r"[^A-Za-z0-9._~-]", "-", text).strip("-._~") or "unnamed"
    return cleaned[:128]


def _tags(item: dict[str, Any]) -> list[Tag]:
    return [t for t in item.get("tags") or [] if _TAG.match(t)] + [IMPORT_TAG]


def _service_url(svc: dict[str, Any], origin: str, out: KongImport) -> tuple[str, str] | None:
    """(scheme, host[:port]) of a Kong service, or None if it cannot be mapped."""
    if svc.get("url"):
        parts = urlsplit(svc["url"])
        scheme, host, port, path = parts.scheme, parts.hostname or "", parts.port, parts.path
    else:
        scheme, host = svc.get("protocol", "http"), svc.get("host", "")
        port, path = svc.get("port"), svc.get("path")
    if scheme not in ("http", "https"):
        out.not_mapped.append(f"{origin}: protocol {scheme!r} (Turnout proxies http/https)")
        return None
    if path not in (None, "", "/"):
        out.not_mapped.append(
            f"{origin}: path {path!r} not mapped (Turnout services have no path prefix); "
            "requests go to the upstream without it"
        )
    return scheme, f"{host}:{port}" if port else host


def _paths(route: dict[str, Any], origin: str, out: KongImport) -> list[Any]:
    paths: list[Any] = []
    for path in route.get("paths") or []:
        if path.startswith("~"):
            regex = path[1:].removeprefix("^")
            paths.append({"regex": regex if regex.endswith("$") else regex + ".*"})
            out.not_mapped.append(
                f"{origin}: regex path {path!r} imported as whole-path regex {paths[-1]['regex']!r}"
            )
        else:
            paths.append(path)
    return paths


def _route(
    route: dict[str, Any],
    index: int,
    svc_name: str,
    service: str,
    plugins: tuple[list[dict[str, Any]], list[dict[str, Any]]],
    out: KongImport,
) -> dict[str, Any] | None:
    """A Kong route → route data; `plugins` are its service's and the global ones."""
    name = _name(route.get("name") or f"{svc_name}-route-{index}")
    origin = f"route {name}"
    for key, value in route.items():
        known = key in _ROUTE_FIELDS_IGNORED | _ROUTE_FIELDS_MAPPED
        if not known and value not in (None, _ROUTE_FIELD_DEFAULTS.get(key)):
            out.not_mapped.append(f"{origin}: {key}={value!r} not mapped")
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
    strip = bool(route.get("strip_path", True)) and all(isinstance(p, str) for p in paths)
    if route.get("strip_path", True) and not strip:
        out.not_mapped.append(f"{origin}: strip_path dropped (works with prefix paths only)")
    for plugin in route.get("plugins") or []:
        _plugin(plugin, origin, out)
    extra = kong_plugins.route_fields(route.get("plugins") or [], *plugins, origin, out)
    return {
        **extra,
        "name": name,
        "service": service,
        "paths": paths,
        "hosts": route.get("hosts") or [],
        "methods": route.get("methods") or [],
        "headers": headers,
        "strip_path": strip,
        "tags": _tags(route),
    }


def _plugin(plugin: dict[str, Any], scope: str, out: KongImport) -> None:
    """Report a plugin with no Turnout equivalent (mapped ones: `route_fields`)."""
    name = plugin.get("name", "?")
    if not plugin.get("enabled", True):
        out.not_mapped.append(f"plugin {name} on {scope}: disabled, skipped")
    elif name not in kong_plugins.MAPPED_PLUGINS:
        out.not_mapped.append(f"plugin {name} on {scope}: no Turnout equivalent")


def convert(doc: dict[str, Any]) -> KongImport:
    """A Kong declarative document → `KongImport` (nothing written)."""
    out = KongImport()
    if str(doc.get("_format_version")) not in ("3.0", "2.1", "1.1"):
        out.not_mapped.append(f"_format_version {doc.get('_format_version')!r} unexpected")
    upstreams = {u["name"]: u for u in doc.get("upstreams") or []}
    everywhere = doc.get("plugins") or []
    _consumers(doc, out)
    loose_routes: dict[str, list[dict[str, Any]]] = {}
    for route in doc.get("routes") or []:
        ref = route.get("service")
        ref = ref.get("name") if isinstance(ref, dict) else ref
        loose_routes.setdefault(str(ref), []).append(route)
    for svc in doc.get("services") or []:
        svc_name = _name(svc.get("name") or svc.get("host", "service"))
        origin = f"service {svc_name}"
        located = _service_url(svc, origin, out)
        if located is None:
            continue
        scheme, hostport = located
        host = hostport.rsplit(":", 1)[0]
        routes = [*(svc.get("routes") or []), *loose_routes.pop(svc.get("name"), [])]
        targets: list[tuple[str, int]] = []
        if host in upstreams:
            for i, t in enumerate(upstreams[host].get("targets") or []):
                target_name = _name(f"{host}-t{i}")
                data = {"name": target_name, "url": f"{scheme}://{t['target']}", "tags": _tags(t)}
                if target_name in out.target["service"] or out.add("service", data, origin):
                    targets.append((target_name, int(t.get("weight", 100))))
            if not targets:
                out.not_mapped.append(f"{origin}: upstream {host} has no usable target")
                continue
            main = max(targets, key=lambda t: t[1])[0]
        else:
            data = {"name": svc_name, "url": f"{scheme}://{hostport}", "tags": _tags(svc)}
            if not out.add("service", data, origin):
                continue
            main = svc_name
        for plugin in svc.get("plugins") or []:
            _plugin(plugin, origin, out)
        for i, route in enumerate(routes):
            plugins = (svc.get("plugins") or [], everywhere)
            data = _route(route, i, svc_name, main, plugins, out)
            if data is None or not out.add("route", data, f"{origin} route {i}"):
                continue
            if len(targets) > 1:
                split = {
                    "name": _name(f"{data['name']}-targets"),
                    "route": data["name"],
                    "targets": [{"service": s, "weight": w} for s, w in targets],
                    "tags": [IMPORT_TAG],
                }
                out.add("split", split, f"upstream {host}")
    for ref in loose_routes:
        out.not_mapped.append(f"routes of unknown service {ref!r} skipped")
    for plugin in everywhere:
        _plugin(plugin, "everything (global)", out)
    return out


def _consumers(doc: dict[str, Any], out: KongImport) -> None:
    """Kong consumers → consumers, their keys into `out.keys` (never into the report)."""
    for item in doc.get("consumers") or []:
        who = item.get("username") or item.get("custom_id")
        if not who:
            out.not_mapped.append("a consumer with neither username nor custom_id skipped")
            continue
        name = _name(str(who))
        data, keys = kong_plugins.consumer(item, name, _tags(item), out)
        if out.add("consumer", data, f"consumer {who}") and keys:
            out.keys[name] = keys
            out.imported.append(f"consumer {name}: {len(keys)} key(s), kept out of this report")

"""`turnout import kong FILE`: a decK/Kong declarative file (`_format_version: "3.0"`)
turned into a Turnout declaration, with a report of everything it changes.

The pieces: services.py (services, upstreams, timeouts, retries, health checks),
routes.py (routes, service paths, URI captures), plugins.py and transform.py (the
plugins with a Turnout equivalent), consumers.py (consumers, keys, acl groups),
report.py (the result). Plugins may sit inside a service, route or consumer, or
at the top level naming one (`service:`, `route:`, `consumer:`): either way they
apply to that entity only; a top-level plugin naming nothing is global.

Every imported entity carries tag `kong-import`, so the apply manages exactly
the imported entities (`--select-tag kong-import`) and leaves others alone.
Nothing here writes anything or reads a clock but `now`.
"""

import copy
from datetime import UTC, datetime
from typing import Any

from turnout.admin.kong.consumers import convert_consumers
from turnout.admin.kong.plugins import MAPPED_PLUGINS
from turnout.admin.kong.report import IMPORT_TAG, KongImport, name_of, tags_of
from turnout.admin.kong.routes import route_data
from turnout.admin.kong.services import locate, route_policies, service_data

__all__ = ["IMPORT_TAG", "KongImport", "convert"]

_TOP_LEVEL = {"_format_version", "_transform", "_info", "_workspace", "services", "routes"}
_TOP_LEVEL |= {"upstreams", "consumers", "plugins"}


def _ref(value: Any) -> str | None:
    """A decK reference: a name, or `{name: ...}` / `{id: ...}`."""
    if isinstance(value, dict):
        value = value.get("name") or value.get("id")
    return None if value is None else str(value)


def _report_plugin(plugin: dict[str, Any], scope: str, out: KongImport) -> None:
    """Report a plugin with no Turnout equivalent (mapped ones: `route_fields`)."""
    name = plugin.get("name", "?")
    if not plugin.get("enabled", True):
        out.not_mapped.append(f"plugin {name} on {scope}: disabled, skipped")
    elif name not in MAPPED_PLUGINS:
        out.not_mapped.append(f"plugin {name} on {scope}: no Turnout equivalent")


def _place_plugins(doc: dict[str, Any], out: KongImport) -> list[dict[str, Any]]:
    """Move top-level plugins that name a service, route or consumer onto it.

    Returns the global ones. A plugin naming two entities (route and consumer)
    applies to their combination only, which Turnout cannot express.
    """
    entities: dict[str, dict[str, dict[str, Any]]] = {"service": {}, "route": {}, "consumer": {}}
    for svc in doc.get("services") or []:
        entities["service"][str(svc.get("name") or svc.get("id"))] = svc
        for route in svc.get("routes") or []:
            entities["route"][str(route.get("name") or route.get("id"))] = route
    for route in doc.get("routes") or []:
        entities["route"][str(route.get("name") or route.get("id"))] = route
    for item in doc.get("consumers") or []:
        entities["consumer"][str(item.get("username") or item.get("custom_id"))] = item
    everywhere = []
    for plugin in doc.get("plugins") or []:
        refs = {kind: _ref(plugin.get(kind)) for kind in entities if plugin.get(kind)}
        if not refs:
            everywhere.append(plugin)
        elif len(refs) > 1:
            scope = " and ".join(f"{k} {v}" for k, v in refs.items())
            out.not_mapped.append(f"plugin {plugin.get('name')} on {scope}: combined scope")
        else:
            ((kind, ref),) = refs.items()
            owner = entities[kind].get(str(ref))
            if owner is None:
                out.not_mapped.append(f"plugin {plugin.get('name')} on unknown {kind} {ref!r}")
            else:
                owner.setdefault("plugins", []).append(plugin)
    return everywhere


def convert(doc: dict[str, Any], now: datetime | None = None) -> KongImport:
    """A Kong declarative document → `KongImport` (nothing written).

    `now` is when keys' `ttl` starts counting (default: the current time).
    """
    out = KongImport()
    if str(doc.get("_format_version")) not in ("3.0", "2.1", "1.1"):
        out.not_mapped.append(f"_format_version {doc.get('_format_version')!r} unexpected")
    for key, value in doc.items():
        if key not in _TOP_LEVEL and value:
            out.not_mapped.append(f"{key}: not mapped")
    doc = copy.deepcopy(doc)  # plugins are moved onto their entities below
    doc["services"] = doc.get("services") or []
    everywhere = _place_plugins(doc, out)
    upstreams = {u["name"]: u for u in doc.get("upstreams") or []}
    convert_consumers(doc, out, now or datetime.now(UTC))
    loose_routes: dict[str, list[dict[str, Any]]] = {}
    for route in doc.get("routes") or []:
        loose_routes.setdefault(str(_ref(route.get("service"))), []).append(route)
    used_upstreams: set[str] = set()
    for svc in doc["services"]:
        svc_name = name_of(svc.get("name") or svc.get("host", "service"))
        origin = f"service {svc_name}"
        routes = [*(svc.get("routes") or []), *loose_routes.pop(str(svc.get("name")), [])]
        if svc.get("enabled") is False:
            out.not_mapped.append(f"{origin}: disabled in Kong; skipped with its routes")
            continue
        located = locate(svc, origin, out)
        if located is None:
            continue
        scheme, host, port, path = located
        upstream = upstreams.get(host)
        tags = tags_of(svc, upstream or {})
        data = service_data(svc, svc_name, (scheme, host, port), upstream, origin, out)
        if data is None or not out.add("service", {**data, "tags": tags}, origin):
            continue
        if upstream is not None:
            used_upstreams.add(host)
            header = upstream.get("host_header")
            host_header = str(header) if header else ""
        else:
            default = {"http": "80", "https": "443"}[scheme]
            host_header = host if port in ("", default) else f"{host}:{port}"
        for plugin in svc.get("plugins") or []:
            _report_plugin(plugin, origin, out)
        policies = route_policies(svc, origin, out)
        for i, route in enumerate(routes):
            for plugin in route.get("plugins") or []:
                _report_plugin(plugin, f"route {route.get('name') or i}", out)
            made = route_data(
                route, i, svc, (svc_name, path, host_header), policies, everywhere, out
            )
            if made is not None:
                out.add("route", made, f"{origin} route {i}")
    for name in sorted(set(upstreams) - used_upstreams):
        out.not_mapped.append(f"upstream {name}: no service uses it; skipped")
    for ref in loose_routes:
        out.not_mapped.append(f"routes of unknown service {ref!r} skipped")
    for plugin in everywhere:
        _report_plugin(plugin, "everything (global)", out)
    return out

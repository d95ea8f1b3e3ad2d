"""Kong services and upstreams → Turnout services, and the route policies they imply.

- `url` or `protocol/host/port` (http, https) → the service's `url`; a host that
  names an upstream → the service's weighted `endpoints` (one per target, Kong's
  weights scaled to Envoy's 1-128; weight 0 targets get no traffic, as in Kong),
  so Envoy balances and health-checks them as one cluster, as Kong does.
- `connect_timeout` → `connect_timeout_ms`; `read_timeout` → each route's
  `policies.timeout_ms`; `write_timeout` → `policies.idle_timeout_ms` (when below
  the read timeout; see `route_policies`); `retries` → `policies.retries`.
  Kong's defaults (60 s each, 5 retries) apply to what the file leaves out.
- upstream `healthchecks.active` → `policies.health_check`; `healthchecks.passive`
  → `policies.outlier_detection`.
- `path` → a path rewrite on each route (routes.py), as Kong joins the service
  path and the (stripped) request path.
"""

from typing import Any
from urllib.parse import urlsplit

from turnout.admin.kong.report import KongImport, unknown_fields

KONG_TIMEOUT_MS = 60_000
"""Kong's default connect, read and write timeout of a service."""
KONG_RETRIES = 5
TURNOUT_MAX_CONNECT_MS = 60_000
TURNOUT_MAX_RETRIES = 10
KONG_TARGET_PORT = 8000
"""Kong's port for a target given without one."""
_SERVICE_FIELDS = {
    *("id", "name", "url", "protocol", "host", "port", "path", "tags", "routes", "plugins"),
    *("connect_timeout", "read_timeout", "write_timeout", "retries", "created_at"),
    "updated_at",
}
_SERVICE_DEFAULTS: dict[str, Any] = {"enabled": True, "tls_verify": None, "ca_certificates": None}
_UPSTREAM_FIELDS = {"id", "name", "targets", "tags", "healthchecks", "created_at", "updated_at"}
_UPSTREAM_DEFAULTS: dict[str, Any] = {
    "algorithm": "round-robin",
    "hash_on": "none",
    "hash_fallback": "none",
    "hash_on_cookie_path": "/",
    "slots": 10000,
    "use_srv_name": False,
}


def locate(svc: dict[str, Any], origin: str, out: KongImport) -> tuple[str, str, str, str] | None:
    """(scheme, host, port or "", path) of a Kong service, or None if it cannot be mapped."""
    unknown_fields(svc, _SERVICE_FIELDS, _SERVICE_DEFAULTS, origin, out)
    if svc.get("url"):
        parts = urlsplit(svc["url"])
        scheme, host, path = parts.scheme, parts.hostname or "", parts.path
        port = str(parts.port or "")
    else:
        scheme, host = svc.get("protocol") or "http", svc.get("host") or ""
        port, path = str(svc.get("port") or ""), svc.get("path") or ""
    if scheme not in ("http", "https"):
        out.not_mapped.append(f"{origin}: protocol {scheme!r} (Turnout proxies http/https)")
        return None
    return scheme, host, port, path


def service_data(
    svc: dict[str, Any],
    name: str,
    where: tuple[str, str, str],
    upstream: dict[str, Any] | None,
    origin: str,
    out: KongImport,
) -> dict[str, Any] | None:
    """The Turnout service for a Kong service (its host an address or an upstream)."""
    scheme, host, port = where
    data: dict[str, Any] = {"name": name, "connect_timeout_ms": _connect_timeout(svc, origin, out)}
    policies: dict[str, Any] = {}
    if upstream is None:
        data["url"] = f"{scheme}://{host}:{port}" if port else f"{scheme}://{host}"
    else:
        endpoints = _endpoints(upstream, f"upstream {upstream['name']}", out)
        if not endpoints:
            out.not_mapped.append(f"{origin}: upstream {host} has no usable target; skipped")
            return None
        data["endpoints"] = endpoints
        if scheme == "https":
            policies["tls"] = {}
            out.differs.append(
                f"{origin}: https to the upstream's targets, certificate not checked"
            )
        policies.update(_health(upstream, f"upstream {upstream['name']}", out))
    if policies:
        data["policies"] = policies
    return data


def _connect_timeout(svc: dict[str, Any], origin: str, out: KongImport) -> int:
    value = int(svc.get("connect_timeout") or KONG_TIMEOUT_MS)
    if value > TURNOUT_MAX_CONNECT_MS:
        out.differs.append(
            f"{origin}: connect_timeout {value} ms lowered to Turnout's maximum "
            f"{TURNOUT_MAX_CONNECT_MS} ms"
        )
        return TURNOUT_MAX_CONNECT_MS
    return max(1, value)


def route_policies(svc: dict[str, Any], origin: str, out: KongImport) -> dict[str, Any]:
    """The policies each route of `svc` gets from the service's timeouts and retries.

    Kong's read timeout bounds the wait between two reads of the response; the
    closest Envoy bound is the route timeout (end of request to end of response),
    which gives the same 504 to an upstream that does not answer in time. Kong's
    write timeout bounds the wait between two writes of the request: Envoy's
    stream idle timeout. Set equal to the route timeout the two would race (408 or
    504), so it is set only when shorter.
    """
    read = int(svc.get("read_timeout") or KONG_TIMEOUT_MS)
    write = int(svc.get("write_timeout") or KONG_TIMEOUT_MS)
    policies: dict[str, Any] = {"timeout_ms": read}
    out.once(
        "read_timeout → route timeout: Kong times the gap between two reads of the "
        "response, Envoy the whole response (a response streaming longer is cut)"
    )
    if write < read:
        policies["idle_timeout_ms"] = write
    else:
        out.once(
            "write_timeout not below read_timeout: a stalled request upload is cut by "
            "Envoy's stream idle timeout (5 min) instead"
        )
    retries = svc.get("retries")
    retries = KONG_RETRIES if retries is None else int(retries)
    if retries > TURNOUT_MAX_RETRIES:
        out.differs.append(f"{origin}: retries {retries} lowered to {TURNOUT_MAX_RETRIES}")
        retries = TURNOUT_MAX_RETRIES
    if retries > 0:
        # Kong (nginx) retries only where the request never reached the upstream
        # or is idempotent; `reset-before-request` and `connect-failure` never
        # send a request twice.
        policies["retries"] = {
            "attempts": retries,
            "on": ["connect-failure", "reset-before-request"],
        }
        out.once(
            "retries: Envoy retries failed connections and resets before the request "
            "was sent; Kong also retries idempotent requests after a read timeout"
        )
    return policies


def _endpoints(upstream: dict[str, Any], origin: str, out: KongImport) -> list[dict[str, Any]]:
    unknown_fields(upstream, _UPSTREAM_FIELDS, _UPSTREAM_DEFAULTS, origin, out)
    raw: list[tuple[str, int, int]] = []
    for i, target in enumerate(upstream.get("targets") or []):
        address, _, port = str(target.get("target", "")).rpartition(":")
        if not address or not port.isdigit():
            address, port = str(target.get("target", "")), str(KONG_TARGET_PORT)
        weight = int(target.get("weight", 100))
        if weight == 0:
            out.imported.append(f"{origin}: target {i} has weight 0: no traffic, as in Kong")
            continue
        raw.append((address.strip("[]"), int(port), weight))
    if not raw:
        return []
    top = max(w for _, _, w in raw)
    scale = 128 / top if top > 128 else 1  # Envoy's endpoint weights are 1-128 here
    endpoints = [{"address": a, "port": p, "weight": max(1, round(w * scale))} for a, p, w in raw]
    if any(e["weight"] != w * scale for e, (_, _, w) in zip(endpoints, raw, strict=True)):
        out.differs.append(f"{origin}: target weights scaled to 1-128; shares rounded")
    return endpoints


def _health(upstream: dict[str, Any], origin: str, out: KongImport) -> dict[str, Any]:
    """Kong health checks → `health_check` (active) and `outlier_detection` (passive)."""
    checks = upstream.get("healthchecks") or {}
    policies: dict[str, Any] = {}
    active = checks.get("active") or {}
    healthy, unhealthy = active.get("healthy") or {}, active.get("unhealthy") or {}
    intervals = [int(x) for x in (healthy.get("interval"), unhealthy.get("interval")) if x]
    if intervals:
        kind = active.get("type") or "http"
        if kind not in ("http", "https"):
            out.not_mapped.append(f"{origin}: active {kind} health checks not mapped (HTTP only)")
        else:
            failures = max(
                int(unhealthy.get(k) or 0) for k in ("http_failures", "tcp_failures", "timeouts")
            )
            policies["health_check"] = {
                "path": active.get("http_path") or "/",
                "interval_ms": min(intervals) * 1000,
                "timeout_ms": int(float(active.get("timeout") or 1) * 1000),
                "unhealthy_threshold": max(1, failures),
                "healthy_threshold": max(1, int(healthy.get("successes") or 1)),
            }
            out.differs.append(
                f"{origin}: active health checks every {min(intervals)} s for healthy and "
                "unhealthy targets alike; only 200 counts as healthy (Kong: "
                f"{healthy.get('http_statuses') or [200, 302]})"
            )
    passive = _passive(checks.get("passive") or {}, "health_check" in policies, origin, out)
    if passive:
        policies["outlier_detection"] = passive
    return policies


KONG_PASSIVE_UNHEALTHY_STATUSES = (429, 500, 503)
"""Kong's default `healthchecks.passive.unhealthy.http_statuses`."""
_GATEWAY_STATUSES = frozenset((502, 503, 504))
"""What Envoy's `consecutive_gateway_failure` counts."""
TURNOUT_MAX_EJECTION_MS = 3_600_000


def _passive(passive: dict[str, Any], active: bool, origin: str, out: KongImport) -> dict[str, Any]:
    """Kong's passive checks (circuit breaker) → `outlier_detection`, or {} when off.

    Kong keeps a target's counters of unhealthy statuses, TCP failures and timeouts,
    each reset by a healthy response, and takes the target out when one reaches its
    threshold. Envoy's consecutive counters do the same, per kind it knows: 5xx (or
    502/503/504) responses, and connection failures and timeouts together once
    they are split from the responses (`split_local_origin_errors`).
    """
    unhealthy = passive.get("unhealthy") or {}
    kind = passive.get("type") or "http"
    http = int(unhealthy.get("http_failures") or 0) if kind in ("http", "https") else 0
    if kind not in ("http", "https") and int(unhealthy.get("http_failures") or 0):
        out.not_mapped.append(f"{origin}: passive {kind} checks' http_failures not mapped")
    tcp, timeouts = int(unhealthy.get("tcp_failures") or 0), int(unhealthy.get("timeouts") or 0)
    if not (http or tcp or timeouts):
        return {}
    # Kong counts connection failures and timeouts apart from the responses.
    spec: dict[str, Any] = {"split_local_origin_errors": True, "max_ejection_percent": 100}
    spec["consecutive_5xx"] = 0
    if http:
        statuses = {
            int(x) for x in unhealthy.get("http_statuses") or KONG_PASSIVE_UNHEALTHY_STATUSES
        }
        fives = {x for x in statuses if 500 <= x <= 599}
        others = sorted(statuses - fives)
        if not fives:
            out.not_mapped.append(
                f"{origin}: passive http_failures on statuses {sorted(statuses)} not mapped "
                "(Envoy counts only 5xx)"
            )
        elif fives <= _GATEWAY_STATUSES:
            spec["consecutive_gateway_failure"] = http
            counted = sorted(_GATEWAY_STATUSES)
        else:
            spec["consecutive_5xx"] = http
            counted = ["every 5xx"]
        if fives:
            extra = "" if not others else f"; {others} not counted"
            out.differs.append(
                f"{origin}: passive checks eject a target after {http} consecutive "
                f"{'/'.join(map(str, counted))} (Kong: {sorted(statuses)}){extra}"
            )
    local = min(x for x in (tcp, timeouts, 1001) if x)
    if local <= 1000:
        spec["consecutive_local_origin_failure"] = local
        if tcp != timeouts:
            out.differs.append(
                f"{origin}: passive tcp_failures {tcp} and timeouts {timeouts}: Envoy counts "
                f"connection failures, resets and timeouts together and ejects after {local}"
            )
    if "consecutive_gateway_failure" not in spec and not spec["consecutive_5xx"] and local > 1000:
        return {}
    if active:
        # Kong re-admits a target only when active checks (or an operator) say it
        # is healthy; Envoy un-ejects on a passing active check, so the ejection
        # itself is made as long as Turnout allows.
        spec["base_ejection_time_ms"] = TURNOUT_MAX_EJECTION_MS
        out.differs.append(f"{origin}: passive ejection lasts until an active check passes, or 1 h")
    else:
        out.differs.append(
            f"{origin}: a target ejected by passive checks comes back after 30 s (doubling "
            "with each ejection, at most 5 min); Kong keeps it out until an operator "
            "re-enables it"
        )
    if int((passive.get("healthy") or {}).get("successes") or 0):
        out.differs.append(
            f"{origin}: passive healthy.successes not mapped (an ejected target gets no "
            "traffic to count in Kong either; see its ejection time)"
        )
    out.once(
        "passive checks: when fewer than half of a service's targets are healthy, Envoy "
        "balances over all of them (panic mode); Kong only over the healthy ones"
    )
    return spec

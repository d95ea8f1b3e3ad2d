"""The Kong import's mapping and report (`turnout/admin/kong/`): nothing changes silently.

Each Kong field either becomes the Turnout field that behaves as Kong documents, or
shows up in the report (`differs` or `not_mapped`) saying what will differ.
"""

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from turnout.admin.kong import KongImport, convert
from turnout.models.policies import RoutePolicies

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def doc(**parts: Any) -> dict[str, Any]:
    return {"_format_version": "3.0", **parts}


def one_service(service: dict[str, Any] | None = None, **parts: Any) -> dict[str, Any]:
    svc = {"name": "s", "url": "http://10.0.0.1:8080", "routes": [{"name": "r", "paths": ["/r"]}]}
    return doc(services=[{**svc, **(service or {})}], **parts)


def route(out: KongImport, name: str = "r") -> dict[str, Any]:
    return out.target["route"][name].model_dump(mode="json", exclude_defaults=True)


def report(out: KongImport) -> str:
    return "\n".join(out.imported + out.differs + out.not_mapped)


def test_unset_timeouts_and_retries_keep_kongs_defaults() -> None:
    out = convert(one_service())
    assert out.target["service"]["s"].connect_timeout_ms == 60_000
    policies = route(out)["policies"]
    assert policies["timeout_ms"] == 60_000  # not Envoy's 15 s
    assert policies["retries"] == {
        "attempts": 5,
        "on": ["connect-failure", "reset-before-request"],
    }
    assert "read_timeout → route timeout" in report(out)


def test_set_timeouts_and_retries() -> None:
    service = {"connect_timeout": 2000, "read_timeout": 1000, "write_timeout": 500, "retries": 0}
    out = convert(one_service(service))
    assert out.target["service"]["s"].connect_timeout_ms == 2000
    policies = route(out)["policies"]
    assert policies["timeout_ms"] == 1000 and policies["idle_timeout_ms"] == 500
    assert "retries" not in policies
    big = convert(one_service({"connect_timeout": 120_000, "retries": 50}))
    assert big.target["service"]["s"].connect_timeout_ms == 60_000
    assert "connect_timeout 120000 ms lowered" in report(big)
    assert "retries 50 lowered to 10" in report(big)


def test_upstream_becomes_endpoints_with_health_checks_and_both_tags() -> None:
    upstream = {
        "name": "pool",
        "tags": ["pool-tag"],
        "targets": [
            {"target": "10.0.0.1:80", "weight": 300},
            {"target": "10.0.0.2", "weight": 100},
            {"target": "10.0.0.3:80", "weight": 0},
        ],
        "healthchecks": {
            "active": {
                "http_path": "/health",
                "healthy": {"interval": 5, "successes": 2},
                "unhealthy": {"interval": 2, "http_failures": 3},
            },
            "passive": {"unhealthy": {"http_failures": 4, "timeouts": 2}},
        },
        "algorithm": "least-connections",
    }
    out = convert(
        one_service({"url": None, "host": "pool", "tags": ["svc-tag"]}, upstreams=[upstream])
    )
    service = out.target["service"]["s"].model_dump(mode="json", exclude_defaults=True)
    assert service["endpoints"] == [
        {"address": "10.0.0.1", "port": 80, "weight": 128},
        {"address": "10.0.0.2", "port": 8000, "weight": 43},  # Kong's default target port
    ]
    assert service["tags"] == ["svc-tag", "pool-tag", "kong-import"]
    assert service["policies"]["health_check"] == {
        "path": "/health",
        "interval_ms": 2000,
        "unhealthy_threshold": 3,
        "healthy_threshold": 2,
    }
    assert service["policies"]["outlier_detection"] == {
        "consecutive_5xx": 4,
        "split_local_origin_errors": True,
        "consecutive_local_origin_failure": 2,
        "base_ejection_time_ms": 3_600_000,  # until an active check passes, as in Kong
        "max_ejection_percent": 100,
    }
    text = report(out)
    for part in (
        "target 2 has weight 0",
        "shares rounded",
        "after 4 consecutive every 5xx (Kong: [429, 500, 503]); [429] not counted",
        "tcp_failures 0 and timeouts 2: Envoy counts connection failures, resets and "
        "timeouts together and ejects after 2",
        "until an active check passes",
        "algorithm='least-connections' not mapped",
        "only 200 counts as healthy",
    ):
        assert part in text, part
    assert out.target["split"] == {}


def test_key_ttl_becomes_expiry_and_keys_stay_out_of_the_report() -> None:
    consumer = {
        "username": "u",
        "custom_id": "C-1",
        "keyauth_credentials": [
            {"key": "permanent-key-0123456"},
            {"key": "temporary-key-0123456", "ttl": 3600},
        ],
    }
    out = convert(one_service(consumers=[consumer]), now=NOW)
    assert out.keys == {"u": ["permanent-key-0123456", "temporary-key-0123456"]}
    assert out.expiry == {"temporary-key-0123456": NOW + timedelta(hours=1)}
    text = report(out) + repr(out)
    assert "permanent-key" not in text and "temporary-key" not in text
    assert "no X-Consumer-ID upstream" in text  # no id in the file
    spec = out.target["consumer"]["u"]
    assert spec.custom_id == "C-1" and spec.kong_id is None


def test_consumer_ids_kept_or_reported() -> None:
    good = {"username": "a", "id": "4e8f2d3c-0000-4000-8000-000000000001", "custom_id": "A 1"}
    bad = {"username": "b", "id": "x" * 256, "custom_id": "line\nbreak"}
    out = convert(one_service(consumers=[good, bad]))
    a, b = out.target["consumer"]["a"], out.target["consumer"]["b"]
    assert (a.kong_id, a.custom_id) == (good["id"], "A 1")
    assert (b.kong_id, b.custom_id) == (None, None)
    text = report(out)
    assert "consumer b: id not kept" in text and "consumer b: custom_id not kept" in text


def test_acl_scoped_to_a_service_by_a_top_level_plugin() -> None:
    two = doc(
        services=[
            {"name": "a", "url": "http://10.0.0.1", "routes": [{"name": "ra", "paths": ["/a"]}]},
            {"name": "b", "url": "http://10.0.0.1", "routes": [{"name": "rb", "paths": ["/b"]}]},
        ],
        plugins=[
            {"name": "key-auth", "config": {"hide_credentials": True}},
            {"name": "acl", "service": "a", "config": {"allow": ["gold", "nobody-has"]}},
        ],
        consumers=[
            {"username": "alice", "acls": [{"group": "gold"}]},
            {"username": "bob", "acls": [{"group": "silver"}]},
        ],
    )
    out = convert(two)
    assert route(out, "ra")["auth"]["allow_groups"] == ["gold"]
    assert "allow_groups" not in route(out, "rb")["auth"]  # not global
    assert out.target["consumer"]["alice"].groups == ["gold"]  # type: ignore[attr-defined]
    assert "global" not in " ".join(line for line in out.not_mapped if "acl" in line)


def test_acl_deny_lists_the_other_consumers_and_acl_without_auth_skips_the_route() -> None:
    base = one_service(
        {"plugins": [{"name": "key-auth"}, {"name": "acl", "config": {"deny": ["silver"]}}]},
        consumers=[
            {"username": "alice", "acls": [{"group": "gold"}]},
            {"username": "bob", "acls": [{"group": "silver"}]},
        ],
    )
    out = convert(base)
    assert route(out)["auth"]["allow_consumers"] == ["alice"]
    assert "a consumer created later is refused" in report(out)
    open_route = convert(one_service({"plugins": [{"name": "acl", "config": {"allow": ["x"]}}]}))
    assert open_route.target["route"] == {}
    assert "acl without key-auth: route skipped" in report(open_route)


def test_ip_restriction_and_cors_on_one_route() -> None:
    routes = [
        {
            "name": "r",
            "paths": ["/r"],
            "plugins": [
                {
                    "name": "ip-restriction",
                    "config": {"allow": ["10.0.0.0/8"], "deny": ["10.1.1.1"]},
                },
                {"name": "cors", "config": {"origins": ["https://a.example", "https://.*\\.b"]}},
            ],
        },
        {"name": "other", "paths": ["/o"]},
    ]
    out = convert(one_service({"routes": routes}))
    policies = route(out)["policies"]
    assert policies["ip_allow"] == ["10.0.0.0/8"] and policies["ip_deny"] == ["10.1.1.1/32"]
    assert policies["cors"]["allow_origins"] == ["https://a.example"]
    assert "TRACE" in policies["cors"]["allow_methods"]  # Kong's default methods
    assert "cors origin regex 'https://.*\\\\.b' not mapped" in report(out)
    other = route(out, "other")["policies"]
    assert "ip_allow" not in other and "cors" not in other
    # Kong's cors without origins allows every origin.
    star = convert(one_service({"plugins": [{"name": "cors"}]}))
    assert route(star)["policies"]["cors"]["allow_origins"] == ["*"]


def test_fleet_rate_limits_become_quotas_shared_by_the_services_routes() -> None:
    service = {
        "plugins": [
            {"name": "key-auth"},
            {"name": "rate-limiting", "config": {"second": 5, "minute": 100, "policy": "redis"}},
        ],
        "routes": [{"name": "r", "paths": ["/r"]}, {"name": "r2", "paths": ["/r2"]}],
    }
    out = convert(one_service(service))
    for name in ("r", "r2"):
        assert route(out, name)["limits"] == {
            "burst": [{"requests": 5, "per": "second"}],
            "quota": [{"requests": 100, "per": "minute"}],
            "shared": "kong-service-s",
        }
    assert "N Envoys allow N times it" in report(out)
    local = convert(
        one_service(
            {"plugins": [{"name": "key-auth"}, {"name": "rate-limiting", "config": {"minute": 9}}]}
        )
    )
    assert route(local)["limits"]["burst"] == [{"requests": 9, "per": "minute"}]


def _passive_only(passive: dict[str, Any]) -> tuple[dict[str, Any] | None, str]:
    upstream = {
        "name": "pool",
        "targets": [{"target": "10.0.0.1:80"}, {"target": "10.0.0.2:80"}],
        "healthchecks": {"passive": passive},
    }
    out = convert(one_service({"url": None, "host": "pool"}, upstreams=[upstream]))
    service = out.target["service"]["s"].model_dump(mode="json", exclude_defaults=True)
    return (service.get("policies") or {}).get("outlier_detection"), report(out)


@pytest.mark.parametrize(
    ("passive", "expected", "said"),
    [
        # Gateway statuses only: Envoy's gateway-failure counter, not every 5xx.
        (
            {"unhealthy": {"http_failures": 3, "http_statuses": [502, 503]}},
            {"consecutive_5xx": 0, "consecutive_gateway_failure": 3},
            "after 3 consecutive 502/503/504 (Kong: [502, 503])",
        ),
        # Only connection failures: counted apart from responses.
        (
            {"unhealthy": {"tcp_failures": 2}},
            {"consecutive_5xx": 0, "consecutive_local_origin_failure": 2},
            "comes back after 30 s",
        ),
        # Statuses Envoy cannot count: reported, nothing ejects.
        ({"unhealthy": {"http_failures": 3, "http_statuses": [429]}}, None, "[429] not mapped"),
        # Kong's defaults (all thresholds 0): passive checks off.
        ({"unhealthy": {"http_statuses": [500]}}, None, ""),
        (
            {"type": "tcp", "unhealthy": {"http_failures": 2}},
            None,
            "passive tcp checks' http_failures not mapped",
        ),
    ],
)
def test_passive_health_checks(
    passive: dict[str, Any], expected: dict[str, Any] | None, said: str
) -> None:
    outlier, text = _passive_only(passive)
    if expected is None:
        assert outlier is None
    else:
        assert outlier == {
            "split_local_origin_errors": True,
            "max_ejection_percent": 100,
            **expected,
        }
    assert said in text


def test_request_transformer_and_consumer_headers() -> None:
    plugins = [
        {"name": "key-auth"},
        {
            "name": "request-transformer",
            "config": {
                "remove": {"headers": ["x-old"]},
                "rename": {"headers": ["a:b"]},
                "replace": {"headers": ["x-tier:gold"], "uri": "/new"},
                "add": {"headers": ["x-from:kong"]},
                "append": {"headers": ["x-more:1"]},
            },
        },
    ]
    out = convert(one_service({"plugins": plugins}))
    r = route(out)
    assert r["policies"]["request_headers"] == {
        "remove": ["x-old"],
        "replace": {"x-tier": "gold"},
        "add_if_absent": {"x-from": "kong"},
        "add": {"x-more": "1"},
    }
    assert r["auth"]["kong_consumer_headers"] is True
    text = report(out)
    assert "rename.headers not mapped" in text and "replace.uri not mapped" in text
    assert "X-Consumer-ID, X-Consumer-Custom-ID and X-Credential-Identifier are not sent" in text


def test_service_path_is_joined_with_the_request_path() -> None:
    routes = [
        {"name": "r", "paths": ["/r"]},
        {"name": "kept", "paths": ["/k"], "strip_path": False},
        {"name": "re", "paths": ["~/v\\d+/x"], "strip_path": False},
    ]
    out = convert(one_service({"url": "http://10.0.0.1:8080/v1/", "routes": routes}))
    assert route(out)["policies"]["rewrite"] == {"prefix": "/v1"}
    assert "strip_path" not in route(out)  # false: the rewrite replaces the matched prefix
    rewrite = {"regex": "^(.*)$", "substitution": "/v1\\1"}
    assert route(out, "kept")["policies"]["rewrite"] == rewrite
    assert route(out, "re")["policies"]["rewrite"] == rewrite


def test_preserve_host_and_regex_priority() -> None:
    routes = [
        {"name": "r", "paths": ["~/a.*"], "regex_priority": 7},
        {"name": "keep", "paths": ["/k"], "preserve_host": True, "regex_priority": 3},
    ]
    out = convert(one_service({"routes": routes}))
    assert route(out)["priority"] == 7
    assert route(out)["policies"]["host_rewrite"] == "10.0.0.1:8080"  # Kong's Host
    assert "priority" not in route(out, "keep")  # Kong orders only regex paths by it
    assert "host_rewrite" not in route(out, "keep")["policies"]


def test_uri_capture_key_becomes_a_path_key_source() -> None:
    routes = [
        {
            "name": "forecast",
            "paths": ["~/forecast/(?<apikey>[^/]+)/(?<place>.+)$"],
            "plugins": [
                {
                    "name": "request-transformer",
                    "config": {"add": {"headers": ["apikey:$(uri_captures.apikey)"]}},
                },
                {"name": "key-auth", "config": {"hide_credentials": True}},
            ],
        }
    ]
    out = convert(one_service({"routes": routes}))
    r = route(out, "forecast")
    assert r["auth"]["key_sources"][0] == {"path": "/forecast/{key}"}
    assert r["paths"] == [{"kind": "regex", "value": "/forecast/(?P<apikey>[^/]+)/(?P<place>.+)$"}]
    assert "request_headers" not in r.get("policies", {})
    assert "strip_path dropped" in report(out)


def test_unknown_fields_and_top_level_keys_are_reported() -> None:
    out = convert(
        one_service(
            {"tls_verify": True, "routes": [{"name": "r", "paths": ["/r"], "snis": ["a.example"]}]},
            certificates=[{"cert": "..."}],
        )
    )
    text = report(out)
    assert "certificates: not mapped" in text
    assert "service s: tls_verify=True not mapped" in text
    assert "route r: snis=['a.example'] not mapped" in text


def test_route_policies_validate_cidrs_and_header_values() -> None:
    assert RoutePolicies(ip_allow=["10.0.0.1/8"]).ip_allow == ["10.0.0.0/8"]
    with pytest.raises(ValidationError, match="not an IP address or CIDR"):
        RoutePolicies(ip_deny=["10.0.0.300"])
    with pytest.raises(ValidationError, match="must not repeat"):
        RoutePolicies(ip_deny=["10.0.0.1", "10.0.0.1/32"])
    with pytest.raises(ValidationError, match="Envoy formatters"):
        RoutePolicies.model_validate({"request_headers": {"add_if_absent": {"x": "%REQ(a)%"}}})


def test_top_level_plugins_apply_to_the_entity_they_name() -> None:
    routes = [{"name": "r", "paths": ["/r"]}, {"name": "r2", "paths": ["/r2"]}]
    out = convert(
        one_service(
            {"routes": routes},
            plugins=[
                {
                    "name": "ip-restriction",
                    "route": {"name": "r"},
                    "config": {"deny": ["10.0.0.9"]},
                },
                {"name": "cors", "route": "r2", "consumer": "u"},
                {"name": "cors", "service": "missing"},
            ],
            consumers=[{"username": "u"}],
        )
    )
    assert route(out)["policies"]["ip_deny"] == ["10.0.0.9/32"]
    assert "ip_deny" not in route(out, "r2")["policies"]
    assert "cors" not in route(out, "r2")["policies"]
    text = report(out)
    assert "plugin cors on route r2 and consumer u: combined scope" in text
    assert "plugin cors on unknown service 'missing'" in text

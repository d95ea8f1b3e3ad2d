"""The admin API answers 422 (field and reason, nothing changed) to what Envoy would NACK.

Each reproducer was answered 201 and then refused by every Envoy, holding back the
whole fleet's updates. The specs' rules themselves are in
tests/models/test_validation_parity.py.
"""

from typing import Any

import pytest
from fastapi.testclient import TestClient

BAD_PEM = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----"


def _revision_and_events(client: TestClient) -> tuple[int, int]:
    revision = client.get("/healthz").json()["revision"]
    return revision, len(client.get("/audit", params={"limit": 1000}).json())


def _assert_422(
    client: TestClient, method: str, path: str, data: dict[str, Any], loc: list[Any], reason: str
) -> None:
    before = _revision_and_events(client)
    response = client.request(method, path, json=data)
    assert response.status_code == 422, response.text
    errors = response.json()["detail"]
    assert [e["loc"] for e in errors] == [loc]
    assert reason in errors[0]["msg"]
    assert _revision_and_events(client) == before
    assert client.get("/services/bad").status_code == 404


def _route(**policies: Any) -> dict[str, Any]:
    return {"name": "bad", "service": "orders", "paths": ["/bad"], "policies": policies}


@pytest.mark.parametrize(
    ("path", "data", "loc", "reason"),
    [
        (
            "/services",
            {"name": "bad", "url": "http://127.0.0.1:9", "policies": {"tls": {"ca_pem": BAD_PEM}}},
            ["body", "policies", "tls", "ca_pem"],
            "does not parse as PEM X.509",
        ),
        (
            "/services",
            {
                "name": "bad",
                "url": "http://127.0.0.1:9",
                "policies": {"health_check": {"path": "/health\u001e"}},
            },
            ["body", "policies", "health_check", "path"],
            "visible ASCII",
        ),
        (
            "/routes",
            _route(request_headers={"set": {"x-env": "prod\r\nx-admin: 1"}}),
            ["body", "policies", "request_headers", "set", "x-env"],
            "control characters",
        ),
        (
            "/routes",
            _route(response_headers={"add": {"x-env": "a\x00"}}),
            ["body", "policies", "response_headers", "add", "x-env"],
            "control characters",
        ),
        (
            "/routes",
            _route(host_rewrite="api.example.com\r\nx-admin: 1"),
            ["body", "policies", "host_rewrite"],
            "host",
        ),
        (
            "/routes",
            _route(host_rewrite="a\nb"),
            ["body", "policies", "host_rewrite"],
            "host",
        ),
    ],
)
def test_reproducers_are_refused(
    seeded: TestClient, path: str, data: dict[str, Any], loc: list[Any], reason: str
) -> None:
    _assert_422(seeded, "POST", path, data, loc, reason)


def test_put_is_checked_the_same_way(seeded: TestClient) -> None:
    data = {"url": "http://127.0.0.1:9", "policies": {"tls": {"ca_pem": BAD_PEM}}}
    _assert_422(
        seeded,
        "PUT",
        "/services/orders",
        data,
        ["body", "policies", "tls", "ca_pem"],
        "does not parse as PEM X.509",
    )


def test_declarative_config_is_checked_the_same_way(seeded: TestClient) -> None:
    document = {
        "_format_version": "1",
        "services": [
            {"name": "orders", "url": "http://orders.internal:8080"},
            {
                "name": "bad",
                "url": "http://127.0.0.1:9",
                "policies": {"health_check": {"path": "/h\u001e"}},
            },
        ],
    }
    _assert_422(
        seeded,
        "POST",
        "/config",
        document,
        ["body", "services", 1, "policies", "health_check", "path"],
        "visible ASCII",
    )

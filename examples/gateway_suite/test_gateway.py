"""A gateway team's own suite, using only the fixtures of Turnout's pytest plugin.

Run it with Turnout installed (the plugin loads by its entry point):

    pytest examples/gateway_suite
    pytest examples/gateway_suite --turnout-backend=docker   # testcontainers

Each test gets a fresh Turnout (SQLite), an Envoy attached to it and an admin
client; the upstream here is a tiny local HTTP server.
"""

from collections.abc import Iterator

import httpx
import pytest

from turnout.testing.processes import AdminClient, EchoUpstream, wait_status


@pytest.fixture
def orders() -> Iterator[EchoUpstream]:
    server = EchoUpstream("orders").start()
    yield server
    server.stop()


def test_route_reaches_the_backend(admin: AdminClient, envoy, orders: EchoUpstream) -> None:  # type: ignore[no-untyped-def]
    admin.create("services", {"name": "orders", "url": orders.url})
    revision = admin.create("routes", {"name": "orders", "paths": ["/orders"], "service": "orders"})
    admin.wait_synced(envoy.node_id, revision)
    with httpx.Client(timeout=5) as http:
        response = wait_status(http, f"{envoy.url}/orders/42", 200)
        assert response.json()["service"] == "orders"
        assert http.get(f"{envoy.url}/elsewhere").status_code == 404


def test_declaration_starts_empty(admin: AdminClient) -> None:
    assert admin.revision() == 0
    assert admin.proxies() == []

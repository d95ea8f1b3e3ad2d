"""Admin API fixtures: an app on a real store, clients with and without the token."""

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient

from turnout.admin.app import create_app
from turnout.models.proxy_status import ProxyStatus, TypeStatus
from turnout.storage.store import Store

TOKEN = "test-admin-token"


class FixedProxies:
    """A real `ProxyStatusSource` that always reports the same proxies."""

    def __init__(self, proxies: list[ProxyStatus]) -> None:
        self._proxies = proxies

    def proxies(self) -> list[ProxyStatus]:
        return list(self._proxies)

    def proxy_config(self, node_id: str) -> dict[str, list[dict[str, Any]]] | None:
        if not any(p.node_id == node_id for p in self._proxies):
            return None
        return {"type.googleapis.com/envoy.config.cluster.v3.Cluster": [{"name": "orders"}]}


PROXY = ProxyStatus(
    node_id="envoy-1",
    node_cluster="edge",
    connected_since=datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC),
    xds="sotw",
    listener_port=10000,
    revision=6,
    types=[
        TypeStatus(
            type_url="type.googleapis.com/envoy.config.cluster.v3.Cluster",
            state="NACKED",
            version_sent="7",
            version_acked="6",
            last_nack="bad cluster",
            nacked_version="7",
        )
    ],
)


class Bodies:
    """JSON bodies of small valid entities; keyword arguments override fields."""

    @staticmethod
    def service(name: str = "orders", **fields: Any) -> dict[str, Any]:
        return {"name": name, "url": f"http://{name}.internal:8080"} | fields

    @staticmethod
    def route(name: str = "orders", service: str = "orders", **fields: Any) -> dict[str, Any]:
        return {"name": name, "service": service, "paths": ["/orders"]} | fields

    @staticmethod
    def split(name: str = "canary", route: str = "orders", **weights: int) -> dict[str, Any]:
        """`split(orders=90, orders_v2=10)`: underscores in service names become dashes."""
        targets = [{"service": s.replace("_", "-"), "weight": w} for s, w in weights.items()]
        return {"name": name, "route": route, "targets": targets}


@pytest.fixture
def body() -> type[Bodies]:
    return Bodies


@pytest.fixture
def proxy_source() -> FixedProxies:
    """Reports one proxy, PROXY."""
    return FixedProxies([PROXY])


@pytest.fixture
def anon(store: Store, proxy_source: FixedProxies) -> Iterator[TestClient]:
    """A client without credentials, on an app whose token is TOKEN."""
    with TestClient(create_app(store, proxy_source, admin_token=TOKEN)) as client:
        yield client


@pytest.fixture
def client(anon: TestClient) -> TestClient:
    """The same app, sending `Authorization: Bearer TOKEN`."""
    anon.headers["Authorization"] = f"Bearer {TOKEN}"
    return anon


@pytest.fixture
def seeded(client: TestClient, body: type[Bodies]) -> TestClient:
    """Services "orders", "orders-v2" and route "orders": revision 3."""
    for path, data in [
        ("/services", body.service("orders")),
        ("/services", body.service("orders-v2")),
        ("/routes", body.route("orders")),
    ]:
        assert client.post(path, json=data).status_code == 201
    return client

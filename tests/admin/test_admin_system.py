"""Health, proxies, audit, error mapping and the OpenAPI document."""

from fastapi.testclient import TestClient
from pydantic import ValidationError

from turnout.admin.app import create_app
from turnout.admin.errors import ERROR_STATUS
from turnout.models.errors import Conflict, NotFound, StoreUnavailable
from turnout.models.proxy_status import ProxyStatusSource
from turnout.storage.store import Store


def test_proxies(client: TestClient) -> None:
    response = client.get("/proxies")
    assert response.status_code == 200
    (proxy,) = response.json()
    assert proxy["node_id"] == "envoy-1"
    assert proxy["types"][0]["last_nack"] == "bad cluster"
    assert proxy["types"][0]["state"] == "NACKED"


def test_one_proxy_and_its_config(client: TestClient) -> None:
    assert client.get("/proxies/envoy-1").json()["revision"] == 6
    assert client.get("/proxies/nope").status_code == 404
    config = client.get("/proxies/envoy-1/config").json()
    assert config["type.googleapis.com/envoy.config.cluster.v3.Cluster"] == [{"name": "orders"}]
    assert client.get("/proxies/nope/config").status_code == 404


def test_audit_limit_bounds(client: TestClient) -> None:
    assert client.get("/audit", params={"limit": 0}).status_code == 422
    assert client.get("/audit", params={"limit": 1001}).status_code == 422
    assert client.get("/audit").json() == []


def test_healthz_tracks_revision(seeded: TestClient) -> None:
    assert seeded.get("/healthz").json() == {"status": "ok", "revision": 3}


def test_store_unavailable_is_503(proxy_source: ProxyStatusSource) -> None:
    store = Store("postgresql+psycopg://postgres@127.0.0.1:1/turnout")  # nothing listens
    try:
        with TestClient(create_app(store, proxy_source, admin_token="t")) as client:
            health = client.get("/healthz")
            assert health.status_code == 503
            assert health.json()["detail"].startswith("database unavailable")
            write = client.post(
                "/services",
                json={"name": "a", "url": "http://a"},
                headers={"Authorization": "Bearer t"},
            )
            assert write.status_code == 503
    finally:
        store.close()


def test_error_table() -> None:
    assert ERROR_STATUS[NotFound] == 404
    assert ERROR_STATUS[Conflict] == 409
    assert ERROR_STATUS[StoreUnavailable] == 503
    assert ERROR_STATUS[ValidationError] == 422


def test_openapi(client: TestClient) -> None:
    doc = client.get("/openapi.json").json()
    assert doc["info"]["title"] == "Turnout admin API"
    assert {"/services", "/services/{name}", "/routes", "/splits/{name}", "/proxies"} <= set(
        doc["paths"]
    )
    assert "ServiceSpec" in doc["components"]["schemas"]
    assert client.get("/docs").status_code == 200


def test_metrics_need_no_token(anon: TestClient) -> None:
    response = anon.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    assert "python_info" in response.text

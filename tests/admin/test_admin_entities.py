"""The entity endpoints, exercised on services, routes and splits alike."""

from typing import Any

import pytest
from fastapi.testclient import TestClient

from turnout.storage.store import Store

REV = "X-Turnout-Revision"


def _nothing_changed(client: TestClient, revision: int, events: int) -> None:
    assert client.get("/healthz").json()["revision"] == revision
    assert len(client.get("/audit", params={"limit": 1000}).json()) == events


class TestCrud:
    def test_create_returns_entity_and_revision(self, client: TestClient, body: Any) -> None:
        response = client.post("/services", json=body.service("orders"))
        assert response.status_code == 201
        assert response.headers[REV] == "1"
        assert response.json() == {
            "name": "orders",
            "url": "http://orders.internal:8080",
            "endpoints": None,
            "connect_timeout_ms": 1000,
            "policies": None,
            "tags": [],
        }

    def test_list_sorted_with_revision(self, seeded: TestClient, body: Any) -> None:
        response = seeded.get("/services")
        assert response.status_code == 200
        data = response.json()
        assert data["revision"] == 3
        assert [s["name"] for s in data["items"]] == ["orders", "orders-v2"]
        assert seeded.get("/splits").json() == {"items": [], "revision": 3}

    def test_get_and_404(self, seeded: TestClient) -> None:
        route = seeded.get("/routes/orders").json()
        assert route["paths"] == [{"kind": "prefix", "value": "/orders"}]
        missing = seeded.get("/routes/nope")
        assert missing.status_code == 404
        assert missing.json() == {"detail": "route 'nope' does not exist"}

    def test_put_replaces_name_optional(self, seeded: TestClient) -> None:
        response = seeded.put("/routes/orders", json={"service": "orders-v2", "hosts": ["a.io"]})
        assert response.status_code == 200
        assert response.headers[REV] == "4"
        got = seeded.get("/routes/orders").json()
        assert (got["service"], got["hosts"], got["paths"]) == ("orders-v2", ["a.io"], [])

    def test_put_unknown_is_404(self, seeded: TestClient, body: Any) -> None:
        assert seeded.put("/services/ghost", json=body.service("ghost")).status_code == 404
        _nothing_changed(seeded, 3, 3)

    def test_patch_merges_top_level(self, seeded: TestClient) -> None:
        response = seeded.patch("/routes/orders", json={"methods": ["GET"], "priority": 7})
        assert response.status_code == 200
        assert response.headers[REV] == "4"
        got = seeded.get("/routes/orders").json()
        assert (got["methods"], got["priority"], got["paths"]) == (
            ["GET"],
            7,
            response.json()["paths"],
        )

    def test_patch_null_restores_default(self, seeded: TestClient) -> None:
        response = seeded.patch(
            "/services/orders",
            json={"url": None, "endpoints": [{"address": "10.0.0.9", "port": 81}]},
            headers={"Content-Type": "application/merge-patch+json"},
        )
        assert response.status_code == 200, response.text
        assert response.json()["url"] is None
        assert response.json()["endpoints"] == [{"address": "10.0.0.9", "port": 81, "weight": 1}]

    def test_delete(self, seeded: TestClient) -> None:
        response = seeded.delete("/routes/orders")
        assert response.status_code == 204
        assert response.headers[REV] == "4"
        assert response.content == b""
        assert seeded.get("/routes/orders").status_code == 404
        assert seeded.delete("/routes/orders").status_code == 404

    def test_split_lifecycle(self, seeded: TestClient, body: Any) -> None:
        created = seeded.post("/splits", json=body.split(orders=90, orders_v2=10))
        assert created.status_code == 201, created.text
        patched = seeded.patch(
            "/splits/canary",
            json={
                "targets": [
                    {"service": "orders", "weight": 0},
                    {"service": "orders-v2", "weight": 1},
                ]
            },
        )
        assert patched.status_code == 200
        assert patched.headers[REV] == "5"
        assert seeded.delete("/splits/canary").headers[REV] == "6"

    def test_audit_records_admin_actor(self, seeded: TestClient) -> None:
        events = seeded.get("/audit", params={"limit": 2}).json()
        assert [(e["revision"], e["action"], e["entity_kind"], e["actor"]) for e in events] == [
            (3, "create", "route", "admin"),
            (2, "create", "service", "admin"),
        ]


class TestRejected:
    """Each rejection names the field and reason, and changes nothing."""

    @pytest.mark.parametrize(
        ("path", "data", "loc", "reason"),
        [
            ("/services", {"name": "x"}, ["body"], "exactly one of `url` or `endpoints`"),
            ("/services", {"name": "x", "url": "ftp://x"}, ["body", "url"], "http or https"),
            ("/services", {"url": "http://x"}, ["body", "name"], "Field required"),
            (
                "/routes",
                {"name": "r", "service": "orders", "paths": [{"regex": "(("}]},
                ["body", "paths", 0],
                "RE2",
            ),
            (
                "/splits",
                {"name": "s", "route": "orders", "targets": []},
                ["body", "targets"],
                "at least 1",
            ),
        ],
    )
    def test_create_422(
        self, seeded: TestClient, path: str, data: dict[str, Any], loc: list[Any], reason: str
    ) -> None:
        response = seeded.post(path, json=data)
        assert response.status_code == 422
        error = response.json()["detail"][0]
        assert error["loc"] == loc
        assert reason in error["msg"]
        _nothing_changed(seeded, 3, 3)

    @pytest.mark.parametrize(
        ("method", "path", "data", "field", "detail"),
        [
            (
                "POST",
                "/services",
                {"name": "orders", "url": "http://x"},
                "name",
                "service 'orders' already exists",
            ),
            (
                "POST",
                "/routes",
                {"name": "r", "service": "ghost"},
                "service",
                "service 'ghost' does not exist",
            ),
            (
                "PUT",
                "/routes/orders",
                {"service": "ghost"},
                "service",
                "service 'ghost' does not exist",
            ),
            (
                "PATCH",
                "/routes/orders",
                {"service": "ghost"},
                "service",
                "service 'ghost' does not exist",
            ),
            (
                "POST",
                "/splits",
                {"name": "s", "route": "ghost", "targets": [{"service": "orders", "weight": 1}]},
                "route",
                "route 'ghost' does not exist",
            ),
            (
                "POST",
                "/splits",
                {"name": "s", "route": "orders", "targets": [{"service": "ghost", "weight": 1}]},
                "targets[0].service",
                "service 'ghost' does not exist",
            ),
            (
                "DELETE",
                "/services/orders",
                None,
                None,
                "service 'orders' is still used by route 'orders'",
            ),
        ],
    )
    def test_conflict_409(
        self,
        seeded: TestClient,
        method: str,
        path: str,
        data: dict[str, Any] | None,
        field: str | None,
        detail: str,
    ) -> None:
        response = seeded.request(method, path, json=data)
        assert response.status_code == 409
        assert response.json() == {"detail": detail, "field": field}
        assert REV not in response.headers
        _nothing_changed(seeded, 3, 3)

    @pytest.mark.parametrize("method", ["PUT", "PATCH"])
    def test_rename_is_422(self, seeded: TestClient, method: str) -> None:
        response = seeded.request(
            method, "/routes/orders", json={"name": "other", "service": "orders"}
        )
        assert response.status_code == 422
        (error,) = response.json()["detail"]
        assert error["loc"] == ["body", "name"]
        assert "cannot be renamed" in error["msg"]
        _nothing_changed(seeded, 3, 3)

    @pytest.mark.parametrize(
        ("data", "loc", "reason"),
        [
            ({"endpoints": [{"address": "10.0.0.1", "port": 80}]}, ["body"], "exactly one of"),
            ({"url": None}, ["body"], "exactly one of"),
            (
                {"connect_timeout_ms": 0},
                ["body", "connect_timeout_ms"],
                "greater than or equal to 1",
            ),
            ({"colour": "red"}, ["body", "colour"], "Extra inputs are not permitted"),
        ],
    )
    def test_patch_revalidates_whole_spec(
        self, seeded: TestClient, data: dict[str, Any], loc: list[Any], reason: str
    ) -> None:
        response = seeded.patch("/services/orders", json=data)
        assert response.status_code == 422
        error = response.json()["detail"][0]
        assert (error["loc"], reason in error["msg"]) == (loc, True)
        _nothing_changed(seeded, 3, 3)

    def test_patch_body_must_be_object(self, seeded: TestClient) -> None:
        assert seeded.patch("/services/orders", json=["x"]).status_code == 422
        assert seeded.patch("/services/ghost", json={}).status_code == 404
        _nothing_changed(seeded, 3, 3)


def test_write_header_matches_store_revision(seeded: TestClient, store: Store, body: Any) -> None:
    response = seeded.post("/services", json=body.service("billing"))
    assert int(response.headers[REV]) == store.revision() == 4

"""Freezes over the admin API on a real store: 423, reads, override, schedules."""

from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi.testclient import TestClient

from turnout.testing.processes import wait_for

OVERRIDE = {"X-Turnout-Override-Reason": "hotfix INC-42"}


def _freeze(client: TestClient, **scope: Any) -> dict[str, Any]:
    response = client.post("/freezes", json={"reason": "db migration", "scope": scope})
    assert response.status_code == 201, response.text
    return dict(response.json())


def test_global_freeze_refuses_every_write(seeded: TestClient, body: Any) -> None:
    freeze = _freeze(seeded, all=True)
    assert freeze["state"] == "active"
    revision = seeded.get("/healthz").json()["revision"]
    writes = [
        ("POST", "/services", body.service("new")),
        ("PUT", "/services/orders", body.service("orders", connect_timeout_ms=5)),
        ("PATCH", "/routes/orders", {"priority": 3}),
        ("DELETE", "/routes/orders", None),
        ("POST", "/config", {"_format_version": "1"}),
        ("POST", "/revisions/1/restore", None),
    ]
    for method, path, data in writes:
        response = seeded.request(method, path, json=data)
        assert response.status_code == 423, (method, path, response.text)
        assert response.json()["freeze"]["id"] == freeze["id"]
        assert "frozen by freeze" in response.json()["detail"]
    assert seeded.get("/healthz").json()["revision"] == revision
    assert seeded.get("/revisions").json()["items"][0]["number"] == revision
    assert seeded.get("/routes/orders").status_code == 200  # reads unaffected


def test_override_goes_through_and_is_audited(seeded: TestClient, body: Any) -> None:
    freeze = _freeze(seeded, all=True)
    response = seeded.post("/services", json=body.service("new"), headers=OVERRIDE)
    assert response.status_code == 201
    (event,) = seeded.get("/audit", params={"entity": "service/new"}).json()
    assert event["reason"] == f"override of freeze {freeze['id']}: hotfix INC-42"
    assert seeded.post("/services", json=body.service("new2")).status_code == 423


def test_scoped_freeze(seeded: TestClient, body: Any) -> None:
    _freeze(seeded, services=["orders-v2"])
    assert seeded.patch("/services/orders", json={"connect_timeout_ms": 9}).status_code == 200
    assert seeded.patch("/services/orders-v2", json={"connect_timeout_ms": 9}).status_code == 423
    # A split naming the frozen service is covered too.
    split = body.split(orders=90, orders_v2=10)
    assert seeded.post("/splits", json=split).status_code == 423
    _freeze(seeded, tags=["legacy"])
    assert seeded.post("/services", json=body.service("old", tags=["legacy"])).status_code == 423
    assert seeded.post("/services", json=body.service("fresh")).status_code == 201


def test_lift_and_list(seeded: TestClient, body: Any) -> None:
    freeze = _freeze(seeded, routes=["orders"])
    assert seeded.patch("/routes/orders", json={"priority": 1}).status_code == 423
    assert seeded.delete(f"/freezes/{freeze['id']}").status_code == 204
    assert seeded.patch("/routes/orders", json={"priority": 1}).status_code == 200
    (listed,) = seeded.get("/freezes").json()["items"]
    assert listed["state"] == "lifted" and listed["lifted_by"] == "admin"
    assert seeded.delete("/freezes/999").status_code == 404
    kinds = [e["action"] for e in seeded.get("/audit", params={"entity": "freeze"}).json()]
    assert kinds == ["delete", "create"]


def test_scheduled_freeze_starts_and_ends_by_itself(seeded: TestClient) -> None:
    start = datetime.now(UTC) + timedelta(seconds=1)
    response = seeded.post(
        "/freezes",
        json={
            "reason": "window",
            "scope": {"all": True},
            "starts_at": start.isoformat(),
            "ends_at": (start + timedelta(seconds=1.5)).isoformat(),
        },
    )
    assert response.json()["state"] == "scheduled"
    bump = iter(range(1, 10_000))

    def write_status() -> int:
        return seeded.patch("/routes/orders", json={"priority": next(bump)}).status_code

    assert write_status() == 200
    wait_for(lambda: write_status() == 423, 10, "the scheduled freeze to start")
    wait_for(lambda: write_status() == 200, 10, "the scheduled freeze to end")
    assert seeded.get("/freezes").json()["items"][0]["state"] == "ended"


def test_bad_freezes(client: TestClient) -> None:
    cases = [
        {"reason": "x", "scope": {}},
        {"reason": "x", "scope": {"all": True, "services": ["a"]}},
        {"reason": "", "scope": {"all": True}},
        {"reason": "x", "scope": {"all": True}, "starts_at": "2030-01-01T00:00:00"},
        {
            "reason": "x",
            "scope": {"all": True},
            "starts_at": "2030-01-02T00:00:00Z",
            "ends_at": "2030-01-01T00:00:00Z",
        },
    ]
    for case in cases:
        assert client.post("/freezes", json=case).status_code == 422, case
    assert client.get("/freezes").json()["items"] == []

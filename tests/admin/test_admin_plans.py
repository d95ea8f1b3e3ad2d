"""Plan endpoints on a real store: every action is a revision with actor and reason."""

from typing import Any

from fastapi.testclient import TestClient


def _planned(client: TestClient, body: Any) -> None:
    split = body.split(orders=100, orders_v2=0)
    split["plan"] = {"target": "orders-v2", "baseline": "orders", "hold_seconds": 60}
    assert client.post("/splits", json=split).status_code == 201


def _weights(view: dict[str, Any]) -> dict[str, int]:
    return {t["service"]: t["weight"] for t in view["targets"]}


def test_actions_walk_the_plan(seeded: TestClient, body: Any) -> None:
    _planned(seeded, body)
    view = seeded.get("/splits/canary").json()
    assert view["plan_status"]["percent"] == 0 and view["plan_status"]["next_step_due"] is None
    response = seeded.post("/splits/canary/advance", json={"reason": "go"})
    assert response.status_code == 200 and response.headers["x-turnout-revision"] == "5"
    view = response.json()
    assert _weights(view) == {"orders": 9900, "orders-v2": 100}
    status = view["plan_status"]
    assert (status["percent"], status["next_percent"]) == (1, 10)
    assert status["next_step_due"] is not None
    assert set(status["observed"]) == {"orders", "orders-v2"}
    assert seeded.post("/splits/canary/pause").json()["plan_state"]["status"] == "paused"
    assert seeded.post("/splits/canary/pause").status_code == 409
    assert seeded.post("/splits/canary/resume").json()["plan_state"]["status"] == "running"
    promoted = seeded.post("/splits/canary/promote").json()
    assert _weights(promoted) == {"orders": 0, "orders-v2": 10000}
    rolled = seeded.post("/splits/canary/rollback", json={"reason": "errors"}).json()
    assert _weights(rolled) == {"orders": 10000, "orders-v2": 0}
    events = seeded.get("/audit", params={"entity": "split/canary"}).json()
    assert [e["reason"] for e in events[:2]] == ["rollback: errors", "promote: promote by admin"]
    assert all(e["actor"] == "admin" for e in events)


def test_no_plan_is_409_but_rollback_goes_to_the_route_service(
    seeded: TestClient, body: Any
) -> None:
    assert seeded.post("/splits", json=body.split(orders=1, orders_v2=9)).status_code == 201
    response = seeded.post("/splits/canary/advance")
    assert response.status_code == 409 and "has no plan" in response.json()["detail"]
    seeded.post("/freezes", json={"reason": "r", "scope": {"all": True}})
    rolled = seeded.post("/splits/canary/rollback")
    assert rolled.status_code == 200
    assert _weights(rolled.json()) == {"orders": 1, "orders-v2": 0}
    assert seeded.post("/splits/nope/advance").status_code == 404
    assert seeded.get("/splits/canary").json()["plan_status"] is None

"""Plan endpoints on a real store: every action is a revision with actor and reason."""

import re
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.admin.conftest import TOKEN, FixedProxies
from turnout.admin.app import create_app
from turnout.storage.store import Store
from turnout.xds.lrs import LoadStats


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


@pytest.fixture
def with_load(store: Store) -> Iterator[tuple[TestClient, LoadStats]]:
    """An app whose plan status reads real `LoadStats`, as `turnout serve` wires it."""
    stats = LoadStats()
    app = create_app(store, FixedProxies([]), admin_token=TOKEN, load_stats=stats)
    with TestClient(app, headers={"Authorization": f"Bearer {TOKEN}"}) as client:
        yield client, stats


def test_plan_status_says_why_it_waits(with_load: tuple[TestClient, LoadStats], body: Any) -> None:
    client, stats = with_load
    for name in ("orders", "orders-v2"):
        assert client.post("/services", json=body.service(name)).status_code == 201
    assert client.post("/routes", json=body.route("orders")).status_code == 201
    split = body.split(orders=100, orders_v2=0)
    split["plan"] = {
        "target": "orders-v2",
        "baseline": "orders",
        "hold_seconds": 120,
        "criteria": {"min_requests": 20},
    }
    assert client.post("/splits", json=split).status_code == 201
    assert client.get("/splits/canary").json()["plan_status"]["waiting"] is None  # pending
    client.post("/splits/canary/advance")
    stats.record("orders-v2", 4, 0)
    waiting = client.get("/splits/canary").json()["plan_status"]["waiting"]
    assert re.fullmatch(r"4/20 target requests; hold: 1[12]\d s left", waiting), waiting
    stats.record("orders-v2", 21, 0)
    freeze = client.post("/freezes", json={"reason": "r", "scope": {"routes": ["orders"]}})
    waiting = client.get("/splits/canary").json()["plan_status"]["waiting"]
    held = f"held by freeze {freeze.json()['id']}"
    assert re.fullmatch(rf"hold: 1[12]\d s left; {held}", waiting), waiting
    client.delete(f"/freezes/{freeze.json()['id']}")
    assert client.post("/splits/canary/pause").json()["plan_status"]["waiting"] is None

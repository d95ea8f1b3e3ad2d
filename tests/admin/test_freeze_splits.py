"""A freeze covers a split through its route and its targets, by name or by tag, on
every write path (entity writes, POST /config, `turnout apply`, restore, plan
actions); a rollback always goes through. Freeze input is validated."""

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient

from turnout.cli import main
from turnout.storage.store import Store

PLAN = {"target": "orders-v2", "baseline": "orders", "steps": [1, 10, 50, 100], "hold_seconds": 60}


@pytest.fixture
def tagged(client: TestClient, body: Any) -> TestClient:
    """Services orders (tag `orders`) and orders-v2, route orders (untagged, on the
    tagged service) and an untagged split orders-move with a plan started at 1 %."""
    for path, data in [
        ("/services", body.service("orders", tags=["orders"])),
        ("/services", body.service("orders-v2")),
        ("/services", body.service("other")),
        ("/routes", body.route("orders")),
        ("/routes", body.route("other", service="other", paths=["/other"])),
        ("/splits", body.split("orders-move", orders=1, orders_v2=0) | {"plan": PLAN}),
    ]:
        assert client.post(path, json=data).status_code == 201, client.post(path, json=data).text
    assert client.post("/splits/orders-move/advance").status_code == 200
    return client


def _freeze(client: TestClient, **scope: Any) -> dict[str, Any]:
    response = client.post("/freezes", json={"reason": "peak season", "scope": scope})
    assert response.status_code == 201, response.text
    return dict(response.json())


def _weights(client: TestClient) -> dict[str, int]:
    split = client.get("/splits/orders-move").json()
    return {t["service"]: t["weight"] for t in split["targets"]}


@pytest.mark.parametrize(
    "scope",
    [
        {"tags": ["orders"]},  # the baseline service's tag
        {"services": ["orders-v2"]},  # a target by name
        {"routes": ["orders"]},  # the route by name
    ],
    ids=["tag-of-target", "target-name", "route-name"],
)
def test_a_freeze_holds_the_split_on_every_write_path(
    tagged: TestClient, store: Store, tmp_path: Path, scope: dict[str, Any]
) -> None:
    config = tagged.get("/config").json()
    before_freeze = tagged.get("/healthz").json()["revision"]
    freeze = _freeze(tagged, **scope)
    weights = _weights(tagged)
    revision = tagged.get("/healthz").json()["revision"]
    moved = {"targets": [{"service": "orders", "weight": 0}, {"service": "orders-v2", "weight": 1}]}
    changed = dict(config)
    changed["splits"] = [s | moved for s in config["splits"]]
    writes: list[tuple[str, str, Any]] = [
        ("PATCH", "/splits/orders-move", moved),
        ("PUT", "/splits/orders-move", config["splits"][0] | moved),
        ("DELETE", "/splits/orders-move", None),
        ("POST", "/config", changed),
        ("POST", f"/revisions/{before_freeze - 1}/restore", None),
        ("POST", "/splits/orders-move/advance", None),
        ("POST", "/splits/orders-move/promote", None),
        ("POST", "/splits/orders-move/pause", None),
    ]
    for method, path, data in writes:
        response = tagged.request(method, path, json=data)
        assert response.status_code == 423, (method, path, response.text)
        assert response.json()["freeze"]["id"] == freeze["id"]
    # `turnout apply` writes through the same store: refused, nothing changed.
    path = tmp_path / "turnout.yaml"
    path.write_text(yaml.safe_dump(changed))
    assert main(["apply", "-f", str(path), "--database-url", store.database_url]) == 1
    assert tagged.get("/healthz").json()["revision"] == revision
    assert _weights(tagged) == weights
    # An unrelated route is not covered; rollback is never frozen.
    assert tagged.patch("/routes/other", json={"priority": 2}).status_code == 200
    rolled = tagged.post("/splits/orders-move/rollback", json={"reason": "errors"})
    assert rolled.status_code == 200, rolled.text
    assert _weights(tagged) == {"orders": 10_000, "orders-v2": 0}


def test_a_split_cannot_be_moved_out_of_a_freeze(tagged: TestClient) -> None:
    """Pointing the split at an uncovered route is a write to a covered split."""
    _freeze(tagged, routes=["orders"])
    response = tagged.patch("/splits/orders-move", json={"route": "other"})
    assert response.status_code == 423, response.text


def test_a_route_is_covered_through_its_services_tag(tagged: TestClient) -> None:
    _freeze(tagged, tags=["orders"])
    assert tagged.patch("/routes/orders", json={"priority": 5}).status_code == 423
    assert tagged.patch("/services/orders", json={"connect_timeout_ms": 5}).status_code == 423
    assert tagged.patch("/services/orders-v2", json={"connect_timeout_ms": 5}).status_code == 200


def test_freeze_input_is_validated(tagged: TestClient) -> None:
    now = datetime.now(UTC)
    cases: list[tuple[dict[str, Any], int, str]] = [
        ({"scope": {"routes": ["nope"]}}, 409, "route 'nope' does not exist"),
        ({"scope": {"services": ["orders", "ghost"]}}, 409, "service 'ghost' does not exist"),
        (
            {
                "scope": {"all": True},
                "starts_at": (now - timedelta(hours=2)).isoformat(),
                "ends_at": (now - timedelta(hours=1)).isoformat(),
            },
            422,
            "in the past",
        ),
        (
            {"scope": {"all": True}, "ends_at": (now - timedelta(seconds=1)).isoformat()},
            422,
            "ends_at",
        ),
    ]
    for data, status, reason in cases:
        response = tagged.post("/freezes", json={"reason": "x"} | data)
        assert response.status_code == status, (data, response.text)
        assert reason in response.text, response.text
    assert tagged.get("/freezes").json()["items"] == []
    conflict = tagged.post("/freezes", json={"reason": "x", "scope": {"routes": ["nope"]}}).json()
    assert conflict["field"] == "scope.routes[0]"

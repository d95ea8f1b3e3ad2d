"""Revisions, diffs, restore, audit filters and `POST /config` on a real store."""

from typing import Any

from fastapi.testclient import TestClient


def test_revisions_list_get_diff(seeded: TestClient, body: Any) -> None:
    seeded.post("/splits", json=body.split(orders=90, orders_v2=10))
    seeded.patch("/splits/canary", json={"targets": [{"service": "orders", "weight": 1}]})
    revs = seeded.get("/revisions").json()["items"]
    assert [r["number"] for r in revs] == [5, 4, 3, 2, 1]
    assert revs[0]["summary"] == "update split canary" and revs[0]["actor"] == "admin"
    at3 = seeded.get("/revisions/3").json()
    assert at3["_format_version"] == "1" and at3["splits"] == []
    assert [r["name"] for r in at3["routes"]] == ["orders"]
    assert seeded.get("/revisions/0").json()["services"] == []
    assert seeded.get("/revisions/99").status_code == 404
    d = seeded.get("/revisions/3/diff/5").json()
    assert list(d) == ["splits"] and list(d["splits"]["added"]) == ["canary"]
    d = seeded.get("/revisions/4/diff/5").json()
    assert list(d["splits"]["changed"]["canary"]) == ["targets"]


def test_restore_makes_a_new_equal_revision(seeded: TestClient, body: Any) -> None:
    seeded.post("/splits", json=body.split(orders=90, orders_v2=10))  # 4
    seeded.delete("/splits/canary")  # 5
    seeded.delete("/routes/orders")  # 6
    response = seeded.post("/revisions/4/restore")
    assert response.status_code == 200, response.text
    assert response.json()["revision"] == 7
    assert response.json()["changes"] == ["create route orders", "create split canary"]
    assert seeded.get("/revisions/7/diff/4").json() == {}
    assert seeded.get("/revisions").json()["items"][0]["reason"] == "restore revision 4"
    # Nothing to change: no new revision.
    assert seeded.post("/revisions/7/restore").json() == {"revision": 7, "changes": []}


def test_audit_filters(seeded: TestClient) -> None:
    events = seeded.get("/audit", params={"entity": "service"}).json()
    assert [e["entity_name"] for e in events] == ["orders-v2", "orders"]
    assert len(seeded.get("/audit", params={"entity": "route/orders"}).json()) == 1
    assert seeded.get("/audit", params={"actor": "nobody"}).json() == []
    first = events[-1]["at"]
    assert len(seeded.get("/audit", params={"since": first}).json()) == 3
    assert seeded.get("/audit", params={"until": first}).json() == []


def test_config_apply_dry_run_and_bad_entity(seeded: TestClient, body: Any) -> None:
    doc = seeded.get("/config").json()
    doc["services"].append(body.service("extra"))
    dry = seeded.post("/config", params={"dry_run": True}, json=doc)
    assert dry.json() == {"dry_run": True, "revision": None, "changes": ["create service extra"]}
    assert seeded.get("/healthz").json()["revision"] == 3
    bad = [*doc["routes"], body.route("bad", service="missing")]
    response = seeded.post("/config", json={**doc, "routes": bad})
    assert response.status_code == 409 and "missing" in response.json()["detail"]
    invalid = {**doc, "splits": [{"name": "s", "route": "orders", "targets": []}]}
    response = seeded.post("/config", json=invalid)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"][:3] == ["body", "splits", 0]
    assert seeded.get("/healthz").json()["revision"] == 3
    applied = seeded.post("/config", json=doc)
    assert applied.json()["revision"] == 4
    assert seeded.get("/services/extra").status_code == 200
    # Removing from the document deletes, in one revision.
    doc = {"_format_version": "1", "services": [body.service("orders")]}
    assert seeded.post("/config", json=doc).json()["changes"] == [
        "delete route orders",
        "delete service extra",
        "delete service orders-v2",
    ]


def test_config_select_tag(seeded: TestClient, body: Any) -> None:
    doc = {"_format_version": "1", "services": [body.service("team-a", tags=["a"])]}
    assert seeded.post("/config", params={"select_tag": "a"}, json=doc).status_code == 200
    # Untagged entities are left alone; an entity without the tag is refused.
    assert seeded.get("/services/orders").status_code == 200
    doc["services"].append(body.service("untagged"))
    assert seeded.post("/config", params={"select_tag": "a"}, json=doc).status_code == 409
    empty = {"_format_version": "1"}
    response = seeded.post("/config", params={"select_tag": "a"}, json=empty)
    assert response.json()["changes"] == ["delete service team-a"]
    assert seeded.post("/config", json={"_format_version": "2"}).status_code == 422

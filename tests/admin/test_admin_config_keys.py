"""`POST /config` and `POST /revisions/{n}/restore` never delete API keys silently;
`GET /revisions` has the shape of every list; a restore records its reason."""

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.admin.conftest import TOKEN, FixedProxies
from turnout.admin.app import create_app
from turnout.storage.store import Store

SECRET = "admin-config-keys-secret-0123"


@pytest.fixture
def api(database_url: str) -> Iterator[TestClient]:
    """Consumers acme (2 keys) and free (none); revision 4."""
    store = Store(database_url, secret_key=SECRET)
    app = create_app(store, FixedProxies([]), admin_token=TOKEN)
    with TestClient(app, headers={"Authorization": f"Bearer {TOKEN}"}) as client:
        for name in ("acme", "free"):
            assert client.post("/consumers", json={"name": name}).status_code == 201
        for _ in range(2):
            assert client.post("/consumers/acme/keys", json={}).status_code == 201
        yield client
    store.close()


def _document(**collections: Any) -> dict[str, Any]:
    return {"_format_version": "1", **collections}


def _keys(client: TestClient, consumer: str) -> int:
    return len(client.get(f"/consumers/{consumer}/keys").json())


def test_post_config_refuses_to_delete_keys_unless_asked(api: TestClient) -> None:
    old = _document(consumers=[])
    for params in ({}, {"dry_run": "true"}):
        response = api.post("/config", json=old, params=params)
        assert response.status_code == 409, response.text
        body = response.json()
        assert body["field"] == "consumers"
        assert "acme (2 API keys)" in body["detail"] and "free" not in body["detail"]
        assert "delete_keys=true" in body["detail"]
    assert api.get("/healthz").json()["revision"] == 4 and _keys(api, "acme") == 2
    # Dropping only a consumer without keys needs no flag.
    kept = _document(consumers=[{"name": "acme"}])
    response = api.post("/config", json=kept, params={"dry_run": "true"})
    assert response.json()["changes"] == ["delete consumer free"]
    # Asked for: the dry run and the apply both count the keys.
    response = api.post("/config", json=old, params={"dry_run": "true", "delete_keys": "true"})
    assert response.status_code == 200
    assert response.json()["changes"] == [
        "delete consumer acme (2 API keys)",
        "delete consumer free",
    ]
    assert _keys(api, "acme") == 2
    response = api.post("/config", json=old, params={"delete_keys": "true"})
    assert response.status_code == 200 and response.json()["revision"] == 5
    assert api.get("/consumers/acme").status_code == 404


def test_revision_restore_guards_keys_and_records_its_reason(api: TestClient) -> None:
    changes = ["delete consumer acme (2 API keys)", "delete consumer free"]
    revisions = api.get("/revisions").json()
    assert set(revisions) == {"items", "revision"} and revisions["revision"] == 4
    # Key writes are revisions too, but /revisions lists declaration changes.
    assert [r["number"] for r in revisions["items"]] == [2, 1]
    # Revision 0 had no consumer at all: restoring it would delete acme's keys.
    response = api.post("/revisions/0/restore", json={"reason": "INC-9 roll back"})
    assert response.status_code == 409 and "acme (2 API keys)" in response.json()["detail"]
    assert _keys(api, "acme") == 2
    response = api.post(
        "/revisions/0/restore", json={"reason": "INC-9 roll back"}, params={"delete_keys": "true"}
    )
    assert response.status_code == 200, response.text
    assert response.json()["changes"] == changes
    newest = api.get("/revisions", params={"limit": 1}).json()
    assert newest["revision"] == 5 and newest["items"][0]["number"] == 5
    assert newest["items"][0]["reason"] == "restore revision 0: INC-9 roll back"
    (event,) = api.get("/audit", params={"entity": "consumer/acme", "limit": 1}).json()
    assert event["reason"] == "restore revision 0: INC-9 roll back"
    # Without a body the reason says what happened.
    api.post("/consumers", json={"name": "acme"})
    assert api.post("/revisions/5/restore").status_code == 200
    assert api.get("/revisions").json()["items"][0]["reason"] == "restore revision 5"


def test_post_config_records_its_reason(api: TestClient) -> None:
    doc = _document(
        consumers=[{"name": "acme"}, {"name": "free"}, {"name": "new"}],
    )
    done = api.post("/config", json=doc, params={"reason": "CI run 7"})
    assert done.status_code == 200, done.text
    newest = api.get("/revisions", params={"limit": 1}).json()["items"][0]
    assert newest["number"] == done.json()["revision"]
    assert newest["reason"] == "CI run 7"
    too_long = api.post("/config", json=doc, params={"reason": "x" * 1025})
    assert too_long.status_code == 422
    assert too_long.json()["detail"][0]["loc"] == ["query", "reason"]

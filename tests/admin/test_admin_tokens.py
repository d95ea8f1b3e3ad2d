"""Role tokens: viewer reads, operator writes, admin manages tokens; hashed, expiring."""

from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient

from turnout.models.token import Role, TokenCreate, TokenRow, hash_token, parse_duration
from turnout.storage.store import Store


def _token(client: TestClient, name: str, role: str, **extra: object) -> str:
    response = client.post("/tokens", json={"name": name, "role": role, **extra})
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["name"] == name and body["role"] == role and body["created_by"] == "admin"
    return str(body["token"])


def _as(client: TestClient, token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_viewer_reads_but_cannot_write(client: TestClient, body, store: Store) -> None:  # type: ignore[no-untyped-def]
    viewer = _token(client, "dashboards", "viewer")
    assert client.get("/services", headers=_as(client, viewer)).status_code == 200
    assert client.get("/proxies", headers=_as(client, viewer)).status_code == 200
    before = store.revision()
    response = client.post("/services", json=body.service("orders"), headers=_as(client, viewer))
    assert response.status_code == 403
    assert "role viewer" in response.json()["detail"]
    assert "operator" in response.json()["detail"]
    assert store.revision() == before and store.list("service") == []
    assert client.get("/tokens", headers=_as(client, viewer)).status_code == 403


def test_operator_writes_and_audit_names_owner(client: TestClient, body, store: Store) -> None:  # type: ignore[no-untyped-def]
    operator = _token(client, "ci-deploy", "operator")
    response = client.post("/services", json=body.service("orders"), headers=_as(client, operator))
    assert response.status_code == 201
    assert store.audit(1)[0].actor == "ci-deploy"
    # ...but cannot manage tokens.
    response = client.post(
        "/tokens", json={"name": "x", "role": "admin"}, headers=_as(client, operator)
    )
    assert response.status_code == 403
    assert [t.name for t in store.tokens.list()] == ["ci-deploy"]


def test_admin_token_manages_tokens(client: TestClient, store: Store) -> None:
    boss = _token(client, "alice", "admin")
    headers = _as(client, boss)
    created = client.post("/tokens", json={"name": "bob", "role": "viewer"}, headers=headers)
    assert created.json()["created_by"] == "alice"
    listed = client.get("/tokens", headers=headers).json()
    assert [t["name"] for t in listed] == ["alice", "bob"]
    assert all("token" not in t and "token_sha256" not in t for t in listed)
    assert client.delete("/tokens/bob", headers=headers).status_code == 204
    assert client.delete("/tokens/bob", headers=headers).status_code == 404
    assert client.get("/services", headers=_as(client, created.json()["token"])).status_code == 401
    kinds = [(e.actor, e.action, e.entity_kind, e.entity_name) for e in store.audit(3)]
    assert kinds[0] == ("alice", "delete", "token", "bob")


def test_tokens_hashed_at_rest(client: TestClient, store: Store) -> None:
    token = _token(client, "ci", "operator")
    info = store.tokens.lookup(hash_token(token))
    assert info is not None and info.role is Role.OPERATOR
    with store.read_transaction() as session:
        row = session.get_one(TokenRow, "ci")
        assert row.token_sha256 == hash_token(token) and token not in row.token_sha256


def test_expired_token_gets_401(client: TestClient, store: Store) -> None:
    old, _ = store.tokens.create(TokenCreate(name="old", role=Role.ADMIN), "admin")
    with store.write_transaction() as session:  # no API makes a token in the past
        session.get_one(TokenRow, "old").expires_at = datetime.now(UTC) - timedelta(seconds=1)
    response = client.get("/services", headers=_as(client, old.token))
    assert response.status_code == 401
    assert "expired" in response.json()["detail"]
    fresh = _token(client, "fresh", "viewer", expires_in_seconds=3600)
    assert client.get("/services", headers=_as(client, fresh)).status_code == 200
    listed = {t["name"]: t for t in client.get("/tokens").json()}
    expires = datetime.fromisoformat(listed["fresh"]["expires_at"])
    assert timedelta(minutes=59) < expires - datetime.now(UTC) <= timedelta(hours=1)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"name": "x", "role": "root"}, "role"),
        ({"name": "bad name", "role": "viewer"}, "name"),
        ({"name": "x", "role": "viewer", "expires_in_seconds": 0}, "expires_in_seconds"),
        ({"name": "x", "role": "viewer", "secret": "y"}, "secret"),
    ],
)
def test_bad_token_body_422(client: TestClient, data: dict[str, object], field: str) -> None:
    response = client.post("/tokens", json=data)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"][-1] == field
    assert client.get("/tokens").json() == []


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_duplicate_token_409(client: TestClient) -> None:
    _token(client, "ci", "viewer")
    response = client.post("/tokens", json={"name": "ci", "role": "admin"})
    assert response.status_code == 409 and response.json()["field"] == "name"


def test_parse_duration() -> None:
    assert parse_duration("90") == timedelta(seconds=90)
    assert parse_duration("15m") == timedelta(minutes=15)
    assert parse_duration("12h") == timedelta(hours=12)
    assert parse_duration("30d") == timedelta(days=30)
    for bad in ("", "0", "-5", "1w", "abc"):
        with pytest.raises(ValueError, match="duration"):
            parse_duration(bad)

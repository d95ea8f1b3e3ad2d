"""Consumers and their API keys through the admin API, on a real store."""

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from turnout.admin.app import create_app
from turnout.models.errors import Conflict
from turnout.models.key import ConsumerKeyRow
from turnout.models.proxy_status import ProxyStatus
from turnout.storage.store import Store

TOKEN = "test-admin-token"


class FixedProxies:
    def __init__(self, proxies: list[ProxyStatus]) -> None:
        self._proxies = proxies

    def proxies(self) -> list[ProxyStatus]:
        return list(self._proxies)


SECRET = "a-test-secret-of-sufficient-length"
REV = "X-Turnout-Revision"


@pytest.fixture
def keyed_store(database_url: str) -> Iterator[Store]:
    store = Store(database_url, secret_key=SECRET)
    yield store
    store.close()


@pytest.fixture
def api(keyed_store: Store) -> Iterator[TestClient]:
    app = create_app(keyed_store, FixedProxies([]), admin_token=TOKEN)
    with TestClient(app, headers={"Authorization": f"Bearer {TOKEN}"}) as client:
        assert (
            client.post("/consumers", json={"name": "alice", "groups": ["free"]}).status_code == 201
        )
        assert client.post("/consumers", json={"name": "bob"}).status_code == 201
        yield client


def _unchanged(client: TestClient, revision: int) -> None:
    assert client.get("/healthz").json()["revision"] == revision


def test_consumer_crud(api: TestClient) -> None:
    assert [c["name"] for c in api.get("/consumers").json()["items"]] == ["alice", "bob"]
    assert api.get("/consumers/alice").json() == {
        "name": "alice",
        "groups": ["free"],
        "limits": None,
        "tags": [],
        "kong_id": None,
        "custom_id": None,
    }
    patched = api.patch("/consumers/bob", json={"groups": ["paid", "free"]})
    assert patched.status_code == 200 and patched.json()["groups"] == ["free", "paid"]
    assert api.delete("/consumers/bob").status_code == 204
    assert api.get("/consumers/bob").status_code == 404


def test_generated_key_is_shown_once_then_only_id_and_prefix(
    api: TestClient, keyed_store: Store
) -> None:
    created = api.post("/consumers/alice/keys", json={})
    assert created.status_code == 201, created.text
    data = created.json()
    key = data["key"]
    assert key.startswith("tk_") and len(key) >= 40
    assert data["prefix"] == key[:8]
    listed = api.get("/consumers/alice/keys").json()
    assert listed == [{k: v for k, v in data.items() if k != "key"}]
    assert key not in api.get("/consumers/alice/keys").text
    assert key not in api.get("/audit").text
    # At rest: encrypted, never in clear.
    with keyed_store.read_transaction() as session:
        row = session.scalars(select(ConsumerKeyRow)).one()
        assert key not in row.ciphertext and key not in row.lookup_hash
    decl = keyed_store.load()
    assert [(k.consumer, k.key) for k in decl.api_keys] == [("alice", key)]


def test_imported_key_several_per_consumer_and_revoke(api: TestClient, keyed_store: Store) -> None:
    one = api.post("/consumers/alice/keys", json={"key": "legacy-key-0123456789"}).json()
    two = api.post("/consumers/alice/keys").json()
    assert one["key"] == "legacy-key-0123456789"
    assert {k.key for k in keyed_store.load().api_keys} == {one["key"], two["key"]}
    revoked = api.delete(f"/consumers/alice/keys/{one['id']}")
    assert revoked.status_code == 204 and int(revoked.headers[REV]) > 0
    assert [k.key for k in keyed_store.load().api_keys] == [two["key"]]
    assert api.delete(f"/consumers/alice/keys/{one['id']}").status_code == 404
    assert api.delete(f"/consumers/bob/keys/{two['id']}").status_code == 404


def test_duplicate_key_across_consumers_is_refused(api: TestClient) -> None:
    assert api.post("/consumers/alice/keys", json={"key": "same-key-0123456789"}).status_code == 201
    revision = api.get("/healthz").json()["revision"]
    refused = api.post("/consumers/bob/keys", json={"key": "same-key-0123456789"})
    assert refused.status_code == 409
    assert refused.json()["field"] == "key"
    _unchanged(api, revision)
    assert api.get("/consumers/bob/keys").json() == []


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"key": "short"}, "key"),
        ({"key": "has space in it 0123"}, "key"),
        ({"expires_at": "2000-01-01T00:00:00Z"}, "expires_at"),
        ({"expires_at": "2999-01-01T00:00:00"}, "expires_at"),
        ({"nope": 1}, "nope"),
    ],
    ids=["too-short", "bad-chars", "expired", "naive-time", "unknown-field"],
)
def test_bad_key_bodies_are_422(api: TestClient, body: dict[str, Any], field: str) -> None:
    revision = api.get("/healthz").json()["revision"]
    refused = api.post("/consumers/alice/keys", json=body)
    assert refused.status_code == 422
    assert field in refused.text
    _unchanged(api, revision)


def test_key_for_unknown_consumer_is_404(api: TestClient) -> None:
    assert api.post("/consumers/ghost/keys").status_code == 404


def test_expiry_removes_the_key(api: TestClient, keyed_store: Store) -> None:
    soon = datetime.now(UTC) + timedelta(seconds=30)
    created = api.post("/consumers/alice/keys", json={"expires_at": soon.isoformat()}).json()
    assert created["expires_at"] is not None
    assert keyed_store.keys.next_expiry() is not None
    assert keyed_store.keys.expire(datetime.now(UTC)) is None
    assert len(keyed_store.load().api_keys) == 1
    revision = keyed_store.keys.expire(soon + timedelta(seconds=1))
    assert revision is not None
    assert keyed_store.load().api_keys == ()
    assert api.get("/consumers/alice/keys").json() == []


def test_deleting_a_consumer_deletes_its_keys(api: TestClient, keyed_store: Store) -> None:
    api.post("/consumers/bob/keys")
    assert api.delete("/consumers/bob").status_code == 204
    assert keyed_store.keys.count() == 0


def test_keys_need_the_secret(store: Store) -> None:
    app = create_app(store, FixedProxies([]), admin_token=TOKEN)
    with TestClient(app, headers={"Authorization": f"Bearer {TOKEN}"}) as client:
        client.post("/consumers", json={"name": "alice"})
        refused = client.post("/consumers/alice/keys")
    assert refused.status_code == 503
    assert "TURNOUT_SECRET_KEY" in refused.text


def test_a_wrong_secret_cannot_read_keys(api: TestClient, database_url: str) -> None:
    api.post("/consumers/alice/keys")
    other = Store(database_url, secret_key="another-secret-entirely")
    try:
        with pytest.raises(ValueError, match="TURNOUT_SECRET_KEY"):
            other.load()
    finally:
        other.close()


class TestRouteAuthReferences:
    def _route(self, **auth: Any) -> dict[str, Any]:
        return {"name": "r", "service": "s", "paths": ["/x"], "auth": auth}

    @pytest.fixture(autouse=True)
    def _service(self, api: TestClient) -> None:
        assert (
            api.post("/services", json={"name": "s", "url": "http://10.0.0.1"}).status_code == 201
        )

    @pytest.mark.parametrize(
        ("auth", "status", "field"),
        [
            ({"allow_groups": ["gold"]}, 409, "auth.allow_groups"),
            ({"allow_consumers": ["ghost"]}, 409, "auth.allow_consumers"),
            ({"key_sources": [{"path": "/forecast/x"}]}, 422, "{key}"),
            ({"key_sources": [{"path": "/a/{key}/{key}"}]}, 422, "exactly one"),
            ({"key_sources": [{"header": "a", "query": "b"}]}, 422, "exactly one"),
            ({"key_sources": []}, 422, "key_sources"),
        ],
        ids=[
            "unknown-group",
            "unknown-consumer",
            "no-key-segment",
            "two-key-segments",
            "two-kinds",
            "no-sources",
        ],
    )
    def test_bad_auth_is_refused(
        self, api: TestClient, auth: dict[str, Any], status: int, field: str
    ) -> None:
        revision = api.get("/healthz").json()["revision"]
        refused = api.post("/routes", json=self._route(**auth))
        assert refused.status_code == status, refused.text
        assert field in refused.text
        _unchanged(api, revision)

    def test_defaults_and_references_hold(self, api: TestClient) -> None:
        created = api.post("/routes", json=self._route(allow_groups=["free"]))
        assert created.status_code == 201, created.text
        auth = created.json()["auth"]
        assert auth["key_sources"] == [
            {"header": "apikey", "query": None, "path": None},
            {"header": "x-api-key", "query": None, "path": None},
        ]
        assert auth["consumer_header"] == "x-consumer-name"
        # alice is the last member of "free": she cannot leave it or go.
        assert api.patch("/consumers/alice", json={"groups": []}).status_code == 409
        assert api.delete("/consumers/alice").status_code == 409
        api.patch("/routes/r", json={"auth": {"allow_consumers": ["bob"]}})
        assert api.delete("/consumers/bob").status_code == 409
        assert api.delete("/consumers/alice").status_code == 204


def test_bulk_import_is_all_or_nothing(api: TestClient, keyed_store: Store) -> None:
    keys = [f"bulk-key-{i:010d}" for i in range(50)]
    keyed_store.keys.import_keys("alice", keys, "test")
    assert len(keyed_store.load().api_keys) == 50
    revision = api.get("/healthz").json()["revision"]
    with pytest.raises(Conflict):
        keyed_store.keys.import_keys("bob", ["fresh-key-0000000000", keys[7]], "test")
    with pytest.raises(Conflict):
        keyed_store.keys.import_keys("bob", ["twice-key-000000000"] * 2, "test")
    _unchanged(api, revision)
    assert len(keyed_store.load().api_keys) == 50


def test_openapi_documents_consumers_keys_auth_limits_and_policies(api: TestClient) -> None:
    spec = api.get("/openapi.json").json()
    paths = spec["paths"]
    assert {"post", "get"} <= set(paths["/consumers"])
    assert {"get", "put", "patch", "delete"} <= set(paths["/consumers/{name}"])
    assert {"post", "get"} <= set(paths["/consumers/{name}/keys"])
    assert "delete" in paths["/consumers/{name}/keys/{key_id}"]
    schemas = spec["components"]["schemas"]
    for name in ("RouteAuth", "KeySource", "Limits", "RoutePolicies", "ServicePolicies"):
        assert name in schemas, name
    assert schemas["RouteAuth"]["examples"]

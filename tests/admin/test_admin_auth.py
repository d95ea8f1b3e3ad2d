"""Every endpoint but /healthz wants the bearer token; the answer to a bad one is 401."""

import pytest
from fastapi.testclient import TestClient

from turnout.admin.app import create_app
from turnout.models.proxy_status import ProxyStatusSource
from turnout.models.token import generate_token, hash_token, token_matches
from turnout.storage.store import Store

PROTECTED = [
    ("GET", "/services"),
    ("POST", "/services"),
    ("GET", "/routes/x"),
    ("PUT", "/routes/x"),
    ("PATCH", "/splits/x"),
    ("DELETE", "/splits/x"),
    ("GET", "/proxies"),
    ("GET", "/audit"),
]


def test_tokens() -> None:
    token = generate_token()
    assert len(token) >= 43 and token != generate_token()
    digest = hash_token(token)
    assert len(digest) == 64 and int(digest, 16) >= 0
    assert token_matches(token, digest)
    assert token_matches(token, digest.upper())
    assert not token_matches(token + "x", digest)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # auth is not storage
@pytest.mark.parametrize(("method", "path"), PROTECTED)
@pytest.mark.parametrize("header", [None, "Bearer wrong", "Basic dGVzdA==", "Bearer"])
def test_rejected(anon: TestClient, method: str, path: str, header: str | None) -> None:
    headers = {"Authorization": header} if header else {}
    response = anon.request(method, path, headers=headers, json={})
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"


def test_healthz_needs_no_token(anon: TestClient) -> None:
    response = anon.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "revision": 0}


def test_stored_hash_used_without_env_token(store: Store, proxy_source: ProxyStatusSource) -> None:
    token = generate_token()
    with TestClient(create_app(store, proxy_source)) as client:
        # No token anywhere: nothing is accepted.
        assert client.get("/services", headers={"Authorization": "Bearer x"}).status_code == 401
        store.set_admin_token_hash(hash_token(token))
        ok = client.get("/services", headers={"Authorization": f"Bearer {token}"})
        assert ok.status_code == 200
        assert client.get("/services", headers={"Authorization": "Bearer x"}).status_code == 401


def test_env_token_wins_over_stored_hash(store: Store, proxy_source: ProxyStatusSource) -> None:
    store.set_admin_token_hash(hash_token("stored"))
    with TestClient(create_app(store, proxy_source, admin_token="from-env")) as client:
        assert client.get("/audit", headers={"Authorization": "Bearer from-env"}).status_code == 200
        assert client.get("/audit", headers={"Authorization": "Bearer stored"}).status_code == 401

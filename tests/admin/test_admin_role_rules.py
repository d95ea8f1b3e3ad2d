"""Roles as the README's table says, one rule per role, from the one table in
turnout/admin/roles.py: every rule is checked for every role, and each row of the
README's table has its own test of what it may and may not do."""

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.admin.conftest import TOKEN, FixedProxies
from turnout.admin.app import create_app
from turnout.admin.roles import RULES, check_rules
from turnout.models.token import Role
from turnout.storage.store import Store

OVERRIDE = {"X-Turnout-Override-Reason": "hotfix INC-7"}
ROLES = [Role.VIEWER, Role.OPERATOR, Role.ADMIN]


@pytest.fixture
def roles_store(database_url: str) -> Iterator[Store]:
    store = Store(database_url, secret_key="roles-test-secret-key")
    yield store
    store.close()


@pytest.fixture
def api(roles_store: Store, proxy_source: FixedProxies) -> Iterator[TestClient]:
    """Bootstrap admin client on a store with services orders/orders-v2, route
    orders, consumer acme with one key, and a token per role (see `as_role`)."""
    with TestClient(
        create_app(roles_store, proxy_source, admin_token=TOKEN),
        headers={"Authorization": f"Bearer {TOKEN}"},
    ) as client:
        for path, data in [
            ("/services", {"name": "orders", "url": "http://127.0.0.1:1"}),
            ("/services", {"name": "orders-v2", "url": "http://127.0.0.1:2"}),
            ("/routes", {"name": "orders", "service": "orders", "paths": ["/o"]}),
            ("/consumers", {"name": "acme"}),
            ("/consumers/acme/keys", None),
        ]:
            assert client.post(path, json=data).status_code == 201, path
        client.tokens = {  # type: ignore[attr-defined]
            role: client.post("/tokens", json={"name": role.value, "role": role.value}).json()[
                "token"
            ]
            for role in ROLES
        }
        yield client


def as_role(client: TestClient, role: Role) -> dict[str, str]:
    return {"Authorization": f"Bearer {client.tokens[role]}"}  # type: ignore[attr-defined]


def _state(client: TestClient) -> tuple[Any, ...]:
    """Everything a refused request must leave as it was."""
    return (
        client.get("/healthz").json()["revision"],
        len(client.get("/audit", params={"limit": 1000}).json()),
        client.get("/freezes").json(),
        client.get("/tokens").json(),
        client.get("/consumers/acme/keys").json(),
    )


def _document_at(client: TestClient, n: int) -> dict[str, Any]:
    """`GET /revisions/n` as a document `POST /config` takes."""
    return {k: v for k, v in client.get(f"/revisions/{n}").json().items() if k != "revision"}


def _concrete(path: str) -> str:
    # Unknown names: an allowed call then answers 404 or 422, never 401 or 403.
    return (
        path.replace("{name}", "nothing")
        .replace("{node_id}", "nothing")
        .replace("{key_id}", "nothing")
        .replace("{freeze_id}", "424242")
        .replace("{n}", "424242")
        .replace("{a}", "0")
        .replace("{b}", "424242")
    )


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # auth is not storage
def test_every_rule_for_every_role(api: TestClient) -> None:
    for (method, template), needed in RULES.items():
        path = _concrete(template)
        for role in ROLES:
            before = _state(api)
            response = api.request(method, path, headers=as_role(api, role), json={})
            if role.allows(needed):
                assert response.status_code not in (401, 403), (role, method, path, response.text)
            else:
                assert response.status_code == 403, (role, method, path, response.text)
                detail = response.json()["detail"]
                assert f"role {role.value}" in detail and f"needs role {needed.value}" in detail
                assert f"{method} {template}" in detail
                assert _state(api) == before, (role, method, path)


def test_viewer_row_reads_everything_writes_nothing(api: TestClient) -> None:
    viewer = as_role(api, Role.VIEWER)
    for path in ("/services", "/routes/orders", "/consumers/acme/keys", "/proxies", "/audit",
                 "/freezes", "/revisions", "/revisions/1", "/revisions/0/diff/2", "/config",
                 "/proxies/envoy-1/config"):  # fmt: skip
        assert api.get(path, headers=viewer).status_code == 200, path
    before = _state(api)
    for method, path, body in [
        ("POST", "/services", {"name": "blue", "url": "http://127.0.0.1:3"}),
        ("POST", "/freezes", {"reason": "r", "scope": {"all": True}}),
        ("DELETE", "/consumers/acme", None),
        ("GET", "/tokens", None),
    ]:
        assert api.request(method, path, headers=viewer, json=body).status_code == 403, path
    assert _state(api) == before


def test_operator_row_drives_the_declaration_but_not_its_rules(api: TestClient) -> None:
    operator = as_role(api, Role.OPERATOR)
    split = {"name": "canary", "route": "orders", "targets": [{"service": "orders", "weight": 1}]}
    assert api.post("/splits", json=split, headers=operator).status_code == 201
    assert api.post("/consumers", json={"name": "beta"}, headers=operator).status_code == 201
    assert api.patch("/routes/orders", json={"priority": 2}, headers=operator).status_code == 200
    (key,) = api.get("/consumers/acme/keys").json()
    assert api.delete(f"/consumers/acme/keys/{key['id']}", headers=operator).status_code == 204
    freeze = api.post("/freezes", json={"reason": "r", "scope": {"all": True}}, headers=operator)
    assert freeze.status_code == 201, freeze.text  # anyone who may write may pull the brake

    before = _state(api)
    refused = [
        ("DELETE", f"/freezes/{freeze.json()['id']}", None, {}),  # lift it
        ("POST", "/services", {"name": "blue", "url": "http://127.0.0.1:3"}, OVERRIDE),
        ("POST", "/revisions/1/restore", None, {}),
        ("POST", "/config", _document_at(api, 1), {}),  # a restore by another path
        ("POST", "/config?dry_run=true", api.get("/config").json(), {}),
        ("POST", "/consumers/acme/keys", None, {}),
        ("POST", "/tokens", {"name": "x", "role": "admin"}, {}),
        ("DELETE", "/tokens/viewer", None, {}),
    ]
    for method, path, body, extra in refused:
        response = api.request(method, path, json=body, headers={**operator, **extra})
        assert response.status_code == 403, (method, path, response.text)
        assert "needs role admin" in response.json()["detail"]
    assert _state(api) == before
    assert api.get("/freezes").json()["items"][0]["state"] == "active"


def test_admin_row_lifts_overrides_restores_and_mints(api: TestClient) -> None:
    admin = as_role(api, Role.ADMIN)
    assert api.post("/consumers/acme/keys", headers=admin).status_code == 201
    assert (
        api.post("/tokens", json={"name": "ci", "role": "operator"}, headers=admin).status_code
        == 201
    )
    freeze = api.post("/freezes", json={"reason": "r", "scope": {"all": True}}, headers=admin)
    blue = {"name": "blue", "url": "http://127.0.0.1:3"}
    assert api.post("/services", json=blue, headers={**admin, **OVERRIDE}).status_code == 201
    assert api.delete(f"/freezes/{freeze.json()['id']}", headers=admin).status_code == 204
    # Revision 1 had no consumer: the restore deletes acme and its key, which must be asked for.
    restored = api.post("/revisions/1/restore?delete_keys=true", headers=admin)
    assert restored.status_code == 200, restored.text
    assert [s["name"] for s in api.get("/services").json()["items"]] == ["orders"]
    applied = api.post("/config", json=_document_at(api, 3), headers=admin)
    assert applied.status_code == 200, applied.text
    assert api.get("/routes/orders").status_code == 200


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_token_is_checked_before_the_body_is_read(api: TestClient) -> None:
    garbage = b'{"name": '
    json_type = {"Content-Type": "application/json"}
    anonymous = api.post("/services", content=garbage, headers={**json_type, "Authorization": ""})
    assert anonymous.status_code == 401 and anonymous.headers["WWW-Authenticate"] == "Bearer"
    viewer = as_role(api, Role.VIEWER)
    assert (
        api.post("/services", content=garbage, headers={**json_type, **viewer}).status_code == 403
    )
    assert api.post("/services", content=garbage, headers=json_type).status_code == 422
    # Unknown paths do not tell an anonymous caller which routes exist.
    assert api.get("/nothing/here", headers={"Authorization": ""}).status_code == 401
    assert api.get("/nothing/here").status_code == 404
    assert api.get("/healthz", headers={"Authorization": ""}).status_code == 200


def test_check_rules_refuses_a_route_without_a_rule() -> None:
    paths: dict[str, dict[str, Any]] = {}
    for method, template in RULES:
        paths.setdefault(template, {})[method.lower()] = {}
    check_rules({"paths": paths})
    with pytest.raises(RuntimeError, match=r"without a role rule.*GET.*/secret"):
        check_rules({"paths": {**paths, "/secret": {"get": {}}}})
    with pytest.raises(RuntimeError, match=r"without a route.*/tokens/\{name\}"):
        check_rules({"paths": {p: ops for p, ops in paths.items() if p != "/tokens/{name}"}})

"""The OpenAPI document tells the truth: every operation is described, every write's
request examples are accepted as shown, and every status an operation answers is
documented, with the error body of turnout/admin/errors.py.

In-process on a fresh SQLite database; the examples are posted in dependency
order (consumer, services, routes, split, then what acts on them), each with the
path parameters' own examples, exactly as /docs would send them.
"""

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.admin.conftest import PROXY, TOKEN, FixedProxies
from turnout.admin.app import create_app
from turnout.admin.roles import PUBLIC_PATHS
from turnout.models.freeze import OVERRIDE_HEADER
from turnout.storage.store import Store

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

WRITES_IN_ORDER: list[tuple[str, str]] = [
    ("post", "/consumers"),
    ("post", "/services"),
    ("post", "/routes"),
    ("post", "/splits"),
    *[(m, f"/{p}/{{name}}") for m in ("put", "patch") for p in ("consumers", "services", "routes")],
    ("put", "/splits/{name}"),
    ("patch", "/splits/{name}"),
    ("post", "/consumers/{name}/keys"),
    *[
        ("post", f"/splits/{{name}}/{a}")
        for a in ("advance", "pause", "resume", "advance", "promote", "rollback")
    ],
    ("post", "/revisions/{n}/restore"),  # back to revision 1: consumer acme only
    ("post", "/config"),  # and everything back
    ("post", "/tokens"),
    ("post", "/freezes"),
]
"""Every operation with a request body, in an order where each example is valid."""

ERROR_BODY = {"$ref": "#/components/schemas/ErrorBody"}
WRITE_METHODS = ("post", "put", "patch", "delete")
UNGATED = {
    ("post", "/freezes"),
    ("delete", "/freezes/{freeze_id}"),
    ("post", "/tokens"),
    ("delete", "/tokens/{name}"),
    ("post", "/splits/{name}/rollback"),
}
"""Writes no freeze holds: freezes and tokens themselves, and a split's way back."""


@pytest.fixture
def api(database_url: str) -> Iterator[TestClient]:
    store = Store(database_url, secret_key="openapi-test-secret-key")
    app = create_app(store, FixedProxies([PROXY]), admin_token=TOKEN)
    with TestClient(app, headers={"Authorization": f"Bearer {TOKEN}"}) as client:
        yield client
    store.close()


def _operations(doc: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {
        (method, path): op
        for path, item in doc["paths"].items()
        if path not in PUBLIC_PATHS
        for method, op in item.items()
    }


def _body_examples(op: dict[str, Any]) -> list[Any]:
    content = op.get("requestBody", {}).get("content", {}).get("application/json", {})
    return [e["value"] for e in content.get("examples", {}).values()]


def _url(path: str, op: dict[str, Any]) -> str:
    """The path with each parameter's first example filled in."""
    for param in op.get("parameters", []):
        if param["in"] == "path":
            examples = param.get("examples") or {}
            assert examples, f"path parameter {param['name']} of {path} has no example"
            value = next(iter(examples.values()))["value"]
            path = path.replace(f"{{{param['name']}}}", str(value))
    return path


def _call(
    client: TestClient, method: str, path: str, op: dict[str, Any], body: Any = None, **kw: Any
) -> int:
    response = client.request(method, _url(path, op), json=body, **kw)
    assert str(response.status_code) in op["responses"], (
        f"{method.upper()} {path} answered an undocumented {response.status_code}: {response.text}"
    )
    return response.status_code


def _post_every_example(client: TestClient, ops: dict[tuple[str, str], dict[str, Any]]) -> None:
    for method, path in WRITES_IN_ORDER:
        op = ops[(method, path)]
        for body in _body_examples(op):
            response = client.request(method, _url(path, op), json=body)
            assert response.is_success, (method, path, body, response.text)


def test_every_operation_is_described_and_every_write_has_examples(api: TestClient) -> None:
    ops = _operations(api.get("/openapi.json").json())
    assert len(ops) >= 48
    for (method, path), op in ops.items():
        assert op.get("summary", "").strip(), (method, path)
        assert op.get("description", "").strip(), (method, path)
        if "requestBody" in op:
            assert _body_examples(op), f"{method.upper()} {path}: no request example"
    with_body = {key for key, op in ops.items() if "requestBody" in op}
    assert with_body == set(WRITES_IN_ORDER)
    assert all(key[0] in WRITE_METHODS for key in with_body)


def test_every_request_example_is_accepted_in_order(api: TestClient) -> None:
    ops = _operations(api.get("/openapi.json").json())
    _post_every_example(api, ops)
    # What the examples built is there: the document the config example posted back.
    assert [s["name"] for s in api.get("/services").json()["items"]] == ["orders", "orders-v2"]
    assert api.get("/splits/orders-canary").json()["plan"]["target"] == "orders-v2"
    assert len(api.get("/consumers/acme/keys").json()) == 2
    assert {t["name"] for t in api.get("/tokens").json()} == {"ci-deploy", "dashboard"}
    assert len(api.get("/freezes").json()["items"]) == 2


def test_every_error_status_is_documented_with_the_error_body(api: TestClient) -> None:
    ops = _operations(api.get("/openapi.json").json())
    for (method, path), op in ops.items():
        where = f"{method.upper()} {path}"
        errors = {code: r for code, r in op["responses"].items() if int(code) >= 400}
        for code in ("401", "403", "503"):  # the guard, and the database behind it
            assert code in errors, (where, code)
        if "{" in path:
            assert "404" in errors, where
        if op.get("parameters") or "requestBody" in op:
            assert "422" in errors, where
        if "requestBody" in op:
            assert "400" in errors, where
        gated = method in WRITE_METHODS and (method, path) not in UNGATED
        assert ("423" in errors) == gated, where
        for code, answer in errors.items():
            assert answer["content"]["application/json"]["schema"] == ERROR_BODY, (where, code)
            assert answer["description"].strip(), (where, code)


def test_every_status_answered_is_documented(api: TestClient) -> None:
    """Each operation called as /docs would call it: without a token (401), as a
    viewer sending the override header (403), as admin, and as admin under a freeze
    of everything (423 on every gated write)."""
    ops = _operations(api.get("/openapi.json").json())
    _post_every_example(api, ops)
    viewer = api.post("/tokens", json={"name": "viewer", "role": "viewer"}).json()["token"]

    def call_all(**kw: Any) -> dict[tuple[str, str], set[int]]:
        answered: dict[tuple[str, str], set[int]] = {}
        for (method, path), op in ops.items():
            bodies = _body_examples(op) or [None]
            answered[(method, path)] = {_call(api, method, path, op, body, **kw) for body in bodies}
        return answered

    assert set().union(*call_all(headers={"Authorization": "Bearer nope"}).values()) == {401}
    as_viewer = {"Authorization": f"Bearer {viewer}", OVERRIDE_HEADER: "try"}
    assert set().union(*call_all(headers=as_viewer).values()) == {403}

    freeze = {"reason": "everything", "scope": {"all": True}}
    assert api.post("/freezes", json=freeze).status_code == 201
    frozen = call_all()
    for key, statuses in frozen.items():
        if key[0] in WRITE_METHODS and key not in UNGATED and key[1] != "/config":
            # Deletes of a key or an entity still referred to may stop earlier (404, 409).
            assert statuses & {423, 404, 409}, (key, statuses)
    assert 423 in frozen[("put", "/services/{name}")] and 423 in frozen[("put", "/routes/{name}")]
    assert 423 not in frozen[("post", "/splits/{name}/rollback")]

"""Out-of-range numbers are a 422 naming the parameter, never a 500; and the
OpenAPI document lists every error an operation can answer, with its body."""

import pytest
from fastapi.testclient import TestClient

from turnout.admin.roles import PUBLIC_PATHS
from turnout.models.token import parse_duration

HUGE = "99999999999999999999999"  # beyond any database integer


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize(
    ("method", "path", "body", "loc"),
    [
        ("POST", "/tokens", {"name": "x", "role": "viewer", "expires_in_seconds": 86399999999999},
         ["body", "expires_in_seconds"]),
        ("GET", f"/revisions?before={HUGE}", None, ["query", "before"]),
        ("DELETE", f"/freezes/{HUGE}", None, ["path", "freeze_id"]),
        ("GET", f"/revisions/{HUGE}", None, ["path", "n"]),
        ("GET", f"/revisions/0/diff/{HUGE}", None, ["path", "b"]),
        ("POST", f"/revisions/{HUGE}/restore", None, ["path", "n"]),
    ],
)  # fmt: skip
def test_out_of_range_numbers_are_422_naming_the_field(
    client: TestClient, method: str, path: str, body: object, loc: list[str]
) -> None:
    before = client.get("/audit").json()
    response = client.request(method, path, json=body)
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"] == loc
    assert client.get("/audit").json() == before and client.get("/tokens").json() == []


def test_token_lifetimes_are_bounded_on_the_command_line_too() -> None:
    with pytest.raises(ValueError, match="at most 100 years"):
        parse_duration("99999999999d")
    assert parse_duration("36500d").days == 36500


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_openapi_documents_every_error_answer(anon: TestClient) -> None:
    document = anon.get("/openapi.json").json()
    assert "ErrorBody" in document["components"]["schemas"]
    operations = [
        (path, method, op)
        for path, item in document["paths"].items()
        if path not in PUBLIC_PATHS
        for method, op in item.items()
    ]
    assert len(operations) > 40
    for path, method, op in operations:
        # Each where it can occur (tests/admin/test_openapi_document.py); these on all.
        for status in ("401", "403", "503"):
            answer = op["responses"].get(status)
            assert answer is not None, (method, path, status)
            schema = answer["content"]["application/json"]["schema"]
            assert schema == {"$ref": "#/components/schemas/ErrorBody"}, (method, path, status)
        assert op["security"] == [{"HTTPBearer": []}], (method, path)

"""Splits sticky or pinned by consumer: the route must authenticate (409 naming the field)."""

from fastapi.testclient import TestClient

from tests.admin.conftest import Bodies


def test_sticky_by_consumer_needs_route_auth(seeded: TestClient, body: type[Bodies]) -> None:
    split = body.split(orders=50, orders_v2=50) | {"sticky": {"consumer": True}}
    refused = seeded.post("/splits", json=split)
    assert refused.status_code == 409, refused.text
    assert refused.json()["field"] == "sticky.consumer"

    assert seeded.put("/routes/orders", json=body.route(auth={})).status_code == 200
    assert seeded.post("/splits", json=split).status_code == 201
    # The route cannot lose its auth while the split hashes the consumer.
    dropped = seeded.put("/routes/orders", json=body.route())
    assert dropped.status_code == 409 and dropped.json()["field"] == "auth", dropped.text


def test_sticky_is_one_of_header_cookie_or_consumer(seeded: TestClient, body: type[Bodies]) -> None:
    for sticky in ({"consumer": True, "header": "x-user"}, {"consumer": False}, {}):
        split = body.split(orders=50, orders_v2=50) | {"sticky": sticky}
        response = seeded.post("/splits", json=split)
        assert response.status_code == 422, (sticky, response.text)
        assert "sticky" in response.text


def test_pin_by_consumer_needs_route_auth_and_the_consumer(
    seeded: TestClient, body: type[Bodies]
) -> None:
    split = body.split(orders=100, orders_v2=0) | {
        "pins": [{"consumer": "alice", "service": "orders-v2"}]
    }
    refused = seeded.post("/splits", json=split)
    assert refused.status_code == 409 and refused.json()["field"] == "pins[0].consumer"
    assert seeded.put("/routes/orders", json=body.route(auth={})).status_code == 200
    missing = seeded.post("/splits", json=split)
    assert missing.status_code == 409 and missing.json()["field"] == "pins[0].consumer"
    assert seeded.post("/consumers", json={"name": "alice"}).status_code == 201
    assert seeded.post("/splits", json=split).status_code == 201
    open_route = body.route(auth={"required": False})
    dropped = seeded.put("/routes/orders", json=open_route)
    assert dropped.status_code == 409 and dropped.json()["field"] == "auth", dropped.text


def test_pin_value_goes_with_header_or_cookie(seeded: TestClient, body: type[Bodies]) -> None:
    for pin in (
        {"consumer": "alice", "value": "x", "service": "orders-v2"},
        {"header": "x-a", "service": "orders-v2"},
        {"consumer": "alice", "header": "x-a", "service": "orders-v2"},
    ):
        split = body.split(orders=100, orders_v2=0) | {"pins": [pin]}
        assert seeded.post("/splits", json=split).status_code == 422, pin

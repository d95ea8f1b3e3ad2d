"""Splits sticky by consumer: the split's route must authenticate (409 naming the field)."""

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

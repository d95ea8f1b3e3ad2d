"""Spec factories and a seeded store for store tests."""

from typing import Any

import pytest

from turnout.models.route import RouteSpec
from turnout.models.service import ServiceSpec
from turnout.models.split import SplitSpec
from turnout.storage.store import Store


class Make:
    """Small valid specs; keyword arguments override fields."""

    @staticmethod
    def service(name: str = "orders", **fields: Any) -> ServiceSpec:
        data = {"name": name, "url": f"http://{name}.internal:8080"} | fields
        return ServiceSpec.model_validate(data)

    @staticmethod
    def route(name: str = "orders", service: str = "orders", **fields: Any) -> RouteSpec:
        data = {"name": name, "service": service, "paths": ["/orders"]} | fields
        return RouteSpec.model_validate(data)

    @staticmethod
    def split(name: str = "orders-canary", route: str = "orders", **weights: int) -> SplitSpec:
        """`split(orders=90, orders_v2=10)`: underscores in service names become dashes."""
        targets = [{"service": s.replace("_", "-"), "weight": w} for s, w in weights.items()]
        return SplitSpec.model_validate({"name": name, "route": route, "targets": targets})


@pytest.fixture
def make() -> type[Make]:
    return Make


@pytest.fixture
def seeded(store: Store) -> Store:
    """Services "orders" and "orders-v2", route "orders" to "orders": revision 3."""
    store.create("service", Make.service("orders"), "test")
    store.create("service", Make.service("orders-v2"), "test")
    store.create("route", Make.route("orders"), "test")
    return store

"""The entity registry: each kind of entity declared once.

Kong-style: the store, the admin router factory and the declarative config all
iterate over `ENTITIES` rather than naming services, routes and splits one by one.
Consumers come first: routes name them in `auth`. A spec and its row have the same
field names (a test holds them to it), so converting between them needs no
per-entity code.
"""

from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from turnout.models.consumer import ConsumerRow, ConsumerSpec
from turnout.models.route import RouteRow, RouteSpec
from turnout.models.schema import Base
from turnout.models.service import ServiceRow, ServiceSpec
from turnout.models.split import SplitRow, SplitSpec


@dataclass(frozen=True)
class Entity:
    kind: str
    """Singular name used in the store API, audit events and messages: "service"."""
    plural: str
    """Collection name used in admin URLs and `Declaration` fields: "services"."""
    spec: type[BaseModel]
    """The pydantic model that validates the entity."""
    row: type[Base]
    """The SQLAlchemy row class that stores it."""

    def to_row(self, spec: BaseModel) -> Base:
        return self.row(**spec.model_dump(mode="json"))

    def to_spec(self, row: Base) -> BaseModel:
        return self.spec.model_validate(self.row_dict(row))

    def row_dict(self, row: Base) -> dict[str, Any]:
        return {name: getattr(row, name) for name in self.spec.model_fields}


ENTITIES: dict[str, Entity] = {
    e.kind: e
    for e in (
        Entity("consumer", "consumers", ConsumerSpec, ConsumerRow),
        Entity("service", "services", ServiceSpec, ServiceRow),
        Entity("route", "routes", RouteSpec, RouteRow),
        Entity("split", "splits", SplitSpec, SplitRow),
    )
}
"""Every entity kind, in dependency order: a later kind may refer to an earlier one."""


def entity(kind: str) -> Entity:
    try:
        return ENTITIES[kind]
    except KeyError:
        raise ValueError(f"unknown entity kind {kind!r}; one of {sorted(ENTITIES)}") from None

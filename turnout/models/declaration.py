"""A whole declaration at one revision: what `xds` translates into Envoy config."""

from dataclasses import dataclass, field

from pydantic import BaseModel

from turnout.models.consumer import ConsumerSpec
from turnout.models.key import ApiKey
from turnout.models.route import RouteSpec
from turnout.models.service import ServiceSpec
from turnout.models.split import SplitSpec


@dataclass(frozen=True)
class Declaration:
    """Every entity at `revision`, keyed by name. Treat as immutable."""

    revision: int
    """The global revision number this declaration was read at."""
    services: dict[str, ServiceSpec] = field(default_factory=dict)
    routes: dict[str, RouteSpec] = field(default_factory=dict)
    splits: dict[str, SplitSpec] = field(default_factory=dict)
    consumers: dict[str, ConsumerSpec] = field(default_factory=dict)
    api_keys: tuple[ApiKey, ...] = ()
    """Every unexpired API key in clear, sorted by id (empty without TURNOUT_SECRET_KEY)."""

    def split_for_route(self, route: str) -> SplitSpec | None:
        for split in self.splits.values():
            if split.route == route:
                return split
        return None

    def by_kind(self) -> dict[str, dict[str, BaseModel]]:
        """Entities keyed by kind ("service") then name, as `Store.apply` takes them."""
        from turnout.models.entities import ENTITIES  # entities imports the specs too

        return {ent.kind: dict(getattr(self, ent.plural)) for ent in ENTITIES.values()}

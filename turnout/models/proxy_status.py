"""What the admin side may learn about connected proxies, without importing `xds`.

`xds` implements `ProxyStatusSource`; the entry point hands it to the admin app.
"""

from datetime import datetime
from typing import Any, Literal, Protocol

from pydantic import BaseModel, Field


class TypeStatus(BaseModel):
    """Where one resource type stands on one proxy's stream."""

    type_url: str
    state: Literal["SYNCED", "STALE", "NACKED"] = Field(
        "STALE",
        description="SYNCED: acknowledged the current declaration; STALE: a push is in "
        "flight or due; NACKED: rejected the newest content (see last_nack) and keeps the "
        "previous version of what it rejected (see the proxy's `quarantined`) until the "
        "declaration changes it; everything else of the type is still delivered.",
    )
    version_sent: str | None = Field(None, description="Last version_info sent.")
    version_acked: str | None = Field(None, description="Last version_info the proxy ACKed.")
    last_nack: str | None = Field(None, description="Envoy's message for the last rejection.")
    nacked_version: str | None = Field(None, description="The version that was rejected.")


class QuarantinedResource(BaseModel):
    """An entity the proxy rejected: it keeps its last accepted version of it (or has
    none) until the declaration changes the entity, while everything else flows."""

    type_url: str = Field(description="The xDS type of the rejected response.")
    kind: Literal["service", "route", "listener", "route_configuration", "extension_config"] = (
        Field(
            description="service: its cluster or endpoints; route: one route, left out of "
            "the route configuration; the others: a whole Envoy resource."
        )
    )
    name: str = Field(description="The entity's (or Envoy resource's) name.")
    message: str = Field(description="Envoy's message, shortened to 1 KiB.")


class ProxyStatus(BaseModel):
    node_id: str
    node_cluster: str
    connected_since: datetime
    xds: Literal["sotw", "delta"] = Field("sotw", description="State of the World or Delta xDS.")
    listener_port: int
    revision: int | None = Field(
        None, description="The newest declaration revision this proxy acknowledged in full."
    )
    types: list[TypeStatus]
    quarantined: list[QuarantinedResource] = Field(
        default_factory=list, description="What this proxy rejected and is held back from."
    )


class ProxyStatusSource(Protocol):
    def proxies(self) -> list[ProxyStatus]: ...

    def proxy_config(self, node_id: str) -> dict[str, list[dict[str, Any]]] | None:
        """The resources last sent to `node_id` as JSON by type URL; None if unknown."""
        ...

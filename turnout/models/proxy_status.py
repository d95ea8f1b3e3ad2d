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
        "previous one until the declaration changes.",
    )
    version_sent: str | None = Field(None, description="Last version_info sent.")
    version_acked: str | None = Field(None, description="Last version_info the proxy ACKed.")
    last_nack: str | None = Field(None, description="Envoy's message for the last rejection.")
    nacked_version: str | None = Field(None, description="The version that was rejected.")


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


class ProxyStatusSource(Protocol):
    def proxies(self) -> list[ProxyStatus]: ...

    def proxy_config(self, node_id: str) -> dict[str, list[dict[str, Any]]] | None:
        """The resources last sent to `node_id` as JSON by type URL; None if unknown."""
        ...

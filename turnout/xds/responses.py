"""What a stream decides: the response due for one type (`Response`), and what a
request turned out to be (`RequestOutcome`). Plain values; `stream.py` makes them.
"""

from dataclasses import dataclass, field

from turnout.xds.quarantine import Quarantined
from turnout.xds.route_parts import RouteCut, RouteParts
from turnout.xds.snapshot import PackedResource


@dataclass(frozen=True)
class Response:
    """What the server must send for one type."""

    type_url: str
    version: str
    resources: dict[str, PackedResource]
    """Resources to send, in name order (SotW: all wanted; Delta: changed ones)."""
    removed: tuple[str, ...]
    """Delta only: names the client must drop or that do not exist."""
    nonce: str
    route_refs: dict[str, frozenset[str]] = field(default_factory=dict)
    """Routes only: the clusters each route configuration sent refers to."""
    basis: tuple[object, ...] | None = None
    """What the response was computed from (`StreamState._basis`)."""
    updated: tuple[str, ...] = ()
    """Names whose content the client did not hold yet."""
    route_parts: dict[str, RouteParts] = field(default_factory=dict)
    """Routes only: the parts the route configurations sent were cut from."""
    route_cuts: dict[str, RouteCut] = field(default_factory=dict)
    """Routes only: how each route configuration sent was cut from its parts."""

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self.resources)


@dataclass
class RequestOutcome:
    """What a request turned out to be, for metrics and logs."""

    stale: bool = False
    ack: bool = False
    nack: str | None = None
    quarantined: list[Quarantined] = field(default_factory=list)
    """What a NACK newly quarantined."""

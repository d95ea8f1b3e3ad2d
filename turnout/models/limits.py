"""Request limits: bursts enforced in each Envoy, quotas held across the fleet.

    limits:
      burst: [{requests: 10, per: second}]   # local_ratelimit in every Envoy
      quota: [{requests: 1000, per: day}]    # Turnout's rate limit service + Redis

On a route, limits count per consumer when the route authenticates (each consumer
has its own buckets and counters on that route), else for the route as a whole.
On a consumer, `quota` counts that consumer's requests over every authenticated
route together (the free tier's "N requests per day"); `burst` on a consumer
replaces the route's per-consumer burst for that consumer, in every window (the
route's minute limit does not apply to a consumer with only a per-second one).
"""

from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, model_validator

from turnout.models.types import Name


class Window(StrEnum):
    SECOND = "second"
    MINUTE = "minute"
    HOUR = "hour"
    DAY = "day"
    MONTH = "month"


WINDOW_SECONDS = {
    Window.SECOND: 1,
    Window.MINUTE: 60,
    Window.HOUR: 3600,
    Window.DAY: 86400,
    Window.MONTH: 30 * 86400,
}
BURST_WINDOWS = frozenset({Window.SECOND, Window.MINUTE})
QUOTA_WINDOWS = frozenset({Window.MINUTE, Window.HOUR, Window.DAY, Window.MONTH})


class Limit(BaseModel):
    """At most `requests` requests per `per`."""

    model_config = ConfigDict(extra="forbid")

    requests: Annotated[int, Field(ge=1, le=1_000_000_000, description="Requests allowed.")]
    per: Annotated[Window, Field(description="second, minute, hour, day or month (30 days).")]


class Limits(BaseModel):
    """Burst limits (local to each Envoy) and quotas (fleet-wide)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "burst": [{"requests": 10, "per": "second"}],
                    "quota": [{"requests": 1000, "per": "day"}],
                }
            ]
        },
    )

    burst: Annotated[
        list[Limit],
        Field(description="Per second or minute, enforced inside each Envoy.", max_length=2),
    ] = []
    quota: Annotated[
        list[Limit],
        Field(
            description="Per minute, hour, day or month, counted across every Envoy in Redis.",
            max_length=4,
        ),
    ] = []

    shared: Annotated[
        Name | None,
        Field(
            description="Routes naming the same `shared` count their quotas together "
            "(per consumer on authenticated routes), as a Kong rate-limiting plugin on a "
            "service counts all of its routes. Absent: this route's own counters."
        ),
    ] = None

    @model_validator(mode="after")
    def _windows(self) -> "Limits":
        for name, allowed, limits in (
            ("burst", BURST_WINDOWS, self.burst),
            ("quota", QUOTA_WINDOWS, self.quota),
        ):
            windows = [limit.per for limit in limits]
            if len(set(windows)) != len(windows):
                raise ValueError(f"{name}: at most one limit per window")
            for window in windows:
                if window not in allowed:
                    raise ValueError(
                        f"{name}: window {window.value!r} is not one of "
                        f"{sorted(w.value for w in allowed)}"
                    )
        return self

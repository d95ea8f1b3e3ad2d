"""What the controller and the admin API may learn about traffic, without importing `xds`.

`turnout/xds/lrs.py` receives Envoy's load reports (LRS) and implements
`LoadStatsSource`; the entry point hands it to the controller and the admin app.
A cluster is named after its service, so figures are asked for by service name.
"""

from datetime import datetime
from typing import NamedTuple, Protocol

from pydantic import BaseModel, Field


class Load(BaseModel):
    """Requests completed by one service's cluster, summed over every reporting proxy."""

    requests: int = Field(0, description="Completed requests (successful + errors).")
    errors: int = Field(0, description="Requests answered with a 5xx or failed upstream.")

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0


class Sample(NamedTuple):
    """One load report's delta for one cluster, timestamped on arrival."""

    cluster: str
    at: datetime
    requests: int
    errors: int


class LoadStatsSource(Protocol):
    def window(self, cluster: str, since: datetime) -> Load:
        """Requests reported for `cluster` by reports received at or after `since`."""
        ...

    def report_interval_seconds(self) -> float:
        """How often proxies are asked to report."""
        ...


class NoLoadStats:
    """A source that never saw a report (no LRS wired, e.g. in unit tests)."""

    def window(self, cluster: str, since: datetime) -> Load:
        return Load()

    def report_interval_seconds(self) -> float:
        return 0.0


class LocalLoadStats(LoadStatsSource, Protocol):
    """This replica's own reports, which it can hand over for sharing."""

    def take_unpublished(self) -> list[Sample]:
        """The samples recorded since the last call (oldest first)."""
        ...

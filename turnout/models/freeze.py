"""Freezes: windows during which writes to some or all of the declaration are refused.

The freeze's schema (`FreezeCreate` in, `Freeze` out, `FreezeView` with its state),
its row and the error a frozen write raises (`Frozen`, HTTP 423). Time is evaluated
at write time: a scheduled freeze starts and ends by itself, no job runs. Which
writes a freeze covers, and the queries that check it, are
`turnout/storage/freezes.py`'s.
"""

from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlalchemy import JSON, BigInteger, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from turnout.models.errors import TurnoutError
from turnout.models.schema import Base, UtcDateTime
from turnout.models.types import Name, Tag

OVERRIDE_HEADER = "X-Turnout-Override-Reason"


class FreezeScope(BaseModel):
    """What a freeze covers: everything (`all`), or the listed services, routes, tags."""

    model_config = ConfigDict(extra="forbid")

    all: Annotated[bool, Field(description="Freeze the whole declaration.")] = False
    services: Annotated[list[Name], Field(max_length=256)] = []
    routes: Annotated[list[Name], Field(max_length=256)] = []
    tags: Annotated[list[Tag], Field(max_length=64)] = []

    @model_validator(mode="after")
    def _one_kind(self) -> "FreezeScope":
        listed = bool(self.services or self.routes or self.tags)
        if self.all == listed:
            raise ValueError(
                "give either all: true, or some services, routes or tags (not both, not none)"
            )
        return self


class FreezeCreate(BaseModel):
    """`POST /freezes`: a reason, a scope, and optionally when it starts and ends."""

    model_config = ConfigDict(extra="forbid")

    reason: Annotated[str, Field(min_length=1, max_length=1024)]
    scope: FreezeScope
    starts_at: Annotated[
        datetime | None, Field(description="When the freeze starts (UTC); now if omitted.")
    ] = None
    ends_at: Annotated[
        datetime | None,
        Field(description="When the freeze ends by itself; omitted: when lifted."),
    ] = None

    @model_validator(mode="after")
    def _times(self) -> "FreezeCreate":
        for field in ("starts_at", "ends_at"):
            value = getattr(self, field)
            if value is not None and value.tzinfo is None:
                raise ValueError(f"{field} needs a time zone (e.g. 2026-01-01T10:00:00Z)")
        if self.starts_at and self.ends_at and self.ends_at <= self.starts_at:
            raise ValueError("ends_at must be after starts_at")
        # A window wholly in the past would be stored and never hold anything: an
        # operator's typo (wrong year, local time taken for UTC) must not look done.
        if self.ends_at is not None and self.ends_at <= now():
            raise ValueError(
                f"ends_at {self.ends_at.isoformat()} is in the past: the freeze would never hold"
            )
        return self


class FreezeState(StrEnum):
    SCHEDULED = "scheduled"
    ACTIVE = "active"
    ENDED = "ended"
    LIFTED = "lifted"


class Freeze(BaseModel):
    """A freeze as the admin API shows it."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    reason: str
    scope: FreezeScope
    starts_at: datetime
    ends_at: datetime | None
    created_at: datetime
    created_by: str
    lifted_at: datetime | None = None
    lifted_by: str | None = None

    def state_at(self, now: datetime) -> FreezeState:
        if self.lifted_at is not None and self.lifted_at <= now:
            return FreezeState.LIFTED
        if now < self.starts_at:
            return FreezeState.SCHEDULED
        if self.ends_at is not None and now >= self.ends_at:
            return FreezeState.ENDED
        return FreezeState.ACTIVE

    def active(self, now: datetime) -> bool:
        return self.state_at(now) is FreezeState.ACTIVE


class FreezeView(Freeze):
    state: FreezeState = Field(description="scheduled, active, ended or lifted, as of now.")


class FreezeRow(Base):
    __tablename__ = "freezes"

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True
    )
    reason: Mapped[str] = mapped_column(Text)
    scope: Mapped[dict[str, Any]] = mapped_column(JSON)
    starts_at: Mapped[datetime] = mapped_column(UtcDateTime)
    ends_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    created_by: Mapped[str] = mapped_column(String(128))
    lifted_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    lifted_by: Mapped[str | None] = mapped_column(String(128), nullable=True)


class Frozen(TurnoutError):
    """A write touches an entity covered by an active freeze (HTTP 423)."""

    def __init__(self, freeze: Freeze, kind: str, name: str) -> None:
        super().__init__(
            f"{kind} {name!r} is frozen by freeze {freeze.id} ({freeze.reason}); "
            f"an admin may override one request with header {OVERRIDE_HEADER}"
        )
        self.freeze = freeze


def now() -> datetime:
    return datetime.now(UTC)

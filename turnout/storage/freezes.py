"""Freezes: windows during which writes to some or all of the declaration are refused.

Owns the freeze schema, its row, and the one rule that decides whether a freeze
covers a write (`covers`). The store applies that rule inside its write
transaction (`turnout/storage/store.py`), under the same lock as every writer, so
no write can slip past a freeze committed just before it. Time is evaluated at
write time: a scheduled freeze starts and ends by itself, no job runs.

Scope: `all`, or any of `services`, `routes`, `tags`. A service is covered by its
name or its tags; a route by its name or its tags, or when its service is covered;
a split by its tags, or when its route or any target service is covered (so a
freeze by tag holds a split whose route or services carry the tag, though the
split itself does not). References are read in the write transaction, as they are
after the write. Both the entity before and after the write are checked, so a
write cannot move an entity out of a freeze either.
"""

from collections.abc import Callable
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlalchemy import JSON, BigInteger, Integer, String, Text, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from turnout.models.errors import Conflict, TurnoutError
from turnout.models.route import RouteRow
from turnout.models.service import ServiceRow
from turnout.models.types import Name, Tag
from turnout.storage.audit import UtcDateTime
from turnout.storage.changes import Change
from turnout.storage.db import Base

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


Lookup = Callable[[str, str], dict[str, Any] | None]
"""(kind, name) -> that entity's spec as JSON, or None when it does not exist."""


def covers(
    scope: FreezeScope, kind: str, entity: dict[str, Any] | None, lookup: Lookup | None = None
) -> bool:
    """Whether `scope` covers the entity `entity` (a spec as JSON) of `kind`.

    `lookup` finds the entities it refers to (a route's service, a split's route
    and targets), so that they cover it too; without it only names are followed.
    """
    if entity is None:
        return False
    if scope.all:
        return True
    if set(entity.get("tags") or ()) & set(scope.tags):
        return True
    name = entity.get("name")
    if kind == "service":
        return name in scope.services
    if kind == "route":
        return name in scope.routes or _refers(scope, "service", entity.get("service"), lookup)
    if kind == "split":
        services = [t.get("service") for t in entity.get("targets") or ()]
        return _refers(scope, "route", entity.get("route"), lookup) or any(
            _refers(scope, "service", s, lookup) for s in services
        )
    return False


def _refers(scope: FreezeScope, kind: str, name: object, lookup: Lookup | None) -> bool:
    """Whether the entity `kind` `name` that another refers to is covered."""
    if not isinstance(name, str):
        return False
    found = lookup(kind, name) if lookup is not None else None
    return covers(scope, kind, found or {"name": name}, lookup)


def session_lookup(session: Session) -> Lookup:
    """Services and routes as the write transaction sees them (its own writes included)."""
    rows: dict[str, type[RouteRow] | type[ServiceRow]] = {
        "route": RouteRow,
        "service": ServiceRow,
    }

    def lookup(kind: str, name: str) -> dict[str, Any] | None:
        row_class = rows.get(kind)
        row = session.get(row_class, name) if row_class is not None else None
        if row is None:
            return None
        fields = ("name", "tags", "service") if kind == "route" else ("name", "tags")
        return {f: getattr(row, f) for f in fields}

    return lookup


def check_scope_names(session: Session, scope: FreezeScope) -> None:
    """Refuse a scope naming a service or route that does not exist: it would hold
    nothing, and the operator would believe the entity frozen."""
    for field, row_class in (("services", ServiceRow), ("routes", RouteRow)):
        for i, name in enumerate(getattr(scope, field)):
            if session.get(row_class, name) is None:
                kind = field.removesuffix("s")
                raise Conflict(
                    f"{kind} {name!r} does not exist: a freeze can only name existing {field}",
                    field=f"scope.{field}[{i}]",
                )


def now() -> datetime:
    return datetime.now(UTC)


def active_freezes(session: Session, at: datetime) -> list[Freeze]:
    """Every freeze in force at `at`, oldest first."""
    # A Core select on every write (not a cache): a freeze another replica committed
    # must hold here at once, and with no freeze this costs one cheap statement.
    table = FreezeRow.__table__
    rows = session.execute(select(table).where(table.c.lifted_at.is_(None)).order_by(table.c.id))
    return [f for f in map(Freeze.model_validate, rows) if f.active(at)]


def check_freezes(
    session: Session,
    changes: list[Change],
    *,
    override_reason: str | None,
    exempt: bool,
) -> list[Freeze]:
    """Raise `Frozen` for the first change an active freeze covers.

    `exempt` (a split rollback) skips the check; `override_reason` (an admin
    override) lets the write through and returns the freezes it overrode, for the
    audit event.
    """
    if exempt:
        return []
    overridden: list[Freeze] = []
    lookup = session_lookup(session)
    for freeze in active_freezes(session, now()):
        for change in changes:
            if covers(freeze.scope, change.kind, change.before, lookup) or covers(
                freeze.scope, change.kind, change.after_json, lookup
            ):
                if override_reason is None:
                    raise Frozen(freeze, change.kind, change.name)
                overridden.append(freeze)
                break
    return overridden

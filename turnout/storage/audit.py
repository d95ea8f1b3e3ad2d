"""The audit trail: one event per successful write, in the write's transaction.

`append_events` is the one place audit rows are written: for entities and API keys by
`Store.commit_changes`, for tokens and freezes by `turnout.storage.records.record`.
Nothing here decides what is audited.
"""

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import JSON, BigInteger, Integer, String, Text, insert
from sqlalchemy.orm import Mapped, Session, mapped_column

from turnout.models.change import Action as Action
from turnout.models.change import Change
from turnout.models.schema import Base, UtcDateTime

# SQLite only auto-increments an INTEGER PRIMARY KEY, not a BIGINT one.
_EventId = BigInteger().with_variant(Integer(), "sqlite")


class AuditEventRow(Base):
    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(_EventId, primary_key=True, autoincrement=True)
    revision: Mapped[int] = mapped_column(BigInteger, index=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime)
    actor: Mapped[str] = mapped_column(String(128))
    action: Mapped[str] = mapped_column(String(16))
    entity_kind: Mapped[str] = mapped_column(String(32))
    entity_name: Mapped[str] = mapped_column(String(128))
    before: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True))
    after: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True))
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)


class AuditEvent(BaseModel):
    """One write, as the admin API and tests see it."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    revision: int = Field(description="The revision this write produced.")
    at: datetime = Field(description="When the write was made (UTC), inside its transaction.")
    actor: str = Field(description="Who made the write.")
    action: Action
    entity_kind: str = Field(description="service, route, split, or freeze.")
    entity_name: str
    before: dict[str, Any] | None = Field(description="The entity before; null on create.")
    after: dict[str, Any] | None = Field(description="The entity after; null on delete.")
    reason: str | None = Field(
        None, description="Why: a plan step, a restore, a freeze override with its reason."
    )


def append_events(
    session: Session,
    revision: int,
    actor: str,
    changes: Sequence[Change],
    reason: str | None = None,
) -> None:
    """One audit event per change, at `revision`, in the caller's transaction."""
    if not changes:
        return
    at = datetime.now(UTC)
    # One Core statement, not the ORM's unit of work: it costs one round trip (issue 17).
    session.execute(
        insert(AuditEventRow.__table__),
        [
            {
                "revision": revision,
                "at": at,
                "actor": actor,
                "action": change.action.value,
                "entity_kind": change.kind,
                "entity_name": change.name,
                "before": change.before,
                "after": change.after_json,
                "reason": reason,
            }
            for change in changes
        ],
    )

"""Revisions: the declaration at any past revision, rebuilt from the audit trail.

Why replay rather than a snapshot per revision: every write appends, in the SAME
transaction that changes the rows, one audit event per entity with the whole spec
after the write (`after`, null on delete). The events up to revision n therefore
determine the rows at n exactly, by construction rather than by a second copy that
could drift; `tests/storage/test_history.py` holds replay equal to `Store.load()`
after every write. Storage stays one event per changed entity, where a snapshot
per revision would copy the whole declaration on each of the many small writes a
staged plan makes (one per step, per split, for 50+ services). Replaying is
O(events); if that ever matters, a checkpoint table can cache the declaration
every K revisions without changing the answer.

Spec evolution: new spec fields are optional with defaults, so an old event still
validates, taking the default, the same value a migration gives existing rows.
"""

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from turnout.models.declaration import Declaration
from turnout.models.entities import ENTITIES
from turnout.models.errors import NotFound
from turnout.storage.audit import AuditEventRow
from turnout.storage.lenient import SKIPPED_KEPT, SkippedRow, drop_dependents, specs_of_dicts

log = logging.getLogger(__name__)

SUMMARY_MAX = 512


class RevisionInfo(BaseModel):
    number: int
    at: datetime = Field(description="When the revision was committed (UTC).")
    actor: str
    summary: str = Field(description='What changed, e.g. "update split checkout".')
    reason: str | None = None
    changes: int = Field(description="How many entities the revision changed.")


def revisions(session: Session, limit: int, before: int | None = None) -> list[RevisionInfo]:
    """The newest `limit` revisions (below `before` if given), newest first."""
    kinds = list(ENTITIES)
    numbers_stmt = (
        select(AuditEventRow.revision)
        .where(AuditEventRow.entity_kind.in_(kinds))
        .distinct()
        .order_by(AuditEventRow.revision.desc())
        .limit(limit)
    )
    if before is not None:
        numbers_stmt = numbers_stmt.where(AuditEventRow.revision < before)
    numbers = list(session.scalars(numbers_stmt))
    if not numbers:
        return []
    events = session.scalars(
        select(AuditEventRow)
        .where(AuditEventRow.revision.in_(numbers), AuditEventRow.entity_kind.in_(kinds))
        .order_by(AuditEventRow.id)
    )
    grouped: dict[int, list[AuditEventRow]] = {}
    for event in events:
        grouped.setdefault(event.revision, []).append(event)
    out = []
    for number in numbers:
        group = grouped[number]
        summary = "; ".join(f"{e.action} {e.entity_kind} {e.entity_name}" for e in group)
        if len(summary) > SUMMARY_MAX:
            summary = summary[: SUMMARY_MAX - 1] + "…"
        out.append(
            RevisionInfo(
                number=number,
                at=group[0].at,
                actor=group[0].actor,
                summary=summary,
                reason=group[0].reason,
                changes=len(group),
            )
        )
    return out


def declaration_at(session: Session, revision: int, current: int) -> Declaration:
    """The whole declaration as it was right after `revision` was committed."""
    if revision < 0 or revision > current:
        raise NotFound("revision", str(revision))
    state: dict[str, dict[str, dict[str, Any]]] = {kind: {} for kind in ENTITIES}
    events = session.execute(
        select(AuditEventRow.entity_kind, AuditEventRow.entity_name, AuditEventRow.after)
        .where(AuditEventRow.revision <= revision, AuditEventRow.entity_kind.in_(list(ENTITIES)))
        .order_by(AuditEventRow.id)
    )
    for kind, name, after in events:
        if after is None:
            state[kind].pop(name, None)
        else:
            state[kind][name] = after
    # A recorded entity that today's validation refuses is left out with what
    # references it, as `Store.load` does (`lenient.py`), instead of failing.
    specs: dict[str, dict[str, BaseModel]] = {}
    skipped: list[SkippedRow] = []
    for kind, ent in ENTITIES.items():
        specs[ent.plural], bad = specs_of_dicts(ent, state[kind])
        skipped += bad
    if skipped:
        skipped += drop_dependents(specs)
        for row in skipped[:SKIPPED_KEPT]:
            log.warning(
                "revision %d: %s '%s' skipped: %s", revision, row.kind, row.name, row.reason
            )
    return Declaration(revision=revision, **specs)  # type: ignore[arg-type]


@dataclass(frozen=True)
class _Sides:
    a: dict[str, BaseModel]
    b: dict[str, BaseModel]


class EntityDiff(BaseModel):
    added: dict[str, dict[str, Any]] = Field(default_factory=dict)
    removed: dict[str, dict[str, Any]] = Field(default_factory=dict)
    changed: dict[str, dict[str, dict[str, Any]]] = Field(
        default_factory=dict,
        description='name -> field -> {"from": old, "to": new}, changed fields only.',
    )


def diff(a: Declaration, b: Declaration) -> dict[str, EntityDiff]:
    """What changes from `a` to `b`, per entity collection (only non-empty ones)."""
    out: dict[str, EntityDiff] = {}
    for ent in ENTITIES.values():
        sides = _Sides(getattr(a, ent.plural), getattr(b, ent.plural))
        d = EntityDiff()
        for name in sorted(set(sides.a) | set(sides.b)):
            old, new = sides.a.get(name), sides.b.get(name)
            if old is None and new is not None:
                d.added[name] = new.model_dump(mode="json")
            elif new is None and old is not None:
                d.removed[name] = old.model_dump(mode="json")
            elif old is not None and new is not None and old != new:
                o, n = old.model_dump(mode="json"), new.model_dump(mode="json")
                d.changed[name] = {
                    f: {"from": o.get(f), "to": n.get(f)}
                    for f in sorted(set(o) | set(n))
                    if o.get(f) != n.get(f)
                }
        if d.added or d.removed or d.changed:
            out[ent.plural] = d
    return out

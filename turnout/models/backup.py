"""Backup and restore of everything a declaration's history is made of.

A backup holds the declaration (entities), the revision number, the audit trail
(from which every past revision is rebuilt, `turnout/models/history.py`) and the
freezes. Restoring writes them back unchanged, in one transaction, and sets the
revision counter to the source's, so a restored database reports the same
revisions, the same history and, translated, the same xDS bytes.

The admin token hash (a setting) is not part of a backup: a new cluster keeps its
own token.
"""

from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from turnout.models import changes
from turnout.models.audit import AuditEvent, AuditEventRow
from turnout.models.entities import ENTITIES
from turnout.models.errors import Conflict
from turnout.models.freeze import Freeze, FreezeRow
from turnout.models.rows import REVISION_ROW_ID, RevisionRow


def export(session: Session) -> dict[str, Any]:
    """Revision, entities by plural, audit events and freezes, all JSON-ready."""
    data: dict[str, Any] = {
        "revision": session.get_one(RevisionRow, REVISION_ROW_ID).value,
    }
    for ent in ENTITIES.values():
        rows = session.scalars(select(ent.row).order_by(ent.row.name))  # type: ignore[attr-defined]
        data[ent.plural] = [ent.to_spec(r).model_dump(mode="json") for r in rows]
    events = session.scalars(select(AuditEventRow).order_by(AuditEventRow.id))
    data["audit"] = [
        AuditEvent.model_validate(e).model_dump(mode="json", exclude={"id"}) for e in events
    ]
    freezes = session.scalars(select(FreezeRow).order_by(FreezeRow.id))
    data["freezes"] = [Freeze.model_validate(f).model_dump(mode="json") for f in freezes]
    return data


def is_empty(session: Session) -> bool:
    """No revision, no entity, no audit event, no freeze."""
    if session.get_one(RevisionRow, REVISION_ROW_ID).value != 0:
        return False
    tables = [ent.row for ent in ENTITIES.values()] + [AuditEventRow, FreezeRow]
    return all(session.scalar(select(func.count()).select_from(t)) == 0 for t in tables)


def restore(session: Session, data: dict[str, Any], force: bool) -> int:
    """Write a backup into this database; returns its revision.

    Refused (`Conflict`) unless the database is empty or `force` is given, in which
    case everything the backup covers is replaced.
    """
    if not is_empty(session):
        if not force:
            raise Conflict("the database is not empty; restore refuses to overwrite it")
        for ent in reversed(ENTITIES.values()):
            session.execute(delete(ent.row))
        session.execute(delete(AuditEventRow))
        session.execute(delete(FreezeRow))
        session.flush()
    for ent in ENTITIES.values():
        for item in data.get(ent.plural, []):
            changes.create(session, ent, ent.spec.model_validate(item))
    for item in data.get("audit", []):
        event = AuditEvent.model_validate({**item, "id": 0})
        session.add(AuditEventRow(**event.model_dump(exclude={"id"})))
    for item in data.get("freezes", []):
        freeze = Freeze.model_validate(item)
        fields = freeze.model_dump(exclude={"id"})
        fields["scope"] = freeze.scope.model_dump(mode="json")
        session.add(FreezeRow(**fields))
    revision = int(data["revision"])
    session.get_one(RevisionRow, REVISION_ROW_ID).value = revision
    session.flush()
    return revision

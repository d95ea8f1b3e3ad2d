"""The store's history, backup and freeze methods, split out of `store.py` for size.

`Store` inherits them; they use its transactions (`_read`, `_write`) exactly as
its own methods do, so every rule in `store.py` applies to them too.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from turnout.models.declaration import Declaration
from turnout.models.errors import NotFound
from turnout.storage import backup, revisions
from turnout.storage.audit import Action, AuditEventRow
from turnout.storage.freezes import Freeze, FreezeCreate, FreezeRow, check_scope_names
from turnout.storage.freezes import now as freeze_now
from turnout.storage.keycrypt import KeyCipher
from turnout.storage.keystore import KeyRing
from turnout.storage.revisions import RevisionInfo
from turnout.storage.rows import REVISION_ROW_ID, RevisionRow


def _current_revision(session: Session) -> int:
    return session.get_one(RevisionRow, REVISION_ROW_ID).value


class HistoryMixin:
    _read: Callable[[], AbstractContextManager[Session]]
    _write: Callable[[], AbstractContextManager[Session]]
    keys: KeyRing

    # -- backup --------------------------------------------------------------

    def export(self) -> dict[str, Any]:
        """Everything a backup holds, read at one revision (`turnout/storage/backup.py`)."""
        with self._read() as session:
            return backup.export(session)

    def restore(
        self, data: dict[str, Any], force: bool = False, old_secret: str | None = None
    ) -> int:
        """Write a backup into an empty database (or any, with `force`); its revision.

        The backup's keys must open under this store's secret, or under `old_secret`
        (then they are re-encrypted under this store's); checked before any write.
        """
        old = KeyCipher(old_secret) if old_secret else None
        keys = backup.prepare_keys(backup.backed_up_keys(data), self.keys.cipher, old)
        with self._write() as session:
            revision = backup.restore(session, data, force, keys)
            session.info["revision"] = revision
        self.keys.forget()
        return revision

    # -- history -------------------------------------------------------------

    def revisions(self, limit: int = 100, before: int | None = None) -> list[RevisionInfo]:
        with self._read() as session:
            return revisions.revisions(session, limit, before)

    def revision_listing(
        self, limit: int = 100, before: int | None = None
    ) -> tuple[list[RevisionInfo], int]:
        """`revisions(...)` and the current revision, read in one transaction."""
        with self._read() as session:
            return revisions.revisions(session, limit, before), _current_revision(session)

    def declaration_at(self, revision: int) -> Declaration:
        with self._read() as session:
            return revisions.declaration_at(session, revision, _current_revision(session))

    # -- freezes -------------------------------------------------------------

    def freezes(self) -> builtins.list[Freeze]:
        with self._read() as session:
            return [Freeze.model_validate(r) for r in session.scalars(select(FreezeRow))]

    def create_freeze(self, body: FreezeCreate, actor: str) -> Freeze:
        at = freeze_now()
        with self._write() as session:
            check_scope_names(session, body.scope)
            row = FreezeRow(
                reason=body.reason,
                scope=body.scope.model_dump(mode="json"),
                starts_at=body.starts_at or at,
                ends_at=body.ends_at,
                created_at=at,
                created_by=actor,
            )
            session.add(row)
            session.flush()
            freeze = Freeze.model_validate(row)
            self._freeze_event(session, actor, Action.CREATE, freeze, None)
            return freeze

    def lift_freeze(self, freeze_id: int, actor: str) -> Freeze:
        with self._write() as session:
            row = session.get(FreezeRow, freeze_id)
            if row is None:
                raise NotFound("freeze", str(freeze_id))
            if row.lifted_at is None:
                before = Freeze.model_validate(row)
                row.lifted_at, row.lifted_by = freeze_now(), actor
                session.flush()
                self._freeze_event(session, actor, Action.DELETE, before, "lifted")
            return Freeze.model_validate(row)

    def _freeze_event(
        self, session: Session, actor: str, action: Action, freeze: Freeze, reason: str | None
    ) -> None:
        """Freezes are audited but are no declaration change: no revision bump."""
        data = freeze.model_dump(mode="json")
        session.add(
            AuditEventRow(
                revision=_current_revision(session),
                at=freeze_now(),
                actor=actor,
                action=action.value,
                entity_kind="freeze",
                entity_name=str(freeze.id),
                before=data if action is Action.DELETE else None,
                after=data if action is Action.CREATE else None,
                reason=reason or freeze.reason,
            )
        )

"""The store's history and backup methods, split out of `store.py` for size.

`Store` inherits them; they use its transactions (`read_transaction`,
`write_transaction`) exactly as its own methods do, so every rule in `store.py`
applies to them too.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

from sqlalchemy.orm import Session

from turnout.models.declaration import Declaration
from turnout.storage import backup, revisions
from turnout.storage.keycrypt import KeyCipher
from turnout.storage.keystore import KeyRing
from turnout.storage.revisions import RevisionInfo
from turnout.storage.rows import current_revision as _current_revision


class HistoryMixin:
    _read: Callable[[], AbstractContextManager[Session]]
    _write: Callable[[], AbstractContextManager[Session]]
    keys: KeyRing

    # -- backup --------------------------------------------------------------

    def export(self) -> dict[str, Any]:
        """Everything a backup holds, read at one revision (`turnout/storage/backup.py`)."""
        with self.read_transaction() as session:
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
        with self.write_transaction() as session:
            revision = backup.restore(session, data, force, keys)
            session.info["revision"] = revision
        self.keys.forget()
        return revision

    # -- history -------------------------------------------------------------

    def revisions(self, limit: int = 100, before: int | None = None) -> list[RevisionInfo]:
        with self.read_transaction() as session:
            return revisions.revisions(session, limit, before)

    def revision_listing(
        self, limit: int = 100, before: int | None = None
    ) -> tuple[list[RevisionInfo], int]:
        """`revisions(...)` and the current revision, read in one transaction."""
        with self.read_transaction() as session:
            return revisions.revisions(session, limit, before), _current_revision(session)

    def declaration_at(self, revision: int) -> Declaration:
        with self.read_transaction() as session:
            return revisions.declaration_at(session, revision, _current_revision(session))

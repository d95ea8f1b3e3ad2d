"""Rows that belong to no entity: the global revision counter and settings.

Entity rows live beside their specs (`turnout/models/service.py` ...); the audit row lives
in `turnout/storage/audit.py`.
"""

from sqlalchemy import BigInteger, CheckConstraint, String, Text
from sqlalchemy.orm import Mapped, Session, mapped_column

from turnout.storage.db import Base

REVISION_ROW_ID = 1
ADMIN_TOKEN_HASH_KEY = "admin_token_sha256"


class RevisionRow(Base):
    """The single row holding the global revision number.

    Every write locks this row first (`FOR UPDATE` on PostgreSQL, `BEGIN IMMEDIATE`
    on SQLite), so writers are serialized and no revision is lost or reused.
    """

    __tablename__ = "revision"
    __table_args__ = (CheckConstraint("id = 1", name="single_row"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    value: Mapped[int] = mapped_column(BigInteger)
    """The revision of the last committed write; 0 for an empty declaration."""


class SettingRow(Base):
    """Small key/value settings, such as the sha256 hex of the admin token.

    Only hashes are stored: a leaked database does not leak the token.
    """

    __tablename__ = "settings"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


def current_revision(session: Session) -> int:
    """The revision of the last committed write, as `session` sees it."""
    return session.get_one(RevisionRow, REVISION_ROW_ID).value

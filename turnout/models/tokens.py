"""Admin tokens with roles: who may read, who may change the declaration, who may
manage tokens.

    viewer    read everything
    operator  viewer + write the declaration and drive splits
    admin     operator + manage tokens, freeze overrides, restores

Only the sha256 hex of a token is stored (`token_sha256`); the token itself is
shown once, when it is created. Token changes are not declaration changes: they
do not bump the revision, but each leaves an audit event (at the current revision)
naming who made it. This module knows nothing about HTTP.
"""

import builtins
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import String, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from turnout.models.errors import Conflict, NotFound
from turnout.models.schema import Base
from turnout.models.types import Name
from turnout.storage.audit import Action, AuditEventRow, UtcDateTime
from turnout.storage.rows import REVISION_ROW_ID, RevisionRow
from turnout.storage.store import Store


class Role(StrEnum):
    VIEWER = "viewer"
    OPERATOR = "operator"
    ADMIN = "admin"

    @property
    def rank(self) -> int:
        return _RANK[self]

    def allows(self, needed: "Role") -> bool:
        """Whether a token of this role may do what needs `needed`."""
        return self.rank >= needed.rank


_RANK = {Role.VIEWER: 0, Role.OPERATOR: 1, Role.ADMIN: 2}


MAX_LIFETIME_SECONDS = 100 * 365 * 86400
"""The longest lifetime a token may be given; beyond it dates overflow (year 9999)."""


class TokenRow(Base):
    __tablename__ = "tokens"

    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    role: Mapped[str] = mapped_column(String(16))
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    created_by: Mapped[str] = mapped_column(String(128))
    expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)


class TokenInfo(BaseModel):
    """A token as the admin API lists it: never the token or its hash."""

    model_config = ConfigDict(from_attributes=True)

    name: str = Field(description="Owner of the token; audit events name it as the actor.")
    role: Role
    created_at: datetime
    created_by: str = Field(description="Who created the token.")
    expires_at: datetime | None = Field(None, description="After this the token gets 401.")

    def expired(self, now: datetime | None = None) -> bool:
        return self.expires_at is not None and self.expires_at <= (now or datetime.now(UTC))


class TokenCreate(BaseModel):
    """The body of `POST /tokens`."""

    model_config = ConfigDict(extra="forbid")

    name: Name = Field(description="Who the token is for (a person or a CI job).")
    role: Role
    expires_in_seconds: int | None = Field(
        None,
        ge=1,
        le=MAX_LIFETIME_SECONDS,
        description="Lifetime, at most 100 years; the token never expires when left out.",
    )


class TokenStore:
    """Tokens in the store's database, through the store's own transactions."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def create(
        self,
        name: str,
        role: Role,
        token_sha256: str,
        actor: str,
        expires_in: timedelta | None = None,
    ) -> TokenInfo:
        now = datetime.now(UTC)
        expires_at = now + expires_in if expires_in is not None else None
        with self._store.write_transaction() as session:
            if session.get(TokenRow, name) is not None:
                raise Conflict(f"token {name!r} already exists", field="name")
            row = TokenRow(
                name=name,
                role=role.value,
                token_sha256=token_sha256,
                created_at=now,
                created_by=actor,
                expires_at=expires_at,
            )
            session.add(row)
            info = TokenInfo.model_validate(row)
            _audit(session, actor, Action.CREATE, name, None, info)
        return info

    def list(self) -> builtins.list[TokenInfo]:
        with self._store.read_transaction() as session:
            rows = session.scalars(select(TokenRow).order_by(TokenRow.name))
            return [TokenInfo.model_validate(row) for row in rows]

    def delete(self, name: str, actor: str) -> None:
        with self._store.write_transaction() as session:
            row = session.get(TokenRow, name)
            if row is None:
                raise NotFound("token", name)
            info = TokenInfo.model_validate(row)
            session.delete(row)
            _audit(session, actor, Action.DELETE, name, info, None)

    def lookup(self, token_sha256: str) -> TokenInfo | None:
        """The token with this hash, expired or not (the caller decides)."""
        with self._store.read_transaction() as session:
            row = session.scalars(
                select(TokenRow).where(TokenRow.token_sha256 == token_sha256.lower())
            ).first()
            return TokenInfo.model_validate(row) if row is not None else None


def _audit(
    session: Session,
    actor: str,
    action: Action,
    name: str,
    before: TokenInfo | None,
    after: TokenInfo | None,
) -> None:
    def dump(info: TokenInfo | None) -> dict[str, Any] | None:
        return info.model_dump(mode="json") if info is not None else None

    revision = session.get_one(RevisionRow, REVISION_ROW_ID).value
    session.add(
        AuditEventRow(
            revision=revision,
            at=datetime.now(UTC),
            actor=actor,
            action=action.value,
            entity_kind="token",
            entity_name=name,
            before=dump(before),
            after=dump(after),
        )
    )
    session.flush()


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> timedelta:
    """ "90", "90s", "15m", "12h" or "30d" as a positive timedelta."""
    text = text.strip().lower()
    unit = text[-1] if text and text[-1] in _UNITS else "s"
    number = text[:-1] if text and text[-1] in _UNITS else text
    if not number.isdigit() or int(number) <= 0:
        raise ValueError(f"expected a duration such as 3600, 15m, 12h or 30d, got {text!r}")
    seconds = int(number) * _UNITS[unit]
    if seconds > MAX_LIFETIME_SECONDS:
        raise ValueError(f"at most 100 years ({MAX_LIFETIME_SECONDS} seconds), got {text!r}")
    return timedelta(seconds=seconds)

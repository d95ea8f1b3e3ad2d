"""Admin tokens in the store's database (`turnout.models.token` holds what they are).

`Tokens` is a `Records` (`turnout/storage/records.py`): create, list, get, delete,
plus `lookup` by hash for authentication. Token changes are no declaration
changes: they do not bump the revision, but each leaves an audit event (at the
current revision) naming who made it. This module knows nothing about HTTP.
"""

import builtins
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import select

from turnout.models.change import Action, Change
from turnout.models.errors import Conflict, NotFound
from turnout.models.token import (
    CreatedToken,
    TokenCreate,
    TokenInfo,
    TokenRow,
    generate_token,
    hash_token,
)
from turnout.storage.records import record

if TYPE_CHECKING:
    from turnout.storage.store import Store

KIND = "token"
"""How token changes appear in the audit trail (`entity_name` is the token's name)."""


class Tokens:
    """Role tokens, through the store's own transactions."""

    def __init__(self, store: "Store") -> None:
        self._store = store

    def create(self, spec: TokenCreate, actor: str) -> tuple[CreatedToken, int]:
        """Mint a token: shown in the answer only, stored as its sha256."""
        token = generate_token()
        now = datetime.now(UTC)
        lifetime = spec.expires_in_seconds
        with self._store.write_transaction() as session:
            if session.get(TokenRow, spec.name) is not None:
                raise Conflict(f"token {spec.name!r} already exists", field="name")
            row = TokenRow(
                name=spec.name,
                role=spec.role.value,
                token_sha256=hash_token(token),
                created_at=now,
                created_by=actor,
                expires_at=now + timedelta(seconds=lifetime) if lifetime else None,
            )
            session.add(row)
            info = TokenInfo.model_validate(row)
            revision = record(session, actor, [Change(Action.CREATE, KIND, spec.name, None, info)])
        return CreatedToken(**info.model_dump(), token=token), revision

    def list(self) -> builtins.list[TokenInfo]:
        with self._store.read_transaction() as session:
            rows = session.scalars(select(TokenRow).order_by(TokenRow.name))
            return [TokenInfo.model_validate(row) for row in rows]

    def get(self, name: str) -> TokenInfo:
        with self._store.read_transaction() as session:
            row = session.get(TokenRow, name)
            if row is None:
                raise NotFound(KIND, name)
            return TokenInfo.model_validate(row)

    def delete(self, name: str, actor: str) -> int:
        with self._store.write_transaction() as session:
            row = session.get(TokenRow, name)
            if row is None:
                raise NotFound(KIND, name)
            before = TokenInfo.model_validate(row).model_dump(mode="json")
            session.delete(row)
            return record(session, actor, [Change(Action.DELETE, KIND, name, before, None)])

    def lookup(self, token_sha256: str) -> TokenInfo | None:
        """The token with this hash, expired or not (the caller decides)."""
        with self._store.read_transaction() as session:
            row = session.scalars(
                select(TokenRow).where(TokenRow.token_sha256 == token_sha256.lower())
            ).first()
            return TokenInfo.model_validate(row) if row is not None else None

"""Records kept beside the declaration: API keys, admin tokens and freezes, in one shape.

Entities (consumers, services, routes, splits) are generic: one `Entity` in the
registry each, written by `Store.create/replace/delete`. Keys, tokens and freezes
are not entities (a key belongs to a consumer and is never shown again, a token is
stored as a hash, a freeze is lifted rather than deleted), but each is kept the same
way, as a `Records`:

    create(spec, actor) -> (created, revision)   what POST answers, once
    list()              -> [info]                what GET answers
    get(name)           -> info                  NotFound when there is none
    delete(name, actor) -> revision              DELETE (a freeze: lift it)

Each call is one `Store.read_transaction()` or `Store.write_transaction()`, and every
write is audited by `turnout.storage.audit.append_events` through one of two doors:

- `Store.commit_changes`, for a change the proxies must see (an API key): freezes
  are checked, the revision is bumped and the commit is published on the feed;
- `record` here, for a change that is no part of the declaration (a token, a
  freeze): audited at the current revision, which it returns, and nothing published.

Operations only one of them has stay extra methods beside the four: key import,
expiry and decrypted loading (`keystore.KeyRing`), token lookup by hash
(`tokens.Tokens.lookup`). This is a Protocol, not a base class: the three share a
shape and the audit door, not code, and a base class would only move it around.
"""

import builtins
from collections.abc import Sequence
from typing import Protocol, TypeVar, runtime_checkable

from pydantic import BaseModel
from sqlalchemy.orm import Session

from turnout.models.change import Change
from turnout.storage.audit import append_events
from turnout.storage.rows import current_revision

SpecT = TypeVar("SpecT", bound=BaseModel, contravariant=True)
CreatedT = TypeVar("CreatedT", bound=BaseModel, covariant=True)
InfoT = TypeVar("InfoT", bound=BaseModel, covariant=True)
NameT = TypeVar("NameT", contravariant=True)


@runtime_checkable
class Records(Protocol[SpecT, CreatedT, InfoT, NameT]):
    """One kind of record: keys (of one consumer), tokens or freezes."""

    def create(self, spec: SpecT, actor: str) -> tuple[CreatedT, int]:
        """Store a new record; what is shown of it this once, and the revision."""
        ...

    def list(self) -> builtins.list[InfoT]:
        """Every record, in a stable order."""
        ...

    def get(self, name: NameT) -> InfoT:
        """The record `name`; `NotFound` when there is none."""
        ...

    def delete(self, name: NameT, actor: str) -> int:
        """Remove (or, for a freeze, lift) record `name`; the revision after it."""
        ...


def record(
    session: Session, actor: str, changes: Sequence[Change], reason: str | None = None
) -> int:
    """Audit `changes` that are no declaration change: at the current revision, no bump.

    Returns that revision, so such a write answers like any other.
    """
    revision = current_revision(session)
    append_events(session, revision, actor, changes, reason)
    return revision

"""Freezes in the store: kept as `Records`, and the rule that holds writes.

`Freezes` is a `Records` (`turnout/storage/records.py`): create, list, get, and
delete, which lifts (the row stays, for the record). Declaring or lifting a freeze
is audited but is no declaration change: no revision bump. The freeze's schema and
row are `turnout/models/freeze.py`'s.

This module also owns the one rule that decides whether a freeze covers a write
(`covers`). The store applies it inside its write transaction
(`Store.commit_changes`), under the same lock as every writer, so no write can slip
past a freeze committed just before it.

Scope: `all`, or any of `services`, `routes`, `tags`. A service is covered by its
name or its tags; a route by its name or its tags, or when its service is covered;
a split by its tags, or when its route or any target service is covered (so a
freeze by tag holds a split whose route or services carry the tag, though the
split itself does not). References are read in the write transaction, as they are
after the write. Both the entity before and after the write are checked, so a
write cannot move an entity out of a freeze either.
"""

import builtins
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from turnout.models.change import Action, Change
from turnout.models.errors import Conflict, NotFound
from turnout.models.freeze import Freeze, FreezeCreate, FreezeRow, FreezeScope, Frozen, now
from turnout.models.route import RouteRow
from turnout.models.service import ServiceRow
from turnout.storage.records import record

if TYPE_CHECKING:
    from turnout.storage.store import Store

KIND = "freeze"
"""How freeze changes appear in the audit trail (`entity_name` is the freeze's id)."""
LIFTED = "lifted"
"""The audit reason of a lift."""


class Freezes:
    """Every freeze, scheduled, active, ended or lifted, through the store's transactions."""

    def __init__(self, store: "Store") -> None:
        self._store = store

    def create(self, spec: FreezeCreate, actor: str) -> tuple[Freeze, int]:
        """Declare a freeze; it holds from `starts_at` (default now)."""
        at = now()
        with self._store.write_transaction() as session:
            check_scope_names(session, spec.scope)
            row = FreezeRow(
                reason=spec.reason,
                scope=spec.scope.model_dump(mode="json"),
                starts_at=spec.starts_at or at,
                ends_at=spec.ends_at,
                created_at=at,
                created_by=actor,
            )
            session.add(row)
            session.flush()  # assigns the id
            freeze = Freeze.model_validate(row)
            change = Change(Action.CREATE, KIND, str(freeze.id), None, freeze)
            return freeze, record(session, actor, [change], freeze.reason)

    def list(self) -> builtins.list[Freeze]:
        with self._store.read_transaction() as session:
            rows = session.scalars(select(FreezeRow).order_by(FreezeRow.id))
            return [Freeze.model_validate(r) for r in rows]

    def get(self, name: int) -> Freeze:
        with self._store.read_transaction() as session:
            row = session.get(FreezeRow, name)
            if row is None:
                raise NotFound(KIND, str(name))
            return Freeze.model_validate(row)

    def delete(self, name: int, actor: str) -> int:
        """Lift freeze `name`; lifting a lifted freeze changes (and audits) nothing."""
        with self._store.write_transaction() as session:
            row = session.get(FreezeRow, name)
            if row is None:
                raise NotFound(KIND, str(name))
            if row.lifted_at is not None:
                return record(session, actor, [])
            before = Freeze.model_validate(row).model_dump(mode="json")
            row.lifted_at, row.lifted_by = now(), actor
            session.flush()
            return record(
                session, actor, [Change(Action.DELETE, KIND, str(name), before, None)], LIFTED
            )


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

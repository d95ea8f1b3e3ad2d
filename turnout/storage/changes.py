"""Entity changes inside one write transaction, and whole-declaration apply.

The store opens the transaction and commits; this module does the row work of a
create, replace or delete (with the cross-entity checks) and returns a `Change`
per entity, so one transaction can carry one change (an admin API write) or many
(a declarative apply, a revision restore) under ONE revision number.

`apply_target` makes the stored declaration equal to a target one: creates and
updates in dependency order (services, routes, splits) so references exist when
checked, then deletes in reverse order so nothing still refers to a deleted
entity. Any `Conflict` aborts the whole transaction: all or nothing.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

from pydantic import BaseModel, ValidationError
from sqlalchemy import (
    Insert,
    Select,
    Table,
    Update,
    bindparam,
    exists,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.orm import Session

from turnout.models.change import Action, Change
from turnout.models.entities import ENTITIES, Entity
from turnout.models.errors import Conflict, NotFound
from turnout.models.key import ConsumerKeyRow
from turnout.storage.references import check_delete, check_write, delete_dependents


class KeysWouldBeDeleted(Conflict):
    """An apply would delete consumers that have API keys, and nobody asked for that.

    Keys are not in a declarative document, so an old file without a consumer would
    otherwise delete its keys with no trace in the file. `changes` are what the apply
    would have done, for a dry run to show.
    """

    def __init__(self, changes: list[Change]) -> None:
        doomed = [c for c in changes if c.keys]
        self.consumers = {c.name: c.keys for c in doomed}
        self.changes = changes
        listed = ", ".join(c.summary().removeprefix("delete consumer ") for c in doomed)
        super().__init__(
            f"deleting consumer(s) {listed} would delete their API keys; nothing changed. "
            "Ask for it explicitly: turnout apply --delete-keys, or ?delete_keys=true on "
            "POST /config and POST /revisions/{n}/restore",
            field="consumers",
        )


def create(session: Session, ent: Entity, spec: BaseModel) -> Change:
    name: str = spec.name  # type: ignore[attr-defined]
    table = _table(ent)
    # Core statements, not the ORM: one admin write pays ~1 ms less (issue 17), and
    # nothing later in the transaction needs the row as an object.
    if session.scalar(_statements(table).exists, {"b_name": name}):
        raise Conflict(f"{ent.kind} {name!r} already exists", field="name")
    check_write(session, ent, spec)
    session.execute(_statements(table).insert, spec.model_dump(mode="json"))
    return Change(Action.CREATE, ent.kind, name, None, spec)


def replace(session: Session, ent: Entity, name: str, spec: BaseModel) -> Change:
    table = _table(ent)
    stored = session.execute(_statements(table).select, {"b_name": name}).first()
    if stored is None:
        raise NotFound(ent.kind, name)
    try:
        before = ent.spec.model_validate(stored._asdict()).model_dump(mode="json")
    except ValidationError:
        before = stored._asdict()  # refused by today's rules: recorded as stored (lenient.py)
    check_write(session, ent, spec)
    session.execute(_statements(table).update, {**spec.model_dump(mode="json"), "b_name": name})
    _expire(session, ent, name)
    return Change(Action.UPDATE, ent.kind, name, before, spec)


@dataclass(frozen=True)
class _Statements:
    """One entity table's statements, built once: building a statement costs about
    three times what executing a cached one does (~90 µs of ~130, issue 17).
    The row's name is the bound parameter `b_name` (`name` is a column's)."""

    exists: Select[Any]
    select: Select[Any]
    insert: Insert
    update: Update


@cache
def _statements(table: Table) -> _Statements:
    by_name = table.c.name == bindparam("b_name")
    return _Statements(
        exists=select(exists().where(by_name)),
        # The spec's fields only: a column added by a later migration is not read.
        select=select(*(table.c[f] for f in _entity_of(table).spec.model_fields)).where(by_name),
        insert=insert(table),
        update=update(table).where(by_name),
    )


def _entity_of(table: Table) -> Entity:
    return next(e for e in ENTITIES.values() if _table(e) is table)


def delete(session: Session, ent: Entity, name: str) -> Change:
    row = session.get(ent.row, name)
    if row is None:
        raise NotFound(ent.kind, name)
    before = _json(ent, row)
    check_delete(session, ent, name)
    keys = _key_count(session, name) if ent.kind == "consumer" else 0
    delete_dependents(session, ent, name)
    session.delete(row)
    session.flush()
    return Change(Action.DELETE, ent.kind, name, before, None, keys=keys)


def _table(ent: Entity) -> Table:
    return ent.row.__table__  # type: ignore[return-value]


def _expire(session: Session, ent: Entity, name: str) -> None:
    """Forget a loaded copy of the row a Core statement just changed, so a later
    `session.get` in this transaction (a reference check) reads the new one."""
    loaded = session.identity_map.get(session.identity_key(ent.row, name))
    if loaded is not None:
        session.expire(loaded)


def _key_count(session: Session, consumer: str) -> int:
    """The consumer's API keys, which `delete_dependents` deletes with it."""
    query = select(func.count()).where(ConsumerKeyRow.consumer == consumer)
    return int(session.scalar(query) or 0)


def _json(ent: Entity, row: Any) -> dict[str, Any]:
    """The stored entity as its spec's JSON (what the audit `before` records); a row
    today's validation refuses is recorded as stored, so it can still be fixed or
    deleted (`lenient.py`)."""
    try:
        return ent.to_spec(row).model_dump(mode="json")
    except ValidationError:
        return ent.row_dict(row)  # columns hold JSON values already


def _has_tag(spec: BaseModel | dict[str, Any], tag: str | None) -> bool:
    if tag is None:
        return True
    tags = spec.get("tags") if isinstance(spec, dict) else getattr(spec, "tags", None)
    return tag in (tags or ())


def apply_target(
    session: Session,
    target: Mapping[str, Mapping[str, BaseModel]],
    select_tag: str | None = None,
) -> list[Change]:
    """Make the stored entities equal to `target` (kind -> name -> spec).

    With `select_tag`, only stored entities carrying that tag are compared and may
    be deleted; every target entity must carry it (else `Conflict`).
    """
    for kind, specs in target.items():
        for name, spec in specs.items():
            if not _has_tag(spec, select_tag):
                raise Conflict(
                    f"{kind} {name!r} lacks tag {select_tag!r} selected with --select-tag",
                    field=f"{ENTITIES[kind].plural}.{name}.tags",
                )
    current: dict[str, dict[str, dict[str, Any]]] = {}
    for kind, ent in ENTITIES.items():
        rows = session.scalars(select(ent.row).order_by(ent.row.name))  # type: ignore[attr-defined]
        current[kind] = {
            row.name: data  # type: ignore[attr-defined]
            for row in rows
            if _has_tag(data := _json(ent, row), select_tag)
        }
    changes: list[Change] = []
    for kind, ent in ENTITIES.items():
        for name, spec in sorted(target.get(kind, {}).items()):
            stored = current[kind].get(name)
            if stored is None:
                if session.get(ent.row, name) is not None:
                    raise Conflict(
                        f"{kind} {name!r} exists without tag {select_tag!r}", field="name"
                    )
                changes.append(create(session, ent, spec))
            elif stored != spec.model_dump(mode="json"):
                changes.append(replace(session, ent, name, spec))
    for kind, ent in reversed(ENTITIES.items()):
        for name in sorted(set(current[kind]) - set(target.get(kind, {}))):
            changes.append(delete(session, ent, name))
    return changes

"""The store: the only way the declaration is read or written.

A write is one transaction that locks the revision row, checks the rules that
span entities (`turnout/storage/references.py`), writes the row, bumps the global revision
and appends an audit event; either all of it commits or none of it does. After a
commit the store publishes the revision and its changes on its in-process feed,
`Store.commits` (`turnout/storage/feed.py`).

The store is synchronous (FastAPI runs sync endpoints in its threadpool) and
knows nothing about HTTP or Envoy.
"""

from __future__ import annotations

import builtins
import logging
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ValidationError
from sqlalchemy import exc as sa_exc
from sqlalchemy import select, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from turnout.models.change import Change, Commit
from turnout.models.declaration import Declaration
from turnout.models.entities import ENTITIES, Entity, entity
from turnout.models.errors import Conflict, NotFound, StoreUnavailable
from turnout.models.key import ApiKey
from turnout.storage import changes, db, revisions
from turnout.storage.audit import AuditEvent, AuditEventRow, append_events
from turnout.storage.feed import LocalFeed
from turnout.storage.freezes import Freezes, check_freezes
from turnout.storage.keystore import KEY_ENTITY, KeyRing
from turnout.storage.lenient import (
    SkippedReport,
    SkippedRow,
    drop_dependents,
    invalid_row,
    specs_of,
)
from turnout.storage.notify import notify_in_transaction
from turnout.storage.rows import ADMIN_TOKEN_HASH_KEY, REVISION_ROW_ID, RevisionRow, SettingRow
from turnout.storage.store_records import HistoryMixin
from turnout.storage.tokens import Tokens

log = logging.getLogger(__name__)


class Store(HistoryMixin):
    """Services, routes and splits in SQLite or PostgreSQL, with revisions and audit.

    Thread-safe: each call uses its own connection from the engine's pool.
    """

    def __init__(self, database_url: str, secret_key: str | None = None) -> None:
        """`secret_key` (TURNOUT_SECRET_KEY) encrypts API keys; without it keys are refused."""
        self.database_url = database_url
        self._engine = db.make_engine(database_url)
        self._writer = self._engine.execution_options(**db.write_options(self._engine))
        self._reader = self._engine.execution_options(**db.snapshot_options(self._engine))
        self._sqlite = self._engine.dialect.name == "sqlite"
        self.commits = LocalFeed()
        """This process's commits, each with its changes, as they commit (`feed.py`)."""
        self._writers = 0
        """Write transactions under way (or waiting for the lock) in this process."""
        self._writers_lock = threading.Lock()
        self._skipped = SkippedReport()
        self.keys = KeyRing(self, secret_key)
        """The consumers' API keys (`turnout/storage/keystore.py`)."""
        self.tokens = Tokens(self)
        """The admin tokens (`turnout/storage/tokens.py`)."""
        self.freezes = Freezes(self)
        """Every freeze (`turnout/storage/freezes.py`); the store checks them on each write."""

    def upgrade(self) -> None:
        """Bring the schema to the newest migration."""
        with _unavailable_on_connect_errors():
            db.upgrade(engine=self._engine)

    def close(self) -> None:
        db.dispose(self._engine)

    # -- reads ---------------------------------------------------------------

    def revision(self) -> int:
        with self.read_transaction() as session:
            return _current_revision(session)

    def get(self, kind: str, name: str) -> BaseModel:
        ent = entity(kind)
        with self.read_transaction() as session:
            row = session.get(ent.row, name)
            if row is None:
                raise NotFound(kind, name)
            try:
                return ent.to_spec(row)
            except ValidationError:
                raise invalid_row(ent, row) from None

    def list(self, kind: str) -> builtins.list[BaseModel]:
        """Every entity of `kind`, sorted by name."""
        return self.listing(kind)[0]

    def listing(self, kind: str) -> tuple[builtins.list[BaseModel], int]:
        """Every entity of `kind` sorted by name, and the revision they were read at."""
        ent = entity(kind)
        with self.read_transaction() as session:
            return _all(session, ent), _current_revision(session)

    def skipped_rows(self) -> builtins.list[SkippedRow]:
        """Stored rows the last load left out (`turnout/storage/lenient.py`)."""
        return list(self._skipped.rows)

    def load(self) -> Declaration:
        """The whole declaration at one consistent revision. A row that does not
        validate, and what references it, is left out and reported, not fatal."""
        skipped: builtins.list[SkippedRow] = []
        with self.read_transaction() as session:
            revision = _current_revision(session)
            specs: dict[str, dict[str, BaseModel]] = {}
            for ent in ENTITIES.values():
                rows = session.scalars(select(ent.row).order_by(ent.row.name))  # type: ignore[attr-defined]
                valid, bad = specs_of(ent, rows)
                specs[ent.plural] = {s.name: s for s in valid}  # type: ignore[attr-defined]
                skipped += bad
            api_keys = self.keys.load(session, datetime.now(UTC))
        if skipped:
            skipped += drop_dependents(specs)
        self._skipped.publish(skipped)
        return Declaration(revision=revision, api_keys=api_keys, **specs)

    def load_since(self, previous: Declaration) -> Declaration:
        """The declaration now, reading only the entities written after `previous`.

        The audit log names every entity each revision touched; when it does not
        cover every revision since `previous` (or the kinds differ), this falls
        back to a full `load()`. Keeps a reload O(changes), not O(declaration).
        """
        with self.read_transaction() as session:
            revision = _current_revision(session)
            if revision == previous.revision:
                return previous
            if self._skipped.rows:
                # Rows were left out: a change may bring them (and what references
                # them) back, which only a full load sees. Rare, and self-healing.
                return self.load()
            events = session.execute(
                select(AuditEventRow.revision, AuditEventRow.entity_kind, AuditEventRow.entity_name)
                .where(AuditEventRow.revision > previous.revision)
                .where(AuditEventRow.revision <= revision)
            ).all()
            if revision < previous.revision or len({e.revision for e in events}) != (
                revision - previous.revision
            ):
                return self.load()
            touched: dict[str, set[str]] = {}
            for event in events:
                if event.entity_kind in ENTITIES:
                    touched.setdefault(event.entity_kind, set()).add(event.entity_name)
            api_keys = previous.api_keys
            # A key written, or a consumer deleted with its keys: read that consumer's
            # keys again (audit events of keys name their consumer).
            key_owners = {
                e.entity_name for e in events if e.entity_kind in (KEY_ENTITY.kind, "consumer")
            }
            if key_owners:
                api_keys = self.keys.reload(session, datetime.now(UTC), api_keys, key_owners)
            specs = {ent.plural: dict(getattr(previous, ent.plural)) for ent in ENTITIES.values()}
            for kind, names in touched.items():
                ent = ENTITIES[kind]
                rows = session.scalars(select(ent.row).where(ent.row.name.in_(names)))  # type: ignore[attr-defined]
                valid, bad = specs_of(ent, rows)
                if bad:
                    return self.load()  # a row that does not validate: load leniently
                found = {spec.name: spec for spec in valid}  # type: ignore[attr-defined]
                current = specs[ent.plural]
                for name in names:
                    if name in found:
                        current[name] = found[name]
                    else:
                        current.pop(name, None)
        return Declaration(revision=revision, api_keys=api_keys, **specs)

    def advance(self, previous: Declaration, commits: Sequence[Commit]) -> Declaration:
        """`previous` with the changes of `commits` applied: the declaration at the last.

        `commits` are this process's, each with its changes, and follow `previous`
        without a gap (`Commit.changes` is never None). Entities come from the changes,
        not the database; unchanged ones stay the very same objects (what
        `turnout.xds.memo` relies on). Only API keys are read: a change names the
        consumer whose keys changed, never a key in clear. When the database is
        already past the last commit, that read would not match it, so this falls
        back to `load_since`.
        """
        if not commits:
            return previous
        if self._skipped.rows:
            # Rows were skipped (`lenient.py`): their dependents are dropped by a whole
            # load, which the changes alone cannot tell.
            return self.load_since(previous)
        revision = commits[-1].revision
        done = [change for commit in commits for change in commit.changes or ()]
        api_keys = previous.api_keys
        key_owners = _key_owners(done)
        if key_owners:
            with self.read_transaction() as session:
                if _current_revision(session) != revision:
                    return self.load_since(previous)
                api_keys = self.keys.reload(session, datetime.now(UTC), api_keys, key_owners)
        return _applied(previous, revision, done, api_keys)

    def advance_in_memory(
        self, previous: Declaration, commits: Sequence[Commit]
    ) -> Declaration | None:
        """`advance` when it reads nothing (no API key changed, no row skipped), so
        it may run on the event loop; None when it would read the database."""
        if not commits:
            return previous
        done = [change for commit in commits for change in commit.changes or ()]
        if self._skipped.rows or _key_owners(done):
            return None
        return _applied(previous, commits[-1].revision, done, previous.api_keys)

    def audit(
        self,
        limit: int = 100,
        *,
        actor: str | None = None,
        kind: str | None = None,
        name: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> builtins.list[AuditEvent]:
        """The newest `limit` audit events matching every filter given, newest first."""
        stmt = select(AuditEventRow).order_by(AuditEventRow.id.desc()).limit(limit)
        for column, value in (
            (AuditEventRow.actor, actor),
            (AuditEventRow.entity_kind, kind),
            (AuditEventRow.entity_name, name),
        ):
            if value is not None:
                stmt = stmt.where(column == value)
        if since is not None:
            stmt = stmt.where(AuditEventRow.at >= since)
        if until is not None:
            stmt = stmt.where(AuditEventRow.at < until)
        with self.read_transaction() as session:
            return [AuditEvent.model_validate(row) for row in session.scalars(stmt)]

    def admin_token_hash(self) -> str | None:
        """The sha256 hex of the admin token, if one was ever stored."""
        with self.read_transaction() as session:
            row = session.get(SettingRow, ADMIN_TOKEN_HASH_KEY)
            return row.value if row else None

    # -- writes --------------------------------------------------------------

    def create(self, kind: str, spec: BaseModel, actor: str, **how: Any) -> int:
        """Add a new entity; returns the new revision.

        `how` (every write takes it): `reason` for the audit event,
        `override_reason` to write through an active freeze (admin override,
        audited), `freeze_exempt` for a split rollback, which is never frozen.
        """
        ent = _checked(kind, spec)
        with self.write_transaction() as session:
            return self.commit_changes(session, actor, [changes.create(session, ent, spec)], **how)

    def replace(self, kind: str, name: str, spec: BaseModel, actor: str, **how: Any) -> int:
        """Replace entity `name` with `spec`; returns the new revision.

        Renaming is not supported (references point at names): delete and create
        instead. The admin API answers a mismatched name with 422 before calling.
        """
        ent = _checked(kind, spec)
        if spec.name != name:  # type: ignore[attr-defined]
            raise Conflict(
                f"{kind} {name!r} cannot be renamed to {spec.name!r}",  # type: ignore[attr-defined]
                field="name",
            )
        with self.write_transaction() as session:
            change = changes.replace(session, ent, name, spec)
            return self.commit_changes(session, actor, [change], **how)

    def modify(
        self,
        kind: str,
        name: str,
        change: Callable[[BaseModel], BaseModel],
        actor: str,
        **how: Any,
    ) -> tuple[BaseModel, int]:
        """Replace entity `name` with `change(current)`, read and written in ONE transaction.

        For read-modify-write callers that must not lose a concurrent write (a plan
        step racing an operator's pause). Returns the new spec and revision.
        """
        ent = entity(kind)
        with self.write_transaction() as session:
            row = session.get(ent.row, name)
            if row is None:
                raise NotFound(kind, name)
            try:
                current = ent.to_spec(row)
            except ValidationError:
                raise invalid_row(ent, row) from None  # as `get` answers it
            spec = change(current)
            done = changes.replace(session, ent, name, spec)
            return spec, self.commit_changes(session, actor, [done], **how)

    def delete(self, kind: str, name: str, actor: str, **how: Any) -> int:
        """Remove entity `name`; returns the new revision."""
        ent = entity(kind)
        with self.write_transaction() as session:
            return self.commit_changes(session, actor, [changes.delete(session, ent, name)], **how)

    def apply(
        self,
        target: Mapping[str, Mapping[str, BaseModel]],
        actor: str,
        *,
        select_tag: str | None = None,
        dry_run: bool = False,
        delete_keys: bool = False,
        **how: Any,
    ) -> ApplyResult:
        """Make the declaration equal to `target` (kind -> name -> spec) in ONE revision.

        All or nothing; no change at all leaves the revision as it is. A dry run
        makes every check (references, freezes) and then rolls back. Deleting a
        consumer that has API keys is refused (`KeysWouldBeDeleted`, dry run too)
        unless `delete_keys`.
        """
        try:
            with self.write_transaction() as session:
                done = changes.apply_target(session, target, select_tag)
                if not delete_keys and any(c.keys for c in done):
                    raise changes.KeysWouldBeDeleted(done)
                revision = _current_revision(session)
                if done:
                    revision = self.commit_changes(session, actor, done, **how)
                if dry_run:
                    raise _DryRun(ApplyResult(revision=None, changes=done))
                return ApplyResult(revision=revision, changes=done)
        except _DryRun as dry:
            return dry.result

    def restore_revision(self, revision: int, actor: str, **how: Any) -> ApplyResult:
        """A new revision whose declaration equals the one at `revision`."""
        with self.read_transaction() as session:
            decl = revisions.declaration_at(session, revision, _current_revision(session))
        how.setdefault("reason", f"restore revision {revision}")
        return self.apply(decl.by_kind(), actor, **how)

    def set_admin_token_hash(self, token_hash: str) -> None:
        """Store the sha256 hex of the admin token (not a declaration change)."""
        with self.write_transaction() as session:
            row = session.get(SettingRow, ADMIN_TOKEN_HASH_KEY)
            if row is None:
                session.add(SettingRow(key=ADMIN_TOKEN_HASH_KEY, value=token_hash))
            else:
                row.value = token_hash

    # -- transactions: the public API of the storage modules beside the store --

    @contextmanager
    def read_transaction(self) -> Iterator[Session]:
        """One read-only transaction on a consistent snapshot of the database."""
        with (
            _unavailable_on_connect_errors(),
            Session(self._reader) as session,
            session.begin(),
        ):
            yield session

    @contextmanager
    def write_transaction(self) -> Iterator[Session]:
        """One write transaction, serialized against every other writer.

        The revision row is locked before anything is checked, so the checks see
        every earlier commit and nobody can commit in between.
        """
        with self._writers_lock:
            self._writers += 1
        try:
            with _unavailable_on_connect_errors(), Session(self._writer) as session:
                try:
                    with session.begin():
                        if self._sqlite:
                            # BEGIN IMMEDIATE (`db.write_options`) already holds the write
                            # lock: opening the connection takes it, a SELECT adds nothing.
                            session.connection()
                        else:
                            session.execute(
                                select(_REVISION.c.value)
                                .where(_REVISION.c.id == REVISION_ROW_ID)
                                .with_for_update()
                            )
                        yield session
                except sa_exc.IntegrityError as exc:
                    # The checks run under the lock, so this means a rule was missed.
                    raise Conflict(f"the database rejected the write: {exc.orig}") from exc
                revision: int | None = session.info.get("revision")
                done: tuple[Change, ...] | None = session.info.get("changes")
            # Only here has the transaction committed.
            if revision is not None:
                self.commits.publish(Commit(revision, done, followed=self._writers > 1))
        finally:
            with self._writers_lock:
                self._writers -= 1

    def commit_changes(
        self,
        session: Session,
        actor: str,
        done: builtins.list[Change],
        *,
        reason: str | None = None,
        override_reason: str | None = None,
        freeze_exempt: bool = False,
    ) -> int:
        """Check freezes, bump the revision once and append one audit event per change.

        The caller's block commits. Freezes are checked here, inside the write
        transaction and under its lock, so no write slips past a new freeze.
        """
        overridden = check_freezes(
            session, done, override_reason=override_reason, exempt=freeze_exempt
        )
        if overridden:
            ids = ", ".join(str(f.id) for f in overridden)
            note = f"override of freeze {ids}: {override_reason}"
            reason = f"{reason}; {note}" if reason else note
        session.flush()  # a caller's pending rows (an API key): constraint errors surface here
        # Core statements, not the ORM's unit of work: the revision bump and the audit
        # events cost one statement each (issue 17).
        revision: int = session.execute(_BUMP_REVISION).scalar_one()
        loaded = session.identity_map.get(session.identity_key(RevisionRow, REVISION_ROW_ID))
        if loaded is not None:  # keep a copy read earlier in this transaction true
            set_committed_value(loaded, "value", revision)
        append_events(session, revision, actor, done, reason)
        notify_in_transaction(session, revision)  # other replicas (storage/pg_feed.py)
        # What the feed carries; a second commit in one transaction makes two
        # revisions of one publication, so then only the revision is published.
        once = "revision" not in session.info
        session.info["changes"] = tuple(done) if once else None
        session.info["revision"] = revision
        return revision


def _key_owners(done: Sequence[Change]) -> set[str]:
    """Consumers whose API keys `done` may have changed (audit events of keys name
    their consumer; deleting a consumer deletes its keys)."""
    return {c.name for c in done if c.kind in (KEY_ENTITY.kind, "consumer")}


def _applied(
    previous: Declaration, revision: int, done: Sequence[Change], api_keys: tuple[ApiKey, ...]
) -> Declaration:
    """`previous` with the entity changes `done` applied, at `revision`; unchanged
    kinds keep their very dicts."""
    specs: dict[str, dict[str, BaseModel]] = {}
    for change in done:
        ent = ENTITIES.get(change.kind)
        if ent is None:
            continue  # an API key's change: the caller read the keys
        current = specs.get(ent.plural)
        if current is None:
            current = specs[ent.plural] = dict(getattr(previous, ent.plural))
        if change.after is None:
            current.pop(change.name, None)
        else:
            current[change.name] = change.after
    unchanged = {
        ent.plural: getattr(previous, ent.plural)
        for ent in ENTITIES.values()
        if ent.plural not in specs
    }
    return Declaration(revision=revision, api_keys=api_keys, **specs, **unchanged)  # type: ignore[arg-type]


_REVISION = RevisionRow.__table__
# Built once: building a statement costs more than executing a cached one (issue 17).
_BUMP_REVISION = (
    update(_REVISION)
    .where(_REVISION.c.id == REVISION_ROW_ID)
    .values(value=_REVISION.c.value + 1)
    .returning(_REVISION.c.value)
)


@dataclass(frozen=True)
class ApplyResult:
    revision: int | None
    """The revision the declaration is at after the apply; None for a dry run."""
    changes: builtins.list[Change]


class _DryRun(Exception):
    """Raised inside a write transaction to roll a dry run back."""

    def __init__(self, result: ApplyResult) -> None:
        self.result = result


def _checked(kind: str, spec: BaseModel) -> Entity:
    ent = entity(kind)
    if not isinstance(spec, ent.spec):
        raise TypeError(f"a {kind} needs a {ent.spec.__name__}, not {type(spec).__name__}")
    return ent


def _current_revision(session: Session) -> int:
    return session.get_one(RevisionRow, REVISION_ROW_ID).value


def _all(session: Session, ent: Entity) -> builtins.list[BaseModel]:
    rows = session.scalars(select(ent.row).order_by(ent.row.name))  # type: ignore[attr-defined]
    return [ent.to_spec(row) for row in rows]


@contextmanager
def _unavailable_on_connect_errors() -> Iterator[None]:
    """Turn "cannot reach the database" errors into `StoreUnavailable`.

    OperationalError covers refused connections, timeouts, a dropped server and a
    SQLite database still locked after the busy timeout; InterfaceError covers a
    connection that broke underneath the driver.
    """
    try:
        yield
    except (sa_exc.OperationalError, sa_exc.InterfaceError) as exc:
        raise StoreUnavailable(f"database unavailable: {exc.orig}") from exc

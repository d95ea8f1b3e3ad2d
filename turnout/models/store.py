"""The store: the only way the declaration is read or written.

A write is one transaction that locks the revision row, checks the rules that
span entities (`turnout/models/references.py`), writes the row, bumps the global revision
and appends an audit event; either all of it commits or none of it does. After a
commit the change feed tells every subscriber the new revision.

The store is synchronous (FastAPI runs sync endpoints in its threadpool) and
knows nothing about HTTP or Envoy.
"""

import builtins
import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel
from sqlalchemy import exc as sa_exc
from sqlalchemy import select
from sqlalchemy.orm import Session

from turnout.models import db
from turnout.models.audit import Action, AuditEvent, AuditEventRow
from turnout.models.declaration import Declaration
from turnout.models.entities import ENTITIES, Entity, entity
from turnout.models.errors import Conflict, NotFound, StoreUnavailable
from turnout.models.keystore import KeyRing
from turnout.models.references import check_delete, check_write, delete_dependents
from turnout.models.rows import ADMIN_TOKEN_HASH_KEY, REVISION_ROW_ID, RevisionRow, SettingRow

log = logging.getLogger(__name__)

Subscriber = Callable[[int], None]


class Store:
    """Services, routes and splits in SQLite or PostgreSQL, with revisions and audit.

    Thread-safe: each call uses its own connection from the engine's pool.
    """

    def __init__(self, database_url: str, secret_key: str | None = None) -> None:
        """`secret_key` (TURNOUT_SECRET_KEY) encrypts API keys; without it keys are refused."""
        self.database_url = database_url
        self._engine = db.make_engine(database_url)
        self._writer = self._engine.execution_options(**db.write_options(self._engine))
        self._reader = self._engine.execution_options(**db.snapshot_options(self._engine))
        self._subscribers: builtins.list[Subscriber] = []
        self._notify_lock = threading.RLock()  # a callback may (un)subscribe
        self._notified = 0
        self.keys = KeyRing(self, secret_key)
        """The consumers' API keys (`turnout/models/keystore.py`)."""

    def upgrade(self) -> None:
        """Bring the schema to the newest migration."""
        with _unavailable_on_connect_errors():
            db.upgrade(engine=self._engine)

    def close(self) -> None:
        self._engine.dispose()

    # -- reads ---------------------------------------------------------------

    def revision(self) -> int:
        with self._read() as session:
            return _current_revision(session)

    def get(self, kind: str, name: str) -> BaseModel:
        ent = entity(kind)
        with self._read() as session:
            row = session.get(ent.row, name)
            if row is None:
                raise NotFound(kind, name)
            return ent.to_spec(row)

    def list(self, kind: str) -> builtins.list[BaseModel]:
        """Every entity of `kind`, sorted by name."""
        return self.listing(kind)[0]

    def listing(self, kind: str) -> tuple[builtins.list[BaseModel], int]:
        """Every entity of `kind` sorted by name, and the revision they were read at."""
        ent = entity(kind)
        with self._read() as session:
            return _all(session, ent), _current_revision(session)

    def load(self) -> Declaration:
        """The whole declaration at one consistent revision."""
        with self._read() as session:
            revision = _current_revision(session)
            specs = {
                ent.plural: {s.name: s for s in _all(session, ent)}  # type: ignore[attr-defined]
                for ent in ENTITIES.values()
            }
            api_keys = self.keys.load(session, datetime.now(UTC))
        return Declaration(revision=revision, api_keys=api_keys, **specs)

    def audit(self, limit: int = 100) -> builtins.list[AuditEvent]:
        """The newest `limit` audit events, newest first."""
        with self._read() as session:
            stmt = select(AuditEventRow).order_by(AuditEventRow.id.desc()).limit(limit)
            return [AuditEvent.model_validate(row) for row in session.scalars(stmt)]

    def admin_token_hash(self) -> str | None:
        """The sha256 hex of the admin token, if one was ever stored."""
        with self._read() as session:
            row = session.get(SettingRow, ADMIN_TOKEN_HASH_KEY)
            return row.value if row else None

    # -- writes --------------------------------------------------------------

    def create(self, kind: str, spec: BaseModel, actor: str) -> int:
        """Add a new entity; returns the new revision."""
        ent = _checked(kind, spec)
        name: str = spec.name  # type: ignore[attr-defined]
        with self._write() as session:
            if session.get(ent.row, name) is not None:
                raise Conflict(f"{kind} {name!r} already exists", field="name")
            check_write(session, ent, spec)
            session.add(ent.to_row(spec))
            return self._commit(session, actor, Action.CREATE, ent, name, None, spec)

    def replace(self, kind: str, name: str, spec: BaseModel, actor: str) -> int:
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
        with self._write() as session:
            row = session.get(ent.row, name)
            if row is None:
                raise NotFound(kind, name)
            before = ent.row_dict(row)
            check_write(session, ent, spec)
            for field, value in spec.model_dump(mode="json").items():
                setattr(row, field, value)
            return self._commit(session, actor, Action.UPDATE, ent, name, before, spec)

    def delete(self, kind: str, name: str, actor: str) -> int:
        """Remove entity `name`; returns the new revision."""
        ent = entity(kind)
        with self._write() as session:
            row = session.get(ent.row, name)
            if row is None:
                raise NotFound(kind, name)
            before = ent.row_dict(row)
            check_delete(session, ent, name)
            delete_dependents(session, ent, name)
            session.delete(row)
            return self._commit(session, actor, Action.DELETE, ent, name, before, None)

    def set_admin_token_hash(self, token_hash: str) -> None:
        """Store the sha256 hex of the admin token (not a declaration change)."""
        with self._write() as session:
            row = session.get(SettingRow, ADMIN_TOKEN_HASH_KEY)
            if row is None:
                session.add(SettingRow(key=ADMIN_TOKEN_HASH_KEY, value=token_hash))
            else:
                row.value = token_hash

    # -- change feed ---------------------------------------------------------

    def subscribe(self, callback: Subscriber) -> Callable[[], None]:
        """Call `callback(revision)` after every commit; returns an unsubscribe function.

        Callbacks run synchronously in the committing thread, so they must be quick
        and thread-safe (e.g. `loop.call_soon_threadsafe`). Revisions arrive in
        increasing order; when two writers commit close together a subscriber may
        see only the later one, which includes the earlier. An exception in a
        callback is logged and does not affect the write or other subscribers.

        This feed is in-process. Several Turnout processes sharing PostgreSQL need
        a LISTEN/NOTIFY feed: `_commit` would also run `pg_notify('turnout',
        revision)` inside the write transaction (delivered only on commit), and a
        listener thread would call `_notify` for revisions committed elsewhere.
        """
        with self._notify_lock:
            self._subscribers.append(callback)

        def unsubscribe() -> None:
            with self._notify_lock:
                if callback in self._subscribers:
                    self._subscribers.remove(callback)

        return unsubscribe

    def _notify(self, revision: int) -> None:
        with self._notify_lock:
            if revision <= self._notified:
                return
            self._notified = revision
            subscribers = builtins.list(self._subscribers)
            for callback in subscribers:
                try:
                    callback(revision)
                except Exception:
                    log.exception("change feed subscriber %r failed", callback)

    # -- transactions --------------------------------------------------------

    @contextmanager
    def _read(self) -> Iterator[Session]:
        with (
            _unavailable_on_connect_errors(),
            Session(self._reader) as session,
            session.begin(),
        ):
            yield session

    @contextmanager
    def _write(self) -> Iterator[Session]:
        """One write transaction, serialized against every other writer.

        The revision row is locked before anything is checked, so the checks see
        every earlier commit and nobody can commit in between.
        """
        with _unavailable_on_connect_errors(), Session(self._writer) as session:
            try:
                with session.begin():
                    session.execute(
                        select(RevisionRow)
                        .where(RevisionRow.id == REVISION_ROW_ID)
                        .with_for_update()  # ignored on SQLite, which is IMMEDIATE instead
                    )
                    yield session
            except sa_exc.IntegrityError as exc:
                # The checks run under the lock, so this means a rule was missed.
                raise Conflict(f"the database rejected the write: {exc.orig}") from exc
            revision: int | None = session.info.get("revision")
        # Only here has the transaction committed.
        if revision is not None:
            self._notify(revision)

    def _commit(
        self,
        session: Session,
        actor: str,
        action: Action,
        ent: Entity,
        name: str,
        before: dict[str, Any] | None,
        after: BaseModel | None,
    ) -> int:
        """Bump the revision and append the audit event; the caller's block commits."""
        row = session.get_one(RevisionRow, REVISION_ROW_ID)
        row.value += 1
        session.add(
            AuditEventRow(
                revision=row.value,
                at=datetime.now(UTC),
                actor=actor,
                action=action.value,
                entity_kind=ent.kind,
                entity_name=name,
                before=before,
                after=after.model_dump(mode="json") if after is not None else None,
            )
        )
        session.flush()  # surface constraint errors inside the transaction
        session.info["revision"] = row.value
        return row.value


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

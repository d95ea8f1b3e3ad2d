"""Database plumbing: engine creation and schema upgrades.

This module owns how Turnout talks to SQLite and PostgreSQL (connection settings,
transaction begin modes, migrations). It knows nothing about entities; row classes
live beside their specs (`turnout/models/service.py` ...) and register on `Base`
(`turnout/models/schema.py`, re-exported here).

Transactions on SQLite: Python's sqlite3 driver, in its legacy mode, does not emit
BEGIN before a SELECT, so reads are not repeatable and the write lock is taken
late. We switch the driver's own transaction control off and emit BEGIN ourselves
(the recipe in SQLAlchemy's SQLite docs, "Enabling Non-Legacy SQLite Transactional
Modes"). A connection with the execution option `sqlite_begin="IMMEDIATE"` takes
the write lock at BEGIN, which serializes writers the way `SELECT ... FOR UPDATE`
on the revision row does on PostgreSQL.
"""

import weakref
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, make_url, text
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Connection, ExceptionContext

from turnout.models.schema import Base as Base  # re-exported: `db.Base.metadata` is the schema
from turnout.settings import DATABASE_URL_ENV as DATABASE_URL_ENV
from turnout.settings import DEFAULT_DATABASE_URL as DEFAULT_DATABASE_URL
from turnout.settings import current as current_settings
from turnout.storage.watchdog import StatementWatchdog

# How long the database may keep Turnout waiting. Each bound turns into a 503
# (`StoreUnavailable`) and changes nothing; the README ("Outages and cold start")
# lists them. Together: a request never waits on the database for more than about
# POOL_TIMEOUT_S + PG_CONNECT_TIMEOUT_S + STATEMENT_DEADLINE_S per statement.
SQLITE_BUSY_TIMEOUT_MS = 5000
"""How long a SQLite writer waits for another writer's lock before giving up."""
PG_CONNECT_TIMEOUT_S = 5
"""Fail fast (as StoreUnavailable) rather than hang when PostgreSQL is down."""
PG_LOCK_TIMEOUT_MS = SQLITE_BUSY_TIMEOUT_MS
"""How long a PostgreSQL writer waits for another writer's lock (the revision row)."""
PG_STATEMENT_TIMEOUT_MS = 10_000
"""The server cancels a statement running longer (a runaway query, not a busy one)."""
PG_IDLE_IN_TRANSACTION_TIMEOUT_MS = 30_000
"""The server ends a session idle inside a transaction: a client that vanished
mid-write must not hold the revision row lock (and so every write) for long."""
PG_TCP_USER_TIMEOUT_MS = 10_000
"""The kernel drops the connection when sent data stays unacknowledged this long
(packets lost), instead of retransmitting for about 15 minutes."""
PG_KEEPALIVES = {
    "keepalives": 1,
    "keepalives_idle": 5,
    "keepalives_interval": 2,
    "keepalives_count": 3,
}
"""Detect a dead peer on an idle connection within about 11 s."""
POOL_TIMEOUT_S = 5
"""How long a request waits for a free pooled connection (SQLAlchemy's default: 30)."""
STATEMENT_DEADLINE_S = PG_STATEMENT_TIMEOUT_MS / 1000 + 2
"""The client-side bound on one statement, commit or ping (`turnout/storage/watchdog.py`):
the server's own timeout plus a margin, for a server that does not answer at all."""
NO_DEADLINE = "turnout_no_deadline"
"""Execution option that exempts a connection's statements from the watchdog (migrations)."""
MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def database_url_from_env() -> str:
    """`TURNOUT_DATABASE_URL`, or a SQLite file in the working directory."""
    return current_settings().database_url


_WATCHDOGS: "weakref.WeakKeyDictionary[Engine, StatementWatchdog]" = weakref.WeakKeyDictionary()


def make_engine(
    url: str, *, statement_deadline_s: float = STATEMENT_DEADLINE_S, **kwargs: Any
) -> Engine:
    """An engine for `url` with the per-backend settings Turnout relies on."""
    backend = make_url(url).get_backend_name()
    watchdog = StatementWatchdog(statement_deadline_s)
    if backend == "sqlite":
        connect_args = {"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}
        engine = create_engine(url, connect_args=connect_args, **kwargs)
        _configure_sqlite(engine)
    elif backend == "postgresql":
        connect_args = {
            "connect_timeout": PG_CONNECT_TIMEOUT_S,
            "tcp_user_timeout": PG_TCP_USER_TIMEOUT_MS,
            **PG_KEEPALIVES,
        }
        kwargs.setdefault("pool_timeout", POOL_TIMEOUT_S)
        # No pool_pre_ping: SQLAlchemy's ping runs before any event could bound it;
        # `_guard_statements` pings on checkout under the watchdog instead.
        engine = create_engine(url, connect_args=connect_args, **kwargs)
        _configure_postgresql(engine, watchdog)
    else:
        raise ValueError(
            f"unsupported database {backend!r}: use sqlite:/// or postgresql+psycopg://"
        )
    _guard_statements(engine, watchdog)
    return engine


def dispose(engine: Engine) -> None:
    """Close the engine's connections and stop its watchdog."""
    engine.dispose()
    watchdog = _WATCHDOGS.pop(engine, None)
    if watchdog is not None:
        watchdog.close()


class DeadlineExceeded(Exception):
    """The database did not answer a call within `STATEMENT_DEADLINE_S`."""


def _guard_statements(engine: Engine, watchdog: StatementWatchdog) -> None:
    """Put every statement, commit, rollback and checkout ping under `watchdog`."""
    _WATCHDOGS[engine] = watchdog

    def guarded(conn: Connection) -> bool:
        return not conn.get_execution_options().get(NO_DEADLINE, False)

    @event.listens_for(engine, "before_cursor_execute")
    def _arm(conn: Connection, *_args: Any) -> None:
        if guarded(conn):
            watchdog.arm(conn.connection.dbapi_connection)

    @event.listens_for(engine, "after_cursor_execute")
    def _disarm(conn: Connection, *_args: Any) -> None:
        watchdog.disarm(conn.connection.dbapi_connection)

    @event.listens_for(engine, "commit")
    def _arm_commit(conn: Connection) -> None:
        if guarded(conn):
            watchdog.arm(conn.connection.dbapi_connection, commit=True)

    @event.listens_for(engine, "rollback")
    def _arm_rollback(conn: Connection) -> None:
        if guarded(conn):
            watchdog.arm(conn.connection.dbapi_connection)

    @event.listens_for(engine, "handle_error")
    def _timed_out(context: ExceptionContext) -> BaseException | None:
        try:
            dbapi = context.connection.connection.dbapi_connection  # type: ignore[union-attr]
        except Exception:  # no connection, or already invalidated
            return None
        interrupted = watchdog.take_interrupted(dbapi)
        watchdog.disarm(dbapi)
        if interrupted is None:
            return None
        outcome = (
            " (its COMMIT was already sent, so the write may have been committed:"
            " check the revision)"
            if interrupted
            else ""
        )
        message = f"the database did not answer within {watchdog.timeout_s:g} s{outcome}"
        return sa_exc.OperationalError(
            context.statement, context.parameters, DeadlineExceeded(message)
        )

    @event.listens_for(engine, "connect")
    def _fresh(_dbapi: Any, record: Any) -> None:
        record.info["fresh"] = True  # just connected: no need to ping it

    @event.listens_for(engine, "checkout")
    def _ping(dbapi: Any, record: Any, _proxy: Any) -> None:
        if record.info.pop("fresh", False) or engine.dialect.name != "postgresql":
            return
        watchdog.arm(dbapi)
        try:
            engine.dialect.do_ping(dbapi)
        except Exception as exc:
            # SQLAlchemy retries once on a new connection (pessimistic disconnect handling).
            raise sa_exc.DisconnectionError(str(exc)) from exc
        finally:
            watchdog.disarm(dbapi)

    @event.listens_for(engine, "reset")
    def _arm_reset(dbapi: Any, _record: Any, _state: Any) -> None:
        watchdog.arm(dbapi)

    @event.listens_for(engine, "checkin")
    def _disarm_checkin(dbapi: Any, _record: Any) -> None:
        if dbapi is not None:
            watchdog.forget(dbapi)


def _configure_postgresql(engine: Engine, watchdog: StatementWatchdog) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Session settings rather than the `options` startup parameter, which
        # PgBouncer refuses.
        watchdog.arm(dbapi_connection)
        try:
            with dbapi_connection.cursor() as cursor:
                cursor.execute(
                    f"SET statement_timeout = {PG_STATEMENT_TIMEOUT_MS};"
                    f" SET lock_timeout = {PG_LOCK_TIMEOUT_MS};"
                    " SET idle_in_transaction_session_timeout ="
                    f" {PG_IDLE_IN_TRANSACTION_TIMEOUT_MS}"
                )
            dbapi_connection.commit()
        finally:
            watchdog.disarm(dbapi_connection)


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control away from the driver (see module docstring).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA journal_mode=WAL")  # readers never block the writer
        # WAL + NORMAL: a commit survives a crash of Turnout (SIGKILL included) and
        # costs no fsync; only a power loss or OS crash may drop the newest commits.
        # SQLite is the single-node default; production runs on PostgreSQL.
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        mode = conn.get_execution_options().get("sqlite_begin", "DEFERRED")
        conn.exec_driver_sql(f"BEGIN {mode}")


def write_options(engine: Engine) -> dict[str, Any]:
    """Execution options for a connection that will write (serialized on SQLite)."""
    return {"sqlite_begin": "IMMEDIATE"} if engine.dialect.name == "sqlite" else {}


def snapshot_options(engine: Engine) -> dict[str, Any]:
    """Execution options for a read that must see one consistent revision.

    SQLite in WAL mode gives a snapshot from the first read of a transaction; on
    PostgreSQL, READ COMMITTED would let each statement see a newer commit.
    """
    return {"isolation_level": "REPEATABLE READ"} if engine.dialect.name == "postgresql" else {}


# Serializes concurrent `upgrade` calls from several Turnout processes on PostgreSQL.
_PG_MIGRATION_LOCK = 0x7475726E  # "turn"


def upgrade(url: str | None = None, *, engine: Engine | None = None) -> None:
    """Apply every migration up to head. Idempotent; safe to call on each start.

    Builds the Alembic config in code, so no alembic.ini is needed and it works
    from an installed package.
    """
    from alembic import command
    from alembic.config import Config

    own_engine = engine is None
    if engine is None:
        engine = make_engine(url or database_url_from_env())
    try:
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS_DIR))
        with engine.connect() as conn:
            # A migration may rewrite a large table: no statement bound applies.
            conn = conn.execution_options(**write_options(engine), **{NO_DEADLINE: True})
            with conn.begin():
                if engine.dialect.name == "postgresql":
                    conn.execute(text("SET LOCAL statement_timeout = 0"))
                    conn.execute(
                        text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_MIGRATION_LOCK}
                    )
                config.attributes["connection"] = conn
                command.upgrade(config, "head")
    finally:
        if own_engine:
            engine.dispose()

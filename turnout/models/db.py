"""Database plumbing: the declarative `Base`, engine creation and schema upgrades.

This module owns how Turnout talks to SQLite and PostgreSQL (connection settings,
transaction begin modes, migrations). It knows nothing about entities; row classes
live beside their specs (`turnout/models/service.py` ...) and register on `Base`.

Transactions on SQLite: Python's sqlite3 driver, in its legacy mode, does not emit
BEGIN before a SELECT, so reads are not repeatable and the write lock is taken
late. We switch the driver's own transaction control off and emit BEGIN ourselves
(the recipe in SQLAlchemy's SQLite docs, "Enabling Non-Legacy SQLite Transactional
Modes"). A connection with the execution option `sqlite_begin="IMMEDIATE"` takes
the write lock at BEGIN, which serializes writers the way `SELECT ... FOR UPDATE`
on the revision row does on PostgreSQL.
"""

import os
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, MetaData, create_engine, event, make_url, text
from sqlalchemy.engine import Connection
from sqlalchemy.orm import DeclarativeBase

DATABASE_URL_ENV = "TURNOUT_DATABASE_URL"
DEFAULT_DATABASE_URL = "sqlite:///turnout.db"
SQLITE_BUSY_TIMEOUT_MS = 5000
"""How long a SQLite writer waits for another writer's lock before giving up."""
PG_CONNECT_TIMEOUT_S = 5
"""Fail fast (as StoreUnavailable) rather than hang when PostgreSQL is down."""
MIGRATIONS_DIR = Path(__file__).parent / "migrations"

# Stable constraint names, so that hand-written migrations can refer to them.
_NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """Base of every row class. Its metadata is what migrations must produce."""

    metadata = MetaData(naming_convention=_NAMING)


def database_url_from_env() -> str:
    """`TURNOUT_DATABASE_URL`, or a SQLite file in the working directory."""
    return os.environ.get(DATABASE_URL_ENV) or DEFAULT_DATABASE_URL


def make_engine(url: str, **kwargs: Any) -> Engine:
    """An engine for `url` with the per-backend settings Turnout relies on."""
    backend = make_url(url).get_backend_name()
    if backend == "sqlite":
        connect_args = {"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}
        engine = create_engine(url, connect_args=connect_args, **kwargs)
        _configure_sqlite(engine)
        return engine
    if backend == "postgresql":
        connect_args = {"connect_timeout": PG_CONNECT_TIMEOUT_S}
        return create_engine(url, connect_args=connect_args, pool_pre_ping=True, **kwargs)
    raise ValueError(f"unsupported database {backend!r}: use sqlite:/// or postgresql+psycopg://")


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
            conn = conn.execution_options(**write_options(engine))
            with conn.begin():
                if engine.dialect.name == "postgresql":
                    conn.execute(
                        text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_MIGRATION_LOCK}
                    )
                config.attributes["connection"] = conn
                command.upgrade(config, "head")
    finally:
        if own_engine:
            engine.dispose()

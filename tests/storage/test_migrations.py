"""The hand-written migrations produce exactly the schema the row classes declare."""

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from turnout.storage import db
from turnout.storage.db import Base
from turnout.storage.store import Store


def test_upgrade_empty_database_matches_rows(empty_database_url: str) -> None:
    db.upgrade(empty_database_url)
    engine = db.make_engine(empty_database_url)
    try:
        with engine.connect() as conn:
            tables = set(inspect(conn).get_table_names())
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            diff = compare_metadata(context, Base.metadata)
    finally:
        engine.dispose()
    assert {"services", "routes", "splits", "revision", "audit_events", "settings"} <= tables
    assert diff == []


def test_upgrade_is_idempotent(empty_database_url: str) -> None:
    store = Store(empty_database_url)
    try:
        store.upgrade()
        store.upgrade()
        assert store.revision() == 0
        assert store.load().services == {}
    finally:
        store.close()


def test_default_url_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(db.DATABASE_URL_ENV, raising=False)
    assert db.database_url_from_env() == "sqlite:///turnout.db"
    monkeypatch.setenv(db.DATABASE_URL_ENV, "postgresql+psycopg://u@h/d")
    assert db.database_url_from_env() == "postgresql+psycopg://u@h/d"


def test_0007_keeps_consumers_and_adds_kong_ids(empty_database_url: str) -> None:
    """A database at 0006 with a consumer: after 0007 it is there, without Kong ids."""
    from alembic import command
    from alembic.config import Config
    from sqlalchemy import text

    engine = db.make_engine(empty_database_url)
    try:
        config = Config()
        config.set_main_option("script_location", str(db.MIGRATIONS_DIR))
        with engine.begin() as conn:
            config.attributes["connection"] = conn
            command.upgrade(config, "0006")
            conn.execute(
                text(
                    "INSERT INTO consumers (name, groups, limits, tags) "
                    "VALUES ('acme', '[]', NULL, '[]')"
                )
            )
    finally:
        engine.dispose()
    db.upgrade(empty_database_url)
    store = Store(empty_database_url)
    try:
        consumer = store.load().consumers["acme"]
        assert consumer.kong_id is None and consumer.custom_id is None
    finally:
        store.close()

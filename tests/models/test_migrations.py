"""The hand-written migrations produce exactly the schema the row classes declare."""

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from turnout.models.schema import Base
from turnout.storage import db
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

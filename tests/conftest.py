"""Database and Redis fixtures shared by every test package: real servers, never mocks.

    database_url        a fresh, migrated database per test (revision 0, no entities)
    empty_database_url  a fresh database with no tables at all (for migration tests)
    store               a `Store` on `database_url`, closed after the test

Both URL fixtures are parametrized over SQLite (a file in tmp_path, always) and
PostgreSQL (only when TURNOUT_TEST_DATABASE_URL names a server, e.g.
postgresql+psycopg://postgres@127.0.0.1:5432/postgres; otherwise skipped). On
PostgreSQL each test gets its own database, copied from a template migrated once
per session, and dropped afterwards. To run a test on one backend only, use
`@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)`.

    redis_url     real Redis from TURNOUT_TEST_REDIS_URL (redis://127.0.0.1:6379/0);
                  without it, tests that need it are skipped
    redis_prefix  a key prefix of the test's own; every key under it is deleted after
"""

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from sqlalchemy import Engine, create_engine, make_url, text

from turnout.storage import db
from turnout.storage.store import Store

# Turnout's own suite uses the plugin it ships (fixtures turnout, admin, envoy,
# start_envoy); installed, it is also loaded by its pytest11 entry point.
pytest_plugins = ["turnout.testing.plugin"]

PG_ENV = "TURNOUT_TEST_DATABASE_URL"
BACKENDS = ["sqlite", "postgresql"]


@pytest.fixture(scope="session")
def _sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "turnout.db"
    db.upgrade(f"sqlite:///{path}")  # disposes its engine: the WAL is folded back in
    return path


class _PgServer:
    """Creates and drops per-test databases on the server named by PG_ENV."""

    def __init__(self, server_url: str) -> None:
        self.url = make_url(server_url)
        self.admin: Engine = create_engine(self.url, isolation_level="AUTOCOMMIT")
        self.prefix = f"turnout_test_{uuid.uuid4().hex[:8]}"
        self.template = f"{self.prefix}_template"
        self._execute(f'CREATE DATABASE "{self.template}"')
        db.upgrade(self.url_for(self.template))

    def url_for(self, database: str) -> str:
        return self.url.set(database=database).render_as_string(hide_password=False)

    def create(self, *, migrated: bool) -> str:
        name = f"{self.prefix}_{uuid.uuid4().hex[:8]}"
        template = self.template if migrated else "template0"
        self._execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
        return name

    def drop(self, name: str) -> None:
        self._execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def close(self) -> None:
        self.drop(self.template)
        self.admin.dispose()

    def _execute(self, sql: str) -> None:
        with self.admin.connect() as conn:
            conn.execute(text(sql))


@pytest.fixture(scope="session")
def _pg_server() -> Iterator[_PgServer]:
    server_url = os.environ.get(PG_ENV)
    if not server_url:
        pytest.skip(f"PostgreSQL tests need {PG_ENV}=postgresql+psycopg://user@host:port/db")
    server = _PgServer(server_url)
    yield server
    server.close()


def _fresh_database(
    request: pytest.FixtureRequest, tmp_path: Path, migrated: bool
) -> Iterator[str]:
    if request.param == "sqlite":
        path = tmp_path / "turnout.db"
        if migrated:
            shutil.copyfile(request.getfixturevalue("_sqlite_template"), path)
        yield f"sqlite:///{path}"
        return
    server: _PgServer = request.getfixturevalue("_pg_server")
    name = server.create(migrated=migrated)
    try:
        yield server.url_for(name)
    finally:
        server.drop(name)


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh database at schema head, on each backend."""
    yield from _fresh_database(request, tmp_path, migrated=True)


@pytest.fixture(params=BACKENDS)
def empty_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh database without any table, on each backend."""
    yield from _fresh_database(request, tmp_path, migrated=False)


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    """A store on a fresh migrated database."""
    s = Store(database_url)
    yield s
    s.close()


REDIS_ENV = "TURNOUT_TEST_REDIS_URL"


@pytest.fixture
def redis_url() -> str:
    url = os.environ.get(REDIS_ENV)
    if not url:
        pytest.skip(f"Redis tests need {REDIS_ENV}=redis://127.0.0.1:6379/0")
    return url


@pytest.fixture
def redis_prefix(redis_url: str) -> Iterator[str]:
    prefix = f"turnout-test:{uuid.uuid4().hex[:12]}:"
    yield prefix
    client = redis.Redis.from_url(redis_url)
    try:
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()

"""Alembic environment for Turnout's hand-written migrations.

`turnout.storage.db.upgrade` builds the Alembic config in code and passes an open
connection in `config.attributes["connection"]`, inside a transaction that it
owns. Run from the `alembic` command line instead, the URL comes from
`TURNOUT_DATABASE_URL`.
"""

from alembic import context
from sqlalchemy.engine import Connection

import turnout.models.entities
import turnout.storage.audit
import turnout.storage.freezes
import turnout.storage.replicas
import turnout.storage.rows
import turnout.storage.tokens  # noqa: F401  (registers every table on Base.metadata)
from turnout.storage.db import Base, database_url_from_env, make_engine

target_metadata = Base.metadata
"""Only for `alembic check`/autogenerate comparisons; migrations stay hand-written."""


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",  # SQLite cannot ALTER much
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = make_engine(database_url_from_env())
    try:
        with engine.connect() as conn:
            _run(conn)
            conn.commit()
    finally:
        engine.dispose()


if context.is_offline_mode():
    raise SystemExit("offline (--sql) migrations are not supported")
run_migrations_online()

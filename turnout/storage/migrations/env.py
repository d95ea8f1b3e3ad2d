"""Alembic environment for Turnout's hand-written migrations.

`turnout.storage.db.upgrade` builds the Alembic config in code and passes an open
connection in `config.attributes["connection"]`, inside a transaction that it
owns. Run from the `alembic` command line instead, the URL comes from
`TURNOUT_DATABASE_URL`.
"""

from alembic import context
from sqlalchemy.engine import Connection

# Imported for their row classes: each registers its table on Base.metadata.
import turnout.models.entities
import turnout.models.freeze
import turnout.models.key
import turnout.models.token
import turnout.storage.audit
import turnout.storage.replicas
import turnout.storage.rows  # noqa: F401  (the whole block: see above)
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

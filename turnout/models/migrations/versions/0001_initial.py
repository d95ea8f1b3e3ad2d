"""Initial schema: services, routes, splits, the revision counter, audit, settings.

Hand-written (as Kong's are): this file is the schema's history, and must not
change once released. `tests/storage/test_migrations.py` checks that it produces
exactly what the row classes declare.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_NAME = sa.String(128)


def upgrade() -> None:
    op.create_table(
        "services",
        sa.Column("name", _NAME, nullable=False),
        sa.Column("url", sa.String(2048), nullable=True),
        sa.Column("endpoints", sa.JSON(), nullable=True),
        sa.Column("connect_timeout_ms", sa.Integer(), nullable=False),
        sa.Column("tags", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_services"),
    )
    op.create_table(
        "routes",
        sa.Column("name", _NAME, nullable=False),
        sa.Column("hosts", sa.JSON(), nullable=False),
        sa.Column("paths", sa.JSON(), nullable=False),
        sa.Column("methods", sa.JSON(), nullable=False),
        sa.Column("headers", sa.JSON(), nullable=False),
        sa.Column("service", _NAME, nullable=False),
        sa.Column("strip_path", sa.Boolean(), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("groups", sa.JSON(), nullable=False),
        sa.Column("tags", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_routes"),
        sa.ForeignKeyConstraint(["service"], ["services.name"], name="fk_routes_service_services"),
    )
    op.create_index("ix_routes_service", "routes", ["service"])
    op.create_table(
        "splits",
        sa.Column("name", _NAME, nullable=False),
        sa.Column("route", _NAME, nullable=False),
        sa.Column("targets", sa.JSON(), nullable=False),
        sa.Column("tags", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_splits"),
        sa.ForeignKeyConstraint(["route"], ["routes.name"], name="fk_splits_route_routes"),
        sa.UniqueConstraint("route", name="uq_splits_route"),
    )
    revision_table = op.create_table(
        "revision",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("value", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_revision"),
        sa.CheckConstraint("id = 1", name="ck_revision_single_row"),
    )
    op.bulk_insert(revision_table, [{"id": 1, "value": 0}])
    op.create_table(
        "audit_events",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("revision", sa.BigInteger(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("entity_kind", sa.String(32), nullable=False),
        sa.Column("entity_name", _NAME, nullable=False),
        sa.Column("before", sa.JSON(), nullable=True),
        sa.Column("after", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_audit_events"),
    )
    op.create_index("ix_audit_events_revision", "audit_events", ["revision"])
    op.create_table(
        "settings",
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("key", name="pk_settings"),
    )


def downgrade() -> None:
    op.drop_table("settings")
    op.drop_index("ix_audit_events_revision", table_name="audit_events")
    op.drop_table("audit_events")
    op.drop_table("revision")
    op.drop_table("splits")
    op.drop_index("ix_routes_service", table_name="routes")
    op.drop_table("routes")
    op.drop_table("services")

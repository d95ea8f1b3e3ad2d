"""Consumers, encrypted API keys; `auth`, `limits`, `policies` on routes and services.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_NAME = sa.String(128)


def upgrade() -> None:
    op.create_table(
        "consumers",
        sa.Column("name", _NAME, nullable=False),
        sa.Column("groups", sa.JSON(), nullable=False),
        sa.Column("limits", sa.JSON(), nullable=True),
        sa.Column("tags", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_consumers"),
    )
    op.create_table(
        "consumer_keys",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("consumer", _NAME, nullable=False),
        sa.Column("prefix", sa.String(16), nullable=False),
        sa.Column("lookup_hash", sa.String(64), nullable=False),
        sa.Column("ciphertext", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_consumer_keys"),
        sa.ForeignKeyConstraint(
            ["consumer"], ["consumers.name"], name="fk_consumer_keys_consumer_consumers"
        ),
        sa.UniqueConstraint("lookup_hash", name="uq_consumer_keys_lookup_hash"),
    )
    op.create_index("ix_consumer_keys_consumer", "consumer_keys", ["consumer"])
    op.create_index("ix_consumer_keys_expires_at", "consumer_keys", ["expires_at"])
    with op.batch_alter_table("routes") as batch:
        batch.add_column(sa.Column("auth", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("limits", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("policies", sa.JSON(), nullable=True))
    with op.batch_alter_table("services") as batch:
        batch.add_column(sa.Column("policies", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("services") as batch:
        batch.drop_column("policies")
    with op.batch_alter_table("routes") as batch:
        batch.drop_column("policies")
        batch.drop_column("limits")
        batch.drop_column("auth")
    op.drop_index("ix_consumer_keys_expires_at", table_name="consumer_keys")
    op.drop_index("ix_consumer_keys_consumer", table_name="consumer_keys")
    op.drop_table("consumer_keys")
    op.drop_table("consumers")

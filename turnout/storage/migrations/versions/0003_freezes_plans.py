"""Freezes, the audit event's reason, and pins, stickiness and staged plans on splits.

Revision ID: 0003
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "freezes",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("scope", sa.JSON(), nullable=False),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ends_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(128), nullable=False),
        sa.Column("lifted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("lifted_by", sa.String(128), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_freezes"),
    )
    with op.batch_alter_table("audit_events") as batch:
        batch.add_column(sa.Column("reason", sa.Text(), nullable=True))
    with op.batch_alter_table("splits") as batch:
        batch.add_column(sa.Column("pins", sa.JSON(), nullable=False, server_default="[]"))
        batch.add_column(sa.Column("sticky", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("plan", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("plan_state", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("splits") as batch:
        batch.drop_column("plan_state")
        batch.drop_column("plan")
        batch.drop_column("sticky")
        batch.drop_column("pins")
    with op.batch_alter_table("audit_events") as batch:
        batch.drop_column("reason")
    op.drop_table("freezes")

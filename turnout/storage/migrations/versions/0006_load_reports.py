"""Load reports shared between replicas, so the leader's plan controller judges on
every proxy's traffic whichever replica holds its LRS stream.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "load_reports",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("replica", sa.String(128), nullable=False),
        sa.Column("cluster", sa.String(128), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("requests", sa.BigInteger(), nullable=False),
        sa.Column("errors", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_load_reports"),
    )
    op.create_index("ix_load_reports_cluster_at", "load_reports", ["cluster", "at"])


def downgrade() -> None:
    op.drop_index("ix_load_reports_cluster_at", table_name="load_reports")
    op.drop_table("load_reports")

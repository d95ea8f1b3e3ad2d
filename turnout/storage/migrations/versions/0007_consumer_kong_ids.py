"""Consumers keep their Kong id and custom_id, sent upstream as Kong's X-Consumer-ID
and X-Consumer-Custom-ID headers.

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("consumers") as batch:
        batch.add_column(sa.Column("kong_id", sa.String(255), nullable=True))
        batch.add_column(sa.Column("custom_id", sa.String(255), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("consumers") as batch:
        batch.drop_column("custom_id")
        batch.drop_column("kong_id")

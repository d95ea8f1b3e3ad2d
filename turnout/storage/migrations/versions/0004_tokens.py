"""Admin tokens with roles, and per-replica proxy status for high availability.

`tokens` holds only sha256 hashes. `replica_proxies` lets every Turnout replica
sharing one PostgreSQL database show the proxies attached to the others.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "tokens",
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("token_sha256", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(128), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("name", name="pk_tokens"),
        sa.UniqueConstraint("token_sha256", name="uq_tokens_token_sha256"),
    )
    op.create_table(
        "replica_proxies",
        sa.Column("replica", sa.String(128), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("proxies", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("replica", name="pk_replica_proxies"),
    )


def downgrade() -> None:
    op.drop_table("replica_proxies")
    op.drop_table("tokens")

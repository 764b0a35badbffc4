"""gateway audit: one row per connection an agent made through a gateway (allowed or refused)

Revision ID: 0005
Revises: 0003
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "gateway_audit",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("gateway_key", sa.String(1024), nullable=False),
        sa.Column("cluster_id", sa.String(1024), nullable=True),
        sa.Column("destination", sa.String(300), nullable=False),
        sa.Column("bytes_up", sa.BigInteger(), nullable=False),
        sa.Column("bytes_down", sa.BigInteger(), nullable=False),
        sa.Column("duration_ms", sa.Integer(), nullable=False),
        sa.Column("verdict", sa.String(16), nullable=False),
        sa.Column("reason", sa.String(300), nullable=False),
        sa.Column("client", sa.String(64), nullable=False),
    )
    op.create_index("ix_gateway_audit_gateway_at", "gateway_audit", ["gateway_key", "at"])


def downgrade() -> None:
    op.drop_index("ix_gateway_audit_gateway_at", table_name="gateway_audit")
    op.drop_table("gateway_audit")

"""relay routes: which replica holds each connected cluster's tunnel, and the replicas' liveness leases

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "relay_replicas",
        sa.Column("replica_id", sa.String(length=64), nullable=False),
        sa.Column("peer_address", sa.String(length=512), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("replica_id"),
    )
    op.create_index("ix_relay_replicas_lease_until", "relay_replicas", ["lease_until"], unique=False)
    op.create_table(
        "relay_routes",
        sa.Column("cluster_key", sa.String(length=1024), nullable=False),
        sa.Column("replica_id", sa.String(length=64), nullable=False),
        sa.Column("since", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("cluster_key"),
    )
    op.create_index("ix_relay_routes_replica_id", "relay_routes", ["replica_id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_relay_routes_replica_id", table_name="relay_routes")
    op.drop_table("relay_routes")
    op.drop_index("ix_relay_replicas_lease_until", table_name="relay_replicas")
    op.drop_table("relay_replicas")

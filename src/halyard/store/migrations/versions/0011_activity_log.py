"""activity log: operations remember who asked for them; the activity_events table the activity-log API reads

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

_CALLER_COLUMNS = (
    ("operation_name", 256),
    ("caller", 256),
    ("caller_id", 36),
    ("caller_type", 32),
    ("tenant_id", 36),
)


def upgrade() -> None:
    with op.batch_alter_table("operations") as batch:
        for name, length in _CALLER_COLUMNS:
            batch.add_column(sa.Column(name, sa.String(length), nullable=True))
    op.create_table(
        "activity_events",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("correlation_id", sa.String(36), nullable=False),
        sa.Column("tenant_id", sa.String(36), nullable=False),
        sa.Column("subscription_id", sa.String(36), nullable=False),
        sa.Column("group_key", sa.String(90), nullable=False),
        sa.Column("resource_group", sa.String(90), nullable=False),
        sa.Column("resource_id", sa.String(1024), nullable=False),
        sa.Column("resource_key", sa.String(1024), nullable=False),
        sa.Column("provider_key", sa.String(128), nullable=False),
        sa.Column("resource_type", sa.String(256), nullable=False),
        sa.Column("operation_name", sa.String(256), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("sub_status", sa.String(64), nullable=False),
        sa.Column("level", sa.String(16), nullable=False),
        sa.Column("caller", sa.String(256), nullable=False),
        sa.Column("caller_id", sa.String(36), nullable=False),
        sa.Column("caller_type", sa.String(32), nullable=False),
        sa.Column("http_method", sa.String(8), nullable=False),
        sa.Column("properties", sa.JSON(), nullable=False),
    )
    op.create_index("ix_activity_events_correlation_id", "activity_events", ["correlation_id"])
    op.create_index("ix_activity_events_subscription_at", "activity_events", ["subscription_id", "at"])
    op.create_index("ix_activity_events_resource_at", "activity_events", ["resource_key", "at"])
    op.create_index("ix_activity_events_group_at", "activity_events", ["subscription_id", "group_key", "at"])
    op.create_index("ix_activity_events_at", "activity_events", ["at"])


def downgrade() -> None:
    for index in ("ix_activity_events_at", "ix_activity_events_group_at", "ix_activity_events_resource_at",
                  "ix_activity_events_subscription_at", "ix_activity_events_correlation_id"):  # fmt: skip
        op.drop_index(index, table_name="activity_events")
    op.drop_table("activity_events")
    with op.batch_alter_table("operations") as batch:
        for name, _ in reversed(_CALLER_COLUMNS):
            batch.drop_column(name)

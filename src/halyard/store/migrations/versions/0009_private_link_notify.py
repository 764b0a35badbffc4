"""private link: replicas keep each cluster's enforcement facts; a write of resources tells them on commit

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06
"""

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # One notification per statement (PostgreSQL folds identical ones of a transaction): agents' reports are in
    # resource_reports, so heartbeats never notify. Nothing to do on SQLite (one server per file).
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(
        """
        CREATE OR REPLACE FUNCTION halyard_notify_private_link() RETURNS trigger AS $$
        BEGIN
            PERFORM pg_notify('halyard_private_link', '');
            RETURN NULL;
        END;
        $$ LANGUAGE plpgsql
        """
    )
    op.execute(
        "CREATE TRIGGER resources_notify_private_link AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON resources "
        "FOR EACH STATEMENT EXECUTE FUNCTION halyard_notify_private_link()"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP TRIGGER IF EXISTS resources_notify_private_link ON resources")
    op.execute("DROP FUNCTION IF EXISTS halyard_notify_private_link()")

"""resource placement and reports: parent keys for child and extension resources, tenant resources, and what
agents and the server report kept apart from what users write

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-05
"""

import json
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

CLUSTER_TYPE = "microsoft.kubernetes/connectedclusters"
# What 0002's heartbeats and certificate issuance wrote into a connected cluster's properties, by reporter.
REPORTED = {
    "dp": (
        "agentVersion",
        "kubernetesVersion",
        "totalNodeCount",
        "totalCoreCount",
        "lastConnectivityTime",
    ),
    "his": ("managedIdentityCertificateExpirationTime",),
}
COMPUTED = ("connectivityStatus",)  # computed when read, never stored from now on
AGENT_PROFILE_REPORTED = ("agentState", "agentErrors")


def upgrade() -> None:
    with op.batch_alter_table("resources", schema=None) as batch_op:
        batch_op.add_column(sa.Column("parent_key", sa.String(length=1024), nullable=True))
        batch_op.alter_column("subscription_id", existing_type=sa.String(length=36), nullable=True)
        batch_op.create_index("ix_resources_parent", ["parent_key", "type_key", "id_key"], unique=False)
    op.create_table(
        "resource_reports",
        sa.Column("id_key", sa.String(length=1024), nullable=False),
        sa.Column("reporter", sa.String(length=32), nullable=False),
        sa.Column("properties", sa.JSON(), nullable=False),
        sa.Column("reported_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id_key", "reporter"),
    )
    _split_reported_properties()
    if op.get_bind().dialect.name == "postgresql":
        _notify_access_changes()


ACCESS_TABLES = ("role_assignments", "role_definitions", "principals")


def _notify_access_changes() -> None:
    """Replicas cache callers' role assignments: tell them, on commit, when what those derive from changes."""
    op.execute(
        """
        CREATE OR REPLACE FUNCTION halyard_notify_access() RETURNS trigger AS $$
        BEGIN
            PERFORM pg_notify('halyard_access', TG_TABLE_NAME);
            RETURN NULL;
        END;
        $$ LANGUAGE plpgsql
        """
    )
    for table in ACCESS_TABLES:
        op.execute(
            f"CREATE TRIGGER {table}_notify_access AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON {table} "
            "FOR EACH STATEMENT EXECUTE FUNCTION halyard_notify_access()"
        )


def _split_reported_properties() -> None:
    """Move what agents and the server wrote into connected clusters' properties into their own report rows."""
    bind = op.get_bind()
    resources = sa.table(
        "resources",
        sa.column("id_key", sa.String),
        sa.column("type_key", sa.String),
        sa.column("properties", sa.JSON),
        sa.column("changed_at", sa.DateTime(timezone=True)),
    )
    reports = sa.table(
        "resource_reports",
        sa.column("id_key", sa.String),
        sa.column("reporter", sa.String),
        sa.column("properties", sa.JSON),
        sa.column("reported_at", sa.DateTime(timezone=True)),
    )
    rows = bind.execute(
        sa.select(resources.c.id_key, resources.c.properties, resources.c.changed_at).where(
            resources.c.type_key == CLUSTER_TYPE
        )
    ).all()
    for id_key, raw, changed_at in rows:
        props: dict[str, Any] = dict(json.loads(raw) if isinstance(raw, str) else raw or {})
        split: dict[str, dict[str, Any]] = {reporter: {} for reporter in REPORTED}
        for reporter, keys in REPORTED.items():
            for key in keys:
                if key in props:
                    split[reporter][key] = props.pop(key)
        for key in COMPUTED:
            props.pop(key, None)
        profile = dict(props.get("arcAgentProfile") or {})
        agent_profile = {key: profile.pop(key) for key in AGENT_PROFILE_REPORTED if key in profile}
        if agent_profile:
            split["dp"]["arcAgentProfile"] = agent_profile
        if "arcAgentProfile" in props:
            props["arcAgentProfile"] = profile
        bind.execute(resources.update().where(resources.c.id_key == id_key).values(properties=props))
        for reporter, values in split.items():
            if values:
                bind.execute(
                    reports.insert().values(id_key=id_key, reporter=reporter, properties=values, reported_at=changed_at)
                )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table in ACCESS_TABLES:
            op.execute(f"DROP TRIGGER IF EXISTS {table}_notify_access ON {table}")
        op.execute("DROP FUNCTION IF EXISTS halyard_notify_access()")
    op.drop_table("resource_reports")
    with op.batch_alter_table("resources", schema=None) as batch_op:
        batch_op.drop_index("ix_resources_parent")
        batch_op.alter_column("subscription_id", existing_type=sa.String(length=36), nullable=False)
        batch_op.drop_column("parent_key")

"""private link: the certificates issued to endpoint forwarders, revoked with their endpoint

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Certificates issued before this revision are not on record: the ingress refuses them (issue them again).
    op.create_table(
        "endpoint_certificates",
        sa.Column("serial", sa.String(length=64), nullable=False),
        sa.Column("endpoint_key", sa.String(length=1024), nullable=False),
        sa.Column("issued_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("not_after", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("serial"),
    )
    op.create_index("ix_endpoint_certificates_endpoint_key", "endpoint_certificates", ["endpoint_key"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_endpoint_certificates_endpoint_key", table_name="endpoint_certificates")
    op.drop_table("endpoint_certificates")

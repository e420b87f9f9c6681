"""crm sync tables and columns

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "crm_records",
        sa.Column("client_id", sa.String(length=40), nullable=False),
        sa.Column("object", sa.String(length=40), nullable=False),
        sa.Column("crm_id", sa.String(length=255), nullable=False),
        sa.Column("name", sa.Text(), nullable=True),
        sa.Column("domain", sa.String(length=255), nullable=True),
        sa.Column("email", sa.String(length=255), nullable=True),
        sa.Column("linkedin", sa.String(length=255), nullable=True),
        sa.Column("account_crm_id", sa.String(length=255), nullable=True),
        sa.Column("external_id", sa.String(length=255), nullable=True),
        sa.Column("field_values", sa.JSON(), nullable=True),
        sa.Column("crm_last_modified", sa.DateTime(timezone=True), nullable=True),
        sa.Column("source", sa.String(length=20), nullable=False),
        sa.Column("seen_run", sa.String(length=255), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("client_id", "object", "crm_id", name="pk_crm_records"),
    )
    with op.batch_alter_table("crm_records", schema=None) as batch_op:
        batch_op.create_index("ix_crm_records_domain", ["client_id", "object", "domain"], unique=False)
        batch_op.create_index("ix_crm_records_email", ["client_id", "object", "email"], unique=False)

    op.create_table(
        "crm_sync",
        sa.Column("client_id", sa.String(length=40), nullable=False),
        sa.Column("object", sa.String(length=40), nullable=False),
        sa.Column("record_key", sa.String(length=255), nullable=False),
        sa.Column("crm_id", sa.String(length=255), nullable=True),
        sa.Column("pushed", sa.JSON(), nullable=True),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("failed", sa.Boolean(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("run_id", sa.String(length=255), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("client_id", "object", "record_key", name="pk_crm_sync"),
    )

    with op.batch_alter_table("push_log", schema=None) as batch_op:
        batch_op.add_column(sa.Column("phase", sa.String(length=20), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("push_log", schema=None) as batch_op:
        batch_op.drop_column("phase")
    op.drop_table("crm_sync")
    with op.batch_alter_table("crm_records", schema=None) as batch_op:
        batch_op.drop_index("ix_crm_records_email")
        batch_op.drop_index("ix_crm_records_domain")
    op.drop_table("crm_records")

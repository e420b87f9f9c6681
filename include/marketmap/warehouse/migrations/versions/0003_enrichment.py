"""enrichment tables and columns

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("credit_ledger", schema=None) as batch_op:
        batch_op.add_column(sa.Column("detail", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("settled_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index(
            "ix_credit_ledger_lookup", ["client_id", "provider", "lookup_key"], unique=False
        )

    with op.batch_alter_table("contacts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("source", sa.String(length=80), nullable=True))
        batch_op.add_column(sa.Column("needs_research", sa.Boolean(), nullable=True))

    op.create_table(
        "account_field_sources",
        sa.Column("client_id", sa.String(length=40), nullable=False),
        sa.Column("account_key", sa.String(length=255), nullable=False),
        sa.Column("field", sa.String(length=80), nullable=False),
        sa.Column("provider", sa.String(length=80), nullable=False),
        sa.Column("value", sa.JSON(), nullable=True),
        sa.Column("filled_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("run_id", sa.String(length=255), nullable=True),
        sa.PrimaryKeyConstraint("client_id", "account_key", "field", name="pk_account_field_sources"),
    )
    op.create_table(
        "clay_rows",
        sa.Column("client_id", sa.String(length=40), nullable=False),
        sa.Column("batch_id", sa.String(length=80), nullable=False),
        sa.Column("row_id", sa.String(length=80), nullable=False),
        sa.Column("provider", sa.String(length=80), nullable=False),
        sa.Column("account_key", sa.String(length=255), nullable=True),
        sa.Column("lookup_key", sa.String(length=255), nullable=False),
        sa.Column("entry_id", sa.Integer(), nullable=True),
        sa.Column("run_id", sa.String(length=255), nullable=True),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("data", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("client_id", "batch_id", "row_id", name="pk_clay_rows"),
    )
    with op.batch_alter_table("clay_rows", schema=None) as batch_op:
        batch_op.create_index("ix_clay_rows_lookup", ["client_id", "provider", "lookup_key"], unique=False)

    op.create_table(
        "enrichment_stats",
        sa.Column("client_id", sa.String(length=40), nullable=False),
        sa.Column("run_id", sa.String(length=255), nullable=False),
        sa.Column("provider", sa.String(length=80), nullable=False),
        sa.Column("field", sa.String(length=80), nullable=False),
        sa.Column("lookups", sa.Integer(), nullable=False),
        sa.Column("hits", sa.Integer(), nullable=False),
        sa.Column("requested", sa.Integer(), nullable=False),
        sa.Column("filled", sa.Integer(), nullable=False),
        sa.Column("credits", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("client_id", "run_id", "provider", "field", name="pk_enrichment_stats"),
    )


def downgrade() -> None:
    op.drop_table("enrichment_stats")
    with op.batch_alter_table("clay_rows", schema=None) as batch_op:
        batch_op.drop_index("ix_clay_rows_lookup")
    op.drop_table("clay_rows")
    op.drop_table("account_field_sources")
    with op.batch_alter_table("contacts", schema=None) as batch_op:
        batch_op.drop_column("needs_research")
        batch_op.drop_column("source")
    with op.batch_alter_table("credit_ledger", schema=None) as batch_op:
        batch_op.drop_index("ix_credit_ledger_lookup")
        batch_op.drop_column("settled_at")
        batch_op.drop_column("detail")

"""ingest warnings: kept rows whose optional field was nulled or flagged

Revision ID: 0005
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ingest_warnings",
        sa.Column("client_id", sa.String(length=40), nullable=False),
        sa.Column("run_id", sa.String(length=255), nullable=False),
        sa.Column("file", sa.Text(), nullable=False),
        sa.Column("row_number", sa.Integer(), nullable=False),
        sa.Column("field", sa.Text(), nullable=True),
        sa.Column("value", sa.Text(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("step", sa.String(length=40), nullable=True),
    )
    with op.batch_alter_table("ingest_warnings", schema=None) as batch_op:
        batch_op.create_index("ix_ingest_warnings_run", ["client_id", "run_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("ingest_warnings", schema=None) as batch_op:
        batch_op.drop_index("ix_ingest_warnings_run")
    op.drop_table("ingest_warnings")

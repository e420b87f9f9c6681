"""proposals awaiting approval (territory rebalance, stale-account round robin)

Revision ID: 0007
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "proposals",
        sa.Column("client_id", sa.String(length=40), nullable=False),
        sa.Column("proposal_id", sa.String(length=80), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("run_id", sa.String(length=255), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("approved_run_id", sa.String(length=255), nullable=True),
        sa.Column("approved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("summary", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("client_id", "proposal_id", name="pk_proposals"),
    )
    op.create_table(
        "proposal_moves",
        sa.Column("client_id", sa.String(length=40), nullable=False),
        sa.Column("proposal_id", sa.String(length=80), nullable=False),
        sa.Column("account_key", sa.String(length=255), nullable=False),
        sa.Column("from_rep", sa.String(length=255), nullable=True),
        sa.Column("to_rep", sa.String(length=255), nullable=False),
        sa.Column("value", sa.Float(), nullable=True),
        sa.Column("tier", sa.String(length=10), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("outcome", sa.String(length=20), nullable=True),
        sa.Column("applied_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("pushed_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("client_id", "proposal_id", "account_key", name="pk_proposal_moves"),
    )


def downgrade() -> None:
    op.drop_table("proposal_moves")
    op.drop_table("proposals")

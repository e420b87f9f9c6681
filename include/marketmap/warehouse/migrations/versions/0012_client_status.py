"""client_status: one small row per client for the portfolio pages (tier counts of the current scores)

Revision ID: 0012_client_status
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0012_client_status"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "client_status",
        sa.Column("client_id", sa.String(40), nullable=False),
        sa.Column("rubric_version", sa.String(255), nullable=False),
        sa.Column("product", sa.String(255), nullable=False),
        sa.Column("tiers", sa.JSON(), nullable=False),
        sa.Column("run_id", sa.String(255)),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("client_id", name="pk_client_status"),
    )


def downgrade() -> None:
    op.drop_table("client_status")

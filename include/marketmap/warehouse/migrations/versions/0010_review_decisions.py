"""review_queue: who decided a pair and when (the review queue is worked by people)

Revision ID: 0010_review_decisions
Revises: 0012_client_status
"""

import sqlalchemy as sa
from alembic import op

revision = "0010_review_decisions"
down_revision = "0012_client_status"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("review_queue", sa.Column("decided_by", sa.Text(), nullable=True))
    op.add_column("review_queue", sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("review_queue") as batch:
        batch.drop_column("decided_at")
        batch.drop_column("decided_by")

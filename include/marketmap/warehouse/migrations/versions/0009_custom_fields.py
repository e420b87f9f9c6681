"""custom fields (one JSON text column per account, contact and opportunity) and band ranges

Text, not JSON: the value is written canonically (sorted keys, compact), so the load's
"skip unchanged rows" comparison (IS DISTINCT FROM) works on PostgreSQL too, where the json
type has no equality operator.

Revision ID: 0009_custom_fields
Revises: 0010_review_decisions (main's head when this branch last merged main; the brief's 0008 was
the head when the work started — chained after main's head so there is one head)
"""

import sqlalchemy as sa
from alembic import op

revision = "0009_custom_fields"
down_revision = "0010_review_decisions"
branch_labels = None
depends_on = None

RANGES = ("employees_low", "employees_high", "annual_revenue_low", "annual_revenue_high")


def upgrade() -> None:
    with op.batch_alter_table("accounts", schema=None) as batch_op:
        for name in RANGES:
            batch_op.add_column(sa.Column(name, sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("custom", sa.Text(), nullable=True))
    for table in ("contacts", "opportunities"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column("custom", sa.Text(), nullable=True))


def downgrade() -> None:
    for table in ("opportunities", "contacts"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_column("custom")
    with op.batch_alter_table("accounts", schema=None) as batch_op:
        batch_op.drop_column("custom")
        for name in reversed(RANGES):
            batch_op.drop_column(name)

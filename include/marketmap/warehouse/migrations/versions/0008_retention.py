"""ids that grow are 64-bit (push_log, alert_events, credit_ledger, territory_assignments)

SQLite keeps INTEGER: its rowid autoincrement needs that exact type and is 64-bit already.

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

COLUMNS = [
    ("push_log", "entry_id"),
    ("alert_events", "event_id"),
    ("credit_ledger", "entry_id"),
    ("territory_assignments", "entry_id"),
    ("clay_rows", "entry_id"),  # refers to credit_ledger.entry_id
]


def _retype(old, new) -> None:
    if op.get_bind().dialect.name == "sqlite":
        return
    for table, column in COLUMNS:
        op.alter_column(table, column, existing_type=old, type_=new)


def upgrade() -> None:
    _retype(sa.Integer(), sa.BigInteger())


def downgrade() -> None:
    _retype(sa.BigInteger(), sa.Integer())

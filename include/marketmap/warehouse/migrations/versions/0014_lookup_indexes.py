"""The push planner at scale: per-chunk look-up indexes and the incremental push's state

Indexes: account_crm_ids by account (the CRM ids folded into an account), crm_records by external
id and by LinkedIn URL (domain and e-mail had theirs): each chunk of 20,000 records asks for its
own values only. ``push_state`` and ``account_scores.valued_at``: a push plans only the records
whose inputs changed since the last complete push (a valuation's write is one of those inputs).

Revision ID: 0014_lookup_indexes
Revises: 0013_staged_frames
"""

import sqlalchemy as sa
from alembic import op

revision = "0014_lookup_indexes"
down_revision = "0013_staged_frames"
branch_labels = None
depends_on = None

INDEXES = (
    ("ix_account_crm_ids_account", "account_crm_ids", ["client_id", "account_key"]),
    ("ix_crm_records_external_id", "crm_records", ["client_id", "object", "external_id"]),
    ("ix_crm_records_linkedin", "crm_records", ["client_id", "object", "linkedin"]),
)


def upgrade() -> None:
    for name, table, cols in INDEXES:
        op.create_index(name, table, cols)
    op.add_column("account_scores", sa.Column("valued_at", sa.DateTime(timezone=True)))
    op.create_table(
        "push_state",
        sa.Column("client_id", sa.String(40), nullable=False),
        sa.Column("object", sa.String(40), nullable=False),
        sa.Column("config_hash", sa.String(40), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("run_id", sa.String(255)),
        sa.PrimaryKeyConstraint("client_id", "object", name="pk_push_state"),
    )


def downgrade() -> None:
    op.drop_table("push_state")
    op.drop_column("account_scores", "valued_at")
    for name, table, _ in INDEXES:
        op.drop_index(name, table_name=table)

"""Indexes for the push planner's per-chunk look-ups (crm.plan plans 20,000 records at a time)

account_crm_ids by account (the CRM ids folded into an account), crm_records by external id and
by LinkedIn URL (domain and e-mail had theirs): each chunk asks for its own values only.

Revision ID: 0014_lookup_indexes
Revises: 0013_staged_frames
"""

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


def downgrade() -> None:
    for name, table, _ in INDEXES:
        op.drop_index(name, table_name=table)

"""A monthly re-read of a CSV export processes only the records that changed

``account_crm_ids.record_hash``: a 64-bit hash of the account record as the export gave it (NULL:
re-read it next time: a website that gave a warning, a record loaded before hashes, or one gone
from the export); ``record_domain``: the record's company domain before a same-domain review split
it off. Together they tell the next re-read which records, and which domains' other records, to
deduplicate again. ``contacts.record_hash`` and ``opportunities.record_hash``: the same for their
records, so unchanged ones are not staged and loaded again.

Revision ID: 0015_record_hashes
Revises: 0014_lookup_indexes
"""

import sqlalchemy as sa
from alembic import op

revision = "0015_record_hashes"
down_revision = "0014_lookup_indexes"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("account_crm_ids") as batch:
        batch.add_column(sa.Column("record_hash", sa.BigInteger()))
        batch.add_column(sa.Column("record_domain", sa.String(255)))
    for table in ("contacts", "opportunities"):
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("record_hash", sa.BigInteger()))


def downgrade() -> None:
    for table in ("contacts", "opportunities"):
        with op.batch_alter_table(table) as batch:
            batch.drop_column("record_hash")
    with op.batch_alter_table("account_crm_ids") as batch:
        batch.drop_column("record_domain")
        batch.drop_column("record_hash")

"""Alembic environment for the Market Map warehouse (run through marketmap.warehouse.migrate)."""

from alembic import context

from marketmap.warehouse import VERSION_TABLE
from marketmap.warehouse.schema import metadata

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=metadata,
    version_table=VERSION_TABLE,
    render_as_batch=connection.dialect.name == "sqlite",  # SQLite can only ALTER through table copies
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()

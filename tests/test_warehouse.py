"""Warehouse: migrations build exactly the schema the code uses, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect, select

from marketmap.warehouse import VERSION_TABLE, migrate, safe_url, upsert
from marketmap.warehouse import schema as t


def schema_diff(engine) -> list:
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": False, "version_table": VERSION_TABLE})
        diff = compare_metadata(ctx, t.metadata)
    # indexes are compared by name elsewhere; tables and columns must match exactly
    return [d for d in diff if d[0] in ("add_table", "remove_table", "add_column", "remove_column")]


def test_migrations_match_schema_on_sqlite(tmp_path):
    engine = create_engine(f"sqlite:///{tmp_path / 'w.db'}")
    migrate(engine)
    assert schema_diff(engine) == []
    assert VERSION_TABLE in inspect(engine).get_table_names()
    migrate(engine)  # running it again is a no-op


@pytest.mark.postgres
def test_migrations_match_schema_on_postgres(pg_database):
    engine = create_engine(pg_database)
    migrate(engine)
    assert schema_diff(engine) == []
    engine.dispose()


def test_every_table_is_scoped_by_client():
    for table in t.metadata.sorted_tables:
        assert "client_id" in table.c, table.name


def test_upsert_updates_and_keeps_values_when_asked(tmp_path):
    engine = create_engine(f"sqlite:///{tmp_path / 'w.db'}")
    migrate(engine)
    row = {"client_id": "c", "account_key": "acme.com", "name": "Acme", "industry": "Software"}
    with engine.begin() as conn:
        upsert(conn, t.accounts, [row])
        upsert(conn, t.accounts, [{**row, "name": "Acme Inc", "industry": None}], keep_when_null=["industry"])
        got = conn.execute(select(t.accounts.c.name, t.accounts.c.industry)).one()
    assert tuple(got) == ("Acme Inc", "Software")


def _unchanged_rows_are_not_rewritten(engine):
    import datetime as dt

    migrate(engine)
    t0, t1 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC), dt.datetime(2026, 2, 1, tzinfo=dt.UTC)
    rows = [{"client_id": "c", "account_key": f"a{i}.com", "name": f"A{i}", "industry": "Software", "updated_at": t0}
            for i in range(3)]  # fmt: skip
    with engine.begin() as conn:
        upsert(conn, t.accounts, rows)
        again = [{**r, "updated_at": t1} for r in rows]
        again[1]["name"] = "A1 Ltd"  # the one real change
        again[2]["industry"] = None  # blank in the export: kept, so no change either
        upsert(conn, t.accounts, again, keep_when_null=["industry"], skip_unchanged=["updated_at"])
        got = {r.account_key: (r.name, r.industry, r.updated_at.replace(tzinfo=dt.UTC))
               for r in conn.execute(select(t.accounts).where(t.accounts.c.client_id == "c"))}  # fmt: skip
    assert got == {"a0.com": ("A0", "Software", t0), "a1.com": ("A1 Ltd", "Software", t1),
                   "a2.com": ("A2", "Software", t0)}  # fmt: skip


def test_upsert_skips_unchanged_rows_on_sqlite(tmp_path):
    _unchanged_rows_are_not_rewritten(create_engine(f"sqlite:///{tmp_path / 'w.db'}"))


def test_upsert_skips_unchanged_rows_on_postgres(pg_database):
    engine = create_engine(pg_database)
    try:
        _unchanged_rows_are_not_rewritten(engine)
    finally:
        engine.dispose()


def test_safe_url_hides_password():
    assert safe_url("postgresql+psycopg://mm:s3cret@db:5432/w") == "postgresql+psycopg://mm:***@db:5432/w"

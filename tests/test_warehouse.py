"""Warehouse: migrations build exactly the schema the code uses, on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import functools

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, func, inspect, select

from marketmap.warehouse import VERSION_TABLE, migrate, safe_url, upsert
from marketmap.warehouse import schema as t
from marketmap.warehouse import upsert as _upsert


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


def _unchanged_rows_are_not_rewritten(engine, copy=None):
    import datetime as dt

    migrate(engine)
    upsert = functools.partial(_upsert, copy=copy)
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


@pytest.mark.parametrize("copy", [False, True], ids=["executemany", "copy"])
def test_upsert_skips_unchanged_rows_on_postgres(pg_database, copy):
    engine = create_engine(pg_database)
    try:
        _unchanged_rows_are_not_rewritten(engine, copy=copy)
    finally:
        engine.dispose()


def _score_rows(n: int, run: str) -> list[dict]:
    at = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
    return [
        {"client_id": "copy", "account_key": f"k{i:06d}", "product": "core", "rubric_version": "v1#x",
         "score": i % 97 + 0.5, "tier": ("T1", "T2", "T3", "OUT")[i % 4], "excluded": i % 4 == 3,
         "points": {"size": i % 10, "industry": [1, "a\tb"]}, "explanation": f'T{i % 3}: "q" \\ tab\there\nline',
         "valuation": None if i % 5 == 0 else float(i), "run_id": run, "scored_at": at}
        for i in range(n)
    ]  # fmt: skip


@pytest.mark.postgres
def test_copy_upsert_on_postgres_writes_what_executemany_writes(pg_database):
    """Large batches go through COPY into a staging table and one INSERT … SELECT … ON CONFLICT;
    the stored rows are exactly those of the executemany path (JSON, NULLs, escapes, booleans),
    repeated keys keep the last row, and unchanged rows are not rewritten."""
    from sqlalchemy import event

    engine = create_engine(pg_database)
    migrate(engine)
    statements: list[str] = []
    event.listen(engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
    ac = t.account_scores.c
    n = 3000
    try:
        for client, copy in (("copy", True), ("many", False)):
            rows = [{**r, "client_id": client} for r in _score_rows(n, "r1")]
            rows.append({**rows[0], "score": 1234.0})  # a repeated key: the last row wins
            with engine.begin() as conn:
                conn.execute(t.account_scores.delete().where(ac.client_id == client))
                assert upsert(conn, t.account_scores, rows, copy=copy) == n + 1
        assert any(
            "INSERT INTO account_scores" in s and "SELECT" in s and "ON CONFLICT" in s for s in statements
        )

        def stored(client):
            with engine.connect() as conn:
                q = t.account_scores.select().where(ac.client_id == client).order_by(ac.account_key)
                return [{k: v for k, v in r._mapping.items() if k != "client_id"} for r in conn.execute(q)]

        assert stored("copy") == stored("many")
        assert stored("copy")[0]["score"] == 1234.0 and stored("copy")[0]["points"] == {
            "size": 0,
            "industry": [1, "a\tb"],
        }

        # again with 1% changed: only those rows get the new run id (JSON compared as text)
        again = _score_rows(n, "r2")
        for r in again[::100]:
            r["points"] = {"size": -1}
        with engine.begin() as conn:
            upsert(conn, t.account_scores, again, skip_unchanged=("run_id", "scored_at"), copy=True)
            runs = dict(
                conn.execute(
                    select(ac.run_id, func.count()).where(ac.client_id == "copy").group_by(ac.run_id)
                ).all()
            )
        assert runs == {"r1": n - n // 100, "r2": n // 100}
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_a_frame_upserted_by_copy_is_stored_as_its_rows_upserted_one_by_one(pg_database):
    """upsert_frame (the scoring steps' write) stores what upsert of the same rows as dicts stores:
    NaN as NULL, JSON, escapes, booleans, time zones; a repeated key keeps the last row; a stored
    row is updated."""
    import pandas as pd

    from marketmap.warehouse import upsert_frame

    engine = create_engine(pg_database)
    migrate(engine)
    ac = t.account_scores.c
    n = 1500
    try:
        for client in ("frame", "dicts"):
            rows = [{**r, "client_id": client} for r in _score_rows(n, "r1")]
            rows.append({**rows[0], "score": 1234.0})  # a repeated key: the last row wins
            later = [{**r, "tier": "T1", "valuation": None, "run_id": "r2"} for r in rows[:1200]]
            with engine.begin() as conn:
                conn.execute(t.account_scores.delete().where(ac.client_id == client))
                if client == "frame":
                    assert upsert_frame(conn, t.account_scores, pd.DataFrame(rows))
                    assert upsert_frame(conn, t.account_scores, pd.DataFrame(later))
                else:
                    upsert(conn, t.account_scores, rows, copy=False)
                    upsert(conn, t.account_scores, later, copy=False)

        def stored(client):
            with engine.connect() as conn:
                q = t.account_scores.select().where(ac.client_id == client).order_by(ac.account_key)
                return [{k: v for k, v in r._mapping.items() if k != "client_id"} for r in conn.execute(q)]

        frame, dicts = stored("frame"), stored("dicts")
        assert len(frame) == n and frame == dicts
        assert frame[1301]["valuation"] == 1301.0 and frame[5]["valuation"] is None and frame[1]["tier"] == "T1"
        with engine.begin() as conn:  # too few rows for COPY: the caller upserts them
            assert not upsert_frame(conn, t.account_scores, pd.DataFrame(rows[:10]))
    finally:
        engine.dispose()


def test_safe_url_hides_password():
    assert safe_url("postgresql+psycopg://mm:s3cret@db:5432/w") == "postgresql+psycopg://mm:***@db:5432/w"


@pytest.mark.postgres
def test_a_step_analyzes_only_tables_it_changed_beyond_autovacuums_threshold(pg_database):
    """ANALYZE after a step: a client's first rows (a build, a new client on a shared table) are
    analyzed; a re-load of 2% of a client's rows the planner already counts is not (its statistics
    still hold). Judged per client from the planner's own estimate, and seen in pg_stat."""
    from marketmap.warehouse.queries import analyze_changed

    engine = create_engine(pg_database)
    migrate(engine)

    def analyzed() -> int:
        with engine.connect() as conn:
            return conn.exec_driver_sql(
                "SELECT analyze_count FROM pg_stat_user_tables WHERE relname = 'account_scores'"
            ).scalar_one()

    def rows(client: str, n: int) -> list[dict]:
        return [{**r, "client_id": client} for r in _score_rows(n, "r1")]

    try:
        with engine.begin() as conn:
            upsert(conn, t.account_scores, rows("analyze_a", 2000))
        before = analyzed()
        assert analyze_changed(engine, "analyze_a", {t.account_scores: 2000}) == ["account_scores"]
        assert analyzed() == before + 1
        with engine.begin() as conn:  # a month: 40 of the client's 2,000 rows change
            upsert(conn, t.account_scores, rows("analyze_a", 40))
        assert analyze_changed(engine, "analyze_a", {t.account_scores: 40}) == []
        assert analyzed() == before + 1
        with engine.begin() as conn:  # a new client's 300 rows: the statistics know none of them
            upsert(conn, t.account_scores, rows("analyze_b", 300))
        assert analyze_changed(engine, "analyze_b", {t.account_scores: 300}) == ["account_scores"]
        assert analyzed() == before + 2
        assert analyze_changed(engine, "analyze_b", {t.account_scores: 0}) == []
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_json_written_by_executemany_then_copy_is_the_same_value(pg_database):
    """A JSON value bound by the driver (``json.dumps``: spaces, ASCII escapes) and the same value
    COPY writes (orjson: compact, UTF-8) are one value: an upsert that skips unchanged rows leaves
    the row alone, and a real change in the JSON is still written."""
    engine = create_engine(pg_database)
    migrate(engine)
    first = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
    rows = [{**r, "client_id": "json_spelling", "points": {"city": "Zürich", "size": [i, "a\tb"]}, "scored_at": first}
            for i, r in enumerate(_score_rows(COPY_ROWS, "r1"))]  # fmt: skip
    later = dt.datetime(2026, 4, 1, tzinfo=dt.UTC)
    again = [{**r, "run_id": "r2", "scored_at": later} for r in rows]
    again[7]["points"] = {"city": "Zürich", "size": [7, "changed"]}
    s = t.account_scores.c
    try:
        with engine.begin() as conn:
            upsert(conn, t.account_scores, rows, copy=False)
            upsert(conn, t.account_scores, again, copy=True, skip_unchanged=("run_id", "scored_at"))
            got = dict(conn.execute(select(s.account_key, s.scored_at).where(s.client_id == "json_spelling")).all())
        assert {k for k, at in got.items() if at == later} == {again[7]["account_key"]}
    finally:
        engine.dispose()


COPY_ROWS = 1200  # above COPY_MIN_ROWS: the second upsert goes through COPY

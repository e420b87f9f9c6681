"""Reads by COPY on PostgreSQL give exactly the frames ``pd.read_sql`` gives: every warehouse
table a client's build fills (text, numbers, booleans with blanks, dates, times, JSON, NULLs
and empty strings), whole and in chunks, and for no rows at all."""

from __future__ import annotations

import pandas as pd
import pytest
from demo_support import build_demo
from sqlalchemy import LargeBinary, select

from marketmap.warehouse import copyread
from marketmap.warehouse import schema as t
from marketmap.warehouse.queries import iter_frames, read_frame

pytestmark = pytest.mark.postgres


def _demo_built(mm_home, client_id: str):
    """The demo client built by the product's own steps (contacts scored), pushed as CSV import files."""
    from marketmap import crm

    cfg, eng = build_demo(mm_home, client_id, n_accounts=500, contacts=True)
    crm.push_all(cfg, eng, "b1", crm.adapter_for(cfg), canary=False)
    return eng


def _queries(client_id: str):
    for table in t.metadata.sorted_tables:
        if "client_id" not in table.c or any(isinstance(c.type, LargeBinary) for c in table.columns):
            continue
        yield table, select(*table.columns).where(table.c.client_id == client_id).order_by(*table.primary_key)


def test_copy_reads_are_read_sql_frames(mm_home, pg_database, monkeypatch):
    monkeypatch.setenv("MARKETMAP_WAREHOUSE_URL", pg_database)
    eng = _demo_built(mm_home, "copyread")
    filled = 0
    for table, query in _queries("copyread"):
        plan = copyread.plan(eng, query)
        assert plan is not None, table.name
        with eng.connect() as conn:
            want = pd.read_sql(query, conn)
        got = read_frame(eng, query)
        pd.testing.assert_frame_equal(got, want, obj=table.name)
        if len(want) > 40:  # in chunks too: frame by frame what a streamed read_sql gives
            parts = list(iter_frames(eng, query, chunk=17))
            with eng.connect() as conn:
                streamed = conn.execution_options(stream_results=True, yield_per=17)
                wanted = list(pd.read_sql(query, streamed, chunksize=17))
            assert len(parts) == len(wanted) == -(-len(want) // 17)
            for n, (part, chunk) in enumerate(zip(parts, wanted, strict=True)):
                pd.testing.assert_frame_equal(part, chunk, obj=f"{table.name} chunk {n}")
        filled += len(want) > 0
    assert filled >= 15  # accounts, contacts, deals, scores, valuations, CRM sync, push log …

    # no rows: read_sql's untyped empty frame; chunked: no frames
    empty = select(t.accounts.c.account_key, t.accounts.c.employees).where(t.accounts.c.client_id == "nobody")
    with eng.connect() as conn:
        pd.testing.assert_frame_equal(read_frame(eng, empty), pd.read_sql(empty, conn))
    assert list(iter_frames(eng, empty, chunk=5)) == []

    # values inlined into COPY are quoted as SQL literals: a key with a quote is just a key
    a = t.accounts.c
    keys = select(a.account_key).where(a.client_id == "copyread").order_by(a.account_key).limit(3)
    with eng.connect() as conn:
        wanted = [k for (k,) in conn.execute(keys)] + ["o'brien.com'); DROP TABLE accounts; --"]
    query = select(a.account_key, a.name).where(a.client_id == "copyread", a.account_key.in_(wanted))
    assert copyread.plan(eng, query) is not None
    got = read_frame(eng, query.order_by(a.account_key))
    assert got["account_key"].tolist() == wanted[:3]
    assert read_frame(eng, select(a.account_key).where(a.client_id == "copyread")).shape[0] > 300

    # a reader that stops after its first chunk leaves no connection stuck in the middle of a COPY
    frames = iter_frames(eng, select(a.account_key, a.name).where(a.client_id == "copyread"), chunk=10)
    assert len(next(frames)) == 10
    frames.close()
    for _ in range(eng.pool.size() + 1):
        assert len(read_frame(eng, query)) == 3

    # a server whose DateStyle writes dates the German way: the COPY still writes ISO dates
    dated = (
        select(a.account_key, a.crm_created, a.updated_at)
        .where(a.client_id == "copyread")
        .order_by(a.account_key)
    )
    want = read_frame(eng, dated)
    with eng.connect() as conn:
        conn.exec_driver_sql("SET datestyle = 'German, DMY'")
        got = next(copyread.frames(conn, copyread.plan(eng, dated)))
        conn.invalidate()  # not back to the pool with that session setting
    pd.testing.assert_frame_equal(got, want)
    assert want["crm_created"].notna().sum() > 300


def test_columns_keep_64_bit_hashes_and_blanks(mm_home, pg_database, monkeypatch):
    """``copyread.columns`` (the load's and the re-read's key look-ups) gives each row's values as the
    warehouse holds them: a 64-bit record hash exact (not rounded through a float), a NULL hash as
    NA, text with quotes and commas as text, NULL text as None."""
    from marketmap.warehouse import get_engine, migrate, upsert

    monkeypatch.setenv("MARKETMAP_WAREHOUSE_URL", pg_database)
    eng = get_engine()
    migrate(eng)
    rows = [
        {"client_id": "cols", "crm_id": "a", "account_key": 'x", y', "is_survivor": True,
         "record_hash": 2**63 - 1, "record_domain": None},
        {"client_id": "cols", "crm_id": "b", "account_key": "id:b", "is_survivor": False,
         "record_hash": None, "record_domain": "b.com"},
        {"client_id": "cols", "crm_id": "c", "account_key": "c.com", "is_survivor": True,
         "record_hash": -(2**63) + 7, "record_domain": "c.com"},
    ]  # fmt: skip
    with eng.begin() as conn:
        upsert(conn, t.account_crm_ids, rows)
    c = t.account_crm_ids.c
    query = select(c.crm_id, c.account_key, c.is_survivor, c.record_hash, c.record_domain).where(
        c.client_id == "cols"
    ).order_by(c.crm_id)
    with eng.connect() as conn:
        got = copyread.columns(conn, query)
    assert list(got["crm_id"]) == ["a", "b", "c"]
    assert list(got["account_key"]) == ['x", y', "id:b", "c.com"]
    assert list(got["is_survivor"]) == [True, False, True]
    assert str(got["record_hash"].dtype) == "Int64"
    assert got["record_hash"][0] == 2**63 - 1 and got["record_hash"][2] == -(2**63) + 7
    assert got["record_hash"].isna().tolist() == [False, True, False]
    assert list(got["record_domain"]) == [None, "b.com", "c.com"]

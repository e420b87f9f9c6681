"""Reading CRM exports: the real Salesforce sample, HubSpot names, and every kind of bad file."""

from __future__ import annotations

import codecs
import csv
import shutil
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import func, select

from marketmap.config import load_client
from marketmap.ingest import pipeline
from marketmap.ingest.reader import IngestError, read_export
from marketmap.warehouse import get_engine
from marketmap.warehouse import schema as t

SAMPLE = Path(__file__).parent / "fixtures" / "salesforce_export"
HEADER = "Id,Name,Website,NumberOfEmployees,AnnualRevenue,Industry,CreatedDate\n"


def write(tmp_path: Path, text: str | bytes, name: str = "Account.csv") -> Path:
    path = tmp_path / name
    if isinstance(text, str):
        path.write_text(text, encoding="utf-8")
    else:
        path.write_bytes(text)
    return path


def test_real_salesforce_export_with_bom():
    assert (SAMPLE / "Account.csv").read_bytes().startswith(b"\xef\xbb\xbf")
    res = read_export(SAMPLE / "Account.csv", "accounts", "salesforce")
    assert res.rows_read == 22 and len(res.frame) == 22 and res.rejected == []
    row = res.frame.set_index("crm_id").loc["001Ec00000GGw3hIAD"]
    assert row["name"] == "Walker Henson and Compton"
    assert row["website"] == "www.WalkerHensonandCompton.com"
    assert row["employees"] == 577 and row["annual_revenue"] == 6759560
    assert row["crm_created"] == pd.Timestamp("2024-01-22T14:49:34Z")

    opps = read_export(SAMPLE / "Opportunity.csv", "opportunities", "salesforce").frame
    assert len(opps) == 50
    # IsWon is "1" or blank in this export; blank is unknown here and decided from the stage at load
    assert opps["is_won"].eq(True).sum() == 12


def test_hubspot_property_names(tmp_path):
    path = write(
        tmp_path,
        "hs_object_id,name,domain,numberofemployees,annualrevenue,industry,hs_lastmodifieddate\n"
        "101,Acme,acme.com,120,5000000,COMPUTER_SOFTWARE,2026-10-01T10:00:00Z\n",
        "companies.csv",
    )
    res = read_export(path, "accounts", "hubspot")
    [row] = res.frame.to_dict("records")
    assert (row["crm_id"], row["website"], row["employees"]) == ("101", "acme.com", 120)


def test_row_level_problems_reject_rows_with_number_and_reason(tmp_path):
    path = write(
        tmp_path,
        HEADER
        + "A1,Acme,acme.com,1200,5000000,Software,2024-01-01T00:00:00.000+0000\n"
        + "A2,Beta,beta.io,twelve,,Software,\n"
        + "A3,,gamma.io,10,,,\n"
        + 'A4,Delta,delta.io,"1,500",$2000000,,\n'
        + "A5,Eps,eps.io,12.5,,,\n"
        + "A6,Zeta,zeta.io,10,lots,,not-a-date\n",
    )
    res = read_export(path, "accounts", "salesforce")
    # A bad optional value nulls that field with a warning; only the nameless row is rejected.
    assert res.frame["crm_id"].tolist() == ["A1", "A2", "A4", "A5", "A6"]
    frame = res.frame.set_index("crm_id")
    assert frame.loc["A4", "employees"] == 1500 and frame.loc["A4", "annual_revenue"] == 2_000_000
    assert frame[["employees", "annual_revenue"]].loc[["A2", "A5", "A6"]].isna().sum().sum() == 5
    assert frame.loc["A6", "employees"] == 10
    assert [(r.row_number, r.reason) for r in res.rejected] == [(4, "Name is blank (required)")]
    warned = [(w.row_number, w.field, w.value) for w in res.warnings]
    assert warned == [
        (3, "NumberOfEmployees", "twelve"),
        (6, "NumberOfEmployees", "12.5"),
        (7, "AnnualRevenue", "lots"),
        (7, "CreatedDate", "not-a-date"),
    ]
    assert all("the row is kept" in w.reason for w in res.warnings)
    assert all(r.file == "Account.csv" for r in res.rejected)


def test_missing_required_column(tmp_path):
    path = write(tmp_path, "Id,Website\nA1,acme.com\n")
    with pytest.raises(IngestError, match=r"Account.csv: missing column\(s\) Name \(for name\)"):
        read_export(path, "accounts", "salesforce")


def test_missing_client_mapped_column(tmp_path):
    path = write(tmp_path, HEADER + "A1,Acme,acme.com,1,1,x,\n")
    with pytest.raises(IngestError, match=r"missing column\(s\) Tech_Stack__c \(for tech_stack\)"):
        read_export(path, "accounts", "salesforce", {"tech_stack": "Tech_Stack__c"})


@pytest.mark.parametrize("content", [b"", b"   \n", HEADER.encode()])
def test_empty_file(tmp_path, content):
    path = write(tmp_path, content)
    with pytest.raises(IngestError, match="Account.csv: .*(empty|no account records)"):
        read_export(path, "accounts", "salesforce")


def test_wrong_encoding_names_offset_and_fix(tmp_path):
    path = write(tmp_path, (HEADER + "A1,Café Müller,cafe.de,5,,Retail,\n").encode("cp1252"))
    with pytest.raises(
        IngestError,
        match=r"not valid utf-8-sig text \(byte 0xe9 at offset \d+, line 2\).*crm.export.encoding",
    ):
        read_export(path, "accounts", "salesforce")
    res = read_export(path, "accounts", "salesforce", encoding="cp1252")
    assert res.frame["name"].tolist() == ["Café Müller"]


def test_duplicate_header(tmp_path):
    path = write(tmp_path, "Id,Name,Website,Name\nA1,Acme,acme.com,Acme2\n")
    with pytest.raises(IngestError, match="duplicate column names in the header: Name"):
        read_export(path, "accounts", "salesforce")


def test_ragged_row_is_rejected_alone(tmp_path):
    path = write(tmp_path, "Id,Name\nA1,Acme\nA2,Beta,extra,fields\nA3,Gamma\n")
    res = read_export(path, "accounts", "salesforce")
    assert res.frame["crm_id"].tolist() == ["A1", "A3"]
    assert res.frame["source_row"].tolist() == [2, 4]
    assert [(r.row_number, r.value) for r in res.rejected] == [(3, "A2,Beta,extra,fields")]
    assert "4 fields where the header has 2" in res.rejected[0].reason


def test_mostly_ragged_file_is_refused_whole(tmp_path):
    path = write(tmp_path, "Id,Name\n" + "".join(f"A{i},N{i},x\n" for i in range(20)) + "B1,Fine\n")
    with pytest.raises(IngestError, match="cannot be tokenised reliably: 20 of 21 records"):
        read_export(path, "accounts", "salesforce")


def test_missing_file(tmp_path):
    with pytest.raises(IngestError, match="Account.csv: file not found"):
        read_export(tmp_path / "Account.csv", "accounts", "salesforce")


# --------------------------------------------------------------------------- pipeline


@pytest.fixture()
def sample(fixture_clients, mm_home):
    inbox = mm_home / "inbox" / "sample"
    inbox.mkdir(parents=True)
    for f in SAMPLE.glob("*.csv"):
        shutil.copy(f, inbox / f.name)
    return load_client("sample"), inbox


def counts(engine, client_id="sample") -> dict:
    with engine.connect() as conn:
        return {
            name: conn.execute(
                select(func.count()).select_from(tbl).where(tbl.c.client_id == client_id)
            ).scalar_one()
            for name, tbl in (
                ("accounts", t.accounts),
                ("contacts", t.contacts),
                ("opportunities", t.opportunities),
            )
        }


def run_steps(cfg, run_id, engine):
    pipeline.start_run(engine, cfg.client_id, run_id, "build", None)
    pipeline.extract_exports(cfg, run_id, engine)
    pipeline.normalise_and_dedupe(cfg, run_id, engine)
    return pipeline.load_warehouse(cfg, run_id, engine)


def test_pipeline_loads_and_is_idempotent(sample):
    cfg, _ = sample
    engine = get_engine()
    first = run_steps(cfg, "r1", engine)
    assert first["accounts_new"] == 22 and first["opportunities_won"] == 12
    before = counts(engine)
    second = run_steps(cfg, "r1", engine)  # a retried run
    assert (second["accounts_new"], second["accounts_updated"], second["accounts_unchanged"]) == (0, 0, 22)
    assert counts(engine) == before == {"accounts": 22, "contacts": 102, "opportunities": 50}
    summary = pipeline.summarise(cfg, "r1", engine)
    assert summary["warehouse_totals"]["accounts"] == 22
    assert Path(summary["outputs"], "summary.json").exists()


def test_unreadable_file_stages_nothing(sample):
    cfg, inbox = sample
    engine = get_engine()
    (inbox / "Opportunity.csv").write_text("Id,Name\n", encoding="utf-8")  # AccountId column missing
    with pytest.raises(IngestError, match="Opportunity.csv: missing column"):
        pipeline.extract_exports(cfg, "r1", engine)
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(t.staged_frames)).scalar_one() == 0


def _bump(path, column: str) -> None:
    """Add 1 to every number of ``column`` in an export file (the rest stays byte for byte)."""
    with path.open(encoding="utf-8-sig", newline="") as fh:
        rows = list(csv.reader(fh))
    i = rows[0].index(column)
    for r in rows[1:]:
        if r[i].strip():
            r[i] = str(float(r[i]) + 1)
    with path.open("w", encoding="utf-8-sig", newline="") as fh:
        csv.writer(fh).writerows(rows)


def test_failed_load_leaves_warehouse_as_it_was(sample, monkeypatch):
    cfg, inbox = sample
    engine = get_engine()
    run_steps(cfg, "r1", engine)
    before = counts(engine)
    with engine.connect() as conn:
        names_before = dict(conn.execute(select(t.accounts.c.account_key, t.accounts.c.name)).all())

    # second run: a changed export (every account's headcount, every deal's amount), and the
    # load dies half-way (on the opportunities, after the accounts were written)
    _bump(inbox / "Account.csv", "NumberOfEmployees")
    _bump(inbox / "Opportunity.csv", "Amount")
    pipeline.start_run(engine, cfg.client_id, "r2", "build", None)
    pipeline.extract_exports(cfg, "r2", engine)
    pipeline.normalise_and_dedupe(cfg, "r2", engine)
    real_upsert = pipeline.upsert

    calls = {"accounts": 0}

    def failing_upsert(conn, table, rows, **kw):
        calls["accounts"] += table is t.accounts
        if table is t.opportunities:
            raise RuntimeError("connection lost")
        return real_upsert(conn, table, [{**r, "name": "CHANGED"} if "name" in r else r for r in rows], **kw)

    monkeypatch.setattr(pipeline, "upsert", failing_upsert)
    with pytest.raises(RuntimeError, match="connection lost"):
        pipeline.load_warehouse(cfg, "r2", engine)
    assert calls["accounts"] > 0  # the accounts had been written when the load died
    assert counts(engine) == before
    with engine.connect() as conn:
        assert dict(conn.execute(select(t.accounts.c.account_key, t.accounts.c.name)).all()) == names_before


def test_blank_in_a_later_export_keeps_the_known_value(sample):
    cfg, inbox = sample
    engine = get_engine()
    run_steps(cfg, "r1", engine)
    text = (inbox / "Account.csv").read_text(encoding="utf-8-sig")
    # the next export lost the industry of one account and changed the employees of another
    text = text.replace(",Finance,6759560,577,", ",,6759560,600,")
    (inbox / "Account.csv").write_text(text, encoding="utf-8-sig")
    run_steps(cfg, "r2", engine)
    with engine.connect() as conn:
        row = conn.execute(
            select(t.accounts.c.industry, t.accounts.c.employees, t.accounts.c.last_seen_run).where(
                t.accounts.c.account_key == "walkerhensonandcompton.com"
            )
        ).one()
    assert tuple(row) == ("Finance", 600, "r2")


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_unchanged_export_rows_are_skipped_by_hash(sample, backend, request, monkeypatch):
    """A re-load of the same export sends no row (each row's ``source_hash`` matches); a changed
    value is loaded, and only its row is rewritten. Staged frames keep their types through Parquet."""
    if backend == "postgresql":
        monkeypatch.setenv("MARKETMAP_WAREHOUSE_URL", request.getfixturevalue("pg_database"))
    cfg, inbox = sample
    engine = get_engine()
    run_steps(cfg, "r1", engine)
    a = t.accounts.c
    with engine.connect() as conn:
        stamps = dict(conn.execute(select(a.account_key, a.updated_at).where(a.client_id == "sample")).all())
        hashes = conn.execute(select(func.count()).where(a.client_id == "sample", a.source_hash.is_not(None)))
        assert hashes.scalar_one() == 22
    again = run_steps(cfg, "r2", engine)
    assert (again["accounts_unchanged"], again["contacts_unchanged"], again["opportunities_unchanged"]) == (22, 102, 50)
    with engine.connect() as conn:
        assert dict(conn.execute(select(a.account_key, a.updated_at).where(a.client_id == "sample")).all()) == stamps

    text = (inbox / "Account.csv").read_text(encoding="utf-8-sig")
    (inbox / "Account.csv").write_text(text.replace(",Finance,6759560,577,", ",Finance,6759560,600,"), encoding="utf-8-sig")
    third = run_steps(cfg, "r3", engine)
    assert third["accounts_unchanged"] == 21 and third["accounts_new"] == 0
    with engine.connect() as conn:
        now = dict(conn.execute(select(a.account_key, a.updated_at).where(a.client_id == "sample")).all())
        row = conn.execute(
            select(a.employees, a.last_funding_date, a.crm_created, a.last_seen_run).where(
                a.account_key == "walkerhensonandcompton.com"
            )
        ).one()
    assert [k for k in now if now[k] != stamps[k]] == ["walkerhensonandcompton.com"]
    assert row.employees == 600 and row.last_seen_run == "r3"
    assert row.crm_created is not None  # a timestamp came through the staged Parquet frame


def test_bad_byte_far_into_a_large_file_is_named_exactly(tmp_path):
    """The encoding is checked piece by piece (16 MiB): a bad byte just before or after a piece
    boundary is named by its exact offset and line, and the valid file reads whole."""
    row = "A{:07d},Müller Straße GmbH,mueller.de,5,,Retail,\n"
    body = (HEADER + "".join(row.format(i) for i in range(340_000))).encode("utf-8")
    assert len(body) > (1 << 24)
    for bad_at in (body.index(b"\n", (1 << 24) + 1000) + 1, body.rindex(b"\n", 0, (1 << 24) - 3) + 1):  # row starts
        data = codecs.BOM_UTF8 + body[:bad_at] + b"\xff" + body[bad_at:]
        path = write(tmp_path, data)
        offset = len(codecs.BOM_UTF8) + bad_at
        line = data[:offset].count(b"\n") + 1
        with pytest.raises(IngestError, match=rf"byte 0xff at offset {offset}, line {line}\)"):
            read_export(path, "accounts", "salesforce")
    path = write(tmp_path, codecs.BOM_UTF8 + body)  # the same file, valid: every row read
    assert len(read_export(path, "accounts", "salesforce").frame) == 340_000


@pytest.mark.postgres
def test_copy_load_writes_what_the_row_by_row_load_writes(mm_home, pg_database, monkeypatch):
    """New rows go by one Arrow-written COPY on PostgreSQL; every stored value (NULLs, dates, time
    zones, booleans, bands, custom fields' JSON text, 64-bit hashes) equals what the upsert path stores.
    The demo's messy export (bad values, blank websites, IDN domains) with two custom fields."""
    from marketmap import warehouse
    from marketmap.demo.generate import generate_demo_export

    monkeypatch.setenv("MARKETMAP_WAREHOUSE_URL", pg_database)
    engine = get_engine()
    demo = load_client("demo")
    custom = {"accounts": [{"name": "lead_source", "type": "text", "column": "AccountSource"},
                           {"name": "postcode", "type": "text", "column": "BillingPostalCode"}]}  # fmt: skip
    generate_demo_export(mm_home / "export", n_accounts=1500)
    copied = []
    real_copy = pipeline.copy_frame

    def counting_copy(conn, table, frame):
        done = real_copy(conn, table, frame)
        copied.extend([table.name] if done else [])
        return done

    monkeypatch.setattr(pipeline, "copy_frame", counting_copy)

    def load(client: str, copy_min_rows: int) -> None:
        shutil.copytree(mm_home / "export", mm_home / "inbox" / client)
        cfg = type(demo).model_validate({**demo.model_dump(), "client_id": client, "custom_fields": custom})
        monkeypatch.setattr(warehouse, "COPY_MIN_ROWS", copy_min_rows)
        run_steps(cfg, "r1", engine)

    load("by_copy", 1)
    assert sorted(set(copied)) == ["account_crm_ids", "accounts", "contacts", "opportunities"]
    copied.clear()
    load("by_rows", 10**9)
    assert copied == []  # the row path
    for table in (t.accounts, t.account_crm_ids, t.contacts, t.opportunities):
        cols = [c for c in table.c if c.name not in ("client_id", "updated_at")]
        key = [c for c in table.primary_key.columns if c.name != "client_id"]

        with engine.connect() as conn:
            a, b = (conn.execute(select(*cols).where(table.c.client_id == client).order_by(*key)).all()
                    for client in ("by_copy", "by_rows"))  # fmt: skip
        assert len(a) == len(b) > 1000 or table is t.opportunities
        assert a == b, table.name
    with engine.connect() as conn:
        a = t.accounts.c
        filled = conn.execute(select(func.count()).where(a.client_id == "by_copy", a.custom.is_not(None))).scalar_one()
    assert filled > 1000  # the custom fields came through


ISO_TEXTS = ["2019-03-03T05:36:47.000+0000", "2024-01-05T10:00:00Z", "2024-01-05T10:00:00+02:00",
             "2024-01-05T10:00:00.123456+0530", "2024-01-05T10:00:00-0130", "2024-01-05T10", "2024-01-05 10:00",
             "2024-01-05T10:00:00.5Z", "2024-01-05T10:00:00+05", "2024-01-05T00:00:00+14:00", "2024-01-05",
             "2024-01-05T10:00:00.000", "1677-09-21T00:00:00Z", "9999-12-31T23:59:59Z",
             # refused by Arrow's parser: read by pandas' (or NaT)
             "2024-02-30T00:00:00Z", "2024-01-05T24:00:00Z", "2024-01-05T10:00:00.1234567Z", "2024-1-5T10:00:00Z",
             "2024-01-05T10:00:00 +0000", "2024-01-05T1000Z", "2024-01-05T10:00:00,5Z", "2024-01-05x"]  # fmt: skip


@pytest.mark.parametrize("text", ISO_TEXTS)
def test_iso_dates_read_by_arrow_are_read_as_pandas_reads_them(text):
    import pyarrow as pa

    from marketmap.ingest.reader import _arrow_iso, _parse_dates

    by_pandas = pd.to_datetime(pd.Series([text], dtype=object), format="ISO8601", utc=True, errors="coerce")
    by_arrow = _arrow_iso(pa.array([text], type=pa.large_string()))
    if by_arrow is not None:
        assert by_arrow[0] == by_pandas.dt.tz_convert(None).to_numpy(dtype="datetime64[us]")[0]
    if text[:4] in ("1677", "9999"):  # pandas' parser (the fallback) reads these or not by their neighbours
        return
    # a column of them all (offsets and none, bad dates): the same instants as one by one
    in_column = _parse_dates(pd.Series([text, *ISO_TEXTS], dtype="str"), "datetime", None).iloc[0]
    alone = _parse_dates(pd.Series([text], dtype="str"), "datetime", None).iloc[0]
    assert (pd.isna(in_column) and pd.isna(alone)) or in_column == alone

"""Messy real-world exports: tolerant where a row is usable, strict where it is not, never a
wrong value. Small files written the way Excel, Data Loader, HubSpot's UI and European
locales write them, read by the same functions the build DAG calls."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import func, select

from marketmap.config import load_client
from marketmap.ingest import pipeline
from marketmap.ingest.reader import IngestError, ReadOptions, read_export, sf_id18
from marketmap.orchestration.build_tasks import format_summary
from marketmap.warehouse import get_engine
from marketmap.warehouse import schema as t

SAMPLE = Path(__file__).parent / "fixtures" / "salesforce_export"
ACC = "Id,Name,Website,NumberOfEmployees,AnnualRevenue,Industry,CreatedDate"


def excel_save(path: Path, lines: list[str]) -> Path:
    """What Excel writes for "CSV UTF-8": a BOM, CRLF line ends and a trailing row of commas."""
    width = lines[0].count(",")
    path.write_bytes(("\ufeff" + "\r\n".join(lines) + "\r\n" + "," * width + "\r\n\r\n").encode("utf-8"))
    return path


# --------------------------------------------------------------------------- 1. tolerant / strict rows


# "50-200" is a band now (issue 14: ingest/bands.py); "about 50" is still no number.
BAD_OPTIONAL = ["about 50", "N/A", "None", "1.2M", "€2.5M", "USD 3,000,000", "-5", "1e309"]


def test_bad_optional_values_are_left_blank_and_the_account_kept(tmp_path):
    lines = [ACC] + [f'A{i},Company {i},c{i}.com,"{v}",,Software,' for i, v in enumerate(BAD_OPTIONAL)]
    lines += [
        'B1,Bad Site,"not a website",10,,,',
        'B2,Good,good.io,1200,"1,500,000",,2024-01-02T03:04:05.000+0000',
    ]
    path = excel_save(tmp_path / "Account.csv", lines)
    res = read_export(path, "accounts", "salesforce")
    assert res.rejected == []
    assert len(res.frame) == len(BAD_OPTIONAL) + 2  # every account kept
    frame = res.frame.set_index("crm_id")
    assert frame.loc[[f"A{i}" for i in range(len(BAD_OPTIONAL))], "employees"].isna().all()
    assert frame.loc["B2", "employees"] == 1200 and frame.loc["B2", "annual_revenue"] == 1_500_000
    assert frame.loc["B1", "website"] is None or pd.isna(frame.loc["B1", "website"])
    warned = {(w.row_number, w.field, w.value) for w in res.warnings}
    expected = {(i + 2, "NumberOfEmployees", v) for i, v in enumerate(BAD_OPTIONAL)}
    assert warned == expected | {(len(BAD_OPTIONAL) + 2, "Website", "not a website")}
    assert all(w.file == "Account.csv" and "the row is kept" in w.reason for w in res.warnings)
    assert res.blank_rows == 1  # Excel's trailing ",,,," row is no record and rejects nothing


def test_rows_without_a_usable_key_are_rejected_alone_with_their_line(tmp_path):
    path = tmp_path / "Account.csv"
    path.write_bytes(
        (
            ACC + "\n"
            "001A00000000001AAA,Alpha,alpha.com,10,,,\n"  # line 2 ok
            ",Blank Id,blank.com,10,,,\n"  # line 3
            "#N/A,Vlookup Miss,na.com,10,,,\n"  # line 4
            "1.84330E+11,Excel Id,excel.com,10,,,\n"  # line 5
            "001A00000000002AAA,Too,many,fields,1,2,3,4,5\n"  # line 6
            '001A00000000003AAA,"Multi\nline name",multi.com,10,,,\n'  # lines 7-8 ok
            "001A00000000004AAA,Nul\x00Byte,nul.com,10,,,\n"  # line 9
            "001A00000000005AAA,Omega,omega.com,10,,,\n"  # line 10 ok
        ).encode("utf-8")
    )
    res = read_export(path, "accounts", "salesforce")
    assert res.frame["crm_id"].tolist() == ["001A00000000001AAA", "001A00000000003AAA", "001A00000000005AAA"]
    assert res.frame["source_row"].tolist() == [2, 7, 10]
    reasons = {r.row_number: r.reason for r in res.rejected}
    assert sorted(reasons) == [3, 4, 5, 6, 9]
    assert reasons[3] == "Id is blank (required)"
    assert "'#N/A' is not a record id" in reasons[4]
    assert "'1.84330E+11' is not a record id" in reasons[5] and "Excel" in reasons[5]
    assert "9 fields where the header has 7" in reasons[6]
    assert "NUL bytes" in reasons[9]


def test_only_an_untokenisable_file_or_a_missing_required_column_is_refused_whole(tmp_path):
    good = excel_save(tmp_path / "Account.csv", [ACC] + [f"A{i},N{i},n{i}.com,1,,," for i in range(200)])
    assert len(read_export(good, "accounts", "salesforce").frame) == 200
    ragged = tmp_path / "ragged" / "Account.csv"
    ragged.parent.mkdir()
    ragged.write_text("Id,Name\n" + "".join(f"A{i},N{i};x;y,z\n" for i in range(50)), encoding="utf-8")
    with pytest.raises(IngestError, match="cannot be tokenised reliably"):
        read_export(ragged, "accounts", "salesforce")
    no_name = tmp_path / "noname" / "Account.csv"
    no_name.parent.mkdir()
    no_name.write_text("Id,Website\nA1,a.com\n", encoding="utf-8")
    with pytest.raises(IngestError, match=r"missing column\(s\) Name"):
        read_export(no_name, "accounts", "salesforce")


OPP = "Id,AccountId,Name,StageName,Amount,IsClosed,IsWon,CloseDate,CurrencyIsoCode"


def test_contradictory_flags_reject_the_deal_and_a_negative_won_amount_is_not_summed(tmp_path):
    path = tmp_path / "Opportunity.csv"
    path.write_text(
        OPP + "\n"
        "006A00000000001AAA,001A00000000001AAA,Won,Closed Won,1000,true,true,2024-03-01,USD\n"
        "006A00000000002AAA,001A00000000001AAA,Liar,Closed Lost,500,true,true,2024-03-01,USD\n"
        "006A00000000003AAA,001A00000000001AAA,Refund,Closed Won,-300,true,true,2024-03-01,USD\n"
        "006A00000000004AAA,001A00000000001AAA,Bad date,Closed Won,10,true,true,2026-02-30,USD\n"
        "006A00000000005AAA,001A00000000001AAA,Open,Prospecting,10,false,true,2024-03-01,USD\n",
        encoding="utf-8",
    )
    res = read_export(path, "opportunities", "salesforce")
    frame = res.frame.set_index("crm_id")
    assert frame.index.tolist() == ["006A00000000001AAA", "006A00000000003AAA"]
    assert frame.loc["006A00000000001AAA", "amount"] == 1000
    assert pd.isna(frame.loc["006A00000000003AAA", "amount"])  # flagged, not summed
    assert [(w.row_number, w.field, w.value) for w in res.warnings] == [(4, "Amount", "-300")]
    assert "negative amount" in res.warnings[0].reason
    reasons = {r.row_number: r.reason for r in res.rejected}
    assert sorted(reasons) == [3, 5, 6]
    assert "contradictory flags" in reasons[3] and "contradictory flags" in reasons[6]
    assert "'2026-02-30' is not a real date" in reasons[5]


def test_two_different_records_with_one_id_are_reported_by_id(tmp_path):
    path = tmp_path / "Account.csv"
    path.write_text(
        "Id,Name,Website,LastModifiedDate\n"
        "001A00000000001AAA,Acme,acme.com,2024-01-01T00:00:00Z\n"
        "001A00000000002AAA,Beta,beta.com,2024-01-01T00:00:00Z\n"
        "001A00000000001AAA,Acme Corp,acme.com,2024-06-01T00:00:00Z\n"
        "001A00000000002AAA,Beta,beta.com,2024-01-01T00:00:00Z\n",  # the same record twice: one record
        encoding="utf-8",
    )
    res = read_export(path, "accounts", "salesforce")
    frame = res.frame.set_index("crm_id")
    assert frame["name"].to_dict() == {"001A00000000002AAA": "Beta", "001A00000000001AAA": "Acme Corp"}
    assert [(r.row_number, r.value) for r in res.rejected] == [(2, "001A00000000001AAA")]
    assert "on line 4 too, with different values" in res.rejected[0].reason


# --------------------------------------------------------------------------- 2. dates, numbers, currencies, ids


def test_european_export_semicolons_decimal_commas_and_day_first_dates(tmp_path):
    path = tmp_path / "Opportunity.csv"
    path.write_text(
        "Id;AccountId;Name;StageName;Amount;IsClosed;IsWon;CloseDate\n"
        "006A00000000001AAA;001A00000000001AAA;Eins;Closed Won;1.234,56;1;1;07.03.2024\n"
        "006A00000000002AAA;001A00000000001AAA;Zwei;Closed Won;2,5;1;1;25.12.2023\n"
        "006A00000000003AAA;001A00000000001AAA;Drei;Closed Won;1.234;1;1;45000\n",
        encoding="utf-8",
    )
    res = read_export(path, "opportunities", "salesforce", options=ReadOptions(currency="EUR"))
    assert res.delimiter == ";" and res.date_order == "dmy" and res.rejected == []
    frame = res.frame.set_index("name")
    assert frame["amount"].to_dict() == {"Eins": 1234.56, "Zwei": 2.5, "Drei": 1234.0}
    dates = frame["close_date"].dt.strftime("%Y-%m-%d").to_dict()
    assert dates == {"Eins": "2024-03-07", "Zwei": "2023-12-25", "Drei": "2023-03-15"}  # 07.03 is 7 March


def test_day_month_order_is_decided_from_the_file_or_the_file_is_refused(tmp_path):
    head = "Id,Name,LastModifiedDate\n"
    us = tmp_path / "us" / "Account.csv"
    us.parent.mkdir()
    us.write_text(head + "A1,One,03/07/2024 14:30\nA2,Two,12/25/2024\n", encoding="utf-8")
    res = read_export(us, "accounts", "salesforce")
    assert res.date_order == "mdy"
    assert res.frame["crm_last_modified"].dt.strftime("%Y-%m-%d %H:%M").tolist() == [
        "2024-03-07 14:30", "2024-12-25 00:00"]  # fmt: skip
    ambiguous = tmp_path / "amb" / "Account.csv"
    ambiguous.parent.mkdir()
    ambiguous.write_text(head + "A1,One,03/07/2024\nA2,Two,04/05/2024\n", encoding="utf-8")
    with pytest.raises(IngestError, match="day/month order of its dates cannot be decided"):
        read_export(ambiguous, "accounts", "salesforce")
    told = read_export(ambiguous, "accounts", "salesforce", options=ReadOptions(date_order="dmy"))
    assert told.frame["crm_last_modified"].dt.strftime("%m-%d").tolist() == ["07-03", "05-04"]
    mixed = tmp_path / "mixed" / "Account.csv"
    mixed.parent.mkdir()
    mixed.write_text(head + "A1,One,25/03/2024\nA2,Two,03/25/2024\n", encoding="utf-8")
    with pytest.raises(IngestError, match="both day/month"):
        read_export(mixed, "accounts", "salesforce")


def test_iso_dates_with_offsets_and_impossible_dates(tmp_path):
    path = tmp_path / "Account.csv"
    path.write_text(
        "Id,Name,CreatedDate,LastModifiedDate\n"
        "A1,One,2024-01-02T03:04:05.000+0000,2024-03-07T23:30:00-05:00\n"
        "A2,Two,2026-02-30,2024-03-07\n",
        encoding="utf-8",
    )
    res = read_export(path, "accounts", "salesforce")
    assert len(res.frame) == 2
    frame = res.frame.set_index("crm_id")
    assert frame.loc["A1", "crm_last_modified"] == pd.Timestamp("2024-03-08 04:30", tz="UTC")
    assert pd.isna(frame.loc["A2", "crm_created"])
    assert [(w.row_number, w.value) for w in res.warnings] == [(3, "2026-02-30")]


def test_amounts_in_another_currency_are_converted_or_refused(tmp_path):
    path = tmp_path / "Opportunity.csv"
    path.write_text(
        OPP + "\n"
        "006A00000000001AAA,001A00000000001AAA,Dollars,Closed Won,1000,true,true,2024-03-01,USD\n"
        "006A00000000002AAA,001A00000000001AAA,Euros,Closed Won,1000,true,true,2024-03-01,EUR\n"
        "006A00000000003AAA,001A00000000001AAA,Pounds,Closed Won,£1000,true,true,2024-03-01,\n"
        '006A00000000004AAA,001A00000000001AAA,Tagged,Closed Won,"USD 3,000,000",true,true,2024-03-01,\n',
        encoding="utf-8",
    )
    refused = read_export(path, "opportunities", "salesforce")
    amounts = refused.frame.set_index("name")["amount"]
    assert amounts["Dollars"] == 1000 and amounts["Tagged"] == 3_000_000
    assert amounts[["Euros", "Pounds"]].isna().all()  # never added to dollars as if they were dollars
    assert {w.value for w in refused.warnings} == {"1000", "£1000"}
    assert all("fx_rates" in w.reason for w in refused.warnings)
    converted = read_export(path, "opportunities", "salesforce",
                            options=ReadOptions(currency="USD", fx_rates={"EUR": 1.1, "GBP": 1.25}))  # fmt: skip
    assert converted.frame.set_index("name")["amount"].round(6).to_dict() == {
        "Dollars": 1000.0, "Euros": 1100.0, "Pounds": 1250.0, "Tagged": 3_000_000.0}  # fmt: skip
    assert converted.warnings == []


def test_salesforce_15_and_18_character_ids_are_one_id():
    assert sf_id18("001A000000BcdefXYZ") == "001A000000BcdefXYZ"  # already 18: unchanged
    assert sf_id18("001a000000bcdef") != sf_id18("001A000000Bcdef")  # case matters in a 15-char id
    # Known pair from Salesforce's documentation of the case-safe id
    assert sf_id18("00D000000000062") == "00D000000000062EAA"


# --------------------------------------------------------------------------- the build path


@pytest.fixture()
def sample(fixture_clients, mm_home):
    inbox = mm_home / "inbox" / "sample"
    inbox.mkdir(parents=True)
    for f in SAMPLE.glob("*.csv"):
        shutil.copy(f, inbox / f.name)
    return load_client("sample"), inbox


def _steps(cfg, run_id, engine) -> dict:
    pipeline.start_run(engine, cfg.client_id, run_id, "build", None)
    ingest = pipeline.extract_exports(cfg, run_id, engine)
    dedupe = pipeline.normalise_and_dedupe(cfg, run_id, engine)
    load = pipeline.load_warehouse(cfg, run_id, engine)
    return {"ingest": ingest, "dedupe": dedupe, "load": load}


def _append(path: Path, rows: list[dict]) -> None:
    header = next(csv.reader(path.read_text(encoding="utf-8-sig").splitlines()))
    with open(path, "a", encoding="utf-8", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=header)
        for r in rows:
            w.writerow(r)


def test_build_path_keeps_the_exact_rows_links_15_char_ids_and_reports_warnings(sample):
    cfg, inbox = sample
    engine = get_engine()
    accounts = pd.read_csv(inbox / "Account.csv", dtype=str, encoding="utf-8-sig")
    acc18 = accounts["Id"].iloc[0]
    _append(inbox / "Account.csv", [
        {"Id": "001Zz0000000001AAA", "Name": "=HYPERLINK(\"http://evil\",\"x\")", "Website": "hyper.example",
         "NumberOfEmployees": "about 50"},
        {"Id": "001Zz0000000002AAA", "Name": "Apple", "Website": "https://www.apple.com"},
        {"Id": "001Zz0000000003AAA", "Name": "Two Guys Apps", "Website": "https://apps.apple.com/us/app/x/id1"},
        {"Id": "#N/A", "Name": "Lost in Excel", "Website": "lost.example"},
    ])  # fmt: skip
    _append(inbox / "Opportunity.csv", [
        {"Id": "006Zz0000000001AAA", "AccountId": acc18[:15], "Name": "Short id deal", "StageName": "Prospecting",
         "Amount": "100", "IsClosed": "false", "IsWon": "false", "CloseDate": "2024-05-01"},
    ])  # fmt: skip
    steps = _steps(cfg, "r1", engine)
    assert steps["ingest"]["accounts"]["rejected"] == 1
    assert steps["ingest"]["accounts"]["warnings"] == 1
    with engine.connect() as conn:
        keys = dict(conn.execute(select(t.account_crm_ids.c.crm_id, t.account_crm_ids.c.account_key)).all())
        opp_key = conn.execute(
            select(t.opportunities.c.account_key).where(t.opportunities.c.crm_id == "006Zz0000000001AAA")
        ).scalar_one()
        domains = dict(conn.execute(select(t.accounts.c.name, t.accounts.c.domain)).all())
        names = set(conn.execute(select(t.accounts.c.name)).scalars())
    assert opp_key == keys[acc18]  # the 15-character AccountId is the same account
    assert domains["Apple"] == "apple.com" and domains["Two Guys Apps"] is None  # not merged into Apple
    assert "Lost in Excel" not in names and len(names) == 22 + 3
    summary = pipeline.summarise(cfg, "r1", engine, steps)
    assert summary["rows_rejected"] == 1 and summary["warnings"] == 2  # employees "about 50", app-store host
    out = Path(summary["outputs"])
    rejected = (out / "rejected_rows.csv").read_text(encoding="utf-8")
    assert "#N/A" in rejected and "is not a record id" in rejected
    warnings = list(csv.DictReader((out / "warnings.csv").open(encoding="utf-8")))
    assert {(w["field"], w["value"]) for w in warnings} == {
        ("NumberOfEmployees", "about 50"), ("Website", "https://apps.apple.com/us/app/x/id1")}  # fmt: skip
    text = format_summary(summary)
    assert "values left blank (warnings)" in text and "warnings       2 on 2 kept rows" in text


def test_a_refused_file_leaves_the_warehouse_unchanged(sample):
    cfg, inbox = sample
    engine = get_engine()
    _steps(cfg, "r1", engine)
    with engine.connect() as conn:
        before = {tbl.name: conn.execute(select(func.count()).select_from(tbl)).scalar_one()
                  for tbl in (t.accounts, t.contacts, t.opportunities, t.staged_frames, t.ingest_warnings)}  # fmt: skip
        names = sorted(conn.execute(select(t.accounts.c.name)).scalars())
    _append(inbox / "Account.csv", [
        {"Id": "001Zz0000000009AAA", "Name": "Late", "CreatedDate": "03/04/2024"},
        {"Id": "001Zz0000000008AAA", "Name": "Later", "CreatedDate": "04/03/2024"},
    ])  # fmt: skip
    with pytest.raises(IngestError, match="cannot be decided"):
        pipeline.extract_exports(cfg, "r2", engine)
    with engine.connect() as conn:
        after = {tbl.name: conn.execute(select(func.count()).select_from(tbl)).scalar_one()
                 for tbl in (t.accounts, t.contacts, t.opportunities, t.staged_frames, t.ingest_warnings)}  # fmt: skip
        assert sorted(conn.execute(select(t.accounts.c.name)).scalars()) == names
    assert after == before


def test_data_loader_export_all_quoted_with_15_char_references(tmp_path):
    path = tmp_path / "Contact.csv"
    path.write_text(
        '"ID","ACCOUNTID","FIRSTNAME","LASTNAME","EMAIL","LASTMODIFIEDDATE"\n'
        '"003A00000000001AAA","001A00000000001","Ada","Lovelace","ada@acme.com","2024-01-02T03:04:05.000Z"\n'
        '"003A00000000002AAA","001A00000000001IAA","Bob","Typo","bob at acme","2024-01-02T03:04:05.000Z"\n',
        encoding="utf-8",
    )
    cols = {"crm_id": "ID", "account_crm_id": "ACCOUNTID", "first_name": "FIRSTNAME", "last_name": "LASTNAME",
            "email": "EMAIL", "crm_last_modified": "LASTMODIFIEDDATE"}  # fmt: skip
    res = read_export(path, "contacts", "salesforce", cols)
    assert res.rejected == []
    ids = res.frame["account_crm_id"].tolist()
    assert ids[0] == ids[1] == sf_id18("001A00000000001")  # 15- and 18-char spellings: one account id
    assert res.frame["email"].tolist()[0] == "ada@acme.com" and pd.isna(res.frame["email"].tolist()[1])
    assert [(w.row_number, w.field, w.value) for w in res.warnings] == [(3, "EMAIL", "bob at acme")]


def test_hubspot_ui_export_with_client_column_names(tmp_path):
    path = tmp_path / "companies.csv"
    path.write_text(
        "Record ID,Company name,Company Domain Name,Number of Employees,Annual Revenue,Create Date\n"
        "101,Acme,acme.com,120,5000000,2024-03-07 14:30\n"
        "102,Globex,https://www.linkedin.com/company/globex,1.2k,,2024-03-08 09:00\n"
        "1.02E+02,Excel Mangled,x.com,5,,2024-03-08 09:00\n",
        encoding="utf-8",
    )
    cols = {"crm_id": "Record ID", "name": "Company name", "website": "Company Domain Name",
            "employees": "Number of Employees", "annual_revenue": "Annual Revenue", "crm_created": "Create Date"}  # fmt: skip
    res = read_export(path, "accounts", "hubspot", cols)
    assert res.frame["crm_id"].tolist() == ["101", "102"]
    assert [r.row_number for r in res.rejected] == [4]
    assert [(w.field, w.value) for w in res.warnings] == [("Number of Employees", "1.2k")]
    assert res.frame["crm_created"].iloc[0] == pd.Timestamp("2024-03-07 14:30", tz="UTC")


def test_an_unbalanced_quote_that_would_swallow_records_refuses_the_file(tmp_path):
    path = tmp_path / "Account.csv"
    head = "Id,Name,Website\nA1,Acme,acme.com\n"
    path.write_text(head + 'A2,"Broken,b.com\nA3,Gamma,g.com\nA4,Delta,d.com\n', encoding="utf-8")
    with pytest.raises(IngestError, match="unbalanced quote in row 3 swallows the lines after it"):
        # not "A1 loaded, one row rejected": A3 and A4 would vanish without a trace
        read_export(path, "accounts", "salesforce")
    path.write_text(head + 'A2,"Broken,b.com\nA3,Gamma,g.com\nA4,"Delta,d.com\n', encoding="utf-8")
    with pytest.raises(IngestError, match="holds whole records"):
        read_export(path, "accounts", "salesforce")
    path.write_text(head + 'A2,"Two\nline name",b.com\n', encoding="utf-8")  # a real multi-line value is fine
    assert read_export(path, "accounts", "salesforce").frame["name"].tolist() == ["Acme", "Two\nline name"]


def test_email_check_in_arrow_agrees_with_the_python_pattern():
    """The e-mail check runs in Arrow (RE2, whose \\s is ASCII only): it must judge every value as
    the Python pattern does, Unicode spaces included (values are stripped before the check)."""
    import random
    import re

    import pyarrow as pa
    import pyarrow.compute as pc

    from marketmap.ingest.reader import _EMAIL, _EMAIL_ARROW

    # a zero-width space is no space (Unicode: a format character), so that address passes
    values = ["a@b.com", "first.last+tag@sub.example.org", "ä@ü.de", "Ω@δ.ελ", "a\u200bb@c.com", "a@b.c", "a@.b",
              "@b.com", "a@b@c.com", "a b@c.com", "a\u00a0b@c.com", "a\x1cb@c.com", "a\x85b@c.com", "a\u2028b@c.de",
              "a\x0bb@c.de", "a\u3000b@c.com", "a\u2009b@c.com", "a;b@c.com", '"a"@b.com']  # fmt: skip
    rng = random.Random(15)
    alphabet = "ab@.;<> \t\u00a0\x1c\x85\u2028é'\""
    values += ["".join(rng.choice(alphabet) for _ in range(rng.randint(1, 9))) for _ in range(5000)]
    python = [bool(re.match(_EMAIL, v)) for v in values]
    arrow = pc.match_substring_regex(pa.array(values, type=pa.large_string()), _EMAIL_ARROW).to_pylist()
    assert arrow == python
    assert python[:5] == [True] * 5 and not any(python[5:19])

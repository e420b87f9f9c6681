"""Custom fields, bands and HubSpot web-app exports: the validator's exact messages for each class of
mistake, the band rules, the reader's typed custom values and the load's skip-unchanged."""

from __future__ import annotations

import json

import pytest
import yaml
from test_config import ACCOUNT_NAMES, acme, validate

from marketmap.ingest.bands import parse_band, representative
from marketmap.ingest.reader import IngestError, read_export
from marketmap.ingest.schema import CustomSpec

# --------------------------------------------------------------------------- validator: each class of mistake


def with_custom(accounts: list[dict], **objects) -> dict:
    data = acme()
    data["custom_fields"] = {"accounts": accounts, **objects}
    return data


REL = {"name": "relationship", "type": "text", "column": "Relationship__c"}


def test_custom_field_name_that_is_no_identifier(tmp_path, capsys):
    data = with_custom([{"name": "Company Size", "type": "text", "column": "Company_Size__c"}])
    assert validate(tmp_path, capsys, yaml.safe_dump(data)) == [
        "custom_fields.accounts[0].name: custom field name 'Company Size' must be lower-case letters, digits and _ "
        "starting with a letter (at most 63), e.g. company_size; the export's column goes in `column`"
    ]


def test_custom_field_named_like_a_built_in_field(tmp_path, capsys):
    data = with_custom([{"name": "industry", "type": "text", "column": "Industry__c"}])
    assert validate(tmp_path, capsys, yaml.safe_dump(data)) == [
        "custom_fields.accounts[0].name: 'industry' is a built-in accounts field; give the custom field another "
        "name (or map the built-in field's column with crm.export.account_columns)"
    ]


def test_custom_field_names_and_columns_that_repeat(tmp_path, capsys):
    data = with_custom([REL, {**REL, "type": "list"}],
                       opportunities=[{"name": "product_line", "type": "text", "column": "Product__c"},
                                      {"name": "product", "type": "list", "column": "Product__c"}])  # fmt: skip
    assert validate(tmp_path, capsys, yaml.safe_dump(data)) == [
        "custom_fields.accounts[1].name: 'relationship' is custom_fields.accounts[0] too; each custom field needs "
        "its own name",
        "custom_fields.accounts[1].column: column 'Relationship__c' feeds custom_fields.accounts[0] already; one "
        "column is one field (a vector can use it under that name)",
        "custom_fields.opportunities[1].column: column 'Product__c' feeds custom_fields.opportunities[0] already; "
        "one column is one field (a vector can use it under that name)",
    ]


def test_custom_field_type_that_does_not_exist(tmp_path, capsys):
    data = with_custom([{**REL, "type": "string"}])
    assert validate(tmp_path, capsys, yaml.safe_dump(data)) == [
        "custom_fields.accounts[0].type: expected 'text', 'number', 'date', 'boolean' or 'list', got 'string'"
    ]


def test_vector_on_a_custom_field_of_the_wrong_type(tmp_path, capsys):
    data = with_custom([REL, {"name": "since", "type": "date", "column": "Customer_Since__c"}])
    vectors = data["icp"]["rubrics"][0]["vectors"]
    vectors[1]["field"] = "relationship"  # size: bands
    vectors[3]["field"] = "since"  # funding: recency — the right type, no message
    assert validate(tmp_path, capsys, yaml.safe_dump(data)) == [
        "icp.rubrics[0].vectors[1].field: vector 'size' is bands but custom field 'relationship' is text; a bands "
        "vector scores number fields, a text field is scored by any_of or categorical vectors (or change the "
        "field's type in custom_fields.accounts)"
    ]


def test_any_of_vector_on_a_list_field_with_its_own_separator(tmp_path, capsys):
    data = with_custom([{"name": "products", "type": "list", "column": "Products__c", "separator": ","}])
    vector = data["icp"]["rubrics"][0]["vectors"][4]  # tech: any_of
    vector.update(field="products", separator=",")
    assert validate(tmp_path, capsys, yaml.safe_dump(data)) == [
        "icp.rubrics[0].vectors[4].field: vector 'tech' splits on ',' but list field 'products' reaches vectors "
        "joined by ';' (the file's separator is custom_fields.accounts[].separator); drop the vector's separator"
    ]


def test_vector_on_a_field_that_is_neither_built_in_nor_declared_lists_the_custom_ones(tmp_path, capsys):
    data = with_custom([REL])
    data["icp"]["rubrics"][0]["vectors"][1]["field"] = "company_size"
    names = ", ".join(sorted([*ACCOUNT_NAMES.split(", "), "relationship"]))
    assert validate(tmp_path, capsys, yaml.safe_dump(data)) == [
        f"icp.rubrics[0].vectors[1].field: unknown account field 'company_size' (size); known fields: {names}"
    ]


def test_column_mapping_of_a_custom_field_is_accepted_and_an_undeclared_one_explained(tmp_path, capsys):
    data = with_custom([REL])
    data["crm"]["export"]["account_columns"]["relationship"] = "Rel__c"  # moves the custom field's column
    data["crm"]["export"]["account_columns"]["region"] = "Region__c"
    [line] = validate(tmp_path, capsys, yaml.safe_dump(data))
    assert line.startswith("crm.export: account_columns maps unknown field(s) ['region']; ")
    assert line.endswith(
        "intent_score, crm_created, crm_last_modified, relationship. A column that is no built-in field is "
        "declared in custom_fields.accounts (e.g. {name: region, type: text, column: Region__c})"
    )


def test_push_of_a_custom_field_is_a_known_source(tmp_path, capsys):
    data = with_custom([REL])
    data["push"][0]["fields"].append({"source": "relationship", "crm_field": "Relationship_Copy__c"})
    data["push"][0]["fields"].append({"source": "relation", "crm_field": "X__c"})
    [line] = validate(tmp_path, capsys, yaml.safe_dump(data))
    assert line.startswith("push[0].fields[")
    assert "unknown source 'relation' for accounts" in line and line.endswith("; custom fields relationship)")


def test_a_custom_column_missing_from_the_export_names_the_field(tmp_path):
    path = tmp_path / "Account.csv"
    path.write_text("Id,Name\n001A,Acme\n")
    with pytest.raises(IngestError) as e:
        read_export(path, "accounts", "salesforce", custom=[CustomSpec("relationship", "text", "Relationship__c")])
    assert str(e.value) == (
        f"{path}: missing column(s) Relationship__c (for custom field relationship); the header has 2 columns: "
        "Id, Name"
    )


# --------------------------------------------------------------------------- bands


@pytest.mark.parametrize(
    ("text", "low", "high", "rep"),
    [
        ("20 - 49", 20, 49, 34.5),
        ("1,000 - 4,999", 1000, 4999, 2999.5),
        ("10,000+", 10_000, None, 10_000),
        ("10,001+ employees", 10_001, None, 10_001),
        ("$1M-$5M", 1e6, 5e6, 3e6),
        ("€500K – €1M", 5e5, 1e6, 7.5e5),
        ("1M-5M USD", 1e6, 5e6, 3e6),
        ("Under $1M", 0, 1e6, 5e5),
        ("< 10", 0, 10, 5),
        ("More than 5,000", 5000, None, 5000),
        ("$1B+", 1e9, None, 1e9),
        ("5 to 10", 5, 10, 7.5),
    ],
)
def test_band_rules(text, low, high, rep):
    lo, hi, _, _ = parse_band(text)
    assert (lo, hi, representative(lo, hi)) == (low, high, rep)


@pytest.mark.parametrize("text", ["-5", "1.2M", "N/A", "about 50", "49 - 20", "$1M-€5M", "1e309", "USD 3,000,000"])
def test_no_band(text):
    assert parse_band(text) is None


def test_bands_in_an_export_keep_their_range_and_a_currency_is_converted(tmp_path):
    path = tmp_path / "Account.csv"
    path.write_text(
        "Id,Name,NumberOfEmployees,AnnualRevenue\n"
        'A1,One,20 - 49,$1M-$5M\nA2,Two,"10,000+",€1M-€2M\nA3,Three,"1.2M",£1M-£2M\nA4,Four,120,"500,000"\n'
    )
    from marketmap.ingest.reader import ReadOptions

    res = read_export(path, "accounts", "salesforce", options=ReadOptions(fx_rates={"EUR": 1.1}))
    f = res.frame.set_index("crm_id")
    assert f.loc["A1", ["employees", "employees_low", "employees_high"]].tolist() == [34.5, 20, 49]
    assert f.loc["A2", ["annual_revenue", "annual_revenue_low", "annual_revenue_high"]].tolist() == pytest.approx(
        [1.65e6, 1.1e6, 2.2e6]  # the midpoint, converted at 1.1
    )
    assert f.loc["A4", ["employees_low", "employees_high", "annual_revenue_low"]].tolist() == [120, 120, 500_000]
    assert [(w.row_number, w.field, w.reason) for w in res.warnings] == [
        (4, "NumberOfEmployees", "NumberOfEmployees '1.2M' is neither a whole, non-negative number nor a band like "
         "20 - 49, 1,000 - 4,999, 10,000+ or $1M-$5M (units like M or k on a single number, and words are not "
         "guessed); the value is left blank, the row is kept"),
        (4, "AnnualRevenue", "AnnualRevenue '£1M-£2M' is neither a non-negative number nor a band like 20 - 49, "
         "1,000 - 4,999, 10,000+ or $1M-$5M (units like M or k on a single number, and words are not guessed); "
         "the value is left blank, the row is kept"),
    ]  # fmt: skip


def test_a_band_counts_once_when_choosing_which_duplicate_survives(tmp_path):
    """The survivor of same-domain duplicates is the most complete record; a band's derived
    _low/_high columns are the same fact as the head count, not two more filled fields."""
    from marketmap.ingest.dedupe import dedupe_accounts

    path = tmp_path / "Account.csv"
    path.write_text(
        "Id,Name,Website,NumberOfEmployees,Industry,BillingCountry\n"
        "A1,Acme,acme.com,20 - 49,,\n"  # one field filled (the band)
        "A2,Acme Inc,www.acme.com,,Software,Germany\n"  # two fields filled: the survivor
    )
    res = dedupe_accounts(read_export(path, "accounts", "salesforce").frame)
    [acme] = res.accounts.to_dict("records")
    assert acme["crm_id"] == "A2" and acme["industry"] == "Software"
    assert (acme["employees"], acme["employees_low"], acme["employees_high"]) == (34.5, 20, 49)  # filled from A1
    assert res.merges[["kept_crm_id", "merged_crm_id"]].values.tolist() == [["A2", "A1"]]


# --------------------------------------------------------------------------- reader: custom values, HubSpot labels


def test_custom_values_are_typed_and_a_bad_one_is_a_warning(tmp_path):
    path = tmp_path / "Account.csv"
    path.write_text(
        "Id,Name,Rel__c,Products__c,Since__c,Partner__c,Seats__c\n"
        "A1,One,Customer,A;B,2024-01-02,yes,10\n"
        "A2,Two,,,,no,\"1,000 - 4,999\"\n"
        "A3,Three,Prospect,C,soon,maybe,lots\n"
    )
    custom = [CustomSpec("relationship", "text", "Rel__c"), CustomSpec("products", "list", "Products__c"),
              CustomSpec("since", "date", "Since__c"), CustomSpec("partner", "boolean", "Partner__c"),
              CustomSpec("seats", "number", "Seats__c")]  # fmt: skip
    res = read_export(path, "accounts", "salesforce", custom=custom)
    stored = [json.loads(v) for v in res.frame["custom"]]
    assert stored == [
        {"partner": True, "products": ["A", "B"], "relationship": "Customer", "seats": 10, "since": "2024-01-02"},
        {"partner": False, "seats": 2999.5},
        {"products": ["C"], "relationship": "Prospect"},
    ]
    assert [(w.row_number, w.field, w.value) for w in res.warnings] == [
        (4, "Since__c", "soon"), (4, "Partner__c", "maybe"), (4, "Seats__c", "lots")]  # fmt: skip
    assert res.warnings[1].reason == (
        "Partner__c 'maybe' is not a boolean (1/0, true/false, yes/no); the value is left blank, the row is kept"
    )


def test_hubspot_web_app_export_is_recognised_by_its_labels(tmp_path):
    companies = tmp_path / "companies.csv"
    companies.write_text(
        "Record ID,Company name,Company Domain Name,Number of Employees,Annual Revenue,Industry,Company owner,"
        "Create Date,Lifecycle Stage\n"
        '101,Acme,acme.com,"1,000 - 4,999",$1M-$5M,Software,Ann Owner,2024-01-15 09:30,Customer\n'
    )
    deals = tmp_path / "deals.csv"
    deals.write_text(
        "Record ID,Deal Name,Deal Stage,Amount,Close Date,Pipeline,Associated Company IDs\n"
        "9,Acme renewal,Closed Won,1200,2024-05-31,Sales Pipeline,101;102\n"
    )
    acc = read_export(companies, "accounts", "hubspot").frame.iloc[0]
    assert (acc["crm_id"], acc["name"], acc["website"], acc["employees"], acc["owner_id"]) == (
        "101", "Acme", "acme.com", 2999.5, "Ann Owner")  # fmt: skip
    deal = read_export(deals, "opportunities", "hubspot").frame.iloc[0]
    assert (deal["account_crm_id"], deal["stage"], deal["amount"]) == ("101", "Closed Won", 1200)


# --------------------------------------------------------------------------- load: a repeated export is not rewritten


def _reload_twice(url: str, tmp_path, client_id: str) -> None:
    import shutil
    from pathlib import Path

    import pandas as pd
    from sqlalchemy import select

    from marketmap.config import parse_client
    from marketmap.ingest import pipeline
    from marketmap.warehouse import get_engine
    from marketmap.warehouse import schema as t

    fixtures = Path(__file__).parent / "fixtures"
    data = yaml.safe_load((fixtures / "clients" / "sample.yaml").read_text())
    data["client_id"] = client_id
    data["custom_fields"] = {"accounts": [REL | {"column": "Classification__c"}],
                             "opportunities": [{"name": "product_line", "type": "text", "column": "Product__c"}]}  # fmt: skip
    cfg = parse_client(data, "test")
    inbox = tmp_path / "inbox"
    shutil.copytree(fixtures / "salesforce_export", inbox)
    accounts = pd.read_csv(inbox / "Account.csv", dtype=str, encoding="utf-8-sig", keep_default_na=False)
    accounts["NumberOfEmployees"] = [f"{int(v) // 100 * 100} - {int(v) // 100 * 100 + 99}" if v else ""
                                     for v in accounts["NumberOfEmployees"]]  # fmt: skip
    accounts.to_csv(inbox / "Account.csv", index=False, encoding="utf-8-sig")
    engine = get_engine(url)

    def load(run_id: str) -> dict:
        pipeline.start_run(engine, client_id, run_id, "build", None)
        pipeline.extract_exports(cfg, run_id, engine, inbox)
        pipeline.normalise_and_dedupe(cfg, run_id, engine)
        pipeline.load_warehouse(cfg, run_id, engine)
        with engine.connect() as conn:
            rows = conn.execute(select(t.accounts.c.name, t.accounts.c.custom, t.accounts.c.updated_at)
                                .where(t.accounts.c.client_id == client_id)).all()  # fmt: skip
        return {r.name: (r.custom, r.updated_at) for r in rows}

    first = load("r1")
    assert json.loads(first["Warner-Jackson"][0]) == {"relationship": "Customer"}
    assert load("r2") == first  # the same export again: no account rewritten, custom JSON compared as text
    accounts.loc[accounts["Name"] == "Warner-Jackson", "Classification__c"] = "Prospect"
    accounts.to_csv(inbox / "Account.csv", index=False, encoding="utf-8-sig")
    third = load("r3")
    changed = {n for n in third if third[n] != first[n]}
    assert changed == {"Warner-Jackson"} and json.loads(third["Warner-Jackson"][0]) == {"relationship": "Prospect"}


def test_a_repeated_export_with_custom_fields_rewrites_nothing_on_sqlite(tmp_path):
    _reload_twice(f"sqlite:///{tmp_path / 'w.db'}", tmp_path, "reload_sqlite")


def test_a_repeated_export_with_custom_fields_rewrites_nothing_on_postgres(pg_database, tmp_path):
    _reload_twice(pg_database, tmp_path, "reload_pg")


# --------------------------------------------------------------------------- scoring reads custom fields as columns


def test_every_vector_kind_scores_a_custom_field_as_stored(tmp_path):
    import datetime as dt

    from marketmap.config import IcpConfig
    from marketmap.ingest.custom import expand
    from marketmap.scoring.fit import score_icp

    path = tmp_path / "Account.csv"
    path.write_text(
        "Id,Name,Rel__c,Products__c,Since__c,Partner__c,Seats__c\n"
        "A1,One,Customer,Lending;Payments,2026-03-01,yes,250 - 499\n"
        "A2,Two,Prospect,Payments,2019-01-01,no,12\n"
        "A3,Three,,,,,\n"
    )
    custom = [CustomSpec("relationship", "text", "Rel__c"), CustomSpec("products", "list", "Products__c"),
              CustomSpec("since", "date", "Since__c"), CustomSpec("partner", "boolean", "Partner__c"),
              CustomSpec("seats", "number", "Seats__c")]  # fmt: skip
    stored = read_export(path, "accounts", "salesforce", custom=custom).frame
    icp = IcpConfig.model_validate({"version": "v", "rubrics": [{"vectors": [
        {"name": "rel", "kind": "categorical", "field": "relationship", "weight": 20, "points": {"customer": 20}},
        {"name": "products", "kind": "any_of", "field": "products", "weight": 20, "points": {"Lending": 20, "Payments": 5}},
        {"name": "since", "kind": "recency", "field": "since", "weight": 20, "windows": [{"within_months": 12, "points": 20}]},
        {"name": "partner", "kind": "boolean", "field": "partner", "weight": 20, "true_points": 20, "false_points": 5},
        {"name": "seats", "kind": "bands", "field": "seats", "weight": 20, "bands": [{"min": 100, "points": 20}, {"min": 0, "max": 100, "points": 10}]},
    ]}]})  # fmt: skip
    scored = score_icp(expand(stored), icp, dt.date(2026, 12, 1))
    assert scored["points"].tolist() == [
        {"rel": 20, "products": 20, "since": 20, "partner": 20, "seats": 20},
        {"rel": 0, "products": 5, "since": 0, "partner": 5, "seats": 10},
        {"rel": 0, "products": 0, "since": 0, "partner": 0, "seats": 0},
    ]
    assert scored["unknown"].iloc[2] == "rel,products,since,partner,seats"  # no custom value: unknown, not 0


# --------------------------------------------------------------------------- Salesforce API extract


def test_salesforce_api_extract_reads_custom_fields_and_a_band_field(mm_home):
    from servers.salesforce import SalesforceServer
    from servers.world import FAST, client_cfg, engine, salesforce_custom_fields
    from sqlalchemy import select

    from marketmap import crm
    from marketmap.config import CustomFields
    from marketmap.warehouse import schema as t

    server = SalesforceServer(page_size=7)
    salesforce_custom_fields(server)
    server.add_field("Account", "Relationship__c", "picklist", picklist=["Customer", "Prospect"])
    server.add_field("Account", "Employee_Band__c", "string")
    server.add_field("Opportunity", "Product__c", "string")
    cfg = client_cfg("salesforce", export={"format": "salesforce", "account_columns": {"employees": "Employee_Band__c"}})
    cfg = cfg.model_copy(update={"custom_fields": CustomFields.model_validate({
        "accounts": [{"name": "relationship", "type": "text", "column": "Relationship__c"}],
        "opportunities": [{"name": "product_line", "type": "text", "column": "Product", "crm_field": "Product__c"}],
    })})  # fmt: skip
    with server:
        for i, band in enumerate(["20 - 49", "1,000 - 4,999", "10,000+"]):
            acc = server.add("Account", {"Name": f"Co {i}", "Website": f"co{i}.com", "Employee_Band__c": band,
                                         "Relationship__c": "Customer" if i else "Prospect"})  # fmt: skip
            server.add("Opportunity", {"Name": f"Deal {i}", "StageName": "Prospecting", "AccountId": acc,
                                       "Product__c": "Payments"})  # fmt: skip
        ad = crm.adapter_for(cfg, {"host": server.instance_url, "password": server.token}, settings=FAST,
                             mounts=server.mounts())  # fmt: skip
        eng = engine()
        crm.extract(cfg, eng, "run-1", ad)
    with eng.connect() as conn:
        acc = {r.name: r for r in conn.execute(select(t.accounts))}
        opps = conn.execute(select(t.opportunities.c.custom)).scalars().all()
    assert [(acc[n].employees, acc[n].employees_low, acc[n].employees_high) for n in ("Co 0", "Co 1", "Co 2")] == [
        (34.5, 20, 49), (2999.5, 1000, 4999), (10_000, 10_000, None)]  # fmt: skip
    assert json.loads(acc["Co 1"].custom) == {"relationship": "Customer"}
    assert [json.loads(o) for o in opps] == [{"product_line": "Payments"}] * 3


def test_vector_on_a_custom_field_of_another_object_says_so(tmp_path, capsys):
    data = with_custom([], opportunities=[{"name": "product_line", "type": "text", "column": "Product__c"}])
    data["icp"]["rubrics"][0]["vectors"][2]["field"] = "product_line"  # industry: categorical
    assert validate(tmp_path, capsys, yaml.safe_dump(data)) == [
        "icp.rubrics[0].vectors[2].field: unknown account field 'product_line' (industry) ('product_line' is a "
        "custom field of opportunities: a rubric scores accounts, declare it under custom_fields.accounts if the "
        f"account export has it); known fields: {ACCOUNT_NAMES}"
    ]


def test_hubspot_web_app_deal_export_prefers_the_primary_company_column(tmp_path):
    deals = tmp_path / "deals.csv"
    deals.write_text(
        "Record ID,Deal Name,Deal Stage,Amount,Close Date,Associated Company IDs,Associated Company IDs (Primary)\n"
        "9,Acme renewal,Closed Won,1200,2024-05-31,102;101,101\n"
    )
    assert read_export(deals, "opportunities", "hubspot").frame.iloc[0]["account_crm_id"] == "101"


# --------------------------------------------------------------------------- marketmap fields before a build


def test_fields_before_a_build_reads_the_export(tmp_path, mm_home, monkeypatch, capsys):
    from marketmap import cli

    clients = tmp_path / "clients"
    clients.mkdir()
    data = acme()
    data["crm"] = {"kind": "csv", "export": {"format": "salesforce", "contacts": None, "opportunities": None}}
    data["custom_fields"] = {"accounts": [{**REL, "description": "Customer / Prospect"}]}
    data["push"] = []
    (clients / "acme.yaml").write_text(yaml.safe_dump(data))
    monkeypatch.setenv("MARKETMAP_CLIENTS_DIR", str(clients))
    assert cli.main(["fields", "--client", "acme"]) == 1
    inbox = mm_home / "inbox" / "acme"
    assert capsys.readouterr().err.strip() == (
        f"no warehouse rows for client 'acme' and no account export at {inbox / 'Account.csv'} "
        "(run a build, or put the export in the client's inbox)"
    )
    inbox.mkdir(parents=True)
    (inbox / "Account.csv").write_text(
        "Id,Name,NumberOfEmployees,Relationship__c\nA1,One,20 - 49,Customer\nA2,Two,12,Customer\nA3,Three,,Prospect\n"
        "A4,Four,,\n"
    )
    assert cli.main(["fields", "--client", "acme"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"Fields a rubric can use (numbers from the export file {inbox / 'Account.csv'} (4 readable rows))"
    rows = {ln.split()[0]: ln for ln in lines[3:]}
    assert rows["relationship"].split() == ["relationship", "custom", "text", "75%", "Customer,", "Prospect"]
    assert rows["employees"].split()[:7] == ["employees", "built-in", "number", "50%", "34.5,", "12", "size"]
    assert rows["employees_high"].split() == ["employees_high", "range", "number", "50%", "49,", "12"]

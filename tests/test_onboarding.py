"""Onboarding a client end to end, once per source kind, through the real build DAG (dag.test):

* a Salesforce export (the real Salesforce-format sample) with head counts and revenue as bands
  and the custom field ``Classification__c`` driving a vector;
* a HubSpot export saved from the web app (column labels such as ``Record ID``, ``Company name``),
  built from the real Fortune 1000 list, with a band column and custom fields;
* the HubSpot API (the local HubSpot server), with a custom company property and a band property.

Each asserts what a new client would check: the custom values and band ranges in the warehouse,
the vector on the custom field scoring, valuation on the band's representative value, a bad
custom value kept as a warning, and ``marketmap fields`` listing the fields with fill rates.
"""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml
from sqlalchemy import create_engine, select

from marketmap import cli
from marketmap.warehouse import schema as t

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "tests" / "fixtures" / "salesforce_export"
FORTUNE = Path("/work/shared/data/fortune-1000-2021/fortune_1000_2021.csv")
if not FORTUNE.exists():  # the checkout's sibling folder, as the README's walkthrough uses it
    FORTUNE = ROOT.parent / "shared" / "data" / "fortune-1000-2021" / "fortune_1000_2021.csv"

SLACK = {"channels": {"revops": "#ob-revops", "leadership": "#ob-lead", "architect": "#ob-arch"}}
HEADCOUNT_BANDS = [(1, 9), (10, 49), (50, 249), (250, 499), (500, 999), (1000, 4999), (5000, 9999)]


def employee_band(n: int) -> str:
    """How exports write head-count bands: ``250 - 499``, ``1,000 - 4,999``, ``10,000+``."""
    for lo, hi in HEADCOUNT_BANDS:
        if lo <= n <= hi:
            return f"{lo:,} - {hi:,}"
    return "10,000+"


def write_client(tmp: Path, data: dict) -> Path:
    d = tmp / "clients"
    d.mkdir(exist_ok=True)
    shutil.copy(ROOT / "tests" / "fixtures" / "clients" / "_defaults.yaml", d / "_defaults.yaml")
    (d / f"{data['client_id']}.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    return d


def run_build(client_id: str):
    from marketmap.config import load_client
    from marketmap.orchestration.factory import build_dag

    dag = build_dag(load_client(client_id))
    for task in dag.tasks:
        task.retries = 0
    return dag.test(run_conf={"override_qa": True})  # small files: below the per-rep QA minimum


def warehouse(home: Path, client_id: str) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, dict]:
    eng = create_engine(f"sqlite:///{home / 'warehouse.db'}")
    with eng.connect() as conn:
        acc = pd.read_sql(select(t.accounts).where(t.accounts.c.client_id == client_id), conn)
        scores = pd.read_sql(select(t.account_scores).where(t.account_scores.c.client_id == client_id), conn)
        opps = pd.read_sql(select(t.opportunities).where(t.opportunities.c.client_id == client_id), conn)
        summary = conn.execute(select(t.runs.c.summary).where(t.runs.c.client_id == client_id)).scalar_one()
    eng.dispose()
    return acc, scores, opps, summary if isinstance(summary, dict) else json.loads(summary)


def points(scores: pd.DataFrame, key: str) -> dict:
    row = scores.set_index("account_key").loc[key]
    p = row["points"]
    return p if isinstance(p, dict) else json.loads(p)


def fields_json(capsys, client_id: str) -> dict:
    capsys.readouterr()  # the build's log lines
    assert cli.main(["fields", "--client", client_id, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    return {f["name"]: f for f in out["fields"]} | {"_origin": out["origin"]}


# --------------------------------------------------------------------------- Salesforce export


@pytest.mark.slow
def test_onboard_salesforce_export_with_custom_fields_and_bands(airflow_db, mm_home, tmp_path, monkeypatch, capsys):
    inbox = mm_home / "inbox" / "sfob"
    inbox.mkdir(parents=True)
    for f in SAMPLE.glob("*.csv"):
        shutil.copy(f, inbox / f.name)
    accounts = pd.read_csv(inbox / "Account.csv", dtype=str, encoding="utf-8-sig", keep_default_na=False)
    real = accounts["NumberOfEmployees"].copy()
    accounts["NumberOfEmployees"] = [employee_band(int(v)) if v else "" for v in real]
    revenue = pd.to_numeric(accounts["AnnualRevenue"], errors="coerce")
    accounts["AnnualRevenue"] = ["" if pd.isna(v) else "$1M-$5M" if v < 5e6 else "$5M-$10M" for v in revenue]
    accounts.loc[accounts["Name"] == "Good PLC", "Classification__c"] = "Partner"  # a third relationship
    accounts.to_csv(inbox / "Account.csv", index=False, encoding="utf-8-sig")
    opps_csv = pd.read_csv(inbox / "Opportunity.csv", dtype=str, encoding="utf-8-sig", keep_default_na=False)
    opps_csv.loc[0, "Probability"] = "ten"  # a bad value in a custom number column: kept as a warning
    opps_csv.to_csv(inbox / "Opportunity.csv", index=False, encoding="utf-8-sig")

    client = {
        "client_id": "sfob", "name": "Salesforce onboarding", "crm": {"kind": "csv", "export": {"format": "salesforce"}},
        "custom_fields": {
            "accounts": [{"name": "relationship", "type": "text", "column": "Classification__c",
                          "description": "Customer / Prospect (Salesforce custom field)"}],
            "opportunities": [{"name": "product_line", "type": "text", "column": "Product__c"},
                              {"name": "probability", "type": "number", "column": "Probability"}],
        },
        "icp": {"version": "v1", "rubrics": [{"vectors": [
            {"name": "relationship", "kind": "categorical", "field": "relationship", "weight": 40,
             "points": {"Customer": 40, "Prospect": 10}},
            {"name": "size", "kind": "bands", "field": "employees", "weight": 30,
             "bands": [{"min": 250, "max": 1000, "points": 30}, {"min": 1, "max": 250, "points": 10}]},
            {"name": "industry", "kind": "categorical", "field": "industry", "weight": 30,
             "points": {"Finance": 30, "Healthcare": 20, "Technology": 20}},
        ]}]},
        "valuation": {"methods": ["headcount"], "seat_price": 100, "penetration": 0.1},
        "slack": SLACK,
    }  # fmt: skip
    monkeypatch.setenv("MARKETMAP_CLIENTS_DIR", str(write_client(tmp_path, client)))
    run = run_build("sfob")
    assert str(run.state).endswith("success"), run.state

    acc, scores, opps, summary = warehouse(mm_home, "sfob")
    acc = acc.set_index("name")
    wj = acc.loc["Warner-Jackson"]  # Customer, 663 employees exported as "500 - 999", Finance
    assert (wj["employees"], wj["employees_low"], wj["employees_high"]) == (749.5, 500, 999)
    assert (wj["annual_revenue_low"], wj["annual_revenue_high"], wj["annual_revenue"]) == (1e6, 5e6, 3e6)
    assert json.loads(wj["custom"]) == {"relationship": "Customer"}
    assert json.loads(acc.loc["Good PLC", "custom"]) == {"relationship": "Partner"}
    assert pd.isna(acc.loc["Lead Account", "custom"])  # no value: no JSON at all
    # the custom field drives its vector; the band's midpoint its size band and the valuation
    assert points(scores, wj["account_key"]) == {"relationship": 40, "size": 30, "industry": 30}
    good = points(scores, acc.loc["Good PLC", "account_key"])  # 252 -> "250 - 499", Education
    assert good == {"relationship": 0, "size": 30, "industry": 0}
    assert scores.set_index("account_key").loc[wj["account_key"], "valuation"] == pytest.approx(749.5 * 10)
    # opportunities keep their custom fields; the bad number is a warning on its row, the deal loaded
    first = opps.set_index("crm_id").loc["006Ec00000AieKFIAZ"]
    assert json.loads(first["custom"]) == {"product_line": "Merchant Services"}
    second = opps.set_index("crm_id").loc[opps_csv.loc[1, "Id"]]
    assert json.loads(second["custom"])["probability"] == float(opps_csv.loc[1, "Probability"])
    warnings = list(csv.DictReader((Path(summary["outputs"]) / "warnings.csv").open(encoding="utf-8")))
    assert {"file": "Opportunity.csv", "row": "2", "field": "Probability", "value": "ten",
            "reason": "Probability 'ten' is neither a plain number nor a band like 20 - 49, 1,000 - 4,999, "
                      "10,000+ or $1M-$5M (units like M or k on a single number, and words are not guessed); "
                      "the value is left blank, the row is kept"} in warnings  # fmt: skip
    assert summary["rows_rejected"] == 0

    # the rep cockpit shows the custom field that drives the score next to it
    from marketmap.config import load_client
    from marketmap.reports import cockpit
    from marketmap.reports.render import write_report
    from marketmap.warehouse import client_engine

    cfg = load_client("sfob")
    html = write_report(cockpit.build(cfg, client_engine(cfg), run.run_id), tmp_path / "reports")
    [t1] = [p for p in html.parent.glob("cockpit__*_t1.csv")]
    rows = list(csv.DictReader(t1.open(encoding="utf-8")))
    assert list(rows[0])[:5] == ["account", "domain", "fit score", "relationship", "valuation"]
    assert {r["account"]: r["relationship"] for r in rows}["Warner-Jackson"] == "Customer"

    fields = fields_json(capsys, "sfob")
    assert fields["_origin"] == "warehouse (22 accounts)"
    rel = fields["relationship"]
    assert (rel["source"], rel["type"], rel["filled"], rel["total"]) == ("custom", "text", 20, 22)
    assert rel["examples"] == ["Customer", "Prospect", "Partner"] and rel["used_by"] == ["relationship"]
    assert fields["employees_low"]["source"] == "range" and fields["employees_low"]["filled"] == 20
    assert fields["employees"]["used_by"] == ["size"]


# --------------------------------------------------------------------------- HubSpot web-app export

HS_COMPANY_HEADER = ["Record ID", "Company name", "Company Domain Name", "Industry", "Number of Employees",
                     "Annual Revenue", "City", "State/Region", "Country/Region", "Company owner", "Create Date",
                     "Last Modified Date", "Lifecycle Stage", "Ticker", "Fortune newcomer", "Market Cap"]  # fmt: skip


def hubspot_ui_export(inbox: Path, n: int = 60) -> pd.DataFrame:
    """The first ``n`` Fortune 1000 companies as a HubSpot companies export saved from the web app,
    with deals and contacts exports that reference them by ``Associated Company IDs``."""
    f = pd.read_csv(FORTUNE, dtype=str, keep_default_na=False).head(n)
    ids = [str(9_000_000_000 + int(r)) for r in f["rank"]]
    companies = pd.DataFrame({
        "Record ID": ids, "Company name": f["company"],
        "Company Domain Name": f["Website"].str.replace(r"^https?://(www\d?\.)?", "", regex=True),
        "Industry": f["sector"], "Number of Employees": [employee_band(int(x)) for x in f["num. of employees"]],
        "Annual Revenue": f["revenue"].map(lambda m: "$1B+" if float(m) >= 100_000 else f"{float(m) * 1e6:.0f}"),
        "City": f["city"], "State/Region": f["state"], "Country/Region": "United States",
        "Company owner": ["Ann Owner" if i % 2 else "Bob Owner" for i in range(n)],
        "Create Date": "2024-01-15 09:30", "Last Modified Date": "2024-06-01 10:00",
        "Lifecycle Stage": ["Customer" if i % 3 == 0 else "Lead" for i in range(n)],
        "Ticker": f["Ticker"], "Fortune newcomer": f["newcomer"], "Market Cap": f["Market Cap"],
    })  # fmt: skip
    companies.loc[n - 1, "Company Domain Name"] = "linkedin.com/company/last-one"  # not the company's own
    companies.to_csv(inbox / "companies.csv", index=False)
    deals = pd.DataFrame({
        "Record ID": [str(5_000 + i) for i in range(n // 2)],
        "Deal Name": [f"{c} - renewal" for c in companies["Company name"][: n // 2]],
        "Deal Stage": ["Closed Won" if i % 2 == 0 else "Appointment Scheduled" for i in range(n // 2)],
        "Amount": [str(10_000 + 500 * i) for i in range(n // 2)],
        "Close Date": "2024-05-31", "Create Date": "2024-02-01 08:00", "Pipeline": "Sales Pipeline",
        "Deal owner": "Ann Owner",
        # HubSpot writes every associated company, ';'-separated: the first is the deal's account
        "Associated Company IDs": [f"{ids[i]};{ids[-1]}" if i == 0 else ids[i] for i in range(n // 2)],
    })  # fmt: skip
    deals.to_csv(inbox / "deals.csv", index=False)
    contacts = pd.DataFrame({
        "Record ID": [str(7_000 + i) for i in range(n)], "First Name": "Pat", "Last Name": [f"Lee{i}" for i in range(n)],
        "Email": [f"pat{i}@{d}" for i, d in enumerate(companies["Company Domain Name"])],
        "Job Title": "VP Revenue Operations", "Associated Company IDs": ids, "Contact owner": "Ann Owner",
    })  # fmt: skip
    contacts.to_csv(inbox / "contacts.csv", index=False)
    return companies


@pytest.mark.slow
def test_onboard_hubspot_web_app_export_without_a_column_mapping(airflow_db, mm_home, tmp_path, monkeypatch, capsys):
    inbox = mm_home / "inbox" / "hsui"
    inbox.mkdir(parents=True)
    companies = hubspot_ui_export(inbox)
    client = {
        "client_id": "hsui", "name": "HubSpot UI onboarding",
        "crm": {"kind": "csv", "export": {"format": "hubspot", "accounts": "companies.csv",
                                          "contacts": "contacts.csv", "opportunities": "deals.csv"}},
        "custom_fields": {"accounts": [
            {"name": "lifecycle_stage", "type": "text", "column": "Lifecycle Stage"},
            {"name": "newcomer", "type": "boolean", "column": "Fortune newcomer"},
            {"name": "market_cap", "type": "number", "column": "Market Cap", "description": "$M"},
        ]},
        "icp": {"version": "v1", "rubrics": [{"vectors": [
            {"name": "stage", "kind": "categorical", "field": "lifecycle_stage", "weight": 30,
             "points": {"Customer": 30, "Lead": 10}},
            {"name": "newcomer", "kind": "boolean", "field": "newcomer", "weight": 10, "true_points": 10},
            {"name": "size", "kind": "bands", "field": "employees", "weight": 40,
             "bands": [{"min": 10000, "points": 40}, {"min": 1000, "max": 10000, "points": 20}]},
            {"name": "cap", "kind": "bands", "field": "market_cap", "weight": 20,
             "bands": [{"min": 100000, "points": 20}, {"min": 0, "max": 100000, "points": 5}]},
        ]}]},
        "valuation": {"methods": ["revenue"], "revenue_coefficient": 0.001},
        "slack": SLACK,
    }  # fmt: skip
    monkeypatch.setenv("MARKETMAP_CLIENTS_DIR", str(write_client(tmp_path, client)))
    run = run_build("hsui")
    assert str(run.state).endswith("success"), run.state

    acc, scores, opps, summary = warehouse(mm_home, "hsui")
    assert len(acc) == 60 and summary["rows_rejected"] == 0
    acc = acc.set_index("crm_id")
    walmart = acc.loc["9000000001"]  # 2,200,000 employees -> "10,000+"; revenue $523,964M -> "$1B+"
    assert walmart["name"] == "Walmart" and walmart["domain"] == "walmart.com"  # stock.walmart.com: its registrable domain
    assert (walmart["employees"], walmart["employees_low"]) == (10_000, 10_000) and pd.isna(walmart["employees_high"])
    assert (walmart["annual_revenue"], walmart["annual_revenue_low"]) == (1e9, 1e9)
    assert json.loads(walmart["custom"]) == {"lifecycle_stage": "Customer", "market_cap": 411690, "newcomer": False}
    assert points(scores, walmart["account_key"]) == {"stage": 30, "newcomer": 0, "size": 40, "cap": 20}
    # a company without a market cap (State Farm is not listed): no value, the account kept
    dash = companies.index[~companies["Market Cap"].str.match(r"^[0-9.]+$")]
    assert list(companies.loc[dash, "Company name"]) == ["State Farm Insurance"]
    for i in dash:
        assert "market_cap" not in json.loads(acc.loc[companies.loc[i, "Record ID"], "custom"])
    # a website that is not the company's own is named by the export's own column label
    warnings = list(csv.DictReader((Path(summary["outputs"]) / "warnings.csv").open(encoding="utf-8")))
    [site] = [w for w in warnings if w["value"].startswith("linkedin.com")]
    assert (site["file"], site["row"], site["field"]) == ("companies.csv", "61", "Company Domain Name")
    # deals attach to the first associated company; their stage labels set won/closed
    deal = opps.set_index("crm_id").loc["5000"]
    assert deal["account_key"] == walmart["account_key"] and bool(deal["is_won"]) is True

    fields = fields_json(capsys, "hsui")
    assert (fields["newcomer"]["type"], fields["newcomer"]["filled"]) == ("boolean", 60)
    assert fields["market_cap"]["filled"] == 60 - len(dash)
    assert fields["lifecycle_stage"]["examples"] == ["Lead", "Customer"]


# --------------------------------------------------------------------------- HubSpot API


@pytest.mark.slow
def test_onboard_hubspot_api_with_a_custom_property_and_a_band_property(airflow_db, mm_home, tmp_path, monkeypatch, capsys):
    from servers.hubspot import HubSpotServer, _options, _prop
    from test_crm_build_dag import TOKEN, patch_adapter

    hs = HubSpotServer(token=TOKEN, rate_limit=None)
    hs.properties["companies"].update({
        "relationship": _prop("relationship", "enumeration", "select", hubspotDefined=False,
                              options=_options(("Customer", "Customer"), ("Prospect", "Prospect"))),
        "company_size": _prop("company_size", "string", "text", hubspotDefined=False),
        "products_owned": _prop("products_owned", "enumeration", "checkbox", hubspotDefined=False,
                                options=_options(("Payments", "Payments"), ("Lending", "Lending"))),
        "icp_fit_score": _prop("icp_fit_score", "number", "number", hubspotDefined=False),
        "mm_seats": _prop("mm_seats", "number", "number", hubspotDefined=False),
        "mm_products": _prop("mm_products", "string", "text", hubspotDefined=False),
    })  # fmt: skip
    sizes = ["20 - 49", "1,000 - 4,999", "10,000+", "50 - 249"]
    for i in range(24):
        hs.add("companies", {
            "name": f"Company {i:02d}", "domain": f"company{i:02d}.com", "industry": "Software",
            "country": "United States", "company_size": sizes[i % 4],
            "relationship": "Customer" if i % 2 else "Prospect",
            "products_owned": "Payments;Lending" if i % 3 == 0 else "Payments", "seats": str(10 * i),
        })  # fmt: skip
    hs.properties["companies"]["seats"] = _prop("seats", "number", "number", hubspotDefined=False)
    client = {
        "client_id": "hsapi", "name": "HubSpot API onboarding",
        "crm": {"kind": "hubspot", "conn_id": "hsapi_crm",
                "export": {"format": "hubspot", "account_columns": {"employees": "company_size"}}},
        "custom_fields": {"accounts": [
            {"name": "relationship", "type": "text", "column": "relationship"},
            {"name": "products", "type": "list", "column": "products_owned"},
            {"name": "seats", "type": "number", "column": "seats"},
        ]},
        # custom fields are push sources like built-in ones (a number to a number property, a list as a;b)
        "push": [{"object": "account", "mode": "update_only", "fields": [
            {"source": "fit_score", "crm_field": "icp_fit_score"},
            {"source": "seats", "crm_field": "mm_seats"},
            {"source": "products", "crm_field": "mm_products"},
        ]}],
        "icp": {"version": "v1", "rubrics": [{"vectors": [
            {"name": "relationship", "kind": "categorical", "field": "relationship", "weight": 40,
             "points": {"Customer": 40}},
            {"name": "products", "kind": "any_of", "field": "products", "weight": 20,
             "points": {"Lending": 20, "Payments": 5}},
            {"name": "size", "kind": "bands", "field": "employees", "weight": 40,
             "bands": [{"min": 1000, "points": 40}, {"min": 20, "max": 1000, "points": 15}]},
        ]}]},
        "valuation": {"methods": ["headcount"], "seat_price": 100, "penetration": 0.1},
        "enrichment": {"monthly_credit_budget": 0, "providers": []},
        "slack": SLACK,
    }  # fmt: skip
    with hs:
        monkeypatch.setenv("MARKETMAP_CLIENTS_DIR", str(write_client(tmp_path, client)))
        conn = {"conn_type": "http", "host": hs.url, "password": TOKEN, "extra": {"rate_limit": [150, 10]}}
        monkeypatch.setenv("AIRFLOW_CONN_HSAPI_CRM", json.dumps(conn))
        patch_adapter(monkeypatch)
        run = run_build("hsapi")
        assert str(run.state).endswith("success"), run.state

        pushed = {c["properties"]["name"]: c["properties"] for c in hs.objects["companies"].values()}

    acc, scores, _, summary = warehouse(mm_home, "hsapi")
    assert len(acc) == 24 and summary["rows_rejected"] == 0
    push = summary["steps"]["push"]["account"]["result"]
    assert push["failed"] == 0, push  # (the canary wrote the first 15, this step the rest)
    assert all(p["mm_products"] == p["products_owned"] and p["mm_seats"] == p["seats"] for p in pushed.values())
    assert (pushed["Company 03"]["mm_products"], pushed["Company 03"]["mm_seats"]) == ("Payments;Lending", "30")
    acc = acc.set_index("name")
    c3 = acc.loc["Company 03"]  # Customer, "Payments;Lending", "50 - 249"
    assert json.loads(c3["custom"]) == {"products": ["Payments", "Lending"], "relationship": "Customer", "seats": 30}
    assert (c3["employees"], c3["employees_low"], c3["employees_high"]) == (149.5, 50, 249)
    assert points(scores, c3["account_key"]) == {"relationship": 40, "products": 20, "size": 15}
    c2 = acc.loc["Company 02"]  # Prospect, "Payments", "10,000+"
    assert points(scores, c2["account_key"]) == {"relationship": 0, "products": 5, "size": 40}
    # the extract asked HubSpot for the custom properties (the raw copy holds them once each)
    raw = (Path(summary["outputs"]) / "crm_extract" / "account.csv").read_text(encoding="utf-8")
    header = next(csv.reader([raw.splitlines()[0]]))
    assert [header.count(p) for p in ("relationship", "products_owned", "company_size")] == [1, 1, 1]

    fields = fields_json(capsys, "hsapi")
    assert fields["products"]["type"] == "list" and fields["products"]["examples"][0] == "Payments"
    assert fields["relationship"]["filled"] == 24


# --------------------------------------------------------------------------- the README's walkthrough stays true


def test_readme_onboarding_walkthrough_validates_and_lists_its_fields(tmp_path, mm_home, monkeypatch, capsys):
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Onboarding a client", 1)[1]
    block = section.split("```yaml\n", 1)[1].split("```", 1)[0]
    data = yaml.safe_load("\n".join(line[3:] for line in block.splitlines()))  # the block is indented 3
    assert data["client_id"] == "fortune1000"
    monkeypatch.setenv("MARKETMAP_CLIENTS_DIR", str(write_client(tmp_path, data)))
    inbox = mm_home / "inbox" / "fortune1000"
    inbox.mkdir(parents=True)
    shutil.copy(FORTUNE, inbox / "fortune_1000_2021.csv")
    assert cli.main(["validate", str(tmp_path / "clients" / "fortune1000.yaml")]) == 0
    fields = fields_json(capsys, "fortune1000")
    shown = {  # the README's table (from the export: the same fill rates as after the build)
        "industry": ("built-in", "text", 1.0), "employees": ("built-in", "number", 1.0),
        "revenue_musd": ("custom", "number", 1.0), "market_cap_musd": ("custom", "number", 0.95),
        "profitable": ("custom", "boolean", 1.0), "ticker": ("custom", "text", 0.94),
    }  # fmt: skip
    assert {n: (fields[n]["source"], fields[n]["type"], round(fields[n]["fill_rate"], 2)) for n in shown} == shown
    assert fields["market_cap_musd"]["total"] == 1000 and fields["profitable"]["used_by"] == ["profitable"]

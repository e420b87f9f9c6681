"""The whole build DAG of a HubSpot client and of a Salesforce client, through Airflow (dag.test),
against the local vendor servers, with the demo client's documented push mapping: out-of-scope
accounts (Government: excluded -> OUT) and excluded contacts (interns) included.

Every step runs its production path: the Airflow connection is read by ``crm.adapter_for`` (its
extra sets the rate limit and timeout); only the retry waits are shrunk and, for Salesforce, the
https->http adapter of the local server is mounted on simple-salesforce's session.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import pytest
import yaml
from servers.hubspot import HubSpotServer, _options, _prop
from servers.salesforce import SalesforceServer
from servers.world import FAST, salesforce_custom_fields
from sqlalchemy import create_engine, select

from marketmap.warehouse import schema as t

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "pat-na1-fake-build-token"  # not a real token
SF_SESSION = "00Dxx0000000001!fake-build-session"

INDUSTRIES = ["Software", "Technology", "Financial Services", "Government", "Healthcare", "Software"]
TITLES = ["VP Revenue Operations", "Sales Intern", "Sales Manager", "Chief Revenue Officer"]


def client_file(tmp: Path, client_id: str, kind: str) -> Path:
    """The demo client's ICP, personas, valuation and documented account mapping, on a live CRM."""
    demo = yaml.safe_load((ROOT / "include" / "clients" / "demo.yaml").read_text())
    demo.update(client_id=client_id, name=f"{kind} build test")
    demo["crm"] = {"kind": kind, "conn_id": f"{client_id}_crm", "export": {"format": kind}}
    demo["enrichment"] = {"monthly_credit_budget": 0, "providers": []}
    demo.pop("territories", None)
    push = demo["push"]  # documented: tier picklist Tier 1/2/3 (no OUT), fit score, valuation if blank
    push.append({"object": "contact", "mode": "update_only", "fields": [
        {"source": "persona_tier", "crm_field": "Persona_Tier__c" if kind == "salesforce" else "persona_tier",
         "picklist": {"P1": "Tier 1", "P2": "Tier 2", "P3": "Tier 3"}}]})  # fmt: skip
    d = tmp / "clients"
    d.mkdir(exist_ok=True)
    shutil.copy(ROOT / "tests" / "fixtures" / "clients" / "_defaults.yaml", d / "_defaults.yaml")
    (d / f"{client_id}.yaml").write_text(yaml.safe_dump(demo, sort_keys=False))
    return d


def seed(add_company, add_contact, n: int = 36) -> None:
    for i in range(n):
        cid = add_company(
            f"Company {i:02d}", f"company{i:02d}.com", INDUSTRIES[i % len(INDUSTRIES)], 80 + 40 * i
        )
        for j in range(2):
            add_contact(
                cid, f"p{i}x{j}@company{i:02d}.com", f"Pat{j}", f"Lee{i}", TITLES[(i + j) % len(TITLES)]
            )


def run_build(client_id: str):
    from marketmap.config import load_client
    from marketmap.orchestration.factory import build_dag

    dag = build_dag(load_client(client_id))
    for task in dag.tasks:
        task.retries = 0
    return dag.test(run_conf={"override_qa": True})


def summary(home: Path, run_id: str) -> dict:
    eng = create_engine(f"sqlite:///{home / 'warehouse.db'}")
    with eng.connect() as conn:
        s = conn.execute(select(t.runs.c.summary).where(t.runs.c.run_id == run_id)).scalar_one()
    eng.dispose()
    return s if isinstance(s, dict) else json.loads(s)


def patch_adapter(monkeypatch, **extra):
    """Shrink the retry waits (and mount the local Salesforce); the connection is still Airflow's."""
    from marketmap import crm

    real = crm.adapter_for

    def adapter_for(cfg, conn=None, *, settings=None, mounts=None, out_dir=None):
        return real(cfg, conn, settings=dataclasses.replace(FAST), mounts=mounts or extra.get("mounts"),
                    out_dir=out_dir)  # fmt: skip

    monkeypatch.setattr(crm, "adapter_for", adapter_for)


@pytest.mark.slow
def test_hubspot_build_dag_end_to_end(airflow_db, mm_home, tmp_path, monkeypatch):
    hs = HubSpotServer(token=TOKEN, rate_limit=None)
    hs.properties["companies"].update({
        "Account_Tier__c": _prop("Account_Tier__c", "enumeration", "select", hubspotDefined=False,
                                 options=_options(("Tier 1", "Tier 1"), ("Tier 2", "Tier 2"), ("Tier 3", "Tier 3"))),
        "ICP_Fit_Score__c": _prop("ICP_Fit_Score__c", "number", "number", hubspotDefined=False),
        "Account_Valuation__c": _prop("Account_Valuation__c", "number", "number", hubspotDefined=False),
        "Prevent_Override__c": _prop("Prevent_Override__c", "bool", "booleancheckbox", hubspotDefined=False,
                                     options=_options(("true", "Yes"), ("false", "No"))),
    })  # fmt: skip
    hs.properties["contacts"]["persona_tier"] = _prop(
        "persona_tier", "enumeration", "select", groupName="contactinformation", hubspotDefined=False,
        options=_options(("Tier 1", "Tier 1"), ("Tier 2", "Tier 2"), ("Tier 3", "Tier 3")),
    )  # fmt: skip

    def add_company(name, domain, industry, employees):
        return hs.add("companies", {"name": name, "domain": domain, "industry": industry,
                                    "numberofemployees": str(employees), "country": "United States"})  # fmt: skip

    def add_contact(company, email, first, last, title):
        cid = hs.add("contacts", {"email": email, "firstname": first, "lastname": last, "jobtitle": title,
                                  "country": "United States"})  # fmt: skip
        hs.associate("contacts", cid, "companies", company)

    seed(add_company, add_contact)
    with hs:
        monkeypatch.setenv("MARKETMAP_CLIENTS_DIR", str(client_file(tmp_path, "hsbuild", "hubspot")))
        conn = {
            "conn_type": "http",
            "host": hs.url,
            "password": TOKEN,
            "extra": {"rate_limit": [150, 10], "timeout": 5},
        }
        monkeypatch.setenv("AIRFLOW_CONN_HSBUILD_CRM", json.dumps(conn))
        patch_adapter(monkeypatch)
        run = run_build("hsbuild")
        assert str(run.state).endswith("success"), run.state
        s = summary(mm_home, run.run_id)["steps"]
        push = s["push"]["account"]["result"]
        assert push["failed"] == 0 and push["updated"] > 0, push
        tiers = [c["properties"].get("Account_Tier__c") for c in hs.objects["companies"].values()]
        gov = [
            c["properties"]
            for c in hs.objects["companies"].values()
            if c["properties"].get("industry") == "Government"
        ]
        assert gov and all(not p.get("Account_Tier__c") for p in gov)  # OUT: blank, never the literal "OUT"
        assert "OUT" not in tiers and any(x in ("Tier 1", "Tier 2", "Tier 3") for x in tiers)
        interns = [
            c["properties"]
            for c in hs.objects["contacts"].values()
            if "Intern" in c["properties"]["jobtitle"]
        ]
        assert interns and all(not p.get("persona_tier") for p in interns)  # EXCLUDED: blank
        assert s["crm_validation"]["ok"], s["crm_validation"]["problems"]
        assert push["calls"]["total_calls"] > 0

        before = hs.calls("POST", r"/batch/(update|create|upsert)$")
        run2 = run_build("hsbuild")
        assert str(run2.state).endswith("success"), run2.state
        assert hs.calls("POST", r"/batch/(update|create|upsert)$") == before  # second run: 0 writes

        # a rep edits one tier; HubSpot then rejects that record for good: the run ends green but
        # says so — a warning alert with the counts and the push-log CSV, never silently
        from marketmap.alerts.delivery import outbox_path

        victim = next(i for i, c in hs.objects["companies"].items() if c["properties"].get("Account_Tier__c"))
        hs.objects["companies"][victim]["properties"]["Account_Tier__c"] = (
            "Tier 3" if tiers.count("Tier 3") == 0 else "Tier 1"
        )
        hs.inject("status", method="POST", path="batch/update", status=400, times=None,
                  when=lambda r: any(i.get("id") == victim for i in r.body["inputs"]),
                  body={"status": "error", "category": "VALIDATION_ERROR", "message": "Property values were not valid"})  # fmt: skip
        run3 = run_build("hsbuild")
        assert str(run3.state).endswith("success"), run3.state
        att = summary(mm_home, run3.run_id)["steps"]["push"]["attention"]
        assert att["counts"]["failed"] == 1 and att["alerts"]["fired"] == 1, att
        from marketmap.reports.render import report_dir

        assert att["push_log"].endswith("crm_push_attention.csv")  # a portfolio link to the CSV
        assert victim in (report_dir("hsbuild", run3.run_id) / "crm_push_attention.csv").read_text()
        sent = [json.loads(x) for x in outbox_path("hsbuild").read_text().splitlines()]
        assert any("needing attention" in m["text"] and "1 failed" in m["text"] for m in sent)


@pytest.mark.slow
def test_salesforce_build_dag_end_to_end(airflow_db, mm_home, tmp_path, monkeypatch):
    sf = SalesforceServer(token=SF_SESSION)
    salesforce_custom_fields(sf)

    def add_company(name, domain, industry, employees):
        return sf.add("Account", {"Name": name, "Website": f"https://www.{domain}", "Industry": industry,
                                  "NumberOfEmployees": employees, "BillingCountry": "United States"})  # fmt: skip

    def add_contact(company, email, first, last, title):
        sf.add("Contact", {"Email": email, "FirstName": first, "LastName": last, "Title": title,
                           "AccountId": company, "MailingCountry": "United States"})  # fmt: skip

    seed(add_company, add_contact)
    with sf:
        monkeypatch.setenv("MARKETMAP_CLIENTS_DIR", str(client_file(tmp_path, "sfbuild", "salesforce")))
        conn = {"conn_type": "http", "host": sf.instance_url, "password": SF_SESSION, "extra": {"timeout": 5}}
        monkeypatch.setenv("AIRFLOW_CONN_SFBUILD_CRM", json.dumps(conn))
        patch_adapter(monkeypatch, mounts=sf.mounts())
        run = run_build("sfbuild")
        assert str(run.state).endswith("success"), run.state
        s = summary(mm_home, run.run_id)["steps"]
        push = s["push"]["account"]["result"]
        assert push["failed"] == 0 and push["updated"] > 0, push
        accounts = list(sf.records["Account"].values())
        gov = [a for a in accounts if a["Industry"] == "Government"]
        assert gov and all(a.get("Account_Tier__c") in (None, "") for a in gov)
        assert any(a.get("Account_Tier__c") in ("Tier 1", "Tier 2", "Tier 3") for a in accounts)
        interns = [c for c in sf.records["Contact"].values() if "Intern" in c["Title"]]
        assert interns and all(c.get("Persona_Tier__c") in (None, "") for c in interns)
        assert s["crm_validation"]["ok"], s["crm_validation"]["problems"]

        writes = sf.calls("PATCH", r"composite/sobjects") + sf.calls("POST", r"composite/sobjects")
        run2 = run_build("sfbuild")
        assert str(run2.state).endswith("success"), run2.state
        assert sf.calls("PATCH", r"composite/sobjects") + sf.calls("POST", r"composite/sobjects") == writes

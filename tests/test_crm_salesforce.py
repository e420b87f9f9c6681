"""CRM sync against a local Salesforce, through the real simple-salesforce (https rewritten to
the local http server by a mounted requests adapter)."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest
from servers.salesforce import SalesforceServer
from servers.world import FAST, client_cfg, engine, salesforce_custom_fields, seed_accounts, seed_contacts
from sqlalchemy import select

from marketmap import crm
from marketmap.crm.plan import plan_push
from marketmap.warehouse import schema as t

UTC = dt.UTC


@pytest.fixture()
def sf():
    server = SalesforceServer(page_size=7)
    salesforce_custom_fields(server)
    with server:
        yield server


def adapter(sf, cfg, settings=FAST):
    return crm.adapter_for(
        cfg, {"host": sf.instance_url, "password": sf.token}, settings=settings, mounts=sf.mounts()
    )


def org(sf, n: int = 20, when: dt.datetime | None = None) -> dict[str, str]:
    """n accounts (one contact and one opportunity each) and two users."""
    sf.add("User", {"Name": "Avery Johnson", "Email": "avery@acme.test", "IsActive": True})
    sf.add("User", {"Name": "Blake Chen", "Email": "blake@acme.test", "IsActive": False})
    ids = {}
    for i in range(n):
        d = f"co{i:03d}.com"
        ids[d] = sf.add("Account", {"Name": f"Company {i:03d}", "Website": f"https://www.{d}/", "NumberOfEmployees": 100 + i,
                                    "BillingState": "Calif." if i % 2 else "N.Y."}, modified=when)  # fmt: skip
        sf.add(
            "Contact", {"LastName": f"Person {i}", "Email": f"p{i}@{d}", "AccountId": ids[d]}, modified=when
        )
        sf.add("Opportunity", {"Name": f"Deal {i}", "StageName": "Closed Won" if i % 3 == 0 else "Prospecting",
                               "Amount": 1000 * i, "AccountId": ids[d]}, modified=when)  # fmt: skip
    return ids


def test_full_extract_pages_soql_into_the_warehouse(sf, mm_home):
    cfg = client_cfg("salesforce")
    eng = engine()
    ids = org(sf, 20)
    ad = adapter(sf, cfg)
    summary = crm.extract(cfg, eng, "run-1", ad)
    assert summary["mode"] == "full"
    assert {k: v["records"] for k, v in summary["objects"].items()} == {
        "account": 20,
        "contact": 20,
        "opportunity": 20,
    }
    assert summary["load"]["accounts_loaded"] == 20 and summary["load"]["contacts_without_account"] == 0
    assert summary["owners"] == 2
    assert sf.calls("GET", r"/query/01g") >= 2  # queryMore followed nextRecordsUrl (7 per page)
    with eng.connect() as conn:
        acc = conn.execute(select(t.accounts.c.account_key, t.accounts.c.crm_id)).all()
        reps = conn.execute(select(t.reps.c.name, t.reps.c.active)).all()
        snap = conn.execute(select(t.crm_records.c.domain).where(t.crm_records.c.object == "account")).all()
    assert dict(acc)["co007.com"] == ids["co007.com"]
    assert sorted(reps) == [("Avery Johnson", True), ("Blake Chen", False)]
    assert len(snap) == 20 and {d for (d,) in snap} == set(ids)


def test_bulk_query_for_large_objects(sf, mm_home):
    cfg = client_cfg("salesforce")
    eng = engine()
    org(sf, 12)
    ad = adapter(sf, cfg, dataclasses.replace(FAST, bulk_query_threshold=10))
    summary = crm.extract(cfg, eng, "run-1", ad, load=False)
    assert summary["objects"]["account"]["records"] == 12
    assert sf.calls("POST", r"/jobs/query$") == 3 and sf.calls("GET", r"/jobs/query/.+/results") == 3


def test_incremental_extract_by_last_modified_window(sf, mm_home):
    cfg = client_cfg("salesforce")
    eng = engine()
    old = dt.datetime(2026, 1, 5, tzinfo=UTC)
    ids = org(sf, 10, when=old)
    ad = adapter(sf, cfg)
    crm.extract(cfg, eng, "run-full", ad)
    # in February, a rep renames one account; another is changed after the window
    acc = sf.get("Account", ids["co003.com"])
    acc.update(Name="Company Three Renamed", LastModifiedDate="2026-02-10T09:00:00.000+0000")
    sf.get("Account", ids["co004.com"]).update(Name="Later", LastModifiedDate="2026-03-02T00:00:00.000+0000")
    summary = crm.extract(
        cfg, eng, "run-feb", ad, since=dt.datetime(2026, 2, 1, tzinfo=UTC), until="2026-03-01T00:00:00Z"
    )
    assert summary["mode"] == "incremental"
    assert {k: v["records"] for k, v in summary["objects"].items()} == {
        "account": 1,
        "contact": 0,
        "opportunity": 0,
    }
    with eng.connect() as conn:
        names = dict(conn.execute(select(t.accounts.c.account_key, t.accounts.c.name)).all())
        orphans = conn.execute(
            select(t.contacts.c.contact_key).where(t.contacts.c.account_key.is_(None))
        ).all()
    assert names["co003.com"] == "Company Three Renamed" and names["co004.com"] == "Company 004"
    assert orphans == []  # contacts of unchanged accounts keep their account
    assert any(
        "LastModifiedDate >= 2026-02-01T00:00:00Z AND LastModifiedDate < 2026-03-01T00:00:00Z" in q
        for q in sf.soql
    )


def test_push_through_sobject_collections(sf, mm_home):
    cfg = client_cfg("salesforce")
    eng = engine()
    ids = org(sf, 30)
    ad = adapter(sf, cfg)
    crm.extract(cfg, eng, "run-1", ad)
    sf.get("Account", ids["co005.com"])["Prevent_Override__c"] = True
    sf.get("Account", ids["co006.com"])["Account_Valuation__c"] = 999.0  # a human's number
    crm.extract(cfg, eng, "run-2", ad)
    seed_accounts(eng, [{"key": d, "crm_id": i, "tier": "T1" if n % 2 else "T2", "score": 50 + n, "valuation": 10_000}
                        for n, (d, i) in enumerate(sorted(ids.items()))]
                  + [{"key": "newco.io", "name": "NewCo", "domain": "newco.io", "tier": "T3", "score": 30}])  # fmt: skip
    plan = plan_push(cfg, eng, "run-2", ad, cfg.push[0])
    s = plan.summary()
    assert s["updates"] == 29 and s["creates"] == 1 and s["skips_by_reason"] == {"prevent_override": 1}
    result = crm.execute_push(cfg, eng, "run-2", ad, plan)
    assert result.status == "success" and result.updated == 29 and result.created == 1
    assert sf.get("Account", ids["co001.com"])["Account_Tier__c"] == "Tier 1"
    assert sf.get("Account", ids["co006.com"])["Account_Valuation__c"] == 999.0  # if_blank
    assert sf.get("Account", ids["co005.com"])["Account_Tier__c"] is None
    # the duplicate-rule header went with every write; creates are upserts on the External ID
    assert set(sf.dup_headers) == {FAST.duplicate_rule_header}
    assert sf.calls("PATCH", r"/composite/sobjects/Account/MarketMap_Key__c$") == 1
    [new] = sf.where("Account", MarketMap_Key__c="newco.io")
    assert new["Account_Tier__c"] == "Tier 3"
    # unchanged: no write call
    before = sf.calls("PATCH") + sf.calls("POST", "composite")
    again = crm.execute_push(cfg, eng, "run-3", ad, plan_push(cfg, eng, "run-3", ad, cfg.push[0]))
    assert again.status == "nothing_to_do" and sf.calls("PATCH") + sf.calls("POST", "composite") == before


def test_bulk_api_2_for_large_loads_with_row_failures(sf, mm_home):
    cfg = client_cfg("salesforce")
    eng = engine()
    ids = org(sf, 260)
    ad = adapter(sf, cfg, dataclasses.replace(FAST, bulk_threshold=100, bulk_job_size=220))
    crm.extract(cfg, eng, "run-1", ad)
    seed_accounts(eng, [{"key": d, "crm_id": i, "tier": "T1", "score": 77} for d, i in ids.items()])
    plan = plan_push(cfg, eng, "run-1", ad, cfg.push[0])
    del sf.records["Account"][ids["co050.com"]]  # deleted in Salesforce before the load
    result = crm.execute_push(cfg, eng, "run-1", ad, plan, canary=False)
    assert result.updated == 259 and result.failed == 1
    # one Bulk API 2.0 job for the first 220 records, one sObject Collections call for the last 40
    assert sf.calls("POST", r"/jobs/ingest$") == 1 and sf.calls("PUT", r"/jobs/ingest/.+/batches$") == 1
    assert sf.calls("PATCH", r"/composite/sobjects$") == 1
    with eng.connect() as conn:
        err = conn.execute(select(t.push_log.c.error).where(t.push_log.c.status == "failed")).scalar_one()
    assert "INVALID_CROSS_REFERENCE_KEY" in err
    assert all(sf.get("Account", i)["ICP_Fit_Score__c"] == 77 for d, i in ids.items() if d != "co050.com")


def test_api_budget_stops_the_push(sf, mm_home):
    cfg = client_cfg("salesforce")
    eng = engine()
    ids = org(sf, 30)
    ad = adapter(sf, cfg)
    crm.extract(cfg, eng, "run-1", ad)
    seed_accounts(eng, [{"key": d, "crm_id": i, "tier": "T1", "score": 77} for d, i in ids.items()])
    plan = plan_push(cfg, eng, "run-1", ad, cfg.push[0])
    sf.daily_limit = sf.api_used + 2  # the org is about to run out of API calls for today
    result = crm.execute_push(cfg, eng, "run-1", ad, plan)
    assert result.status == "halted" and "API usage" in result.halted_reason
    assert result.not_attempted > 0


def test_ambiguous_external_id_upsert_is_safe_to_resend(sf, mm_home):
    cfg = client_cfg("salesforce")
    eng = engine()
    seed_accounts(
        eng,
        [
            {"key": f"new{i}.io", "name": f"New {i}", "domain": f"new{i}.io", "tier": "T2", "score": 60}
            for i in range(12)
        ],
    )
    ad = adapter(sf, cfg)
    sf.inject("timeout", method="PATCH", path=r"/composite/sobjects/Account/", after=True, delay=1.0)
    result = crm.execute_push(cfg, eng, "run-1", ad, plan_push(cfg, eng, "run-1", ad, cfg.push[0]))
    assert result.status == "success" and result.created == 12
    keys = [r["MarketMap_Key__c"] for r in sf.records["Account"].values()]
    assert sorted(keys) == sorted(f"new{i}.io" for i in range(12))


def test_contact_waterfall_on_salesforce(sf, mm_home):
    cfg = client_cfg("salesforce")
    eng = engine()
    acme = sf.add("Account", {"Name": "Acme", "Website": "acme.com"})
    jane = sf.add("Contact", {"LastName": "Roe", "Email": "JANE@acme.com", "AccountId": acme})
    bob = sf.add(
        "Contact",
        {"LastName": "Lee", "LinkedIn_URL__c": "http://linkedin.com/in/bob-lee/", "AccountId": acme},
    )
    ad = adapter(sf, cfg)
    crm.extract(cfg, eng, "run-1", ad)
    seed_accounts(eng, [{"key": "acme.com", "crm_id": acme, "tier": "T1", "score": 90}])
    seed_contacts(eng, [
        {"key": "n1", "account_key": "acme.com", "email": "jane@acme.com", "persona_tier": "P1", "persona_score": 80},
        {"key": "n2", "account_key": "acme.com", "email": "bob@acme.com", "linkedin": "https://www.linkedin.com/in/Bob-Lee",
         "persona_tier": "P2", "persona_score": 50},
        {"key": "n3", "account_key": "acme.com", "first": "Dana", "last": "Fox", "email": "dana@acme.com", "persona_tier": "P1"},
    ])  # fmt: skip
    plan = plan_push(cfg, eng, "run-1", ad, cfg.push[1])
    items = {i.key: i for i in plan.items}
    assert (items["n1"].crm_id, items["n1"].match) == (jane, "email")
    assert (items["n2"].crm_id, items["n2"].match) == (bob, "linkedin")
    assert items["n3"].operation == "create" and items["n3"].identity["AccountId"] == acme
    result = crm.execute_push(cfg, eng, "run-1", ad, plan)
    assert result.failed == 0, result.first_errors
    assert len(sf.records["Contact"]) == 3
    [dana] = sf.where("Contact", Email="dana@acme.com")
    assert dana["AccountId"] == acme and dana["Persona_Tier__c"] == "Tier 1"
    assert sf.get("Contact", bob)["Persona_Tier__c"] == "Tier 2"

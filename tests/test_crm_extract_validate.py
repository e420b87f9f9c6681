"""HubSpot extract (full pages with associations, incremental last-modified search window)
and post-load validation (counts reconcile, no duplicates by domain / e-mail / LinkedIn)."""

from __future__ import annotations

import datetime as dt

import pytest
from servers.hubspot import HubSpotServer
from servers.world import FAST, client_cfg, engine, hubspot_custom_properties, seed_accounts
from sqlalchemy import select

from marketmap import crm
from marketmap.crm import hubspot as hubspot_adapter
from marketmap.crm.plan import plan_push
from marketmap.warehouse import schema as t

UTC = dt.UTC
JAN = dt.datetime(2026, 1, 10, tzinfo=UTC).timestamp()


@pytest.fixture()
def hs():
    server = HubSpotServer(token="pat-na1-t", rate_limit=None, page_limit=5)
    hubspot_custom_properties(server)
    with server:
        yield server


def company_world(hs, n=12):
    ids = {}
    for i in range(n):
        d = f"co{i:02d}.com"
        ids[d] = hs.add(
            "companies", {"name": f"Company {i:02d}", "domain": d, "numberofemployees": 50 + i}, modified=JAN
        )
        c = hs.add("contacts", {"email": f"x{i}@{d}", "lastname": f"X{i}"}, modified=JAN)
        hs.associate("contacts", c, "companies", ids[d])
        deal = hs.add(
            "deals", {"dealname": f"Deal {i}", "dealstage": "closedwon", "amount": "1000"}, modified=JAN
        )
        hs.associate("deals", deal, "companies", ids[d])
    hs.add_owner("501", "avery@acme.test", "Avery", "Johnson")
    return ids


def test_hubspot_full_then_incremental_extract(hs, mm_home):
    cfg = client_cfg("hubspot")
    eng = engine()
    ids = company_world(hs)
    ad = crm.adapter_for(cfg, {"host": hs.url, "password": "pat-na1-t"}, settings=FAST)
    full = crm.extract(cfg, eng, "run-full", ad)
    assert {k: v["records"] for k, v in full["objects"].items()} == {
        "account": 12,
        "contact": 12,
        "opportunity": 12,
    }
    assert full["load"]["contacts_without_account"] == 0 and full["load"]["opportunities_won"] == 12
    assert full["owners"] == 1
    assert hs.calls("GET", r"/crm/v3/objects/companies$") == 3  # 5 per page

    # February: one company renamed, one contact changed; one company changed in March
    feb = dt.datetime(2026, 2, 10, tzinfo=UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    hs.get("companies", ids["co03.com"]).update(name="Company Three", hs_lastmodifieddate=feb)
    hs.get("companies", ids["co04.com"]).update(name="Later", hs_lastmodifieddate="2026-03-05T00:00:00.000Z")
    contact = next(o for o, r in hs.objects["contacts"].items() if r["properties"]["email"] == "x7@co07.com")
    hs.get("contacts", contact).update(jobtitle="CFO", lastmodifieddate=feb)
    inc = crm.extract(
        cfg, eng, "run-feb", ad, since="2026-02-01T00:00:00Z", until=dt.datetime(2026, 3, 1, tzinfo=UTC)
    )
    assert {k: v["records"] for k, v in inc["objects"].items()} == {
        "account": 1,
        "contact": 1,
        "opportunity": 0,
    }
    with eng.connect() as conn:
        names = dict(conn.execute(select(t.accounts.c.account_key, t.accounts.c.name)).all())
        title, acc = conn.execute(
            select(t.contacts.c.title, t.contacts.c.account_key).where(t.contacts.c.crm_id == contact)
        ).one()
        orphans = conn.execute(select(t.contacts.c.crm_id).where(t.contacts.c.account_key.is_(None))).all()
    assert names["co03.com"] == "Company Three" and names["co04.com"] == "Company 04"
    assert (title, acc) == ("CFO", "co07.com") and orphans == []


def test_incremental_search_restarts_past_the_10000_cap(hs, mm_home, monkeypatch):
    monkeypatch.setattr(hubspot_adapter, "SEARCH_CAP", 4)  # the real cap is 10,000
    monkeypatch.setattr(hubspot_adapter, "SEARCH_PAGE", 2)
    for i in range(9):
        hs.add("companies", {"name": f"C{i}", "domain": f"c{i}.com"}, modified=JAN + i * 60)
    cfg = client_cfg("hubspot")
    ad = crm.adapter_for(cfg, {"host": hs.url, "password": "pat-na1-t"}, settings=FAST)
    got = list(ad.extract("account", ["name"], since="2026-01-01T00:00:00Z", until="2026-02-01T00:00:00Z"))
    assert sorted(r["name"] for r in got) == [f"C{i}" for i in range(9)]


def test_validation_after_push(hs, mm_home):
    cfg = client_cfg("hubspot")
    eng = engine()
    ids = company_world(hs, 6)
    ad = crm.adapter_for(cfg, {"host": hs.url, "password": "pat-na1-t"}, settings=FAST)
    crm.extract(cfg, eng, "run-1", ad)
    seed_accounts(eng, [{"key": d, "crm_id": i, "tier": "T1", "score": 80} for d, i in ids.items()]
                  + [{"key": f"new{i}.io", "name": f"New {i}", "domain": f"new{i}.io", "tier": "T2", "score": 60} for i in range(3)])  # fmt: skip
    result = crm.execute_push(cfg, eng, "run-1", ad, plan_push(cfg, eng, "run-1", ad, cfg.push[0]))
    assert result.created == 3
    report = crm.validate_after_push(cfg, eng, ad, "run-1")
    assert report["ok"], report["problems"]
    assert report["counts"]["account"]["crm_now"] == report["counts"]["account"]["snapshot"] == 9
    assert report["counts"]["account"]["created_found_in_crm"] == 3
    # the warehouse follows the CRM: the three created accounts now carry their new CRM ids
    assert report["counts"]["source_to_warehouse"]["accounts_without_crm_id"] == 0
    assert report["counts"]["account"]["read_back"] == 9 and report["differences"] == []
    assert report["duplicates"]["created_by_domain"] == {}

    # someone else creates a second "new1.io" in HubSpot: a duplicate of what we created
    hs.add("companies", {"name": "New 1 (copy)", "domain": "www.new1.io"})
    report = crm.validate_after_push(cfg, eng, ad, "run-1")
    assert not report["ok"]
    assert any("duplicate accounts by domain" in p and "new1.io" in p for p in report["problems"])
    assert any("the CRM holds 10 records, Market Map knows 9" in w for w in report["warnings"])


def test_validation_flags_crm_duplicates_already_there(hs, mm_home):
    cfg = client_cfg("hubspot")
    eng = engine()
    hs.add("companies", {"name": "Acme", "domain": "acme.com"})
    hs.add("companies", {"name": "Acme Inc", "domain": "www.acme.com"})
    ad = crm.adapter_for(cfg, {"host": hs.url, "password": "pat-na1-t"}, settings=FAST)
    crm.extract(cfg, eng, "run-1", ad)
    report = crm.validate_after_push(cfg, eng, ad, "run-1")
    assert report["ok"]  # not created by us: a warning to clean up, merged in the warehouse
    assert report["duplicates"]["account_domain_in_crm"] == 1
    assert report["counts"]["source_to_warehouse"] == {
        "crm_ids_linked": 2, "duplicates_merged": 1, "accounts": 1, "accounts_with_crm_id": 1,
        "accounts_without_crm_id": 0, "contacts": 0,
    }  # fmt: skip


@pytest.mark.postgres
def test_sync_on_postgres(hs, mm_home, pg_database, monkeypatch):
    """The same flow on PostgreSQL: upserts, the relink UPDATE and JSON columns are dialect-specific."""
    monkeypatch.setenv("MARKETMAP_WAREHOUSE_URL", pg_database)
    cfg = client_cfg("hubspot")
    eng = engine()
    assert eng.dialect.name == "postgresql"
    ids = company_world(hs, 8)
    ad = crm.adapter_for(cfg, {"host": hs.url, "password": "pat-na1-t"}, settings=FAST)
    crm.extract(cfg, eng, "pg-full", ad)
    feb = dt.datetime(2026, 2, 10, tzinfo=UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    hs.get("companies", ids["co02.com"]).update(name="Renamed", hs_lastmodifieddate=feb)
    inc = crm.extract(cfg, eng, "pg-feb", ad, since="2026-02-01T00:00:00Z", until="2026-03-01T00:00:00Z")
    assert inc["objects"]["account"]["records"] == 1
    seed_accounts(eng, [{"key": d, "crm_id": i, "tier": "T1", "score": 80} for d, i in ids.items()]
                  + [{"key": "pgnew.io", "name": "PG New", "domain": "pgnew.io", "tier": "T2", "score": 60}])  # fmt: skip
    result = crm.execute_push(cfg, eng, "pg-1", ad, plan_push(cfg, eng, "pg-1", ad, cfg.push[0]))
    assert (result.status, result.updated, result.created) == ("success", 8, 1)
    again = crm.execute_push(cfg, eng, "pg-2", ad, plan_push(cfg, eng, "pg-2", ad, cfg.push[0]))
    assert again.status == "nothing_to_do"
    assert crm.validate_after_push(cfg, eng, ad, "pg-1")["ok"]
    with eng.connect() as conn:
        orphans = conn.execute(
            select(t.contacts.c.crm_id).where(
                t.contacts.c.client_id == cfg.client_id, t.contacts.c.account_key.is_(None)
            )
        ).all()
    assert orphans == []

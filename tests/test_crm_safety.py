"""CRM safety (issue 16) through the real client libraries against the local vendor servers:
the configured rubric version, OUT / EXCLUDED values, preflight of every producible value,
field creation, per-record transient retries, parking, deleted records, the warehouse
following CRM ids, push_field_changes, connection extras and the validation report."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest
from servers.hubspot import _options, _prop
from servers.salesforce import SalesforceServer
from servers.world import (
    CLIENT,
    FAST,
    HS_TOKEN,
    HUBSPOT_PUSH,
    SALESFORCE_PUSH,
    client_cfg,
    engine,
    salesforce_custom_fields,
    scored_version,
    seed_accounts,
    seed_contacts,
)
from sqlalchemy import select

from marketmap import crm
from marketmap.crm.plan import plan_push
from marketmap.warehouse import schema as t
from marketmap.warehouse import upsert

TOKEN = HS_TOKEN


@pytest.fixture()
def sf():
    server = SalesforceServer()
    salesforce_custom_fields(server)
    with server:
        yield server


def hs_adapter(server, cfg, settings=FAST):
    return crm.adapter_for(cfg, {"host": server.url, "password": TOKEN}, settings=settings)


def sf_adapter(server, cfg, settings=FAST):
    return crm.adapter_for(
        cfg,
        {"host": server.instance_url, "password": server.token},
        settings=settings,
        mounts=server.mounts(),
    )


def push_cfg(kind: str, **account_push) -> object:
    base = HUBSPOT_PUSH if kind == "hubspot" else SALESFORCE_PUSH
    return client_cfg(kind, push=[{**base[0], **account_push}, base[1]])


def log_rows(eng, run_id):
    with eng.connect() as conn:
        rows = conn.execute(select(t.push_log).where(t.push_log.c.run_id == run_id)).mappings().all()
    return {(r["object"], r["record_key"]): dict(r) for r in rows}


def hs_writes(server) -> int:
    return server.calls("POST", r"/batch/(update|create|upsert)$")


# --------------------------------------------------------------------------- 1. the right scores


def test_push_sends_the_configured_rubric_version_not_the_latest_scored(hs, mm_home):
    cfg = client_cfg("hubspot")
    eng = engine()
    a = hs.add("companies", {"name": "Acme", "domain": "acme.com"})
    ad = hs_adapter(hs, cfg)
    crm.extract(cfg, eng, "x", ad)
    seed_accounts(
        eng, [{"key": "acme.com", "crm_id": a, "tier": "T2", "score": 55}]
    )  # version A (the config's)
    later = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
    with eng.begin() as conn:  # a dry run with candidate rubric B scored later, tier T1
        upsert(conn, t.account_scores, [{"client_id": CLIENT, "account_key": "acme.com", "product": "core",
                                         "rubric_version": "v1#candidateB", "score": 95, "tier": "T1",
                                         "scored_at": later}])  # fmt: skip
    assert scored_version().startswith("v1#") and scored_version() != "v1#candidateB"
    plan = plan_push(cfg, eng, "r1", ad, cfg.push[0])
    item = next(i for i in plan.items if i.key == "acme.com")
    assert item.changes["hs_ideal_customer_profile"][1] == "tier_2"  # A's tier, not B's
    assert item.changes["icp_fit_score"][1] == 55
    crm.execute_push(cfg, eng, "r1", ad, plan)
    assert hs.get("companies", a)["hs_ideal_customer_profile"] == "tier_2"
    # a build that scored nothing new pushes nothing new
    before = hs_writes(hs)
    r2 = crm.execute_push(cfg, eng, "r2", ad, plan_push(cfg, eng, "r2", ad, cfg.push[0]))
    assert r2.status == "nothing_to_do" and hs_writes(hs) == before


def test_contact_scores_of_the_configured_persona_version_only(hs, mm_home):
    cfg = client_cfg("hubspot")
    eng = engine()
    co = hs.add("companies", {"name": "Acme", "domain": "acme.com"})
    jane = hs.add("contacts", {"email": "jane@acme.com", "lastname": "Roe"})
    hs.associate("contacts", jane, "companies", co)
    ad = hs_adapter(hs, cfg)
    crm.extract(cfg, eng, "x", ad)
    with eng.connect() as conn:
        key = conn.execute(select(t.contacts.c.contact_key)).scalar_one()
    seed_contacts(eng, [{"key": key, "crm_id": jane, "account_crm_id": co, "email": "jane@acme.com",
                         "persona_tier": "P2", "persona_score": 50}])  # fmt: skip
    with eng.begin() as conn:
        upsert(conn, t.contact_scores, [{"client_id": CLIENT, "contact_key": key, "rubric_version": "personas#old",
                                         "persona_tier": "P1", "persona_score": 99,
                                         "scored_at": dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)}])  # fmt: skip
    plan = plan_push(cfg, eng, "r1", ad, cfg.push[1])
    assert next(i for i in plan.items if i.key == key).changes["persona_tier"][1] == "Tier 2"


# --------------------------------------------------------------------------- 2. every value accepted


def out_world(hs, cfg):
    eng = engine()
    ids = {d: hs.add("companies", {"name": d, "domain": d, "hs_ideal_customer_profile": "tier_2"})
           for d in ("in.com", "out.com")}  # fmt: skip
    ad = hs_adapter(hs, cfg)
    crm.extract(cfg, eng, "x", ad)
    seed_accounts(eng, [{"key": "in.com", "crm_id": ids["in.com"], "tier": "T1", "score": 90},
                        {"key": "out.com", "crm_id": ids["out.com"], "tier": "OUT", "score": 10}])  # fmt: skip
    return eng, ad, ids


def test_out_of_scope_blank_clears_the_tier_and_pushes_the_rest(hs, mm_home):
    cfg = push_cfg("hubspot")  # default out_of_scope: blank
    eng, ad, ids = out_world(hs, cfg)
    assert crm.preflight(cfg, ad).ok
    r = crm.execute_push(cfg, eng, "r1", ad, plan_push(cfg, eng, "r1", ad, cfg.push[0]))
    assert r.status == "success" and r.failed == 0
    out = hs.get("companies", ids["out.com"])
    assert out["hs_ideal_customer_profile"] in ("", None) and out["icp_fit_score"] == "10"
    assert hs.get("companies", ids["in.com"])["hs_ideal_customer_profile"] == "tier_1"
    assert plan_push(cfg, eng, "r2", ad, cfg.push[0]).summary()["updates"] == 0  # converged


def test_out_of_scope_skip_leaves_the_record_alone(hs, mm_home):
    cfg = push_cfg("hubspot", out_of_scope="skip")
    eng, ad, ids = out_world(hs, cfg)
    plan = plan_push(cfg, eng, "r1", ad, cfg.push[0])
    assert {i.key: i.reason for i in plan.items}["out.com"] == "out_of_scope"
    crm.execute_push(cfg, eng, "r1", ad, plan)
    assert hs.get("companies", ids["out.com"])["hs_ideal_customer_profile"] == "tier_2"


def test_out_of_scope_value_is_checked_by_preflight_and_created_on_request(hs, mm_home):
    picklist = {"T1": "tier_1", "T2": "tier_2", "T3": "tier_3", "OUT": "out_of_scope"}
    fields = [{"source": "tier", "crm_field": "mm_tier", "picklist": picklist},
              {"source": "fit_score", "crm_field": "icp_fit_score"}]  # fmt: skip
    hs.properties["companies"]["mm_tier"] = _prop("mm_tier", "enumeration", "select", hubspotDefined=False,
                                                  options=_options(("tier_1", "T1"), ("tier_2", "T2"), ("tier_3", "T3")))  # fmt: skip
    cfg = push_cfg("hubspot", out_of_scope="value", fields=fields)
    eng, ad, ids = out_world(hs, cfg)
    report = crm.preflight(cfg, ad)
    assert not report.ok and any("'out_of_scope'" in p and "mm_tier" in p for p in report.problems), report
    # the literal OUT never reaches the CRM: the push is not started, so nothing is written
    fixed = crm.preflight(cfg, ad, create_missing=True)  # adds the missing picklist value
    assert fixed.ok, fixed
    assert "out_of_scope" in [o["value"] for o in hs.properties["companies"]["mm_tier"]["options"]]
    r = crm.execute_push(cfg, eng, "r1", ad, plan_push(cfg, eng, "r1", ad, cfg.push[0]))
    assert r.failed == 0 and hs.get("companies", ids["out.com"])["mm_tier"] == "out_of_scope"


def test_out_of_scope_value_needs_a_picklist_entry():
    from marketmap.config import ConfigError

    fields = [{"source": "tier", "crm_field": "x", "picklist": {"T1": "a", "T2": "b", "T3": "c"}}]
    with pytest.raises((ConfigError, ValueError), match="OUT"):
        push_cfg("hubspot", out_of_scope="value", fields=fields)


def test_every_score_output_can_be_mapped_and_pushed(hs, mm_home):
    for name, type_ in (("mm_propensity", "number"), ("mm_abm", "string"), ("mm_intent", "number")):
        hs.properties["companies"][name] = _prop(name, type_, "number" if type_ == "number" else "text",
                                                 hubspotDefined=False)  # fmt: skip
    fields = [{"source": "propensity", "crm_field": "mm_propensity"}, {"source": "abm_grade", "crm_field": "mm_abm"},
              {"source": "intent", "crm_field": "mm_intent"}]  # fmt: skip
    cfg = push_cfg("hubspot", fields=fields)
    eng = engine()
    a = hs.add("companies", {"name": "Acme", "domain": "acme.com"})
    ad = hs_adapter(hs, cfg)
    crm.extract(cfg, eng, "x", ad)
    seed_accounts(eng, [{"key": "acme.com", "crm_id": a, "tier": "T1", "score": 80}])
    with eng.begin() as conn:
        conn.execute(t.account_scores.update().values(propensity=84.5, abm_grade="1A", intent=72.0))
    assert crm.preflight(cfg, ad).ok
    crm.execute_push(cfg, eng, "r1", ad, plan_push(cfg, eng, "r1", ad, cfg.push[0]))
    got = hs.get("companies", a)
    assert (got["mm_propensity"], got["mm_abm"], got["mm_intent"]) == ("84.5", "1A", "72")


def test_salesforce_fields_created_through_tooling_api_or_listed_for_an_admin(sf, mm_home):
    fields = [{"source": "tier", "crm_field": "MM_Tier__c", "picklist": {"T1": "Tier 1", "T2": "Tier 2", "T3": "Tier 3"}},
              {"source": "propensity", "crm_field": "MM_Propensity__c"}]  # fmt: skip
    cfg = push_cfg("salesforce", fields=fields, create_missing_fields=True)
    ad = sf_adapter(sf, cfg)
    sf.can_customize = False
    report = crm.preflight(cfg, ad)
    assert not report.ok
    assert any("MM_Tier__c" in x and "Picklist" in x and "Tier 1" in x for x in report.admin_todo), report
    assert any("MM_Propensity__c" in x and "Number" in x for x in report.admin_todo)
    sf.can_customize = True
    report = crm.preflight(cfg, ad)
    assert report.ok, report
    assert [p["value"] for p in sf.describe["Account"]["MM_Tier__c"]["picklistValues"]] == [
        "Tier 1",
        "Tier 2",
        "Tier 3",
    ]
    assert sf.describe["Account"]["MM_Propensity__c"]["type"] == "double"


# --------------------------------------------------------------------------- 3/5. faults, parking, visibility


def sf_world(sf, n=20, **account_push):
    cfg = push_cfg("salesforce", **account_push)
    eng = engine()
    ids = {
        f"co{i:02d}.com": sf.add("Account", {"Name": f"Co {i}", "Website": f"co{i:02d}.com"})
        for i in range(n)
    }
    ad = sf_adapter(sf, cfg)
    crm.extract(cfg, eng, "x", ad)
    seed_accounts(
        eng, [{"key": d, "crm_id": i, "tier": "T2", "score": 50 + n} for n, (d, i) in enumerate(ids.items())]
    )
    return cfg, eng, ad, ids


def test_unable_to_lock_row_in_the_canary_is_retried_not_counted(sf, mm_home):
    cfg, eng, ad, ids = sf_world(sf)
    for rid in list(ids.values())[:20]:
        sf.locked_rows[rid] = 1  # every record's first write hits a row lock
    r = crm.execute_push(cfg, eng, "r1", ad, plan_push(cfg, eng, "r1", ad, cfg.push[0]))
    assert r.status == "success" and r.failed == 0 and r.updated == 20, r
    assert r.retried_records >= 15
    assert all(sf.get("Account", i)["Account_Tier__c"] == "Tier 2" for i in ids.values())


def test_permanent_failures_are_parked_and_never_block_the_canary(sf, mm_home):
    cfg, eng, ad, ids = sf_world(sf, park_after_failures=2)
    bad = list(ids)[:3]
    for d in bad:
        sf.locked_rows[ids[d]] = 10**6  # locked for good
    r1 = crm.execute_push(cfg, eng, "r1", ad, plan_push(cfg, eng, "r1", ad, cfg.push[0]), canary=False)
    assert r1.failed == 3 and r1.updated == 17 and r1.needs_attention
    # next run: the three are retried, but outside the canary and outside the error-rate halt
    r2 = crm.execute_push(cfg, eng, "r2", ad, plan_push(cfg, eng, "r2", ad, cfg.push[0]))
    assert r2.status == "completed_with_errors" and r2.failed == 3 and r2.needs_attention
    assert r2.canary == {} or r2.canary["failed"] == 0
    plan3 = plan_push(cfg, eng, "r3", ad, cfg.push[0])
    reasons = {i.key: i.reason for i in plan3.items}
    assert all(reasons[d].startswith("parked: ") and "UNABLE_TO_LOCK_ROW" in reasons[d] for d in bad)
    r3 = crm.execute_push(cfg, eng, "r3", ad, plan3)
    assert r3.parked == 3 and r3.needs_attention and r3.status == "nothing_to_do"
    # new values un-park a record
    with eng.begin() as conn:
        conn.execute(
            t.account_scores.update().where(t.account_scores.c.account_key == bad[0]).values(tier="T1")
        )
    sf.locked_rows.clear()
    r4 = crm.execute_push(cfg, eng, "r4", ad, plan_push(cfg, eng, "r4", ad, cfg.push[0]))
    assert r4.updated == 1 and r4.parked == 2


def test_attention_alert_and_push_log_csv(sf, mm_home, tmp_path):
    from marketmap.crm.attention import attention_alert, attention_counts, write_push_log

    cfg, eng, ad, ids = sf_world(sf)
    sf.locked_rows[ids["co19.com"]] = 10**6
    out = crm.push_all(cfg, eng, "r1", ad)
    counts = attention_counts(out)
    assert counts["failed"] == 1
    path = write_push_log(eng, CLIENT, "r1", tmp_path)
    assert "co19.com" in path.read_text() and "UNABLE_TO_LOCK_ROW" in path.read_text()
    alert = attention_alert(CLIENT, "r1", counts, str(path))
    assert (
        alert.severity == "warning" and "1 failed" in alert.title and alert.numbers["push_log"] == str(path)
    )
    assert attention_alert(CLIENT, "r2", attention_counts({}), None) is None


@pytest.mark.parametrize("policy", ["recreate", "skip", "flag"])
def test_records_deleted_in_the_crm_follow_the_client_choice(hs, mm_home, policy):
    cfg = push_cfg("hubspot", deleted_in_crm=policy)
    eng = engine()
    a = hs.add("companies", {"name": "Gone", "domain": "gone.com"})
    ad = hs_adapter(hs, cfg)
    crm.extract(cfg, eng, "x", ad)
    seed_accounts(
        eng,
        [{"key": "gone.com", "crm_id": a, "name": "Gone", "domain": "gone.com", "tier": "T1", "score": 90}],
    )
    crm.execute_push(cfg, eng, "r1", ad, plan_push(cfg, eng, "r1", ad, cfg.push[0]))
    del hs.objects["companies"][a]  # a rep deletes it
    crm.extract(cfg, eng, "x2", ad)  # the monthly extract forgets it
    r = crm.execute_push(cfg, eng, "r2", ad, plan_push(cfg, eng, "r2", ad, cfg.push[0]))
    found = hs.find_by("companies", "domain", "gone.com")
    with eng.connect() as conn:
        wh = conn.execute(
            select(t.accounts.c.crm_id).where(t.accounts.c.account_key == "gone.com")
        ).scalar_one()
    if policy == "recreate":
        assert r.created == 1 and len(found) == 1 and wh == found[0]  # the warehouse follows the new id
        assert crm.validate_after_push(cfg, eng, ad, "r2")["ok"]
    else:
        assert found == [] and r.created == 0 and wh == a
        assert r.deleted_in_crm == (1 if policy == "flag" else 0)
        assert log_rows(eng, "r2")[("account", "gone.com")]["error"] == "deleted_in_crm"


def test_recreated_account_replaces_the_dead_id_and_contacts_follow(hs, mm_home):
    cfg = client_cfg("hubspot")
    eng = engine()
    old = hs.add("companies", {"name": "Acme", "domain": "acme.com"})
    ad = hs_adapter(hs, cfg)
    crm.extract(cfg, eng, "x", ad)
    seed_accounts(eng, [{"key": "acme.com", "crm_id": old, "domain": "acme.com", "tier": "T1", "score": 90}])
    seed_contacts(eng, [{"key": "c1", "account_key": "acme.com", "account_crm_id": old, "email": "new@acme.com",
                         "last": "New", "persona_tier": "P1", "persona_score": 90}])  # fmt: skip
    del hs.objects["companies"][old]
    new = hs.add("companies", {"name": "Acme Inc", "domain": "acme.com"})  # a person re-created it
    # deleted after the last extract: the update finds nothing; the snapshot forgets the dead id,
    # nothing halts, no contact is created against the dead id
    out = crm.push_all(cfg, eng, "r0", ad)
    assert out["account"]["result"]["status"] != "halted" and out["account"]["result"]["failed"] == 1
    assert out["contact"]["result"]["created"] == 0
    assert hs.find_by("contacts", "email", "new@acme.com") == []
    out = crm.push_all(cfg, eng, "r1", ad)
    assert out["account"]["result"]["failed"] == 0 and out["contact"]["result"]["failed"] == 0
    with eng.connect() as conn:
        acc = conn.execute(
            select(t.accounts.c.crm_id).where(t.accounts.c.account_key == "acme.com")
        ).scalar_one()
        ids = conn.execute(select(t.account_crm_ids.c.crm_id)).scalars().all()
        con = conn.execute(select(t.contacts.c.account_crm_id, t.contacts.c.crm_id)).one()
    assert acc == new and ids == [new] and con.account_crm_id == new
    created = hs.find_by("contacts", "email", "new@acme.com")
    assert len(created) == 1 and con.crm_id == created[0]
    assert hs.objects["contacts"][created[0]]["properties"].get("associatedcompanyid") in (new, None)
    assert ("contacts", created[0], "companies") in hs.assoc and hs.assoc[
        ("contacts", created[0], "companies")
    ] == {new}
    report = crm.validate_after_push(cfg, eng, ad, "r1")
    assert report["ok"], report["problems"]


def test_contact_never_created_against_a_dead_account_id(hs, mm_home):
    cfg = client_cfg("hubspot")
    eng = engine()
    ad = hs_adapter(hs, cfg)
    seed_contacts(eng, [{"key": "c1", "account_crm_id": "999999", "email": "x@dead.com", "last": "X",
                         "persona_tier": "P1", "persona_score": 90}])  # fmt: skip
    plan = plan_push(cfg, eng, "r1", ad, cfg.push[1])
    assert [(i.key, i.operation, i.reason) for i in plan.items] == [("c1", "skip", "account_not_in_crm")]


# --------------------------------------------------------------------------- 4. validation


def test_validation_explains_differences_per_record(hs, mm_home):
    cfg = client_cfg("hubspot")
    eng, ad, ids = out_world(hs, cfg)
    crm.execute_push(cfg, eng, "r1", ad, plan_push(cfg, eng, "r1", ad, cfg.push[0]))
    assert crm.validate_after_push(cfg, eng, ad, "r1")["ok"]
    # the CRM silently drops a value it accepted (a workflow resets it): a problem, explained
    hs.objects["companies"][ids["in.com"]]["properties"]["icp_fit_score"] = "1"
    rep = crm.validate_after_push(cfg, eng, ad, "r1")
    diff = [d for d in rep["differences"] if d["record_key"] == "in.com"]
    assert diff and diff[0]["field"] == "icp_fit_score" and diff[0]["pushed"] == 90
    # deleted after the push: a warning (the next run's extract sees it), never a failed healthy run
    hs.objects["companies"][ids["in.com"]]["properties"]["icp_fit_score"] = "90"
    del hs.objects["companies"][ids["out.com"]]
    rep = crm.validate_after_push(cfg, eng, ad, "r1")
    assert rep["ok"] and any("deleted in the CRM after the push" in w for w in rep["warnings"])


def test_validation_report_renders_for_a_crm_extract_summary():
    from marketmap.reports.validation import ingest_rows

    extract_summary = {"mode": "full", "since": None, "until": None, "owners": 3, "rejected": 0,
                       "objects": {"account": {"records": 36, "staged": 36, "file": "a.csv"},
                                   "contact": {"records": 72, "staged": 72, "file": "c.csv"}},
                       "calls": {"total_calls": 9}}  # fmt: skip
    keys = ("object", "file", "rows read", "rejected")
    assert [{k: r[k] for k in keys} for r in ingest_rows(extract_summary)] == [
        {"object": "account", "file": "a.csv", "rows read": 36, "rejected": None},
        {"object": "contact", "file": "c.csv", "rows read": 72, "rejected": None},
    ]
    csv_summary = {"account": {"file": "Account.csv", "rows": 10, "rejected": 1}}
    assert [{k: r[k] for k in keys} for r in ingest_rows(csv_summary)] == [
        {"object": "account", "file": "Account.csv", "rows read": 10, "rejected": 1}
    ]


# --------------------------------------------------------------------------- 5. connection extras


def test_rate_limit_and_timeout_from_the_connection_extra(hs):
    cfg = client_cfg("hubspot")
    ad = crm.adapter_for(cfg, {"host": hs.url, "password": TOKEN,
                               "extra": {"rate_limit": "100/10", "timeout": 7, "connect_timeout": 2}})  # fmt: skip
    assert ad.settings.rate_limit == (100, 10.0) and ad.settings.read_timeout_s == 7.0
    assert ad.settings.connect_timeout_s == 2.0
    assert crm.settings_from_extra({"rate_limit": [650, 10]}).rate_limit == (650, 10.0)
    assert crm.settings_from_extra({"rate_limit": 0}).rate_limit is None
    assert crm.settings_from_extra({}) == crm.CrmSettings()


# --------------------------------------------------------------------------- 6. push_field_changes


def test_push_field_changes_diff_expected_and_idempotent(sf, mm_home):
    cfg, eng, ad, ids = sf_world(sf, n=20)
    for i in ids.values():
        sf.get("Account", i)["OwnerId"] = "005OLD"
    keys = list(ids)
    changes = {k: {"OwnerId": "005NEW"} for k in keys}
    expected = {k: {"OwnerId": "005OLD"} for k in keys}
    sf.get("Account", ids[keys[0]])["OwnerId"] = "005SOMEONE"  # a rep reassigned it meanwhile
    dry = crm.push_field_changes(cfg, eng, "o1", ad, "account", changes, expected, dry_run=True)
    assert dry["plan"]["updates"] == 19 and "result" not in dry
    assert sf.get("Account", ids[keys[1]])["OwnerId"] == "005OLD"
    sf.locked_rows[ids[keys[2]]] = 1  # a transient row lock on one record
    out = crm.push_field_changes(cfg, eng, "o1", ad, "account", changes, expected)
    assert out["result"]["updated"] == 19 and out["result"]["failed"] == 0
    assert out["conflicts"] == [
        {"key": keys[0], "field": "OwnerId", "expected": "005OLD", "current": "005SOMEONE"}
    ]
    assert sf.get("Account", ids[keys[0]])["OwnerId"] == "005SOMEONE"  # never overwritten
    assert all(sf.get("Account", ids[k])["OwnerId"] == "005NEW" for k in keys[1:])
    logged = log_rows(eng, "o1")
    assert logged[("account", keys[1])]["fields_changed"] == {"OwnerId": {"from": "005OLD", "to": "005NEW"}}
    assert logged[("account", keys[0])]["status"] == "skipped"
    assert logged[("account", keys[0])]["error"].startswith("changed_in_crm")
    again = crm.push_field_changes(cfg, eng, "o2", ad, "account", changes, None)
    assert (
        again["result"]["status"] == "nothing_to_do" or again["result"]["updated"] == 1
    )  # only keys[0] left
    third = crm.push_field_changes(cfg, eng, "o3", ad, "account", changes, None)
    assert third["result"]["status"] == "nothing_to_do" and third["result"]["attempted"] == 0


@pytest.mark.parametrize("bulk", [False, True])
def test_salesforce_clears_the_tier_of_an_account_that_went_out_of_scope(sf, mm_home, bulk):
    n = 230 if bulk else 12  # Bulk API 2.0 carries loads above 200 records: its clear must be #N/A
    cfg, eng, ad, ids = sf_world(sf, n=n)
    ad = sf_adapter(sf, cfg, dataclasses.replace(FAST, bulk_threshold=200 if bulk else 10**9))
    crm.execute_push(cfg, eng, "r1", ad, plan_push(cfg, eng, "r1", ad, cfg.push[0]), canary=False)
    assert sf.get("Account", ids["co03.com"])["Account_Tier__c"] == "Tier 2"
    out = [k for k in ids if k != "co05.com"] if bulk else ["co03.com", "co04.com"]
    with eng.begin() as conn:
        conn.execute(
            t.account_scores.update().where(t.account_scores.c.account_key.in_(out)).values(tier="OUT")
        )
    plan = plan_push(cfg, eng, "r2", ad, cfg.push[0])
    assert {i.key: i.changes.get("Account_Tier__c") for i in plan.writes} == {
        k: ("Tier 2", None) for k in out
    }
    jobs = sf.calls("POST", r"/jobs/ingest$")
    r = crm.execute_push(cfg, eng, "r2", ad, plan, canary=False)
    assert r.updated == len(out) and r.failed == 0
    assert (sf.calls("POST", r"/jobs/ingest$") > jobs) == bulk
    assert all(sf.get("Account", ids[k])["Account_Tier__c"] in (None, "") for k in out)
    assert sf.get("Account", ids["co05.com"])["Account_Tier__c"] == "Tier 2"
    assert crm.validate_after_push(cfg, eng, ad, "r2")["ok"]
    assert plan_push(cfg, eng, "r3", ad, cfg.push[0]).summary()["updates"] == 0

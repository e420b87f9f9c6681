"""CRM sync against a local HubSpot, through the real hubspot-api-client.

Covers extract → plan → push with field policies, prevent-override, picklist translation,
value normalisation, no-change = no call, failed-last-run retried, modes, dry run ==
real plan, and the contact duplicate-prevention waterfall.
"""

from __future__ import annotations

import csv
import json

import pytest
from servers.world import FAST, HS_TOKEN, client_cfg, engine, seed_accounts, seed_contacts
from sqlalchemy import select

from marketmap import crm
from marketmap.crm.plan import plan_push
from marketmap.warehouse import schema as t

TOKEN = HS_TOKEN


def adapter(server, cfg, settings=FAST):
    return crm.adapter_for(cfg, {"host": server.url, "password": TOKEN}, settings=settings)


def writes(server) -> int:
    return server.calls("POST", r"/batch/(update|create|upsert)$")


def push_log(eng, run_id):
    with eng.connect() as conn:
        rows = conn.execute(select(t.push_log).where(t.push_log.c.run_id == run_id)).mappings().all()
    return {r["record_key"]: dict(r) for r in rows}


def world(hs, mm_home):
    """Three companies in HubSpot, extracted into the warehouse, then scored."""
    a = hs.add("companies", {"name": "Acme", "domain": "acme.com", "state": "Calif.",
                             "hs_ideal_customer_profile": "tier_3", "icp_fit_score": "10", "account_valuation": "5000"})  # fmt: skip
    b = hs.add("companies", {"name": "Beta", "domain": "www.beta.com", "mm_prevent_override": "true"})
    g = hs.add("companies", {"name": "Gamma", "domain": "gamma.com"})
    cfg = client_cfg("hubspot")
    eng = engine()
    ad = adapter(hs, cfg)
    summary = crm.extract(cfg, eng, "run-extract", ad)
    assert summary["objects"]["account"]["records"] == len(hs.objects["companies"])
    seed_accounts(eng, [
        {"key": "acme.com", "crm_id": a, "tier": "T1", "score": 88.5, "valuation": 120000, "white_space": 100, "state": "Calif."},
        {"key": "beta.com", "crm_id": b, "tier": "T1", "score": 90, "valuation": 1},
        {"key": "gamma.com", "crm_id": g, "tier": "T2", "score": 60, "valuation": 50000},
    ])  # fmt: skip
    return cfg, eng, ad, (a, b, g)


def test_policies_translation_normalisation_prevent_override_and_no_change(hs, mm_home):
    cfg, eng, ad, (a, b, g) = world(hs, mm_home)
    plan = plan_push(cfg, eng, "run-1", ad, cfg.push[0])
    items = {i.key: i for i in plan.items}
    acme = items["acme.com"]
    assert acme.operation == "update" and acme.match == "crm_id"
    # picklist translation to HubSpot's internal value, overwrite, value normalisation
    assert acme.changes["hs_ideal_customer_profile"] == ("tier_3", "tier_1")
    assert acme.changes["icp_fit_score"] == ("10", 88.5)
    assert acme.changes["state"] == ("Calif.", "CA")
    # if_blank keeps the human's 5000; never leaves white_space alone
    assert "account_valuation" not in acme.changes and "white_space" not in acme.changes
    assert items["beta.com"].operation == "skip" and items["beta.com"].reason == "prevent_override"
    assert items["gamma.com"].changes["account_valuation"] == (None, 50000)  # blank: if_blank writes

    result = crm.execute_push(cfg, eng, "run-1", ad, plan)
    assert result.status == "success" and result.updated == 2 and result.failed == 0
    assert hs.get("companies", a)["hs_ideal_customer_profile"] == "tier_1"
    assert hs.get("companies", a)["state"] == "CA"
    assert hs.get("companies", a)["account_valuation"] == "5000"
    assert hs.get("companies", b).get("hs_ideal_customer_profile") is None  # prevent-override held
    log = push_log(eng, "run-1")
    assert log["acme.com"]["status"] == "success" and log["acme.com"]["operation"] == "update"
    assert set(log["acme.com"]["fields_changed"]) == {"hs_ideal_customer_profile", "icp_fit_score", "state"}
    assert log["beta.com"]["status"] == "skipped" and log["beta.com"]["error"] == "prevent_override"

    # nothing changed since: the second push makes no write call at all
    before = writes(hs)
    plan2 = plan_push(cfg, eng, "run-2", ad, cfg.push[0])
    assert plan2.summary()["updates"] == 0 and plan2.summary()["creates"] == 0
    result2 = crm.execute_push(cfg, eng, "run-2", ad, plan2)
    assert result2.status == "nothing_to_do" and writes(hs) == before


def test_human_edit_is_overwritten_only_where_policy_allows(hs, mm_home):
    cfg, eng, ad, (a, b, g) = world(hs, mm_home)
    crm.execute_push(cfg, eng, "run-1", ad, plan_push(cfg, eng, "run-1", ad, cfg.push[0]))
    # a rep edits the tier and the valuation in HubSpot; a maintenance extract sees it
    hs.objects["companies"][g]["properties"].update(
        hs_ideal_customer_profile="tier_3", account_valuation="77"
    )
    crm.extract(cfg, eng, "run-extract-2", ad)
    plan = plan_push(cfg, eng, "run-2", ad, cfg.push[0])
    gamma = next(i for i in plan.items if i.key == "gamma.com")
    assert gamma.changes == {
        "hs_ideal_customer_profile": ("tier_3", "tier_2")
    }  # overwrite; if_blank keeps 77


def test_failed_record_counts_as_changed_next_run(hs, mm_home):
    cfg, eng, ad, (a, b, g) = world(hs, mm_home)
    # HubSpot rejects any batch holding gamma; the split isolates it, acme goes through
    hs.inject("status", path="batch/update", status=400, times=None,
              when=lambda r: any(i.get("id") == g for i in r.body["inputs"]),
              body={"status": "error", "message": "Property values were not valid", "category": "VALIDATION_ERROR",
                    "correlationId": "x"})  # fmt: skip
    r1 = crm.execute_push(cfg, eng, "run-1", ad, plan_push(cfg, eng, "run-1", ad, cfg.push[0]), canary=False)
    assert (r1.succeeded, r1.failed) == (1, 1)
    log = push_log(eng, "run-1")
    assert log["gamma.com"]["status"] == "failed" and "VALIDATION_ERROR" in log["gamma.com"]["error"]
    hs.clear_faults()
    # meanwhile someone typed exactly our values into HubSpot: no diff, but it failed last time
    hs.objects["companies"][g]["properties"].update(
        hs_ideal_customer_profile="tier_2", icp_fit_score="60", account_valuation="50000"
    )
    crm.extract(cfg, eng, "run-extract-2", ad)
    plan = plan_push(cfg, eng, "run-2", ad, cfg.push[0])
    gamma = next(i for i in plan.items if i.key == "gamma.com")
    assert gamma.operation == "update" and gamma.retry and gamma.reason == "retry_failed"
    r2 = crm.execute_push(cfg, eng, "run-2", ad, plan)
    assert r2.status == "success"
    plan3 = plan_push(cfg, eng, "run-3", ad, cfg.push[0])
    # a record with nothing to write is counted, not itemised (a plan of a 1M-record client holds
    # what changes), in the plan's and the run's summaries, and not logged: push_log holds only
    # what changed or needs a person (issue 15: ~100M no_change rows a month at scale)
    assert all(i.key != "gamma.com" for i in plan3.items)
    unchanged = plan3.unchanged
    assert unchanged >= 1 and plan3.summary()["skips_by_reason"]["no_change"] == unchanged
    assert plan3.summary()["records"] == len(plan3.items) + unchanged
    r3 = crm.execute_push(cfg, eng, "run-3", ad, plan3)
    assert r3.skipped_by_reason["no_change"] == unchanged
    assert r3.skipped == sum(1 for i in plan3.items if i.operation == "skip") + unchanged
    log3 = push_log(eng, "run-3")
    assert "gamma.com" not in log3 and all(r["error"] != "no_change" for r in log3.values())
    assert len(log3) == r3.skipped - unchanged + r3.attempted


@pytest.mark.parametrize("mode", ["update_only", "create_only", "upsert"])
def test_modes(hs, mm_home, mode):
    cfg0, eng, ad, (a, b, g) = world(hs, mm_home)
    push = cfg0.push[0].model_copy(update={"mode": mode})
    seed_accounts(eng, [{"key": "newco.io", "name": "NewCo", "domain": "newco.io", "tier": "T1", "score": 80},
                        {"key": "unscored.io", "name": "Unscored", "domain": "unscored.io"}])  # fmt: skip
    plan = plan_push(cfg0, eng, "run-1", ad, push)
    ops = {i.key: (i.operation, i.reason) for i in plan.items}
    if mode != "update_only":
        assert ops["unscored.io"] == ("skip", "no_values")  # never an empty shell in the CRM
    if mode == "update_only":
        assert ops["newco.io"] == ("skip", "not_in_crm") and ops["acme.com"][0] == "update"
    elif mode == "create_only":
        assert ops["newco.io"][0] == "create" and ops["acme.com"] == ("skip", "exists_in_crm")
    else:
        assert ops["newco.io"][0] == "create" and ops["acme.com"][0] == "update"
    crm.execute_push(cfg0, eng, "run-1", ad, plan)
    created = hs.find_by("companies", "domain", "newco.io")
    assert len(created) == (0 if mode == "update_only" else 1)
    if created:
        assert hs.get("companies", created[0])["hs_ideal_customer_profile"] == "tier_1"
        # created once; the next plan finds it by the id it was given
        # (matched by that id: nothing to change, counted and not itemised, or exists_in_crm)
        again = {i.key: i for i in plan_push(cfg0, eng, "run-2", ad, push).items}
        assert "newco.io" not in again or again["newco.io"].crm_id == created[0]
        synced = crm.plan.load_sync(eng, cfg0.client_id, "account", ("crm_id",), keys=["newco.io"])
        assert synced["newco.io"]["crm_id"] == created[0]


def test_lookup_before_create_and_fuzzy_names_go_to_review(hs, mm_home):
    hs.add("companies", {"name": "Deltaware Systems Inc"})  # a look-alike without a domain
    cfg, eng, ad, ids = world(hs, mm_home)
    # a company someone created in HubSpot after the extract: found by the look-up before create
    late = hs.add("companies", {"name": "Late Inc", "domain": "late.com"})
    seed_accounts(eng, [
        {"key": "late.com", "name": "Late", "domain": "late.com", "tier": "T2", "score": 55},
        {"key": "deltaware.com", "name": "Deltaware Systems", "domain": "deltaware.com", "tier": "T1", "score": 90},
    ])  # fmt: skip
    plan = plan_push(cfg, eng, "run-1", ad, cfg.push[0])
    items = {i.key: i for i in plan.items}
    assert items["late.com"].operation == "update" and items["late.com"].crm_id == late
    assert items["late.com"].match == "domain"
    assert items["deltaware.com"].operation == "skip" and items["deltaware.com"].reason == "pending_review"
    with eng.connect() as conn:
        review = (
            conn.execute(select(t.review_queue).where(t.review_queue.c.kind == "crm_match")).mappings().all()
        )
    assert [(r["left_key"], r["status"]) for r in review] == [("deltaware.com", "open")]
    crm.execute_push(cfg, eng, "run-1", ad, plan)
    assert len(hs.find_by("companies", "domain", "late.com")) == 1
    # a reviewer says "different company": the next plan creates it
    with eng.begin() as conn:
        conn.execute(t.review_queue.update().values(status="different"))
    plan2 = plan_push(cfg, eng, "run-2", ad, cfg.push[0])
    assert next(i for i in plan2.items if i.key == "deltaware.com").operation == "create"


def test_dry_run_preview_is_the_plan_that_runs(hs, mm_home, tmp_path):
    cfg, eng, ad, ids = world(hs, mm_home)
    seed_accounts(
        eng, [{"key": "newco.io", "name": "NewCo", "domain": "newco.io", "tier": "T3", "score": 30}]
    )
    dry = plan_push(cfg, eng, "run-1", ad, cfg.push[0])
    before = writes(hs)
    preview = crm.write_preview(dry, tmp_path)
    assert writes(hs) == before  # a dry run writes nothing to the CRM
    assert preview["creates"] == 1 and preview["updates"] == 2
    assert preview["updates_by_field"] == {
        "account_valuation": 1,
        "hs_ideal_customer_profile": 2,
        "icp_fit_score": 2,
        "state": 1,
    }
    assert preview["skips_by_reason"] == {"prevent_override": 1}
    assert json.loads((tmp_path / "crm_preview_account_summary.json").read_text())["creates"] == 1
    with open(preview["preview_csv"], encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    previewed = {(r["record_key"], r["operation"], r["field"]) for r in rows if r["operation"] != "skip"}

    real = plan_push(cfg, eng, "run-1", ad, cfg.push[0])
    assert [(i.key, i.operation, i.changes, i.identity) for i in real.items] == [
        (i.key, i.operation, i.changes, i.identity) for i in dry.items
    ]
    crm.execute_push(cfg, eng, "run-1", ad, real)
    pushed = {(k, r["operation"], f) for k, r in push_log(eng, "run-1").items() if r["status"] == "success"
              for f in r["fields_changed"]}  # fmt: skip
    assert pushed == previewed


def test_contact_waterfall_never_duplicates(hs, mm_home):
    cfg = client_cfg("hubspot")
    eng = engine()
    ad = adapter(hs, cfg)
    acme = hs.add("companies", {"name": "Acme", "domain": "acme.com"})
    other = hs.add("companies", {"name": "Other", "domain": "other.com"})
    jane = hs.add("contacts", {"email": "jane@acme.com", "firstname": "Jane", "lastname": "Roe"})
    bob = hs.add(
        "contacts",
        {"firstname": "Bob", "lastname": "Lee", "hs_linkedin_url": "https://www.linkedin.com/in/Bob-Lee/"},
    )
    carl = hs.add("contacts", {"email": "carl@acme.com", "lastname": "Carl"})
    hs.associate("contacts", jane, "companies", acme)
    hs.associate("contacts", bob, "companies", acme)
    hs.associate("contacts", carl, "companies", other)
    crm.extract(cfg, eng, "run-extract", ad)
    seed_accounts(eng, [{"key": "acme.com", "crm_id": acme, "tier": "T1", "score": 80}])
    # net-new contacts from enrichment: no CRM id
    seed_contacts(eng, [
        {"key": "enr:jane", "account_key": "acme.com", "email": "Jane@Acme.com", "persona_tier": "P1", "persona_score": 81},
        {"key": "enr:bob", "account_key": "acme.com", "email": "bob@acme.com", "linkedin": "linkedin.com/in/bob-lee",
         "persona_tier": "P2", "persona_score": 50},
        {"key": "enr:carl", "account_key": "acme.com", "email": "carl@acme.com", "persona_tier": "P3", "persona_score": 20},
        {"key": "enr:dana", "account_key": "acme.com", "first": "Dana", "last": "Fox", "email": "dana@acme.com",
         "persona_tier": "P1", "persona_score": 90},
        {"key": "enr:orphan", "account_key": "nowhere.com", "email": "x@nowhere.com", "persona_tier": "P1"},
    ])  # fmt: skip
    plan = plan_push(cfg, eng, "run-1", ad, cfg.push[1])
    items = {i.key: i for i in plan.items}
    assert (items["enr:jane"].operation, items["enr:jane"].match, items["enr:jane"].crm_id) == (
        "update",
        "email",
        jane,
    )
    assert (items["enr:bob"].operation, items["enr:bob"].match, items["enr:bob"].crm_id) == (
        "update",
        "linkedin",
        bob,
    )
    # carl's e-mail exists, but at another company: account + e-mail finds nothing -> create…
    assert items["enr:carl"].operation == "create"
    assert items["enr:dana"].operation == "create" and items["enr:dana"].account_crm_id == acme
    assert items["enr:orphan"].reason == "account_not_in_crm"

    result = crm.execute_push(cfg, eng, "run-1", ad, plan)
    assert result.failed == 0, result.first_errors
    # …and HubSpot's unique e-mail turns that create into an update of the existing contact
    emails = [r["properties"].get("email") for r in hs.objects["contacts"].values()]
    assert sorted(e for e in emails if e) == ["carl@acme.com", "dana@acme.com", "jane@acme.com"]
    assert len(hs.objects["contacts"]) == 4
    assert hs.get("contacts", carl)["persona_tier"] == "Tier 3"
    dana = hs.find_by("contacts", "email", "dana@acme.com")[0]
    assert hs.get("contacts", dana)["associatedcompanyid"] == acme
    assert hs.get("contacts", jane)["persona_tier"] == "Tier 1"
    log = push_log(eng, "run-1")
    assert log["enr:carl"]["operation"] == "update" and log["enr:dana"]["operation"] == "create"

    # run again: every contact is now known, nothing is written
    before = writes(hs)
    again = crm.execute_push(cfg, eng, "run-2", ad, plan_push(cfg, eng, "run-2", ad, cfg.push[1]))
    assert again.status == "nothing_to_do" and writes(hs) == before


def test_dag_flow_canary_task_then_push_task(hs, mm_home, tmp_path):
    """The build DAG's steps as separate tasks: each recomputes the plan from the warehouse."""
    cfg, eng, ad, ids = world(hs, mm_home)
    seed_accounts(eng, [{"key": f"n{i:02d}.io", "name": f"N{i:02d}", "domain": f"n{i:02d}.io", "tier": "T3", "score": 30}
                        for i in range(30)])  # fmt: skip
    assert crm.preflight(cfg, ad).ok
    dry = crm.push_all(cfg, eng, "run-1", ad, dry_run=True, out_dir=tmp_path)
    assert dry["account"]["creates"] == 30 and writes(hs) == 0

    canary = crm.execute_push(
        cfg, eng, "run-1", ad, plan_push(cfg, eng, "run-1", ad, cfg.push[0]), only_canary=True
    )
    assert canary.status == "success" and canary.succeeded == 15 and canary.canary["failed"] == 0
    rest = plan_push(cfg, eng, "run-1", ad, cfg.push[0])  # the push task: canary records are done now
    assert len(rest.writes) == 32 - 15
    result = crm.execute_push(cfg, eng, "run-1", ad, rest, canary=False)
    assert result.status == "success" and result.succeeded == 17
    log = push_log(eng, "run-1")
    assert len(log) == 33 and sum(r["phase"] == "canary" for r in log.values()) == 15
    assert crm.validate_after_push(cfg, eng, ad, "run-1")["ok"]

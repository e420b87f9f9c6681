"""The push planner works through the records in key-ordered chunks (20,000 in production) with
only the chunk's sync and snapshot rows: a plan made two records at a time is the plan made in
one pass, over every matching route (CRM id, domain look-up, look-alike name, create, the
contact waterfall); and on PostgreSQL a push big enough to book its outcomes by COPY books
exactly what the row-by-row path books."""

from __future__ import annotations

import csv
import datetime as dt

import pytest
from demo_support import build_demo
from servers.world import FAST, HS_TOKEN, client_cfg, engine, seed_accounts, seed_contacts
from sqlalchemy import func, select

from marketmap import crm
from marketmap.crm.plan import plan_push
from marketmap.warehouse import schema as t

TOKEN = HS_TOKEN


def _items(plan) -> list[tuple]:
    return [(i.key, i.operation, i.crm_id, i.match, i.reason, i.changes, i.identity, i.account_crm_id)
            for i in plan.items]  # fmt: skip


def test_a_plan_in_chunks_of_two_is_the_plan_in_one_pass(hs, mm_home):
    cfg = client_cfg("hubspot")
    eng = engine()
    ad = crm.adapter_for(cfg, {"host": hs.url, "password": TOKEN}, settings=FAST)
    linked = {
        f"l{i}.com": hs.add("companies", {"name": f"Linked {i}", "domain": f"l{i}.com"}) for i in range(5)
    }
    hs.add("companies", {"name": "Deltaware Systems Inc"})  # a look-alike without a domain
    jane = hs.add("contacts", {"email": "jane@l0.com", "firstname": "Jane", "lastname": "Roe"})
    bob = hs.add(
        "contacts",
        {"firstname": "Bob", "lastname": "Lee", "hs_linkedin_url": "https://www.linkedin.com/in/bob-lee/"},
    )
    hs.associate("contacts", jane, "companies", linked["l0.com"])
    hs.associate("contacts", bob, "companies", linked["l1.com"])
    crm.extract(cfg, eng, "run-extract", ad)
    # created in HubSpot after the extract: found by the domain look-up, never created again
    late = {
        f"late{i}.com": hs.add("companies", {"name": f"Late {i}", "domain": f"late{i}.com"}) for i in range(3)
    }
    seed_accounts(eng, [
        *[{"key": k, "crm_id": v, "tier": "T1", "score": 80 + n} for n, (k, v) in enumerate(linked.items())],
        *[{"key": k, "name": f"Late {n}", "domain": k, "tier": "T2", "score": 55} for n, k in enumerate(late)],
        {"key": "deltaware.com", "name": "Deltaware Systems", "domain": "deltaware.com", "tier": "T1", "score": 90},
        *[{"key": f"new{i}.io", "name": f"Newco {i}", "domain": f"new{i}.io", "tier": "T3", "score": 30} for i in range(3)],
        {"key": "unscored.io", "name": "Unscored", "domain": "unscored.io"},
    ])  # fmt: skip
    seed_contacts(eng, [
        {"key": "c:jane", "account_key": "l0.com", "email": "Jane@L0.com", "persona_tier": "P1", "persona_score": 81},
        {"key": "c:bob", "account_key": "l1.com", "linkedin": "linkedin.com/in/bob-lee", "persona_tier": "P2"},
        *[{"key": f"c:new{i}", "account_key": f"l{i}.com", "first": "New", "last": f"Person{i}",
           "email": f"new{i}@l{i}.com", "persona_tier": "P3", "persona_score": 20} for i in range(4)],
        {"key": "c:orphan", "account_key": "nowhere.com", "email": "x@nowhere.com", "persona_tier": "P1"},
    ])  # fmt: skip

    accounts, contacts = cfg.push
    pair = plan_push(cfg, eng, "run-1", ad, accounts, chunk=2)
    whole = plan_push(cfg, eng, "run-1", ad, accounts)
    assert _items(pair) == _items(whole) and pair.unchanged == whole.unchanged
    assert pair.review_pairs == whole.review_pairs == 1
    ops = {i.key: (i.operation, i.match or i.reason) for i in pair.items}
    assert ops == {
        **{k: ("update", "crm_id") for k in linked},
        **{k: ("update", "domain") for k in late},
        "deltaware.com": ("skip", "fuzzy_name"),
        **{f"new{i}.io": ("create", None) for i in range(3)},
        "unscored.io": ("skip", "no_values"),
    }
    assert {i.crm_id for i in pair.items if i.match == "domain"} == set(late.values())
    result = crm.execute_push(cfg, eng, "run-1", ad, pair)
    assert (result.created, result.updated, result.failed) == (3, 8, 0)

    c_pair = plan_push(cfg, eng, "run-1", ad, contacts, chunk=2)
    c_whole = plan_push(cfg, eng, "run-1", ad, contacts)
    assert _items(c_pair) == _items(c_whole)
    c_ops = {i.key: (i.operation, i.match or i.reason, i.crm_id) for i in c_pair.items}
    assert c_ops["c:jane"] == ("update", "email", jane) and c_ops["c:bob"] == ("update", "linkedin", bob)
    assert c_ops["c:orphan"] == ("skip", "account_not_in_crm", None)
    assert {k: v[0] for k, v in c_ops.items() if k.startswith("c:new")} == {
        f"c:new{i}": "create" for i in range(4)
    }
    assert crm.execute_push(cfg, eng, "run-1", ad, c_pair).failed == 0

    # the next run: everything written is known and unchanged (counted, not itemised) in any chunking;
    # (12 accounts and 8 contacts: those written and those the extract brought in, with no score to send)
    for obj_push, n in ((accounts, 12), (contacts, 8)):
        for chunk in (1, 3, 20_000):
            again = plan_push(cfg, eng, "run-2", ad, obj_push, chunk=chunk)
            assert again.unchanged == n and all(i.operation == "skip" for i in again.items), chunk
    assert len(hs.objects["companies"]) == 5 + 1 + 3 + 3  # no duplicate


def _writes(plan) -> set[tuple]:
    return {(i.key, i.operation, i.crm_id, tuple(sorted(i.changes.items()))) for i in plan.writes}


def _demo_pushed(mm_home, client_id: str):
    """The demo client (CSV "CRM") built by the product's own steps: export, ingest, load (with the
    owner history, as the build's load task), score, value."""
    cfg, eng = build_demo(mm_home, client_id)
    with eng.connect() as conn:
        owners = conn.execute(
            select(func.count())
            .select_from(t.territory_assignments)
            .where(t.territory_assignments.c.client_id == client_id)
        ).scalar_one()
    assert owners > 1000  # a history big enough for COPY on PostgreSQL
    return cfg, eng


def _booked(eng, client_id: str) -> dict:
    """What a push left in the warehouse, comparable across databases (no ids, no clocks)."""
    out = {}
    with eng.connect() as conn:
        for table, cols in (
            (
                t.push_log,
                ("run_id", "record_key", "crm_id", "operation", "fields_changed", "status", "phase"),
            ),
            (t.crm_sync, ("record_key", "crm_id", "pushed", "status", "failed")),
            (t.crm_records, ("crm_id", "name", "domain", "field_values", "source")),
            (t.territory_assignments, ("account_key", "rep_id", "source", "run_id", "assigned_at")),
        ):
            rows = conn.execute(select(*[table.c[c] for c in cols]).where(table.c.client_id == client_id))
            out[table.name] = sorted(tuple(str(v) for v in r) for r in rows)
    return out


@pytest.mark.postgres
def test_push_booked_by_copy_on_postgres_books_what_the_row_path_books(mm_home, pg_database, monkeypatch):
    """1,200 demo accounts pushed as CSV import files on PostgreSQL: their push_log, crm_sync and
    crm_records rows (and the owner history of the load) go in by COPY (a batch of 1,000 or
    more); with COPY turned off the same push books exactly the same rows. The next push has nothing to do and logs only what needs a person."""
    from marketmap import warehouse
    from marketmap.settings import run_dir

    monkeypatch.setenv("MARKETMAP_WAREHOUSE_URL", pg_database)
    booked = {}
    for client_id, copy_min in (("chunkcopy", warehouse.COPY_MIN_ROWS), ("chunkrows", 10**9)):
        monkeypatch.setattr(warehouse, "COPY_MIN_ROWS", copy_min)
        cfg, eng = _demo_pushed(mm_home, client_id)
        assert eng.dialect.name == "postgresql"
        out = crm.push_all(cfg, eng, "p1", crm.adapter_for(cfg), canary=False)["account"]
        assert out["result"]["status"] == "success" and out["result"]["succeeded"] > 1000
        booked[client_id] = _booked(eng, client_id)
        with (run_dir(client_id, "p1") / "crm_import" / "Account_update.csv").open(
            newline="", encoding="utf-8"
        ) as fh:
            rows = list(csv.DictReader(fh))
        assert len(rows) == out["plan"]["updates"] == len({r["Id"] for r in rows})
    assert booked["chunkcopy"] == booked["chunkrows"]
    written = [r for r in booked["chunkcopy"]["push_log"] if r[5] == "success"]
    assert (
        len(written) == len(booked["chunkcopy"]["crm_sync"]) == len(booked["chunkcopy"]["crm_records"]) > 1000
    )

    # the next push: every record written is unchanged, counted and not logged
    monkeypatch.setattr(warehouse, "COPY_MIN_ROWS", 1000)
    from marketmap.config import load_client
    from marketmap.warehouse import get_engine

    cfg, eng = load_client("demo").model_copy(update={"client_id": "chunkcopy"}), get_engine()
    again = crm.push_all(cfg, eng, "p2", crm.adapter_for(cfg), canary=False)["account"]
    assert again["result"]["status"] == "nothing_to_do"
    reasons = again["plan"]["skips_by_reason"]
    assert reasons["no_change"] == len(booked["chunkcopy"]["crm_sync"])
    with eng.connect() as conn:
        pl = t.push_log.c
        logged = conn.execute(
            select(func.count()).select_from(t.push_log).where(pl.client_id == "chunkcopy", pl.run_id == "p2")
        ).scalar_one()
    assert logged == sum(n for reason, n in reasons.items() if reason != "no_change")


@pytest.mark.parametrize(("backend", "policy"), [("sqlite", "overwrite"), ("postgresql", "overwrite"),
                                                ("sqlite", "if_blank"), ("postgresql", "if_blank")])  # fmt: skip
def test_an_incremental_push_writes_what_a_full_plan_would(mm_home, request, monkeypatch, backend, policy):
    """After a complete push the next one reads only records whose inputs changed since it started
    (their row, score or valuation, their CRM record, or an unsettled sync). A month later three
    accounts grew in the export: re-loaded, re-scored and re-valued by the product's own steps
    (valuations of like accounts move too), the incremental plan writes exactly what a full plan
    writes while reading a fraction of the records; afterwards a full plan finds nothing to do.

    ``overwrite``: every value is overwritten, so every moved valuation is written. ``if_blank``
    (the demo's valuation): a moved valuation is written only where the CRM's value is blank, so
    revalued accounts are read only where it is — two revalued accounts whose CRM value is blank
    must still be written, the other revaluations not even read."""
    import sqlalchemy as sa

    from marketmap.ingest import pipeline as ingest
    from marketmap.scoring import pipeline as scoring

    if backend == "postgresql":
        monkeypatch.setenv("MARKETMAP_WAREHOUSE_URL", request.getfixturevalue("pg_database"))
    client_id = f"incpush_{backend}_{policy}"
    cfg, eng = _demo_pushed(mm_home, client_id)
    push = cfg.push[0].model_copy(
        update={"fields": [f.model_copy(update={"policy": "overwrite"}) for f in cfg.push[0].fields]}
    ) if policy == "overwrite" else cfg.push[0]  # fmt: skip
    assert {f.policy for f in push.fields if f.source == "valuation"} == {policy}
    cfg = cfg.model_copy(update={"push": [push]})
    ad = crm.adapter_for(cfg)
    first = plan_push(cfg, eng, "p1", ad, push)
    assert first.since is None and first.summary()["updates"] > 1000
    assert crm.execute_push(cfg, eng, "p1", ad, first, canary=False).status == "success"

    # as if the build and that push had run in January
    jan = dt.datetime(2026, 1, 10, tzinfo=dt.UTC)
    with eng.begin() as conn:
        for table, cols in ((t.accounts, ("updated_at",)), (t.account_scores, ("scored_at", "valued_at")),
                            (t.crm_records, ("updated_at",)), (t.crm_sync, ("updated_at",))):  # fmt: skip
            conn.execute(
                sa.update(table).where(table.c.client_id == client_id).values({c: jan for c in cols})
            )
        conn.execute(sa.update(t.push_state).where(t.push_state.c.client_id == client_id)
                     .values(started_at=jan + dt.timedelta(hours=2)))  # fmt: skip

    path = mm_home / "inbox" / client_id / "Account.csv"
    with path.open(encoding="utf-8-sig", newline="") as fh:
        rows = list(csv.reader(fh))
    col = rows[0].index("NumberOfEmployees")
    for r in [r for r in rows[1:] if r[col].strip()][:3]:
        r[col] = str(int(float(r[col])) * 40 + 5000)
    with path.open("w", encoding="utf-8-sig", newline="") as fh:
        csv.writer(fh).writerows(rows)
    ingest.start_run(eng, client_id, "m1", "monthly", None)
    ingest.extract_exports(cfg, "m1", eng)
    ingest.normalise_and_dedupe(cfg, "m1", eng)
    ingest.load_warehouse(cfg, "m1", eng)
    scoring.score_accounts(cfg, eng, "m1", dt.date(2026, 7, 1), incremental=True)
    assert scoring.value_accounts(cfg, eng, "m1")["written"] > 3  # like accounts' valuations moved
    a, s, r = t.accounts.c, t.account_scores.c, t.crm_records.c
    with eng.begin() as conn:
        revalued = conn.execute(
            sa.select(a.account_key, a.crm_id).join(t.account_scores, (s.client_id == a.client_id)
                                                     & (s.account_key == a.account_key))
            .where(a.client_id == client_id, s.valued_at > jan, s.scored_at == jan, s.valuation.is_not(None))
            .order_by(a.account_key)
        ).all()  # fmt: skip
        assert len(revalued) > 10
        blanked = revalued[:2]  # their CRM value was cleared back in January (the snapshot says so)
        for _, crm_id in blanked:
            where = (r.client_id == client_id) & (r.object == "account") & (r.crm_id == crm_id)
            values = conn.execute(sa.select(r.field_values).where(where)).scalar_one()
            conn.execute(sa.update(t.crm_records).where(where)
                         .values(field_values={**values, "Account_Valuation__c": None}))  # fmt: skip

    inc = plan_push(cfg, eng, "m1", ad, push)
    full = plan_push(cfg, eng, "m1", ad, push, refresh=True)
    assert inc.since is not None and full.since is None
    assert _writes(inc) == _writes(full) and len(_writes(inc)) > 3
    written = {i.key for i in inc.writes if "Account_Valuation__c" in i.changes}
    assert {k for k, _ in blanked} <= written
    if policy == "if_blank":  # of the revalued accounts only those blank in the CRM were read
        # (but for records never written, so never settled: here those the CRM asks not to overwrite)
        read = [i for i in inc.items if i.key in {k for k, _ in revalued[2:]}]
        assert len(read) < len(revalued) / 10
        assert all(i.operation == "skip" and i.reason == "prevent_override" for i in read)
    assert {i.key for i in inc.items} <= {i.key for i in full.items}
    records = full.summary()["records"]
    assert inc.summary()["records"] + inc.not_replanned == records
    assert inc.summary()["records"] < records / 2  # a fraction read
    assert crm.execute_push(cfg, eng, "m1", ad, inc, canary=False).status == "success"
    assert plan_push(cfg, eng, "m2", ad, push, refresh=True).writes == []


def test_a_value_computed_from_the_date_is_always_planned_in_full(hs, mm_home):
    """Years of experience grow with no write to any row: a contact push that sends them plans
    every contact each run, while the account push of the same client plans only what changed."""
    from servers.world import HUBSPOT_PUSH

    contacts_push = {**HUBSPOT_PUSH[1], "fields": [*HUBSPOT_PUSH[1]["fields"],
                                                   {"source": "years_experience", "crm_field": "years_experience"}]}  # fmt: skip
    cfg = client_cfg("hubspot", push=[HUBSPOT_PUSH[0], contacts_push])
    eng = engine()
    ad = crm.adapter_for(cfg, {"host": hs.url, "password": TOKEN}, settings=FAST)
    acme = hs.add("companies", {"name": "Acme", "domain": "acme.com"})
    crm.extract(cfg, eng, "run-extract", ad)
    seed_accounts(eng, [{"key": "acme.com", "crm_id": acme, "tier": "T1", "score": 80}])
    seed_contacts(
        eng, [{"key": "c:ann", "account_key": "acme.com", "email": "ann@acme.com", "persona_tier": "P1"}]
    )
    for push in cfg.push:
        crm.execute_push(cfg, eng, "run-1", ad, plan_push(cfg, eng, "run-1", ad, push))
    accounts, contacts = (plan_push(cfg, eng, "run-2", ad, p) for p in cfg.push)
    assert accounts.since is not None and contacts.since is None

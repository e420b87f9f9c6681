"""Credit burn against the budget's pace, the provider optimisation report, and the
warehouse migration of the enrichment tables (SQLite; PostgreSQL too when reachable)."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest
from enrichment_support import NOW, RUN_DATE, make_cfg, seed

from marketmap.enrichment import (
    burn_report,
    optimisation_report,
    plan_account_enrichment,
    pools_for,
    providers_for,
    run_account_enrichment,
    task_pool,
)
from marketmap.enrichment.reports import pace_share
from marketmap.settings import inbox_dir
from marketmap.warehouse import dispose_engines, get_engine
from marketmap.warehouse import schema as t


def _ledger(engine, rows):
    base = {
        "client_id": "demo",
        "provider": "apollo",
        "outcome": "hit",
        "month": "2026-11",
        "recorded_at": NOW,
    }
    with engine.begin() as conn:
        conn.execute(t.credit_ledger.insert(), [base | r for r in rows])


def test_pace_share():
    assert pace_share("2026-11", dt.datetime(2026, 11, 16, 0, 0, tzinfo=dt.UTC)) == pytest.approx(0.5)
    assert pace_share("2026-11", dt.datetime(2026, 10, 30, tzinfo=dt.UTC)) == 0
    assert pace_share("2026-11", dt.datetime(2026, 12, 2, tzinfo=dt.UTC)) == 1


def test_burn_report_flags_pace_and_runaway_runs(mm_home):
    engine = get_engine()
    cfg = make_cfg([], budget=1000)
    _ledger(
        engine,
        [
            {"credits": 300.0, "run_id": "run-a", "account_key": "a.com", "lookup_key": "domain:a.com"},
            {"credits": 150.0, "run_id": "run-b", "account_key": "b.com", "lookup_key": "domain:b.com"},
            {
                "credits": 0.0,
                "run_id": "run-b",
                "outcome": "error",
                "account_key": "c.com",
                "lookup_key": "domain:c.com",
            },
            {
                "credits": 50.0,
                "run_id": "run-b",
                "outcome": "reserved",
                "account_key": "d.com",
                "lookup_key": "domain:d.com",
            },
            {
                "credits": 999.0,
                "run_id": "old",
                "month": "2026-10",
                "account_key": "e.com",
                "lookup_key": "x",
            },
        ],
    )
    r = burn_report(cfg, engine, "2026-11", now=NOW)  # Nov 10, noon (New York): 31% of the month
    assert r["spent"] == 500 and r["open_reservations"] == 50 and r["remaining"] == 500
    assert r["over_pace"] and not r["over_budget"]
    assert r["by_provider"] == {"apollo": {"credits": 500.0, "calls": 4}}
    assert r["runaway_runs"] == {"run-a": 300.0}
    assert r["top_accounts"][0] == {"account_key": "a.com", "credits": 300.0}
    assert {a["rule"] for a in r["alerts"]} == {"credit_burn_above_pace", "runaway_enrichment"}
    calm = burn_report(cfg, engine, "2026-11", now=dt.datetime(2026, 11, 29, tzinfo=dt.UTC))
    assert not calm["over_pace"] and [a["rule"] for a in calm["alerts"]] == ["runaway_enrichment"]


def _simulated(name: str, cost: float, coverage: float) -> dict:
    return {
        "name": name,
        "kind": "simulated",
        "cost_per_call": cost,
        "fields": ["industry", "tech_stack"],
        "options": {
            "file": "truth.csv",
            "key": "domain",
            "coverage": {"industry": coverage, "tech_stack": coverage},
        },
    }


def test_optimisation_report_recommends_the_cheaper_order(mm_home):
    engine = get_engine()
    domains = [f"us{i:03d}.com" for i in range(200)]
    seed(engine, {d: {"country": "United States"} for d in domains})
    inbox = inbox_dir("demo")
    inbox.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"domain": domains, "industry": "Software", "tech_stack": "Salesforce"}).to_csv(
        inbox / "truth.csv", index=False
    )
    # the expensive provider first; the cheap one fills as well on its own
    cfg = make_cfg([_simulated("premium", 3, 0.9), _simulated("budget_data", 1, 0.9)], budget=10_000)
    plan = plan_account_enrichment(cfg, engine, RUN_DATE, now=NOW)
    run_account_enrichment(cfg, engine, "run-1", plan, providers_for(cfg), now=NOW)
    report = optimisation_report(cfg, engine, dt.date(2026, 1, 1))
    by = {p["provider"]: p for p in report["providers"]}
    assert by["premium"]["lookups"] == 200 and by["premium"]["credits"] == 600
    assert 0.8 < by["premium"]["fields"]["industry"]["fill_rate"] < 1
    assert by["budget_data"]["lookups"] < 60  # only the premium provider's leftovers
    assert by["premium"]["credits_per_filled_field"] == pytest.approx(
        600 / by["premium"]["fields_filled"], abs=1e-3
    )
    assert report["recommend"] is True
    assert report["best_order"][0] == "budget_data"
    assert report["saving_share"] > 0.2
    assert "budget_data" in report["recommendation"]

    # the cheap provider first already: nothing to gain
    keep = make_cfg([_simulated("budget_data", 1, 0.9), _simulated("premium", 3, 0.9)])
    assert optimisation_report(keep, engine, dt.date(2027, 1, 1))["recommend"] is False  # no data since


def test_pools_one_per_paid_provider():
    cfg = make_cfg(
        [
            {"name": "file", "kind": "export_file", "fields": ["industry"], "options": {"file": "x.csv"}},
            {
                "name": "apollo",
                "kind": "apollo",
                "conn_id": "a",
                "fields": ["industry"],
                "pool": "apollo_shared",
            },
            {"name": "zi", "kind": "zoominfo", "conn_id": "z", "fields": ["employees"]},
        ]
    )
    assert pools_for(cfg) == {"apollo_shared": 1, "mm_conn_z": 1}
    assert task_pool(cfg) == "apollo_shared"
    assert task_pool(make_cfg([])) is None


def test_pools_are_keyed_by_connection_not_provider_name():
    """Two clients on one Apollo account share its pool; a client with its own account does not."""
    from marketmap.pools import all_pools, crm_pool

    def client(cid: str, apollo_conn: str, crm_conn: str, slots: int = 1):
        cfg = make_cfg([{"name": "apollo", "kind": "apollo", "conn_id": apollo_conn, "fields": ["industry"],
                         "options": {"pool_slots": slots}}])  # fmt: skip
        crm = cfg.crm.model_validate({"kind": "hubspot", "conn_id": crm_conn})
        return cfg.model_copy(update={"client_id": cid, "crm": crm})

    a, b, c = client("a", "apollo_agency", "hs_a", 2), client("b", "apollo_agency", "hs_b", 3), client("c", "apollo_c", "hs_a")
    assert task_pool(a) == task_pool(b) == "mm_conn_apollo_agency"
    assert task_pool(c) == "mm_conn_apollo_c"
    assert crm_pool(a) == crm_pool(c) == "mm_conn_hs_a" != crm_pool(b)
    assert all_pools({"a": a, "b": b, "c": c}) == {
        "mm_conn_apollo_agency": 2,  # shared: the tighter of the two clients' settings
        "mm_conn_apollo_c": 1,
        "mm_conn_hs_a": 1,
        "mm_conn_hs_b": 1,
        "marketmap_sqlite_warehouse": 1,  # the embedded SQLite warehouse's queue (no warehouse_conn_id)
    }


MINE = {"account_field_sources", "clay_rows", "enrichment_stats", "credit_ledger", "contacts"}


def _table_of(entry: tuple) -> str | None:
    kind = entry[0]
    if kind in ("add_table", "remove_table"):
        return entry[1].name
    if kind in ("add_index", "remove_index"):
        return entry[1].table.name
    return entry[2]  # add_column, remove_column, modify_*: (kind, schema, table, ...)


def _compare(url: str | None) -> list:
    """Differences between the migrated database and schema.py, on the enrichment tables."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    with get_engine(url).connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), t.metadata)
    flat = [e for d in diff for e in (d if isinstance(d, list) else [d])]
    return [e for e in flat if _table_of(e) in MINE]


def test_migration_matches_the_enrichment_tables_sqlite(mm_home):
    assert _compare(None) == []


@pytest.mark.postgres
def test_migration_matches_the_enrichment_tables_postgres(pg_database):
    try:
        assert _compare(pg_database) == []
    finally:
        dispose_engines()


def test_run_alerts_go_through_the_alert_store_once(mm_home):
    """Build-time enrichment alerts are deduplicated, routed and resolved like every other alert."""
    import datetime as dt
    import json

    import pendulum

    from marketmap.alerts.delivery import outbox_path
    from marketmap.alerts.engine import process_alerts
    from marketmap.enrichment import run_alert_candidates
    from marketmap.enrichment.reports import RUN_RULES
    from marketmap.warehouse import get_engine

    cfg = make_cfg([])
    engine = get_engine()
    alert = {
        "rule": "credit_budget_reached",
        "severity": "warning",
        "role": "revops",
        "title": f"{cfg.name}: monthly credit budget 100 reached",
        "numbers": {"budget": 100, "spent": 100.0, "accounts_skipped": 7},
    }
    now = pendulum.datetime(2026, 5, 3, tz="UTC")  # Airflow passes pendulum datetimes
    first = process_alerts(cfg, engine, "r1", now, run_alert_candidates(cfg, [alert]), set(RUN_RULES))
    again = process_alerts(cfg, engine, "r2", now + dt.timedelta(days=1), run_alert_candidates(cfg, [alert]), set(RUN_RULES))
    gone = process_alerts(cfg, engine, "r3", now + dt.timedelta(days=2), [], set(RUN_RULES))
    assert (first["fired"], again["fired"], again["updated"], gone["resolved"]) == (1, 0, 0, 1)
    msgs = [json.loads(line) for line in outbox_path("demo").read_text().splitlines()]
    assert {m["channel"] for m in msgs if m["kind"] == "alert_fired"} == {"#demo-revops", "#mm-architects"}
    assert all(not m["text"].count(cfg.name + ": " + cfg.name) for m in msgs)

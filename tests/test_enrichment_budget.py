"""The monthly budget is a hard limit under concurrency and retries, on SQLite and PostgreSQL;
a run that reaches it stops, says what it skipped, and alerts; T1 candidates are paid first."""

from __future__ import annotations

import datetime as dt
import threading

import pytest
from enrichment_support import NOW, RUN_DATE, apollo_cfg, conn_getter, ledger_rows, make_cfg, seed
from servers.apollo import ApolloServer

from marketmap.enrichment import ledger, plan_account_enrichment, providers_for, run_account_enrichment
from marketmap.enrichment.providers import Credentials
from marketmap.warehouse import dispose_engines, get_engine


def _hammer(engine, budget: float, threads: int = 12, per_thread: int = 15) -> list[int]:
    """Many threads reserving 1 credit at a time, each its own lookups; granted counts."""
    granted = [0] * threads
    barrier = threading.Barrier(threads)

    def work(i: int) -> None:
        barrier.wait()
        for j in range(per_thread):
            got, _ = ledger.reserve(
                engine,
                client_id="demo",
                provider="apollo",
                run_id=f"run-{i}",
                month="2026-11",
                budget=budget,
                requests=[ledger.Request(f"domain:t{i}-{j}.com", f"t{i}-{j}.com", 1.0)],
                now=NOW,
            )
            granted[i] += len(got)

    ts = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
    for th in ts:
        th.start()
    for th in ts:
        th.join()
    return granted


def test_concurrent_reservations_never_exceed_the_budget_sqlite(mm_home):
    engine = get_engine()
    granted = _hammer(engine, budget=100)
    assert sum(granted) == 100
    assert ledger.spent(engine, "demo", "2026-11") == 100


@pytest.mark.postgres
def test_concurrent_reservations_never_exceed_the_budget_postgres(pg_database):
    engine = get_engine(pg_database)
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql("DELETE FROM credit_ledger")
        granted = _hammer(engine, budget=100, threads=16)
        assert sum(granted) == 100
        assert ledger.spent(engine, "demo", "2026-11") == 100
    finally:
        dispose_engines()


def test_reservations_are_per_client_and_month(mm_home):
    engine = get_engine()
    req = [ledger.Request("domain:a.com", "a.com", 5.0)]
    kw = {"provider": "p", "run_id": "r", "budget": 5, "requests": req, "now": NOW}
    assert ledger.reserve(engine, client_id="demo", month="2026-11", **kw)[0]
    assert ledger.reserve(engine, client_id="other", month="2026-11", **kw)[0]  # another client's budget
    assert ledger.reserve(engine, client_id="demo", month="2026-12", **kw)[0]  # a new month
    # the same open lookup again is the same reservation, not a second charge
    again, refused = ledger.reserve(engine, client_id="demo", month="2026-11", **kw)
    assert again["domain:a.com"].reused and not refused
    assert ledger.spent(engine, "demo", "2026-11") == 5


def _parallel_runs(engine, apollo, cfg, n_runs: int) -> list:
    getter = conn_getter(apollo=Credentials(host=apollo.url, password=apollo.api_key))
    results = [None] * n_runs
    barrier = threading.Barrier(n_runs)

    def work(i: int) -> None:
        plan = plan_account_enrichment(cfg, engine, RUN_DATE, now=NOW)
        barrier.wait()
        results[i] = run_account_enrichment(
            cfg, engine, f"run-{i}", plan, providers_for(cfg, getter), now=NOW, chunk=5
        )

    ts = [threading.Thread(target=work, args=(i,)) for i in range(n_runs)]
    for th in ts:
        th.start()
    for th in ts:
        th.join()
    return results


def _many_accounts(engine, n: int = 60) -> None:
    seed(engine, {f"us{i:03d}.com": {"country": "United States"} for i in range(n)})


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_parallel_runs_share_one_budget(backend, mm_home, request):
    """Parallel enrichment tasks (threads, own event loops, own connections) on one budget."""
    if backend == "postgres":
        engine = get_engine(request.getfixturevalue("pg_database"))
        with engine.begin() as conn:
            for table in (
                "credit_ledger",
                "enrichment_cache",
                "account_field_sources",
                "accounts",
                "enrichment_stats",
            ):
                conn.exec_driver_sql(f"DELETE FROM {table}")
    else:
        engine = get_engine()
    try:
        _many_accounts(engine)
        with ApolloServer() as apollo:
            for i in range(60):
                apollo.add_org(f"us{i:03d}.com", industry="Software", employees=100 + i)
            apollo.fail("429", times=6, retry_after=0.01)
            apollo.fail("503", times=4)
            cfg = make_cfg([apollo_cfg(fields=["industry", "employees"], bulk=False)], budget=25)
            results = _parallel_runs(engine, apollo, cfg, 4)
        rows = ledger_rows(engine)
        assert sum(r["credits"] for r in rows) <= 25
        assert sum(r["credits"] for r in rows) == 25  # demand exceeded the budget: all of it is used
        keys = [r["lookup_key"] for r in rows if r["outcome"] == "hit"]
        assert len(keys) == len(set(keys)) or len(keys) <= 25  # retries never added rows
        assert any(r.budget_exhausted for r in results)
        assert all(r.month_spent <= 25 for r in results)
    finally:
        if backend == "postgres":
            dispose_engines()


def test_budget_stops_the_run_says_what_it_skipped_and_alerts_t1_first(mm_home):
    engine = get_engine()
    seed(engine)  # two T1 candidates (good.com, mid.co.uk), one T2 candidate (north.ca)
    with ApolloServer() as apollo:
        for d in ("good.com", "mid.co.uk", "north.ca"):
            apollo.add_org(d, tech=["Salesforce"])
        cfg = make_cfg([apollo_cfg(fields=["tech_stack"], bulk=False, concurrency=1)], budget=2)
        getter = conn_getter(apollo=Credentials(host=apollo.url, password=apollo.api_key))
        plan = plan_account_enrichment(cfg, engine, RUN_DATE, now=NOW)
        result = run_account_enrichment(cfg, engine, "run-1", plan, providers_for(cfg, getter), now=NOW)
    paid = {r["account_key"] for r in ledger_rows(engine)}
    assert paid == {"good.com", "mid.co.uk"}  # the T1 candidates got the budget
    assert result.skipped_for_budget == ["north.ca"]
    s = result.summary()
    assert s["budget_exhausted"] and s["skipped_for_budget"] == 1
    rules = {a["rule"] for a in s["alerts"]}
    assert "credit_budget_reached" in rules
    assert "credit_burn_above_pace" in rules  # 2 of 2 credits spent on the 10th of the month


def test_zero_budget_pays_for_nothing(mm_home):
    engine = get_engine()
    seed(engine)
    with ApolloServer() as apollo:
        cfg = make_cfg([apollo_cfg(fields=["tech_stack"])], budget=0)
        getter = conn_getter(apollo=Credentials(host=apollo.url, password=apollo.api_key))
        plan = plan_account_enrichment(cfg, engine, RUN_DATE, now=NOW)
        result = run_account_enrichment(cfg, engine, "run-1", plan, providers_for(cfg, getter), now=NOW)
        assert apollo.requests == []
    assert ledger_rows(engine) == [] and result.budget_exhausted


def test_month_of_uses_the_client_timezone():
    late = dt.datetime(2026, 12, 1, 2, 0, tzinfo=dt.UTC)  # still November in New York
    assert ledger.month_of(late, "America/New_York") == "2026-11"
    assert ledger.month_of(late, "UTC") == "2026-12"

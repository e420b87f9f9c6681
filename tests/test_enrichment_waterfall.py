"""The planner ("only run if") and the waterfall, with the real httpx clients against local
Apollo and Clearbit fakes: first valid value per field, sources, cache, second run free,
faults as misses or errors without double charges."""

from __future__ import annotations

import datetime as dt

import pytest
from enrichment_support import (
    NOW,
    RUN_DATE,
    account,
    apollo_cfg,
    clearbit_cfg,
    conn_getter,
    ledger_rows,
    make_cfg,
    seed,
    sources,
)
from servers.apollo import ApolloServer
from servers.clearbit import ClearbitServer

from marketmap.enrichment import plan_account_enrichment, providers_for, run_account_enrichment
from marketmap.enrichment.providers import Credentials
from marketmap.warehouse import get_engine


@pytest.fixture()
def engine(mm_home):
    eng = get_engine()
    seed(eng)
    return eng


@pytest.fixture()
def apollo():
    with ApolloServer() as s:
        yield s


@pytest.fixture()
def clearbit():
    with ClearbitServer() as s:
        yield s


def _getter(apollo, clearbit):
    return conn_getter(
        apollo=Credentials(host=apollo.url, password=apollo.api_key),
        clearbit=Credentials(host=clearbit.url, password=clearbit.api_key),
    )


def _run(cfg, engine, apollo, clearbit, run_id="run-1", now=NOW):
    plan = plan_account_enrichment(cfg, engine, RUN_DATE, now=now)
    result = run_account_enrichment(
        cfg, engine, run_id, plan, providers_for(cfg, _getter(apollo, clearbit)), now=now
    )
    return plan, result


def test_plan_only_accounts_that_can_reach_t2_and_only_missing_fields(engine):
    cfg = make_cfg([apollo_cfg(), clearbit_cfg()])
    plan = plan_account_enrichment(cfg, engine, RUN_DATE, now=NOW)
    assert plan.groups == [["good.com", "mid.co.uk"], ["north.ca"]]  # T1 candidates first
    assert plan.needs["good.com"] == ("employees", "industry", "last_funding_date", "tech_stack")
    assert plan.needs["north.ca"] == ("last_funding_date", "tech_stack")
    assert plan.skipped == {"cannot reach T2": 2, "nothing missing that a provider can fill": 1}
    assert set(plan.examples["cannot reach T2"]) == {"far.in", "agency.gov"}
    # a stricter minimum tier drops the T2 candidate
    t1_only = plan_account_enrichment(make_cfg([apollo_cfg()], min_tier="T1"), engine, RUN_DATE, now=NOW)
    assert t1_only.groups == [["good.com", "mid.co.uk"]]


def test_settled_tiers_cost_nothing_unless_exact_scores_are_asked(engine):
    # US, software, 500 staff, Salesforce: 85 points, T1 whatever its funding turns out to be
    seed(
        engine,
        {"star.com": {"country": "US", "industry": "Software", "employees": 500, "tech_stack": "Salesforce"}},
    )
    cfg = make_cfg([apollo_cfg()])
    plan = plan_account_enrichment(cfg, engine, RUN_DATE, now=NOW)
    assert "star.com" not in plan.needs and "star.com" in plan.examples["tier settled"]
    exact = plan_account_enrichment(cfg, engine, RUN_DATE, now=NOW, exact_scores=True)
    assert exact.needs["star.com"] == ("last_funding_date",)
    # an unknown field behind a negative indicator is still wanted: it could exclude the account
    seed(
        engine,
        {
            "star.com": {
                "country": "US",
                "employees": 500,
                "tech_stack": "Salesforce",
                "last_funding_date": dt.date(2026, 9, 1),
            }
        },
    )
    plan = plan_account_enrichment(cfg, engine, RUN_DATE, now=NOW)
    assert plan.needs["star.com"] == ("industry",)


def test_plan_uses_a_given_max_attainable_frame(engine):
    import pandas as pd

    cfg = make_cfg([apollo_cfg()])
    frame = pd.DataFrame(
        {
            "account_key": ["good.com", "north.ca", "far.in"],
            "max_attainable_tier": ["T2", "T1", "T3"],
            "max_attainable": [60.0, 90.0, 40.0],
            "unknown": ["industry", "size,tech", "tech"],
        }
    )
    plan = plan_account_enrichment(cfg, engine, RUN_DATE, frame, now=NOW)
    assert plan.groups == [["north.ca"], ["good.com"]]
    # employees: the valuation's input (headcount), wanted whenever the account can reach T2
    assert plan.needs == {"north.ca": ("tech_stack",), "good.com": ("employees", "industry")}


def test_waterfall_first_valid_value_per_field_and_sources(engine, apollo, clearbit):
    # Apollo knows good.com but its industry is a placeholder; Clearbit has a real one
    apollo.add_org(
        "good.com",
        industry="n/a",
        employees=640,
        tech=["Salesforce", "Slack"],
        funding_date="2026-05-01T00:00:00.000+00:00",
    )
    clearbit.add("good.com", industry="Software", employees=999, tech=["HubSpot"])
    apollo.add_org("north.ca", tech=["Segment"])
    cfg = make_cfg([apollo_cfg(), clearbit_cfg()])
    plan, result = _run(cfg, engine, apollo, clearbit)

    good = account(engine, "good.com")
    assert good["industry"] == "Software"  # Apollo's "n/a" is no value: Clearbit filled it
    assert good["employees"] == 640  # Apollo came first: Clearbit's 999 never used
    assert good["tech_stack"] == "Salesforce;Slack"
    assert good["last_funding_date"] == dt.date(2026, 5, 1)
    src = sources(engine)
    assert src[("good.com", "industry")] == "clearbit"
    assert src[("good.com", "employees")] == "apollo"
    assert src[("north.ca", "tech_stack")] == "apollo"
    # Clearbit was asked only where Apollo left a field it offers missing: good.com (industry)
    # and mid.co.uk (unknown to Apollo); north.ca only lacks funding, which Clearbit lacks too
    asked = sorted(r.query["domain"][0] for r in clearbit.requests)
    assert asked == ["good.com", "mid.co.uk"]
    rows = ledger_rows(engine)
    assert {r["outcome"] for r in rows} <= {"hit", "miss"}
    assert result.credits_spent == sum(r["credits"] for r in rows)
    assert result.summary()["fields_filled"]["industry"] == 1
    # accounts that cannot reach T2 were never looked up
    looked_up = {r["lookup_key"] for r in rows}
    assert not any("far.in" in k or "agency.gov" in k or "full.com" in k for k in looked_up)


def test_account_leaves_the_waterfall_once_it_cannot_reach_t2(engine, apollo, clearbit):
    # mid.co.uk (18 now, up to 78): Apollo reveals 5 staff (3 of 25 points) -> at most 56... still T2;
    # with 5 staff and no tech it falls to 18+3+15 = 36 < 50 after Apollo says tech is empty
    apollo.add_org("mid.co.uk", employees=5, tech=[])
    clearbit.add("mid.co.uk", tech=["Salesforce"])
    cfg = make_cfg([apollo_cfg(fields=["employees"]), clearbit_cfg()], min_tier="T1")
    plan, result = _run(cfg, engine, apollo, clearbit)
    assert account(engine, "mid.co.uk")["employees"] == 5
    # 18 + 3 + up to 20 (tech) + 15 (funding) = 56 < 75: no more credits on it
    assert not [r for r in clearbit.requests if r.query["domain"] == ["mid.co.uk"]]
    assert result.stopped_early.get("cannot reach T1 after enrichment") == 1


def test_second_run_of_the_same_build_costs_nothing(engine, apollo, clearbit):
    apollo.add_org("good.com", industry="Software", employees=640, tech=["Salesforce"])
    apollo.add_org("mid.co.uk", employees=300)
    clearbit.add("north.ca", tech=["HubSpot"])
    cfg = make_cfg([apollo_cfg(), clearbit_cfg()])
    _, first = _run(cfg, engine, apollo, clearbit)
    assert first.credits_spent > 0
    calls = len(apollo.requests) + len(clearbit.requests)
    seed(engine)  # the next build reloads the CRM export: enriched values are blank again
    plan, second = _run(cfg, engine, apollo, clearbit, run_id="run-2")
    assert second.credits_spent == 0
    assert len(apollo.requests) + len(clearbit.requests) == calls  # no request at all
    assert second.restored >= 4
    assert account(engine, "good.com")["employees"] == 640
    assert account(engine, "north.ca")["tech_stack"] == "HubSpot"
    assert (
        len(ledger_rows(engine))
        == first.summary()["providers"]["apollo"]["lookups"]
        + first.summary()["providers"]["clearbit"]["lookups"]
    )


def test_refresh_age_stale_values_are_enriched_again(engine, apollo, clearbit):
    apollo.add_org("good.com", industry="Software", employees=640)
    cfg = make_cfg([apollo_cfg(fields=["industry", "employees"])], refresh_days=30)
    _run(cfg, engine, apollo, clearbit)
    assert (
        apollo.count("/api/v1/organizations/bulk_enrich") + apollo.count("/api/v1/organizations/enrich") >= 1
    )
    before = len(apollo.requests)
    seed(engine)  # CRM reload
    # 10 days later: fresh, restored, not asked again
    _run(cfg, engine, apollo, clearbit, run_id="run-2", now=NOW + dt.timedelta(days=10))
    assert len(apollo.requests) == before
    assert account(engine, "good.com")["industry"] == "Software"
    # 40 days later: older than the refresh age -> asked (and paid) again
    seed(engine)
    _, third = _run(cfg, engine, apollo, clearbit, run_id="run-3", now=NOW + dt.timedelta(days=40))
    assert len(apollo.requests) > before
    assert third.credits_spent > 0


def test_retries_on_429_and_5xx_charge_once(engine, apollo, clearbit):
    apollo.add_org("good.com", industry="Software", employees=640)
    apollo.fail("429", times=2, retry_after=0.01)
    apollo.fail("503", times=1)
    cfg = make_cfg([apollo_cfg(fields=["industry", "employees"], bulk=False)])
    _, result = _run(cfg, engine, apollo, clearbit)
    rows = [r for r in ledger_rows(engine) if r["lookup_key"] == "domain:good.com"]
    assert len(rows) == 1 and rows[0]["outcome"] == "hit" and rows[0]["credits"] == 1
    assert account(engine, "good.com")["industry"] == "Software"
    assert apollo.count("/api/v1/organizations/enrich") >= 4  # 3 failures + the answer


def test_malformed_and_empty_answers_are_misses_with_reasons(engine, apollo, clearbit):
    apollo.add_org("good.com", industry="Software")
    clearbit.add("good.com", industry="Software", employees=77)
    apollo.fail("malformed", times=1, path="/api/v1/organizations/enrich")
    cfg = make_cfg(
        [
            apollo_cfg(fields=["industry", "employees"], bulk=False),
            clearbit_cfg(fields=["industry", "employees"]),
        ]
    )
    _, result = _run(cfg, engine, apollo, clearbit)
    rows = {(r["provider"], r["lookup_key"]): r for r in ledger_rows(engine)}
    miss = [
        r
        for r in rows.values()
        if r["provider"] == "apollo" and r["outcome"] == "miss" and "malformed" in (r["detail"] or "")
    ]
    assert len(miss) == 1
    # the next provider filled what the malformed answer could not
    assert (
        account(engine, miss[0]["account_key"])["employees"] is not None
        or miss[0]["account_key"] != "good.com"
    )
    reasons = result.summary()["providers"]["apollo"]["top_reasons"]
    assert any("malformed" in k for k in reasons)

    # empty body: a miss too, cached, so a re-run does not pay again
    apollo2 = make_cfg([apollo_cfg(name="apollo_b", fields=["tech_stack"], bulk=False)])
    apollo.fail("empty", times=10, path="/api/v1/organizations/enrich")
    getter = conn_getter(apollo_b=Credentials(host=apollo.url, password=apollo.api_key))
    plan = plan_account_enrichment(apollo2, engine, RUN_DATE, now=NOW)
    r1 = run_account_enrichment(apollo2, engine, "run-e1", plan, providers_for(apollo2, getter), now=NOW)
    assert r1.providers["apollo_b"].misses == r1.providers["apollo_b"].lookups > 0
    n = len(apollo.requests)
    plan = plan_account_enrichment(apollo2, engine, RUN_DATE, now=NOW)
    r2 = run_account_enrichment(apollo2, engine, "run-e2", plan, providers_for(apollo2, getter), now=NOW)
    assert len(apollo.requests) == n and r2.credits_spent == 0


def test_errors_release_credits_timeouts_keep_them(engine, apollo, clearbit):
    apollo.add_org("good.com", industry="Software")
    apollo.add_org("mid.co.uk", employees=300)
    cfg = make_cfg(
        [
            apollo_cfg(
                fields=["industry", "employees"], bulk=False, retry_attempts=2, timeout=0.3, concurrency=1
            )
        ]
    )
    apollo.fail("500", times=2, path="/api/v1/organizations/enrich")  # both attempts of the first lookup
    apollo.fail("timeout", times=2, path="/api/v1/organizations/enrich", delay=0.8)  # both of the second
    _, result = _run(cfg, engine, apollo, clearbit)
    outcomes = sorted((r["outcome"], r["credits"]) for r in ledger_rows(engine))
    assert ("error", 0.0) in outcomes
    assert ("timeout", 1.0) in outcomes  # the provider may have served (and charged) it
    assert result.providers["apollo"].errors == 2
    # neither was cached: the next run asks again
    n = len(apollo.requests)
    plan = plan_account_enrichment(cfg, engine, RUN_DATE, now=NOW)
    run_account_enrichment(cfg, engine, "run-2", plan, providers_for(cfg, _getter(apollo, clearbit)), now=NOW)
    assert len(apollo.requests) > n


def test_bulk_enrichment_sends_ten_domains_per_call(mm_home, apollo, clearbit):
    engine = get_engine()
    domains = {f"co{i:02d}.com": {"country": "United States"} for i in range(23)}
    seed(engine, domains)
    for d in list(domains)[:15]:
        apollo.add_org(d, industry="Software", employees=300)
    cfg = make_cfg([apollo_cfg(fields=["industry", "employees"])])
    _, result = _run(cfg, engine, apollo, clearbit)
    calls = [r for r in apollo.requests if r.path == "/api/v1/organizations/bulk_enrich"]
    assert sorted(len(r.query["domains[]"]) for r in calls) == [3, 10, 10]
    rows = ledger_rows(engine)
    assert len(rows) == 23  # one ledger row per account, not per request
    assert sum(r["outcome"] == "hit" for r in rows) == 15
    assert result.summary()["fields_filled"] == {"employees": 15, "industry": 15}


def test_crash_after_reservation_reuses_it(engine, apollo, clearbit):
    """A task that died after reserving: its retry settles the same ledger row, charges once."""
    from marketmap.enrichment import ledger

    apollo.add_org("good.com", industry="Software")
    granted, _ = ledger.reserve(
        engine, client_id="demo", provider="apollo", run_id="run-1", month="2026-11", budget=100,
        requests=[ledger.Request("domain:good.com", "good.com", 1.0)], now=NOW,
    )  # fmt: skip
    cfg = make_cfg([apollo_cfg(fields=["industry"], bulk=False)])
    _run(cfg, engine, apollo, clearbit)
    rows = [r for r in ledger_rows(engine) if r["lookup_key"] == "domain:good.com"]
    assert [(r["entry_id"], r["outcome"], r["credits"]) for r in rows] == [
        (granted["domain:good.com"].entry_id, "hit", 1.0)
    ]


def test_api_key_never_reaches_ledger_or_logs(engine, apollo, clearbit, caplog):
    apollo.api_key = "sekrit-apollo-key-123456"
    apollo.fail("500", times=20)
    cfg = make_cfg([apollo_cfg(fields=["industry"], bulk=False, retry_attempts=1)])
    getter = conn_getter(apollo=Credentials(host=apollo.url, password="sekrit-apollo-key-123456"))
    plan = plan_account_enrichment(cfg, engine, RUN_DATE, now=NOW)
    with caplog.at_level("DEBUG"):
        result = run_account_enrichment(cfg, engine, "run-1", plan, providers_for(cfg, getter), now=NOW)
    assert all("sekrit" not in (r["detail"] or "") for r in ledger_rows(engine))
    assert [a["rule"] for a in result.alerts] == ["enrichment_provider_failing"]
    assert "sekrit" not in caplog.text
    assert "sekrit" not in repr(getter("apollo"))

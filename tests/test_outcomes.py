"""Outcomes beyond won/lost: opportunity created — config, back-test, drift and executive report."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from marketmap.config import ConfigError, load_client, parse_client

AS_OF = dt.date(2026, 9, 1)


def test_outcome_defaults_to_closed_won_and_is_validated(fixture_clients):
    cfg = load_client("sample")
    assert cfg.maintenance.outcome.kind == "closed_won" and cfg.maintenance.outcome.since is None
    base = cfg.model_dump(mode="json", exclude_none=True)
    ok = parse_client(
        {"maintenance": {"outcome": {"kind": "opportunity_created", "since": "2026-01-01"}}}, "x.yaml", base
    )
    assert ok.maintenance.outcome.since == dt.date(2026, 1, 1)
    with pytest.raises(ConfigError) as e:
        parse_client({"maintenance": {"outcome": {"since": "2026-01-01"}}}, "acme.yaml", base)
    assert [(f, k) for f, k, _ in e.value.problems] == [("acme.yaml", "maintenance.outcome")]
    assert e.value.problems[0][2].endswith(
        "since only applies to kind opportunity_created (got kind closed_won); remove since or set kind: "
        "opportunity_created"
    )
    with pytest.raises(ConfigError) as e:
        parse_client({"maintenance": {"outcome": {"kind": "meeting_booked"}}}, "acme.yaml", base)
    assert e.value.problems[0][:2] == ("acme.yaml", "maintenance.outcome.kind")
    assert "'closed_won' or 'opportunity_created'" in e.value.problems[0][2]


def _world(created_at: dict[str, int], sizes: dict[str, int], day: dt.date = AS_OF, spread: int = 50):
    """Accounts per tier and, for the first ``created_at[tier]`` of them, a new-business opportunity
    created in the ``spread`` days before ``day`` (open: no deal has closed)."""
    accounts, opps = [], []
    for tier, n in sizes.items():
        for i in range(n):
            key = f"{tier}-{i}"
            accounts.append({"account_key": key, "tier": tier})
            if i < created_at.get(tier, 0):
                created = day - dt.timedelta(days=1 + (i * 7) % spread)
                opps.append({"account_key": key, "crm_id": f"o{key}", "opp_type": "New Business", "amount": 1000.0,
                             "stage": "Prospecting", "is_closed": False, "is_won": False,
                             "created_date": pd.Timestamp(created, tz="UTC"), "close_date": None})  # fmt: skip
    return pd.DataFrame(accounts), pd.DataFrame(opps)


def test_backtest_on_opportunities_created():
    from marketmap.analysis.backtest import backtest

    accounts, opps = _world({"T1": 60, "T2": 30, "T3": 10}, {"T1": 100, "T2": 200, "T3": 400, "OUT": 300})
    closed_won = backtest(accounts, opps)  # no closed deal at all: the old outcome cannot back-test
    assert closed_won["message"] == "0 closed deals at scored accounts: a back-test needs at least 30"
    bt = backtest(accounts, opps, outcome="opportunity_created")
    assert (
        bt["status"] == "ok"
        and bt["outcome"] == "opportunity_created"
        and bt["rate_label"] == "opportunity-created rate"
    )
    assert (bt["closed_deals"], bt["won_deals"]) == (
        1000,
        100,
    )  # scored accounts, accounts with an opportunity
    assert bt["by_tier"]["T1"]["win_rate"] == 0.6 and bt["by_tier"]["T3"]["win_rate"] == 0.025
    assert bt["won_in_t1"]["verdict"] == "only 60% of accounts with an opportunity created are T1 (target 70%+): " \
        "T1 is too narrow or weighted on the wrong vectors"  # fmt: skip
    assert bt["lift_t1_t3"]["verdict"] == "strongly discriminating: 24.00x, above the 2-3x expected"
    assert (
        bt["t3_losses"]["verdict"] == "T3 accounts get opportunities less often than average, as they should"
    )
    assert bt["t2_vs_t1"]["verdict"] == "T1 accounts get opportunities at least as often as T2"
    assert (
        bt["recall_precision"]["verdict"]
        == "T1+T2 are 30% of accounts and capture 90% of accounts with an opportunity created"
    )
    assert (
        bt["cycle_t1_vs_t3"]["verdict"]
        == "no sales cycle for an opportunity-created outcome (T1 vs T3 not compared)"
    )
    inverted = backtest(*_world({"T1": 5, "T3": 80}, {"T1": 100, "T3": 400}), outcome="opportunity_created")
    assert inverted["lift_t1_t3"]["verdict"] == (
        "inverted: T3 accounts get opportunities more often than T1 (0.25x); ICP assumptions are wrong, re-score"
    )
    few = backtest(*_world({"T1": 10}, {"T1": 100, "T3": 100}), outcome="opportunity_created")
    assert few["message"] == "10 scored accounts with an opportunity created: a back-test needs at least 30"


def test_since_counts_only_opportunities_created_from_that_date():
    from marketmap.analysis.backtest import backtest
    from marketmap.config import OutcomeConfig

    accounts, opps = _world({"T1": 60, "T3": 40}, {"T1": 100, "T3": 400}, spread=100)
    late = OutcomeConfig(kind="opportunity_created", since=AS_OF - dt.timedelta(days=50))
    bt = backtest(accounts, opps, outcome=late)
    keep = opps[opps["created_date"] >= pd.Timestamp(AS_OF - dt.timedelta(days=50), tz="UTC")]
    assert bt["won_deals"] == keep["account_key"].nunique() < 100


def test_drift_fires_on_the_opportunity_created_rate(fixture_clients):
    from marketmap.analysis.drift import closed_deals_by_tier, drift_alerts
    from marketmap.config import OutcomeConfig

    base = load_client("sample").model_copy(update={"launch_date": dt.date(2026, 1, 1)})
    outcome = OutcomeConfig(kind="opportunity_created")
    cfg = base.model_copy(update={"maintenance": base.maintenance.model_copy(update={"outcome": outcome})})
    tiers, opps = _world({"T1": 4, "T3": 60}, {"T1": 200, "T3": 300}, spread=56)
    deals = closed_deals_by_tier(opps, tiers, outcome)
    assert deals.attrs["tier_totals"] == {"T1": 200, "T2": 0, "T3": 300}
    alerts, rules, summary = drift_alerts(cfg, deals, AS_OF)
    assert summary["outcome"] == "opportunity_created" and "t1_cycle_not_shortest" not in {
        a.rule for a in alerts
    }
    fired = {a.rule: a for a in alerts}
    t3 = fired["t3_beats_t1"]
    assert t3.firing
    assert t3.title == ("T3 accounts are getting opportunities more often than T1 accounts: 20.0% vs 2.0% of "
                        "accounts had a new-business opportunity created in the last 60 days.")  # fmt: skip
    assert t3.numbers["t3_accounts_with_opportunity"] == "60 of 300" and t3.numbers["t1_created_rate"] == 0.02
    assert "T3: 60 of 300 accounts had an opportunity created (20.0%, 95% CI" in t3.confidence
    lift = fired["lift_below_min"]
    assert lift.firing and lift.title == ("T1 accounts get opportunities only 0.1× as often as T3 accounts over the "
                                          "last 180 days (minimum 1.5×, 2–3× expected).")  # fmt: skip
    # too few opportunities: the same rule holds back and says why
    tiers, opps = _world({"T1": 1, "T3": 12}, {"T1": 200, "T3": 300}, spread=56)
    quiet = {a.rule: a for a in drift_alerts(cfg, closed_deals_by_tier(opps, tiers, outcome), AS_OF)[0]}
    assert not quiet["t3_beats_t1"].firing
    assert quiet["t3_beats_t1"].confidence.endswith(
        " Too few opportunities to alert: 13 accounts with an opportunity created (needs 30, and 10 accounts per tier)."
    )


def test_executive_report_on_opportunities_created(mm_home, monkeypatch):
    from report_support import CLIENTS_DIR, RUN_ID, seed_client

    from marketmap.config import OutcomeConfig
    from marketmap.reports.executive import build
    from marketmap.warehouse import get_engine

    monkeypatch.setenv("MARKETMAP_CLIENTS_DIR", str(CLIENTS_DIR))
    engine = get_engine()
    cfg = seed_client(engine, "acme")["cfg"]
    cfg = cfg.model_copy(update={"maintenance": cfg.maintenance.model_copy(
        update={"outcome": OutcomeConfig(kind="opportunity_created")})})  # fmt: skip
    report = build(cfg, engine, RUN_ID)
    assert report.subtitle == "outcome: a new-business opportunity created (maintenance.outcome)"
    assert [s.title for s in report.sections] == [
        "Opportunities created by tier", "Opportunity-created rate by segment", "All closed deals by type",
    ]  # fmt: skip
    table = report.sections[0].tables[0].frame.set_index("tier")
    assert table["accounts"].sum() == 120 and table["with opportunity"].sum() > 0
    t1, t3 = table.loc["T1"], table.loc["T3"]
    lift = t1["opportunity-created rate"] / t3["opportunity-created rate"]
    assert report.sections[0].findings[0].text == (
        f"T1 accounts get opportunities {lift:.1f}x as often as T3 accounts (2-3x expected)"
    )


def test_preview_back_tests_the_opportunity_created_outcome(mm_home, monkeypatch):
    from report_support import CLIENTS_DIR, RUN_DATE, seed_client

    from marketmap.config import OutcomeConfig
    from marketmap.reports.preview import build_report, format_preview, preview
    from marketmap.warehouse import get_engine

    monkeypatch.setenv("MARKETMAP_CLIENTS_DIR", str(CLIENTS_DIR))
    engine = get_engine()
    cfg = seed_client(engine, "acme")["cfg"]
    cfg = cfg.model_copy(update={"maintenance": cfg.maintenance.model_copy(
        update={"outcome": OutcomeConfig(kind="opportunity_created")})})  # fmt: skip
    p = preview(cfg, engine, None, RUN_DATE)
    bt = p["current"]["backtest"]
    assert bt["outcome"] == "opportunity_created" and bt["closed_deals"] == 120
    text = format_preview(p)
    assert "Tier distribution, valuation and back-test opportunity-created rate" in text
    assert (
        f"Back-test (current): 120 scored accounts, {bt['won_deals']:,} with an opportunity created" in text
    )
    titles = [s.title for s in build_report(p, "preview-x").sections]
    assert "Back-test against opportunities created" in titles


def test_drift_dag_runs_on_the_opportunity_created_outcome(airflow_db, mm_home, tmp_path, monkeypatch):
    """The real build and drift DAGs (dag.test) for a client whose outcome is opportunity_created."""
    import json
    import shutil
    from pathlib import Path

    import pendulum
    import yaml
    from test_build_dag_run import OVERRIDE, fill_inbox, run_build

    from marketmap.orchestration.factory import build_client_dags, dag_id

    clients = tmp_path / "clients"
    clients.mkdir()
    src = Path(__file__).parent / "fixtures" / "clients"
    shutil.copy(src / "_defaults.yaml", clients / "_defaults.yaml")
    sample = yaml.safe_load((src / "sample.yaml").read_text())
    sample["maintenance"] = {"outcome": {"kind": "opportunity_created", "since": "2026-01-01"}}
    (clients / "sample.yaml").write_text(yaml.safe_dump(sample))
    monkeypatch.setenv("MARKETMAP_CLIENTS_DIR", str(clients))
    opps = fill_inbox(mm_home) / "Opportunity.csv"  # the real export's opportunities, created in March 2026
    opps.write_text(
        opps.read_text(encoding="utf-8-sig").replace("2024-01-22T", "2026-03-10T"), encoding="utf-8-sig"
    )
    assert str(run_build("sample", retries=0, conf=OVERRIDE).state).endswith("success")

    cfg = load_client("sample")
    dag = build_client_dags(cfg, only=dag_id("sample", "drift"))[dag_id("sample", "drift")]
    for task in dag.tasks:
        task.retries = 0
    run = dag.test(logical_date=pendulum.datetime(2026, 4, 6, 7, tz="Europe/London"))
    states = {ti.task_id: str(ti.state) for ti in run.get_task_instances()}
    assert str(run.state).endswith("success") and set(states.values()) == {"success"}, states
    (path,) = (mm_home / "reports" / "sample").glob("*/drift.json")
    summary = json.loads(path.read_text())
    assert summary["outcome"] == "opportunity_created"
    long = summary["long"]
    from sqlalchemy import select

    from marketmap.warehouse import get_engine
    from marketmap.warehouse import schema as t

    with get_engine().connect() as conn:
        tiers = dict(conn.execute(select(t.account_scores.c.account_key, t.account_scores.c.tier)).all())
        with_opp = set(conn.execute(select(t.opportunities.c.account_key)).scalars())
    assert {k: r["closed"] for k, r in long.items()} == {
        x: sum(v == x for v in tiers.values()) for x in ("T1", "T2", "T3")
    }
    assert (
        sum(r["won"] for r in long.values()) == sum(tiers.get(k) in ("T1", "T2", "T3") for k in with_opp) > 0
    )
    assert summary["short"] == long  # all created within the last 60 days

"""Correlation, back-test, QA gates, threshold calibration and approach, on hand-made data."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pandas as pd
import pytest

from marketmap.analysis.approach import recommend_approach
from marketmap.analysis.backtest import backtest
from marketmap.analysis.calibration import suggest_thresholds, tier_mix
from marketmap.analysis.correlation import NOT_ENOUGH, employee_bucket, segment_analysis
from marketmap.analysis.qa import failed, format_gates, gates_summary, qa_gates, reconcile_gate
from marketmap.config import Rep, ScopingFacts, TierThresholds

START = dt.date(2025, 1, 1)

# --------------------------------------------------------------------------- builders


class Book:
    """Accounts and opportunities built segment by segment."""

    def __init__(self):
        self.accounts: list[dict] = []
        self.opps: list[dict] = []

    def account(self, key, **fields):
        self.accounts.append({"account_key": key, **fields})

    def deal(self, key, won, amount=10_000.0, days=30, kind="New Business", reason=None):
        close = START + dt.timedelta(days=days)
        self.opps.append(
            {
                "account_key": key,
                "amount": amount,
                "is_closed": True,
                "is_won": won,
                "created_date": pd.Timestamp(START, tz="UTC"),
                "close_date": close,
                "opp_type": kind,
                "stage": "Closed Won" if won else "Closed Lost",
                "loss_reason": None if won else reason,
            }
        )

    def segment(
        self,
        prefix,
        n,
        wins,
        *,
        employees,
        industry,
        funding,
        tech,
        amount,
        days,
        expanded,
        churned,
        competitor_losses=0,
    ):
        """n accounts with one new-business deal each; the first ``wins`` win."""
        for i in range(n):
            key = f"{prefix}{i}"
            self.account(key, employees=employees, industry=industry, funding_stage=funding, tech_stack=tech)
            won = i < wins
            reason = "Competitor" if not won and i - wins < competitor_losses else "Budget"
            self.deal(key, won, amount if won else 5_000.0, days if won else 90, reason=reason)
            if won and i < expanded:
                self.deal(key, True, 3_000.0, 20, kind="Expansion")
            if won and wins - churned <= i < wins:
                self.deal(key, False, 10_000.0, 20, kind="Renewal")

    def frames(self):
        return pd.DataFrame(self.accounts), pd.DataFrame(self.opps)


@pytest.fixture
def book():
    b = Book()
    # 51-200: 40 deals, 20 wins (50%), 20k, 30 days, 10/20 expanded, 2/20 churned
    b.segment(
        "m",
        40,
        20,
        employees=120,
        industry="Software",
        funding="Series A",
        tech="HubSpot; Salesforce",
        amount=20_000.0,
        days=30,
        expanded=10,
        churned=2,
        competitor_losses=2,
    )
    # 201-500: 40 deals, 8 wins (20%), 30k, 60 days, 2/8 expanded, 4/8 churned, 16 of 32 losses to competitors
    b.segment(
        "l",
        40,
        8,
        employees=300,
        industry="Retail",
        funding="Series C",
        tech="Salesforce",
        amount=30_000.0,
        days=60,
        expanded=2,
        churned=4,
        competitor_losses=16,
    )
    # 1-10: 10 deals only (below the 30-deal minimum)
    b.segment(
        "s",
        10,
        3,
        employees=5,
        industry="Software",
        funding="Seed",
        tech=None,
        amount=8_000.0,
        days=20,
        expanded=0,
        churned=0,
    )
    return b.frames()


# --------------------------------------------------------------------------- correlation


def test_employee_buckets():
    s = pd.Series([1, 10, 11, 50, 51, 200, 201, 500, 501, 1000, 1001, 0, None, "12"])
    assert employee_bucket(s).tolist() == [
        "1-10",
        "1-10",
        "11-50",
        "11-50",
        "51-200",
        "51-200",
        "201-500",
        "201-500",
        "501-1000",
        "501-1000",
        "1000+",
        None,
        None,
        "11-50",
    ]


def test_segment_analysis_overall_and_segments(book):
    accounts, opps = book
    r = segment_analysis(accounts, opps, min_sample=30)
    json.dumps(r)  # plain JSON
    assert r["status"] == "ok"
    o = r["overall"]
    assert (o["closed_deals"], o["wins"]) == (90, 31)
    assert o["win_rate"] == round(31 / 90, 4)
    assert o["customers"] == 31
    assert o["expansion_rate"] == round(12 / 31, 4)
    assert o["churn_rate"] == round(6 / 31, 4)
    seg = {s["segment"]: s for s in r["dimensions"]["employees"]["segments"]}
    assert list(seg) == ["1-10", "51-200", "201-500"]  # bucket order
    m = seg["51-200"]
    assert (m["closed_deals"], m["wins"], m["win_rate"]) == (40, 20, 0.5)
    assert (m["avg_deal_size"], m["avg_cycle_days"]) == (20_000.0, 30.0)
    assert (m["expansion_rate"], m["churn_rate"]) == (0.5, 0.1)
    big = seg["201-500"]
    assert (big["win_rate"], big["avg_deal_size"], big["avg_cycle_days"]) == (0.2, 30_000.0, 60.0)
    assert (big["expansion_rate"], big["churn_rate"]) == (0.25, 0.5)
    small = seg["1-10"]
    assert small["closed_deals"] == 10 and small["enough_data"] is False
    assert all(small[k] == NOT_ENOUGH for k in ("win_rate", "avg_deal_size", "avg_cycle_days"))


def test_segment_leaders_and_primary_icp(book):
    r = segment_analysis(*book)
    emp = r["dimensions"]["employees"]
    assert {k: v["segment"] for k, v in emp["leaders"].items()} == {
        "win_rate": "51-200",
        "avg_deal_size": "201-500",
        "avg_cycle_days": "51-200",
        "expansion_rate": "51-200",
        "churn_rate": "51-200",
    }
    assert emp["primary"] == {"segment": "51-200", "leads": 4, "of": 5, "icp_candidate": True}
    assert {"dimension": "employees", "segment": "51-200", "leads": 4, "of": 5} in r["primary_icp"]
    # tech stack is exploded: Salesforce is on every account but the 1-10 ones, HubSpot only on 51-200
    tech = {s["segment"]: s["closed_deals"] for s in r["dimensions"]["tech_stack"]["segments"]}
    assert tech == {"Salesforce": 80, "HubSpot": 40}
    assert r["dimensions"]["tech_stack"]["unknown_deals"] == 10
    # industry: Software = 51-200 + 1-10 (50 deals, 23 wins)
    ind = {s["segment"]: s for s in r["dimensions"]["industry"]["segments"]}
    assert (ind["Software"]["closed_deals"], ind["Software"]["wins"]) == (50, 23)
    assert r["historical_data_ready"] is False  # 31 won / 90 closed


def test_negative_data_analysis(book):
    neg = segment_analysis(*book)["negative"]
    high_loss = {(x["dimension"], x["segment"]) for x in neg["high_loss"]}
    assert ("employees", "201-500") in high_loss and ("employees", "51-200") not in high_loss
    assert {(x["dimension"], x["segment"]) for x in neg["high_churn"]} >= {("employees", "201-500")}
    comp = {(x["dimension"], x["segment"]): x for x in neg["lost_to_competitor"]}
    big = comp[("employees", "201-500")]
    assert (big["competitor_losses"], big["losses"], big["share_of_losses"]) == (16, 32, 0.5)
    assert neg["competitor_share_of_losses"] == round(18 / 59, 4)
    assert ("employees", "51-200") not in comp
    assert neg["loss_reasons_available"] is True


def test_segment_analysis_not_enough_data():
    b = Book()
    b.segment(
        "x",
        20,
        5,
        employees=100,
        industry="Software",
        funding="Seed",
        tech="HubSpot",
        amount=1.0,
        days=10,
        expanded=0,
        churned=0,
    )
    r = segment_analysis(*b.frames(), min_sample=30)
    assert r["status"] == NOT_ENOUGH
    assert (r["closed_deals"], r["wins"]) == (20, 5)
    assert "at least 30" in r["message"]
    assert "dimensions" not in r


def test_segment_analysis_without_expansion_or_renewals():
    b = Book()
    b.segment(
        "a",
        30,
        15,
        employees=100,
        industry="A",
        funding=None,
        tech=None,
        amount=1.0,
        days=10,
        expanded=0,
        churned=0,
    )
    b.segment(
        "b",
        30,
        5,
        employees=300,
        industry="B",
        funding=None,
        tech=None,
        amount=2.0,
        days=20,
        expanded=0,
        churned=0,
    )
    r = segment_analysis(*b.frames())
    assert r["metrics_available"] == ["win_rate", "avg_deal_size", "avg_cycle_days"]
    emp = r["dimensions"]["employees"]
    assert set(emp["leaders"]) == {"win_rate", "avg_deal_size", "avg_cycle_days"}
    assert emp["primary"]["segment"] == "51-200" and emp["primary"]["leads"] == 2
    assert emp["primary"]["icp_candidate"] is False
    assert r["dimensions"]["funding_stage"]["segments"] == []


# --------------------------------------------------------------------------- back-test


def _tiered_book(per_tier: dict[str, tuple[int, int, int]], n_accounts: dict[str, int]):
    """per_tier: tier -> (closed, won, won cycle days); one deal per account."""
    b = Book()
    for tier, count in n_accounts.items():
        closed, won, days = per_tier.get(tier, (0, 0, 0))
        assert count >= closed
        for i in range(count):
            key = f"{tier}-{i}"
            b.account(key, tier=tier)
            if i < closed:
                b.deal(key, i < won, 10_000.0, days if i < won else 100)
    return b.frames()


def test_backtest_metrics_by_hand():
    accounts, opps = _tiered_book(
        {"T1": (20, 10, 30), "T2": (10, 3, 40), "T3": (20, 2, 50)},
        {"T1": 20, "T2": 10, "T3": 20, "OUT": 50},
    )
    # T1 has 20 accounts, T2 10, T3 20, OUT 50 -> 100 scored accounts, T1+T2 = 30%
    r = backtest(accounts, opps)
    json.dumps(r)
    assert r["status"] == "ok"
    assert (r["closed_deals"], r["won_deals"], r["win_rate"]) == (50, 15, 0.3)
    assert r["by_tier"]["T1"] == {
        "closed_deals": 20,
        "wins": 10,
        "win_rate": 0.5,
        "avg_deal_size": 10_000.0,
        "avg_cycle_days": 30.0,
        "share_of_wins": round(10 / 15, 4),
    }
    assert r["won_in_t1"]["share"] == round(10 / 15, 4) and r["won_in_t1"]["passed"] is False
    assert r["lift_t1_t3"]["value"] == 5.0 and r["lift_t1_t3"]["passed"] is True
    assert r["lift_t1_t3"]["verdict"].startswith("strongly discriminating")
    assert r["cycle_t1_vs_t3"]["reduction"] == 0.4 and r["cycle_t1_vs_t3"]["passed"] is True
    assert r["cycle_t1_vs_t2"]["reduction"] == 0.25
    assert r["t3_losses"]["passed"] is True
    assert r["t2_vs_t1"]["passed"] is True
    rp = r["recall_precision"]
    assert rp["flagged_account_share"] == 0.3
    assert rp["recall"] == round(13 / 15, 4)
    assert rp["precision"] == round(13 / 30, 4)
    assert rp["capture_ratio"] == round((13 / 15) / 0.3, 2)
    assert rp["passed"] is True
    assert r["verdicts"] == [r["won_in_t1"]["verdict"]]


def test_backtest_not_discriminating_and_inverted():
    accounts, opps = _tiered_book(
        {"T1": (20, 5, 40), "T2": (10, 5, 40), "T3": (20, 4, 40)}, {"T1": 20, "T2": 10, "T3": 20}
    )
    r = backtest(accounts, opps)
    assert r["lift_t1_t3"]["value"] == 1.25
    assert r["lift_t1_t3"]["verdict"].startswith("not discriminating")
    assert r["cycle_t1_vs_t3"]["passed"] is False  # same cycle
    assert r["t2_vs_t1"]["passed"] is False  # T2 50% > T1 25%
    accounts, opps = _tiered_book({"T1": (20, 2, 40), "T3": (20, 8, 30)}, {"T1": 20, "T3": 20})
    r = backtest(accounts, opps, lift_min=1.5)
    assert r["lift_t1_t3"]["value"] == 0.25 and r["lift_t1_t3"]["verdict"].startswith("inverted")
    assert r["t3_losses"]["passed"] is False


def test_backtest_not_enough_data():
    accounts, opps = _tiered_book({"T1": (10, 5, 30), "T3": (10, 1, 50)}, {"T1": 10, "T3": 10})
    opps = pd.concat([opps, pd.DataFrame([{"account_key": "nobody", "is_closed": True, "is_won": True}])])
    r = backtest(accounts, opps)
    assert r["status"] == NOT_ENOUGH
    assert (r["closed_deals"], r["unscored_deals"]) == (20, 1)


# --------------------------------------------------------------------------- QA gates


def _accounts(tiers: dict[str, int], owners: list[str] | None = None, valuation=1000.0) -> pd.DataFrame:
    rows = [t for t, n in tiers.items() for _ in range(n)]
    df = pd.DataFrame(
        {"account_key": [f"a{i}" for i in range(len(rows))], "tier": rows, "valuation": valuation}
    )
    df["owner_id"] = (owners * len(rows))[: len(rows)] if owners else None
    return df


def test_qa_gates_pass():
    acc = _accounts({"T1": 100, "T2": 300, "T3": 400, "OUT": 200}, owners=["r1", "r2", "r3", "r4"])
    gates = qa_gates(acc)
    assert [g.name for g in gates] == [
        "tier_distribution",
        "accounts_per_rep",
        "accounts_per_rep_sweet_spot",
        "no_blank_tier",
        "no_blank_valuation",
    ]
    assert failed(gates) == []
    assert gates[0].details["t1_share"] == 0.125
    assert "12.5% of 800 in-scope accounts" in gates[0].message
    assert gates_summary(gates)["passed"] is True
    json.dumps(gates_summary(gates))


def test_qa_tier_distribution_bounds():
    too_loose = qa_gates(_accounts({"T1": 90, "T2": 10}))
    assert failed(too_loose)[0].name == "tier_distribution"
    assert "90.0%" in failed(too_loose)[0].message and "too loose" in failed(too_loose)[0].message
    too_tight = qa_gates(_accounts({"T1": 1, "T2": 300, "T3": 699}))
    assert "too tight" in failed(too_tight, "error")[0].message  # 0.1%
    edge = qa_gates(_accounts({"T1": 5, "T2": 995}))  # exactly 0.5%
    assert not failed(edge)


def test_qa_accounts_per_rep():
    acc = _accounts({"T1": 300, "T2": 1_000, "T3": 1_230, "OUT": 500})
    acc.loc[:2_499, "owner_id"] = "big"  # 2,500 in-scope: warning zone
    acc.loc[2_500:2_529, "owner_id"] = "tiny"  # 30 in-scope: below 50
    acc.loc[2_530:, "owner_id"] = "integration-user"  # OUT accounts only: not counted
    gates = {g.name: g for g in qa_gates(acc)}
    assert gates["accounts_per_rep"].passed is False
    assert "1 below 50 (tiny: 30)" in gates["accounts_per_rep"].message
    assert gates["accounts_per_rep_sweet_spot"].passed is False
    assert gates["accounts_per_rep_sweet_spot"].severity == "warning"
    assert "big: 2,500" in gates["accounts_per_rep_sweet_spot"].message
    # only configured, active reps are checked: "tiny" is inactive
    reps = [Rep(id="big", name="Big"), Rep(id="tiny", name="Tiny", active=False), Rep(id="idle", name="Idle")]
    gates = {g.name: g for g in qa_gates(acc, reps=reps)}
    assert gates["accounts_per_rep"].passed is True
    assert gates["accounts_per_rep"].details["reps"] == 1


def test_qa_rep_above_red_flag():
    acc = _accounts({"T1": 1_100, "T2": 10_000}, owners=["one"])
    g = {g.name: g for g in qa_gates(acc)}["accounts_per_rep"]
    assert not g.passed and "above 10,000" in g.message and g.details["above_max"] == {"one": 11_100}


def test_qa_blank_tier_and_valuation():
    acc = _accounts({"T1": 10, "T2": 40, "OUT": 10})
    acc.loc[0, "tier"] = None
    acc.loc[1, "tier"] = " "
    acc.loc[[2, 3, 55], "valuation"] = np.nan  # 55 is OUT: not counted
    gates = {g.name: g for g in qa_gates(acc)}
    assert not gates["no_blank_tier"].passed and gates["no_blank_tier"].details["blank"] == 2
    assert not gates["no_blank_valuation"].passed and gates["no_blank_valuation"].details["blank"] == 2
    text = format_gates(qa_gates(acc))
    assert "FAIL [error] no_blank_tier: 2 of 60 accounts have a blank or unknown tier" in text
    assert "FAIL [error] no_blank_valuation: 2 of 48 in-scope accounts have no valuation" in text
    assert set(gates_summary(qa_gates(acc))["errors"]) == {"no_blank_tier", "no_blank_valuation"}


def test_reconcile_gate():
    assert reconcile_gate(100, 100, 100).passed
    g = reconcile_gate(100, 98)
    assert not g.passed and g.message == "accounts counts differ: source 100, warehouse 98"


# --------------------------------------------------------------------------- calibration


def test_thresholds_hit_the_mix_on_uniform_scores():
    scores = pd.Series(np.arange(1, 101, dtype=float))  # one account per point 1..100
    r = suggest_thresholds(scores)
    assert r["thresholds"] == {"T1": 91, "T2": 66, "T3": 31}
    assert r["mix"] == {"T1": 0.1, "T2": 0.25, "T3": 0.35, "OUT": 0.3}
    TierThresholds(**r["thresholds"])  # valid config


def test_thresholds_custom_mix_and_realistic_scores():
    rng = np.random.default_rng(7)
    scores = pd.Series(np.clip(rng.normal(45, 18, 20_000), 0, 100).round(1))
    target = {"T1": 0.05, "T2": 0.2, "T3": 0.4}
    r = suggest_thresholds(scores, target)
    t = r["thresholds"]
    assert 100 >= t["T1"] > t["T2"] > t["T3"] >= 0
    for tier in ("T1", "T2", "T3"):
        assert r["mix"][tier] == pytest.approx(target[tier], abs=0.015)
    assert r["mix"] == tier_mix(scores, t)


def test_thresholds_stay_strictly_decreasing_on_ties():
    r = suggest_thresholds(pd.Series([50.0] * 100 + [np.nan]))
    t = r["thresholds"]
    assert t["T1"] > t["T2"] > t["T3"] >= 0
    assert r["accounts"] == 100
    with pytest.raises(ValueError):
        suggest_thresholds(pd.Series([], dtype=float))
    with pytest.raises(ValueError):
        suggest_thresholds(pd.Series([1.0]), {"T1": 0.6, "T2": 0.3, "T3": 0.3})


# --------------------------------------------------------------------------- approach


@pytest.mark.parametrize(
    ("facts", "approach"),
    [
        # How many sales reps? 1-3 = T1 only, 5-10 = Tiered, 10+ = Full TAM if vertical
        ({"reps": 2}, "T1 only"),
        ({"reps": 7}, "Tiered pull"),
        ({"reps": 12, "vertical": True}, "Full TAM"),
        ({"reps": 12}, "Tiered pull"),
        # TAM size: <100k = Full TAM, 500k+ = Tiered, millions = T1 only
        ({"tam_size": 40_000}, "Full TAM"),
        ({"tam_size": 600_000}, "Tiered pull"),
        ({"tam_size": 3_000_000}, "T1 only"),
        # Vertical = Full TAM feasible, Horizontal = T1 only
        ({"vertical": True}, "Full TAM"),
        ({"vertical": False}, "T1 only"),
        # Customers: <50 = No historical data, 100-500 = Historical-data heavy, 500+ = full data analysis
        ({"customers": 30}, "No historical data"),
        ({"customers": 250}, "Historical-data heavy"),
        ({"customers": 800}, "Historical-data heavy"),
        ({"closed_won_deals": 100}, "Historical-data heavy"),
        ({"closed_deals": 200}, "Historical-data heavy"),
        ({"customers": 120, "closed_won_deals": 60, "closed_deals": 150}, "Tiered pull"),
        # CRM: clean = standard, messy = CRM cleanup first
        ({"crm_clean": False}, "CRM cleanup first"),
        ({"crm_clean": True}, "Tiered pull"),
        # Credit budget: limited (under 10k) = T1 only, enough = no constraint
        ({"credit_budget": 7_500}, "T1 only"),
        ({"credit_budget": 25_000}, "Tiered pull"),
        # Urgency: campaign next month = T1 sprint, foundation = Full TAM
        ({"urgent": True}, "T1 only"),
        ({"urgent": False}, "Full TAM"),
        ({}, "Tiered pull"),
    ],
)
def test_approach_per_decision_table_row(facts, approach):
    assert recommend_approach(ScopingFacts(**facts)).approach == approach


def test_approach_precedence_and_explanation():
    demo = ScopingFacts(
        reps=10,
        tam_size=20_000,
        vertical=False,
        customers=120,
        closed_won_deals=150,
        closed_deals=520,
        crm_clean=False,
        credit_budget=10_000,
        urgent=False,
    )
    r = recommend_approach(demo)
    assert r.approach == "CRM cleanup first"
    assert r.scope == "Tiered pull"  # horizontal: Full TAM not feasible
    assert r.data_approach == "Historical-data heavy"
    assert r.also == ["Tiered pull", "Historical-data heavy"]
    assert any("horizontal" in reason for reason in r.reasons)
    json.dumps(r.to_dict())
    # a forced T1-only constraint beats the data approach; a vertical, small TAM gives Full TAM
    urgent = recommend_approach(ScopingFacts(urgent=True, customers=300))
    assert (urgent.approach, urgent.data_approach) == ("T1 only", "Historical-data heavy")
    vertical = recommend_approach(
        ScopingFacts(
            reps=15,
            tam_size=30_000,
            vertical=True,
            crm_clean=True,
            credit_budget=20_000,
            urgent=False,
            customers=70,
        )
    )
    assert vertical.approach == "Full TAM" and vertical.also == []

"""Drift statistics and rules: real tests, minimum samples, stated confidence; valuation and check-ins."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from marketmap.analysis.checkins import checkin_alerts, due_dates
from marketmap.analysis.drift import drift_alerts, rate_ratio_ci, two_proportion_test, wilson
from marketmap.analysis.valuation_drift import median_ci, valuation_alerts, valuation_report
from marketmap.config import load_client

AS_OF = dt.date(2026, 9, 1)


@pytest.fixture()
def cfg(fixture_clients):
    return load_client("sample").model_copy(update={"launch_date": dt.date(2026, 1, 1)})


def deals(
    spec: dict[str, tuple[int, int]], days_ago: int = 10, cycle: dict[str, float] | None = None
) -> pd.DataFrame:
    rows = []
    for tier, (won, lost) in spec.items():
        for i in range(won + lost):
            rows.append({"account_key": f"{tier}{i}", "tier": tier, "won": i < won, "closed": True,
                         "close_date": AS_OF - dt.timedelta(days=days_ago + i % 20),
                         "cycle_days": (cycle or {}).get(tier, 60.0) + (i % 7)})  # fmt: skip
    return pd.DataFrame(rows)


def test_statistics_match_textbook_values():
    lo, hi = wilson(8, 10)
    assert lo == pytest.approx(0.4902, abs=1e-4) and hi == pytest.approx(0.9433, abs=1e-4)
    z, p = two_proportion_test(30, 50, 20, 50)
    assert z == pytest.approx(2.0) and p == pytest.approx(0.02275, abs=1e-5)
    rr, lo, hi = rate_ratio_ci(20, 100, 10, 100)
    assert rr == pytest.approx(2.0) and lo < 2 < hi


def test_three_lost_deals_never_page_anyone(cfg):
    alerts, rules, _ = drift_alerts(cfg, deals({"T1": (0, 3), "T3": (1, 0)}), AS_OF)
    assert "t3_beats_t1" in rules
    assert all(a.holding for a in alerts)  # the point estimate shows it; the evidence does not


def test_t3_beating_t1_fires_with_enough_deals_and_says_how_sure(cfg):
    alerts, _, summary = drift_alerts(cfg, deals({"T1": (5, 20), "T2": (8, 17), "T3": (15, 10)}), AS_OF)
    fired = {a.rule: a for a in alerts if not a.holding}
    assert "t3_beats_t1" in fired and "lift_below_min" in fired
    a = fired["t3_beats_t1"]
    assert a.role == "leadership" and a.severity == "critical"
    assert "two-proportion z-test" in a.confidence and "Wilson" in a.confidence
    assert a.numbers["t3_win_rate"] == 0.6 and a.numbers["t1_win_rate"] == 0.2
    assert summary["short"]["T3"]["closed"] == 25


def test_stationary_healthy_tiers_fire_nothing(cfg):
    d = deals({"T1": (18, 12), "T2": (12, 18), "T3": (5, 25)}, cycle={"T1": 40, "T2": 60, "T3": 80})
    alerts, _, _ = drift_alerts(cfg, d, AS_OF)
    assert [a.rule for a in alerts if not a.holding] == []


def test_t2_check_waits_six_months_after_launch(cfg):
    d = deals({"T1": (5, 25), "T2": (20, 10), "T3": (2, 28)})
    early = cfg.model_copy(update={"launch_date": AS_OF - dt.timedelta(days=100)})
    assert "t2_beats_t1" not in drift_alerts(early, d, AS_OF)[1]
    alerts, rules, _ = drift_alerts(cfg, d, AS_OF)
    assert "t2_beats_t1" in {a.rule for a in alerts if not a.holding}


def test_t1_cycle_not_shortest(cfg):
    d = deals({"T1": (20, 10), "T2": (15, 15), "T3": (5, 25)}, cycle={"T1": 90, "T2": 45, "T3": 60})
    fired = {a.rule for a in drift_alerts(cfg, d, AS_OF)[0] if not a.holding}
    assert "t1_cycle_not_shortest" in fired


def test_valuation_divergence_and_proposal(cfg):
    rng = [1.0 + 0.05 * (i % 5) for i in range(20)]
    good = pd.DataFrame(
        {"amount": [10000 * r for r in rng], "valuation": [10000.0] * 20, "tier": ["T1"] * 20}
    )
    assert valuation_alerts(cfg, valuation_report(cfg, good)) == []
    bad = good.assign(valuation=good["amount"] * 3)  # estimates 3x the won value (T1 at 20k vs 60k predicted)
    rep = valuation_report(cfg, bad)
    (a,) = valuation_alerts(cfg, rep)
    assert not a.holding and rep["mdape"] == pytest.approx(2.0) and rep["bias"] == pytest.approx(2.0)
    assert rep["proposal"] == {"seat_price": pytest.approx(100 / 3, rel=1e-3)}
    assert "order statistics" in a.confidence
    few = valuation_alerts(cfg, valuation_report(cfg, bad.head(5)))
    assert few and few[0].holding  # too few deals to be sure
    lo, hi = median_ci(list(range(1, 101)))
    assert lo < 50.5 < hi


def test_checkin_reminders_two_weeks_before(cfg):
    launch = cfg.launch_date
    assert due_dates(launch, launch + dt.timedelta(days=70)) == []
    assert due_dates(launch, launch + dt.timedelta(days=80)) == [
        ("refinement_checkin", launch + dt.timedelta(days=90))
    ]
    assert due_dates(launch, launch + dt.timedelta(days=175)) == [
        ("icp_validation_review", launch + dt.timedelta(days=182))
    ]
    (a,) = checkin_alerts(cfg, launch + dt.timedelta(days=364 - 3), {"t1_win_rate_180d": 0.3})
    assert a.rule == "icp_validation_review" and a.key == "2026-12-31" and not a.resolve_notice

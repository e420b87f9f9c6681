"""Drift statistics and rules: real tests, minimum samples, stated confidence; valuation and check-ins."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from marketmap.analysis.checkins import checkin_alerts, due_dates
from marketmap.analysis.drift import drift_alerts, mann_whitney, rate_ratio_ci, two_proportion_test, wilson
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
                         "close_date": AS_OF - dt.timedelta(days=days_ago + (i * 7) % 45),
                         "cycle_days": (cycle or {}).get(tier, 60.0) + (i % 7)})  # fmt: skip
    return pd.DataFrame(rows)


def test_statistics_match_textbook_values():
    lo, hi = wilson(8, 10)
    assert lo == pytest.approx(0.4902, abs=1e-4) and hi == pytest.approx(0.9433, abs=1e-4)
    z, p = two_proportion_test(30, 50, 20, 50)
    assert z == pytest.approx(2.0) and p == pytest.approx(0.02275, abs=1e-5)
    rr, lo, hi = rate_ratio_ci(20, 100, 10, 100)
    assert rr == pytest.approx(2.0) and lo < 2 < hi
    # Katz: se = sqrt(1/20 - 1/100 + 1/10 - 1/100) = 0.36056 -> 2 * exp(±1.96 * 0.36056)
    assert lo == pytest.approx(0.9866, abs=1e-3) and hi == pytest.approx(4.0545, abs=1e-3)
    # Mann-Whitney: a = 6..10 above b = 1..5 entirely: U = 25, mean 12.5, sd sqrt(5*5*11/12) = 4.787
    z, p = mann_whitney(pd.Series([6, 7, 8, 9, 10]), pd.Series([1, 2, 3, 4, 5]))
    assert z == pytest.approx((25 - 12.5 - 0.5) / 4.7871, abs=1e-3) and p == pytest.approx(0.00605, abs=1e-4)


def test_three_lost_deals_never_page_anyone(cfg):
    alerts, rules, _ = drift_alerts(cfg, deals({"T1": (0, 3), "T3": (1, 0)}), AS_OF)
    assert "t3_beats_t1" in rules
    assert not [a for a in alerts if a.firing]  # the point estimate shows it; the evidence does not


def test_t3_beating_t1_fires_with_enough_deals_and_states_the_evidence(cfg):
    alerts, _, summary = drift_alerts(cfg, deals({"T1": (10, 40), "T2": (15, 35), "T3": (30, 20)}), AS_OF)
    fired = {a.rule: a for a in alerts if a.firing}
    assert "t3_beats_t1" in fired and "lift_below_min" in fired
    a = fired["t3_beats_t1"]
    assert a.role == "leadership" and a.severity == "critical"
    assert (
        a.title
        == "T3 accounts are winning more often than T1 accounts: 60% vs 20% of deals closed in the last 60 days."
    )
    assert "two-proportion z-test" in a.confidence and "95% CI" in a.confidence and "sure" not in a.confidence
    assert "T3 won 30 of 50" in a.confidence and "T1 won 10 of 50" in a.confidence
    assert "2026-07-04 to 2026-09-01 (60 days)" in a.confidence and "p < 0.0001" in a.confidence
    assert a.numbers["t3_win_rate"] == 0.6 and a.numbers["t1_win_rate"] == 0.2
    assert summary["short"]["T3"]["closed"] == 50
    lift = fired["lift_below_min"]
    assert "0.3×" in lift.title and "%" not in lift.numbers["lift"]  # a multiple, not a percentage


def test_one_window_at_p_0_002_is_not_enough_over_a_year_of_weekly_looks(cfg):
    # 15/25 vs 5/25: z = 2.89, p = 0.0019 — the old per-look 5% rule fired; the corrected rule holds
    alerts, _, _ = drift_alerts(cfg, deals({"T1": (5, 20), "T3": (15, 10)}), AS_OF)
    (a,) = [a for a in alerts if a.rule == "t3_beats_t1"]
    assert a.holding and not a.firing and "p = 0.0019" in a.confidence


def test_persistence_both_halves_of_the_window(cfg):
    # T3 far ahead, but only in the last 30 days; in the 30 days before it T1 was ahead
    recent = deals({"T1": (10, 40), "T3": (45, 5)}, days_ago=0).assign(
        close_date=AS_OF - dt.timedelta(days=5)
    )
    older = deals({"T1": (15, 10), "T3": (10, 15)}).assign(close_date=AS_OF - dt.timedelta(days=45))
    older["account_key"] = "old" + older["account_key"]
    alerts, _, _ = drift_alerts(cfg, pd.concat([recent, older], ignore_index=True), AS_OF)
    (a,) = [a for a in alerts if a.rule == "t3_beats_t1"]
    assert a.holding and a.numbers["ahead_in_both_halves"] is False and "p < 0.0001" in a.confidence
    assert "not ahead in both 30-day halves" in a.confidence


def test_every_rule_clears_with_current_numbers(cfg):
    d = deals({"T1": (25, 25), "T2": (15, 35), "T3": (10, 40)}, cycle={"T1": 40, "T2": 60, "T3": 80})
    alerts, _, _ = drift_alerts(cfg, d, AS_OF)
    states = {a.rule: a for a in alerts}
    assert set(states) == {"t3_beats_t1", "t2_beats_t1", "lift_below_min", "t1_cycle_not_shortest"}
    assert all(a.cleared and not a.firing for a in alerts)
    assert states["t3_beats_t1"].title.startswith(
        "T3 accounts no longer win more often than T1 accounts: 20% vs 50%"
    )
    assert states["t1_cycle_not_shortest"].title.startswith("T1 deals are closing about as fast")


def test_stationary_healthy_tiers_fire_nothing(cfg):
    d = deals({"T1": (18, 12), "T2": (12, 18), "T3": (5, 25)}, cycle={"T1": 40, "T2": 60, "T3": 80})
    alerts, _, _ = drift_alerts(cfg, d, AS_OF)
    assert [a.rule for a in alerts if a.firing] == []


def test_t2_check_waits_six_months_after_launch(cfg):
    d = deals({"T1": (10, 40), "T2": (30, 20), "T3": (4, 46)})
    early = cfg.model_copy(update={"launch_date": AS_OF - dt.timedelta(days=100)})
    assert "t2_beats_t1" not in drift_alerts(early, d, AS_OF)[1]
    alerts, rules, _ = drift_alerts(cfg, d, AS_OF)
    assert "t2_beats_t1" in {a.rule for a in alerts if a.firing}


def test_t1_cycle_not_shortest(cfg):
    d = deals({"T1": (20, 10), "T2": (15, 15), "T3": (5, 25)}, cycle={"T1": 90, "T2": 45, "T3": 60})
    fired = {a.rule for a in drift_alerts(cfg, d, AS_OF)[0] if a.firing}
    assert "t1_cycle_not_shortest" in fired


def test_valuation_divergence_and_proposal(cfg):
    rng = [1.0 + 0.05 * (i % 5) for i in range(20)]
    good = pd.DataFrame(
        {"amount": [10000 * r for r in rng], "valuation": [10000.0] * 20, "tier": ["T1"] * 20}
    )
    (ok,) = valuation_alerts(cfg, valuation_report(cfg, good))
    assert (
        ok.cleared and not ok.firing and "within the 30% limit" in ok.title
    )  # resolves with today's numbers
    assert valuation_alerts(cfg, valuation_report(cfg, good.head(0))) == []
    bad = good.assign(valuation=good["amount"] * 3)  # estimates 3x the won value (T1 at 20k vs 60k predicted)
    rep = valuation_report(cfg, bad)
    (a,) = valuation_alerts(cfg, rep)
    assert not a.holding and rep["mdape"] == pytest.approx(2.0) and rep["bias"] == pytest.approx(2.0)
    assert rep["proposal"] == {"seat_price": pytest.approx(100 / 3, rel=1e-3)}
    assert "order statistics" in a.confidence
    # the refit fits: on the same deals a pure 3x over-estimate is corrected exactly
    assert rep["fit"]["in_sample"]["current"]["mdape"] == pytest.approx(2.0)
    assert rep["fit"]["in_sample"]["proposed"]["mdape"] == pytest.approx(0.0)
    assert a.numbers["median_error_proposed"] == 0.0
    assert "The proposed coefficients would be 0% off on the same deals" in a.title
    assert "fewer than 20 deals: no held-out check" in a.confidence
    few = valuation_alerts(cfg, valuation_report(cfg, bad.head(5)))
    assert few and few[0].holding  # too few deals to be sure
    lo, hi = median_ci(list(range(1, 101)))
    assert lo < 50.5 < hi


def test_valuation_refit_is_checked_on_held_out_deals(cfg):
    # 40 won deals, valuations 2.5x the won value in the first 20 (by close date) and 2x in the last 20
    n = 40
    d = pd.DataFrame({"amount": [10000.0 + 100 * (i % 7) for i in range(n)], "tier": "T2",
                      "close_date": [AS_OF - dt.timedelta(days=300 - 7 * i) for i in range(n)]})  # fmt: skip
    d["valuation"] = d["amount"] * [2.5 if i < 20 else 2.0 for i in range(n)]
    rep = valuation_report(cfg, d)
    ho = rep["fit"]["held_out"]
    assert ho["fit_deals"] == 20 and ho["test_deals"] == 20 and ho["scale"] == pytest.approx(0.4)
    assert ho["current"]["mdape"] == pytest.approx(1.0)  # 2x -> 100% off
    assert ho["proposed"]["mdape"] == pytest.approx(0.2)  # 2 x 0.4 = 0.8 -> 20% off
    (a,) = valuation_alerts(cfg, rep)
    assert a.numbers["held_out_error_current"] == 1.0 and a.numbers["held_out_error_proposed"] == 0.2
    assert (
        "Held out (20 later deals, scale fitted on the 20 before): current 100%, proposed 20% off."
        in a.confidence
    )
    # after applying: the next check measures the new coefficients on the deals since, next to what was expected
    cal = {"at": dt.datetime(2026, 9, 1), "coefficients": {"seat_price": 40.0}, "mdape_expected": 0.2}
    later = valuation_report(cfg, d.tail(12).assign(valuation=d["amount"].tail(12) * 0.8), cal)
    (b,) = valuation_alerts(cfg, later)
    assert later["since_calibration"]["expected_mdape"] == 0.2 and b.cleared
    assert (
        "Coefficients applied 2026-09-01; measured on 12 won deals closed since the calibration"
        in b.confidence
    )
    assert "(the calibration expected 20% off)" in b.confidence


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

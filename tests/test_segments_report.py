"""Segment report: charts first, the primary ICP or why none can be named."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

from marketmap.analysis.correlation import segment_analysis
from marketmap.reports.render import Report, render
from marketmap.reports.segments import sections


def book(outcomes_only: bool, seed: int = 3) -> tuple[pd.DataFrame, pd.DataFrame]:
    """120 accounts in two industries; fintech wins 60%, bigger and faster; retail 20%."""
    rng = np.random.default_rng(seed)
    accounts = pd.DataFrame({"account_key": [f"a{i}" for i in range(120)],
                             "industry": ["fintech" if i % 2 else "retail" for i in range(120)],
                             "employees": [60.0] * 120, "funding_stage": None, "tech_stack": None})  # fmt: skip
    rows = []
    for i in range(240):
        acct = i % 120
        fintech = acct % 2 == 1
        won = rng.random() < (0.6 if fintech else 0.2)
        close = dt.date(2026, 1, 1) + dt.timedelta(days=i)
        row = {"account_key": f"a{acct}", "is_closed": True, "is_won": won, "opp_type": "New Business",
               "stage": "Closed Won" if won else "Closed Lost", "amount": None, "created_date": None,
               "close_date": None}  # fmt: skip
        if not outcomes_only:
            row |= {"amount": 30000.0 if fintech else 10000.0, "close_date": close,
                    "created_date": pd.Timestamp(close - dt.timedelta(days=30 if fintech else 90), tz="UTC")}  # fmt: skip
        rows.append(row)
    return accounts, pd.DataFrame(rows)


def test_only_won_lost_outcomes_say_why_no_primary_icp():
    r = segment_analysis(*book(outcomes_only=True))
    assert r["status"] == "ok" and r["primary_icp"] == [] and r["metrics_available"] == ["win_rate"]
    assert r["primary_icp_note"].startswith(
        "No primary ICP can be named from this data: it has only win rate"
    )
    assert "so no segment can lead 3 of the 5 metrics" in r["primary_icp_note"]
    secs = sections(r)
    assert secs[0].findings[0].text == r["primary_icp_note"] and secs[0].findings[0].status == "warn"


def test_segment_report_leads_with_charts_and_names_the_primary_icp():
    r = segment_analysis(*book(outcomes_only=False))
    assert r["primary_icp"] == [{"dimension": "industry", "segment": "fintech", "leads": 3, "of": 3}]
    assert r["primary_icp_note"] == "Primary ICP candidates: industry fintech (leads 3 of 3)."
    secs = sections(r)
    industry = next(s for s in secs if s.title == "By industry")
    assert len(industry.charts) == 2 and industry.tables[0].frame["segment"].tolist() == ["fintech", "retail"]
    html = render(Report("segments", "Segment analysis", "c", "Client <Co>", "run1", sections=secs))
    assert html.index("<svg") < html.index("<table")  # charts before tables
    assert "Client &lt;Co&gt;" in html


def test_too_few_deals_says_so():
    accounts, opps = book(outcomes_only=False)
    r = segment_analysis(accounts, opps.head(10))
    (s,) = sections(r)
    assert s.empty and "at least 30 are needed" in s.empty

"""Persona scoring, distribution, coverage, priority and GDPR on hand-made contacts."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from marketmap.config import CoverageTarget, PersonaConfig
from marketmap.scoring.personas import (
    EU_EEA,
    canonical_country,
    coverage,
    coverage_summary,
    gdpr_filter,
    persona_distribution,
    priority,
    score_contacts,
)

RUN = dt.date(2026, 6, 1)

CFG = PersonaConfig(
    titles={
        "exact": ["Chief Revenue Officer", "VP Revenue Operations", "Head of Revenue Operations"],
        "adjacent": ["VP Sales", "Director of Revenue Operations", "CFO"],
        "broad": ["Sales Manager", "Operations Manager"],
    },
    core_departments=["Revenue Operations", "Sales Operations"],
    adjacent_departments=["Sales", "Finance"],
    primary_geographies=["United States"],
    secondary_geographies=["Canada", "UK"],
    negative_titles=["Intern", "Assistant"],
)


def contact(key, title, department=None, country=None, start=None, account="A", opted_in=None):
    return {
        "contact_key": key,
        "account_key": account,
        "title": title,
        "department": department,
        "country": country,
        "role_start_date": start,
        "email": None,
        "linkedin_url": None,
        "opted_in": opted_in,
    }


@pytest.fixture
def scored():
    rows = [
        # exact 30 + C-level 25 + Sales (adjacent) 10 + primary 15 + <1 yr 10 = 90
        contact("c1", "CRO", country="USA", start="2025-12-01"),
        # adjacent 15 + VP 25 + Sales 10 + secondary 10 + 1-3 yrs 7 = 67
        contact("c2", "VP, Sales", country="Canada", start=dt.date(2024, 6, 1)),
        # exact 30 + VP 25 + core (CRM value "RevOps") 20 + unknown 0 + unknown 0 = 75
        contact("c3", "Head of RevOps", department="RevOps"),
        # broad 5 + Manager 5 + Sales 10 + tertiary 5 + 3+ yrs 3 = 28
        contact("c4", "Regional Sales Manager", country="DE", start="2020-01-15"),
        # negative title
        contact("c5", "Marketing Intern", department="Marketing", country="US", start="2026-03-01"),
        # "International" is not "Intern": adjacent 15 + VP 25 + Sales 10 + primary 15 + <1 10 = 75
        contact("c6", "VP International Sales", country="United States", start="2026-01-01"),
        # contains an exact title: exact 30 + VP 25 + core 20 + secondary (uk) 10 + 0 = 85
        contact("c7", "VP Revenue Operations & Strategy", country="uk"),
        # no title, peripheral CRM department: 0 + 0 + 5 + 0 + 0 = 5
        contact("c8", None, department="Legal"),
        # SVP Global Sales drops modifiers -> VP Sales adjacent: 15 + 25 + 10 + 15 + 0 = 65
        contact("c9", "SVP Global Sales", country="US"),
    ]
    return score_contacts(pd.DataFrame(rows), CFG, RUN).set_index("contact_key")


def test_scores_follow_the_rubric(scored):
    assert scored["persona_score"].to_dict() == {
        "c1": 90.0,
        "c2": 67.0,
        "c3": 75.0,
        "c4": 28.0,
        "c5": 30.0,
        "c6": 75.0,
        "c7": 85.0,
        "c8": 5.0,
        "c9": 65.0,
    }
    assert scored["persona_tier"].to_dict() == {
        "c1": "P1",
        "c2": "P2",
        "c3": "P1",
        "c4": "P3",
        "c5": "EXCLUDED",
        "c6": "P1",
        "c7": "P1",
        "c8": "P3",
        "c9": "P2",
    }


def test_breakdown_columns(scored):
    c2 = scored.loc["c2"]
    assert (c2.ppts_title, c2.ppts_seniority, c2.ppts_department, c2.ppts_geography, c2.ppts_tenure) == (
        15,
        25,
        10,
        10,
        7,
    )
    c4 = scored.loc["c4"]
    assert (c4.title_match, c4.seniority, c4.department_norm) == ("broad", "Manager", "Sales")
    assert scored.loc["c3", "department_norm"] == "Revenue Operations"
    assert scored.loc["c8", "department_norm"] == "Legal"
    assert scored.loc["c8", "title_match"] == "none" and scored.loc["c8", "seniority"] is None
    assert scored.loc["c7", "title_match"] == "exact"
    assert scored.loc["c9", "title_match"] == "adjacent"


def test_weights_scale_the_rubric():
    cfg = CFG.model_copy(
        update={"weights": {"title": 42, "seniority": 20, "department": 18, "geography": 10, "tenure": 10}}
    )
    s = score_contacts(
        pd.DataFrame([contact("x", "Sales Manager", country="US", start="2026-01-01")]), cfg, RUN
    )
    # broad 42/6 = 7 + Manager 0.2*20 = 4 + Sales 0.5*18 = 9 + primary 10 + <1 yr 10 = 40
    assert s.loc[0, "ppts_title"] == 7.0
    assert s.loc[0, "persona_score"] == 40.0
    assert s.loc[0, "persona_tier"] == "P2"


def test_future_or_bad_start_date_is_unknown_tenure():
    rows = [contact("a", "CRO", start="2027-01-01"), contact("b", "CRO", start="not a date")]
    s = score_contacts(pd.DataFrame(rows), CFG, RUN)
    assert s["ppts_tenure"].tolist() == [0.0, 0.0]


def test_missing_columns_count_as_blank():
    s = score_contacts(pd.DataFrame({"contact_key": ["a"], "account_key": ["A"], "title": ["CFO"]}), CFG, RUN)
    # adjacent 15 + C-level 25 + Finance adjacent 10
    assert s.loc[0, "persona_score"] == 50.0


def test_distribution_verdicts():
    def dist(p1, p2, p3, excluded=0):
        tiers = ["P1"] * p1 + ["P2"] * p2 + ["P3"] * p3 + ["EXCLUDED"] * excluded
        return persona_distribution(pd.DataFrame({"persona_tier": tiers}))

    d = dist(20, 45, 35, excluded=7)
    assert d["verdict"] == "sweet spot"
    assert d["contacts"] == 100 and d["excluded"] == 7
    assert d["shares"] == {"P1": 0.2, "P2": 0.45, "P3": 0.35}
    assert dist(80, 10, 10)["verdict"] == "too loose"
    assert dist(5, 45, 50)["verdict"] == "too tight"
    assert dist(40, 30, 30)["verdict"] == "outside sweet spot"
    assert dist(0, 0, 0, excluded=3)["verdict"] == "no contacts"


TARGETS = {
    "T1": CoverageTarget(p1=2, p2=3, contacts=5),
    "T2": CoverageTarget(p1=1, p2=2, contacts=3),
    "T3": CoverageTarget(p1=0, p2=1, contacts=1),
}


def _scored_frame(rows):
    return pd.DataFrame(rows, columns=["account_key", "persona_tier"])


def test_coverage_per_account():
    contacts = _scored_frame(
        [("A", "P1")] * 4
        + [("A", "P2")] * 1
        + [("A", "P3")] * 1
        + [("A", "EXCLUDED")] * 5  # T1: surplus P1
        + [("B", "P2")] * 2
        + [("B", "P3")]  # T2: no P1
        + [("C", "P3")]  # T3: P2 missing
    )
    accounts = pd.DataFrame(
        {"account_key": ["A", "B", "C", "D", "E"], "tier": ["T1", "T2", "T3", "T1", "OUT"]}
    )
    cov = coverage(contacts, accounts, TARGETS).set_index("account_key")
    a = cov.loc["A"]
    assert (a.p1, a.p2, a.contacts) == (4, 1, 6)
    # 2 surplus P1 fill two of the three P2 slots: gap 0 after 1 P2 + 2 surplus
    assert (a.gap_p1, a.gap_p2, a.gap_contacts, a.meets_target) == (0, 0, 0, True)
    b = cov.loc["B"]
    assert (b.gap_p1, b.gap_p2, b.gap_contacts, b.meets_target) == (1, 0, 0, False)
    c = cov.loc["C"]
    assert (c.gap_p1, c.gap_p2, c.gap_contacts, c.meets_target) == (0, 1, 0, False)
    d = cov.loc["D"]
    assert (d.contacts, d.gap_p1, d.gap_p2, d.gap_contacts) == (0, 2, 3, 5)
    e = cov.loc["E"]
    assert (e.target_p1, e.target_contacts, e.meets_target) == (0, 0, True)


def test_coverage_summary_broaden_and_tighten():
    accounts = pd.DataFrame({"account_key": list("ABCD"), "tier": ["T1", "T1", "T1", "T2"]})
    contacts = _scored_frame([("A", "P1")] * 6 + [("B", "P2")] * 2 + [("C", "P3")] * 60 + [("D", "P1")] * 20)
    summary = coverage_summary(coverage(contacts, accounts, TARGETS))
    assert summary["t1_accounts"] == 3 and summary["t1_with_p1"] == 1
    assert summary["t1_p1_share"] == pytest.approx(0.3333, abs=1e-4)
    assert summary["avg_contacts_per_t1"] == pytest.approx(68 / 3, abs=0.01)
    assert summary["t1_below_min_contacts"] == 1  # B has 2
    assert summary["avg_contacts_per_account"] == 22.0  # (6 + 2 + 60 + 20) / 4
    assert summary["max_contacts_at_account"] == 60 and summary["max_contacts_account"] == "C"
    assert summary["verdicts"] == ["broaden titles", "tighten"]

    ok = coverage_summary(coverage(_scored_frame([("A", "P1")] * 6), accounts.iloc[:1], TARGETS))
    assert ok["verdicts"] == ["ok"] and ok["t1_p1_share"] == 1.0


@pytest.mark.parametrize(
    ("account", "persona", "expected"),
    [
        ("T1", "P1", "highest: AE immediate outreach"),
        ("T1", "P2", "high: multi-thread"),
        ("T2", "P1", "high: SDR sequence"),
        ("T2", "P2", "medium: SDR sequence, lower priority"),
        ("T3", "P1", "low: marketing nurture"),
        ("T3", "P3", "low: marketing nurture"),
        ("T1", "EXCLUDED", "none: excluded persona"),
        ("OUT", "P1", "none: account out of scope"),
        (None, "P1", "none: account out of scope"),
    ],
)
def test_priority_scalar(account, persona, expected):
    assert priority(account, persona) == expected


def test_priority_vectorised():
    a = pd.Series(["T1", "T2", "T3", "T1"], index=[10, 11, 12, 13])
    p = pd.Series(["P1", "P1", "P2", "P2"], index=[10, 11, 12, 13])
    out = priority(a, p)
    assert out.index.tolist() == [10, 11, 12, 13]
    assert out.tolist() == [
        "highest: AE immediate outreach",
        "high: SDR sequence",
        "low: marketing nurture",
        "high: multi-thread",
    ]
    assert priority("T1", p).tolist()[:2] == ["highest: AE immediate outreach"] * 2


def test_gdpr_filter_modes():
    df = pd.DataFrame(
        [
            contact("us", "CRO", country="United States"),
            contact("de_yes", "CRO", country="DE", opted_in=True),
            contact("fr_no", "CRO", country="France", opted_in=False),
            contact("nl_str", "CRO", country="The Netherlands", opted_in="true"),
            contact("no_blank", "CRO", country="Norway", opted_in=None),
            contact("uk", "CRO", country="UK"),
            contact("none", "CRO", country=None),
        ]
    )
    assert gdpr_filter(df, "enrich") is df
    assert gdpr_filter(df, "skip")["contact_key"].tolist() == ["us", "uk", "none"]
    assert gdpr_filter(df, "opted_in_only")["contact_key"].tolist() == [
        "us",
        "de_yes",
        "nl_str",
        "uk",
        "none",
    ]
    with_uk = gdpr_filter(df, "skip", EU_EEA | {"united kingdom"})
    assert with_uk["contact_key"].tolist() == ["us", "none"]
    with pytest.raises(ValueError, match="unknown gdpr mode"):
        gdpr_filter(df, "maybe")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("U.S.A.", "united states"),
        ("us", "united states"),
        ("Deutschland", "germany"),
        ("gb", "united kingdom"),
        ("  Canada ", "canada"),
        ("", None),
        (None, None),
    ],
)
def test_canonical_country(raw, expected):
    assert canonical_country(raw) == expected

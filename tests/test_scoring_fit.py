"""Fit scoring: every vector kind, negatives, tier boundaries, unknowns, products, intent."""

from __future__ import annotations

import datetime as dt
import json
import math

import numpy as np
import pandas as pd
import pytest

from marketmap.config import IcpConfig, Rubric
from marketmap.scoring.fit import score_icp, score_rubric

RUN = dt.date(2026, 3, 15)


def rubric(**over) -> Rubric:
    base = {
        "product": "core",
        "vectors": [
            {
                "name": "geo",
                "kind": "categorical",
                "field": "country",
                "weight": 20,
                "points": {"United States": 20, "Canada": 12},
                "default": 2,
            },
            {
                "name": "size",
                "kind": "bands",
                "field": "employees",
                "weight": 25,
                "bands": [
                    {"max": 50, "points": 5},
                    {"min": 50, "max": 200, "points": 15},
                    {"min": 200, "max": 2000, "points": 25},
                ],
            },
            {
                "name": "tech",
                "kind": "any_of",
                "field": "tech_stack",
                "weight": 20,
                "points": {"Salesforce": 20, "HubSpot": 16, "Segment": 8},
            },
            {
                "name": "funding",
                "kind": "recency",
                "field": "last_funding_date",
                "weight": 15,
                "windows": [{"within_months": 12, "points": 15}, {"within_months": 24, "points": 8}],
            },
            {
                "name": "b2b",
                "kind": "boolean",
                "field": "is_b2b",
                "weight": 20,
                "true_points": 20,
                "false_points": 5,
            },
        ],
        "thresholds": {"T1": 75, "T2": 50, "T3": 25},
    }
    base.update(over)
    return Rubric.model_validate(base)


def one_vector(vector: dict, **over) -> Rubric:
    """A rubric of a single weight-100 vector, to test one kind in isolation."""
    return Rubric.model_validate({"vectors": [{"name": "v", "weight": 100, **vector}], **over})


def frame(**cols) -> pd.DataFrame:
    n = len(next(iter(cols.values())))
    return pd.DataFrame({"account_key": [f"a{i}" for i in range(n)], **cols})


def pts(accounts: pd.DataFrame, r: Rubric, name: str = "v") -> list[float]:
    return score_rubric(accounts, r, RUN)[f"pts_{name}"].tolist()


# --------------------------------------------------------------------------- vector kinds


def test_bands_min_inclusive_max_exclusive_open_ends_and_outside():
    r = one_vector(
        {
            "kind": "bands",
            "field": "employees",
            "bands": [
                {"max": 50, "points": 10},
                {"min": 50, "max": 200, "points": 60},
                {"min": 500, "points": 100},
            ],
        }
    )
    acc = frame(employees=[-5, 49.9, 50, 199.99, 200, 499, 500, 1e9, np.nan])
    assert pts(acc, r) == [10, 10, 60, 60, 0, 0, 100, 100, 0]
    out = score_rubric(acc, r, RUN)
    assert out["unknown"].tolist() == [""] * 8 + ["v"]
    assert "v 0/100 (outside bands)" in out["explanation"][4]


def test_bands_accept_numeric_text():
    r = one_vector({"kind": "bands", "field": "employees", "bands": [{"min": 50, "points": 100}]})
    acc = frame(employees=pd.Series(["120", " 20", "", None, "twelve"], dtype=object))
    out = score_rubric(acc, r, RUN)
    assert out["pts_v"].tolist() == [100, 0, 0, 0, 0]
    assert out["unknown"].tolist() == ["", "", "v", "v", "v"]


def test_categorical_case_whitespace_default_and_unknown():
    r = one_vector(
        {
            "kind": "categorical",
            "field": "country",
            "points": {"United States": 100, " Canada ": 60},
            "default": 7,
        }
    )
    acc = frame(country=["united states", "  UNITED STATES ", "canada", "France", "", "   ", None, np.nan])
    out = score_rubric(acc, r, RUN)
    assert out["pts_v"].tolist() == [100, 100, 60, 7, 0, 0, 0, 0]
    assert out["unknown"].tolist() == ["", "", "", "", "v", "v", "v", "v"]
    assert out["explanation"][3] == "OUT: 7 — v 7/100 (other)"  # known, so no better maximum
    assert out["explanation"][4] == "OUT: 0 — v unknown (max 100, T1)"


def test_any_of_best_match_not_sum_default_and_separator():
    r = one_vector(
        {
            "kind": "any_of",
            "field": "tech_stack",
            "default": 3,
            "points": {"Salesforce": 100, "HubSpot": 80, "Segment": 40},
        }
    )
    acc = frame(
        tech_stack=[
            "Segment;HubSpot",
            " hubspot ; SEGMENT ",
            "Oracle;SAP",
            "Salesforce",
            "",
            ";;",
            None,
            "Segment",
        ]
    )
    assert pts(acc, r) == [80, 80, 3, 100, 0, 0, 0, 40]
    out = score_rubric(acc, r, RUN)
    assert out["unknown"].tolist() == ["", "", "", "", "v", "v", "v", ""]
    assert out["explanation"][0].startswith("T1: 80 — v 80/100 (HubSpot)")
    assert out["explanation"][2].startswith("OUT: 3 — v 3/100 (no match)")

    r2 = one_vector({"kind": "any_of", "field": "tech_stack", "separator": ",", "points": {"Gong": 100}})
    assert pts(frame(tech_stack=["Slack, gong", "Slack;Gong"]), r2) == [100, 0]


def test_recency_windows_cutoff_future_and_unknown():
    r = one_vector(
        {
            "kind": "recency",
            "field": "last_funding_date",
            "windows": [{"within_months": 24, "points": 40}, {"within_months": 12, "points": 100}],
        }
    )
    dates = ["2026-03-01", "2025-03-15", "2025-03-14", "2024-03-15", "2024-03-14", "2027-01-01", None]
    acc = frame(last_funding_date=pd.to_datetime(dates))
    # run date 2026-03-15: 12 months back is 2025-03-15 (inclusive), 24 months back is 2024-03-15
    assert pts(acc, r) == [100, 100, 40, 40, 0, 100, 0]
    out = score_rubric(acc, r, RUN)
    assert out["unknown"].tolist() == [""] * 6 + ["v"]
    assert "v 40/100 (within 24 mo)" in out["explanation"][2]
    assert "v 0/100 (older than 24 mo)" in out["explanation"][4]


def test_recency_accepts_date_objects_and_text():
    r = one_vector({"kind": "recency", "field": "d", "windows": [{"within_months": 12, "points": 100}]})
    objs = frame(d=pd.Series([dt.date(2026, 1, 1), dt.date(2020, 1, 1), None], dtype=object))
    assert pts(objs, r) == [100, 0, 0]
    text = frame(d=["2026-01-01", "2020-01-01", ""])
    assert pts(text, r) == [100, 0, 0]
    aware = frame(d=pd.to_datetime(["2026-01-01T00:00:00+05:00", None]))
    assert pts(aware, r) == [100, 0]


def test_recency_month_end_cutoff():
    r = one_vector({"kind": "recency", "field": "d", "windows": [{"within_months": 1, "points": 100}]})
    acc = frame(d=pd.to_datetime(["2026-02-28", "2026-02-27"]))
    # 31 March minus one calendar month is 28 February
    assert score_rubric(acc, r, dt.date(2026, 3, 31))["pts_v"].tolist() == [100, 0]


def test_boolean_accepts_bools_numbers_and_words():
    r = one_vector({"kind": "boolean", "field": "flag", "true_points": 100, "false_points": 30})
    acc = frame(
        flag=pd.Series([True, False, "yes", "No", "1", "0", " TRUE ", "maybe", None, ""], dtype=object)
    )
    out = score_rubric(acc, r, RUN)
    assert out["pts_v"].tolist() == [100, 30, 100, 30, 100, 30, 100, 0, 0, 0]
    assert out["unknown"].tolist() == [""] * 7 + ["v"] * 3
    assert pts(frame(flag=[True, False]), r) == [100, 30]  # bool dtype
    assert pts(frame(flag=[1.0, 0.0, np.nan, 2.0]), r) == [100, 30, 0, 0]  # numeric dtype
    assert pts(frame(flag=pd.array([True, None, False], dtype="boolean")), r) == [100, 0, 30]


def test_missing_column_is_unknown_for_everyone():
    out = score_rubric(frame(country=["Canada", "US"]), rubric(), RUN)
    assert out["unknown"].tolist() == ["size,tech,funding,b2b"] * 2
    assert out["score"].tolist() == [12, 2]


# --------------------------------------------------------------------------- negatives


def accounts_full() -> pd.DataFrame:
    return frame(
        country=["United States", "United States", "United States", "Canada", "United States"],
        employees=[500, 500, 500, 100, 500],
        tech_stack=["Salesforce", "Salesforce", "Salesforce", "Segment", "Salesforce"],
        last_funding_date=pd.to_datetime(["2026-01-01"] * 5),
        is_b2b=[True, True, True, False, True],
        industry=["Software", "Government", "Software", "Software", "Higher Education"],
        is_partner=pd.Series([None, None, "yes", None, None], dtype=object),
        churned=pd.Series([None, None, None, True, None], dtype=object),
    )


NEGATIVES = [
    {"name": "government", "field": "industry", "values": ["government"], "action": "exclude"},
    {"name": "partner", "field": "is_partner", "is_true": True, "action": "cap_tier", "cap": "T3"},
    {
        "name": "education",
        "field": "industry",
        "contains_any": ["EDUCATION"],
        "action": "cap_tier",
        "cap": "T2",
    },
    {"name": "churned", "field": "churned", "is_true": True, "action": "subtract", "points": 30},
    {"name": "no_such_field", "field": "nope", "values": ["x"], "action": "exclude"},
]


def test_negative_indicators_exclude_cap_subtract():
    out = score_rubric(accounts_full(), rubric(negative_indicators=NEGATIVES), RUN)
    # a full score of 100, then each account hits one negative
    assert out["score"].tolist() == [100, 100, 100, 12 + 15 + 8 + 15 + 5 - 30, 100]
    assert out["tier"].tolist() == ["T1", "OUT", "T3", "T3", "T2"]
    assert out["excluded"].tolist() == [False, True, False, False, False]
    assert out["negatives"].tolist() == ["", "government", "partner", "churned", "education"]
    # an excluded account cannot gain anything; a capped one keeps the cap at its maximum
    assert out["max_attainable"].tolist() == [100, 100, 100, 25, 100]
    assert out["max_attainable_tier"].tolist() == ["T1", "OUT", "T3", "T3", "T2"]
    assert (
        out["explanation"][1]
        == "OUT: 100 — excluded: government; geo 20, size 25, tech 20, funding 15, b2b 20"
    )
    assert out["explanation"][2].startswith("T3: 100 — capped at T3: partner; geo 20,")
    assert out["explanation"][3] == (
        "T3: 25 — minus 30: churned; geo 12/20 (Canada), size 15/25 (50-200), tech 8/20 (Segment), "
        "funding 15, b2b 5/20 (no)"
    )


def test_subtract_floors_at_zero_and_worst_cap_wins():
    negs = [
        {"name": "big_minus", "field": "flag", "is_true": True, "action": "subtract", "points": 80},
        {"name": "cap2", "field": "flag", "is_true": True, "action": "cap_tier", "cap": "T2"},
        {"name": "cap3", "field": "flag", "is_true": True, "action": "cap_tier", "cap": "T3"},
    ]
    r = one_vector(
        {"kind": "bands", "field": "x", "bands": [{"min": 0, "points": 30}]}, negative_indicators=negs
    )
    out = score_rubric(frame(x=[10.0, 10.0], flag=[True, False]), r, RUN)
    assert out["score"].tolist() == [0, 30]
    assert out["tier"].tolist() == ["OUT", "T3"]
    assert out["negatives"].tolist() == ["big_minus,cap2,cap3", ""]


def test_cap_does_not_raise_a_lower_tier():
    negs = [{"name": "p", "field": "flag", "is_true": True, "action": "cap_tier", "cap": "T2"}]
    r = one_vector(
        {"kind": "bands", "field": "x", "bands": [{"min": 0, "points": 30}]}, negative_indicators=negs
    )
    assert score_rubric(frame(x=[1.0], flag=[True]), r, RUN)["tier"].tolist() == ["T3"]


# --------------------------------------------------------------------------- tiers


@pytest.mark.parametrize(
    ("points", "tier"),
    [
        (75, "T1"),
        (74.99, "T2"),
        (50, "T2"),
        (49.9, "T3"),
        (25, "T3"),
        (24.99, "OUT"),
        (0, "OUT"),
        (100, "T1"),
    ],
)
def test_tier_boundaries_exactly_on_threshold(points, tier):
    r = one_vector({"kind": "bands", "field": "x", "bands": [{"min": 0, "points": points}]})
    assert score_rubric(frame(x=[1.0]), r, RUN)["tier"].tolist() == [tier]


def test_tier_from_unrounded_score():
    r = one_vector({"kind": "bands", "field": "x", "bands": [{"min": 0, "points": 74.96}]})
    out = score_rubric(frame(x=[1.0]), r, RUN)
    assert out["score"].tolist() == [75.0]  # displayed rounded ...
    assert out["tier"].tolist() == ["T2"]  # ... but 74.96 is below T1


def test_fractional_points_summing_to_threshold_reach_it():
    # 0.1 + 0.2 + ... is not exact in binary floating point; the tier must still be right
    vectors = [
        {"name": f"v{i}", "kind": "bands", "field": "x", "weight": w, "bands": [{"min": 0, "points": p}]}
        for i, (w, p) in enumerate([(10.1, 10.1), (20.2, 14.9), (69.7, 0)])
    ]
    r = Rubric.model_validate({"vectors": vectors, "thresholds": {"T1": 80, "T2": 50, "T3": 25}})
    out = score_rubric(frame(x=[1.0]), r, RUN)
    assert out["score"].tolist() == [25.0]
    assert out["tier"].tolist() == ["T3"]


def test_custom_thresholds():
    r = one_vector(
        {"kind": "bands", "field": "x", "bands": [{"min": 0, "points": 30}]},
        thresholds={"T1": 70, "T2": 50, "T3": 30},
    )
    assert score_rubric(frame(x=[1.0]), r, RUN)["tier"].tolist() == ["T3"]


# --------------------------------------------------------------------------- unknowns, max, output


def test_unknowns_and_max_attainable():
    acc = frame(
        country=["Canada", None],
        employees=[100, np.nan],
        tech_stack=[None, "Segment"],
        last_funding_date=pd.to_datetime([None, "2025-01-01"]),
        is_b2b=[True, None],
    )
    out = score_rubric(acc, rubric(), RUN)
    assert out["score"].tolist() == [12 + 15 + 20, 8 + 8]
    assert out["unknown"].tolist() == ["tech,funding", "geo,size,b2b"]
    assert out["max_attainable"].tolist() == [47 + 20 + 15, 16 + 20 + 25 + 20]
    assert out["tier"].tolist() == ["T3", "OUT"]
    assert out["max_attainable_tier"].tolist() == ["T1", "T1"]
    assert out["explanation"][0] == (
        "T3: 47 — geo 12/20 (Canada), size 15/25 (50-200), tech unknown, funding unknown, b2b 20 (max 82, T1)"
    )
    assert out["explanation"][1] == (
        "OUT: 16 — geo unknown, size unknown, tech 8/20 (Segment), funding 8/15 (within 24 mo), b2b unknown "
        "(max 81, T1)"
    )


def test_output_columns_index_and_points_dict():
    acc = accounts_full().set_index(pd.Index([10, 20, 30, 40, 50]))
    out = score_rubric(acc, rubric(), RUN)
    assert list(out.index) == [10, 20, 30, 40, 50]
    assert list(out.columns) == [
        "account_key",
        "product",
        "score",
        "tier",
        "excluded",
        "negatives",
        "points",
        "pts_geo",
        "pts_size",
        "pts_tech",
        "pts_funding",
        "pts_b2b",
        "unknown",
        "max_attainable",
        "max_attainable_tier",
        "explanation",
    ]
    assert out["account_key"].tolist() == ["a0", "a1", "a2", "a3", "a4"]
    assert out["product"].tolist() == ["core"] * 5
    assert out.loc[40, "points"] == {"geo": 12.0, "size": 15.0, "tech": 8.0, "funding": 15.0, "b2b": 5.0}
    json.dumps(out["points"].tolist())
    for name in ["geo", "size", "tech", "funding", "b2b"]:
        assert out[f"pts_{name}"].dtype == float
    total = out[[c for c in out.columns if c.startswith("pts_")]].sum(axis=1)
    assert (total == out["score"]).all()


def test_explain_false_leaves_text_out_but_numbers_identical():
    acc = accounts_full()
    r = rubric(negative_indicators=NEGATIVES)
    full, fast = score_rubric(acc, r, RUN), score_rubric(acc, r, RUN, explain=False)
    assert fast["explanation"].isna().all() and fast["points"].isna().all()
    pd.testing.assert_frame_equal(
        full.drop(columns=["explanation", "points"]), fast.drop(columns=["explanation", "points"])
    )


def test_empty_input():
    out = score_rubric(frame(country=[]), rubric(), RUN)
    assert len(out) == 0 and "explanation" in out.columns and "pts_geo" in out.columns


def test_demo_client_rubric_scores():
    from marketmap.config import load_client

    icp = load_client("demo").icp
    acc = frame(
        country=["USA"],
        employees=[500],
        industry=["software"],
        tech_stack=["Salesforce"],
        last_funding_date=pd.to_datetime(["2026-01-01"]),
        is_partner=[False],
        account_type=["Prospect"],
    )
    out = score_icp(acc, icp, RUN)
    assert out["score"].tolist() == [100] and out["tier"].tolist() == ["T1"]


# --------------------------------------------------------------------------- products, intent, ABM


def test_multi_product_long_format():
    core = rubric(product="core")
    addon = one_vector(
        {"kind": "categorical", "field": "country", "points": {"Canada": 100}}, product="addon"
    )
    icp = IcpConfig(version="v7", rubrics=[core, addon])
    acc = accounts_full()
    out = score_icp(acc, icp, RUN)
    assert len(out) == 2 * len(acc)
    assert out["product"].tolist() == ["core"] * 5 + ["addon"] * 5
    assert out["rubric_version"].unique().tolist() == ["v7"]
    assert out["account_key"].tolist() == acc["account_key"].tolist() * 2
    addon_rows = out[out["product"] == "addon"]
    assert addon_rows["tier"].tolist() == ["OUT", "OUT", "OUT", "T1", "OUT"]
    assert addon_rows["pts_v"].tolist() == [0, 0, 0, 100, 0]
    assert out[out["product"] == "core"]["pts_v"].isna().all()  # other product's vector


def test_intent_propensity_and_abm_grade():
    r = one_vector(
        {"kind": "bands", "field": "x", "bands": [{"min": 0, "points": 80}, {"max": 0, "points": 40}]}
    )
    icp = IcpConfig(version="1", rubrics=[r], intent={"field": "intent_score", "weight": 0.5}, abm_grade=True)
    acc = frame(x=[1.0, 1.0, -1.0, -1.0, np.nan], intent_score=[90, np.nan, 40, 39.9, 10])
    out = score_icp(acc, icp, RUN)
    assert out["intent"].tolist()[:1] == [90] and math.isnan(out["intent"].tolist()[1])
    assert out["propensity"].tolist() == [125, 80, 60, 60, 5]
    assert out["abm_grade"].tolist() == ["1A", "1-", "3B", "3C", "4C"]
    assert out["score"].tolist() == [80, 80, 40, 40, 0]  # intent never changes fit


def test_abm_grade_without_intent_and_no_intent_columns():
    r = one_vector({"kind": "bands", "field": "x", "bands": [{"min": 0, "points": 60}]})
    out = score_icp(frame(x=[1.0]), IcpConfig(version="1", rubrics=[r], abm_grade=True), RUN)
    assert out["abm_grade"].tolist() == ["2-"]
    assert "propensity" not in out.columns and "intent" not in out.columns


# --------------------------------------------------------------------------- against a row-by-row reference


def reference_score(row: pd.Series, r: Rubric) -> tuple[float, str]:
    """The rubric interpreted one account at a time, the plain way."""

    def text(x):
        return (
            None
            if x is None or (isinstance(x, float) and math.isnan(x)) or not str(x).strip()
            else str(x).strip().lower()
        )

    total = 0.0
    for v in r.vectors:
        x = row[v.field]
        if v.kind == "bands":
            total += next(
                (
                    b.points
                    for b in v.bands
                    if not math.isnan(x) and (b.min is None or x >= b.min) and (b.max is None or x < b.max)
                ),
                0.0,
            )
        elif v.kind == "categorical":
            t = text(x)
            total += 0 if t is None else {k.lower(): p for k, p in v.points.items()}.get(t, v.default)
        elif v.kind == "any_of":
            t = text(x)
            if t is not None:
                found = [
                    p for k, p in v.points.items() if k.lower() in [s.strip() for s in t.split(v.separator)]
                ]
                total += max(found) if found else v.default
        elif v.kind == "recency":
            if not pd.isna(x):
                total += max(
                    [
                        w.points
                        for w in v.windows
                        if x >= pd.Timestamp(RUN) - pd.DateOffset(months=w.within_months)
                    ],
                    default=0,
                )
        else:
            t = text(x)
            total += v.true_points if t in ("true", "yes") else v.false_points if t in ("false", "no") else 0
    t = r.thresholds
    return total, "T1" if total >= t.T1 else "T2" if total >= t.T2 else "T3" if total >= t.T3 else "OUT"


def test_matches_row_by_row_reference_on_random_accounts():
    rng = np.random.default_rng(3)
    n = 400
    acc = frame(
        country=rng.choice(["United States", "canada ", "France", "", None], n),
        employees=np.where(rng.random(n) < 0.1, np.nan, rng.integers(0, 3000, n).astype(float)),
        tech_stack=rng.choice(["Salesforce;Segment", "Segment", "hubspot;Oracle", "Oracle", "", None], n),
        last_funding_date=pd.Timestamp(RUN) - pd.to_timedelta(rng.integers(-30, 1200, n), unit="D"),
        is_b2b=pd.Series(
            rng.choice(np.array([True, False, None, "yes", "no"], dtype=object), n), dtype=object
        ),
    )
    acc.loc[rng.random(n) < 0.2, "last_funding_date"] = pd.NaT
    out = score_rubric(acc, rubric(), RUN)
    expected = acc.apply(lambda row: reference_score(row, rubric()), axis=1)
    assert out["score"].tolist() == [round(s, 1) for s, _ in expected]
    assert out["tier"].tolist() == [t for _, t in expected]


def test_category_dtype_scores_like_text():
    acc = accounts_full()
    cat = acc.astype({"country": "category", "industry": "category", "tech_stack": "category"})
    r = rubric(negative_indicators=NEGATIVES)
    pd.testing.assert_frame_equal(score_rubric(cat, r, RUN), score_rubric(acc, r, RUN))

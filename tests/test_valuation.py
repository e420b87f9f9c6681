"""Valuation methods on hand-computed cases, combination, white space, calibration."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from marketmap.config import ValuationConfig
from marketmap.scoring.valuation import calibration_report, employee_segment, value_accounts

NAN = float("nan")


def same(a, b) -> bool:
    return all((math.isnan(x) and math.isnan(y)) or x == pytest.approx(y) for x, y in zip(a, b, strict=True))


def test_revenue_method():
    acc = pd.DataFrame({"annual_revenue": [2_000_000, 0, np.nan, -5, 1234]})
    out = value_accounts(acc, ValuationConfig(methods=["revenue"], revenue_coefficient=0.01))
    # 2,000,000 x 0.01 = 20,000; 1,234 x 0.01 = 12.34 -> rounded 12; zero/negative/unknown -> NaN, not 0
    assert same(out["val_revenue"], [20_000, NAN, NAN, NAN, 12.34])
    assert same(out["valuation"], [20_000, NAN, NAN, NAN, 12])


def test_headcount_method():
    acc = pd.DataFrame({"employees": [250, 1, np.nan, 0]})
    out = value_accounts(acc, ValuationConfig(methods=["headcount"], seat_price=600, penetration=0.08))
    # 250 x 600 x 0.08 = 12,000; 1 x 600 x 0.08 = 48
    assert same(out["val_headcount"], [12_000, 48, NAN, NAN])


def test_product_method():
    acc = pd.DataFrame({"locations": pd.Series([4, "7", "many", None], dtype=object)})
    cfg = ValuationConfig(methods=["product"], product_field="locations", product_coefficient=5000)
    assert same(value_accounts(acc, cfg)["val_product"], [20_000, 35_000, NAN, NAN])
    # a product field the frame does not have: every account unknown
    cfg2 = ValuationConfig(methods=["product"], product_field="web_traffic", product_coefficient=1)
    assert value_accounts(acc, cfg2)["val_product"].isna().all()


def test_employee_segments():
    assert employee_segment([1, 10, 11, 50, 51, 200, 201, 500, 501, 1000, 1001, 0, np.nan, 0.5]).tolist() == [
        0,
        0,
        1,
        1,
        2,
        2,
        3,
        3,
        4,
        4,
        5,
        -1,
        -1,
        -1,
    ]


def test_extrapolation_method():
    won = pd.DataFrame(
        {
            "account_key": ["w1", "w2", "w3", "w4"],
            "amount": [1000, 3000, 8000, 12000],
            "employees": [8, 9, 250, np.nan],
        }
    )
    acc = pd.DataFrame({"account_key": list("abcdef"), "employees": [5, 300, 60, 5000, np.nan, 10]})
    out = value_accounts(acc, ValuationConfig(methods=["extrapolation"]), won)
    # 1-10: (1000 + 3000) / 2 = 2000; 201-500: 8000; others fall back to the overall average of all
    # four deals (24000 / 4 = 6000, the deal of unknown size included), and so does an account of
    # unknown size
    assert same(out["val_extrapolation"], [2000, 8000, 6000, 6000, 6000, 2000])


def test_extrapolation_looks_up_deal_sizes_and_needs_deals():
    acc = pd.DataFrame({"account_key": ["x", "y", "p"], "employees": [20, 700, 30]})
    won = pd.DataFrame({"account_key": ["x", "y", "z"], "amount": [5000, 9000, 0]})  # 0: no amount
    out = value_accounts(acc, ValuationConfig(methods=["extrapolation"]), won)
    assert same(out["val_extrapolation"], [5000, 9000, 5000])  # p is 11-50 like x
    assert value_accounts(acc, ValuationConfig(methods=["extrapolation"]))["val_extrapolation"].isna().all()
    empty = won.iloc[:0]
    assert (
        value_accounts(acc, ValuationConfig(methods=["extrapolation"]), empty)["val_extrapolation"]
        .isna()
        .all()
    )


def like_frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "account_key": ["c1", "c2", "c3", "c4", "p1", "p2", "p3"],
            "employees": [100, 100, 100, 10_000, 100, np.nan, 100],
            "annual_revenue": [1e7, 1e7, 1e7, 1e9, 1e7, np.nan, np.nan],
            "industry": ["Software", "software ", "Retail", "Software", "Software", "Software", "Software"],
            "current_arr": [10_000, 20_000, 60_000, 500_000, np.nan, np.nan, 0],
        }
    )


def test_like_accounts_method():
    out = value_accounts(like_frame(), ValuationConfig(methods=["like_accounts"], like_accounts_k=2))
    # p1 has the same size as c1, c2 (distance 0, same industry): median(10k, 20k) = 15k.
    # c1 never counts itself: c2 (distance 0), then c3 (same size, other industry: 0 + 1) beats
    # c4 (same industry but ~2.7 standard deviations bigger): median(20k, 60k) = 40k; c2 likewise
    # takes c1 and c3: median(10k, 60k) = 35k. c3 (Retail) is 1 from c1, c2 and 3.7 from c4: 15k.
    # c4 is 2.7 from c1, c2 and 3.7 from c3: 15k. p3 knows only employees: compared on that
    # alone, like p1. p2 knows nothing: NaN.
    assert same(out["val_like_accounts"], [40_000, 35_000, 15_000, 15_000, 15_000, NAN, 15_000])


def test_like_accounts_with_fewer_customers_than_k():
    acc = like_frame().iloc[[0, 4]]  # one customer, one prospect
    out = value_accounts(acc, ValuationConfig(methods=["like_accounts"], like_accounts_k=5))
    # the prospect uses the only customer; the customer has nobody left but itself
    assert same(out["val_like_accounts"], [NAN, 10_000])


def test_like_accounts_chunks_agree(monkeypatch):
    import marketmap.scoring.valuation as v

    rng = np.random.default_rng(0)
    n = 300
    acc = pd.DataFrame(
        {
            "employees": rng.integers(1, 5000, n).astype(float),
            "annual_revenue": rng.integers(1, 1000, n) * 1e5,
            "industry": rng.choice(["A", "B", "C", None], n),
            "current_arr": np.where(rng.random(n) < 0.3, rng.integers(1, 100, n) * 1000.0, np.nan),
        }
    )
    cfg = ValuationConfig(methods=["like_accounts"], like_accounts_k=3)
    whole = value_accounts(acc, cfg)["val_like_accounts"]
    monkeypatch.setattr(v, "_CHUNK_CELLS", 50)  # many small blocks
    assert same(value_accounts(acc, cfg)["val_like_accounts"], whole)


def combo_frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "account_key": ["a", "b", "c", "d"],
            "annual_revenue": [1_000_000, 1_000_000, np.nan, np.nan],
            "employees": [100, np.nan, 50, np.nan],
            "locations": [2, 3, np.nan, np.nan],
            "current_arr": [np.nan, 5000, 40_000, 100],
        }
    )


COEF = {
    "revenue_coefficient": 0.01,
    "seat_price": 500,
    "penetration": 0.1,
    "product_field": "locations",
    "product_coefficient": 4000,
}


def test_combine_median_mean_first_and_methods():
    acc = combo_frame()
    # a: revenue 10,000, headcount 5,000, product 8,000; b: revenue 10,000, product 12,000
    # c: headcount 2,500 only; d: nothing
    med = value_accounts(acc, ValuationConfig(methods=["revenue", "headcount", "product"], **COEF))
    assert same(med["valuation"], [8000, 11_000, 2500, NAN])
    assert med["valuation_methods"].tolist() == [
        "revenue,headcount,product",
        "revenue,product",
        "headcount",
        "",
    ]
    mean = value_accounts(
        acc, ValuationConfig(methods=["revenue", "headcount", "product"], combine="mean", **COEF)
    )
    assert same(mean["valuation"], [round(23_000 / 3), 11_000, 2500, NAN])
    first = value_accounts(
        acc, ValuationConfig(methods=["headcount", "product", "revenue"], combine="first", **COEF)
    )
    assert same(first["valuation"], [5000, 12_000, 2500, NAN])
    assert first["valuation_methods"].tolist() == ["headcount", "product", "headcount", ""]


def test_clip_round_and_white_space():
    acc = combo_frame()
    cfg = ValuationConfig(methods=["revenue", "headcount", "product"], min_value=3000, max_value=9000, **COEF)
    out = value_accounts(acc, cfg)
    assert same(out["valuation"], [8000, 9000, 3000, NAN])
    # customers: max(valuation - current ARR, 0); prospects (no ARR) NaN
    assert same(out["white_space"], [NAN, 4000, 0, NAN])
    assert same(out["current_arr"], [NAN, 5000, 40_000, 100])
    assert list(out.columns) == [
        "account_key",
        "val_revenue",
        "val_headcount",
        "val_product",
        "valuation",
        "valuation_methods",
        "current_arr",
        "white_space",
    ]


def test_index_kept_and_empty_input():
    acc = combo_frame().set_index(pd.Index([7, 8, 9, 10]))
    out = value_accounts(acc, ValuationConfig(methods=["revenue"], revenue_coefficient=1))
    assert list(out.index) == [7, 8, 9, 10]
    empty = value_accounts(
        acc.iloc[:0],
        ValuationConfig(methods=["revenue", "headcount"], seat_price=1, penetration=1, revenue_coefficient=1),
    )
    assert len(empty) == 0 and "valuation" in empty.columns


# --------------------------------------------------------------------------- calibration


def valued(estimates, actuals) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "account_key": [f"c{i}" for i in range(len(actuals))],
            "valuation": estimates,
            "current_arr": actuals,
        }
    )


def test_calibration_report_numbers():
    actual = [1000.0] * 10 + [np.nan, 0.0]
    # signed errors: -50%, -25%, -10%, 0, +5%, +10%, +20%, +30%, +31%, +100%
    est = [500, 750, 900, 1000, 1050, 1100, 1200, 1300, 1310, 2000, 4000, 9000]
    r = calibration_report(valued(est, actual))
    assert r["n"] == 10 and r["n_unvalued"] == 0
    assert r["within_20"] == pytest.approx(0.5)  # -10, 0, +5, +10, +20 (boundary inclusive)
    assert r["within_30"] == pytest.approx(0.7)  # adds -25% and +30%: exactly the 70% target
    assert r["median_abs_pct_error"] == pytest.approx((0.20 + 0.25) / 2)
    assert r["bias"] == pytest.approx((0.05 + 0.10) / 2)
    assert r["ok"] is True
    assert r["message"].startswith("calibrated: 70% of 10 customers within 30%")
    assert r["customers"][0] == {"account_key": "c9", "estimate": 2000.0, "actual": 1000.0, "pct_error": 1.0}
    json.dumps(r)


def test_calibration_not_ok_when_too_inaccurate():
    r = calibration_report(valued([2000.0] * 8 + [1000.0] * 2, [1000.0] * 10))
    assert r["within_30"] == pytest.approx(0.2) and r["ok"] is False
    assert r["bias"] == pytest.approx(1.0)
    assert r["message"].startswith("not calibrated")


def test_calibration_needs_ten_customers():
    r = calibration_report(valued([1000.0] * 9 + [np.nan], [1000.0] * 10))
    assert r["n"] == 9 and r["n_unvalued"] == 1
    assert r["within_30"] == 1.0 and r["ok"] is False
    assert "not enough customers" in r["message"]
    none = calibration_report(valued([1.0], [np.nan]))
    assert none["n"] == 0 and none["within_30"] is None and none["ok"] is False


def test_calibration_on_value_accounts_output():
    acc = pd.DataFrame(
        {
            "account_key": [f"k{i}" for i in range(12)],
            "employees": [100.0] * 12,
            "current_arr": [4800.0] * 10 + [9000.0, np.nan],
        }
    )
    out = value_accounts(acc, ValuationConfig(methods=["headcount"], seat_price=600, penetration=0.08))
    r = calibration_report(out)
    assert r["n"] == 11 and r["within_20"] == pytest.approx(10 / 11) and r["ok"] is True

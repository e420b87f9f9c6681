"""Drift alerts over a whole client-year: false-alarm and detection rates of the real rule.

Runs ``marketmap.analysis.drift.drift_alerts`` exactly as the weekly drift DAG task does
(``closed_deals_by_tier`` on canonical opportunity rows, then one call per weekly
``as_of``) over simulated client-years, and counts what would have paged a leader (a
*firing* candidate; the alert store sends every firing candidate that is not already
open). Scenarios (every one with strong seasonality that hits all tiers alike: deals
closing in quarter-end months win 1.8× as often, and 40% more of them close):

* ``null`` — no tier difference at all (every tier wins 25% on average). A firing
  ``t3_beats_t1``, ``t2_beats_t1`` or ``t1_cycle_not_shortest`` is a false alarm.
  (``lift_below_min`` is *true* here — T1 does not out-win T3 — and is counted apart.)
* ``healthy`` — the tiers work (T1 30%, T2 22%, T3 15%; T1 cycles shortest). Any firing
  alert of any rule is a false alarm.
* ``drift`` — healthy until a random onset day, then T3 clearly out-wins T1
  (T1 12%, T3 45%). Detected when ``t3_beats_t1`` fires within 60 days of the onset.
* ``drift_small`` — the same with a smaller planted drift (T1 15%, T3 40%): the power
  the rule has on a less obvious change (reported, no goal).

Volume: 1,800 closed new-business deals a year (T1 500, T2 600, T3 700, Poisson per
day); weekly looks over 52 weeks after 18 months of history. Deterministic (seeded).

Run: ``PYTHONPATH=include .venv/bin/python bench/bench_drift_sim.py --sims 400``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import sys
import time

import numpy as np
import pandas as pd

from marketmap.analysis.drift import closed_deals_by_tier, drift_alerts, two_proportion_test
from marketmap.config import load_client_file

START = dt.date(2025, 1, 1)
HISTORY_DAYS = 540  # 18 months of deals before the first look
YEAR_LOOKS = 52
VOLUME = {"T1": 500, "T2": 600, "T3": 700}  # closed new-business deals a year
FALSE_RULES = ("t3_beats_t1", "t2_beats_t1", "t1_cycle_not_shortest")
SCENARIOS = {
    "null": {"pre": {"T1": 0.25, "T2": 0.25, "T3": 0.25}, "cycle": {"T1": 60, "T2": 60, "T3": 60}},
    "healthy": {"pre": {"T1": 0.30, "T2": 0.22, "T3": 0.15}, "cycle": {"T1": 45, "T2": 60, "T3": 75}},
    "drift": {"pre": {"T1": 0.30, "T2": 0.22, "T3": 0.15}, "post": {"T1": 0.12, "T2": 0.22, "T3": 0.45},
              "cycle": {"T1": 45, "T2": 60, "T3": 75}},
    "drift_small": {"pre": {"T1": 0.30, "T2": 0.22, "T3": 0.15}, "post": {"T1": 0.15, "T2": 0.22, "T3": 0.40},
                    "cycle": {"T1": 45, "T2": 60, "T3": 75}},
}  # fmt: skip


def season(day: dt.date) -> float:
    """Quarter-end months win 1.8× as often as the average month; other months 0.75×."""
    return 1.8 if day.month in (3, 6, 9, 12) else 0.75


def client_year(
    rng: np.random.Generator, scenario: dict, onset: dt.date | None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Canonical opportunity rows and account tiers of one simulated client."""
    days = pd.date_range(START, periods=HISTORY_DAYS + 7 * YEAR_LOOKS + 1, freq="D")
    s = np.where(days.month.isin([3, 6, 9, 12]), 1.8, 0.75)  # seasonality of win rates
    post = np.zeros(len(days), dtype=bool) if onset is None else np.asarray(days >= pd.Timestamp(onset))
    frames = []
    for tier, per_year in VOLUME.items():
        n = rng.poisson(per_year / 365 * np.where(s > 1, 1.4, 0.87))
        p = np.where(post, scenario.get("post", scenario["pre"])[tier], scenario["pre"][tier]) * s
        day = np.repeat(np.arange(len(days)), n)
        won = rng.random(len(day)) < np.minimum(p[day], 0.95)
        cycle = rng.lognormal(math.log(scenario["cycle"][tier]), 0.5, len(day)).round()
        close = days[day]
        frames.append(pd.DataFrame({
            "tier": tier, "is_closed": True, "is_won": won, "stage": np.where(won, "Closed Won", "Closed Lost"),
            "opp_type": "New Business", "amount": 20000.0, "close_date": close,
            "created_date": close - pd.to_timedelta(cycle, unit="D")}))  # fmt: skip
    opps = pd.concat(frames, ignore_index=True)
    opps["account_key"] = [f"a{i}" for i in range(len(opps))]
    return opps.drop(columns="tier"), opps[["account_key", "tier"]]


def run_year(cfg, rng: np.random.Generator, name: str) -> dict:
    scenario = SCENARIOS[name]
    first_look = START + dt.timedelta(days=HISTORY_DAYS)
    onset = None
    if "post" in scenario:
        onset = first_look + dt.timedelta(days=int(rng.integers(60, 7 * YEAR_LOOKS - 70)))
    opps, tiers = client_year(rng, scenario, onset)
    deals = closed_deals_by_tier(opps, tiers)  # what the drift task reads
    fired: dict[str, list[dt.date]] = {}
    old_rule = False  # the rule before issue 12: one-sided p < 5% on each week's 60-day window
    m = cfg.maintenance
    for w in range(YEAR_LOOKS):
        as_of = first_look + dt.timedelta(days=7 * w)
        alerts, _, summary = drift_alerts(cfg, deals, as_of)
        for a in alerts:
            if a.firing:
                fired.setdefault(a.rule, []).append(as_of)
        t1, t3 = summary["short"]["T1"], summary["short"]["T3"]
        if (t1["closed"] + t3["closed"] >= m.drift_min_deals and min(t1["closed"], t3["closed"]) >= 10
                and two_proportion_test(t3["won"], t3["closed"], t1["won"], t1["closed"])[1] < 1 - m.confidence):  # fmt: skip
            old_rule = True
    out = {"fired": fired, "onset": onset, "old_rule": old_rule}
    if onset is not None:
        t3 = [d for d in fired.get("t3_beats_t1", []) if d >= onset]
        out["days_to_alert"] = (t3[0] - onset).days if t3 else None
        out["before_onset"] = any(d < onset for ds in fired.values() for d in ds)
    return out


def rate(k: int, n: int) -> str:
    from marketmap.analysis.drift import wilson

    lo, hi = wilson(k, n)
    return f"{k}/{n} = {k / n:.1%} (95% CI {lo:.1%}–{hi:.1%})"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sims", type=int, default=400, help="client-years per scenario")
    ap.add_argument("--seed", type=int, default=12)
    ap.add_argument("--scenarios", default="null,healthy,drift,drift_small")
    args = ap.parse_args(argv)
    sys.stdout.reconfigure(line_buffering=True)  # progress shows when piped to a file
    from pathlib import Path

    cfg = load_client_file(Path(__file__).resolve().parents[1] / "tests/fixtures/clients/sample.yaml")
    cfg = cfg.model_copy(update={"launch_date": START})  # t2_beats_t1 is evaluated all year
    ok = True
    print(f"{args.sims} client-years per scenario, seed {args.seed}", flush=True)
    for name in args.scenarios.split(","):
        rng = np.random.default_rng([args.seed, list(SCENARIOS).index(name)])
        t0 = time.perf_counter()
        years = [run_year(cfg, rng, name) for _ in range(args.sims)]
        secs = time.perf_counter() - t0
        n = len(years)
        print(f"\n## {name}: {n} client-years × {YEAR_LOOKS} weekly looks ({secs:.0f} s)")
        per_rule = {
            r: sum(r in y["fired"] for y in years) for r in sorted({r for y in years for r in y["fired"]})
        }
        print("client-years with a firing alert, per rule:", per_rule or "none")
        if name == "null":
            k = sum(any(r in y["fired"] for r in FALSE_RULES) for y in years)
            print(f"false drift alerts (t3/t2 beats t1, cycle): {rate(k, n)}")
            print(f"lift_below_min (true under the null): {rate(per_rule.get('lift_below_min', 0), n)}")
            old = sum(y["old_rule"] for y in years)
            print(f"reference, the per-look 5% rule before issue 12 (false T3 > T1): {rate(old, n)}")
            ok &= k / n <= 0.05
        elif name == "healthy":
            k = sum(bool(y["fired"]) for y in years)
            print(f"any false alert: {rate(k, n)}")
            ok &= k / n <= 0.05
        else:
            k = sum(y["days_to_alert"] is not None and y["days_to_alert"] <= 60 for y in years)
            days = [y["days_to_alert"] for y in years if y["days_to_alert"] is not None]
            early = sum(y["before_onset"] for y in years)
            print(f"t3_beats_t1 alerted within 60 days of the onset: {rate(k, n)}")
            if days:
                print(
                    f"days to alert: median {np.median(days):.0f}, 90th percentile {np.percentile(days, 90):.0f}"
                )
            print(f"any alert before the onset (false): {rate(early, n)}")
            if name == "drift":
                ok &= k / n >= 0.90
    print("\nGOALS MET" if ok else "\nGOALS NOT MET")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

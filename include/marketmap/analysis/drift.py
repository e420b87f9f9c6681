"""ICP drift: closed won/lost by tier over trailing windows, tested for a whole year of weekly looks.

The refinement triggers of seed 001 (and SPEC §10), each a rule producing alerts:

* ``t3_beats_t1`` — T3 win rate above T1's for ``drift_window_days`` (60) days: deals
  closed in the trailing window show it, and so does each of its two halves
  (persistence: "T3 above T1 for 60+ days", not one good fortnight);
* ``t2_beats_t1`` — six months after launch, T2 converting better than T1 over the
  trailing 180 days (suggest flipping tiers);
* ``lift_below_min`` — T1 vs T3 win-rate lift under ``lift_min`` (1.5×) over 180 days;
* ``t1_cycle_not_shortest`` — won T1 deals not closing fastest over 180 days.

**False alarms are controlled over the schedule, not per look.** The drift DAG looks
every week at overlapping windows: 52 looks a year are not one test. A rule *fires*
only when its one-sided test clears a per-look level corrected for the year's looks
(:data:`FIRE_P`): p < 0.0007 (z ≥ 3.2) for the 60-day rule, p < 0.0005 for the 180-day
win-rate rules and p < 0.0001 for the cycle rule (which compares T1 with two tiers) — a
yearly false-alarm budget of 5% spent as about 2% on ``t3_beats_t1``, about 1% on
``t2_beats_t1`` and well under 1% on the cycle rule (Bonferroni across rules). The
per-look levels were calibrated on the distribution of each rule's smallest p-value over
simulated client-years with no tier difference and strong seasonality, and are verified
on fresh simulations by ``bench/bench_drift_sim.py``.

An open alert *holds* (stays open, silently) while its test stays nominally
significant (p < 1 - ``maintenance.confidence``, 5%) and the point estimate still shows
the condition; once it does not, the rule returns a *cleared* candidate with the
current numbers and the alert resolves with them. Every rule resolves that way —
including the cycle rule, which before could stay open for ever on a point estimate.

A rule fires only with at least ``drift_min_deals`` closed deals in the tiers it
compares (and ``MIN_PER_TIER`` in each). Win rates are shown with Wilson intervals;
lift as a multiple with its Katz log interval.

Tiers are the accounts' current tiers (as in the back-test).

With ``maintenance.outcome.kind: opportunity_created`` the same rules and the same
repeated-looks levels run on the opportunity-created rate: per tier, the share of its
accounts that had a new-business opportunity created in the window (the tier's accounts are
the denominator, accounts with an opportunity created in the window the numerator). The
minimum sample counts accounts with an opportunity created; the cycle rule does not apply.
"""

from __future__ import annotations

import datetime as dt
import math
from statistics import NormalDist

import numpy as np
import pandas as pd

from marketmap.alerts.rules import Alert
from marketmap.config import ClientConfig

LONG_WINDOW_DAYS = 180
ASPIRATIONAL_AFTER_DAYS = 182  # "after 6 months"
MIN_PER_TIER = 10
RULES = ("t3_beats_t1", "t2_beats_t1", "lift_below_min", "t1_cycle_not_shortest")
_N = NormalDist()


# --------------------------------------------------------------------------- statistics


def wilson(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a proportion k/n (two-sided, at ``confidence``)."""
    if n == 0:
        return (0.0, 1.0)
    z = _N.inv_cdf(0.5 + confidence / 2)
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def two_proportion_test(k1: int, n1: int, k2: int, n2: int) -> tuple[float, float]:
    """One-sided pooled two-proportion z-test of p1 > p2: ``(z, p_value)``."""
    if not n1 or not n2:
        return (0.0, 1.0)
    p = (k1 + k2) / (n1 + n2)
    se = math.sqrt(p * (1 - p) * (1 / n1 + 1 / n2))
    if se == 0:
        return (0.0, 1.0)
    z = (k1 / n1 - k2 / n2) / se
    return (z, 1 - _N.cdf(z))


def rate_ratio_ci(k1: int, n1: int, k2: int, n2: int, confidence: float = 0.95) -> tuple[float, float, float]:
    """Ratio (k1/n1)/(k2/n2) with Katz's log interval; 0.5 added to zero counts."""
    if k1 == 0 or k2 == 0:
        k1, k2, n1, n2 = k1 + 0.5, k2 + 0.5, n1 + 0.5, n2 + 0.5
    rr = (k1 / n1) / (k2 / n2)
    se = math.sqrt(max(1 / k1 - 1 / n1 + 1 / k2 - 1 / n2, 0.0))
    z = _N.inv_cdf(0.5 + confidence / 2)
    return (rr, rr * math.exp(-z * se), rr * math.exp(z * se))


def mean_difference_test(a: pd.Series, b: pd.Series) -> tuple[float, float]:
    """One-sided large-sample z-test of mean(a) > mean(b): ``(z, p_value)``."""
    a, b = a.dropna().astype(float), b.dropna().astype(float)
    if len(a) < 2 or len(b) < 2:
        return (0.0, 1.0)
    se = math.sqrt(a.var(ddof=1) / len(a) + b.var(ddof=1) / len(b))
    if se == 0:
        return (0.0, 1.0) if a.mean() <= b.mean() else (math.inf, 0.0)
    z = (a.mean() - b.mean()) / se
    return (z, 1 - _N.cdf(z))


def mann_whitney(a: pd.Series, b: pd.Series) -> tuple[float, float]:
    """One-sided Mann-Whitney U test of "``a`` tends to be larger than ``b``": ``(z, p_value)``.

    Normal approximation with the tie correction and a 0.5 continuity correction; rank
    based, so a few very long cycles (cycle days are skewed) cannot fake a difference.
    """
    a, b = a.dropna().astype(float), b.dropna().astype(float)
    n1, n2 = len(a), len(b)
    if n1 < 2 or n2 < 2:
        return (0.0, 1.0)
    ranks = pd.concat([a, b], ignore_index=True).rank(method="average")
    u1 = float(ranks.iloc[:n1].sum()) - n1 * (n1 + 1) / 2
    n = n1 + n2
    ties = pd.concat([a, b]).value_counts()
    tie_term = float(((ties**3) - ties).sum()) / (n * (n - 1))
    var = n1 * n2 / 12 * ((n + 1) - tie_term)
    if var <= 0:
        return (0.0, 1.0)
    z = (u1 - n1 * n2 / 2 - 0.5) / math.sqrt(var)
    return (z, 1 - _N.cdf(z))


# --------------------------------------------------------------------------- data


def closed_deals_by_tier(opportunities: pd.DataFrame, tiers: pd.DataFrame, outcome=None) -> pd.DataFrame:
    """Closed new-business deals with their account's tier and close date.

    With an opportunity_created ``outcome``: one row per account and day a new-business
    opportunity was created there (``close_date`` holds the created day, ``won`` is true), and
    ``attrs["tier_totals"]`` holds the accounts per tier, the rates' denominator.

    Args:
        opportunities: canonical opportunities (warehouse rows).
        tiers: ``account_key``, ``tier``.
        outcome: ``MaintenanceConfig.outcome`` (None: closed_won).
    """
    from marketmap.analysis.correlation import prepare_deals
    from marketmap.analysis.outcomes import CLOSED_WON, created_events, kind_of

    if kind_of(outcome) != CLOSED_WON:
        tier_of = tiers.drop_duplicates("account_key").set_index("account_key")["tier"]
        ev = created_events(opportunities, outcome.since if hasattr(outcome, "since") else None)
        ev = ev.assign(tier=ev["account_key"].map(tier_of)).drop_duplicates(["account_key", "created"])
        ev = ev[ev["tier"].isin(["T1", "T2", "T3"])]
        out = pd.DataFrame({"account_key": ev["account_key"].to_numpy(), "won": True, "closed": True,
                            "cycle_days": float("nan"), "tier": ev["tier"].to_numpy(),
                            "close_date": pd.to_datetime(ev["created"]).dt.date.to_numpy()})  # fmt: skip
        out.attrs["tier_totals"] = {t: int((tier_of == t).sum()) for t in ("T1", "T2", "T3")}
        return out

    deals = prepare_deals(opportunities)
    deals["close_date"] = pd.to_datetime(opportunities["close_date"], errors="coerce").dt.date
    deals = deals[deals["closed"] & (deals["kind"] == "new") & deals["close_date"].notna()]
    tier_of = tiers.drop_duplicates("account_key").set_index("account_key")["tier"]
    deals = deals.assign(tier=deals["account_key"].map(tier_of))
    return deals[deals["tier"].isin(["T1", "T2", "T3"])].reset_index(drop=True)


def window(deals: pd.DataFrame, as_of: dt.date, days: int) -> pd.DataFrame:
    """Deals closed in (as_of - days, as_of]."""
    d = deals["close_date"]
    if not pd.api.types.is_datetime64_any_dtype(d):
        d = pd.to_datetime(d)
    end = pd.Timestamp(as_of)
    return deals[(d > end - pd.Timedelta(days=days)) & (d <= end)]


def tier_rates(deals: pd.DataFrame, confidence: float, totals: dict[str, int] | None = None) -> dict[str, dict]:
    """Closed deals, wins, win rate and its Wilson interval per tier.

    With ``totals`` (opportunity_created): ``closed`` is the tier's accounts and ``won`` the
    tier's accounts with an opportunity created among ``deals``.
    """
    out = {}
    tiers = deals["tier"].to_numpy()
    won = deals["won"].to_numpy(dtype=bool)
    cycle = deals["cycle_days"].to_numpy(dtype=float)
    for tier in ("T1", "T2", "T3"):
        m = tiers == tier
        n, k = int(m.sum()), int((m & won).sum())
        if totals is not None:
            n, k = int(totals.get(tier, 0)), int(deals.loc[m, "account_key"].nunique())
        lo, hi = wilson(k, n, confidence)
        c = cycle[m & won]
        c = c[~np.isnan(c)]
        out[tier] = {
            "closed": n,
            "won": k,
            "win_rate": round(k / n, 4) if n else None,
            "ci": (round(lo, 4), round(hi, 4)),
            "won_cycle_days": round(float(c.mean()), 1) if len(c) else None,
            "won_with_cycle": int(len(c)),
        }
    return out


# --------------------------------------------------------------------------- rules

# Per-look one-sided p-value below which a rule fires (see the module docstring).
FIRE_P = {
    "t3_beats_t1": 0.0007,
    "t2_beats_t1": 0.0005,
    "lift_below_min": 0.0005,
    "t1_cycle_not_shortest": 0.0001,  # two comparisons (T1 vs T2 and vs T3): the smallest share
}
SENTENCE = {
    "T1": "T1 accounts",
    "T2": "T2 accounts",
    "T3": "T3 accounts",
}


def _p_text(p: float) -> str:
    return "p < 0.0001" if p < 0.0001 else f"p = {p:.4f}" if p < 0.01 else f"p = {p:.3f}"


def _evidence(test: str, p: float, fire_p: float, hold_p: float, state: str) -> str:
    """One plain sentence: the p-value, what the rule needs, and what that means now."""
    verdict = {
        "firing": "strong enough to alert",
        "holding": "no longer strong enough to alert, still enough to keep the alert open",
        "cleared": "not significant",
    }[state]
    return (
        f"{_p_text(p)} ({test}); an alert needs p < {fire_p:g} (corrected for a year of weekly looks) and "
        f"stays open while p < {hold_p:g}: {verdict}."
    )


def _counts(tier: str, r: dict, created: bool = False) -> str:
    if not r["closed"]:
        return f"{tier}: no accounts" if created else f"{tier}: no closed deals"
    lo, hi = r["ci"]
    if created:
        return (f"{tier}: {r['won']} of {r['closed']} accounts had an opportunity created "
                f"({r['win_rate']:.1%}, 95% CI {lo:.1%}–{hi:.1%})")  # fmt: skip
    return f"{tier} won {r['won']} of {r['closed']} ({r['win_rate']:.0%}, 95% CI {lo:.0%}–{hi:.0%})"


def _window_text(as_of: dt.date, days: int, created: bool = False) -> str:
    start = as_of - dt.timedelta(days=days - 1)
    what = "opportunities created" if created else "deals closed"
    return f"{what} {start.isoformat()} to {as_of.isoformat()} ({days} days)"


def _rate_rule(
    cfg: ClientConfig,
    rule: str,
    hi_tier: str,
    lo_tier: str,
    deals: pd.DataFrame,
    as_of: dt.date,
    days: int,
    severity: str,
    persist: bool,
    totals: dict[str, int] | None = None,
) -> Alert | None:
    """``hi_tier`` wins more often than ``lo_tier`` (which should win more): firing, holding or cleared.

    With ``totals`` the rates are opportunity-created rates (see the module docstring).
    """
    m = cfg.maintenance
    created = totals is not None
    rates = tier_rates(window(deals, as_of, days), m.confidence, totals)
    a, b = rates[hi_tier], rates[lo_tier]
    if not a["closed"] or not b["closed"]:
        return None  # nothing to compare: an open alert resolves without numbers
    z, p = two_proportion_test(a["won"], a["closed"], b["won"], b["closed"])
    sample = a["won"] + b["won"] if created else a["closed"] + b["closed"]
    enough = sample >= m.drift_min_deals and min(a["closed"], b["closed"]) >= MIN_PER_TIER
    above = a["win_rate"] > b["win_rate"]
    halves = []
    if persist:
        half = days // 2
        for end, length in ((as_of, half), (as_of - dt.timedelta(days=half), days - half)):
            hr = tier_rates(window(deals, end, length), m.confidence, totals)
            x, y = hr[hi_tier], hr[lo_tier]
            halves.append(bool(x["closed"] and y["closed"] and x["win_rate"] > y["win_rate"]))
    persistent = all(halves)
    hold_p = 1 - m.confidence
    fire_p = FIRE_P[rule]
    if enough and above and persistent and p < fire_p:
        state = "firing"
    elif above and p < hold_p:
        state = "holding"
    else:
        state = "cleared"
    ha, lb = SENTENCE[hi_tier], SENTENCE[lo_tier]
    if created:
        pa, pb = f"{a['win_rate']:.1%}", f"{b['win_rate']:.1%}"
        of = f"of accounts had a new-business opportunity created in the last {days} days."
        verb, ing = "get opportunities", "getting opportunities"
    else:
        pa, pb = f"{a['win_rate']:.0%}", f"{b['win_rate']:.0%}"
        of = f"of deals closed in the last {days} days."
        verb, ing = "win", "winning"
    if state == "cleared":
        clearly = "clearly " if above else ""
        title = f"{ha} no longer {clearly}{verb} more often than {lb}: {pa} vs {pb} {of}"
    else:
        title = f"{ha} are {ing} more often than {lb}: {pa} vs {pb} {of}"
    if rule == "t2_beats_t1" and state != "cleared":
        title = title[:-1] + ", six months after launch: consider flipping the tiers."
    if created:
        numbers = {
            f"{hi_tier.lower()}_accounts_with_opportunity": f"{a['won']} of {a['closed']}",
            f"{lo_tier.lower()}_accounts_with_opportunity": f"{b['won']} of {b['closed']}",
            f"{hi_tier.lower()}_created_rate": a["win_rate"],
            f"{lo_tier.lower()}_created_rate": b["win_rate"],
        }
    else:
        numbers = {
            f"{hi_tier.lower()}_won_of_closed": f"{a['won']} of {a['closed']}",
            f"{lo_tier.lower()}_won_of_closed": f"{b['won']} of {b['closed']}",
            f"{hi_tier.lower()}_win_rate": a["win_rate"],
            f"{lo_tier.lower()}_win_rate": b["win_rate"],
        }
    numbers |= {"window": _window_text(as_of, days, created), "p_value": round(p, 6)}
    if persist:
        numbers["ahead_in_both_halves"] = persistent
    evidence = (
        _evidence("one-sided two-proportion z-test, z = " + f"{z:.2f}", p, fire_p, hold_p, state)
        + f" {_counts(hi_tier, a, created)}; {_counts(lo_tier, b, created)}; {_window_text(as_of, days, created)}."
    )
    if persist and not persistent and state != "cleared":
        evidence += f" {hi_tier} was not ahead in both {days // 2}-day halves of the window."
    if not enough and created:
        evidence += (
            f" Too few opportunities to alert: {sample} accounts with an opportunity created "
            f"(needs {m.drift_min_deals}, and {MIN_PER_TIER} accounts per tier)."
        )
    elif not enough:
        evidence += (
            f" Too few deals to alert: {a['closed'] + b['closed']} closed "
            f"(needs {m.drift_min_deals}, and {MIN_PER_TIER} per tier)."
        )
    return Alert(
        client_id=cfg.client_id, rule=rule, role="leadership", severity=severity,  # type: ignore[arg-type]
        key=f"{hi_tier}>{lo_tier}", holding=state == "holding", cleared=state == "cleared",
        title=title, numbers=numbers,
        material={f"{hi_tier.lower()}_{'created' if created else 'win'}_rate": a["win_rate"],
                  f"{lo_tier.lower()}_{'created' if created else 'win'}_rate": b["win_rate"]},
        confidence=evidence,
    )  # fmt: skip


def _lift_rule(cfg: ClientConfig, deals: pd.DataFrame, as_of: dt.date,
               totals: dict[str, int] | None = None) -> Alert | None:  # fmt: skip
    m = cfg.maintenance
    created = totals is not None
    rl = tier_rates(window(deals, as_of, LONG_WINDOW_DAYS), m.confidence, totals)
    t1, t3 = rl["T1"], rl["T3"]
    if not t1["closed"] or not t3["closed"]:
        return None
    fire_p, hold_p = FIRE_P["lift_below_min"], 1 - m.confidence
    rr, _, hi_fire = rate_ratio_ci(t1["won"], t1["closed"], t3["won"], t3["closed"], 1 - 2 * fire_p)
    _, lo, hi = rate_ratio_ci(t1["won"], t1["closed"], t3["won"], t3["closed"], m.confidence)
    _, _, hi_hold = rate_ratio_ci(t1["won"], t1["closed"], t3["won"], t3["closed"], 1 - 2 * hold_p)
    sample = t1["won"] + t3["won"] if created else t1["closed"] + t3["closed"]
    enough = sample >= m.drift_min_deals and min(t1["closed"], t3["closed"]) >= MIN_PER_TIER
    if enough and hi_fire < m.lift_min:
        state = "firing"
    elif rr < m.lift_min and hi_hold < m.lift_min:
        state = "holding"
    else:
        state = "cleared"
    verb, rate = ("get opportunities", "opportunity-created-rate") if created else ("win", "win-rate")
    if state == "cleared":
        title = (
            f"T1 accounts {verb} {rr:.1f}× as often as T3 accounts over the last {LONG_WINDOW_DAYS} days, "
            f"no longer clearly below the {m.lift_min:g}× minimum."
        )
    else:
        title = (
            f"T1 accounts {verb} only {rr:.1f}× as often as T3 accounts over the last {LONG_WINDOW_DAYS} days "
            f"(minimum {m.lift_min:g}×, 2–3× expected)."
        )
    if created:
        counts = {"t1_accounts_with_opportunity": f"{t1['won']} of {t1['closed']}",
                  "t3_accounts_with_opportunity": f"{t3['won']} of {t3['closed']}",
                  "t1_created_rate": t1["win_rate"], "t3_created_rate": t3["win_rate"]}  # fmt: skip
        too_few = (f" Too few opportunities to alert (needs {m.drift_min_deals} accounts with an opportunity "
                   f"created, {MIN_PER_TIER} accounts per tier).")  # fmt: skip
    else:
        counts = {"t1_won_of_closed": f"{t1['won']} of {t1['closed']}", "t3_won_of_closed": f"{t3['won']} of {t3['closed']}",
                  "t1_win_rate": t1["win_rate"], "t3_win_rate": t3["win_rate"]}  # fmt: skip
        too_few = f" Too few deals to alert (needs {m.drift_min_deals}, {MIN_PER_TIER} per tier)."
    return Alert(
        client_id=cfg.client_id, rule="lift_below_min", role="leadership", severity="warning",
        key="T1/T3", holding=state == "holding", cleared=state == "cleared", title=title,
        numbers={"lift": f"{rr:.2f}×", "lift_95_interval": f"{lo:.2f}×–{hi:.2f}×", "minimum": f"{m.lift_min:g}×",
                 **counts, "window": _window_text(as_of, LONG_WINDOW_DAYS, created)},
        material={"lift": round(rr, 3)},
        confidence=(f"Lift {rr:.2f}×, 95% interval {lo:.2f}×–{hi:.2f}× (Katz log interval of the {rate} ratio); "
                    f"an alert needs the {1 - 2 * fire_p:.1%} interval (corrected for a year of weekly looks, "
                    f"upper end {hi_fire:.2f}×) wholly below {m.lift_min:g}×. {_counts('T1', t1, created)}; "
                    f"{_counts('T3', t3, created)}; {_window_text(as_of, LONG_WINDOW_DAYS, created)}."
                    + ("" if enough else too_few)),
    )  # fmt: skip


def _cycle_rule(cfg: ClientConfig, deals: pd.DataFrame, as_of: dt.date) -> Alert | None:
    m = cfg.maintenance
    long_ = window(deals, as_of, LONG_WINDOW_DAYS)
    won = long_[long_["won"]]
    c1 = won[won["tier"] == "T1"]["cycle_days"].dropna()
    others = {t: won[won["tier"] == t]["cycle_days"].dropna() for t in ("T2", "T3")}
    others = {t: c for t, c in others.items() if len(c)}
    if not len(c1) or not others:
        return None
    tier, c = min(others.items(), key=lambda kv: (kv[1].mean(), kv[0]))
    z, p = mann_whitney(c1, c)
    fire_p, hold_p = FIRE_P["t1_cycle_not_shortest"], 1 - m.confidence
    slower = c1.mean() > c.mean()
    enough = min(len(c1), len(c)) >= MIN_PER_TIER
    if enough and slower and p < fire_p:
        state = "firing"
    elif slower and p < hold_p:
        state = "holding"
    else:
        state = "cleared"
    if state == "cleared":
        title = (
            f"T1 deals are closing about as fast as or faster than {tier} deals again: {c1.mean():.0f} vs "
            f"{c.mean():.0f} days (won deals, last {LONG_WINDOW_DAYS} days)."
        )
    else:
        title = (
            f"T1 deals are not closing fastest: {c1.mean():.0f} days for T1 vs {c.mean():.0f} days for {tier} "
            f"(won deals, last {LONG_WINDOW_DAYS} days)."
        )
    return Alert(
        client_id=cfg.client_id, rule="t1_cycle_not_shortest", role="leadership", severity="warning",
        key="cycle", holding=state == "holding", cleared=state == "cleared", title=title,
        numbers={"t1_cycle_days": round(float(c1.mean()), 1), f"{tier.lower()}_cycle_days": round(float(c.mean()), 1),
                 "t1_won": len(c1), f"{tier.lower()}_won": len(c), "p_value": round(p, 6),
                 "window": _window_text(as_of, LONG_WINDOW_DAYS)},
        material={"t1_cycle_days": round(float(c1.mean()), 1), "other_cycle_days": round(float(c.mean()), 1)},
        confidence=_evidence(f"one-sided Mann-Whitney U test on cycle days, z = {z:.2f}", p, fire_p, hold_p, state)
        + f" Won deals with a cycle: T1 {len(c1)}, {tier} {len(c)}; {_window_text(as_of, LONG_WINDOW_DAYS)}."
        + ("" if enough else f" Too few won deals to alert (needs {MIN_PER_TIER} per tier)."),
    )  # fmt: skip


def drift_alerts(
    cfg: ClientConfig, deals: pd.DataFrame, as_of: dt.date, report: str | None = None
) -> tuple[list[Alert], set[str], dict]:
    """Evaluate the drift rules on closed deals with tiers (:func:`closed_deals_by_tier`).

    Returns:
        ``(alerts, rules evaluated, summary)``: alerts are firing, holding or cleared
        candidates (a cleared one resolves an open alert with the current numbers); the
        summary holds win rates per tier and window. With the opportunity-created outcome
        (``deals.attrs["tier_totals"]`` set by :func:`closed_deals_by_tier`) the rates are
        opportunity-created rates and the cycle rule does not apply.
    """
    m = cfg.maintenance
    totals = deals.attrs.get("tier_totals")
    if not pd.api.types.is_datetime64_any_dtype(deals["close_date"]):
        deals = deals.assign(close_date=pd.to_datetime(deals["close_date"]))  # once, not per window
    short, long_ = window(deals, as_of, m.drift_window_days), window(deals, as_of, LONG_WINDOW_DAYS)
    rs, rl = tier_rates(short, m.confidence, totals), tier_rates(long_, m.confidence, totals)
    rules = {"t3_beats_t1", "lift_below_min", "t1_cycle_not_shortest"}
    found = [_rate_rule(cfg, "t3_beats_t1", "T3", "T1", deals, as_of, m.drift_window_days, "critical", True, totals)]
    launch = cfg.launch_date
    if launch and as_of >= launch + dt.timedelta(days=ASPIRATIONAL_AFTER_DAYS):
        rules.add("t2_beats_t1")
        found.append(
            _rate_rule(cfg, "t2_beats_t1", "T2", "T1", deals, as_of, LONG_WINDOW_DAYS, "warning", False, totals)
        )
    found.append(_lift_rule(cfg, deals, as_of, totals))
    if totals is None:  # opportunities created have no sales cycle; an open cycle alert resolves
        found.append(_cycle_rule(cfg, deals, as_of))
    alerts = [a for a in found if a is not None]
    for x in alerts:
        x.report = report
    summary = {"as_of": as_of.isoformat(), "outcome": "closed_won" if totals is None else "opportunity_created",
               "window_days": m.drift_window_days, "short": rs,
               "long_window_days": LONG_WINDOW_DAYS, "long": rl,
               "states": {a.rule: "cleared" if a.cleared else "holding" if a.holding else "firing" for a in alerts}}  # fmt: skip
    return alerts, rules, summary

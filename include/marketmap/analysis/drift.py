"""ICP drift: closed won/lost by tier over trailing windows, with real statistics.

The refinement triggers of seed 001 (and SPEC §10), each a rule producing alerts:

* ``t3_beats_t1`` — T3 win rate above T1's over the trailing ``drift_window_days`` (60)
  days: deals closed in that window show it;
* ``t2_beats_t1`` — six months after launch, T2 converting better than T1 over the
  trailing 180 days (suggest flipping tiers);
* ``lift_below_min`` — T1 vs T3 win-rate lift under ``lift_min`` (1.5x) over 180 days;
* ``t1_cycle_not_shortest`` — won T1 deals not closing fastest over 180 days.

Noise never pages anyone: a rule fires only with at least ``drift_min_deals`` closed
deals in the tiers it compares (and ``MIN_PER_TIER`` in each), and only when a one-sided
test rejects "no difference" at ``maintenance.confidence`` (95%): a two-proportion
z-test for win rates, the Katz log interval of the risk ratio for lift, a z-test on
mean cycle days (large-sample) for cycles. Win rates are shown with Wilson intervals.
When the point estimate still shows the condition but the evidence falls short, the
candidate is *holding*: an open alert stays open silently, none is opened.

Tiers are the accounts' current tiers (as in the back-test).
"""

from __future__ import annotations

import datetime as dt
import math
from statistics import NormalDist

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


# --------------------------------------------------------------------------- data


def closed_deals_by_tier(opportunities: pd.DataFrame, tiers: pd.DataFrame) -> pd.DataFrame:
    """Closed new-business deals with their account's tier and close date.

    Args:
        opportunities: canonical opportunities (warehouse rows).
        tiers: ``account_key``, ``tier``.
    """
    from marketmap.analysis.correlation import prepare_deals

    deals = prepare_deals(opportunities)
    deals["close_date"] = pd.to_datetime(opportunities["close_date"], errors="coerce").dt.date
    deals = deals[deals["closed"] & (deals["kind"] == "new") & deals["close_date"].notna()]
    tier_of = tiers.drop_duplicates("account_key").set_index("account_key")["tier"]
    deals = deals.assign(tier=deals["account_key"].map(tier_of))
    return deals[deals["tier"].isin(["T1", "T2", "T3"])].reset_index(drop=True)


def window(deals: pd.DataFrame, as_of: dt.date, days: int) -> pd.DataFrame:
    """Deals closed in (as_of - days, as_of]."""
    start = as_of - dt.timedelta(days=days)
    return deals[(deals["close_date"] > start) & (deals["close_date"] <= as_of)]


def tier_rates(deals: pd.DataFrame, confidence: float) -> dict[str, dict]:
    """Closed deals, wins, win rate and its Wilson interval per tier."""
    out = {}
    for tier in ("T1", "T2", "T3"):
        d = deals[deals["tier"] == tier]
        n, k = int(len(d)), int(d["won"].sum())
        lo, hi = wilson(k, n, confidence)
        won = d[d["won"]]
        out[tier] = {
            "closed": n,
            "won": k,
            "win_rate": round(k / n, 4) if n else None,
            "ci": (round(lo, 4), round(hi, 4)),
            "won_cycle_days": round(float(won["cycle_days"].mean()), 1)
            if won["cycle_days"].notna().any()
            else None,
            "won_with_cycle": int(won["cycle_days"].notna().sum()),
        }
    return out


def _rate_text(tier: str, r: dict, confidence: float) -> str:
    if not r["closed"]:
        return f"{tier}: no closed deals"
    lo, hi = r["ci"]
    return (
        f"{tier} {r['win_rate']:.0%} ({r['won']}/{r['closed']}, Wilson {confidence:.0%} CI {lo:.0%}-{hi:.0%})"
    )


# --------------------------------------------------------------------------- rules


def _compare_rates(
    cfg: ClientConfig,
    rule: str,
    hi_tier: str,
    lo_tier: str,
    rates: dict,
    days: int,
    title: str,
    severity: str,
) -> Alert | None:
    """Alert when ``hi_tier`` wins more often than ``lo_tier`` (which should win more)."""
    m = cfg.maintenance
    a, b = rates[hi_tier], rates[lo_tier]
    if not a["closed"] or not b["closed"] or a["win_rate"] <= b["win_rate"]:
        return None
    z, p = two_proportion_test(a["won"], a["closed"], b["won"], b["closed"])
    enough = a["closed"] + b["closed"] >= m.drift_min_deals and min(a["closed"], b["closed"]) >= MIN_PER_TIER
    firing = enough and p < 1 - m.confidence
    sure = 1 - p
    numbers = {
        f"{hi_tier.lower()}_win_rate": a["win_rate"],
        f"{lo_tier.lower()}_win_rate": b["win_rate"],
        f"{hi_tier.lower()}_closed": a["closed"],
        f"{lo_tier.lower()}_closed": b["closed"],
        "window_days": days,
        "p_value": round(p, 4),
    }
    return Alert(
        client_id=cfg.client_id, rule=rule, role="leadership", severity=severity,  # type: ignore[arg-type]
        key=f"{hi_tier}>{lo_tier}", holding=not firing,
        title=title.format(a=a["win_rate"], b=b["win_rate"], days=days),
        numbers=numbers,
        material={f"{hi_tier.lower()}_win_rate": a["win_rate"], f"{lo_tier.lower()}_win_rate": b["win_rate"]},
        confidence=(
            f"{sure:.1%} sure {hi_tier} wins more often than {lo_tier} (one-sided two-proportion z-test, "
            f"z={z:.2f}, p={p:.4f}; alert threshold {m.confidence:.0%}). "
            f"{_rate_text(hi_tier, a, m.confidence)} vs {_rate_text(lo_tier, b, m.confidence)}."
        ),
    )  # fmt: skip


def drift_alerts(
    cfg: ClientConfig, deals: pd.DataFrame, as_of: dt.date, report: str | None = None
) -> tuple[list[Alert], set[str], dict]:
    """Evaluate the drift rules on closed deals with tiers (:func:`closed_deals_by_tier`).

    Returns:
        ``(alerts, rules evaluated, summary)``: the summary holds win rates per tier and window.
    """
    m = cfg.maintenance
    short, long_ = window(deals, as_of, m.drift_window_days), window(deals, as_of, LONG_WINDOW_DAYS)
    rs, rl = tier_rates(short, m.confidence), tier_rates(long_, m.confidence)
    alerts: list[Alert] = []
    rules = {"t3_beats_t1", "lift_below_min", "t1_cycle_not_shortest"}

    a = _compare_rates(cfg, "t3_beats_t1", "T3", "T1", rs, m.drift_window_days,
                       "T3 accounts are winning more often than T1 ({a:.0%} vs {b:.0%} over the last {days} days)",
                       "critical")  # fmt: skip
    alerts += [a] if a else []

    launch = cfg.launch_date
    if launch and as_of >= launch + dt.timedelta(days=ASPIRATIONAL_AFTER_DAYS):
        rules.add("t2_beats_t1")
        a = _compare_rates(cfg, "t2_beats_t1", "T2", "T1", rl, LONG_WINDOW_DAYS,
                           "T2 converts better than T1 six months after launch ({a:.0%} vs {b:.0%}, "
                           "last {days} days): consider flipping tiers", "warning")  # fmt: skip
        alerts += [a] if a else []

    t1, t3 = rl["T1"], rl["T3"]
    if t1["closed"] and t3["closed"]:
        rr, lo, hi = rate_ratio_ci(t1["won"], t1["closed"], t3["won"], t3["closed"], m.confidence)
        enough = (
            t1["closed"] + t3["closed"] >= m.drift_min_deals
            and min(t1["closed"], t3["closed"]) >= MIN_PER_TIER
        )
        if rr < m.lift_min:
            firing = enough and hi < m.lift_min
            alerts.append(Alert(
                client_id=cfg.client_id, rule="lift_below_min", role="leadership", severity="warning",
                key="T1/T3", holding=not firing,
                title=f"T1 wins only {rr:.2f}x as often as T3 over the last {LONG_WINDOW_DAYS} days "
                      f"(minimum {m.lift_min:g}x, 2-3x expected)",
                numbers={"lift": round(rr, 3), "lift_ci": (round(lo, 3), round(hi, 3)), "minimum": m.lift_min,
                         "t1_win_rate": t1["win_rate"], "t3_win_rate": t3["win_rate"],
                         "t1_closed": t1["closed"], "t3_closed": t3["closed"], "window_days": LONG_WINDOW_DAYS},
                material={"lift": round(rr, 3)},
                confidence=(f"{m.confidence:.0%} interval of the lift {lo:.2f}x-{hi:.2f}x lies below {m.lift_min:g}x "
                            f"(Katz log interval of the win-rate ratio). {_rate_text('T1', t1, m.confidence)} vs "
                            f"{_rate_text('T3', t3, m.confidence)}." if firing else
                            f"lift {rr:.2f}x, {m.confidence:.0%} interval {lo:.2f}x-{hi:.2f}x (not yet conclusive)"),
            ))  # fmt: skip

    won = long_[long_["won"]]
    c1 = won[won["tier"] == "T1"]["cycle_days"].dropna()
    others = {t: won[won["tier"] == t]["cycle_days"].dropna() for t in ("T2", "T3")}
    faster = {t: c for t, c in others.items() if len(c) and len(c1) and c.mean() < c1.mean()}
    if faster:
        tier, c = min(faster.items(), key=lambda kv: kv[1].mean())
        z, p = mean_difference_test(c1, c)
        firing = min(len(c1), len(c)) >= MIN_PER_TIER and p < 1 - m.confidence
        alerts.append(Alert(
            client_id=cfg.client_id, rule="t1_cycle_not_shortest", role="leadership", severity="warning",
            key="cycle", holding=not firing,
            title=f"T1 deals are not closing fastest: T1 {c1.mean():.0f} days vs {tier} {c.mean():.0f} days "
                  f"(won deals, last {LONG_WINDOW_DAYS} days)",
            numbers={"t1_cycle_days": round(float(c1.mean()), 1), f"{tier.lower()}_cycle_days": round(float(c.mean()), 1),
                     "t1_won": len(c1), f"{tier.lower()}_won": len(c), "p_value": round(p, 4)},
            material={"t1_cycle_days": round(float(c1.mean()), 1), "other_cycle_days": round(float(c.mean()), 1)},
            confidence=f"{1 - p:.1%} sure T1's mean cycle is longer than {tier}'s (one-sided z-test on means, "
                       f"z={z:.2f}, p={p:.4f}; threshold {m.confidence:.0%})",
        ))  # fmt: skip
    for x in alerts:
        x.report = report
    summary = {"as_of": as_of.isoformat(), "window_days": m.drift_window_days, "short": rs,
               "long_window_days": LONG_WINDOW_DAYS, "long": rl}  # fmt: skip
    return alerts, rules, summary

"""Back-test of the tiering against closed deals (SPEC §9; seeds 003 and 004).

Closed new-business deals (see :func:`marketmap.analysis.correlation.prepare_deals`) are
joined to the current tier of their account, then checked against the seeds' targets:

* share of closed-won deals at T1 accounts: 70%+ (seed 004 checklist item 9);
* T1 vs T3 win-rate lift: 2-3x expected, under ``lift_min`` (1.5x) "not discriminating",
  under 1x "inverted" (seed 000: T3 closing better than T1 means the ICP is wrong);
* T1 sales cycle 20-40% shorter than T3's (seed 004);
* T3 correlating with losses (seed 003): T3 win rate below the overall rate;
* T2 converting better than T1 (seed 000 aspirational-T1 check);
* recall / precision in MadKudu's sense: the share of scored accounts flagged T1 or T2,
  against the share of won deals those accounts capture. A good model flags few accounts
  and captures most wins; this module asks for recall of at least 70% (the seeds' T1
  target applied to T1+T2) with a capture ratio (recall / flagged share) of at least 2.

Fewer than ``min_sample`` (30) closed deals at scored accounts gives "not enough data".

With ``maintenance.outcome.kind: opportunity_created`` (see :mod:`marketmap.analysis.outcomes`)
the same checks run on accounts instead of deals: the opportunity-created rate by tier, the
T1/T3 lift of that rate, the share of accounts with an opportunity created that are T1, T3
below the average rate, T2 above T1, recall and capture; the cycle checks do not apply, and
"not enough data" means fewer than ``min_sample`` accounts with an opportunity created.
"""

from __future__ import annotations

import pandas as pd

from marketmap.analysis.correlation import NOT_ENOUGH, deal_metrics, num
from marketmap.analysis.outcomes import CLOSED_WON, Words, kind_of, outcome_rows, words

TIERS = ("T1", "T2", "T3", "OUT")
FLAGGED = ("T1", "T2")
T1_WIN_SHARE_TARGET = 0.7
LIFT_EXPECTED = (2.0, 3.0)
CYCLE_REDUCTION_EXPECTED = (0.2, 0.4)
RECALL_MIN = 0.7
CAPTURE_RATIO_MIN = 2.0


def _tier_of(accounts: pd.DataFrame, tier_field: str) -> pd.Series:
    t = accounts[tier_field].astype(object).map(lambda v: v.strip().upper() if isinstance(v, str) else None)
    return pd.Series(t.where(t.isin(TIERS), None).to_numpy(), index=accounts["account_key"].astype(object))


def _lift(t1: dict, t3: dict, lift_min: float, w: Words) -> dict:
    out = {
        "t1_win_rate": t1["win_rate"],
        "t3_win_rate": t3["win_rate"],
        "expected": list(LIFT_EXPECTED),
        "minimum": lift_min,
    }
    if not t1["closed_deals"] or not t3["closed_deals"]:
        missing = "T1" if not t1["closed_deals"] else "T3"
        return {**out, "value": None, "passed": None, "verdict": f"no {missing} {w.unit}: lift unknown"}
    if not t3["win_rate"]:
        passed = bool(t1["win_rate"])
        verdict = (f"T3 has no {w.positive}: discriminating" if passed
                   else f"neither T1 nor T3 has {w.positive}: lift unknown")  # fmt: skip
        return {**out, "value": None, "passed": passed if passed else None, "verdict": verdict}
    lift = t1["win_rate"] / t3["win_rate"]
    if lift < 1:
        verdict = f"inverted: T3 {w.verb3} more often than T1 ({lift:.2f}x); ICP assumptions are wrong, re-score"
    elif lift < lift_min:
        verdict = f"not discriminating: T1 {w.verb3} {lift:.2f}x as often as T3 (under {lift_min:g}x)"
    elif lift < LIFT_EXPECTED[0]:
        verdict = f"weakly discriminating: {lift:.2f}x (2-3x expected)"
    elif lift <= LIFT_EXPECTED[1]:
        verdict = f"discriminating: {lift:.2f}x, within the 2-3x expected"
    else:
        verdict = f"strongly discriminating: {lift:.2f}x, above the 2-3x expected"
    return {**out, "value": num(lift, 2), "passed": lift >= lift_min, "verdict": verdict}


def _cycle(t1: dict, other: dict, label: str) -> dict:
    a, b = t1["avg_cycle_days"], other["avg_cycle_days"]
    out = {"t1_days": a, f"{label.lower()}_days": b, "expected_reduction": list(CYCLE_REDUCTION_EXPECTED)}
    if a is None or not b:
        return {**out, "reduction": None, "passed": None, "verdict": f"cycle unknown for T1 or {label}"}
    r = (b - a) / b
    lo, hi = CYCLE_REDUCTION_EXPECTED
    if r <= 0:
        verdict = f"T1 is not faster than {label} ({a:g} vs {b:g} days)"
    elif r < lo:
        verdict = f"T1 only {r:.0%} faster than {label} (20-40% expected)"
    elif r <= hi:
        verdict = f"T1 {r:.0%} faster than {label}, within the 20-40% expected"
    else:
        verdict = f"T1 {r:.0%} faster than {label}, more than the 20-40% expected"
    return {**out, "reduction": num(r), "passed": r >= lo, "verdict": verdict}


def _no_cycle(label: str) -> dict:
    return {"reduction": None, "passed": None,
            "verdict": f"no sales cycle for an opportunity-created outcome (T1 vs {label} not compared)"}  # fmt: skip


def backtest(
    accounts_with_tier: pd.DataFrame,
    opportunities: pd.DataFrame,
    min_sample: int = 30,
    lift_min: float = 1.5,
    tier_field: str = "tier",
    outcome=None,
) -> dict:
    """Check how well the current tiers explain past wins and losses (or opportunities created).

    Args:
        accounts_with_tier: accounts with ``account_key`` and ``tier`` (T1/T2/T3/OUT).
        opportunities: canonical opportunities.
        min_sample: closed deals needed (seed 004: 30).
        lift_min: minimum T1/T3 win-rate lift (``MaintenanceConfig.lift_min``).
        tier_field: the tier column (multi-product clients have one per product).
        outcome: ``MaintenanceConfig.outcome`` (or its kind); None is closed_won.

    Returns:
        ``{"status": "ok", "closed_deals", "won_deals", "win_rate", "unscored_deals",
        "by_tier": {tier: {closed_deals, wins, win_rate, avg_deal_size, avg_cycle_days,
        share_of_wins}}, "won_in_t1", "lift_t1_t3", "cycle_t1_vs_t3", "cycle_t1_vs_t2",
        "t3_losses", "t2_vs_t1", "recall_precision", "verdicts": [failed checks]}``; each
        check is a dict with its numbers, ``passed`` (None when unknown) and ``verdict``.
        With too few deals: ``{"status": "not enough data", "closed_deals", "min_sample",
        "message"}``. Every result carries ``outcome`` (the kind) and ``rate_label``; with
        opportunity_created, ``closed_deals`` counts scored accounts, ``won_deals`` (and the
        tiers' ``wins``) accounts with an opportunity created and ``win_rate`` their share.
    """
    kind, w = kind_of(outcome), words(outcome)
    tier_of = _tier_of(accounts_with_tier, tier_field)
    tier_of = tier_of[~tier_of.index.duplicated()]
    deals = outcome_rows(opportunities, tier_of.dropna().index.to_series(), outcome).copy()
    deals["tier"] = deals["account_key"].map(tier_of)
    scored = deals[deals["tier"].notna()]
    n, wins = int(len(scored)), int(scored["won"].sum())
    unscored = int(len(deals) - n)
    label = {"outcome": kind, "rate_label": w.rate}
    if kind == CLOSED_WON and n < min_sample:
        return {
            "status": NOT_ENOUGH,
            **label,
            "closed_deals": n,
            "unscored_deals": unscored,
            "min_sample": min_sample,
            "message": f"{n} closed deals at scored accounts: a back-test needs at least {min_sample}",
        }
    if kind != CLOSED_WON and wins < min_sample:
        return {
            "status": NOT_ENOUGH,
            **label,
            "closed_deals": n,
            "won_deals": wins,
            "unscored_deals": 0,
            "min_sample": min_sample,
            "message": f"{wins} scored accounts with an opportunity created: a back-test needs at least {min_sample}",
        }

    by_tier = {}
    for t in TIERS:
        m = deal_metrics(scored[scored["tier"] == t])
        m["share_of_wins"] = num(m["wins"] / wins) if wins else None
        by_tier[t] = m
    overall_wr = wins / n
    t1, t2, t3 = by_tier["T1"], by_tier["T2"], by_tier["T3"]

    share_t1 = t1["wins"] / wins if wins else None
    won_in_t1 = {
        "share": num(share_t1),
        "target": T1_WIN_SHARE_TARGET,
        "won_deals": wins,
        "t1_wins": t1["wins"],
    }
    if share_t1 is None:
        won_in_t1 |= {"passed": None, "verdict": f"no {w.positive}"}
    elif share_t1 >= T1_WIN_SHARE_TARGET:
        won_in_t1 |= {"passed": True, "verdict": f"{share_t1:.0%} of {w.positive_at} are T1 (target 70%+)"}
    else:
        won_in_t1 |= {
            "passed": False,
            "verdict": f"only {share_t1:.0%} of {w.positive_at} are T1 (target 70%+): "
            "T1 is too narrow or weighted on the wrong vectors",
        }

    t3_losses: dict = {"t3_win_rate": t3["win_rate"], "overall_win_rate": num(overall_wr)}
    if not t3["closed_deals"]:
        t3_losses |= {"passed": None, "verdict": f"no T3 {w.unit}"}
    elif t3["win_rate"] < overall_wr:
        t3_losses |= {"passed": True, "verdict": "T3 loses more often than average, as it should" if kind == CLOSED_WON
                      else "T3 accounts get opportunities less often than average, as they should"}  # fmt: skip
    else:
        t3_losses |= {
            "passed": False,
            "verdict": ("T3 wins" if kind == CLOSED_WON else "T3 accounts get opportunities")
            + " at or above the average rate: negative indicators or thresholds are not filtering",
        }

    t2_vs_t1: dict = {"t1_win_rate": t1["win_rate"], "t2_win_rate": t2["win_rate"]}
    if not t1["closed_deals"] or not t2["closed_deals"]:
        t2_vs_t1 |= {"passed": None, "verdict": f"no T1 or T2 {w.unit}"}
    elif t2["win_rate"] > t1["win_rate"]:
        t2_vs_t1 |= {
            "passed": False,
            "verdict": ("T2 converts better than T1" if kind == CLOSED_WON else "T2 accounts get opportunities more often than T1")
            + ": T1 may be aspirational, consider flipping tiers",
        }  # fmt: skip
    else:
        t2_vs_t1 |= {"passed": True, "verdict": "T1 converts at least as well as T2" if kind == CLOSED_WON
                     else "T1 accounts get opportunities at least as often as T2"}  # fmt: skip

    # MadKudu-style recall/precision over every scored account, not only those with deals.
    n_accounts = int(len(tier_of.dropna()))
    n_flagged = int(tier_of.isin(FLAGGED).sum())
    flagged_share = n_flagged / n_accounts if n_accounts else None
    flagged = scored[scored["tier"].isin(FLAGGED)]
    recall = flagged["won"].sum() / wins if wins else None
    precision = flagged["won"].mean() if len(flagged) else None
    capture = recall / flagged_share if recall is not None and flagged_share else None
    rp: dict = {
        "flagged_tiers": list(FLAGGED),
        "scored_accounts": n_accounts,
        "flagged_accounts": n_flagged,
        "flagged_account_share": num(flagged_share),
        "recall": num(recall),
        "precision": num(precision),
        "capture_ratio": num(capture, 2),
        "recall_min": RECALL_MIN,
        "capture_ratio_min": CAPTURE_RATIO_MIN,
    }
    if recall is None or capture is None:
        rp |= {"passed": None, "verdict": f"no {w.positive} or no flagged accounts"}
    else:
        summary = f"T1+T2 are {flagged_share:.0%} of accounts and capture {recall:.0%} of {w.positive}"
        if recall < RECALL_MIN:
            rp |= {"passed": False, "verdict": f"{summary}: tiers miss too many "
                   + ("wins" if kind == CLOSED_WON else "opportunities") + " (70%+ expected)"}  # fmt: skip
        elif capture < CAPTURE_RATIO_MIN:
            rp |= {"passed": False, "verdict": f"{summary}: T1+T2 are too broad to focus reps"}
        else:
            rp |= {"passed": True, "verdict": summary}

    checks = {
        "won_in_t1": won_in_t1,
        "lift_t1_t3": _lift(t1, t3, lift_min, w),
        "cycle_t1_vs_t3": _cycle(t1, t3, "T3") if kind == CLOSED_WON else _no_cycle("T3"),
        "cycle_t1_vs_t2": _cycle(t1, t2, "T2") if kind == CLOSED_WON else _no_cycle("T2"),
        "t3_losses": t3_losses,
        "t2_vs_t1": t2_vs_t1,
        "recall_precision": rp,
    }
    return {
        "status": "ok",
        **label,
        "closed_deals": n,
        "won_deals": wins,
        "win_rate": num(overall_wr),
        "unscored_deals": unscored,
        "by_tier": by_tier,
        **checks,
        "verdicts": [c["verdict"] for c in checks.values() if c["passed"] is False],
    }

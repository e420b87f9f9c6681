"""Correlation analysis of closed won/lost deals by segment (SPEC §9; seeds 000 and 004).

For each dimension (employee bucket, industry, funding stage, tech-stack item) and each
segment it computes seed 004's five metrics:

* **win rate**: wins / closed new-business deals;
* **average deal size**: mean amount of won new-business deals;
* **average cycle**: mean days from created to close of won new-business deals;
* **expansion rate**: share of customer accounts (any won deal) with a won Expansion deal;
* **churn rate**: share of customer accounts with a lost Renewal.

Closed deals, wins, deal size and cycle use new-business deals only (``opp_type`` blank
or anything but Expansion/Upsell/Renewal), so that renewals do not inflate win rates.
Expansion and churn are reported only when the data has Expansion / Renewal deals.

A segment with fewer than ``min_sample`` closed deals (seed 004: 30) shows "not enough
data" instead of numbers and cannot lead. Per dimension, the leader of each metric is
found (highest win rate, deal size, expansion; lowest cycle, churn); the segment leading
most metrics is the primary-ICP candidate when it leads 3 or more (seed 004: "the bucket
that dominates 3-4 of those metrics is your primary ICP"). Negative data analysis (seed
000) lists high-loss segments (win rate at most 2/3 of the overall rate), high-churn
segments (churn at least 1.5x overall) and lost-to-competitor segments (share of losses
whose ``loss_reason`` names a competitor at least 1.5x the overall share).

Every function returns plain JSON-serialisable dicts.
"""

from __future__ import annotations

import math
import re
from typing import Any

import numpy as np
import pandas as pd

from marketmap.frames import column as _col
from marketmap.frames import truthy

EMPLOYEE_BUCKETS = ("1-10", "11-50", "51-200", "201-500", "501-1000", "1000+")
_EMPLOYEE_EDGES = (0, 10, 50, 200, 500, 1000, math.inf)
METRICS = ("win_rate", "avg_deal_size", "avg_cycle_days", "expansion_rate", "churn_rate")
LOWER_IS_BETTER = frozenset({"avg_cycle_days", "churn_rate"})
NOT_ENOUGH = "not enough data"
HIGH_LOSS_RATIO = 2 / 3
HIGH_CHURN_RATIO = 1.5
COMPETITOR_RATIO = 1.5
HISTORICAL_MIN_WON = 100
HISTORICAL_MIN_CLOSED = 200
COMPETITOR_PATTERN = r"competit|lost to "

# --------------------------------------------------------------------------- deal preparation


def _day(series: pd.Series) -> pd.Series:
    return pd.to_datetime(series, errors="coerce", utc=True).dt.tz_localize(None).dt.normalize()


def _text(series: pd.Series) -> pd.Series:
    """Stripped strings, None for blank."""
    s = series.astype(object).map(lambda v: v.strip() if isinstance(v, str) else v)
    return s.where(s.notna() & (s != ""), None)


def deal_kind(opp_type: pd.Series) -> pd.Series:
    """ "new", "expansion" or "renewal" from the CRM opportunity type."""
    t = opp_type.astype(object).map(lambda v: v.lower() if isinstance(v, str) else "")
    kind = np.select(
        [t.str.contains("renew", regex=False), t.str.contains(r"expan|upsell|cross", regex=True)],
        ["renewal", "expansion"],
        "new",
    )
    return pd.Series(kind, index=opp_type.index, dtype=object)


def prepare_deals(opportunities: pd.DataFrame) -> pd.DataFrame:
    """Opportunities as analysis rows.

    Columns: ``account_key``, ``amount``, ``closed``, ``won``, ``kind`` (new/expansion/
    renewal), ``cycle_days`` (created -> close, None when unknown or negative),
    ``loss_reason``. A deal is closed when ``is_closed`` is true or its stage starts with
    "closed"; won when ``is_won`` is true or its stage is "closed won".
    """
    o = opportunities
    stage = _col(o, "stage").astype(object).map(lambda v: v.strip().lower() if isinstance(v, str) else "")
    won = truthy(_col(o, "is_won")) | (stage == "closed won")
    closed = truthy(_col(o, "is_closed")) | stage.str.startswith("closed") | won
    cycle = (_day(_col(o, "close_date")) - _day(_col(o, "created_date"))).dt.days
    cycle = cycle.where(cycle >= 0)
    return pd.DataFrame(
        {
            "account_key": o["account_key"].astype(object),
            "amount": pd.to_numeric(_col(o, "amount"), errors="coerce"),
            "closed": closed.to_numpy(),
            "won": (won & closed).to_numpy(),
            "kind": deal_kind(_col(o, "opp_type")),
            "cycle_days": cycle.astype(float),
            "loss_reason": _text(_col(o, "loss_reason")),
        },
        index=o.index,
    )


def num(value: Any, digits: int = 4) -> float | None:
    """A JSON-safe rounded float (None for NaN/None/inf)."""
    if value is None:
        return None
    v = float(value)
    return None if math.isnan(v) or math.isinf(v) else round(v, digits)


def deal_metrics(deals: pd.DataFrame) -> dict:
    """Closed deals, wins, win rate, average won size and cycle of new-business deals."""
    closed = deals[deals["closed"]]
    won = closed[closed["won"]]
    n = int(len(closed))
    return {
        "closed_deals": n,
        "wins": int(len(won)),
        "win_rate": num(len(won) / n) if n else None,
        "avg_deal_size": num(won["amount"].mean(), 2) if len(won) else None,
        "avg_cycle_days": num(won["cycle_days"].mean(), 1) if len(won) else None,
    }


# --------------------------------------------------------------------------- segments


def employee_bucket(employees: pd.Series) -> pd.Series:
    """Seed 004's buckets 1-10 … 1000+ (None for blank or zero headcount)."""
    n = pd.to_numeric(employees, errors="coerce")
    cut = pd.cut(n, bins=list(_EMPLOYEE_EDGES), labels=list(EMPLOYEE_BUCKETS), right=True)
    return cut.astype(object).where(cut.notna(), None)


def segment_frames(accounts: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Per dimension: ``account_key`` -> ``segment`` rows (tech stack exploded)."""
    keys = accounts["account_key"].astype(object)
    frames = {
        "employees": pd.DataFrame(
            {"account_key": keys, "segment": employee_bucket(_col(accounts, "employees"))}
        ),
        "industry": pd.DataFrame({"account_key": keys, "segment": _text(_col(accounts, "industry"))}),
        "funding_stage": pd.DataFrame(
            {"account_key": keys, "segment": _text(_col(accounts, "funding_stage"))}
        ),
    }
    tech = (
        _col(accounts, "tech_stack")
        .astype(object)
        .map(lambda v: sorted({t.strip() for t in v.split(";") if t.strip()}) if isinstance(v, str) else [])
    )
    frames["tech_stack"] = pd.DataFrame({"account_key": keys, "segment": tech}).explode("segment")
    return {
        d: f.dropna(subset=["segment"]).drop_duplicates(["account_key", "segment"]).reset_index(drop=True)
        for d, f in frames.items()
    }


def _account_flags(deals: pd.DataFrame) -> pd.DataFrame:
    """Per account: customer (any won deal), expanded (won Expansion), churned (lost Renewal)."""
    closed = deals[deals["closed"]]
    g = closed.assign(
        expanded=closed["won"] & (closed["kind"] == "expansion"),
        churned=~closed["won"] & (closed["kind"] == "renewal"),
    ).groupby("account_key")
    return pd.DataFrame(
        {"customer": g["won"].any(), "expanded": g["expanded"].any(), "churned": g["churned"].any()}
    )


def _rates(flags: pd.DataFrame, has_expansion: bool, has_churn: bool) -> dict:
    customers = flags[flags["customer"]]
    n = len(customers)
    return {
        "customers": int(n),
        "expansion_rate": num(customers["expanded"].mean()) if has_expansion and n else None,
        "churn_rate": num(customers["churned"].mean()) if has_churn and n else None,
    }


def _leaders(segments: list[dict]) -> dict:
    eligible = [s for s in segments if s["enough_data"]]
    leaders: dict[str, dict] = {}
    if len(eligible) >= 2:  # one segment cannot "lead" anything
        for metric in METRICS:
            values = [s for s in eligible if s[metric] is not None]
            if len(values) < 2:
                continue
            sign = -1 if metric in LOWER_IS_BETTER else 1
            # ties go to the segment with more closed deals (the steadier number)
            best = max(values, key=lambda s: (sign * s[metric], s["closed_deals"]))
            leaders[metric] = {"segment": best["segment"], "value": best[metric]}
    counts: dict[str, int] = {}
    for lead in leaders.values():
        counts[lead["segment"]] = counts.get(lead["segment"], 0) + 1
    primary = None
    if counts:
        seg, n = max(counts.items(), key=lambda kv: (kv[1], -list(counts).index(kv[0])))
        primary = {"segment": seg, "leads": n, "of": len(leaders), "icp_candidate": n >= 3}
    return {"leaders": leaders, "lead_counts": counts, "primary": primary}


def _dimension(
    name: str,
    seg: pd.DataFrame,
    new_deals: pd.DataFrame,
    flags: pd.DataFrame,
    min_sample: int,
    has_expansion: bool,
    has_churn: bool,
) -> dict:
    joined = new_deals.merge(seg, on="account_key", how="inner")
    seg_flags = seg.merge(flags, left_on="account_key", right_index=True, how="inner")
    segments = []
    for value, deals in joined.groupby("segment", sort=False):
        m = deal_metrics(deals)
        rates = _rates(seg_flags[seg_flags["segment"] == value], has_expansion, has_churn)
        row = {"segment": str(value), **m, **rates, "enough_data": m["closed_deals"] >= min_sample}
        if not row["enough_data"]:
            for metric in METRICS:
                row[metric] = NOT_ENOUGH
        segments.append(row)
    if name == "employees":
        order = {b: i for i, b in enumerate(EMPLOYEE_BUCKETS)}
        segments.sort(key=lambda s: order[s["segment"]])
    else:
        segments.sort(key=lambda s: (-s["closed_deals"], s["segment"]))
    known = set(seg["account_key"])
    unknown = int((~new_deals["account_key"].isin(known)).sum())
    return {"segments": segments, "unknown_deals": unknown, **_leaders(segments)}


# --------------------------------------------------------------------------- negative data


def _negative(
    dims: dict[str, dict], overall: dict, new_deals: pd.DataFrame, frames: dict[str, pd.DataFrame]
) -> dict:
    high_loss, high_churn, competitor = [], [], []
    wr, churn = overall["win_rate"], overall["churn_rate"]
    for dim, d in dims.items():
        for s in d["segments"]:
            if not s["enough_data"]:
                continue
            if wr and s["win_rate"] is not None and s["win_rate"] <= wr * HIGH_LOSS_RATIO:
                high_loss.append(
                    {
                        "dimension": dim,
                        "segment": s["segment"],
                        "win_rate": s["win_rate"],
                        "overall_win_rate": wr,
                        "closed_deals": s["closed_deals"],
                    }
                )
            if churn and s["churn_rate"] is not None and s["churn_rate"] >= churn * HIGH_CHURN_RATIO:
                high_churn.append(
                    {
                        "dimension": dim,
                        "segment": s["segment"],
                        "churn_rate": s["churn_rate"],
                        "overall_churn_rate": churn,
                    }
                )
    lost = new_deals[~new_deals["won"]]
    reasons = lost["loss_reason"]
    has_reasons = bool(reasons.notna().any())
    overall_share = None
    top_reasons: dict[str, int] = {}
    if has_reasons:
        pattern = re.compile(COMPETITOR_PATTERN, re.IGNORECASE)
        is_comp = reasons.map(lambda v: isinstance(v, str) and bool(pattern.search(v))).astype(bool)
        lost = lost.assign(competitor=is_comp.to_numpy())
        overall_share = num(lost["competitor"].mean()) if len(lost) else None
        top_reasons = {str(k): int(v) for k, v in reasons.value_counts().head(5).items()}
        for dim, d in dims.items():
            eligible = {s["segment"] for s in d["segments"] if s["enough_data"]}
            joined = lost.merge(frames[dim], on="account_key", how="inner")
            for value, g in joined.groupby("segment"):
                if str(value) not in eligible or not len(g):
                    continue
                share = float(g["competitor"].mean())
                if overall_share and share >= overall_share * COMPETITOR_RATIO:
                    competitor.append(
                        {
                            "dimension": dim,
                            "segment": str(value),
                            "competitor_losses": int(g["competitor"].sum()),
                            "losses": int(len(g)),
                            "share_of_losses": num(share),
                            "overall_share": overall_share,
                        }
                    )
    high_loss.sort(key=lambda r: r["win_rate"])
    high_churn.sort(key=lambda r: -r["churn_rate"])
    competitor.sort(key=lambda r: -r["share_of_losses"])
    return {
        "high_loss": high_loss,
        "high_churn": high_churn,
        "lost_to_competitor": competitor,
        "loss_reasons_available": has_reasons,
        "competitor_share_of_losses": overall_share,
        "top_loss_reasons": top_reasons,
    }


# --------------------------------------------------------------------------- entry point

METRIC_WORDS = {"win_rate": "win rate", "avg_deal_size": "deal size", "avg_cycle_days": "sales cycle",
                "expansion_rate": "expansion", "churn_rate": "churn"}  # fmt: skip


def _icp_note(primary: list[dict], available: list[str], dims: dict[str, dict]) -> str:
    """Why a primary ICP is (or is not) named, in one sentence."""
    have = ", ".join(METRIC_WORDS[m] for m in available) or "none"
    missing = ", ".join(METRIC_WORDS[m] for m in METRICS if m not in available)
    if primary:
        named = "; ".join(
            f"{p['dimension']} {p['segment']} (leads {p['leads']} of {p['of']})" for p in primary
        )
        return f"Primary ICP candidates: {named}."
    if len(available) < 3:
        return (f"No primary ICP can be named from this data: it has only {have} (no {missing}), so no segment "
                f"can lead 3 of the 5 metrics. Use the win rates below with stakeholder interviews.")  # fmt: skip
    best = max(
        (d["primary"] for d in dims.values() if d.get("primary")), key=lambda p: p["leads"], default=None
    )
    if best is None:
        return (
            f"No primary ICP: no dimension has two or more segments with enough closed deals to compare "
            f"(metrics available: {have})."
        )
    return (
        f"No primary ICP: no segment leads 3 or more metrics (the most is {best['leads']} of {best['of']}; "
        f"metrics available: {have})."
    )


def segment_analysis(accounts: pd.DataFrame, opportunities: pd.DataFrame, min_sample: int = 30) -> dict:
    """Win rate, deal size, cycle, expansion and churn by segment, leaders and negative data.

    Args:
        accounts: canonical accounts (``account_key``, ``employees``, ``industry``,
            ``funding_stage``, ``tech_stack`` ;-separated).
        opportunities: canonical opportunities (``account_key``, ``amount``, ``is_closed``,
            ``is_won``, ``created_date``, ``close_date``, ``opp_type``, ``stage``, optional
            ``loss_reason``).
        min_sample: closed deals a segment (and the whole set) needs.

    Returns:
        With fewer than ``min_sample`` closed new-business deals: ``{"status": "not enough
        data", "closed_deals", "wins", "min_sample", "historical_data_ready", "message"}``.
        Otherwise ``{"status": "ok", "min_sample", "overall": {metrics}, "historical_data_ready",
        "metrics_available": [...], "dimensions": {dim: {"segments": [...], "unknown_deals",
        "leaders": {metric: {"segment", "value"}}, "lead_counts", "primary": {"segment",
        "leads", "of", "icp_candidate"} | None}}, "primary_icp": [{"dimension", "segment",
        "leads", "of"}], "primary_icp_note": str, "negative": {...}}``.

        ``primary_icp_note`` says in words why a primary ICP is or is not named: when the
        data has fewer than 3 of the 5 metrics (e.g. only won/lost outcomes, no amounts,
        dates, expansions or renewals) no segment *can* lead 3, and the note says so
        instead of naming no primary ICP silently.
    """
    deals = prepare_deals(opportunities)
    new_deals = deals[deals["closed"] & (deals["kind"] == "new")]
    n_closed, n_won = int(len(new_deals)), int(new_deals["won"].sum())
    ready = n_won >= HISTORICAL_MIN_WON or n_closed >= HISTORICAL_MIN_CLOSED
    if n_closed < min_sample:
        return {
            "status": NOT_ENOUGH,
            "closed_deals": n_closed,
            "wins": n_won,
            "min_sample": min_sample,
            "historical_data_ready": ready,
            "message": (
                f"{n_closed} closed deals ({n_won} won): at least {min_sample} are needed for a "
                "segment analysis; rely on stakeholder interviews instead (No Historical Data approach)"
            ),
        }
    has_expansion = bool((deals["kind"] == "expansion").any())
    has_churn = bool((deals["closed"] & (deals["kind"] == "renewal")).any())
    flags = _account_flags(deals)
    overall = {**deal_metrics(new_deals), **_rates(flags, has_expansion, has_churn)}
    frames = segment_frames(accounts)
    dims = {
        name: _dimension(name, frame, new_deals, flags, min_sample, has_expansion, has_churn)
        for name, frame in frames.items()
    }
    primary_icp = [
        {"dimension": name, **{k: d["primary"][k] for k in ("segment", "leads", "of")}}
        for name, d in dims.items()
        if d["primary"] and d["primary"]["icp_candidate"]
    ]
    available = [m for m in METRICS if overall.get(m) is not None]
    return {
        "primary_icp_note": _icp_note(primary_icp, available, dims),
        "status": "ok",
        "min_sample": min_sample,
        "overall": overall,
        "historical_data_ready": ready,
        "metrics_available": available,
        "dimensions": dims,
        "primary_icp": primary_icp,
        "negative": _negative(dims, overall, new_deals, frames),
    }

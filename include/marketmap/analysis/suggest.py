"""A suggested rubric learned from the client's history (``marketmap preview --suggest``).

The seeds' correlation analysis (seed 000 "Historical Data Heavy", seed 004's segment
metrics), automated: for each candidate field, the outcome rate (win rate of closed
new-business deals, or the opportunity-created rate — ``maintenance.outcome``) of each of
its segments is compared with the overall rate, and

* a field's **weight** is proportional to how much its segments lift the outcome: the
  coverage-weighted mean absolute deviation of the segments' rates from the overall rate,
  relative to it (a field that splits winners from losers strongly and is known for most
  accounts weighs most); fields under 3% of the total are dropped; weights are whole numbers
  summing to 100;
* a segment's **points** run from 0 (the segment with the lowest rate) to the full weight (the
  highest), in proportion to its rate; segments with fewer than ``MIN_SEGMENT`` rows, unknown
  and unlisted values score 0. Rates are shrunk toward the overall rate (``PRIOR`` pseudo-rows)
  so a small segment cannot take the top points on luck;
* **thresholds** are whole points chosen for the target tier shares
  (:func:`marketmap.analysis.calibration.suggest_thresholds`: 10% T1, 25% T2, 35% T3).

The current rubric's negative indicators are kept as they are: an exclusion list is policy,
not something to learn from wins.

The suggestion is back-tested **out of sample**: ``FOLDS``-fold cross-validation grouped by
account (an account's fold is a hash of its key, so the split is deterministic and an
account's deals are never on both sides). Each fold's accounts are tiered by a rubric
learned without them; the pooled held-out tiers are back-tested like any rubric and shown
next to the current rubric's back-test on the same deals. With fewer outcomes than the
seeds' minimum (100 closed-won or 200 closed deals, seed 000) the result carries a caveat;
under ``min_sample`` (30, seed 004) no rubric is suggested. Nothing is written anywhere:
the result holds the YAML to copy into the client file (or to save as a candidate for
``marketmap preview --rubric``).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math

import numpy as np
import pandas as pd
import yaml

from marketmap.analysis.correlation import HISTORICAL_MIN_CLOSED, HISTORICAL_MIN_WON, NOT_ENOUGH, num

FOLDS = 5
PRIOR = 10  # pseudo-rows at the overall rate added to every segment
MIN_SEGMENT = 10  # rows a segment needs to earn points
MIN_WEIGHT_SHARE = 0.03
MAX_VECTORS = 8
MAX_POINTS_LISTED = 25  # categorical / any-of values listed per vector (the best ones)

_EMP = [(0, 11, "1-10"), (11, 51, "11-50"), (51, 201, "51-200"), (201, 501, "201-500"),
        (501, 1001, "501-1000"), (1001, None, "1000+")]  # fmt: skip
_REV = [(0, 1e6, "<1M"), (1e6, 1e7, "1M-10M"), (1e7, 5e7, "10M-50M"), (5e7, 2.5e8, "50M-250M"),
        (2.5e8, 1e9, "250M-1B"), (1e9, None, "1B+")]  # fmt: skip
_RECENCY = [(12, "within 12 mo"), (24, "within 24 mo")]
# field -> (vector kind, vector name); the order is the order of the suggested vectors' ties
CANDIDATES = {
    "employees": ("bands", "size"),
    "annual_revenue": ("bands", "revenue"),
    "industry": ("categorical", "industry"),
    "country": ("categorical", "geography"),
    "funding_stage": ("categorical", "funding_stage"),
    "tech_stack": ("any_of", "tech"),
    "last_funding_date": ("recency", "funding_recency"),
}


# --------------------------------------------------------------------------- segments


def _bands_of(values: pd.Series, bands) -> pd.Series:
    v = pd.to_numeric(values, errors="coerce")
    out = pd.Series(None, index=values.index, dtype=object)
    for lo, hi, label in bands:
        m = (v >= lo) & ((v < hi) if hi is not None else True)
        out[m.fillna(False).to_numpy()] = label
    return out


def segments(accounts: pd.DataFrame, field: str, run_date: dt.date) -> pd.DataFrame:
    """``account_key`` -> ``segment`` rows of one candidate field (tech stack exploded)."""
    keys = accounts["account_key"].astype(object)
    if field not in accounts:
        return pd.DataFrame({"account_key": [], "segment": []})
    col = accounts[field]
    if field in ("employees", "annual_revenue"):
        seg = _bands_of(col, _EMP if field == "employees" else _REV)
    elif field == "last_funding_date":
        d = pd.to_datetime(col, errors="coerce")
        seg = pd.Series(None, index=col.index, dtype=object)
        seg[d.notna().to_numpy()] = "older"
        for months, label in reversed(_RECENCY):
            cutoff = pd.Timestamp(run_date) - pd.DateOffset(months=months)
            seg[(d >= cutoff).fillna(False).to_numpy()] = label
    elif field == "tech_stack":
        items = col.astype(object).map(
            lambda v: sorted({t.strip() for t in v.split(";") if t.strip()}) if isinstance(v, str) else []
        )
        out = pd.DataFrame({"account_key": keys, "segment": items}).explode("segment")
        return _one_spelling(out.dropna(subset=["segment"]).drop_duplicates().reset_index(drop=True))
    else:
        seg = col.astype(object).map(lambda v: v.strip() if isinstance(v, str) and v.strip() else None)
        return _one_spelling(pd.DataFrame({"account_key": keys, "segment": seg}).dropna(subset=["segment"]))
    return (
        pd.DataFrame({"account_key": keys, "segment": seg}).dropna(subset=["segment"]).reset_index(drop=True)
    )


def _one_spelling(frame: pd.DataFrame) -> pd.DataFrame:
    """Values that differ only in case are one segment (scoring matches case-insensitively),
    named by their most frequent spelling."""
    fold = frame["segment"].astype(str).str.casefold()
    counts = pd.DataFrame({"fold": fold.to_numpy(), "spelling": frame["segment"].to_numpy()})
    counts = counts.groupby(["fold", "spelling"]).size().reset_index(name="n")
    best = counts.sort_values(["fold", "n", "spelling"], ascending=[True, False, True]).drop_duplicates(
        "fold"
    )
    spelling = dict(zip(best["fold"], best["spelling"], strict=True))
    out = frame.assign(segment=fold.map(spelling).to_numpy())
    return out.drop_duplicates(["account_key", "segment"]).reset_index(drop=True)


def _field_stats(rows: pd.DataFrame, seg: pd.DataFrame, p0: float) -> dict:
    """Per segment: rows, positives, shrunk rate; the field's strength."""
    n_all = len(rows)
    joined = rows[["account_key", "won"]].merge(seg, on="account_key", how="inner")
    if joined.empty or not n_all or p0 <= 0:
        return {"segments": {}, "strength": 0.0, "coverage": 0.0}
    g = joined.groupby("segment")["won"]
    n, k = g.size(), g.sum()
    rate = (k + PRIOR * p0) / (n + PRIOR)
    eligible = n >= MIN_SEGMENT
    known = rows["account_key"].isin(seg["account_key"]).mean()
    dev = (n[eligible] * (rate[eligible] - p0).abs()).sum() / max(n[eligible].sum(), 1)
    return {
        "segments": {
            s: {"rows": int(n[s]), "positives": int(k[s]), "rate": float(rate[s])}
            for s in n.index
            if eligible[s]
        },  # fmt: skip
        "strength": float(known * dev / p0),
        "coverage": float(known),
    }


def _whole_weights(strengths: dict[str, float]) -> dict[str, int]:
    """Whole-number weights proportional to ``strengths``, summing to exactly 100 (each at least 1)."""
    total = sum(strengths.values())
    raw = {f: 100 * s / total for f, s in strengths.items()}
    out = {f: max(1, math.floor(v)) for f, v in raw.items()}
    rest = sorted(raw, key=lambda f: (-(raw[f] - math.floor(raw[f])), f))
    i = 0
    while sum(out.values()) < 100:
        out[rest[i % len(rest)]] += 1
        i += 1
    while sum(out.values()) > 100:  # only when several were lifted to 1
        f = max(out, key=lambda x: (out[x], x))
        out[f] -= 1
    return out


def _vector(field: str, weight: int, stats: dict) -> dict | None:
    kind, name = CANDIDATES[field]
    segs = stats["segments"]
    if not segs:
        return None
    rates = {s: v["rate"] for s, v in segs.items()}
    lo, hi = min(rates.values()), max(rates.values())
    span = hi - lo
    pts = {s: round(weight * (r - lo) / span, 1) if span > 0 else float(weight) for s, r in rates.items()}
    if kind == "bands":
        bands = _EMP if field == "employees" else _REV
        return {"name": name, "kind": "bands", "field": field, "weight": weight,
                "bands": [{**({"min": lo_} if lo_ else {}), **({"max": hi_} if hi_ is not None else {}),
                           "points": pts.get(label, 0.0)} for lo_, hi_, label in bands]}  # fmt: skip
    if kind == "recency":
        return {"name": name, "kind": "recency", "field": field, "weight": weight,
                "windows": [{"within_months": m, "points": pts.get(label, 0.0)} for m, label in _RECENCY]}  # fmt: skip
    best = sorted(((p, s) for s, p in pts.items() if p > 0), key=lambda x: (-x[0], x[1]))[:MAX_POINTS_LISTED]
    if not best:
        return None
    return {"name": name, "kind": kind, "field": field, "weight": weight, "points": {s: p for p, s in best}}


# --------------------------------------------------------------------------- learning


def learn(rows: pd.DataFrame, segs: dict[str, pd.DataFrame]) -> tuple[list[dict], dict]:
    """Vectors (as YAML-ready dicts) learned from outcome ``rows``; and the fields' statistics."""
    p0 = float(rows["won"].mean()) if len(rows) else 0.0
    stats = {f: _field_stats(rows, s, p0) for f, s in segs.items()}
    strong = {f: s["strength"] for f, s in stats.items() if s["strength"] > 0 and s["segments"]}
    if not strong:
        return [], stats
    total = sum(strong.values())
    strong = {f: v for f, v in strong.items() if v / total >= MIN_WEIGHT_SHARE}
    strong = dict(
        sorted(strong.items(), key=lambda kv: (-kv[1], list(CANDIDATES).index(kv[0])))[:MAX_VECTORS]
    )
    weights = _whole_weights(strong)
    vectors = [v for f in strong if (v := _vector(f, weights[f], stats[f])) is not None]
    if vectors and sum(v["weight"] for v in vectors) != 100:  # a field lost all its points: re-spread
        kept = {v["field"]: strong[v["field"]] for v in vectors}
        weights = _whole_weights(kept)
        vectors = [v for f in kept if (v := _vector(f, weights[f], stats[f])) is not None]
    return vectors, stats


def _rubric(base, vectors: list[dict], thresholds: dict) -> dict:
    return {"product": base.product, "tier_field": base.tier_field, "vectors": vectors,
            "negative_indicators": [n.model_dump(mode="json", exclude_defaults=True) for n in base.negative_indicators],
            "thresholds": thresholds}  # fmt: skip


def _score(accounts: pd.DataFrame, rubric: dict, run_date: dt.date) -> pd.DataFrame:
    from marketmap.config import Rubric
    from marketmap.scoring.fit import score_rubric

    return score_rubric(accounts, Rubric.model_validate(rubric), run_date, explain=False)


def fit_rubric(base, accounts: pd.DataFrame, rows: pd.DataFrame, segs: dict, run_date: dt.date,
               target_mix: dict | None = None) -> tuple[dict | None, dict, pd.DataFrame | None]:  # fmt: skip
    """Learn a rubric from ``rows`` and set its thresholds for the target mix on every account's score."""
    from marketmap.analysis.calibration import suggest_thresholds

    vectors, stats = learn(rows, segs)
    if not vectors:
        return None, stats, None
    rubric = _rubric(base, vectors, {"T1": 75, "T2": 50, "T3": 25})
    scored = _score(accounts, rubric, run_date)
    th = suggest_thresholds(scored.loc[~scored["excluded"].astype(bool), "score"], target_mix)
    rubric["thresholds"] = th["thresholds"]
    scored = _score(accounts, rubric, run_date)
    return rubric, stats, scored


def fold_of(keys: pd.Series, folds: int = FOLDS) -> np.ndarray:
    """A deterministic fold per account key."""
    return np.array([int(hashlib.sha1(str(k).encode()).hexdigest()[:8], 16) % folds for k in keys])


def _summary(bt: dict) -> dict:
    if bt.get("status") != "ok":
        return {"status": bt.get("status"), "message": bt.get("message")}
    rp = bt["recall_precision"]
    return {
        "status": "ok",
        "rows": bt["closed_deals"],
        "positives": bt["won_deals"],
        "t1_rate": bt["by_tier"]["T1"]["win_rate"],
        "t3_rate": bt["by_tier"]["T3"]["win_rate"],
        "lift_t1_t3": bt["lift_t1_t3"]["value"],
        "share_in_t1": bt["won_in_t1"]["share"],
        "recall_t1_t2": rp["recall"],
        "capture_ratio": rp["capture_ratio"],
        "verdicts": bt["verdicts"],
    }


def suggest_rubric(cfg, accounts: pd.DataFrame, opportunities: pd.DataFrame, run_date: dt.date,
                   current_tiers: pd.DataFrame, folds: int = FOLDS) -> dict:  # fmt: skip
    """Learn a rubric from the client's outcomes and back-test it out of sample next to the current one.

    Args:
        cfg: the client's config (its primary rubric is the base: product, negatives).
        accounts: warehouse accounts (``scoring.pipeline.read_accounts``).
        opportunities: warehouse opportunities.
        run_date: the scoring date (recency vectors).
        current_tiers: ``account_key``, ``tier`` of the current rubric.

    Returns:
        ``{"status": "ok" | "not enough data", "outcome", "rate_label", "rows", "positives",
        "min_sample", "caveat" (None or text), "fields": [{field, weight, coverage, strength,
        top segments}], "rubric" (the primary rubric as YAML-ready dict), "yaml" (a candidate
        file: icp with the suggested rubric), "cross_validation": {"folds", "method"},
        "suggested": back-test summary out of sample, "current": back-test summary of the
        current rubric, "suggested_backtest" / "current_backtest" (full back-tests),
        "comparison": {"lift_t1_t3", "share_in_t1"}: "better" | "worse" | "same" | None}``.
    """
    from marketmap.analysis.backtest import backtest
    from marketmap.analysis.outcomes import CLOSED_WON, kind_of, outcome_rows, words

    m = cfg.maintenance
    kind, w = kind_of(m.outcome), words(m.outcome)
    base = cfg.icp.rubrics[0]
    rows = outcome_rows(opportunities, accounts["account_key"], m.outcome)
    rows = rows[rows["account_key"].isin(set(accounts["account_key"]))].reset_index(drop=True)
    n, positives = int(len(rows)), int(rows["won"].sum())
    out: dict = {"outcome": kind, "rate_label": w.rate, "rows": n, "positives": positives,
                 "min_sample": m.drift_min_deals, "caveat": None}  # fmt: skip
    enough_for_any = (n if kind == CLOSED_WON else positives) >= m.drift_min_deals
    if not enough_for_any or not positives or positives == n:
        what = f"{n} closed deals ({positives} won)" if kind == CLOSED_WON else f"{positives} {w.positive}"
        return {**out, "status": NOT_ENOUGH,
                "message": f"{what}: a rubric is learned from at least {m.drift_min_deals} (seed 004); "
                           "nothing suggested"}  # fmt: skip
    if kind == CLOSED_WON and positives < HISTORICAL_MIN_WON and n < HISTORICAL_MIN_CLOSED:
        out["caveat"] = (
            f"Only {n} closed deals ({positives} won): the seeds ask for {HISTORICAL_MIN_WON} closed-won or "
            f"{HISTORICAL_MIN_CLOSED} closed deals before an ICP is drawn from history (seed 000). Treat this "
            "suggestion as a hypothesis for the ICP review, not as a rubric."
        )
    elif kind != CLOSED_WON and positives < HISTORICAL_MIN_WON:
        out["caveat"] = (
            f"Only {positives} {w.positive}: the seeds ask for {HISTORICAL_MIN_WON} outcomes before an ICP is "
            "drawn from history (seed 000). Treat this suggestion as a hypothesis for the ICP review, not as a rubric."
        )
    segs = {f: segments(accounts, f, run_date) for f in CANDIDATES}
    rubric, stats, _ = fit_rubric(base, accounts, rows, segs, run_date)
    if rubric is None:
        return {**out, "status": NOT_ENOUGH,
                "message": f"no candidate field's segments lift the {w.rate}: nothing suggested"}  # fmt: skip

    # out of sample: each fold's accounts tiered by a rubric learned without them
    acc_fold = pd.Series(fold_of(accounts["account_key"], folds), index=accounts["account_key"].to_numpy())
    held = []
    for f in range(folds):
        in_fold = set(acc_fold.index[acc_fold.to_numpy() == f])
        train = rows[~rows["account_key"].isin(in_fold)]
        r_f, _, scored = fit_rubric(base, accounts, train, segs, run_date)
        if r_f is None:
            continue
        tiers = pd.DataFrame(
            {
                "account_key": accounts["account_key"].to_numpy(),
                "tier": scored["tier"].astype(object).to_numpy(),
            }
        )
        held.append(tiers[tiers["account_key"].isin(in_fold)])
    held_tiers = pd.concat(held, ignore_index=True) if held else pd.DataFrame(columns=["account_key", "tier"])
    bt_kw = {"min_sample": m.drift_min_deals, "lift_min": m.lift_min, "outcome": m.outcome}
    suggested_bt = backtest(held_tiers, opportunities, **bt_kw)
    current_bt = backtest(current_tiers[["account_key", "tier"]], opportunities, **bt_kw)
    sug, cur = _summary(suggested_bt), _summary(current_bt)

    def cmp(key: str) -> str | None:
        a, b = sug.get(key), cur.get(key)
        if a is None or b is None:
            return None
        return "better" if a > b else "worse" if a < b else "same"

    fields = []
    for v in rubric["vectors"]:
        s = stats[v["field"]]
        top = sorted(s["segments"].items(), key=lambda kv: -kv[1]["rate"])[:3]
        fields.append({"field": v["field"], "vector": v["name"], "kind": v["kind"], "weight": v["weight"],
                       "coverage": num(s["coverage"]), "strength": num(s["strength"]),
                       "top_segments": [{"segment": k, "rate": num(x["rate"]), "rows": x["rows"]} for k, x in top]})  # fmt: skip
    icp = cfg.icp.model_dump(mode="json", exclude_none=True)
    icp["version"] = f"{cfg.icp.version}-suggested"
    icp["rubrics"] = [rubric] + icp["rubrics"][1:]
    header = (f"# Suggested by `marketmap preview --suggest` for {cfg.client_id} on {run_date.isoformat()} from "
              f"{n:,} {w.unit} ({positives:,} {w.positive}).\n# Copy what you accept into the client YAML, or "
              "save this file and compare it: marketmap preview --client " + cfg.client_id + " --rubric <file>\n")  # fmt: skip
    return {
        **out,
        "status": "ok",
        "overall_rate": num(positives / n),
        "fields": fields,
        "rubric": rubric,
        "yaml": header + yaml.safe_dump({"icp": icp}, sort_keys=False, allow_unicode=True),
        "cross_validation": {"folds": folds, "method": f"{folds}-fold cross-validation grouped by account"},
        "suggested": sug,
        "current": cur,
        "suggested_backtest": suggested_bt,
        "current_backtest": current_bt,
        "comparison": {"lift_t1_t3": cmp("lift_t1_t3"), "share_in_t1": cmp("share_in_t1")},
    }

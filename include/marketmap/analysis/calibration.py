"""Tier-threshold calibration: whole-point thresholds that give a target tier mix.

The ICP review calls (seed 000) iterate on thresholds "until alignment on tier
distribution". This module proposes a starting point from the score distribution: for a
target mix (default 10% T1, 25% T2, 35% T3, the rest out of scope) it picks, tier by
tier, the whole-point threshold whose cumulative share of accounts scoring at or above
it is closest to the target (T1: 10%; T1+T2: 35%; T1+T2+T3: 70%). Thresholds stay
strictly decreasing and inside 0-100, as ``TierThresholds`` requires, so the result can
be pasted into the client YAML. Ties in the score distribution can make a target
unreachable; the resulting mix is reported next to the target.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

TIERS = ("T1", "T2", "T3")
DEFAULT_MIX = {"T1": 0.10, "T2": 0.25, "T3": 0.35}


def tier_mix(scores: np.ndarray | pd.Series, thresholds: dict[str, float]) -> dict[str, float]:
    """Share of scores per tier (and OUT) under the given lower-bound thresholds."""
    s = pd.to_numeric(pd.Series(scores), errors="coerce").dropna().to_numpy(dtype=float)
    n = len(s)
    if not n:
        return {t: 0.0 for t in (*TIERS, "OUT")}
    t1, t2, t3 = (float(thresholds[t]) for t in TIERS)
    counts = {
        "T1": int((s >= t1).sum()),
        "T2": int(((s >= t2) & (s < t1)).sum()),
        "T3": int(((s >= t3) & (s < t2)).sum()),
        "OUT": int((s < t3).sum()),
    }
    return {k: round(v / n, 4) for k, v in counts.items()}


def suggest_thresholds(scores: pd.Series, target_mix: dict[str, float] | None = None) -> dict:
    """Whole-point T1/T2/T3 thresholds for a target tier mix.

    Args:
        scores: fit scores 0-100 (NaN ignored).
        target_mix: share of accounts wanted per tier, e.g. ``{"T1": 0.1, "T2": 0.25,
            "T3": 0.35}``; the rest is out of scope. Shares must be positive and sum to 1 or less.

    Returns:
        ``{"thresholds": {"T1", "T2", "T3"}, "mix": {"T1", "T2", "T3", "OUT"},
        "target_mix": {...}, "accounts": n}``.

    Raises:
        ValueError: no scores, or a malformed target mix.
    """
    target = dict(DEFAULT_MIX if target_mix is None else target_mix)
    if set(target) != set(TIERS) or any(v <= 0 for v in target.values()) or sum(target.values()) > 1 + 1e-9:
        raise ValueError(f"target_mix needs positive T1, T2, T3 shares summing to at most 1, got {target}")
    s = np.sort(pd.to_numeric(pd.Series(scores), errors="coerce").dropna().to_numpy(dtype=float))
    n = len(s)
    if not n:
        raise ValueError("no scores to calibrate thresholds on")

    candidates = np.arange(0, 101)
    # share of accounts scoring >= t, for every whole point t
    share_at_or_above = (n - np.searchsorted(s, candidates, side="left")) / n

    thresholds: dict[str, int] = {}
    cumulative = 0.0
    upper = 100
    for i, tier in enumerate(TIERS):
        cumulative += target[tier]
        lower = len(TIERS) - 1 - i  # leave room for the tiers below (T3 may be 0)
        allowed = (candidates >= lower) & (candidates <= upper)
        err = np.abs(share_at_or_above - cumulative)
        err = np.where(allowed, err, np.inf)
        # among equally good thresholds, prefer the highest (keeps T1 exclusive)
        best = int(candidates[::-1][np.argmin(err[::-1])])
        thresholds[tier] = best
        upper = best - 1
    return {
        "thresholds": thresholds,
        "mix": tier_mix(s, thresholds),
        "target_mix": {t: target[t] for t in TIERS} | {"OUT": round(1 - sum(target.values()), 4)},
        "accounts": int(n),
    }

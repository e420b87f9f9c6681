"""Territory balance: value per rep, imbalance rules, and a rebalancing that moves few accounts.

Territory value = the sum of the valuations (potential ARR) of the in-scope accounts a
rep owns. Partner/channel accounts (``is_partner`` or ``territories.partner_field``)
stay out of territories; named exceptions (``territories.exceptions``) never move.

Rules (seed 001: "one rep has >2x another's territory value"; SPEC §10: "rebalance to
within 20%"):

* ``territory_imbalance`` — max/min value above ``territory_max_ratio`` (2x) or any
  active rep outside the mean ±``territory_band`` (20%);
* ``inactive_rep_owns_accounts`` — a rep who left (inactive in the config or the CRM)
  still owns accounts (one alert per rep).

:func:`rebalance` keeps current owners wherever it can: the accounts of reps who left
are handed out first (largest first, to the lightest active rep); then, while some rep
is outside the goal band (``GOAL_SHARE`` of the alert band, so the next month's drift
does not re-fire at once), it moves from the heaviest to the lightest rep the *largest*
account that keeps both inside the band — large moves first means few moves. A T1 account
moves only when that does not make the T1 spread worse (the receiver ends with no more T1
accounts than the donor, or no more than its fair share). Each account moves at most once.
"""

from __future__ import annotations

import bisect
import heapq
import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from marketmap.alerts.rules import Alert
from marketmap.config import ClientConfig

GOAL_SHARE = 0.9  # aim inside 90% of the alert band
HOLD_SHARE = 0.75  # an open imbalance alert resolves only below 75% of the band


@dataclass
class Move:
    account_key: str
    from_rep: str | None
    to_rep: str
    value: float
    tier: str | None
    reason: str


@dataclass
class Rebalance:
    moves: list[Move]
    before: dict[str, float]
    after: dict[str, float]
    t1_before: dict[str, int]
    t1_after: dict[str, int]
    stats_before: dict = field(default_factory=dict)
    stats_after: dict = field(default_factory=dict)


def balance_stats(values: dict[str, float]) -> dict:
    """max/min ratio, mean, largest deviation from the mean (share) and the reps outside a band."""
    v = np.array(list(values.values()), dtype=float)
    if len(v) == 0:
        return {"reps": 0, "mean": 0.0, "ratio": None, "max_deviation": 0.0, "spread": 0.0}
    mean = float(v.mean())
    mn, mx = float(v.min()), float(v.max())
    ratio = math.inf if mn <= 0 < mx else (mx / mn if mn > 0 else 1.0)
    dev = float(np.abs(v - mean).max() / mean) if mean else 0.0
    return {
        "reps": len(v),
        "mean": round(mean, 2),
        "min": round(mn, 2),
        "max": round(mx, 2),
        "ratio": round(ratio, 4) if math.isfinite(ratio) else None,
        "max_deviation": round(dev, 4),
        "spread": round(float(v.std() / mean), 4) if mean else 0.0,  # coefficient of variation
    }


def territory_frame(cfg: ClientConfig, accounts: pd.DataFrame, scores: pd.DataFrame) -> pd.DataFrame:
    """Accounts in territories: ``account_key``, ``owner_id``, ``value``, ``tier``, ``locked``.

    Args:
        accounts: warehouse accounts (``account_key``, ``owner_id``, ``is_partner`` …).
        scores: the primary product's current scores (``account_key``, ``tier``, ``valuation``).
    """
    df = accounts.merge(scores[["account_key", "tier", "valuation"]], on="account_key", how="left")
    partner = (
        df["is_partner"].fillna(False).astype(bool)
        if "is_partner" in df
        else pd.Series(False, index=df.index)
    )
    pf = cfg.territories.partner_field
    if pf and pf in df:
        partner |= df[pf].astype(object).map(lambda v: str(v).strip().lower() in {"true", "1", "yes", "y"})
    df = df[~partner & df["owner_id"].notna() & df["tier"].isin(["T1", "T2", "T3"])]
    out = pd.DataFrame({
        "account_key": df["account_key"].astype(str),
        "owner_id": df["owner_id"].astype(str),
        "value": pd.to_numeric(df["valuation"], errors="coerce").fillna(0.0).astype(float),
        "tier": df["tier"].astype(object),
    })  # fmt: skip
    out["locked"] = out["account_key"].isin(set(cfg.territories.exceptions))
    return out.reset_index(drop=True)


def rep_sets(cfg: ClientConfig, reps_table: pd.DataFrame | None) -> tuple[list[str], set[str]]:
    """(active reps in a stable order, reps who left).

    The config's reps, when listed, define the territory reps; a rep inactive in the
    config or in the CRM (``reps.active`` false) has left.
    """
    crm_inactive: set[str] = set()
    crm_active: list[str] = []
    if reps_table is not None and len(reps_table):
        active = reps_table["active"].fillna(True).astype(bool)
        crm_inactive = set(reps_table.loc[~active, "rep_id"].astype(str))
        crm_active = sorted(reps_table.loc[active, "rep_id"].astype(str))
    if cfg.territories.reps:
        left = {r.id for r in cfg.territories.reps if not r.active} | (
            crm_inactive & {r.id for r in cfg.territories.reps}
        )
        active = [r.id for r in cfg.territories.reps if r.id not in left]
        return active, left
    return crm_active, crm_inactive


def values_by_rep(
    frame: pd.DataFrame, reps: list[str]
) -> tuple[dict[str, float], dict[str, int], dict[str, int]]:
    """Territory value, accounts and T1 accounts per rep (reps without accounts count as 0)."""
    g = frame[frame["owner_id"].isin(reps)].groupby("owner_id")
    value, count = g["value"].sum(), g.size()
    t1 = frame[(frame["tier"] == "T1") & frame["owner_id"].isin(reps)].groupby("owner_id").size()
    return ({r: float(value.get(r, 0.0)) for r in reps}, {r: int(count.get(r, 0)) for r in reps},
            {r: int(t1.get(r, 0)) for r in reps})  # fmt: skip


def rebalance(
    frame: pd.DataFrame, reps: list[str], band: float, left: set[str] | frozenset = frozenset()
) -> Rebalance:
    """Moves that bring every active rep within ``band * GOAL_SHARE`` of the mean value.

    Args:
        frame: from :func:`territory_frame`.
        reps: the active reps.
        band: the alert band (0.2 = ±20%).
        left: reps who left: all their (unlocked) accounts are reassigned.
    """
    if not reps:
        return Rebalance([], {}, {}, {}, {})
    keys = frame["account_key"].to_numpy()
    owners = frame["owner_id"].to_numpy()
    vals = frame["value"].to_numpy(dtype=float)
    tiers = frame["tier"].to_numpy()
    locked = frame["locked"].to_numpy(dtype=bool)
    loads = dict.fromkeys(reps, 0.0)
    t1 = dict.fromkeys(reps, 0)
    active = set(reps)
    for o, v, tier in zip(owners, vals, tiers, strict=True):
        if o in active:
            loads[o] += v
            t1[o] += tier == "T1"
    before, t1_before = dict(loads), dict(t1)
    moves: list[Move] = []
    orphan_idx = [i for i in range(len(keys)) if owners[i] in left and owners[i] not in active]
    total_t1 = sum(t1.values()) + sum(1 for i in orphan_idx if tiers[i] == "T1")
    fair = math.ceil(total_t1 / len(reps)) if total_t1 else 0

    # 1. hand out the accounts of reps who left: largest first, to the lightest rep (T1 within fair share)
    heap = [(loads[r], r) for r in reps]
    heapq.heapify(heap)
    for i in sorted(orphan_idx, key=lambda i: (-vals[i], keys[i])):
        skipped = []
        while True:
            load, r = heapq.heappop(heap)
            if load != loads[r]:
                continue  # stale entry
            if tiers[i] != "T1" or t1[r] < fair or not heap:
                break
            skipped.append((load, r))
        for s in skipped:
            heapq.heappush(heap, s)
        loads[r] += vals[i]
        t1[r] += tiers[i] == "T1"
        moves.append(Move(keys[i], owners[i], r, float(vals[i]), tiers[i], "rep left"))
        heapq.heappush(heap, (loads[r], r))

    # 2. balance: heaviest -> lightest, largest account that keeps both within the goal band
    total = sum(loads.values())
    target = total / len(reps)
    goal = band * GOAL_SHARE
    lo, hi = target * (1 - goal), target * (1 + goal)
    pools: dict[str, dict[bool, tuple[list[float], list[int]]]] = {
        r: {True: ([], []), False: ([], [])} for r in reps
    }
    order = np.lexsort((keys, vals))  # by value, ties by key: deterministic
    for i in order:
        o = owners[i]
        if o in active and not locked[i]:
            vs, idx = pools[o][tiers[i] == "T1"]
            vs.append(float(vals[i]))
            idx.append(int(i))

    def take(donor: str, receiver: str, limit: float) -> int | None:
        best = None
        for is_t1 in (False, True):
            if is_t1 and not (t1[receiver] + 1 <= max(fair, t1[donor] - 1)):
                continue
            vs, idx = pools[donor][is_t1]
            j = bisect.bisect_right(vs, limit) - 1
            if j >= 0 and vs[j] > 0 and (best is None or vs[j] > best[0]):
                best = (vs[j], is_t1, j)
        if best is None:
            return None
        _, is_t1, j = best
        vs, idx = pools[donor][is_t1]
        vs.pop(j)
        return idx.pop(j)

    for _ in range(len(keys)):
        ranked = sorted(reps, key=lambda r: (loads[r], r))
        if loads[ranked[-1]] <= hi and loads[ranked[0]] >= lo:
            break
        moved = False
        for donor in reversed(ranked[-5:]):
            for receiver in ranked[:5]:
                if donor == receiver or loads[donor] <= loads[receiver]:
                    continue
                limit = min(loads[donor] - lo, hi - loads[receiver], loads[donor] - loads[receiver])
                if loads[donor] <= hi and loads[receiver] >= lo or limit <= 0:
                    continue
                i = take(donor, receiver, limit)
                if i is None:
                    continue
                loads[donor] -= vals[i]
                loads[receiver] += vals[i]
                t1[donor] -= tiers[i] == "T1"
                t1[receiver] += tiers[i] == "T1"
                moves.append(Move(keys[i], donor, receiver, float(vals[i]), tiers[i], "balance"))
                moved = True
                break
            if moved:
                break
        if not moved:
            break
    return Rebalance(
        moves, before, dict(loads), t1_before, dict(t1), balance_stats(before), balance_stats(loads)
    )


def round_robin(values: np.ndarray, n_reps: int) -> np.ndarray:
    """Baseline: account i (in input order) to rep i mod n."""
    return np.arange(len(values)) % n_reps


def greedy_largest_first(values: np.ndarray, n_reps: int) -> np.ndarray:
    """Baseline: largest account first to the currently lightest rep (LPT)."""
    out = np.empty(len(values), dtype=int)
    heap = [(0.0, r) for r in range(n_reps)]
    for i in np.argsort(-values, kind="stable"):
        load, r = heapq.heappop(heap)
        out[i] = r
        heapq.heappush(heap, (load + float(values[i]), r))
    return out


def territory_alerts(
    cfg: ClientConfig, frame: pd.DataFrame, reps: list[str], left: set[str], report: str | None = None
) -> tuple[list[Alert], dict]:
    """The territory rules and the numbers behind them."""
    m = cfg.maintenance
    values, counts, t1 = values_by_rep(frame, reps)
    stats = balance_stats(values)
    alerts: list[Alert] = []
    ratio = stats["ratio"]
    ratio_bad = (
        ratio is None and stats.get("max", 0) > 0 or (ratio is not None and ratio > m.territory_max_ratio)
    )
    dev = stats["max_deviation"]
    if reps and (ratio_bad or dev > m.territory_band * HOLD_SHARE):
        firing = ratio_bad or dev > m.territory_band
        heavy = max(values, key=lambda r: (values[r], r))
        light = min(values, key=lambda r: (values[r], r))
        ratio_text = "no value at all" if ratio is None else f"{ratio:.1f}x"
        alerts.append(Alert(
            client_id=cfg.client_id, rule="territory_imbalance", role="leadership", severity="warning",
            key="balance", holding=not firing, report=report,
            title=(f"Territories are unbalanced: {heavy} holds {ratio_text} the value of {light}; "
                   f"largest deviation {dev:.0%} from the mean (limits {m.territory_max_ratio:g}x, ±{m.territory_band:.0%})"),
            numbers={"reps": len(reps), "mean_value": stats["mean"], "max_value": stats["max"],
                     "min_value": stats["min"], "max_min_ratio": ratio, "max_deviation": dev,
                     "reps_outside_band": sorted(r for r in reps if stats["mean"] and
                                                 abs(values[r] - stats["mean"]) / stats["mean"] > m.territory_band)},
            material={"max_min_ratio": ratio if ratio is not None else 1e9, "max_deviation": dev},
            confidence="exact: computed from every account's current valuation and owner",
        ))  # fmt: skip
    for rep in sorted(left):
        owned = frame[frame["owner_id"] == rep]
        if len(owned):
            alerts.append(Alert(
                client_id=cfg.client_id, rule="inactive_rep_owns_accounts", role="leadership", severity="warning",
                key=rep, report=report,
                title=f"{rep} has left but still owns {len(owned):,} accounts worth {owned['value'].sum():,.0f}",
                numbers={"rep": rep, "accounts": len(owned), "value": round(float(owned["value"].sum()), 2),
                         "t1_accounts": int((owned["tier"] == "T1").sum())},
                material={"accounts": len(owned)},
                confidence="exact: the rep is inactive in the config or the CRM",
            ))  # fmt: skip
    summary = {"values": values, "accounts": counts, "t1_accounts": t1, "stats": stats, "left": sorted(left)}
    return alerts, summary

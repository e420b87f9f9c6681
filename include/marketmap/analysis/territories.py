"""Territory balance: value per rep, imbalance rules, and a rebalancing that moves few accounts.

Territory value (``maintenance.territory_value``, per client):

* ``account_owner`` (default) — the sum of the valuations (potential ARR) of the in-scope
  accounts a rep owns;
* ``opportunity_owner`` — each account's valuation split among the reps who own its
  deals, in proportion to their deals (accounts without deals count for their owner);
* ``open_pipeline`` / ``won_value`` — open deal amounts / won amounts of the last 365
  days, by deal owner.

Ownership is checked before balance is judged (:func:`ownership`): when most won deals
were closed by someone other than the account owner, or many tiered accounts have no
owner, account-owner territories say little, and the check says so
(``territory_ownership_unclear``) instead of reporting a balanced book. A check that
cannot compute (no reps, no owned accounts, no values) says why
(``territory_check_unavailable``). Partner/channel accounts (``is_partner`` or ``territories.partner_field``)
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
account that keeps both inside the band — large moves first means few moves. When the
band cannot be reached (one account is worth more than the band allows a whole
territory), the proposal says so and aims at the best reachable spread instead, so it
does not move half the book chasing an impossible target. A T1 account
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

from marketmap import units
from marketmap.alerts.rules import Alert
from marketmap.config import ClientConfig

GOAL_SHARE = 0.9  # aim inside 90% of the alert band
HOLD_SHARE = 0.75  # an open imbalance alert resolves only below 75% of the band
SHARED_WON_SHARE = 0.5  # most won deals closed by someone other than the account owner
MISSING_OWNER_SHARE = 0.05  # more tiered accounts without an owner than this
MIN_WON_FOR_OWNERSHIP = 10
BASIS_TEXT = {
    "account_owner": "valuations of the accounts each rep owns",
    "opportunity_owner": "account valuations split by who owns the accounts' deals",
    "open_pipeline": "open pipeline by deal owner",
    "won_value": "won value of the last 365 days by deal owner",
}


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
    reachable: bool = True
    reason: str | None = None  # why the band cannot be reached
    goal_used: float | None = None  # the band the moves aimed at (the goal, or the best reachable)


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
    frame: pd.DataFrame, reps: list[str], band: float, left: set[str] | frozenset = frozenset(),
    currency: str | None = None,
) -> Rebalance:
    """Moves that bring every active rep within ``band * GOAL_SHARE`` of the mean value.

    When the band is out of reach (one account larger than it allows), a second plan is
    tried that hands that account itself to the lightest rep first; the plan with fewer
    moves at the same or a better spread wins.

    Args:
        frame: from :func:`territory_frame`.
        reps: the active reps.
        band: the alert band (0.2 = ±20%).
        left: reps who left: all their (unlocked) accounts are reassigned.
        currency: the client's currency, for amounts in the reason text.
    """
    rb = _rebalance(frame, reps, band, left, currency)
    if rb.reachable or not reps or not len(frame):
        return rb
    free = frame[~frame["locked"].astype(bool)]
    if not len(free):
        return rb
    i = free["value"].idxmax()
    owner, active = frame.at[i, "owner_id"], set(reps)
    lightest = min(reps, key=lambda r: (rb.before.get(r, 0.0), r))
    if owner not in active or lightest == owner:
        return rb
    f2 = frame.copy()
    f2.at[i, "owner_id"], f2.at[i, "locked"] = lightest, True
    alt = _rebalance(f2, reps, band, left, currency)
    first = Move(str(frame.at[i, "account_key"]), owner, lightest, float(frame.at[i, "value"]),
                 frame.at[i, "tier"], "balance")  # fmt: skip
    if (
        len(alt.moves) + 1 < len(rb.moves)
        and alt.stats_after["max_deviation"] <= rb.stats_after["max_deviation"] + 1e-9
    ):
        return Rebalance([first, *alt.moves], rb.before, alt.after, rb.t1_before, alt.t1_after, rb.stats_before,
                         alt.stats_after, alt.reachable, rb.reason or alt.reason, alt.goal_used)  # fmt: skip
    return rb


def _rebalance(
    frame: pd.DataFrame, reps: list[str], band: float, left: set[str] | frozenset = frozenset(),
    currency: str | None = None,
) -> Rebalance:
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
    reachable, reason = True, None
    big = int(np.argmax(vals)) if len(vals) else None
    if big is not None and target > 0 and vals[big] > target * (1 + band):
        # one account alone is worth more than a whole territory may: aim at what can be reached
        reachable = False
        need = vals[big] / target - 1
        reason = (
            f"account {keys[big]} alone is worth {units.money(float(vals[big]), currency)}, {need:.0%} above the mean "
            f"territory ({units.money(float(target), currency)}): no assignment brings every rep within ±{band:.0%}"
        )
        goal = need * 1.01
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
    after = balance_stats(loads)
    if reachable and target > 0 and after["max_deviation"] > band:
        reachable = False
        reason = (
            f"the moves that keep named exceptions in place and the T1 spread fair stop at "
            f"±{after['max_deviation']:.0%}"
        )
    return Rebalance(moves, before, dict(loads), t1_before, dict(t1), balance_stats(before), after,
                     reachable, reason, round(goal, 4))  # fmt: skip


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


def rep_names(cfg: ClientConfig, reps_table: pd.DataFrame | None) -> dict[str, str]:
    """Rep id -> name: the config's ``territories.reps`` first, then the CRM's reps table."""
    names: dict[str, str] = {}
    if reps_table is not None and len(reps_table) and "name" in reps_table:
        for rid, name in zip(reps_table["rep_id"].astype(str), reps_table["name"], strict=True):
            if isinstance(name, str) and name.strip():
                names[rid] = name.strip()
    names |= {r.id: r.name for r in cfg.territories.reps if r.name}
    return names


def _name(names: dict[str, str] | None, rep: str) -> str:
    return (names or {}).get(rep, rep)


def ownership(accounts: pd.DataFrame, scores: pd.DataFrame, opportunities: pd.DataFrame | None) -> dict:
    """Who owns what: tiered accounts without an owner, won deals closed by another rep.

    ``shared`` when at least ``MIN_WON_FOR_OWNERSHIP`` won deals and most of them were
    closed by a rep other than the account owner; ``missing`` when more than
    ``MISSING_OWNER_SHARE`` of the tiered accounts have no owner.
    """
    tiers = scores[["account_key", "tier"]] if len(scores) else pd.DataFrame(columns=["account_key", "tier"])
    tiered = accounts.merge(tiers, on="account_key", how="inner")
    tiered = tiered[tiered["tier"].isin(["T1", "T2", "T3"])]
    no_owner = int(tiered["owner_id"].isna().sum()) if len(tiered) else 0
    out = {"tiered_accounts": int(len(tiered)), "without_owner": no_owner,
           "without_owner_share": round(no_owner / len(tiered), 4) if len(tiered) else None,
           "won_deals": 0, "won_by_other_rep": 0, "won_by_other_share": None, "reps_per_account_median": None}  # fmt: skip
    if opportunities is not None and len(opportunities) and "owner_id" in opportunities:
        o = opportunities[opportunities["owner_id"].notna()]
        owner_of = accounts.drop_duplicates("account_key").set_index("account_key")["owner_id"]
        won = o[o["is_won"].fillna(False).astype(bool)]
        acct_owner = won["account_key"].map(owner_of)
        other = int((acct_owner.astype(object) != won["owner_id"].astype(object)).sum())
        out["won_deals"], out["won_by_other_rep"] = int(len(won)), other
        out["won_by_other_share"] = round(other / len(won), 4) if len(won) else None
        per = o.groupby("account_key")["owner_id"].nunique()
        out["reps_per_account_median"] = float(per.median()) if len(per) else None
    out["shared"] = bool(
        out["won_deals"] >= MIN_WON_FOR_OWNERSHIP and (out["won_by_other_share"] or 0) > SHARED_WON_SHARE
    )
    out["missing"] = bool(out["tiered_accounts"] and out["without_owner_share"] > MISSING_OWNER_SHARE)
    return out


def basis_values(
    cfg: ClientConfig, frame: pd.DataFrame, opportunities: pd.DataFrame | None, reps: list[str], as_of=None
) -> dict[str, float]:
    """Territory value per active rep by ``maintenance.territory_value``."""
    basis = cfg.maintenance.territory_value
    if basis == "account_owner" or opportunities is None or not len(opportunities):
        return values_by_rep(frame, reps)[0]
    o = opportunities[opportunities["owner_id"].notna()].copy()
    o["owner_id"] = o["owner_id"].astype(str)
    out = dict.fromkeys(reps, 0.0)
    if basis == "opportunity_owner":
        share = (
            o[o["account_key"].isin(set(frame["account_key"]))].groupby(["account_key", "owner_id"]).size()
        )
        share = share / share.groupby(level=0).transform("sum")
        value = frame.set_index("account_key")["value"]
        worked = set(share.index.get_level_values(0))
        for (acct, rep), w in share.items():
            if rep in out:
                out[rep] += float(value.get(acct, 0.0)) * float(w)
        rest = frame[~frame["account_key"].isin(worked)]
        for rep, v in rest.groupby("owner_id")["value"].sum().items():
            if rep in out:
                out[rep] += float(v)
        return out
    amount = pd.to_numeric(o["amount"], errors="coerce").fillna(0.0)
    closed = o["is_closed"].fillna(False).astype(bool)
    if basis == "open_pipeline":
        sel = ~closed
    else:
        won = o["is_won"].fillna(False).astype(bool)
        close = pd.to_datetime(o["close_date"], errors="coerce")
        end = pd.Timestamp(as_of) if as_of is not None else close.max()
        sel = won & (close > end - pd.Timedelta(days=365)) & (close <= end)
    for rep, v in amount[sel].groupby(o.loc[sel, "owner_id"]).sum().items():
        if rep in out:
            out[rep] += float(v)
    return out


def unavailable_reason(
    cfg: ClientConfig, frame: pd.DataFrame, reps: list[str], values: dict[str, float]
) -> str | None:
    """Why the territory check cannot compute, or None."""
    if not reps:
        return (
            "no active reps: list them in the config (territories.reps) or sync the CRM's users "
            "(the reps table is empty or every rep is inactive)"
        )
    if cfg.maintenance.territory_value in ("account_owner", "opportunity_owner") and not len(frame):
        return "no tiered, non-partner account has an owner: there is no territory to weigh"
    if not any(v > 0 for v in values.values()):
        what = BASIS_TEXT[cfg.maintenance.territory_value]
        return f"every rep's territory is worth 0 by {what}: no valuations or deals to weigh"
    return None


def territory_alerts(
    cfg: ClientConfig,
    frame: pd.DataFrame,
    reps: list[str],
    left: set[str],
    report: str | None = None,
    *,
    names: dict[str, str] | None = None,
    values: dict[str, float] | None = None,
    owners: dict | None = None,
    proposal: Rebalance | None = None,
) -> tuple[list[Alert], dict]:
    """The territory rules and the numbers behind them.

    Args:
        names: rep id -> name (titles name reps, not ids).
        values: territory value per rep by the client's basis (default: account owner).
        owners: :func:`ownership` (shared or missing ownership suppresses "balanced").
        proposal: the rebalancing proposal, whose reach the imbalance alert states.
    """
    m = cfg.maintenance
    cur = units.client_currency(cfg)
    by_owner, counts, t1 = values_by_rep(frame, reps)
    values = by_owner if values is None else values
    stats = balance_stats(values)
    alerts: list[Alert] = []
    basis = BASIS_TEXT[m.territory_value]
    why = unavailable_reason(cfg, frame, reps, values)
    if why:
        alerts.append(Alert(
            client_id=cfg.client_id, rule="territory_check_unavailable", role="leadership", severity="info",
            key="check", report=report, title=f"The territory balance could not be checked: {why}.",
            numbers={"active_reps": len(reps), "accounts_with_owner": int(len(frame)), "territory_value": basis},
            material={"active_reps": len(reps)}, confidence="exact: nothing to compute from",
        ))  # fmt: skip
    unclear = bool(
        owners and m.territory_value == "account_owner" and (owners["shared"] or owners["missing"])
    )
    if owners and (owners["shared"] or owners["missing"]):
        parts = []
        if owners["shared"]:
            parts.append(
                f"{owners['won_by_other_share']:.0%} of won deals ({owners['won_by_other_rep']:,} of "
                f"{owners['won_deals']:,}) were closed by a rep other than the account owner"
            )
        if owners["missing"]:
            parts.append(
                f"{owners['without_owner']:,} of {owners['tiered_accounts']:,} tiered accounts "
                f"({owners['without_owner_share']:.0%}) have no owner"
            )
        title = "Account ownership does not describe who sells here: " + " and ".join(parts) + "."
        if unclear:
            title += " Balance by account owner is not reported; set maintenance.territory_value to opportunity_owner, open_pipeline or won_value."
        alerts.append(Alert(
            client_id=cfg.client_id, rule="territory_ownership_unclear", role="leadership", severity="warning",
            key="ownership", report=report, title=title,
            numbers={k: owners[k] for k in ("tiered_accounts", "without_owner", "won_deals", "won_by_other_rep",
                                             "won_by_other_share", "reps_per_account_median")} | {"territory_value": basis},
            material={"won_by_other_share": owners["won_by_other_share"] or 0.0,
                      "without_owner_share": owners["without_owner_share"] or 0.0},
            confidence=(f"exact: counted over every won deal and tiered account (shared when over "
                        f"{SHARED_WON_SHARE:.0%} of at least {MIN_WON_FOR_OWNERSHIP} won deals were closed by another "
                        f"rep; missing when over {MISSING_OWNER_SHARE:.0%} of accounts have no owner)"),
        ))  # fmt: skip
    ratio = stats["ratio"]
    ratio_bad = (
        ratio is None and stats.get("max", 0) > 0 or (ratio is not None and ratio > m.territory_max_ratio)
    )
    dev = stats["max_deviation"]
    if reps and not why and not unclear and (ratio_bad or dev > m.territory_band * HOLD_SHARE):
        firing = ratio_bad or dev > m.territory_band
        heavy = max(values, key=lambda r: (values[r], r))
        light = min(values, key=lambda r: (values[r], r))
        held = (f"holds value while {_name(names, light)} has none" if ratio is None
                else f"holds {ratio:.1f}× the value of {_name(names, light)}")  # fmt: skip
        title = (f"Territories are unbalanced: {_name(names, heavy)} {held}; the largest deviation from the "
                 f"mean is {dev:.0%} (limits {m.territory_max_ratio:g}×, ±{m.territory_band:.0%}).")  # fmt: skip
        numbers = {"reps": len(reps), "territory_value": basis, "mean_value": units.money(stats["mean"], cur),
                   "max_value": units.money(stats["max"], cur), "min_value": units.money(stats["min"], cur), "max_min_ratio": ratio, "max_deviation": dev,
                   "reps_outside_band": sorted(_name(names, r) for r in reps if stats["mean"] and
                                               abs(values[r] - stats["mean"]) / stats["mean"] > m.territory_band)}  # fmt: skip
        evidence = f"exact: computed from every in-scope account ({basis})."
        if proposal is not None:
            numbers |= {"proposed_moves": len(proposal.moves), "max_deviation_after": proposal.stats_after.get("max_deviation"),
                        "ratio_after": proposal.stats_after.get("ratio"), "target_reachable": proposal.reachable}  # fmt: skip
            if proposal.reachable:
                evidence += (
                    f" The proposal brings every rep within ±{proposal.stats_after.get('max_deviation', 0):.0%} "
                    f"with {len(proposal.moves):,} moves."
                )
            else:
                evidence += (
                    f" ±{m.territory_band:.0%} cannot be reached: {proposal.reason}. Best reachable with the fewest "
                    f"moves: every rep within ±{proposal.stats_after.get('max_deviation', 0):.0%}, "
                    f"{len(proposal.moves):,} moves."
                )
            if m.territory_value != "account_owner":
                evidence += (
                    " The proposal moves account owners, so it balances account valuations, not this basis."
                )
        alerts.append(Alert(
            client_id=cfg.client_id, rule="territory_imbalance", role="leadership", severity="warning",
            key="balance", holding=not firing, report=report, title=title, numbers=numbers,
            material={"max_min_ratio": ratio if ratio is not None else 1e9, "max_deviation": dev},
            confidence=evidence,
        ))  # fmt: skip
    elif (
        reps and not why and not unclear
    ):  # balanced now: an open imbalance alert resolves with these numbers
        heavy = max(values, key=lambda r: (values[r], r))
        light = min(values, key=lambda r: (values[r], r))
        alerts.append(Alert(
            client_id=cfg.client_id, rule="territory_imbalance", role="leadership", severity="warning",
            key="balance", cleared=True, report=report,
            title=(f"Territories are balanced: every rep is within {dev:.0%} of the mean; {_name(names, heavy)} "
                   f"holds {ratio or 1:.1f}× the value of {_name(names, light)}."),
            numbers={"reps": len(reps), "territory_value": basis, "mean_value": units.money(stats["mean"], cur),
                     "max_min_ratio": ratio, "max_deviation": dev},
            material={"max_min_ratio": ratio if ratio is not None else 1e9, "max_deviation": dev},
            confidence=f"exact: computed from every in-scope account ({basis}).",
        ))  # fmt: skip
    for rep in sorted(left):
        owned = frame[frame["owner_id"] == rep]
        if len(owned):
            alerts.append(Alert(
                client_id=cfg.client_id, rule="inactive_rep_owns_accounts", role="leadership", severity="warning",
                key=rep, report=report,
                title=f"{_name(names, rep)} has left but still owns {len(owned):,} accounts worth {units.money(float(owned['value'].sum()), cur)}.",
                numbers={"rep": _name(names, rep), "rep_id": rep, "accounts": len(owned),
                         "value": units.money(float(owned["value"].sum()), cur), "t1_accounts": int((owned["tier"] == "T1").sum())},
                material={"accounts": len(owned)},
                confidence="exact: the rep is inactive in the config or the CRM",
            ))  # fmt: skip
    summary = {"values": values, "accounts": counts, "t1_accounts": t1, "stats": stats, "left": sorted(left),
               "basis": m.territory_value, "ownership": owners, "unavailable": why,
               "balance_reported": not unclear and not why}  # fmt: skip
    return alerts, summary

"""QA gates run before anything is written to the CRM (SPEC §4, seed 000 QA checklist).

Gates and bounds (the seed gives the spirit, the numbers below are this module's choice):

* ``tier_distribution`` (error): T1 share of in-scope accounts (T1/T2/T3) within
  [0.5%, 50%]. The seed's red flags are "T1 ~90%" (criteria too loose) and "T1 ~0.1%"
  (too tight); 50% and 0.5% stop both well before that. In-scope accounts are used so a
  TAM pull with many OUT accounts does not make T1 look rare.
* ``accounts_per_rep`` (error): each rep that owns in-scope accounts owns 50-10,000 of
  them (seed 000: sweet spot 50-2,000, red flag above 10,000). When ``reps`` is given
  only those owners count (integration users and queues are ignored); reps without
  accounts are not checked.
* ``accounts_per_rep_sweet_spot`` (warning): no rep above 2,000 ("warning zone").
* ``no_blank_tier`` (error): every account has a tier (T1/T2/T3/OUT).
* ``no_blank_valuation`` (error): every in-scope account has a valuation.
* :func:`reconcile_gate` (error): record counts agree between source, warehouse and CRM.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import pandas as pd

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from marketmap.config import ClientConfig

IN_SCOPE = ("T1", "T2", "T3")
ALL_TIERS = (*IN_SCOPE, "OUT")
T1_SHARE_BOUNDS = (0.005, 0.5)
REP_MIN, REP_WARN, REP_MAX = 50, 2_000, 10_000


@dataclass
class Gate:
    """One QA gate result; ``details`` holds the numbers behind ``message``."""

    name: str
    passed: bool
    severity: Literal["error", "warning"]
    message: str
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


def _tiers(accounts: pd.DataFrame) -> pd.Series:
    t = (
        accounts["tier"].astype(object)
        if "tier" in accounts.columns
        else pd.Series(None, index=accounts.index)
    )
    return t.map(lambda v: v.strip().upper() if isinstance(v, str) and v.strip() else None)


def _rep_ids(reps: Iterable[Any] | None) -> set[str] | None:
    if reps is None:
        return None
    ids = set()
    for r in reps:
        if isinstance(r, str):
            ids.add(r)
        elif isinstance(r, Mapping):
            if r.get("active", True):
                ids.add(str(r["id"]))
        elif getattr(r, "active", True):  # config.Rep
            ids.add(str(r.id))
    return ids


def tier_distribution_gate(tiers: pd.Series, bounds: tuple[float, float] = T1_SHARE_BOUNDS) -> Gate:
    in_scope = tiers[tiers.isin(IN_SCOPE)]
    n = int(len(in_scope))
    counts = {t: int((tiers == t).sum()) for t in ALL_TIERS}
    lo, hi = bounds
    if n == 0:
        return Gate("tier_distribution", False, "error", "no account is in T1, T2 or T3", {"counts": counts})
    share = counts["T1"] / n
    ok = lo <= share <= hi
    msg = (
        f"T1 is {share:.1%} of {n:,} in-scope accounts ({counts['T1']:,} T1, {counts['T2']:,} T2, "
        f"{counts['T3']:,} T3); allowed {lo:.1%}-{hi:.0%}"
    )
    if not ok:
        msg += ": thresholds too loose" if share > hi else ": thresholds too tight"
    return Gate(
        "tier_distribution",
        ok,
        "error",
        msg,
        {"t1_share": round(share, 4), "in_scope": n, "counts": counts, "bounds": [lo, hi]},
    )


def rep_gates(
    accounts: pd.DataFrame,
    tiers: pd.Series,
    reps: Iterable[Any] | None = None,
    rep_min: int = REP_MIN,
    rep_warn: int = REP_WARN,
    rep_max: int = REP_MAX,
) -> list[Gate]:
    owners = accounts["owner_id"] if "owner_id" in accounts.columns else pd.Series(None, index=accounts.index)
    owners = owners.astype(object)
    owners = owners[tiers.isin(IN_SCOPE) & owners.notna() & (owners.astype(str).str.strip() != "")].astype(
        str
    )
    allowed = _rep_ids(reps)
    if allowed is not None:
        owners = owners[owners.isin(allowed)]
    per_rep = owners.value_counts()
    if per_rep.empty:
        msg = "no in-scope account has an owner among the reps; per-rep checks skipped"
        return [
            Gate("accounts_per_rep", True, "error", msg, {"reps": 0}),
            Gate("accounts_per_rep_sweet_spot", True, "warning", msg, {"reps": 0}),
        ]
    stats = {
        "reps": int(len(per_rep)),
        "min": int(per_rep.min()),
        "max": int(per_rep.max()),
        "median": float(per_rep.median()),
    }
    low = {str(k): int(v) for k, v in per_rep[per_rep < rep_min].items()}
    high = {str(k): int(v) for k, v in per_rep[per_rep > rep_max].items()}
    warn = {str(k): int(v) for k, v in per_rep[per_rep > rep_warn].items()}
    span = f"{stats['reps']} reps own {stats['min']:,}-{stats['max']:,} in-scope accounts each"
    if low or high:
        parts = []
        if low:
            parts.append(f"{len(low)} below {rep_min:,} ({_few(low)})")
        if high:
            parts.append(f"{len(high)} above {rep_max:,} ({_few(high)}): criteria too loose")
        range_gate = Gate(
            "accounts_per_rep",
            False,
            "error",
            f"{span}; {'; '.join(parts)}",
            {**stats, "below_min": low, "above_max": high, "bounds": [rep_min, rep_max]},
        )
    else:
        range_gate = Gate(
            "accounts_per_rep",
            True,
            "error",
            f"{span} (allowed {rep_min:,}-{rep_max:,})",
            {**stats, "bounds": [rep_min, rep_max]},
        )
    if warn:
        sweet = Gate(
            "accounts_per_rep_sweet_spot",
            False,
            "warning",
            f"{len(warn)} reps above {rep_warn:,} accounts ({_few(warn)}): hard to personalise",
            {**stats, "above_warning": warn, "warning_above": rep_warn},
        )
    else:
        sweet = Gate(
            "accounts_per_rep_sweet_spot",
            True,
            "warning",
            f"{span} (sweet spot up to {rep_warn:,})",
            {**stats, "warning_above": rep_warn},
        )
    return [range_gate, sweet]


def _few(d: dict[str, int], k: int = 3) -> str:
    items = sorted(d.items(), key=lambda kv: -kv[1])
    text = ", ".join(f"{rep}: {n:,}" for rep, n in items[:k])
    return text + (f" and {len(items) - k} more" if len(items) > k else "")


def blank_tier_gate(tiers: pd.Series) -> Gate:
    blank = int(tiers.isna().sum() + (~tiers.isna() & ~tiers.isin(ALL_TIERS)).sum())
    n = int(len(tiers))
    if blank:
        return Gate(
            "no_blank_tier",
            False,
            "error",
            f"{blank:,} of {n:,} accounts have a blank or unknown tier",
            {"blank": blank, "accounts": n},
        )
    return Gate(
        "no_blank_tier", True, "error", f"all {n:,} accounts have a tier", {"blank": 0, "accounts": n}
    )


def blank_valuation_gate(accounts: pd.DataFrame, tiers: pd.Series) -> Gate:
    in_scope = tiers.isin(IN_SCOPE)
    n = int(in_scope.sum())
    if "valuation" not in accounts.columns:
        return Gate(
            "no_blank_valuation",
            n == 0,
            "error",
            f"no valuation column; {n:,} in-scope accounts",
            {"blank": n, "in_scope": n},
        )
    value = pd.to_numeric(accounts["valuation"], errors="coerce")
    blank = int((in_scope & value.isna()).sum())
    if blank:
        return Gate(
            "no_blank_valuation",
            False,
            "error",
            f"{blank:,} of {n:,} in-scope accounts have no valuation",
            {"blank": blank, "in_scope": n},
        )
    return Gate(
        "no_blank_valuation",
        True,
        "error",
        f"all {n:,} in-scope accounts have a valuation",
        {"blank": 0, "in_scope": n},
    )


def qa_gates(
    accounts: pd.DataFrame,
    reps: Iterable[Any] | None = None,
    t1_share_bounds: tuple[float, float] = T1_SHARE_BOUNDS,
    rep_min: int = REP_MIN,
    rep_warn: int = REP_WARN,
    rep_max: int = REP_MAX,
) -> list[Gate]:
    """Run the pre-push QA gates on scored accounts.

    Args:
        accounts: accounts with ``tier``, ``valuation`` and ``owner_id``.
        reps: rep ids, ``config.Rep`` objects or ``{"id", "active"}`` mappings; when
            given, only active reps' accounts are checked per rep.

    Returns:
        Gates in a fixed order: tier_distribution, accounts_per_rep,
        accounts_per_rep_sweet_spot, no_blank_tier, no_blank_valuation.
    """
    tiers = _tiers(accounts)
    return [
        tier_distribution_gate(tiers, t1_share_bounds),
        *rep_gates(accounts, tiers, reps, rep_min, rep_warn, rep_max),
        blank_tier_gate(tiers),
        blank_valuation_gate(accounts, tiers),
    ]


def reconcile_gate(source: int, warehouse: int, crm: int | None = None, name: str = "accounts") -> Gate:
    """Counts reconcile source <-> warehouse <-> CRM (``crm`` None before the push)."""
    counts = {"source": source, "warehouse": warehouse} | ({} if crm is None else {"crm": crm})
    ok = len(set(counts.values())) == 1
    text = ", ".join(f"{k} {v:,}" for k, v in counts.items())
    msg = f"{name} counts {'reconcile' if ok else 'differ'}: {text}"
    return Gate(f"reconcile_{name}", ok, "error", msg, counts)


def failed(gates: Iterable[Gate], severity: str | None = None) -> list[Gate]:
    """Gates that did not pass, optionally only those of one severity ("error" blocks a push)."""
    return [g for g in gates if not g.passed and (severity is None or g.severity == severity)]


def format_gates(gates: Iterable[Gate]) -> str:
    """One line per gate: ``PASS``/``FAIL``, severity, name and the numbers."""
    lines = []
    for g in gates:
        status = "PASS" if g.passed else ("FAIL" if g.severity == "error" else "WARN")
        lines.append(f"{status} [{g.severity}] {g.name}: {g.message}")
    return "\n".join(lines)


def gates_summary(gates: Iterable[Gate]) -> dict:
    """JSON summary for reports and Slack: ``{"passed", "errors", "warnings", "gates": [...]}``."""
    gates = list(gates)
    return {
        "passed": not failed(gates, "error"),
        "errors": [g.name for g in failed(gates, "error")],
        "warnings": [g.name for g in failed(gates, "warning")],
        "gates": [g.to_dict() for g in gates],
    }


class QAGateFailed(Exception):
    """A QA gate with severity "error" failed: nothing may be written to the CRM."""


def qa_gate(cfg: ClientConfig, engine: Engine, override: bool = False) -> dict:
    """Run the QA gates on the current scores; raise QAGateFailed on an error unless overridden."""
    from marketmap.versions import rubric_version
    from marketmap.warehouse.queries import sql_frame

    # counted in SQL (one row per tier x owner x blank valuation), then one row per account again:
    # three shared values per row instead of the accounts' and scores' keys
    counts = sql_frame(engine, "analysis/count_accounts_by_tier_owner", client_id=cfg.client_id,
                       rubric_version=rubric_version(cfg), product=cfg.icp.rubrics[0].product)  # fmt: skip
    frame = counts.loc[counts.index.repeat(counts["accounts"].astype(int))].reset_index(drop=True)
    frame["valuation"] = frame["valuation_blank"].map(lambda blank: None if blank else 1.0).astype(float)
    gates = qa_gates(frame, reps=cfg.territories.reps or None, **cfg.qa.bounds())
    errors = failed(gates, "error")
    result = gates_summary(gates)
    result["report"] = format_gates(gates)
    result["overridden"] = bool(errors) and override
    if errors and not override:
        raise QAGateFailed(
            f"QA gate failed for {cfg.client_id} ({', '.join(g.name for g in errors)}) — nothing will be written to the CRM. "
            f"Fix the data or re-run with the param override_qa=true.\n{result['report']}"
        )
    return result

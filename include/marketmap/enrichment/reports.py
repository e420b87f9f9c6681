"""Credit burn against the budget's pace, and the provider optimisation report.

``burn_report`` feeds the monthly credit-burn monitor (maintenance schedule: "burn above
the monthly budget allocation; runaway enrichments"). ``optimisation_report`` feeds the
quarterly data-provider review ("switch when it saves more than 20%").

How the optimisation report estimates (stated in its output too): from the lookups each
provider really made (``enrichment_stats``) it takes, per provider, the price per lookup
and, per field, the share of lookups that returned a valid value. Treating providers and
fields as independent, it computes for every order (and every subset) of the providers the
expected credits per account of a waterfall over the fields accounts asked for, and the
expected fill rate per field. It recommends the cheapest alternative whose fill rate is
within ``fill_tolerance`` of the current one on every field when it saves more than
``min_saving`` (20%). Providers that look at leftovers only (second in the waterfall) are
measured on harder accounts, so the estimate is a guide for a trial, not a promise.
"""

from __future__ import annotations

import calendar
import datetime as dt
import itertools
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, func, select

from marketmap.config import ClientConfig
from marketmap.warehouse import schema as t


def pace_share(month: str, now: dt.datetime | None = None, tz: str | ZoneInfo = "UTC") -> float:
    """Share of ``month`` (``YYYY-MM``) elapsed at ``now`` in the client's timezone (0..1)."""
    zone = ZoneInfo(tz) if isinstance(tz, str) else tz
    # Airflow passes pendulum datetimes, whose differences are pendulum Intervals that cannot be
    # divided by a stdlib timedelta: compare plain seconds since the epoch instead.
    now_ts = (now or dt.datetime.now(dt.UTC)).timestamp()
    year, mon = (int(x) for x in month.split("-"))
    start = dt.datetime(year, mon, 1, tzinfo=zone)
    days = calendar.monthrange(year, mon)[1]
    end = start + dt.timedelta(days=days)
    start_ts, end_ts = start.timestamp(), end.timestamp()
    if now_ts <= start_ts:
        return 0.0
    if now_ts >= end_ts:
        return 1.0
    return (now_ts - start_ts) / (end_ts - start_ts)


def burn_report(
    cfg: ClientConfig, engine: Engine, month: str, now: dt.datetime | None = None, runaway_share: float = 0.25
) -> dict:
    """Credits of ``month`` against the budget and its pace.

    Returns:
        ``{"month", "budget", "spent", "open_reservations", "remaining", "pace_share",
        "pace_credits", "over_pace", "over_budget", "by_provider", "by_run", "runaway_runs",
        "top_accounts", "alerts"}``; a run that spent more than ``runaway_share`` of the
        budget is a runaway.
    """
    c = t.credit_ledger.c
    where = [c.client_id == cfg.client_id, c.month == month]
    with engine.connect() as conn:
        total = float(
            conn.execute(select(func.coalesce(func.sum(c.credits), 0.0)).where(*where)).scalar_one()
        )
        open_ = float(
            conn.execute(
                select(func.coalesce(func.sum(c.credits), 0.0)).where(*where, c.outcome == "reserved")
            ).scalar_one()
        )
        by_provider = {
            r.provider: {"credits": float(r.credits), "calls": int(r.calls)}
            for r in conn.execute(
                select(c.provider, func.sum(c.credits).label("credits"), func.count().label("calls"))
                .where(*where)
                .group_by(c.provider)
            )
        }
        by_run = {
            r.run_id: float(r.credits)
            for r in conn.execute(
                select(c.run_id, func.sum(c.credits).label("credits")).where(*where).group_by(c.run_id)
            )
        }
        top = [
            {"account_key": r.account_key, "credits": float(r.credits)}
            for r in conn.execute(
                select(c.account_key, func.sum(c.credits).label("credits"))
                .where(*where, c.account_key.is_not(None))
                .group_by(c.account_key)
                .order_by(func.sum(c.credits).desc(), c.account_key)
                .limit(10)
            )
        ]
    budget = float(cfg.enrichment.monthly_credit_budget)
    share = pace_share(month, now, cfg.tz)
    pace = budget * share
    runaway = {k: v for k, v in by_run.items() if budget and v > runaway_share * budget}
    alerts = []
    if budget and total > pace + 1e-9:
        alerts.append(
            {
                "rule": "credit_burn_above_pace",
                "severity": "critical" if total > budget else "warning",
                "role": "revops",
                "title": (
                    f"{cfg.name}: {total:,.0f} credits spent in {month}, above the budget's pace "
                    f"({pace:,.0f} of {budget:,.0f} by now)"
                ),
                "numbers": {"spent": round(total, 2), "pace": round(pace, 2), "budget": budget},
            }
        )
    for run_id, credits in sorted(runaway.items()):
        alerts.append(
            {
                "rule": "runaway_enrichment",
                "severity": "warning",
                "role": "revops",
                "title": f"{cfg.name}: run {run_id} spent {credits:,.0f} credits ({credits / budget:.0%} of the month's budget)",
                "numbers": {"run_id": run_id, "credits": round(credits, 2), "budget": budget},
            }
        )
    return {
        "client_id": cfg.client_id,
        "month": month,
        "budget": budget,
        "spent": round(total, 4),
        "open_reservations": round(open_, 4),
        "remaining": round(max(budget - total, 0.0), 4),
        "pace_share": round(share, 4),
        "pace_credits": round(pace, 2),
        "over_pace": bool(budget and total > pace + 1e-9),
        "over_budget": total > budget + 1e-9,
        "by_provider": by_provider,
        "by_run": by_run,
        "runaway_runs": runaway,
        "top_accounts": top,
        "alerts": alerts,
    }


# The rules an enrichment run evaluates (its open alerts of these rules resolve when a later run
# no longer finds the condition).
RUN_RULES = frozenset({"credit_budget_reached", "enrichment_provider_failing", "credit_burn_above_pace"})


def run_alert_candidates(cfg: ClientConfig, alerts: list[dict]) -> list:
    """An enrichment run's alerts (budget reached, provider failing, burn above pace) as candidates
    for the alert store, so they are deduplicated, routed and resolved like every other alert."""
    from marketmap.alerts.rules import Alert

    material_keys = ("spent", "accounts_skipped", "errors")
    out = []
    for a in alerts:
        numbers = a.get("numbers", {})
        out.append(
            Alert(
                client_id=cfg.client_id,
                rule=a["rule"],
                role=a.get("role", "revops"),
                severity=a.get("severity", "warning"),
                key=str(numbers.get("provider", "")) if a["rule"] == "enrichment_provider_failing" else "",
                title=a["title"].removeprefix(f"{cfg.name}: "),
                numbers=numbers,
                material={k: v for k, v in numbers.items() if k in material_keys},
                confidence="exact: from the credit ledger and the providers' answers",
            )
        )
    return out


# --------------------------------------------------------------------------- optimisation


def _estimate(
    order: list[str], price: dict[str, float], rate: dict[str, dict[str, float]], mix: dict[str, float]
):
    """Expected credits per account and fill rate per field of a waterfall in ``order``.

    An account asks for each field f with probability ``mix[f]``; provider i is called
    when some asked field it offers is still missing. Independence throughout.
    """
    missing = dict(mix)  # P(field asked and still missing)
    cost = 0.0
    for p in order:
        offered = {f: r for f, r in rate[p].items() if f in missing}
        if not offered:
            continue
        p_none_missing = 1.0
        for f in offered:
            p_none_missing *= 1.0 - missing[f]
        cost += price[p] * (1.0 - p_none_missing)
        for f, r in offered.items():
            missing[f] *= 1.0 - r
    fill = {f: (1.0 - missing[f] / mix[f]) if mix[f] else 0.0 for f in mix}
    return cost, fill


def optimisation_report(
    cfg: ClientConfig,
    engine: Engine,
    since: dt.date | dt.datetime,
    *,
    min_saving: float = 0.2,
    fill_tolerance: float = 0.01,
    min_lookups: int = 20,
) -> dict:
    """Hit rate, fill rate per field and credits per filled field by provider; a switch
    recommendation when another order or provider set saves more than ``min_saving``.

    Args:
        since: stats of runs updated at or after this moment count.
        min_lookups: providers with fewer real lookups are reported but not estimated.
    """
    if isinstance(since, dt.date) and not isinstance(since, dt.datetime):
        since = dt.datetime.combine(since, dt.time(), tzinfo=dt.UTC)
    s = t.enrichment_stats.c
    with engine.connect() as conn:
        rows = conn.execute(
            select(
                s.provider,
                s.field,
                func.sum(s.lookups).label("lookups"),
                func.sum(s.hits).label("hits"),
                func.sum(s.requested).label("requested"),
                func.sum(s.filled).label("filled"),
                func.sum(s.credits).label("credits"),
            )
            .where(s.client_id == cfg.client_id, s.updated_at >= since)
            .group_by(s.provider, s.field)
        ).all()
    configured = [p.name for p in cfg.enrichment.providers]
    prices = {
        p.name: float((p.options.get("costs") or {}).get("company", p.cost_per_call))
        for p in cfg.enrichment.providers
    }
    providers: dict[str, dict] = {}
    for r in rows:
        p = providers.setdefault(
            r.provider, {"lookups": 0, "hits": 0, "credits": 0.0, "fields": {}, "fills": 0}
        )
        if r.field == "*":
            p.update(lookups=int(r.lookups), hits=int(r.hits), credits=float(r.credits))
        else:
            req, filled = int(r.requested), int(r.filled)
            p["fields"][r.field] = {
                "requested": req,
                "filled": filled,
                "fill_rate": round(filled / req, 4) if req else None,
            }
            p["fills"] += filled
    report = []
    for name in configured + sorted(set(providers) - set(configured)):
        p = providers.get(name, {"lookups": 0, "hits": 0, "credits": 0.0, "fields": {}, "fills": 0})
        report.append(
            {
                "provider": name,
                "price_per_lookup": prices.get(name),
                "lookups": p["lookups"],
                "hit_rate": round(p["hits"] / p["lookups"], 4) if p["lookups"] else None,
                "credits": round(p["credits"], 4),
                "fields_filled": p["fills"],
                "credits_per_filled_field": round(p["credits"] / p["fills"], 4) if p["fills"] else None,
                "fields": p["fields"],
            }
        )

    measured = [n for n in configured if providers.get(n, {}).get("lookups", 0) >= min_lookups]
    out = {
        "client_id": cfg.client_id,
        "since": since.isoformat(),
        "providers": report,
        "current_order": configured,
        "recommend": False,
        "recommendation": None,
        "method": (
            "expected credits per account of each provider order and subset, from measured price and "
            "per-field fill rates, assuming independence; same fill rate = within "
            f"{fill_tolerance:.0%} per field"
        ),
    }
    if len(measured) < 1:
        out["recommendation"] = f"not enough data (fewer than {min_lookups} lookups per provider)"
        return out
    rate = {
        n: {f: (v["fill_rate"] or 0.0) for f, v in providers[n]["fields"].items() if v["requested"]}
        for n in measured
    }
    asked: dict[str, int] = {}
    first = measured[0]
    for f, v in providers[first]["fields"].items():
        asked[f] = v["requested"]
    for n in measured[1:]:
        for f, v in providers[n]["fields"].items():
            asked.setdefault(f, v["requested"])
    top = max(asked.values()) if asked else 0
    mix = {f: n / top for f, n in asked.items()} if top else {}
    if not mix:
        out["recommendation"] = "no field requests recorded"
        return out
    price = {n: prices.get(n) or 0.0 for n in measured}
    current_cost, current_fill = _estimate(measured, price, rate, mix)
    best = (current_cost, measured, current_fill)
    for k in range(1, len(measured) + 1):
        for subset in itertools.combinations(measured, k):
            for order in itertools.permutations(subset) if len(subset) <= 6 else [subset]:
                cost, fill = _estimate(list(order), price, rate, mix)
                if all(fill[f] >= current_fill[f] - fill_tolerance for f in mix) and cost < best[0] - 1e-12:
                    best = (cost, list(order), fill)
    saving = 1 - best[0] / current_cost if current_cost else 0.0
    out.update(
        estimated_credits_per_account={"current": round(current_cost, 4), "best": round(best[0], 4)},
        estimated_fill_rate={
            "current": {f: round(v, 4) for f, v in current_fill.items()},
            "best": {f: round(v, 4) for f, v in best[2].items()},
        },
        best_order=best[1],
        saving_share=round(saving, 4),
    )
    if saving > min_saving:
        dropped = [n for n in measured if n not in best[1]]
        change = f"order {' -> '.join(best[1])}" + (f" (drop {', '.join(dropped)})" if dropped else "")
        out["recommend"] = True
        out["recommendation"] = (
            f"switch to {change}: about {saving:.0%} fewer credits per account "
            f"({current_cost:.2f} -> {best[0]:.2f}) at the same fill rate"
        )
    else:
        out["recommendation"] = (
            f"keep the current order (best alternative saves {saving:.0%}, threshold {min_saving:.0%})"
        )
    return out

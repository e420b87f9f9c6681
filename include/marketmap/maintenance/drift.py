"""The weekly drift check (T3 winning more than T1, lift, cycle) and the refinement check-ins."""

from __future__ import annotations

from marketmap.maintenance.run import MaintenanceRun, Outcome


def closed_deals(r: MaintenanceRun):
    """Closed deals with the tier of their account (first product); with the opportunity-created
    outcome (``maintenance.outcome``), opportunities created, with the tiers' account counts."""
    from marketmap.analysis.drift import closed_deals_by_tier
    from marketmap.scoring.pipeline import read_opportunities

    return closed_deals_by_tier(
        read_opportunities(r.engine, r.cfg.client_id), r.primary_scores()[["account_key", "tier"]],
        r.cfg.maintenance.outcome,
    )


def drift_check(r: MaintenanceRun) -> Outcome:
    """Closed won/lost by tier over trailing windows; drift alerts only with enough deals and a significant test."""
    from marketmap.analysis.drift import drift_alerts
    from marketmap.reports import segments

    # the segment report the drift alerts tell leaders to read
    seg = segments.write(r.cfg, r.engine, r.run_id, r.report_dir())
    alerts, rules, summary = drift_alerts(r.cfg, closed_deals(r), r.as_of, seg)
    r.write_json("drift.json", {**summary, "segment_report": seg})
    return Outcome({"holding": sum(a.holding for a in alerts), "segment_report": seg}, alerts, set(rules), seg)


def refinement_checkins(r: MaintenanceRun) -> Outcome:
    """Reminders 2 weeks before the ~90-day check-in and each twice-yearly ICP validation review, with numbers."""
    from marketmap.analysis.checkins import RULES, checkin_alerts
    from marketmap.analysis.drift import tier_rates, window

    deals = closed_deals(r)
    totals = deals.attrs.get("tier_totals")
    rates = tier_rates(window(deals, r.as_of, 180), r.cfg.maintenance.confidence, totals)
    if totals is None:
        numbers = {f"{t.lower()}_win_rate_180d": v["win_rate"] for t, v in rates.items()}
        numbers |= {f"{t.lower()}_closed_180d": v["closed"] for t, v in rates.items()}
    else:  # maintenance.outcome: opportunity_created
        numbers = {f"{t.lower()}_opportunity_created_rate_180d": v["win_rate"] for t, v in rates.items()}
        numbers |= {f"{t.lower()}_accounts_with_opportunity_180d": v["won"] for t, v in rates.items()}
    scores = r.primary_scores()
    numbers |= {f"{t.lower()}_accounts": int((scores["tier"] == t).sum()) for t in ("T1", "T2", "T3")}
    numbers["total_valuation"] = round(float(scores["valuation"].fillna(0).sum()), 2)
    return Outcome({}, checkin_alerts(r.cfg, r.as_of, numbers), set(RULES))

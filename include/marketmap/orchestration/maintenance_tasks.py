"""Task callables of the maintenance DAGs: monthly, quarterly personas, drift, valuation, territories.

Thin calls into the marketmap package; heavy imports inside the tasks. Every decision
uses the run's clock (logical date and data interval, in the client's timezone), never
``now()``, so a re-run of an interval computes, writes and sends nothing new: the alert
store remembers what was sent, scores and pushes are diff-based.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from airflow.sdk import get_current_context, task

from marketmap import csvsafe


class _Run:
    """What a task needs about its run: config (with any applied calibration), warehouse, clock."""

    def __init__(self, client_id: str, pipeline: str):
        from marketmap.analysis.valuation_drift import effective_config
        from marketmap.config import load_client
        from marketmap.orchestration.resources import run_clock, warehouse

        ctx = get_current_context()
        self.base_cfg = load_client(client_id)
        self.engine = warehouse(self.base_cfg)
        self.cfg = effective_config(self.base_cfg, self.engine)
        self.pipeline = pipeline
        self.run_id: str = ctx["run_id"]
        self.dag_id: str = ctx["dag"].dag_id
        self.params: dict = dict(ctx.get("params") or {})
        start, end = run_clock(ctx)
        self.now: dt.datetime = end
        self.start: dt.datetime = start
        self.as_of: dt.date = end.astimezone(self.cfg.tz).date()

    def report_dir(self):
        """The run's report folder (``<storage root>/reports/<client>/<run_id>/``, created), which
        the portfolio app serves: alerts link to the page, never to the file."""
        from marketmap.reports.render import report_dir

        d = report_dir(self.cfg.client_id, self.run_id)
        d.mkdir(parents=True, exist_ok=True)
        return d

    def url(self, report: str | None) -> str | None:
        """The portfolio address of a file of this run's report folder (a URL stays as it is)."""
        from pathlib import Path

        from marketmap.reports.render import file_url

        if not report or str(report).startswith(("http://", "https://")):
            return report
        return file_url(self.cfg.client_id, self.run_id, Path(report).name)

    def alerts(self, candidates: list, rules: set[str] | tuple, report: str | None = None) -> dict:
        from marketmap.orchestration.alerting import send_alerts

        for a in candidates:
            a.report = self.url(a.report)
        return send_alerts(self.cfg, self.engine, self.dag_id, self.run_id, self.now, candidates, rules,
                           self.url(report))  # fmt: skip


def _write_json(path, data: Any) -> str:
    path.write_text(json.dumps(data, indent=2, default=str), encoding="utf-8")
    return str(path)


def _primary_scores(r: _Run):
    from marketmap.scoring.pipeline import read_scores, rubric_version

    return read_scores(r.engine, r.cfg.client_id, rubric_version(r.cfg), r.cfg.icp.rubrics[0].product)


def _crm_adapter(r: _Run):
    from marketmap.crm import adapter_for

    return adapter_for(r.base_cfg)


# --------------------------------------------------------------------------- monthly


def _inbox_has_export(cfg) -> bool:
    from marketmap.settings import inbox_dir

    return (inbox_dir(cfg.client_id) / cfg.crm.export.accounts).exists()


@task(multiple_outputs=False)  # one small summary dict per task
def extract_changes(client_id: str) -> dict:
    """Incremental CRM extract: accounts, contacts and deals created or changed in the data interval."""
    from marketmap.crm import extract

    r = _Run(client_id, "monthly")
    if r.cfg.crm.kind == "csv" and not _inbox_has_export(r.cfg):
        out: dict = {"mode": "skipped", "reason": "no CRM export in the inbox this month"}
    else:
        out = extract(r.base_cfg, r.engine, r.run_id, _crm_adapter(r), since=r.start, until=r.now)
    from marketmap.analysis.owners import record_owner_changes

    out["owner_changes"] = record_owner_changes(r.engine, r.cfg.client_id, r.run_id, r.now)
    print(json.dumps(out, default=str)[:2000])
    return {"mode": out.get("mode"), "owner_changes": out["owner_changes"]}


@task(multiple_outputs=False)  # one small summary dict per task
def enrich_gaps(client_id: str) -> dict:
    """Enrich only missing fields of accounts that could still reach the minimum tier, within the budget."""
    from marketmap.enrichment import plan_account_enrichment, providers_for, run_account_enrichment

    r = _Run(client_id, "monthly")
    if not r.cfg.enrichment.providers:
        return {"skipped": "no enrichment providers configured"}
    plan = plan_account_enrichment(r.cfg, r.engine, r.as_of, now=r.now)
    if not plan.needs:
        return {"accounts_to_enrich": 0}
    from marketmap.enrichment.reports import RUN_RULES, run_alert_candidates

    result = run_account_enrichment(r.cfg, r.engine, r.run_id, plan, providers_for(r.cfg), now=r.now)
    sent = r.alerts(run_alert_candidates(r.cfg, result.alerts), RUN_RULES)
    return {"plan": plan.summary(), **result.summary(), "alerts_fired": sent["fired"]}


@task(multiple_outputs=False)  # one small summary dict per task
def score_changes(client_id: str) -> dict:
    """Re-score, re-value and re-score contacts; only rows that changed are written."""
    from marketmap.scoring.pipeline import score_accounts, score_contacts, value_accounts

    r = _Run(client_id, "monthly")
    s = score_accounts(r.cfg, r.engine, r.run_id, r.as_of)
    v = value_accounts(r.cfg, r.engine, r.run_id)
    c = score_contacts(r.cfg, r.engine, r.run_id, r.as_of)
    return {"scores_written": s["written"], "values_written": v["written"], "contacts_written": c["written"]}


def credit_alerts(cfg, engine, month: str, now: dt.datetime) -> tuple[list, dict]:
    """Burn vs budget (from the enrichment burn report) plus the runaway checks of the monthly monitor."""
    import pandas as pd
    from sqlalchemy import select

    from marketmap.alerts.rules import Alert
    from marketmap.enrichment import burn_report
    from marketmap.warehouse import schema as t

    rep = burn_report(cfg, engine, month, now=now)
    alerts = []
    for a in rep["alerts"]:
        key = a["numbers"].get("run_id", "") if a["rule"] == "runaway_enrichment" else ""
        alerts.append(Alert(client_id=cfg.client_id, rule=a["rule"], role="revops", severity=a["severity"],
                            key=key, title=a["title"], numbers=a["numbers"],
                            material={k: v for k, v in a["numbers"].items() if k in ("spent", "credits")},
                            confidence="exact: from the credit ledger"))  # fmt: skip
    c = t.credit_ledger.c
    with engine.connect() as conn:
        led = pd.read_sql(select(c.account_key, c.provider, c.credits, c.month, c.outcome)
                          .where(c.client_id == cfg.client_id, c.credits > 0), conn)  # fmt: skip
    cur = led[led["month"] == month]
    paid = cur[cur["account_key"].notna() & (cur["outcome"] != "reserved")]
    twice = paid.groupby(["account_key", "provider"]).size()
    twice = twice[twice > 1]
    if len(twice):
        alerts.append(Alert(client_id=cfg.client_id, rule="duplicate_charges", role="revops", severity="warning",
                            title=f"{len(twice):,} accounts were paid for more than once by the same provider in {month}",
                            numbers={"accounts": len(twice), "month": month,
                                     "examples": [f"{k} ({p})" for k, p in list(twice.index)[:3]]},
                            material={"accounts": len(twice)}, confidence="exact: from the credit ledger"))  # fmt: skip
    per_account = (
        led[led["account_key"].notna()]
        .groupby("month")
        .agg(credits=("credits", "sum"), accounts=("account_key", "nunique"))
    )
    per_account = per_account["credits"] / per_account["accounts"]
    prior = per_account[per_account.index < month].tail(3)
    if month in per_account.index and len(prior) >= 2 and per_account[month] > 2 * prior.mean():
        alerts.append(Alert(client_id=cfg.client_id, rule="credits_per_account_jump", role="revops",
                            title=f"Credits per enriched account jumped to {per_account[month]:.1f} in {month} "
                                  f"(previous months {prior.mean():.1f})",
                            numbers={"month": month, "credits_per_account": round(float(per_account[month]), 2),
                                     "previous_average": round(float(prior.mean()), 2)},
                            material={"credits_per_account": round(float(per_account[month]), 2)},
                            confidence="exact: from the credit ledger; alert above 2x the previous 3 months"))  # fmt: skip
    rules = {"credit_burn_above_pace", "runaway_enrichment", "duplicate_charges", "credits_per_account_jump"}
    return alerts, {
        "burn": {k: rep[k] for k in ("month", "budget", "spent", "over_pace", "over_budget")},
        "rules": rules,
    }


@task(multiple_outputs=False)  # one small summary dict per task
def credit_burn_monitor(client_id: str) -> dict:
    """Credits of the month just ended against the budget; runaway runs, double charges, jumps per account."""
    r = _Run(client_id, "monthly")
    month = r.start.astimezone(r.cfg.tz).strftime("%Y-%m")
    alerts, summary = credit_alerts(r.cfg, r.engine, month, r.now)
    path = _write_json(r.report_dir() / "credit_burn.json", summary["burn"])
    sent = r.alerts(alerts, summary["rules"], path)
    return {**summary["burn"], "fired": sent["fired"], "resolved": sent["resolved"]}


@task(multiple_outputs=False)  # one small summary dict per task
def data_quality_audit(client_id: str) -> dict:
    """Duplicates, un-normalised domains, blank tier/valuation, rejected picklist values, untiered new accounts."""
    from marketmap.analysis.audit import RULES, audit

    r = _Run(client_id, "monthly")
    path = str(r.report_dir() / "data_quality.json")
    alerts, summary = audit(r.cfg, r.engine, r.as_of, path)
    _write_json(r.report_dir() / "data_quality.json", summary)
    sent = r.alerts(alerts, RULES, path)
    return {"problems": [a.rule for a in alerts], "fired": sent["fired"], "resolved": sent["resolved"]}


@task(multiple_outputs=False)  # one small summary dict per task
def prune_history(client_id: str) -> dict:
    """Retention: old push logs, superseded score versions, stale cache entries, old alert events."""
    from marketmap.warehouse.retention import prune

    r = _Run(client_id, "monthly")
    return prune(r.engine, r.cfg, r.now)


@task(multiple_outputs=False)  # one small summary dict per task
def stale_account_round_robin(client_id: str) -> dict:
    """Optional (param stale_round_robin): accounts with the same rep for 6+ months and no progress -> a stored proposal."""
    from marketmap.alerts.rules import Alert
    from marketmap.analysis.audit import stale_accounts
    from marketmap.analysis.owners import owner_since
    from marketmap.analysis.proposals import store_proposal
    from marketmap.analysis.territories import rep_sets
    from marketmap.scoring.pipeline import read_accounts, read_opportunities, read_reps

    r = _Run(client_id, "monthly")
    if not r.params.get("stale_round_robin", False):
        return {"skipped": "param stale_round_robin is false"}
    cid = r.cfg.client_id
    active, _ = rep_sets(r.cfg, read_reps(r.engine, cid))
    stale = stale_accounts(r.cfg, read_accounts(r.engine, cid), read_opportunities(r.engine, cid),
                           owner_since(r.engine, cid), active, r.as_of)  # fmt: skip
    moves = [{"account_key": k, "from_rep": o, "to_rep": p, "reason": f"same rep since {s}"}
             for k, o, p, s in stale[["account_key", "owner_id", "proposed_owner", "owner_since"]].itertuples(index=False)]  # fmt: skip
    pid = store_proposal(r.engine, cid, "stale", r.run_id, r.now, r.as_of, moves, {"accounts": len(stale)})
    path = r.report_dir() / "stale_accounts_round_robin.csv"
    with path.open("w", newline="", encoding="utf-8") as fh:  # the report folder lives in storage
        csvsafe.safe_frame(stale.assign(proposal_id=pid)).to_csv(fh, index=False)
    alerts = []
    if len(stale):
        alerts.append(Alert(client_id=cid, rule="stale_accounts", role="revops", severity="info",
                            title=f"{len(stale):,} accounts have had the same rep for {r.cfg.maintenance.stale_owner_months}+ "
                                  f"months with no progress: round-robin reassignment proposed ({pid})",
                            numbers={"accounts": len(stale), "proposal": pid}, material={"accounts": len(stale)},
                            report=str(path), confidence="exact: owner history (or CRM creation date) and opportunities",
                            next_steps=["Review the proposal (CSV) with the reps' managers.",
                                        f"Apply exactly this proposal with a manual run of the monthly DAG with "
                                        f"`approve_stale={pid}` (owners are pushed to the CRM)."]))  # fmt: skip
    sent = r.alerts(alerts, {"stale_accounts"}, str(path))
    return {"stale": len(stale), "proposal_id": pid, "fired": sent["fired"]}


@task(multiple_outputs=False)  # one small summary dict per task
def apply_stale_proposal(client_id: str) -> dict:
    """Only with param approve_stale=<proposal id>: apply exactly that stored stale-account proposal."""
    return _apply_proposal(_Run(client_id, "monthly"), "stale", "approve_stale")


# --------------------------------------------------------------------------- quarterly personas


def _coverage(r: _Run) -> tuple[dict, list[str]]:
    """Coverage summary and the T1 gap accounts (< t1_min_contacts, no outreach, or missing seniority levels)."""
    import pandas as pd
    from sqlalchemy import select

    from marketmap.scoring.personas import coverage, coverage_summary
    from marketmap.scoring.pipeline import persona_version, read_opportunities
    from marketmap.warehouse import schema as t

    cid, m = r.cfg.client_id, r.cfg.maintenance
    tiers = _primary_scores(r)[["account_key", "tier"]]
    cs = t.contact_scores.c
    with r.engine.connect() as conn:
        contacts = pd.read_sql(select(cs.contact_key, cs.account_key, cs.persona_tier, cs.seniority)
                               .where(cs.client_id == cid, cs.rubric_version == persona_version(r.cfg)), conn)  # fmt: skip
    cov = coverage(contacts, tiers, r.cfg.personas.coverage_targets)
    summary = coverage_summary(cov, m.persona_p1_coverage_min, m.t1_min_contacts)
    opps = read_opportunities(r.engine, cid)
    since = pd.Timestamp(r.as_of - dt.timedelta(days=90), tz="UTC")
    touched = set()
    if len(opps):
        created = pd.to_datetime(opps["created_date"], utc=True, errors="coerce")
        touched = set(
            opps.loc[(created >= since) | ~opps["is_closed"].fillna(False).astype(bool), "account_key"]
        )
    t1 = cov[cov["tier"] == "T1"]
    few = t1[(t1["contacts"] < m.t1_min_contacts) & ~t1["account_key"].isin(touched)]["account_key"]
    levels = {"c-level", "vp", "director", "manager"}
    have = (
        contacts.assign(s=contacts["seniority"].astype(object).str.lower())
        .groupby("account_key")["s"]
        .agg(set)
    )
    missing = [k for k in t1["account_key"] if len(levels - have.get(k, set())) >= 2]
    gaps = sorted(set(few) | set(missing))
    summary["gap_accounts"] = len(gaps)
    summary["t1_missing_seniority_levels"] = len(missing)
    summary["t1_few_contacts_no_outreach"] = int(len(few))
    return summary, gaps


@task(multiple_outputs=False)  # one small summary dict per task
def coverage_gap_report(client_id: str) -> dict:
    """Persona coverage before enrichment: T1 accounts under 4 contacts with no outreach, missing seniority levels."""
    r = _Run(client_id, "quarterly_personas")
    summary, gaps = _coverage(r)
    _write_json(r.report_dir() / "coverage_before.json", {**summary, "gaps": gaps})
    # Only counts go through XCom: the next task recomputes the full gap list from the warehouse.
    return {k: summary[k] for k in ("t1_accounts", "t1_with_p1", "t1_p1_share", "gap_accounts")}


@task(multiple_outputs=False)  # one small summary dict per task
def enrich_gap_personas(client_id: str, before: dict) -> dict:
    """Find personas at the gap accounts only (T1 first, signals first), deduplicated by e-mail and LinkedIn."""
    from marketmap.enrichment import account_tiers, enrich_personas, providers_for
    from marketmap.scoring.pipeline import score_contacts

    r = _Run(client_id, "quarterly_personas")
    gaps = set(_coverage(r)[1])  # every gap account, never a truncated list
    if not r.cfg.enrichment.providers or not gaps:
        return {"skipped": "no providers configured" if gaps else "no gap accounts"}
    tiers = account_tiers(r.cfg, r.engine)
    out = enrich_personas(
        r.cfg, r.engine, r.run_id, providers_for(r.cfg), tiers[tiers["account_key"].isin(gaps)]
    )
    score_contacts(r.cfg, r.engine, r.run_id, r.as_of)
    return json.loads(json.dumps(out, default=str))


@task(multiple_outputs=False)  # one small summary dict per task
def coverage_after_and_alerts(client_id: str, before: dict, enriched: dict | None = None) -> dict:
    """Coverage after enrichment; alert when under 50% of T1 accounts have a Tier-1 persona; provider optimisation."""
    from marketmap.alerts.rules import Alert
    from marketmap.enrichment import optimisation_report

    r = _Run(client_id, "quarterly_personas")
    after, _ = _coverage(r)
    opt = optimisation_report(r.cfg, r.engine, r.as_of - dt.timedelta(days=92))
    path = _write_json(
        r.report_dir() / "coverage_after.json",
        {"before": {k: v for k, v in before.items() if k != "gaps"}, "after": after, "providers": opt},
    )
    m, alerts = r.cfg.maintenance, []
    share = after["t1_p1_share"]
    enriched = enriched or {}
    added = int(enriched.get("contacts_added") or 0)
    done = (f"{added:,} contacts added at {before.get('gap_accounts', 0):,} gap accounts" if added
            else f"no contacts added ({enriched.get('skipped') or enriched.get('note') or 'no provider found any'})")  # fmt: skip
    if share is not None and share < m.persona_p1_coverage_min:
        alerts.append(Alert(client_id=r.cfg.client_id, rule="persona_coverage_low", role="revops", report=path,
                            title=f"Only {share:.0%} of T1 accounts have a Tier-1 persona (minimum "
                                  f"{m.persona_p1_coverage_min:.0%}); this quarter's refresh: {done}",
                            numbers={"t1_accounts": after["t1_accounts"], "t1_with_p1": after["t1_with_p1"],
                                     "share_before": before.get("t1_p1_share"), "share_after": share,
                                     "gap_accounts": before.get("gap_accounts"), "contacts_added": added},
                            material={"share": share}, confidence="exact: counted over every T1 account"))  # fmt: skip
    if opt.get("recommend"):
        alerts.append(Alert(client_id=r.cfg.client_id, rule="provider_switch", role="revops", severity="info",
                            report=path, title=f"Provider optimisation: {opt['recommendation']}",
                            numbers={"saving_share": opt.get("saving_share"), "best_order": opt.get("best_order")},
                            material={"saving_share": opt.get("saving_share") or 0},
                            confidence=opt.get("method")))  # fmt: skip
    sent = r.alerts(alerts, {"persona_coverage_low", "provider_switch"}, path)
    return {"before": before.get("t1_p1_share"), "after": share, "fired": sent["fired"], "report": path}


# --------------------------------------------------------------------------- drift and check-ins


def _drift(r: _Run):
    from marketmap.analysis.drift import closed_deals_by_tier
    from marketmap.scoring.pipeline import read_opportunities

    return closed_deals_by_tier(
        read_opportunities(r.engine, r.cfg.client_id), _primary_scores(r)[["account_key", "tier"]]
    )


@task(multiple_outputs=False)  # one small summary dict per task
def drift_check(client_id: str) -> dict:
    """Closed won/lost by tier over trailing windows; drift alerts only with enough deals and a significant test."""
    from marketmap.analysis.drift import drift_alerts
    from marketmap.reports import segments

    r = _Run(client_id, "drift")
    # the segment report the drift alerts tell leaders to read
    seg = segments.write(r.cfg, r.engine, r.run_id, r.report_dir())
    alerts, rules, summary = drift_alerts(r.cfg, _drift(r), r.as_of, seg)
    _write_json(r.report_dir() / "drift.json", {**summary, "segment_report": seg})
    sent = r.alerts(alerts, rules, seg)
    return {"fired": sent["fired"], "resolved": sent["resolved"], "holding": sum(a.holding for a in alerts),
            "segment_report": seg}  # fmt: skip


@task(multiple_outputs=False)  # one small summary dict per task
def refinement_checkins(client_id: str) -> dict:
    """Reminders 2 weeks before the ~90-day check-in and each twice-yearly ICP validation review, with numbers."""
    from marketmap.analysis.checkins import RULES, checkin_alerts
    from marketmap.analysis.drift import tier_rates, window

    r = _Run(client_id, "drift")
    rates = tier_rates(window(_drift(r), r.as_of, 180), r.cfg.maintenance.confidence)
    numbers = {f"{t.lower()}_win_rate_180d": v["win_rate"] for t, v in rates.items()}
    numbers |= {f"{t.lower()}_closed_180d": v["closed"] for t, v in rates.items()}
    scores = _primary_scores(r)
    numbers |= {f"{t.lower()}_accounts": int((scores["tier"] == t).sum()) for t in ("T1", "T2", "T3")}
    numbers["total_valuation"] = round(float(scores["valuation"].fillna(0).sum()), 2)
    alerts = checkin_alerts(r.cfg, r.as_of, numbers)
    sent = r.alerts(alerts, RULES)
    return {"fired": sent["fired"]}


# --------------------------------------------------------------------------- valuation


@task(multiple_outputs=False)  # one small summary dict per task
def apply_valuation(client_id: str) -> dict:
    """Only with param apply_valuation: apply the refitted coefficients and re-score (recorded in runs)."""
    from marketmap.analysis.valuation_drift import (
        effective_config,
        record_calibration,
        valuation_report,
        won_vs_valuation,
    )
    from marketmap.scoring.pipeline import score_accounts, value_accounts

    r = _Run(client_id, "valuation")
    if not r.params.get("apply_valuation", False):
        return {"applied": False, "reason": "param apply_valuation is false"}
    report = valuation_report(r.cfg, won_vs_valuation(r.cfg, r.engine, r.as_of))
    if not report.get("proposal"):
        return {"applied": False, "reason": "no won deals or no coefficient method to refit"}
    summary = record_calibration(r.engine, r.cfg, r.run_id, r.now, report)
    cfg = effective_config(r.base_cfg, r.engine)
    s = score_accounts(cfg, r.engine, r.run_id, r.as_of)
    v = value_accounts(cfg, r.engine, r.run_id)
    return {"applied": True, **summary, "scores_written": s["written"], "values_written": v["written"]}


@task(multiple_outputs=False)  # one small summary dict per task
def valuation_check(client_id: str) -> dict:
    """Won deal value vs valuation at the time: median abs % error and bias, overall and by tier; refit proposal."""
    from marketmap.analysis.valuation_drift import (
        last_calibration,
        valuation_alerts,
        valuation_report,
        won_vs_valuation,
    )

    r = _Run(client_id, "valuation")
    # after an applied calibration: the new coefficients, measured on deals closed since
    cal = last_calibration(r.engine, r.cfg.client_id)
    report = valuation_report(r.cfg, won_vs_valuation(r.cfg, r.engine, r.as_of), cal)
    from marketmap.reports import segments

    report["segment_report"] = segments.write(r.cfg, r.engine, r.run_id, r.report_dir())
    path = _write_json(r.report_dir() / "valuation.json", report)
    sent = r.alerts(valuation_alerts(r.cfg, report, path), {"valuation_divergence"}, path)
    return {"deals": report.get("deals", 0), "mdape": report.get("mdape"), "fired": sent["fired"],
            "resolved": sent["resolved"]}  # fmt: skip


# --------------------------------------------------------------------------- territories


def _territories(r: _Run):
    """(frame, active reps, reps who left, context, proposal): context has names, ownership, values."""
    import pandas as pd
    from sqlalchemy import select

    from marketmap.analysis.territories import (
        basis_values,
        ownership,
        rebalance,
        rep_names,
        rep_sets,
        territory_frame,
    )
    from marketmap.scoring.pipeline import read_accounts, read_opportunities
    from marketmap.warehouse import schema as t

    with r.engine.connect() as conn:
        reps = pd.read_sql(select(t.reps).where(t.reps.c.client_id == r.cfg.client_id), conn)
    accounts, scores = read_accounts(r.engine, r.cfg.client_id), _primary_scores(r)
    opps = read_opportunities(r.engine, r.cfg.client_id)
    frame = territory_frame(r.cfg, accounts, scores)
    active, left = rep_sets(r.cfg, reps)
    context = {"names": rep_names(r.cfg, reps), "owners": ownership(accounts, scores, opps),
               "values": basis_values(r.cfg, frame, opps, active, r.as_of)}  # fmt: skip
    return frame, active, left, context, rebalance(frame, active, r.cfg.maintenance.territory_band, left)


def _store_rebalance(r: _Run, rb) -> str | None:
    """Store the rebalancing proposal with an id (approve_rebalance names it)."""
    import dataclasses

    from marketmap.analysis.proposals import store_proposal

    moves = [dataclasses.asdict(m) for m in rb.moves]
    return store_proposal(r.engine, r.cfg.client_id, "rebalance", r.run_id, r.now, r.as_of, moves,
                          {"before": rb.stats_before, "after": rb.stats_after})  # fmt: skip


def _apply_proposal(r: _Run, kind: str, param: str) -> dict:
    """Apply exactly the stored proposal the param names (warehouse owners), once; the CRM write group
    that follows pushes the new owners. Without the param nothing is applied and the group makes no call."""
    from marketmap.analysis.proposals import apply_proposal, pending_owner_pushes

    pid = str(r.params.get(param) or "").strip()
    if not pid or pid.lower() in ("false", "none"):
        return {"applied": False, "reason": f"param {param} names no proposal"}
    out = apply_proposal(r.engine, r.cfg.client_id, pid, kind, r.run_id, r.now)
    out["pending_crm_writes"] = len(pending_owner_pushes(r.engine, r.cfg.client_id))
    print(json.dumps(out, default=str)[:2000])
    # "applied" opens the CRM write group: also on a retry that moved nothing new, so the owners
    # the CRM has not confirmed yet are pushed
    return {**out, "applied": True, "skipped": len(out["skipped"])}


@task(multiple_outputs=False)  # one small summary dict per task
def apply_rebalance(client_id: str) -> dict:
    """Only with param approve_rebalance=<proposal id>: apply exactly that stored proposal to the warehouse owners."""
    return _apply_proposal(_Run(client_id, "territories"), "rebalance", "approve_rebalance")


@task(multiple_outputs=False)  # one small summary dict per task
def territory_check(client_id: str) -> dict:
    """Territory value per rep; ownership, imbalance and departed-rep alerts with a minimal-move proposal (CSV)."""
    import dataclasses

    import pandas as pd

    from marketmap.analysis.territories import territory_alerts

    r = _Run(client_id, "territories")
    frame, active, left, ctx, rb = _territories(r)
    pid = _store_rebalance(r, rb)
    names = ctx["names"]
    d = r.report_dir()
    csv_path = d / "rebalance_proposal.csv"
    moves = pd.DataFrame([dataclasses.asdict(m) for m in rb.moves],
                         columns=["account_key", "from_rep", "to_rep", "value", "tier", "reason"])  # fmt: skip
    moves.insert(2, "from_rep_name", moves["from_rep"].map(lambda x: names.get(x, x)))
    moves.insert(4, "to_rep_name", moves["to_rep"].map(lambda x: names.get(x, x)))
    with csv_path.open("w", newline="", encoding="utf-8") as fh:  # the report folder lives in storage
        moves.assign(proposal_id=pid).pipe(csvsafe.safe_frame).to_csv(fh, index=False)
    alerts, checked = territory_alerts(r.cfg, frame, active, left, str(csv_path), names=names,
                                       values=ctx["values"], owners=ctx["owners"], proposal=rb)  # fmt: skip
    summary = {"basis": r.cfg.maintenance.territory_value, "values_by_basis": ctx["values"],
               "balance_reported": checked["balance_reported"], "unavailable": checked["unavailable"],
               "ownership": ctx["owners"], "before": rb.stats_before, "after": rb.stats_after, "moves": len(rb.moves),
               "target_reachable": rb.reachable, "unreachable_reason": rb.reason, "goal_used": rb.goal_used,
               "proposal_id": pid,
               "values_before": rb.before, "values_after": rb.after, "t1_before": rb.t1_before,
               "t1_after": rb.t1_after, "proposal_csv": str(csv_path), "reps_left": sorted(left),
               "rep_names": {k: names.get(k, k) for k in sorted(set(active) | set(left))}}  # fmt: skip
    _write_json(d / "rebalance_summary.json", summary)
    for a in alerts:
        if a.rule in ("territory_imbalance", "inactive_rep_owns_accounts") and not a.cleared:
            a.numbers |= {"proposal": pid}
            if pid:
                a.next_steps = [*a.steps()[:1], f"Apply exactly this proposal with a manual run of the territories DAG "
                                                f"with `approve_rebalance={pid}` (owners are pushed to the CRM)."]  # fmt: skip
    rules = {"territory_imbalance", "inactive_rep_owns_accounts", "territory_ownership_unclear",
             "territory_check_unavailable"}  # fmt: skip
    sent = r.alerts(alerts, rules, str(csv_path))
    return {"moves": len(rb.moves), "ratio": rb.stats_before.get("ratio"), "fired": sent["fired"],
            "resolved": sent["resolved"], "balance_reported": checked["balance_reported"], "proposal_id": pid}  # fmt: skip

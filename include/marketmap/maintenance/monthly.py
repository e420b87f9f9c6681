"""The monthly run: incremental extract, gap enrichment, re-scoring, credit burn, data-quality audit,
retention, stale-account round robin, and applying an approved owner proposal."""

from __future__ import annotations

import datetime as dt
import json

from sqlalchemy import Engine

from marketmap import csvsafe
from marketmap.config import ClientConfig
from marketmap.maintenance.run import MaintenanceRun, Outcome


def _inbox_has_export(cfg: ClientConfig) -> bool:
    from marketmap.settings import inbox_dir

    return (inbox_dir(cfg.client_id) / cfg.crm.export.accounts).exists()


def extract_changes(r: MaintenanceRun) -> Outcome:
    """Accounts, contacts and deals created or changed in the data interval; owner changes recorded."""
    from marketmap.analysis.owners import record_owner_changes
    from marketmap.crm import adapter_for, extract

    if r.cfg.crm.kind == "csv" and not _inbox_has_export(r.cfg):
        out: dict = {"mode": "skipped", "reason": "no CRM export in the inbox this month"}
    else:
        out = extract(r.base_cfg, r.engine, r.run_id, adapter_for(r.base_cfg), since=r.start, until=r.now)
    out["owner_changes"] = record_owner_changes(r.engine, r.cfg.client_id, r.run_id, r.now)
    print(json.dumps(out, default=str)[:2000])
    return Outcome({"mode": out.get("mode"), "owner_changes": out["owner_changes"]})


def enrich_gaps(r: MaintenanceRun) -> Outcome:
    """Only missing fields of accounts that could still reach the minimum tier, within the budget."""
    from marketmap.enrichment import plan_account_enrichment, providers_for, run_account_enrichment
    from marketmap.enrichment.reports import RUN_RULES, run_alert_candidates

    if not r.cfg.enrichment.providers:
        return Outcome({"skipped": "no enrichment providers configured"})
    plan = plan_account_enrichment(r.cfg, r.engine, r.as_of, now=r.now)
    if not plan.needs:
        return Outcome({"accounts_to_enrich": 0})
    result = run_account_enrichment(r.cfg, r.engine, r.run_id, plan, providers_for(r.cfg), now=r.now)
    return Outcome({"plan": plan.summary(), **result.summary()}, run_alert_candidates(r.cfg, result.alerts),
                   set(RUN_RULES))  # fmt: skip


def score_changes(r: MaintenanceRun) -> Outcome:
    """Re-score, re-value and re-score contacts; only rows that changed are written, and only the
    accounts and contacts that can score differently since the last scoring are read."""
    from marketmap.scoring.pipeline import score_accounts, score_contacts, value_accounts

    s = score_accounts(r.cfg, r.engine, r.run_id, r.as_of, incremental=True)
    v = value_accounts(r.cfg, r.engine, r.run_id)
    c = score_contacts(r.cfg, r.engine, r.run_id, r.as_of, incremental=True)
    return Outcome({"accounts_rescored": s.get("rescored", s["accounts"]), "scores_written": s["written"],
                    "values_written": v["written"], "contacts_rescored": c.get("rescored", c.get("contacts", 0)),
                    "contacts_written": c["written"]})  # fmt: skip


CREDIT_RULES = {"credit_burn_above_pace", "runaway_enrichment", "duplicate_charges", "credits_per_account_jump"}


def credit_alerts(cfg: ClientConfig, engine: Engine, month: str, now: dt.datetime) -> tuple[list, dict]:
    """Burn vs budget (from the enrichment burn report) plus the runaway checks of the monthly monitor."""
    from sqlalchemy import select

    from marketmap.alerts.rules import Alert
    from marketmap.enrichment import burn_report
    from marketmap.warehouse import schema as t
    from marketmap.warehouse.queries import read_frame

    rep = burn_report(cfg, engine, month, now=now)
    alerts = []
    for a in rep["alerts"]:
        key = a["numbers"].get("run_id", "") if a["rule"] == "runaway_enrichment" else ""
        alerts.append(Alert(client_id=cfg.client_id, rule=a["rule"], role="revops", severity=a["severity"],
                            key=key, title=a["title"], numbers=a["numbers"],
                            material={k: v for k, v in a["numbers"].items() if k in ("spent", "credits")},
                            confidence="exact: from the credit ledger"))  # fmt: skip
    c = t.credit_ledger.c
    led = read_frame(engine, select(c.account_key, c.provider, c.credits, c.month, c.outcome)
                     .where(c.client_id == cfg.client_id, c.credits > 0))  # fmt: skip
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
    return alerts, {
        "burn": {k: rep[k] for k in ("month", "budget", "spent", "over_pace", "over_budget")},
        "rules": set(CREDIT_RULES),
    }


def credit_burn(r: MaintenanceRun) -> Outcome:
    """Credits of the month just ended against the budget; runaway runs, double charges, jumps per account."""
    month = r.start.astimezone(r.cfg.tz).strftime("%Y-%m")
    alerts, summary = credit_alerts(r.cfg, r.engine, month, r.now)
    path = r.write_json("credit_burn.json", summary["burn"])
    return Outcome(dict(summary["burn"]), alerts, summary["rules"], path)


def quality_audit(r: MaintenanceRun) -> Outcome:
    """Duplicates, un-normalised domains, blank tier/valuation, rejected picklist values, untiered new accounts."""
    from marketmap.analysis.audit import RULES, audit

    path = str(r.report_dir() / "data_quality.json")
    alerts, summary = audit(r.cfg, r.engine, r.as_of, path)
    r.write_json("data_quality.json", summary)
    return Outcome({"problems": [a.rule for a in alerts]}, alerts, set(RULES), path)


def prune_history(r: MaintenanceRun) -> Outcome:
    """Retention: old push logs, superseded score versions, stale cache entries, old alert events."""
    from marketmap.warehouse.retention import prune

    return Outcome(prune(r.engine, r.cfg, r.now))


def stale_round_robin(r: MaintenanceRun) -> Outcome:
    """Accounts with the same rep for 6+ months and no progress -> a stored round-robin proposal."""
    from marketmap.alerts.rules import Alert
    from marketmap.analysis.audit import stale_accounts
    from marketmap.analysis.owners import owner_since
    from marketmap.analysis.proposals import store_proposal
    from marketmap.analysis.territories import rep_sets
    from marketmap.scoring.pipeline import read_accounts, read_opportunities, read_reps

    if not r.params.get("stale_round_robin", False):
        return Outcome({"skipped": "param stale_round_robin is false"})
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
    return Outcome({"stale": len(stale), "proposal_id": pid}, alerts, {"stale_accounts"}, str(path))


def apply_proposal(r: MaintenanceRun, kind: str, param: str) -> Outcome:
    """Apply exactly the stored proposal the param names (warehouse owners), once; the CRM write group
    that follows pushes the new owners. Without the param nothing is applied and the group makes no call."""
    from marketmap.analysis.proposals import apply_proposal as apply
    from marketmap.analysis.proposals import pending_owner_pushes

    pid = str(r.params.get(param) or "").strip()
    if not pid or pid.lower() in ("false", "none"):
        return Outcome({"applied": False, "reason": f"param {param} names no proposal"})
    out = apply(r.engine, r.cfg.client_id, pid, kind, r.run_id, r.now)
    out["pending_crm_writes"] = len(pending_owner_pushes(r.engine, r.cfg.client_id))
    print(json.dumps(out, default=str)[:2000])
    # "applied" opens the CRM write group: also on a retry that moved nothing new, so the owners
    # the CRM has not confirmed yet are pushed
    return Outcome({**out, "applied": True, "skipped": len(out["skipped"])})

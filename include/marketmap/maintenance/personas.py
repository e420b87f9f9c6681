"""The quarterly persona refresh: coverage gaps at T1 accounts, people search there only, coverage after."""

from __future__ import annotations

import datetime as dt
import json

from marketmap.maintenance.run import MaintenanceRun, Outcome


def coverage(r: MaintenanceRun) -> tuple[dict, list[str]]:
    """Coverage summary and the T1 gap accounts (< t1_min_contacts, no outreach, or missing seniority levels)."""
    import pandas as pd
    from sqlalchemy import select

    from marketmap.scoring.personas import coverage as per_account
    from marketmap.scoring.personas import coverage_summary
    from marketmap.scoring.pipeline import persona_version, read_opportunities
    from marketmap.warehouse import schema as t
    from marketmap.warehouse.queries import read_frame

    cid, m = r.cfg.client_id, r.cfg.maintenance
    tiers = r.primary_scores()[["account_key", "tier"]]
    cs = t.contact_scores.c
    contacts = read_frame(r.engine, select(cs.contact_key, cs.account_key, cs.persona_tier, cs.seniority)
                          .where(cs.client_id == cid, cs.rubric_version == persona_version(r.cfg)))  # fmt: skip
    cov = per_account(contacts, tiers, r.cfg.personas.coverage_targets)
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


def gap_report(r: MaintenanceRun) -> Outcome:
    """Persona coverage before enrichment; only counts are returned (the next step recomputes the gaps)."""
    summary, gaps = coverage(r)
    r.write_json("coverage_before.json", {**summary, "gaps": gaps})
    return Outcome({k: summary[k] for k in ("t1_accounts", "t1_with_p1", "t1_p1_share", "gap_accounts")})


def enrich_gap_personas(r: MaintenanceRun) -> Outcome:
    """Find personas at the gap accounts only (T1 first, signals first), deduplicated by e-mail and LinkedIn."""
    from marketmap.enrichment import account_tiers, enrich_personas, providers_for
    from marketmap.scoring.pipeline import score_contacts

    gaps = set(coverage(r)[1])  # every gap account, never a truncated list
    if not r.cfg.enrichment.providers or not gaps:
        return Outcome({"skipped": "no providers configured" if gaps else "no gap accounts"})
    tiers = account_tiers(r.cfg, r.engine)
    out = enrich_personas(
        r.cfg, r.engine, r.run_id, providers_for(r.cfg), tiers[tiers["account_key"].isin(gaps)]
    )
    score_contacts(r.cfg, r.engine, r.run_id, r.as_of)
    return Outcome(json.loads(json.dumps(out, default=str)))


def coverage_after(r: MaintenanceRun, before: dict, enriched: dict | None = None) -> Outcome:
    """Coverage after enrichment; alert under the minimum share of T1 accounts with a Tier-1 persona
    (saying what this refresh actually did); provider optimisation."""
    from marketmap.alerts.rules import Alert
    from marketmap.enrichment import optimisation_report

    after, _ = coverage(r)
    opt = optimisation_report(r.cfg, r.engine, r.as_of - dt.timedelta(days=92))
    path = r.write_json(
        "coverage_after.json",
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
    return Outcome({"before": before.get("t1_p1_share"), "after": share, "report": path}, alerts,
                   {"persona_coverage_low", "provider_switch"}, path)  # fmt: skip

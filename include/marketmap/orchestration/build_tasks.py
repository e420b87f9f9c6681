"""Task callables of the ``<client>__build`` DAG: thin calls into the marketmap package.

Data moves through the warehouse; only small summaries (counts) go through XCom.
Heavy imports happen inside the tasks, never when the DAG file is parsed.
"""

from __future__ import annotations

import datetime as dt
import logging

from airflow.sdk import get_current_context, task

from marketmap import units

log = logging.getLogger(__name__)


def _run_id() -> str:
    return get_current_context()["run_id"]


@task(multiple_outputs=False)  # one small summary dict per task
def validate_config(client_id: str) -> dict:
    """Load and validate the client's config; fail with every problem listed."""
    from marketmap.config import load_client

    cfg = load_client(client_id)
    return {"client_id": cfg.client_id, "rubric_version": cfg.icp.version, "crm": cfg.crm.kind}


@task(multiple_outputs=False)  # one small summary dict per task
def ingest(client_id: str) -> dict:
    """Read the CRM export files into this run's staged records; reject bad rows with reasons."""
    from marketmap.ingest.pipeline import extract_exports, start_run
    from marketmap.orchestration.resources import load_effective, warehouse

    ctx = get_current_context()
    cfg = load_effective(client_id)
    engine = warehouse(cfg)
    start_run(engine, client_id, ctx["run_id"], "build", ctx.get("logical_date"))
    if cfg.crm.kind == "csv":
        return extract_exports(cfg, ctx["run_id"], engine)
    from marketmap import crm

    # A full extract through the CRM's API, staged like an export (normalise/dedupe/load follow).
    return crm.extract(cfg, engine, ctx["run_id"], crm.adapter_for(cfg), load=False)


@task(multiple_outputs=False)  # one small summary dict per task
def normalise_dedupe(client_id: str) -> dict:
    """Normalise domains, merge duplicates by domain, queue look-alike names for review."""
    from marketmap.ingest.pipeline import normalise_and_dedupe
    from marketmap.orchestration.resources import load_effective, warehouse

    cfg = load_effective(client_id)
    return normalise_and_dedupe(cfg, _run_id(), warehouse(cfg))


@task(multiple_outputs=False)  # one small summary dict per task
def load_warehouse(client_id: str) -> dict:
    """Upsert accounts, contacts, opportunities and reps in one transaction."""
    from marketmap.analysis.owners import record_owner_changes
    from marketmap.ingest.pipeline import load_warehouse as load
    from marketmap.orchestration.resources import load_effective, run_clock, warehouse

    cfg = load_effective(client_id)
    engine = warehouse(cfg)
    result = load(cfg, _run_id(), engine)
    # Owner history starts at the build, dated from each account's CRM creation (stale-account rule).
    result["owner_history"] = record_owner_changes(engine, client_id, _run_id(), run_clock(get_current_context())[1])
    return result


def _run_date(cfg) -> dt.date:
    """The run's logical date in the client's timezone (never now(): re-runs must agree)."""
    from marketmap.orchestration.resources import run_date

    return run_date(get_current_context(), cfg)


@task(multiple_outputs=False)  # one small summary dict per task
def score_accounts(client_id: str) -> dict:
    """Fit score, tier and per-vector breakdown for every account (per product rubric)."""
    from marketmap.orchestration.resources import load_effective, warehouse
    from marketmap.scoring.pipeline import score_accounts as score

    cfg = load_effective(client_id)
    return score(cfg, warehouse(cfg), _run_id(), _run_date(cfg))


@task(multiple_outputs=False)  # one small summary dict per task
def value_accounts(client_id: str) -> dict:
    """Potential ARR per in-scope account (configured methods, combined) and white space for customers."""
    from marketmap.orchestration.resources import load_effective, warehouse
    from marketmap.scoring.pipeline import value_accounts as value

    cfg = load_effective(client_id)
    return value(cfg, warehouse(cfg), _run_id()) | {"currency": units.client_currency(cfg)}


@task(multiple_outputs=False)  # one small summary dict per task
def score_contacts(client_id: str) -> dict:
    """Persona score and tier per contact, its account's tier, outreach priority and coverage."""
    from marketmap.orchestration.resources import load_effective, warehouse
    from marketmap.scoring.pipeline import score_contacts as score

    cfg = load_effective(client_id)
    return score(cfg, warehouse(cfg), _run_id(), _run_date(cfg))


@task(multiple_outputs=False)  # one small summary dict per task
def qa_gate(client_id: str) -> dict:
    """QA gates before anything reaches the CRM; a failed gate fails the run unless override_qa is set."""
    from marketmap.orchestration.resources import load_effective, warehouse
    from marketmap.scoring.pipeline import qa_gate as gate

    cfg = load_effective(client_id)
    override = bool(get_current_context()["params"].get("override_qa", False))
    result = gate(cfg, warehouse(cfg), override=override)
    log.info("QA gates for %s:\n%s", client_id, result["report"])
    return result


@task(multiple_outputs=False)  # one small summary dict per task
def summary(client_id: str, steps: dict) -> dict:
    """Write the run summary and rejected rows; print what the run did and where the outputs are."""
    from marketmap.ingest.pipeline import summarise
    from marketmap.orchestration.resources import load_effective, warehouse

    cfg = load_effective(client_id)
    result = summarise(cfg, _run_id(), warehouse(cfg), steps)
    log.info("%s", format_summary(result))
    return {"rows_rejected": result["rows_rejected"], "outputs": result["outputs"]}


def format_summary(s: dict) -> str:
    """Human-readable run summary for the task log and the CLI."""
    steps = s.get("steps", {})
    ing, ded, load = steps.get("ingest", {}), steps.get("dedupe", {}), steps.get("load", {})
    lines = [f"Market Map build for {s['client_id']} (run {s['run_id']})"]
    for obj, info in ing.get("objects", ing).items():  # CSV exports, or an API extract's objects
        if isinstance(info, dict):
            rows, source = info.get("rows", info.get("records", 0)), info.get("file") or "the CRM"
            warned = f", {info['warnings']:,} values left blank (warnings)" if info.get("warnings") else ""
            lines.append(
                f"  {obj:<14} {rows:>7,} rows read from {source}, {info.get('rejected', 0):,} rejected{warned}"
            )
    if ded:
        lines.append(
            f"  dedupe         {ded['records']:,} account records -> {ded['accounts']:,} accounts "
            f"({ded['duplicates_merged']:,} duplicates merged by domain, {ded['without_domain']:,} without a domain, "
            f"{ded['review_pairs']:,} look-alike name pairs queued for review)"
        )
        if ded.get("merged_by_review_decision"):
            lines.append(f"                 {ded['merged_by_review_decision']:,} accounts merged as a person decided "
                         "in the review queue")  # fmt: skip
        if ded.get("shared_domain_held_for_review") or ded.get("not_company_domains"):
            lines.append(
                f"                 {ded.get('shared_domain_held_for_review', 0):,} records on a shared domain with a "
                f"different name held for review, {ded.get('not_company_domains', 0):,} websites not the company's "
                "own domain (LinkedIn, app stores, free mail …)"
            )
    if load:
        lines.append(
            f"  warehouse      {load['accounts_new']:,} new and {load['accounts_updated']:,} updated accounts, "
            f"{load['contacts_loaded']:,} contacts, {load['opportunities_loaded']:,} opportunities "
            f"({load['opportunities_closed']:,} closed, {load['opportunities_won']:,} won), {load['reps']} reps"
        )
    sc, val, con, qa = (steps.get(k, {}) for k in ("score", "value", "contacts", "qa"))
    enr, per = steps.get("enrich", {}), steps.get("personas", {})
    if enr:
        filled = sum(enr.get("fields_filled", {}).values())
        lines.append(
            f"  enrichment     {enr.get('plan', {}).get('accounts_to_enrich', 0):,} accounts planned "
            f"({sum(enr.get('plan', {}).get('skipped', {}).values()):,} skipped: cannot matter or fresh), "
            f"{enr.get('accounts_enriched', 0):,} enriched, {filled:,} fields filled, "
            f"{enr.get('credits_spent', 0):,.0f} credits spent ({enr.get('month_spent', 0):,.0f} of "
            f"{enr.get('budget', 0):,.0f} this month)"
            + (" — BUDGET EXHAUSTED" if enr.get("budget_exhausted") else "")
        )
    if per:
        lines.append(
            f"  persona search {per.get('accounts_considered', 0):,} T1 accounts, {per.get('contacts_added', 0):,} "
            f"contacts added, {per.get('credits', 0):,.0f} credits"
            + (f" ({per['note']})" if per.get("note") else "")
        )
    if sc:
        tiers = ", ".join(f"{k.split(':', 1)[1]} {v:,}" for k, v in sorted(sc["tiers"].items()))
        lines.append(
            f"  scores         rubric {sc['rubric_version']}: {tiers} ({sc['written']:,} rows written)"
        )
    if val:
        lines.append(
            f"  valuation      {val['valued']:,} accounts valued, total potential ARR "
            f"{units.money(val['valuation_total'], val.get('currency'))}"
        )
    if con and con.get("contacts"):
        shares = con["distribution"].get("shares", {})
        cov = con.get("coverage", {})
        lines.append(
            f"  personas       {con['contacts']:,} contacts: "
            + ", ".join(f"{k} {v:.0%}" for k, v in shares.items())
            + f"; T1 accounts with a Tier-1 persona: {cov.get('t1_p1_share', 0) or 0:.0%}"
        )
    if qa:
        lines.append("  QA gates" + (" (overridden)" if qa.get("overridden") else ""))
        lines += [f"    {line}" for line in qa.get("report", "").splitlines()]
    pre, can, push, crmv = (steps.get(k) or {} for k in ("preflight", "canary", "push", "crm_validation"))
    if pre:
        lines.append(
            f"  CRM preflight  {'OK' if pre.get('ok') else 'FAILED'} ({len(pre.get('checked', []))} fields checked)"
        )
    if can.get("dry_run"):
        lines.append(
            f"  CRM push       dry run: change preview written ({', '.join(can.get('preview', {}))})"
        )
    for obj, res in (push if isinstance(push, dict) and not push.get("dry_run") else {}).items():
        if obj == "attention":  # records a person must look at (failed, parked, deleted in the CRM)
            counts = {k: v for k, v in (res.get("counts") or {}).items() if v}
            if counts:
                lines.append(f"  CRM attention  {', '.join(f'{v:,} {k}' for k, v in counts.items())} "
                             f"(push log: {res.get('push_log')})")  # fmt: skip
            continue
        if obj == "owners":
            continue
        r = res.get("result", {}) if isinstance(res, dict) else {}
        lines.append(
            f"  CRM push       {obj}: {r.get('created', 0):,} created, {r.get('updated', 0):,} updated, "
            f"{r.get('failed', 0):,} failed ({r.get('status', '?')})"
        )
    if crmv:
        lines.append(
            f"  CRM validation {'OK' if crmv.get('ok') else 'PROBLEMS: ' + '; '.join(map(str, crmv.get('problems', [])))}"
        )
    if s.get("rows_rejected"):
        lines.append(f"  rejected rows  {s['rows_rejected']:,}, for example:")
        lines += [
            f"    {r['file']} row {r['row']}: {r['reason']}" for r in s.get("rejected_examples", [])[:5]
        ]
    if s.get("warnings"):
        lines.append(
            f"  warnings       {s['warnings']:,} on {s.get('rows_warned', 0):,} kept rows (value left blank), for example:"
        )
        lines += [
            f"    {w['file']} row {w['row']}: {w['reason']}" for w in s.get("warning_examples", [])[:5]
        ]
    lines.append(f"  warehouse:     {s['warehouse']}")
    lines.append(f"  outputs:       {s['outputs']} (summary.json, rejected_rows.csv, warnings.csv)")
    return "\n".join(lines)

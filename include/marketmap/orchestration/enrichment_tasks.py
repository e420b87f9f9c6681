"""Enrichment tasks of the build DAG: fill what the rubric needs within the credit budget.

A run pays only for fields an account lacks, only for accounts that can still reach the
configured tier, T1 candidates first, and never twice (cache + credit ledger). Clay
answers asynchronously: its rows come back to the plugin's callback endpoint and
``wait_for_clay`` (:mod:`marketmap.orchestration.clay_wait`) defers to the triggerer until they
are all back, without holding a worker slot.
"""

from __future__ import annotations

import logging

from airflow.sdk import get_current_context, task

log = logging.getLogger(__name__)


def _run(client_id: str) -> dict:
    from marketmap.enrichment import plan_account_enrichment, providers_for, run_account_enrichment
    from marketmap.enrichment.reports import RUN_RULES, run_alert_candidates
    from marketmap.orchestration.alerting import send_alerts
    from marketmap.orchestration.resources import load_effective, run_clock, warehouse

    ctx = get_current_context()
    cfg = load_effective(client_id)
    engine = warehouse(cfg)
    _, now = run_clock(ctx)
    plan = plan_account_enrichment(cfg, engine, now.astimezone(cfg.tz).date(), now=now)
    result = run_account_enrichment(cfg, engine, ctx["run_id"], plan, providers_for(cfg), now=now)
    send_alerts(cfg, engine, ctx["dag"].dag_id, ctx["run_id"], now, run_alert_candidates(cfg, result.alerts), RUN_RULES)
    summary = {"plan": plan.summary(), **result.summary()}
    log.info("enrichment for %s: %s", client_id, summary)
    return summary


@task(multiple_outputs=False)  # one small summary dict per task
def enrich_accounts(client_id: str) -> dict:
    """Fill the fields the rubric and the push need, within the monthly credit budget (waterfall, cache, ledger)."""
    return _run(client_id)


@task(multiple_outputs=False)  # one small summary dict per task
def enrich_accounts_resume(client_id: str) -> dict:
    """Second pass after Clay: its answers come from the cache for free; rows it never sent back go on down the waterfall."""
    return _run(client_id)


@task(multiple_outputs=False, trigger_rule="all_done")
def close_clay(client_id: str, enriched: dict) -> dict:
    """Settle the Clay batches (also after the wait timed out) and report rows that never came back."""
    from marketmap.enrichment import close_clay_batch
    from marketmap.orchestration.resources import load_effective, warehouse

    engine = warehouse(load_effective(client_id))
    closed = {b: close_clay_batch(engine, client_id, b) for b in enriched.get("clay_batches", {})}
    log.info("Clay batches closed: %s", closed)
    return {"batches": list(closed)}


@task(multiple_outputs=False)  # one small summary dict per task
def enrich_personas(client_id: str) -> dict:
    """People search at T1 accounts (just in time, GDPR setting respected) for the personas they lack."""
    from marketmap.enrichment import enrich_personas as enrich
    from marketmap.enrichment import providers_for
    from marketmap.enrichment.personas import account_tiers
    from marketmap.orchestration.resources import load_effective, warehouse
    from marketmap.orchestration.resources import run_date as clock_date

    ctx = get_current_context()
    cfg = load_effective(client_id)
    engine = warehouse(cfg)
    run_date = clock_date(ctx, cfg)
    return enrich(
        cfg, engine, ctx["run_id"], providers_for(cfg), account_tiers(cfg, engine), run_date=run_date
    )

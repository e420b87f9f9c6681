"""Task callables of the maintenance DAGs: thin wrappers around ``marketmap.maintenance``.

Each task opens a :class:`~marketmap.maintenance.MaintenanceRun` from Airflow's context (the run's
clock works with and without a logical date), calls one step, sends the alert candidates it
raised (the alert store decides what is new) and returns the step's small summary through XCom.
"""

from __future__ import annotations

from airflow.sdk import get_current_context, task

from marketmap.maintenance import MaintenanceRun, Outcome, monthly, personas, territories, valuation
from marketmap.maintenance import drift as drift_steps


def _run(client_id: str, pipeline: str) -> MaintenanceRun:
    from marketmap.orchestration.resources import run_clock

    ctx = get_current_context()
    start, end = run_clock(ctx)
    return MaintenanceRun.open(client_id, pipeline, ctx["run_id"], ctx["dag"].dag_id, ctx.get("params") or {},
                               start, end)  # fmt: skip


def _finish(r: MaintenanceRun, out: Outcome) -> dict:
    """Send the step's alerts (links are portfolio URLs, never a worker's file) and return its summary."""
    if not out.rules:
        return out.result
    from marketmap.orchestration.alerting import send_alerts

    for a in out.alerts:
        a.report = r.url(a.report)
    sent = send_alerts(r.cfg, r.engine, r.dag_id, r.run_id, r.now, out.alerts, out.rules, r.url(out.report))
    return {**out.result, "fired": sent["fired"], "resolved": sent["resolved"]}


# --------------------------------------------------------------------------- monthly


@task(multiple_outputs=False)  # one small summary dict per task
def extract_changes(client_id: str) -> dict:
    """Incremental CRM extract: accounts, contacts and deals created or changed in the data interval."""
    r = _run(client_id, "monthly")
    return _finish(r, monthly.extract_changes(r))


@task(multiple_outputs=False)  # one small summary dict per task
def enrich_gaps(client_id: str) -> dict:
    """Enrich only missing fields of accounts that could still reach the minimum tier, within the budget."""
    r = _run(client_id, "monthly")
    return _finish(r, monthly.enrich_gaps(r))


@task(multiple_outputs=False)  # one small summary dict per task
def score_changes(client_id: str) -> dict:
    """Re-score, re-value and re-score contacts; only rows that changed are written."""
    r = _run(client_id, "monthly")
    return _finish(r, monthly.score_changes(r))


@task(multiple_outputs=False)  # one small summary dict per task
def credit_burn_monitor(client_id: str) -> dict:
    """Credits of the month just ended against the budget; runaway runs, double charges, jumps per account."""
    r = _run(client_id, "monthly")
    return _finish(r, monthly.credit_burn(r))


@task(multiple_outputs=False)  # one small summary dict per task
def data_quality_audit(client_id: str) -> dict:
    """Duplicates, un-normalised domains, blank tier/valuation, rejected picklist values, untiered new accounts."""
    r = _run(client_id, "monthly")
    return _finish(r, monthly.quality_audit(r))


@task(multiple_outputs=False)  # one small summary dict per task
def prune_history(client_id: str) -> dict:
    """Retention: old push logs, superseded score versions, stale cache entries, old alert events."""
    r = _run(client_id, "monthly")
    return _finish(r, monthly.prune_history(r))


@task(multiple_outputs=False)  # one small summary dict per task
def stale_account_round_robin(client_id: str) -> dict:
    """Optional (param stale_round_robin): accounts with the same rep for 6+ months and no progress -> a stored proposal."""
    r = _run(client_id, "monthly")
    return _finish(r, monthly.stale_round_robin(r))


@task(multiple_outputs=False)  # one small summary dict per task
def apply_stale_proposal(client_id: str) -> dict:
    """Only with param approve_stale=<proposal id>: apply exactly that stored stale-account proposal."""
    r = _run(client_id, "monthly")
    return _finish(r, monthly.apply_proposal(r, "stale", "approve_stale"))


# --------------------------------------------------------------------------- quarterly personas


@task(multiple_outputs=False)  # one small summary dict per task
def coverage_gap_report(client_id: str) -> dict:
    """Persona coverage before enrichment: T1 accounts under 4 contacts with no outreach, missing seniority levels."""
    r = _run(client_id, "quarterly_personas")
    return _finish(r, personas.gap_report(r))


@task(multiple_outputs=False)  # one small summary dict per task
def enrich_gap_personas(client_id: str, before: dict) -> dict:
    """Find personas at the gap accounts only (T1 first, signals first), deduplicated by e-mail and LinkedIn."""
    r = _run(client_id, "quarterly_personas")
    return _finish(r, personas.enrich_gap_personas(r))


@task(multiple_outputs=False)  # one small summary dict per task
def coverage_after_and_alerts(client_id: str, before: dict, enriched: dict | None = None) -> dict:
    """Coverage after enrichment; alert when under 50% of T1 accounts have a Tier-1 persona; provider optimisation."""
    r = _run(client_id, "quarterly_personas")
    return _finish(r, personas.coverage_after(r, before, enriched))


# --------------------------------------------------------------------------- drift and check-ins


@task(multiple_outputs=False)  # one small summary dict per task
def drift_check(client_id: str) -> dict:
    """Closed won/lost by tier over trailing windows; drift alerts only with enough deals and a significant test."""
    r = _run(client_id, "drift")
    return _finish(r, drift_steps.drift_check(r))


@task(multiple_outputs=False)  # one small summary dict per task
def refinement_checkins(client_id: str) -> dict:
    """Reminders 2 weeks before the ~90-day check-in and each twice-yearly ICP validation review, with numbers."""
    r = _run(client_id, "drift")
    return _finish(r, drift_steps.refinement_checkins(r))


# --------------------------------------------------------------------------- valuation


@task(multiple_outputs=False)  # one small summary dict per task
def apply_valuation(client_id: str) -> dict:
    """Only with param apply_valuation: apply the refitted coefficients and re-score (recorded in runs)."""
    r = _run(client_id, "valuation")
    return _finish(r, valuation.apply_valuation(r))


@task(multiple_outputs=False)  # one small summary dict per task
def valuation_check(client_id: str) -> dict:
    """Won deal value vs valuation at the time: median abs % error and bias, overall and by tier; refit proposal."""
    r = _run(client_id, "valuation")
    return _finish(r, valuation.valuation_check(r))


# --------------------------------------------------------------------------- territories


@task(multiple_outputs=False)  # one small summary dict per task
def apply_rebalance(client_id: str) -> dict:
    """Only with param approve_rebalance=<proposal id>: apply exactly that stored proposal to the warehouse owners."""
    r = _run(client_id, "territories")
    return _finish(r, monthly.apply_proposal(r, "rebalance", "approve_rebalance"))


@task(multiple_outputs=False)  # one small summary dict per task
def territory_check(client_id: str) -> dict:
    """Territory value per rep; ownership, imbalance and departed-rep alerts with a minimal-move proposal (CSV)."""
    r = _run(client_id, "territories")
    return _finish(r, territories.territory_check(r))

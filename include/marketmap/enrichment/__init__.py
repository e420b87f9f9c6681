"""Enrichment within a credit budget: providers, waterfall, cache, credit ledger.

The functions the build DAG's tasks call (no Airflow imported here, except inside
``providers_for``'s default connection getter):

* :func:`plan_account_enrichment` — "only run if": what to enrich, in which order;
* :func:`run_account_enrichment` — the waterfall within the budget (sync; ``_async`` too);
* :func:`providers_for` — the client's providers, credentials from Airflow connections;
* :func:`enrich_personas` — people at T1 (then T2 in-cadence) accounts, just in time
  (:func:`account_tiers` builds its input from the stored scores);
* :func:`clay_rows_status` / :func:`close_clay_batch` — the wait for Clay's callbacks;
* :func:`burn_report` — credits against the budget's pace (credit-burn monitor);
* :func:`optimisation_report` — hit and fill rates, credits per filled field, a switch;
* :func:`run_alert_candidates` — a run's ``alerts`` as candidates for the alert store;
* :func:`pools_for` — the Airflow pools (one per provider) the tasks should run in.
"""

from __future__ import annotations

from marketmap.enrichment.clay_callback import clay_rows_status, close_clay_batch
from marketmap.enrichment.personas import account_tiers, enrich_personas, enrich_personas_async
from marketmap.enrichment.planner import EnrichmentPlan, plan_account_enrichment
from marketmap.enrichment.providers import Credentials, Provider, providers_for
from marketmap.enrichment.reports import burn_report, optimisation_report, run_alert_candidates
from marketmap.enrichment.runner import (
    EnrichmentResult,
    run_account_enrichment,
    run_account_enrichment_async,
)
from marketmap.pools import pools_for, task_pool

__all__ = [
    "Credentials",
    "account_tiers",
    "EnrichmentPlan",
    "EnrichmentResult",
    "Provider",
    "burn_report",
    "clay_rows_status",
    "close_clay_batch",
    "enrich_personas",
    "enrich_personas_async",
    "optimisation_report",
    "run_alert_candidates",
    "plan_account_enrichment",
    "pools_for",
    "task_pool",
    "providers_for",
    "run_account_enrichment",
    "run_account_enrichment_async",
]

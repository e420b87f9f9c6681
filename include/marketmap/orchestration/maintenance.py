"""The maintenance schedule's DAGs (SPEC §10): monthly, quarterly personas, drift, valuation, territories.

Registered in the factory's pipeline registry (``@pipeline``); importing this module is
enough. Each DAG runs on its ``schedules.<pipeline>`` cron in the client's timezone
(``CronTriggerTimetable``) with a data interval of one cadence, so the monthly run
reads the month that just ended. Tasks that call an enrichment provider or the CRM run
in that provider's / the CRM's Airflow pool (``enrichment.providers[].pool``,
``crm.pool``). Manual runs take params (``apply_valuation``, ``approve_rebalance`` …).
"""

from __future__ import annotations

import datetime as dt

from airflow.sdk import DAG, CronTriggerTimetable, Param
from dateutil.relativedelta import relativedelta

from marketmap.config import ClientConfig
from marketmap.orchestration import maintenance_tasks as mt
from marketmap.orchestration import report_tasks as rt
from marketmap.orchestration.crm_tasks import crm_write_group
from marketmap.orchestration.factory import common_dag_kwargs, pipeline, scores_asset
from marketmap.pools import crm_pool, heavy_pool, task_pool

ALERTS_DOC = (
    "\n\n**Alerts** go to Slack (or the local outbox with no Slack connection): RevOps for data and "
    "credits, leadership for drift, valuation and territories, and the architect for everything. "
    "An alert is sent once per condition, again only when its numbers change materially, and a "
    "short *resolved* follows when the condition clears. Re-running an interval sends nothing new."
)


def _schedule(cfg: ClientConfig, cron: str | None, interval) -> CronTriggerTimetable | None:
    """The pipeline's cron in the client's timezone (None: manual only)."""
    if not cron:
        return None
    return CronTriggerTimetable(cron, timezone=cfg.timezone, interval=interval)


def _pools(cfg: ClientConfig) -> tuple[str | None, str | None]:
    """(CRM pool, enrichment provider pool) of the client, None where not needed."""
    return crm_pool(cfg), task_pool(cfg)


def _in_pool(t, pool: str | None):
    return t.override(pool=pool) if pool else t


MONTHLY_DOC = """Keeps the market map current every month (1st, client's timezone). The data interval is the
month that just ended.

1. **extract_changes** — CRM accounts, contacts and deals created or changed in the interval
   (CSV clients: the export dropped in the inbox, if any); owner changes recorded.
2. **enrich_gaps** — only missing fields, only accounts that could still reach the minimum tier,
   never inside the refresh age, within the monthly credit budget.
3. **score_changes** — fit score, tier, valuation and personas; only changed rows are written.
4. **apply_stale_proposal** (param `approve_stale`: a proposal id) — applies exactly that stored
   stale-account proposal to the warehouse owners, once.
5. **crm_preflight → crm_canary → crm_push → crm_validate** — the one CRM write path: only records whose
   CRM values would change (and the owners of an approved proposal), sample first, then validated.
6. **publish_scores** — when scores changed, emits the client's scores asset: `<client>__reports` runs.
7. **credit_burn_monitor** — the month's burn vs budget, runaway runs, the same account paid twice,
   credits per account jumping.
8. **data_quality_audit** — duplicates by domain/e-mail/LinkedIn, un-normalised domains, blank tier
   or valuation above 5%, picklist values the CRM rejected, new accounts untiered after 30 days.
9. **stale_account_round_robin** (param `stale_round_robin`) — accounts with the same rep for 6+
   months (owner history, or the CRM creation date) and no progress: a reassignment proposal stored
   with an id (CSV + alert); approve it by running this DAG with `approve_stale=<id>`.
10. **prune_history** — retention (`retention:` in the config): push logs, superseded score versions,
   stale enrichment cache entries and old alert events.
"""


@pipeline("monthly")
def monthly_dag(cfg: ClientConfig) -> DAG:
    kwargs = common_dag_kwargs(cfg, "monthly", "monthly maintenance", MONTHLY_DOC + ALERTS_DOC)
    kwargs["params"] = {
        "dry_run": Param(False, type="boolean", description="Plan the CRM push but write nothing."),
        "stale_round_robin": Param(False, type="boolean",
                                   description="Also propose a round robin of stale accounts (optional)."),
        "approve_stale": Param("", type="string",
                               description="Apply this stored stale-account proposal (its id, from the alert)."),
    }  # fmt: skip
    crm_pool, provider_pool = _pools(cfg)
    with DAG(schedule=_schedule(cfg, cfg.schedules.monthly, relativedelta(months=1)), **kwargs) as dag:
        cid = cfg.client_id
        extracted = _in_pool(mt.extract_changes, crm_pool)(client_id=cid)
        enriched = _in_pool(mt.enrich_gaps, provider_pool)(client_id=cid)
        scored = _in_pool(mt.score_changes, heavy_pool(cfg))(client_id=cid)
        applied = mt.apply_stale_proposal(client_id=cid)
        preflight, *_, validated = crm_write_group(cfg, pool=crm_pool)
        burn = mt.credit_burn_monitor(client_id=cid)
        audited = mt.data_quality_audit(client_id=cid)
        stale = mt.stale_account_round_robin(client_id=cid)
        published = rt.publish_scores.override(outlets=[scores_asset(cid)])(client_id=cid, steps=[scored])
        extracted >> enriched >> scored >> applied >> preflight
        enriched >> burn
        scored >> published
        validated >> [audited, stale]  # the audit reads the push's rejected picklist values
        audited >> mt.prune_history(client_id=cid)  # retention, after the audit read the push log
    return dag


QUARTERLY_DOC = """Persona coverage refresh, report-driven persona enrichment and the provider review (quarterly).

1. **coverage_gap_report** — T1 accounts with fewer than 4 contacts and no outreach, T1 accounts missing
   seniority levels, the share of T1 accounts with a Tier-1 persona (before).
2. **enrich_gap_personas** — persona enrichment for the gap accounts only (dedupe by e-mail, then LinkedIn).
3. **crm_preflight → crm_canary → crm_push → crm_validate** — new and changed contacts to the CRM
   through the one CRM write path.
4. **coverage_after_and_alerts** — coverage after; alert under 50% of T1 accounts with a Tier-1 persona;
   provider optimisation summary (switch when it saves more than 20%).
"""


@pipeline("quarterly_personas")
def quarterly_personas_dag(cfg: ClientConfig) -> DAG:
    kwargs = common_dag_kwargs(
        cfg, "quarterly_personas", "quarterly persona coverage", QUARTERLY_DOC + ALERTS_DOC
    )
    kwargs["params"] = {
        "dry_run": Param(False, type="boolean", description="Plan the CRM push but write nothing.")
    }
    crm_pool, provider_pool = _pools(cfg)
    with DAG(
        schedule=_schedule(cfg, cfg.schedules.quarterly_personas, relativedelta(months=3)), **kwargs
    ) as dag:
        cid = cfg.client_id
        before = mt.coverage_gap_report(client_id=cid)
        enriched = _in_pool(mt.enrich_gap_personas, provider_pool)(client_id=cid, before=before)
        preflight, *_, validated = crm_write_group(cfg, pool=crm_pool)
        after = mt.coverage_after_and_alerts(client_id=cid, before=before, enriched=enriched)
        enriched >> preflight
        validated >> after
    return dag


DRIFT_DOC = """ICP drift from closed won/lost by tier (weekly), and the refinement check-in reminders.

* **drift_check** — T3 out-winning T1 over the last 60 days; T2 converting better than T1 six months
  after launch (consider flipping tiers); T1/T3 lift under 1.5x; T1 cycle not the shortest. An alert
  needs at least `maintenance.drift_min_deals` closed deals and a one-sided test significant at
  `maintenance.confidence` (two-proportion z-test, Wilson intervals; Katz interval for the lift); the
  message says how sure it is.
* **maintenance_report** — the back-test and drift views the alerts link to.
* **refinement_checkins** — a reminder 2 weeks before the ~90-day check-in and before each twice-yearly
  ICP validation review, with the numbers to bring.
"""


@pipeline("drift")
def drift_dag(cfg: ClientConfig) -> DAG:
    kwargs = common_dag_kwargs(cfg, "drift", "ICP drift and check-ins", DRIFT_DOC + ALERTS_DOC)
    with DAG(schedule=_schedule(cfg, cfg.schedules.drift, dt.timedelta(days=7)), **kwargs) as dag:
        checked = mt.drift_check(client_id=cfg.client_id)
        checked >> mt.refinement_checkins(client_id=cfg.client_id)
        checked >> rt.maintenance_report(client_id=cfg.client_id, views=["backtest", "drift"])
    return dag


VALUATION_DOC = """Valuation recalibration (twice a year): won deal value vs the account's valuation at the time.

* **apply_valuation** — only in a manual run with `apply_valuation=true`: applies the refitted
  coefficients as a stored overlay that the build, preview, reports and portfolio all use (commit them
  to the client YAML to make them permanent) and re-scores; emits the client's scores asset.
* **crm_preflight → crm_canary → crm_push → crm_validate** — pushes the changed valuations after an
  applied calibration (no CRM call otherwise).
* **valuation_check** — median absolute % error and bias overall and by tier; beyond
  `maintenance.valuation_divergence` (30%) an alert with the refitted coefficient proposal.
* **maintenance_report** — the valuation view the alert links to.
"""


@pipeline("valuation")
def valuation_dag(cfg: ClientConfig) -> DAG:
    kwargs = common_dag_kwargs(cfg, "valuation", "valuation recalibration", VALUATION_DOC + ALERTS_DOC)
    kwargs["params"] = {
        "apply_valuation": Param(False, type="boolean",
                                 description="Apply the proposed coefficients, re-score and push."),
        "dry_run": Param(False, type="boolean", description="Plan the CRM push but write nothing."),
    }  # fmt: skip
    crm_pool, _ = _pools(cfg)
    with DAG(schedule=_schedule(cfg, cfg.schedules.valuation, relativedelta(months=6)), **kwargs) as dag:
        cid = cfg.client_id
        applied = mt.apply_valuation.override(outlets=[scores_asset(cid)])(client_id=cid)
        *_, validated = crm_write_group(cfg, when=applied, pool=crm_pool)
        checked = mt.valuation_check(client_id=cid)
        validated >> checked >> rt.maintenance_report(client_id=cid, views=["valuation"])
    return dag


TERRITORIES_DOC = """Territory balance (twice a year): territory value per rep from valuations and owners.

* **apply_rebalance** — only in a manual run with `approve_rebalance=<proposal id>` (the id is in the
  alert and the proposal CSV): applies exactly that stored proposal to the warehouse owners, once.
* **crm_preflight → crm_canary → crm_push → crm_validate** — the new owners to the CRM through the one
  write path; a retry after a CRM failure pushes what is still missing (no CRM call when nothing applied).
* **territory_check** — one rep above 2x another or any rep outside ±20% of the mean, or a rep who left
  still owning accounts → alert with a rebalancing proposal (CSV + summary) that moves as few accounts
  as possible: current owners kept where possible, T1 accounts spread fairly, named exceptions and
  partner/channel accounts untouched. The proposal is stored with an id.
* **maintenance_report** — the territory view the alert links to.
"""


@pipeline("territories")
def territories_dag(cfg: ClientConfig) -> DAG:
    kwargs = common_dag_kwargs(cfg, "territories", "territory balance", TERRITORIES_DOC + ALERTS_DOC)
    kwargs["params"] = {
        "approve_rebalance": Param("", type="string",
                                   description="Apply this stored rebalancing proposal (its id, from the alert): "
                                               "owner changes go to the CRM."),
    }  # fmt: skip
    crm_pool, _ = _pools(cfg)
    with DAG(schedule=_schedule(cfg, cfg.schedules.territories, relativedelta(months=6)), **kwargs) as dag:
        cid = cfg.client_id
        applied = mt.apply_rebalance(client_id=cid)
        *_, validated = crm_write_group(cfg, when=applied, pool=crm_pool)
        checked = mt.territory_check(client_id=cid)
        validated >> checked >> rt.maintenance_report(client_id=cid, views=["territory"])
    return dag

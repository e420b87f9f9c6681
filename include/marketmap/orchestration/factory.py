"""Build every client's DAGs from its config: ``<client>__<pipeline>``.

Called by the one thin file in ``dags/``. Parse time stays near zero: only the config
loader, pendulum and ``airflow.sdk`` are imported here; task code imports the rest.
When a task process parses the file, ``get_parsing_context()`` names the DAG it needs
and only that client's config is read and only that DAG is built.
"""

from __future__ import annotations

import datetime as dt
import re
import zlib
from collections.abc import Callable
from pathlib import Path

import pendulum
from airflow.sdk import DAG, Asset, Param, chain, get_parsing_context

from marketmap.config import (
    CLIENT_ID_PATTERN,
    ClientConfig,
    ConfigError,
    client_files,
    effective_yaml,
    load_client,
    load_client_file,
)
from marketmap.orchestration import build_tasks as bt
from marketmap.orchestration import crm_tasks as ct
from marketmap.orchestration import enrichment_tasks as et
from marketmap.orchestration import report_tasks as rt
from marketmap.orchestration.callbacks import failure_callback
from marketmap.pools import crm_pool, heavy_pool, task_pool, warehouse_pool

TAG_PREFIXES = ("client:", "pipeline:")
PIPELINES: dict[str, Callable[[ClientConfig], DAG]] = {}


def dag_id(client_id: str, pipeline: str) -> str:
    return f"{client_id}__{pipeline}"


def pipeline(name: str):
    """Register a DAG builder under a pipeline name."""

    def register(fn: Callable[[ClientConfig], DAG]) -> Callable[[ClientConfig], DAG]:
        PIPELINES[name] = fn
        return fn

    return register


def default_args(cfg: ClientConfig) -> dict:
    return {
        "owner": cfg.owner,
        "retries": 2,
        "retry_delay": dt.timedelta(minutes=1),
        "retry_exponential_backoff": True,
        "max_retry_delay": dt.timedelta(minutes=15),
        # A hung task (a CRM that never answers) fails and alerts instead of holding a slot for ever.
        "execution_timeout": dt.timedelta(hours=cfg.maintenance.task_timeout_hours),
        "on_failure_callback": failure_callback(cfg.client_id),
    } | ({"pool": warehouse_pool(cfg)} if warehouse_pool(cfg) else {})


def schedule_doc(cfg: ClientConfig, pipeline_name: str, now: dt.datetime | None = None) -> str:
    """The schedule in the client's local time, with the next runs (the UI shows UTC by default)."""
    cron = getattr(cfg.schedules, pipeline_name, None)
    if not cron:
        if pipeline_name == "reports":
            return "Runs when a pipeline publishes new scores (the client's scores Asset); never on a clock."
        return "No schedule: runs only when triggered (the Trigger button, the REST API or `marketmap run`)."
    from croniter import croniter

    tz = cfg.tz
    start = (now or dt.datetime.now(dt.UTC)).astimezone(tz).replace(second=0, microsecond=0)
    it = croniter(cron, start)
    runs = [it.get_next(dt.datetime) for _ in range(3)]
    shown = "; ".join(
        f"{r:%a} {r.day} {r:%b %Y %H:%M} {r.tzname()} ({r.astimezone(dt.UTC):%H:%M} UTC)" for r in runs
    )
    return (
        f"Runs on the cron `{cron}` in the client's timezone **{cfg.timezone}** (daylight saving "
        "followed). The Airflow UI shows times in UTC unless you pick another timezone in your user "
        f"menu. Next runs (when this file was parsed): {shown}."
    )


# The effective config's YAML, once per client config object (not once per DAG: 7 DAGs share it;
# dumping it was a quarter of the parse time, bench/bench_parse.py).
_EFFECTIVE_YAML: dict[int, tuple[ClientConfig, str]] = {}


def _effective_yaml(cfg: ClientConfig) -> str:
    hit = _EFFECTIVE_YAML.get(id(cfg))
    if hit is None or hit[0] is not cfg:
        hit = _EFFECTIVE_YAML[id(cfg)] = (cfg, effective_yaml(cfg))
    return hit[1]


def doc(cfg: ClientConfig, title: str, purpose: str, pipeline_name: str | None = None) -> str:
    schedule = f"## Schedule\n\n{schedule_doc(cfg, pipeline_name)}\n\n" if pipeline_name else ""
    return (
        f"# {cfg.name} — {title}\n\n{purpose}\n\n"
        f"Client `{cfg.client_id}`, timezone `{cfg.timezone}`, owner `{cfg.owner}`, CRM `{cfg.crm.kind}`. "
        "Failures (after retries) are reported to the client's RevOps channel.\n\n"
        f"{schedule}"
        "## Effective client config\n\nThe client file merged over the firm-wide defaults:\n\n"
        f"```yaml\n{_effective_yaml(cfg)}```\n"
    )


def common_dag_kwargs(cfg: ClientConfig, pipeline_name: str, title: str, purpose: str) -> dict:
    """Everything but the schedule, which each builder passes to DAG() explicitly."""
    return {
        "dag_id": dag_id(cfg.client_id, pipeline_name),
        "dag_display_name": f"{cfg.name} — {title}",
        "start_date": pendulum.datetime(2026, 1, 1, tz=cfg.timezone),
        "catchup": False,
        "max_active_runs": 1,
        "default_args": default_args(cfg),
        "tags": [f"client:{cfg.client_id}", f"pipeline:{pipeline_name}"],
        "doc_md": doc(cfg, title, purpose, pipeline_name),
    }


BUILD_DOC = """The initial build of the client's market map, triggered by hand from the Airflow UI.

1. **validate_config** — the client YAML is checked; every problem is listed with its key path.
2. **ingest** — CRM export files are read; rows with a blank required field or a malformed
   value are rejected with file, row number and reason (the good rows go on).
3. **normalise_dedupe** — websites reduced to registrable domains; same domain = same company,
   merged; accounts without a domain are matched by fuzzy name into a review queue, never merged.
4. **load_warehouse** — one transaction: accounts, CRM ids, contacts, opportunities, reps.
5. **enrich_accounts** — fill the fields the rubric and the push need, only for accounts that can
   still reach the configured tier, T1 candidates first, within the monthly credit budget; every
   paid call in the credit ledger, every answer cached (a re-run pays nothing). Clients with Clay
   also wait for its callbacks (deferred to the triggerer: no worker slot while Clay works) and run a second, free pass.
6. **score_accounts** — fit score 0-100 per product rubric, tier T1/T2/T3/OUT, per-vector points,
   unknown values and the highest score still attainable; stored per rubric version.
7. **enrich_personas** — people search at T1 accounts for the personas they lack (GDPR setting respected).
8. **value_accounts** — potential ARR by the configured methods; white space for customers.
9. **score_contacts** — persona score and tier, account tier × persona tier priority, coverage.
10. **qa_gate** — tier distribution, accounts per rep, no blank tier or valuation. A failed gate
   fails the run (nothing reaches the CRM) unless the `override_qa` param is set.
11. **crm_preflight** — every mapped CRM field exists with a compatible type and every picklist
    value the mapping can produce exists; all problems listed together, and nothing is pushed.
12. **crm_canary**, **crm_push** (the one CRM write path every pipeline uses) — a 10-20 record sample first, then every record whose fields
    would change (diff against the CRM's values; overwrite / if blank / never; prevent-override;
    picklist translation; look-up before create). With `dry_run` a change preview (CSV +
    summary) is written instead. **crm_validate** — counts reconcile, no duplicates.
13. **summary** — counts, tiers, valuation, rejected rows (CSV) and where the outputs are.
14. **validation_report**, **build_reports** — the validation, executive, distribution and rep-cockpit
    reports (self-contained HTML with charts, plus CSVs), linked from the run summary and the
    portfolio page.

Every step is idempotent: re-running the same run changes nothing twice.
"""


@pipeline("build")
def build_dag(cfg: ClientConfig) -> DAG:
    kwargs = common_dag_kwargs(cfg, "build", "initial build", BUILD_DOC)
    kwargs["params"] = {
        "dry_run": Param(
            False, type="boolean", description="Compute everything but write nothing to the CRM."
        ),
        "override_qa": Param(
            False, type="boolean", description="Go on even if a QA gate fails (say why in the run note)."
        ),
    }
    with DAG(schedule=cfg.schedules.build, **kwargs) as dag:
        cid = cfg.client_id
        pool = {"pool": task_pool(cfg)} if task_pool(cfg) else {}
        heavy = {"pool": heavy_pool(cfg)} if heavy_pool(cfg) else {}  # memory-bound tasks (pools.HEAVY_POOL)
        validated = bt.validate_config(client_id=cid)
        ingested = bt.ingest.override(**heavy)(client_id=cid)
        deduped = bt.normalise_dedupe.override(**heavy)(client_id=cid)
        loaded = bt.load_warehouse.override(**heavy)(client_id=cid)
        enriched = et.enrich_accounts.override(**pool)(client_id=cid)
        chain(validated, ingested, deduped, loaded, enriched)
        if any(p.kind == "clay" for p in cfg.enrichment.providers):
            # Clay answers asynchronously: wait for its callbacks, settle, then a second (free) pass.
            from marketmap.orchestration.clay_wait import ClayWaitOperator

            # Deferred to the triggerer while Clay works: no worker slot, no task process.
            waited = ClayWaitOperator(task_id="wait_for_clay", client_id=cid, enriched=enriched)
            enriched >> waited
            closed = et.close_clay(client_id=cid, enriched=enriched)
            enriched = et.enrich_accounts_resume.override(**pool)(client_id=cid)
            chain(waited, closed, enriched)
        scored = bt.score_accounts.override(**heavy)(client_id=cid)
        personas = et.enrich_personas.override(**pool)(client_id=cid)
        valued = bt.value_accounts.override(**heavy)(client_id=cid)
        contacts = bt.score_contacts.override(**heavy)(client_id=cid)
        gated = bt.qa_gate(client_id=cid)
        steps = {"ingest": ingested, "dedupe": deduped, "load": loaded, "enrich": enriched, "score": scored,
                 "personas": personas, "value": valued, "contacts": contacts, "qa": gated}  # fmt: skip
        checked, canary, pushed, validated_crm = ct.crm_write_group(cfg, pool=crm_pool(cfg))
        steps |= {"preflight": checked, "canary": canary, "push": pushed, "crm_validation": validated_crm}
        done = bt.summary(client_id=cid, steps=steps)
        validation = rt.validation_report(client_id=cid, steps=steps)
        chain(enriched, scored, personas, valued, contacts, gated, checked)
        chain(validated_crm, done, validation)
        # New scores schedule the client's reports DAG (Asset), like every pipeline that writes scores.
        contacts >> rt.publish_scores.override(outlets=[scores_asset(cid)])(client_id=cid, steps=[scored, valued, contacts])
    return dag


def scores_asset(client_id: str) -> Asset:
    """The client's stored scores: every pipeline that changes them emits it; it schedules ``<client>__reports``."""
    return Asset(name=f"{client_id}__scores", uri=f"marketmap://{client_id}/scores", group="marketmap")


REPORTS_DOC = """The client's reports, regenerated whenever its scores change.

Scheduled by the client's scores asset (`marketmap://<client>/scores`), which the build, the monthly
run and an applied valuation emit when they write new scores, so the reports never lag the scores.

* **build_reports** — executive, distribution and rep-cockpit reports (HTML with charts, CSVs).
* **maintenance_report** — the back-test, drift, valuation and territory views the alerts link to.

Reports are served by the portfolio app (`/marketmap/clients/<client>`), linked from alerts.
"""


@pipeline("reports")
def reports_dag(cfg: ClientConfig) -> DAG:
    kwargs = common_dag_kwargs(cfg, "reports", "reports", REPORTS_DOC)
    with DAG(schedule=[scores_asset(cfg.client_id)], **kwargs) as dag:
        rt.build_reports(client_id=cfg.client_id) >> rt.maintenance_report(client_id=cfg.client_id)
    return dag


def build_client_dags(cfg: ClientConfig, only: str | None = None) -> dict[str, DAG]:
    dags = {}
    for name, builder in PIPELINES.items():
        if only is None or dag_id(cfg.client_id, name) == only:
            dags[dag_id(cfg.client_id, name)] = builder(cfg)
    return dags


def safe_client_id(stem: str) -> str:
    """The id a client file's DAGs get: its stem if that is a valid client id, else a sanitised
    ``invalid_client__<stem>`` that Airflow accepts (and no valid client id can take)."""
    if re.match(CLIENT_ID_PATTERN, stem):
        return stem
    return "invalid_client__" + (re.sub(r"[^a-z0-9_]+", "_", stem.lower()).strip("_")[:60] or "unnamed")


def config_error_dag(client_id: str, error: ConfigError) -> DAG:
    """Stands in for a client whose config is invalid: visible in the UI, lists the problems,
    and fails if run — while every other client's DAGs keep working.

    ``client_id`` is the file's stem; a stem that is no valid client id (``Acme Corp``) gets the
    safe id of :func:`safe_client_id`."""
    problems = "\n".join(f"- `{f}`: `{k}`: {m}" if k else f"- `{f}`: {m}" for f, k, m in error.problems)
    shown, client_id = client_id, safe_client_id(client_id)
    with DAG(
        dag_id=dag_id(client_id, "config_error"),
        dag_display_name=f"{shown} — INVALID CONFIG",
        schedule=None,
        start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
        catchup=False,
        max_active_runs=1,
        default_args={"owner": "revops", "retries": 0},
        tags=[f"client:{client_id}", "pipeline:config_error"],
        doc_md=f"# Invalid client config: {shown}\n\nFix these problems; the client's DAGs come back "
        f"when the file validates (`marketmap validate`).\n\n{problems}\n",
    ) as dag:
        bt.validate_config(client_id=shown)  # reads <stem>.yaml: fails with the same problems
    return dag


# Loader files in dags/: marketmap_clients_0.py … marketmap_clients_31.py. 32 keep each file well
# inside the DAG processor's 30 s import timeout at 1,000 clients, even on a busy machine
# (bench/bench_parse.py: with 16, ~430 DAGs a file took 8-29 s on the shared 2-core machine).
SHARDS = 32


def shard_of(client_id: str, shards: int = SHARDS) -> int:
    """The loader file a client's DAGs live in (stable: a hash of the client id)."""
    return zlib.crc32(client_id.encode()) % shards


def build_all_dags(directory: Path | None = None, shard: int | None = None) -> dict[str, DAG]:
    """Every client's DAGs (of one loader ``shard``, or all), in sorted order, plus the portfolio
    DAG (in shard 0); only the one DAG a task process asks for.

    A client whose file does not validate gets a ``<client>__config_error`` DAG instead, so one
    broken file never takes the other clients' DAGs down; and clients are spread over several
    loader files, so one slow or failing parse (``dagbag_import_timeout``) hides only its shard.
    """
    from marketmap.orchestration.portfolio import PORTFOLIO_DAG_ID, build_portfolio_dag

    wanted = get_parsing_context().dag_id
    if wanted == PORTFOLIO_DAG_ID:
        return {PORTFOLIO_DAG_ID: build_portfolio_dag()} if shard in (None, 0) else {}
    paths = [p for p in client_files(directory) if shard is None or shard_of(p.stem) == shard]
    if wanted and "__" in wanted:
        # The client whose id + "__" + a pipeline name is the wanted DAG id: client ids may contain
        # "__" themselves (acme__eu next to acme), so never split on the first "__".
        names = set(PIPELINES) | {"config_error"}
        paths = [p for p in paths if wanted.startswith(safe_client_id(p.stem) + "__")
                 and wanted[len(safe_client_id(p.stem)) + 2 :] in names]  # fmt: skip
    dags: dict[str, DAG] = {}
    for path in paths:
        if safe_client_id(path.stem) != path.stem:
            try:
                load_client_file(path)  # the file name is the error; ConfigError says so
            except ConfigError as e:
                dags[dag_id(safe_client_id(path.stem), "config_error")] = config_error_dag(path.stem, e)
            continue
        try:
            cfg = load_client(path.stem, directory)
        except ConfigError as e:
            dags[dag_id(path.stem, "config_error")] = config_error_dag(path.stem, e)
            continue
        dags.update(
            build_client_dags(
                cfg, only=wanted if wanted and wanted[len(cfg.client_id) + 2 :] in PIPELINES
                and wanted.startswith(cfg.client_id + "__") else None
            )
        )
    if not wanted and shard in (None, 0):
        dags[PORTFOLIO_DAG_ID] = build_portfolio_dag()
    return dags


# The maintenance pipelines register themselves with @pipeline; they import this module's helpers.
from marketmap.orchestration import maintenance  # noqa: E402,F401

"""The maintenance DAGs: ids, schedules in the client's timezone, pools, params, docs, thin parsing."""

from __future__ import annotations

import subprocess
import sys

import pytest

from marketmap.config import load_client

PIPELINES = {"monthly", "quarterly_personas", "drift", "valuation", "territories"}


@pytest.fixture()
def dags(fixture_clients):
    from marketmap.orchestration import maintenance  # noqa: F401 - registers the pipelines
    from marketmap.orchestration.factory import PIPELINES as REGISTRY

    cfg = load_client("sample")
    return cfg, {name: REGISTRY[name](cfg) for name in PIPELINES}


def test_ids_tags_schedules_and_docs(dags):
    cfg, built = dags
    for name, dag in built.items():
        assert dag.dag_id == f"sample__{name}"
        assert set(dag.tags) == {"client:sample", f"pipeline:{name}"}
        assert dag.catchup is False and dag.max_active_runs == 1
        assert "Effective client config" in dag.doc_md and "Alerts" in dag.doc_md
        tt = dag.timetable
        assert tt.expression == getattr(cfg.schedules, name)  # cron from the config
        assert str(tt.timezone) == "Europe/London"  # in the client's timezone
        for task in dag.tasks:
            assert task.retries >= 1 and task.on_failure_callback and task.doc_md, (name, task.task_id)


def test_params_and_wiring(dags):
    _, built = dags
    assert built["valuation"].params["apply_valuation"] is False
    assert built["territories"].params["approve_rebalance"] == ""  # a proposal id, not a yes/no
    assert built["monthly"].params["stale_round_robin"] is False
    assert built["monthly"].params["approve_stale"] == ""
    m = built["monthly"]
    assert "enrich_gaps" in m.get_task("extract_changes").downstream_task_ids
    assert "apply_stale_proposal" in m.get_task("score_changes").downstream_task_ids
    assert "publish_scores" in m.get_task("score_changes").downstream_task_ids
    assert m.get_task("publish_scores").outlets[0].uri == "marketmap://sample/scores"
    # Every pipeline that writes to the CRM does it through the same four steps, in order.
    writers = {"monthly": "apply_stale_proposal", "quarterly_personas": "enrich_gap_personas",
               "valuation": "apply_valuation", "territories": "apply_rebalance"}  # fmt: skip
    for name, before in writers.items():
        dag = built[name]
        assert "crm_preflight" in dag.get_task(before).downstream_task_ids, name
        assert dag.get_task("crm_preflight").downstream_task_ids == {"crm_canary"}, name
        assert dag.get_task("crm_canary").downstream_task_ids == {"crm_push"}, name
        assert dag.get_task("crm_push").downstream_task_ids == {"crm_validate"}, name
    assert "territory_check" in built["territories"].get_task("crm_validate").downstream_task_ids
    for name in ("drift", "valuation", "territories"):
        assert "maintenance_report" in built[name].task_ids, name


def test_pools_for_crm_and_providers(fixture_clients):
    from marketmap.orchestration.maintenance import monthly_dag, quarterly_personas_dag

    cfg = load_client("sample")
    cfg = cfg.model_copy(update={
        "crm": cfg.crm.model_copy(update={"pool": "crm_sample"}),
        "enrichment": cfg.enrichment.model_validate({"providers": [
            {"name": "apollo", "kind": "apollo", "conn_id": "apollo", "fields": ["employees"]}]}),
    })  # fmt: skip
    m = monthly_dag(cfg)
    assert m.get_task("extract_changes").pool == "crm_sample"
    assert m.get_task("crm_push").pool == "crm_sample"
    assert m.get_task("enrich_gaps").pool == "mm_conn_apollo"
    assert m.get_task("data_quality_audit").pool == "marketmap_sqlite_warehouse"  # embedded warehouse: queued
    assert quarterly_personas_dag(cfg).get_task("enrich_gap_personas").pool == "mm_conn_apollo"


def test_schedule_override_and_off(fixture_clients):
    from marketmap.orchestration.maintenance import drift_dag

    cfg = load_client("sample")
    off = cfg.model_copy(update={"schedules": cfg.schedules.model_copy(update={"drift": None})})
    assert drift_dag(off).timetable.can_be_scheduled is False
    other = cfg.model_copy(update={"schedules": cfg.schedules.model_copy(update={"drift": "0 7 1,15 * *"}),
                                   "timezone": "Asia/Tokyo"})  # fmt: skip
    assert drift_dag(other).timetable.expression == "0 7 1,15 * *"
    assert str(drift_dag(other).timetable.timezone) == "Asia/Tokyo"


def test_building_the_maintenance_dags_imports_no_pandas(fixture_clients):
    code = (
        "import sys\n"
        "from marketmap.orchestration import maintenance\n"
        "from marketmap.config import load_client\n"
        "for b in (maintenance.monthly_dag, maintenance.drift_dag, maintenance.territories_dag):\n"
        "    b(load_client('sample'))\n"
        "heavy = [m for m in ('pandas', 'slack_sdk', 'simple_salesforce', 'hubspot') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_every_run_has_a_clock_with_or_without_a_logical_date():
    """A run triggered through the REST API with "logical_date": null has no logical_date and no
    data interval in its context (Airflow 3's default): the clock is the run's run_after."""
    import datetime as dt
    from types import SimpleNamespace

    import pendulum

    from marketmap.orchestration.resources import run_clock, run_date

    cfg = SimpleNamespace(tz=pendulum.timezone("America/New_York"))
    after = pendulum.datetime(2027, 3, 1, 4, 30, tz="UTC")
    start, end = run_clock({"dag_run": SimpleNamespace(run_after=after)})
    assert start == end == dt.datetime(2027, 3, 1, 4, 30, tzinfo=dt.UTC) and type(end) is dt.datetime
    assert run_date({"dag_run": SimpleNamespace(run_after=after)}, cfg) == dt.date(2027, 2, 28)  # New York
    scheduled = {"data_interval_start": pendulum.datetime(2027, 2, 1, tz="UTC"),
                 "data_interval_end": pendulum.datetime(2027, 3, 1, tz="UTC"), "logical_date": None}  # fmt: skip
    start, end = run_clock(scheduled)
    assert (start.month, end.month) == (2, 3) and type(start) is dt.datetime  # stdlib: safe to subtract/divide
    assert (end - start) / dt.timedelta(days=1) == 28


def test_heavy_tasks_take_the_heavy_pool_when_configured(fixture_clients, monkeypatch):
    """MARKETMAP_HEAVY_POOL_SLOTS (worker memory / 2 GB) puts the memory-bound tasks in one pool."""
    from marketmap.orchestration.factory import build_dag
    from marketmap.orchestration.maintenance import monthly_dag
    from marketmap.pools import HEAVY_POOL, SQLITE_WAREHOUSE_POOL, all_pools

    cfg = load_client("sample")
    monkeypatch.setenv("MARKETMAP_HEAVY_POOL_SLOTS", "3")
    # on the embedded SQLite warehouse every task keeps the one-writer queue
    assert build_dag(cfg).get_task("score_accounts").pool == SQLITE_WAREHOUSE_POOL
    monkeypatch.setenv("MARKETMAP_WAREHOUSE_URL", "postgresql+psycopg://mm@warehouse-db/marketmap")
    b = build_dag(cfg)
    for task in ("ingest", "normalise_dedupe", "load_warehouse", "score_accounts", "value_accounts", "score_contacts"):
        assert b.get_task(task).pool == HEAVY_POOL, task
    assert b.get_task("qa_gate").pool == "default_pool"
    assert monthly_dag(cfg).get_task("score_changes").pool == HEAVY_POOL
    assert all_pools({"sample": cfg})[HEAVY_POOL] == 3
    monkeypatch.delenv("MARKETMAP_HEAVY_POOL_SLOTS")
    assert build_dag(cfg).get_task("score_accounts").pool == "default_pool"
    monkeypatch.setenv("MARKETMAP_HEAVY_POOL_SLOTS", "lots")
    with pytest.raises(ValueError, match="MARKETMAP_HEAVY_POOL_SLOTS must be a whole number"):
        build_dag(cfg)

"""DAG integrity: every client config yields its DAGs, correctly configured, with no import error."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import yaml

from marketmap.config import clients_dir, load_all

ROOT = Path(__file__).resolve().parents[1]
PIPELINE_TAGS = {
    "pipeline:build",
    "pipeline:config_error",
    "pipeline:monthly",
    "pipeline:reports",
    "pipeline:quarterly_personas",
    "pipeline:drift",
    "pipeline:valuation",
    "pipeline:territories",
}
PORTFOLIO = "marketmap__portfolio"  # the one DAG that belongs to no client


def dagbag(clients: Path | None = None):
    from airflow.dag_processing.dagbag import DagBag

    if clients is not None:
        os.environ["MARKETMAP_CLIENTS_DIR"] = str(clients)
    try:
        return DagBag(dag_folder=str(ROOT / "dags"))
    finally:
        os.environ.pop("MARKETMAP_CLIENTS_DIR", None)


@pytest.fixture(scope="module")
def bag():
    return dagbag()


def expected_ids(configs) -> set[str]:
    from marketmap.orchestration.factory import PIPELINES

    return {f"{cid}__{p}" for cid in configs for p in PIPELINES} | {PORTFOLIO}


def test_no_import_errors_and_expected_ids(bag):
    assert bag.import_errors == {}
    assert set(bag.dag_ids) == expected_ids(load_all())


def test_every_dag_is_configured_for_operations(bag):
    for dag_id, dag in bag.dags.items():
        if dag_id == PORTFOLIO:
            assert dag.tags == {"pipeline:portfolio"} and dag.doc_md and dag.catchup is False
            assert all(t.retries >= 1 and t.on_failure_callback and t.doc_md for t in dag.tasks)
            continue
        cid = dag_id.split("__")[0]
        assert dag.catchup is False, dag_id
        assert dag.max_active_runs == 1, dag_id
        assert dag.doc_md and "Effective client config" in dag.doc_md, dag_id
        assert f"client:{cid}" in dag.tags, dag_id
        # closed tag taxonomy: client:<id> and pipeline:<known name>, nothing else
        assert all(t == f"client:{cid}" or t in PIPELINE_TAGS for t in dag.tags), dag.tags
        assert dag.owner not in (None, "", "airflow"), dag_id
        for task in dag.tasks:
            assert task.retries >= 1, (dag_id, task.task_id)
            assert task.on_failure_callback, (dag_id, task.task_id)
            assert task.doc_md, (dag_id, task.task_id)  # the task's docstring, shown in the UI


def test_build_dag_shape_and_params(bag):
    dag = bag.dags["demo__build"]
    order = ["validate_config", "ingest", "normalise_dedupe", "load_warehouse", "enrich_accounts", "score_accounts",
             "enrich_personas", "value_accounts", "score_contacts", "qa_gate", "summary"]  # fmt: skip
    for up, down in zip(order, order[1:], strict=False):
        assert down in dag.get_task(up).downstream_task_ids
    assert dag.params["dry_run"] is False and dag.params["override_qa"] is False
    assert (
        dag.schedule is None
        or dag.timetable.summary in ("None", "@once", None)
        or dag.timetable.periodic is False
    )
    assert dag.timezone.name == "America/New_York"


def test_dag_files_are_thin_loader_shards():
    from marketmap.orchestration.factory import SHARDS

    files = sorted((ROOT / "dags").glob("*.py"), key=lambda f: int(f.stem.rsplit("_", 1)[-1]))
    assert [f.name for f in files] == [f"marketmap_clients_{i}.py" for i in range(SHARDS)]
    for i, f in enumerate(files):
        src = f.read_text()
        imports = [line for line in src.splitlines() if line.startswith(("import ", "from "))]
        assert imports == ["from marketmap.orchestration.factory import build_all_dags"]
        assert f"build_all_dags(shard={i})" in src


def test_every_client_is_in_exactly_one_shard_and_ids_with_double_underscores_work(tmp_path, monkeypatch):
    from marketmap.orchestration.factory import SHARDS, build_all_dags

    d = make_clients(tmp_path, 12)
    eu = yaml.safe_load((d / "client_000.yaml").read_text())
    eu["client_id"] = "client_000__eu"
    (d / "client_000__eu.yaml").write_text(yaml.safe_dump(eu))
    monkeypatch.setenv("MARKETMAP_CLIENTS_DIR", str(d))
    shards = [set(build_all_dags(shard=i)) for i in range(SHARDS)]
    everything = set(build_all_dags())
    assert set().union(*shards) == everything and sum(map(len, shards)) == len(everything)
    assert sum(PORTFOLIO in s for s in shards) == 1
    # a task process of client_000__eu finds its DAG, not client_000's
    monkeypatch.setenv("_AIRFLOW_PARSING_CONTEXT_DAG_ID", "client_000__eu__monthly")
    assert list(build_all_dags()) == ["client_000__eu__monthly"]
    monkeypatch.setenv("_AIRFLOW_PARSING_CONTEXT_DAG_ID", "client_000__monthly")
    assert list(build_all_dags()) == ["client_000__monthly"]


def test_factory_imports_nothing_heavy():
    """Parsing must not import pandas, CRM or Slack clients, or the warehouse (in a fresh interpreter).

    Only ``marketmap.ingest.schema`` (the canonical field names, plain dicts) may be loaded: validation
    checks rubric fields and column mappings against it.

    (httpx and SQLAlchemy are imported by airflow.sdk itself.)"""
    import subprocess
    import sys

    code = (
        "import sys; import marketmap.orchestration.factory as f; f.build_all_dags();"
        "heavy = [m for m in ('pandas', 'numpy', 'simple_salesforce', 'hubspot', 'slack_sdk', 'matplotlib',"
        " 'rapidfuzz', 'tldextract', 'marketmap.warehouse', 'marketmap.ingest.pipeline', 'marketmap.ingest.read')"
        " if m in sys.modules]; heavy += [m for m in sys.modules if m.startswith('marketmap.ingest.')"
        " and m != 'marketmap.ingest.schema']; print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=os.environ.copy())
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_parsing_context_builds_only_the_requested_dag(monkeypatch):
    from marketmap.orchestration.factory import build_all_dags

    monkeypatch.setenv("_AIRFLOW_PARSING_CONTEXT_DAG_ID", "demo__build")
    assert list(build_all_dags()) == ["demo__build"]
    monkeypatch.setenv("_AIRFLOW_PARSING_CONTEXT_DAG_ID", "demo__drift")
    assert list(build_all_dags()) == ["demo__drift"]
    monkeypatch.setenv("_AIRFLOW_PARSING_CONTEXT_DAG_ID", PORTFOLIO)
    assert list(build_all_dags()) == [PORTFOLIO]


def make_clients(tmp_path: Path, n: int) -> Path:
    d = tmp_path / "clients"
    d.mkdir()
    shutil.copy(clients_dir() / "_defaults.yaml", d)
    demo = yaml.safe_load((clients_dir() / "demo.yaml").read_text())
    for i in range(n):
        demo["client_id"] = f"client_{i:03d}"
        demo["name"] = f"Client {i}"
        (d / f"client_{i:03d}.yaml").write_text(yaml.safe_dump(demo))
    return d


def test_hundred_clients(tmp_path):
    d = make_clients(tmp_path, 100)
    bag = dagbag(d)
    assert bag.import_errors == {}
    assert set(bag.dag_ids) == expected_ids([f"client_{i:03d}" for i in range(100)])


def test_broken_client_file_does_not_take_others_down(tmp_path):
    d = make_clients(tmp_path, 2)
    broken = yaml.safe_load((d / "client_001.yaml").read_text())
    broken["icp"]["rubrics"][0]["thresholds"] = {"T1": 10, "T2": 50, "T3": 5}
    (d / "client_001.yaml").write_text(yaml.safe_dump(broken))
    bag = dagbag(d)
    assert bag.import_errors == {}
    assert "client_000__build" in bag.dag_ids
    assert "client_001__build" not in bag.dag_ids
    err = bag.dags["client_001__config_error"]
    assert "icp.rubrics[0].thresholds" in err.doc_md


def test_badly_named_client_file_leaves_every_other_client_intact(tmp_path, caplog):
    """`Acme Corp.yaml` (no valid client id) gets a visible config-error DAG with a safe id; the
    other clients keep all their DAGs, and the loader files import without error."""
    d = make_clients(tmp_path, 2)
    bad = yaml.safe_load((d / "client_000.yaml").read_text())
    bad["client_id"] = "acme_corp"
    (d / "Acme Corp.yaml").write_text(yaml.safe_dump(bad))
    (d / "9lives.yaml").write_text(yaml.safe_dump(bad))
    bag = dagbag(d)
    assert bag.import_errors == {}
    expected = expected_ids(["client_000", "client_001"])
    assert set(bag.dag_ids) == expected | {"invalid_client__acme_corp__config_error",
                                           "invalid_client__9lives__config_error"}  # fmt: skip
    err = bag.dags["invalid_client__acme_corp__config_error"]
    assert err.dag_display_name == "Acme Corp — INVALID CONFIG"
    assert "pipeline:config_error" in err.tags
    assert (
        "file name 'Acme Corp.yaml' is not a valid client id (lower-case letters, digits and _, starting with "
        "a letter, 2-40 characters): rename it, e.g. acme_corp.yaml, and set client_id: acme_corp"
    ) in err.doc_md


def test_task_process_of_a_badly_named_file_finds_its_error_dag(tmp_path, monkeypatch):
    from marketmap.orchestration.factory import build_all_dags

    d = make_clients(tmp_path, 1)
    (d / "Acme Corp.yaml").write_text("client_id: acme_corp\n")
    monkeypatch.setenv("MARKETMAP_CLIENTS_DIR", str(d))
    monkeypatch.setenv("_AIRFLOW_PARSING_CONTEXT_DAG_ID", "invalid_client__acme_corp__config_error")
    assert list(build_all_dags()) == ["invalid_client__acme_corp__config_error"]


def test_credential_in_a_client_file_never_reaches_doc_md(tmp_path):
    d = make_clients(tmp_path, 2)
    leaky = yaml.safe_load((d / "client_001.yaml").read_text())
    leaky["crm"]["api_key"] = "sk-fake-zq7placeholder"
    leaky["slack"]["channels"]["revops"] = "https://hooks.example.com/?token=" + "-".join(["xoxb", "fake", "zq8placeholder"])
    (d / "client_001.yaml").write_text(yaml.safe_dump(leaky))
    bag = dagbag(d)
    assert bag.import_errors == {}
    assert "client_000__build" in bag.dag_ids and "client_001__build" not in bag.dag_ids
    doc = bag.dags["client_001__config_error"].doc_md
    assert "`crm.api_key`: looks like a credential (api_key)" in doc
    assert "`slack.channels.revops`: looks like a credential (token, API key or password in a URL)" in doc
    assert "sk-fake" not in doc and "xoxb" not in doc and "placeholder" not in doc


def test_each_dag_doc_states_its_schedule_in_the_clients_local_time(bag):
    """The UI shows UTC; the doc says the client's timezone and the next runs in local time."""
    import datetime as dt

    from marketmap.orchestration.factory import schedule_doc

    for dag_id, dag in bag.dags.items():
        if dag_id != PORTFOLIO:
            assert "## Schedule" in dag.doc_md, dag_id
    cfg = load_all()["demo"]
    cfg = cfg.model_copy(update={"timezone": "America/New_York",
                                 "schedules": cfg.schedules.model_copy(update={"monthly": "15 6 1 * *"})})  # fmt: skip
    now = dt.datetime(2026, 10, 20, 12, tzinfo=dt.UTC)
    text = schedule_doc(cfg, "monthly", now)
    assert "`15 6 1 * *` in the client's timezone **America/New_York**" in text
    # 06:15 New York is 10:15 UTC in summer time and 11:15 UTC after the clocks change
    assert "Sun 1 Nov 2026 06:15 EST (11:15 UTC); Tue 1 Dec 2026 06:15 EST (11:15 UTC)" in text
    assert "The Airflow UI shows times in UTC" in text
    assert schedule_doc(cfg, "build", now).startswith("No schedule: runs only when triggered")


def test_tasks_of_an_embedded_sqlite_client_queue_in_one_pool(bag, monkeypatch):
    """SQLite has one writer: every task of a client on it holds the warehouse pool (or its
    provider/CRM pool), so overlapping DAGs queue instead of failing with "database is locked"."""
    from marketmap.config import load_all
    from marketmap.pools import SQLITE_WAREHOUSE_POOL, all_pools, crm_pool, pools_for, warehouse_pool

    configs = load_all()
    own = {SQLITE_WAREHOUSE_POOL}
    for cfg in configs.values():
        own |= set(pools_for(cfg)) | ({crm_pool(cfg)} if crm_pool(cfg) else set())
    for dag_id, dag in bag.dags.items():
        if dag_id == PORTFOLIO:
            continue
        for task in dag.tasks:
            assert task.pool in own, (dag_id, task.task_id, task.pool)
    assert all_pools(configs)[SQLITE_WAREHOUSE_POOL] == 1
    cfg = configs["demo"]
    monkeypatch.setenv("MARKETMAP_WAREHOUSE_URL", "postgresql+psycopg://postgres@127.0.0.1/test")
    assert warehouse_pool(cfg) is None  # PostgreSQL takes concurrent writers
    assert warehouse_pool(cfg.model_copy(update={"warehouse_conn_id": "wh"})) is None

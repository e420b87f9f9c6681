"""Storage root (no shared filesystem) and deploy-time migration (tasks only check the schema)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture()
def memory_root(monkeypatch):
    """An fsspec memory:// storage root: anything that bypasses storage fails to find its files."""
    import fsspec

    monkeypatch.setenv("MARKETMAP_STORAGE_URL", "memory://mm-test-root")
    yield
    fs = fsspec.filesystem("memory")
    if fs.exists("/mm-test-root"):
        fs.rm("/mm-test-root", recursive=True)


def test_default_root_is_marketmap_home(mm_home, monkeypatch):
    from marketmap import storage

    monkeypatch.delenv("MARKETMAP_STORAGE_URL", raising=False)
    assert storage.storage_url() == f"file://{mm_home.absolute()}"
    assert os.fspath(storage.inbox_dir("acme")) == str(mm_home / "inbox" / "acme")
    assert storage.is_local(storage.run_dir("acme", "manual__2026-01-01T00:00:00+00:00"))


def test_relative_local_root_is_refused(monkeypatch):
    from marketmap import storage

    monkeypatch.setenv("MARKETMAP_STORAGE_URL", "file://shared/mm")
    with pytest.raises(ValueError, match="must be absolute"):
        storage.root()


def test_reports_outbox_and_crm_files_go_through_storage(memory_root, mm_home):
    """Reports, the CRM import files and the outbox land in the (non-local) storage root and are
    read back from there; nothing is written under the worker's MARKETMAP_HOME."""
    from marketmap import storage
    from marketmap.alerts.delivery import outbox_path, write_outbox
    from marketmap.config import load_client
    from marketmap.crm.base import WriteRecord
    from marketmap.crm.csv_adapter import CsvAdapter
    from marketmap.reports.render import Report, Section, Table, list_reports, write_report

    report = Report(
        kind="executive", title="t", client_id="demo", client_name="Demo", run_id="manual__1",
        sections=[Section(title="s", tables=[Table("won", "Won", pd.DataFrame({"tier": ["T1"], "n": [3]}))])],
    )  # fmt: skip
    html = write_report(report)
    assert str(html) == "memory://mm-test-root/reports/demo/manual__1/executive.html"
    assert "<html" in html.read_text(encoding="utf-8").lower()
    assert (html.parent / "executive__won.csv").read_text(encoding="utf-8").splitlines() == ["tier,n", "T1,3"]
    assert [r["kind"] for r in list_reports("demo")] == ["executive"]

    adapter = CsvAdapter(load_client("demo"))
    adapter.start_run("demo", "manual__1")
    # the canary's batch and the rest, as two workers would write them
    adapter.write("account", "update", [WriteRecord(key="a", crm_id="001A", fields={"Tier__c": "T1"})])
    adapter.write("account", "update", [WriteRecord(key="b", crm_id="001B", fields={"Tier__c": "T2"})])
    path = storage.run_dir("demo", "manual__1") / "crm_import" / "Account_update.csv"
    assert path.read_text(encoding="utf-8").splitlines() == ["Id,Tier__c", "001A,T1", "001B,T2"]

    write_outbox("demo", "#revops", "first")
    write_outbox("demo", "#revops", "second")
    assert [json.loads(x)["text"] for x in outbox_path("demo").read_text().splitlines()] == ["first", "second"]
    assert not (mm_home / "reports").exists() and not (mm_home / "outbox").exists() and not (mm_home / "runs").exists()


def test_demo_export_written_to_and_read_from_storage(memory_root, mm_home):
    """The demo generator writes the inbox in storage; ingest and the export-file provider read it."""
    from marketmap import storage
    from marketmap.config import load_client
    from marketmap.demo.generate import generate_demo_export
    from marketmap.enrichment.providers import providers_for
    from marketmap.ingest.pipeline import export_paths
    from marketmap.ingest.reader import read_export

    counts = generate_demo_export(storage.inbox_dir("demo"), seed=7, n_accounts=500)
    cfg = load_client("demo")
    paths = export_paths(cfg)
    assert str(paths["accounts"]) == "memory://mm-test-root/inbox/demo/Account.csv"
    res = read_export(paths["accounts"], "accounts", "salesforce")
    assert len(res.frame) + len(res.rejected) == counts["Account.csv"]
    files = [p for p in providers_for(cfg) if p.kind == "export_file"]
    assert files and files[0]._table()  # the bought data file, read from storage
    assert not (mm_home / "inbox").exists()


def test_task_engine_checks_schema_and_names_the_fix(tmp_path, monkeypatch):
    from marketmap.warehouse import (
        SchemaNotAtHead,
        dispose_engines,
        get_engine,
        head_revisions,
        schema_revisions,
    )

    monkeypatch.delenv("MARKETMAP_MIGRATE_ON_CONNECT")
    url = f"sqlite:///{tmp_path / 'wh.db'}"
    with pytest.raises(SchemaNotAtHead, match=r"never migrated.*run `marketmap migrate`"):
        get_engine(url)
    eng = get_engine(url, migrate_schema=True)
    assert schema_revisions(eng) == head_revisions()
    dispose_engines()
    assert schema_revisions(get_engine(url)) == head_revisions()  # checked, at head: fine
    dispose_engines()


def test_cli_migrate_runs_airflow_db_migrate_once(tmp_path):
    """`marketmap migrate` migrates Airflow's DB and the warehouse; the second call skips Airflow's."""
    env = {k: v for k, v in os.environ.items() if k != "MARKETMAP_MIGRATE_ON_CONNECT"}
    env.update(AIRFLOW_HOME=str(tmp_path / "af"), MARKETMAP_HOME=str(tmp_path / "mm"))
    cmd = [sys.executable, "-m", "marketmap.cli", "migrate"]
    first = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert first.returncode == 0, first.stderr[-2000:]
    assert "airflow metadata: migrated" in first.stdout
    assert f"warehouse sqlite:///{tmp_path / 'mm' / 'warehouse.db'}: at " in first.stdout
    second = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert second.returncode == 0, second.stderr[-2000:]
    assert "airflow metadata: already migrated" in second.stdout


def test_object_store_paths_are_airflow_object_storage_paths_with_a_connection(memory_root, mm_home, monkeypatch):
    """With MARKETMAP_STORAGE_CONN_ID the orchestration layer builds Airflow ObjectStoragePaths bound
    to that connection; reports and the outbox go through them unchanged."""
    from airflow.sdk import ObjectStoragePath

    import marketmap.orchestration  # noqa: F401 - registers the path factory
    from marketmap import storage
    from marketmap.alerts.delivery import outbox_path, write_outbox
    from marketmap.reports.render import Report, Section, write_report

    monkeypatch.setenv("AIRFLOW_CONN_MM_STORE", '{"conn_type": "generic"}')
    monkeypatch.setenv("MARKETMAP_STORAGE_CONN_ID", "mm_store")
    assert isinstance(storage.root(), ObjectStoragePath)
    html = write_report(Report(kind="executive", title="t", client_id="demo", client_name="Demo",
                               run_id="manual__2", sections=[Section(title="s")]))  # fmt: skip
    assert isinstance(html, ObjectStoragePath) and html.read_text(encoding="utf-8").lower().count("<html") == 1
    # (list_reports stats the files: Airflow registers no filesystem for memory://, only for the
    # schemes its providers bring — s3 with the amazon provider — so it is checked with UPath above.)
    write_outbox("demo", "#revops", "hello")
    assert "hello" in outbox_path("demo").read_text()
    monkeypatch.delenv("MARKETMAP_STORAGE_CONN_ID")
    assert not isinstance(storage.root(), ObjectStoragePath)

"""The build DAG run end to end through Airflow (dag.test) on SQLite and on PostgreSQL."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest
from sqlalchemy import create_engine, func, select

from marketmap.config import load_client
from marketmap.warehouse import schema as t

SAMPLE = Path(__file__).parent / "fixtures" / "salesforce_export"


def run_build(client_id: str, retries: int | None = None, conf: dict | None = None):
    from marketmap.orchestration.factory import build_dag

    dag = build_dag(load_client(client_id))
    if retries is not None:  # dag.test() waits out real retry delays
        for task in dag.tasks:
            task.retries = retries
    return dag.test(run_conf=conf)


# The sample export's 22 accounts belong to one user: below the 50-per-rep QA minimum, so
# these runs override the gate (test_qa_gate_stops_the_run checks that it does stop it).
OVERRIDE = {"override_qa": True}


def fill_inbox(home: Path) -> Path:
    inbox = home / "inbox" / "sample"
    inbox.mkdir(parents=True)
    for f in SAMPLE.glob("*.csv"):
        shutil.copy(f, inbox / f.name)
    # a deliberately bad row (no name) and a duplicate by domain
    path = inbox / "Account.csv"
    header = next(csv.reader(path.read_text(encoding="utf-8-sig").splitlines()))
    with open(path, "a", encoding="utf-8", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=header)
        w.writerow({"Id": "001BAD000000000001", "Website": "broken.example"})
        w.writerow({"Id": "001DUP000000000001", "Name": "Walker Henson & Compton Inc",
                    "Website": "HTTP://walkerhensonandcompton.com/about"})  # fmt: skip
    return inbox


def assert_build(url: str, home: Path, run) -> None:
    assert str(run.state).endswith("success"), run.state
    engine = create_engine(url)
    with engine.connect() as conn:
        n = conn.execute(
            select(func.count()).select_from(t.accounts).where(t.accounts.c.client_id == "sample")
        ).scalar_one()
        # this run's rows only: the session's PostgreSQL database also holds other tests' clients and runs
        m, r = t.account_merges.c, t.rejected_rows.c
        merges = conn.execute(select(m.merged_crm_id).where(m.run_id == run.run_id)).scalars().all()
        rejected = conn.execute(select(r.row_number, r.reason).where(r.run_id == run.run_id)).all()
        summary = conn.execute(select(t.runs.c.summary).where(t.runs.c.run_id == run.run_id)).scalar_one()
    engine.dispose()
    assert n == 22  # 22 real accounts; the duplicate merged, the broken row rejected
    assert merges == ["001DUP000000000001"]
    assert [(r.row_number, r.reason) for r in rejected] == [(24, "Name is blank (required)")]
    assert summary["rows_rejected"] == 1
    assert summary["steps"]["qa"]["overridden"] is True
    assert summary["steps"]["score"]["accounts"] == 22
    out = Path(summary["outputs"])
    assert json.loads((out / "summary.json").read_text())["steps"]["dedupe"]["duplicates_merged"] == 1
    assert "Account.csv,24,Name,,Name is blank (required)" in (out / "rejected_rows.csv").read_text()


@pytest.mark.slow
def test_build_dag_on_sqlite(airflow_db, fixture_clients, mm_home):
    fill_inbox(mm_home)
    run = run_build("sample", conf=OVERRIDE)
    assert_build(f"sqlite:///{mm_home / 'warehouse.db'}", mm_home, run)


@pytest.mark.slow
def test_qa_gate_stops_the_run(airflow_db, fixture_clients, mm_home):
    fill_inbox(mm_home)
    run = run_build("sample", retries=0)
    assert str(run.state).endswith("failed")
    states = {ti.task_id: str(ti.state) for ti in run.get_task_instances()}
    assert states["qa_gate"].endswith("failed")
    assert not states["summary"].endswith("success")
    messages = (mm_home / "outbox" / "sample.jsonl").read_text()
    assert "qa_gate" in messages and "accounts_per_rep" in messages


@pytest.mark.slow
@pytest.mark.postgres
def test_build_dag_on_postgres(airflow_db, fixture_clients, mm_home, pg_database, monkeypatch):
    monkeypatch.setenv("MARKETMAP_WAREHOUSE_URL", pg_database)
    fill_inbox(mm_home)
    run = run_build("sample", conf=OVERRIDE)
    assert_build(pg_database, mm_home, run)
    assert not (mm_home / "warehouse.db").exists()  # nothing went to the SQLite default


@pytest.mark.slow
def test_failed_task_reports_to_revops_outbox(airflow_db, fixture_clients, mm_home):
    # no inbox: ingest fails with a message naming the missing file; the failure callback reports it
    run = run_build("sample", retries=0)
    assert str(run.state).endswith("failed")
    outbox = mm_home / "outbox" / "sample.jsonl"
    messages = [json.loads(line) for line in outbox.read_text().splitlines()]
    assert {m["channel"] for m in messages} == {"#sample-revops", "#mm-architects"}  # RevOps and the architect
    notice = next(m for m in messages if m["channel"] == "#sample-revops")
    assert notice["text"].startswith("Sample Bank Co: the initial build stopped at step `ingest`") or (
        "the initial build stopped at step `ingest`" in notice["text"]
    )
    assert "Account.csv: file not found" in json.dumps(notice["blocks"])
    # the run is recorded as failed in the warehouse by the failure callback (not 'running' for ever)
    from sqlalchemy import select

    from marketmap.warehouse import get_engine
    from marketmap.warehouse import schema as t

    with get_engine().connect() as conn:
        status = conn.execute(select(t.runs.c.status).where(t.runs.c.run_id == run.run_id)).scalar_one()
    assert status == "failed"

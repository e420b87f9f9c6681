"""`marketmap build` through Airflow: flags reach the run, a failure is summarised and recorded."""

from __future__ import annotations

from sqlalchemy import create_engine, select

from marketmap import cli
from marketmap.warehouse import schema as t
from tests.test_build_dag_run import fill_inbox


def runs(home) -> list[tuple[str, str, bool]]:
    engine = create_engine(f"sqlite:///{home / 'warehouse.db'}")
    with engine.connect() as conn:
        rows = conn.execute(
            select(t.runs.c.run_id, t.runs.c.status, t.runs.c.finished_at.is_not(None)).order_by(
                t.runs.c.started_at
            )
        ).all()
    engine.dispose()
    return [tuple(r) for r in rows]


def test_params_are_parsed_like_yaml():
    assert cli.params(["dry_run=true", "limit=3", "note=QA waived by Ana"]) == {
        "dry_run": True, "limit": 3, "note": "QA waived by Ana"}  # fmt: skip


def test_build_failure_is_summarised_and_recorded_then_override_qa_goes_on(
    airflow_db, fixture_clients, mm_home, monkeypatch, capsys
):
    # the session fixture migrated Airflow's database already
    monkeypatch.setattr(cli, "_airflow_db_migrate", lambda: None)
    fill_inbox(mm_home)
    # 22 accounts for one rep: below the QA gate's 50-per-rep minimum, so the run stops at qa_gate
    assert cli.main(["build", "--client", "sample", "--dry-run"]) == 1
    out = capsys.readouterr().out.splitlines()
    # The summary comes before everything else the command prints. (Under pytest, Airflow's
    # structlog writes to pytest's capture stream, which no redirect of fd 1 reaches: skip its lines.)
    out = [line for line in out if " [warning  ] " not in line]
    assert out[0].startswith("FAILED: sample__build stopped at step qa_gate: QAGateFailed: QA gate failed for sample "
                             "(accounts_per_rep) — nothing will be written to the CRM.")  # fmt: skip
    assert out[1] == "6 later step(s) did not run; the run is recorded as failed in the warehouse."
    assert out[2].startswith(f"Details (task logs, traceback): {mm_home / 'logs' / 'cli'}/sample__build-")
    assert not any("Traceback" in line for line in out)
    log = out[2].split(": ", 1)[1]
    with open(log, encoding="utf-8") as fh:
        assert "qa_gate" in fh.read()
    [(run_id, status, finished)] = runs(mm_home)
    assert status == "failed" and finished

    # the same with --override-qa (and a --param) goes through, as a dry run
    assert (
        cli.main(["build", "--client", "sample", "--dry-run", "--override-qa", "--param", "note=pilot"]) == 0
    )
    out = capsys.readouterr().out
    assert "FAILED" not in out and "finished with state" in out and "success" in out
    (first, second) = runs(mm_home)
    assert first == (run_id, "failed", True)
    assert second[1] != "running"

"""Report tasks: thin calls into ``marketmap.reports`` (heavy imports inside the tasks).

The build DAG appends :func:`validation_report` after ``summary``; :func:`publish_scores` emits the
client's scores asset, which schedules ``<client>__reports`` (:func:`build_reports`,
:func:`maintenance_report`); drift, valuation and territory DAGs call :func:`maintenance_report`
with the views their alerts link to.
Each task returns small strings (paths and links) and records the links in the run's
summary, so the run summary and the Slack alerts can point at the reports.
"""

from __future__ import annotations

from airflow.sdk import get_current_context, task


def record_links(cfg, engine, run_id: str, links: dict[str, str]) -> None:
    """Add report links to the run's stored summary (``summary["reports"]``), if the run exists."""
    from sqlalchemy import select

    from marketmap.warehouse import schema as t

    r = t.runs.c
    with engine.begin() as conn:
        row = conn.execute(select(r.summary).where(r.client_id == cfg.client_id, r.run_id == run_id)).first()
        if row is None:
            return
        summary = dict(row.summary or {})
        summary["reports"] = {**summary.get("reports", {}), **links}
        conn.execute(
            t.runs.update().where(r.client_id == cfg.client_id, r.run_id == run_id).values(summary=summary)
        )


def write_reports(client_id: str, run_id: str, kinds: list[str], **kwargs) -> dict[str, str]:
    """Generate ``kinds`` for a run; return ``{kind: url}`` and record them in the run summary."""
    from marketmap.orchestration.resources import load_effective, warehouse
    from marketmap.reports import generate
    from marketmap.reports.render import report_url

    cfg = load_effective(client_id)
    engine = warehouse(cfg)
    links = {}
    for kind in kinds:
        path = generate(kind, cfg, engine, run_id, **kwargs.get(kind, {}))
        print(f"{kind} report: {path}")
        links[kind] = report_url(client_id, run_id, kind)
    record_links(cfg, engine, run_id, links)
    return links


@task(multiple_outputs=False)
def validation_report(client_id: str, steps: dict | None = None) -> str:
    """Write the validation report of this load (HTML + CSV); return its link."""
    run_id = get_current_context()["run_id"]
    return write_reports(client_id, run_id, ["validation"], validation={"steps": steps})["validation"]


@task(multiple_outputs=False)
def build_reports(client_id: str) -> dict[str, str]:
    """Write the executive, distribution and rep-cockpit reports; return their links."""
    return write_reports(client_id, get_current_context()["run_id"], ["executive", "distribution", "cockpit"])


@task(multiple_outputs=False)
def maintenance_report(client_id: str, views: list[str] | None = None) -> str:
    """Write the maintenance review (back-test, drift, valuation, territory views); return its link.

    Alerts link to ``<link>#<view>``.
    """
    views = views or ["backtest", "drift", "valuation", "territory"]
    run_id = get_current_context()["run_id"]
    return write_reports(client_id, run_id, ["maintenance"], maintenance={"views": tuple(views)})[
        "maintenance"
    ]


@task(multiple_outputs=False)
def publish_scores(client_id: str, steps: list[dict]) -> dict:
    """Emit the client's scores asset when this run wrote scores, valuations or persona scores
    (the task is skipped, and nothing is scheduled, when nothing changed)."""
    from airflow.sdk.exceptions import AirflowSkipException

    written = sum(int((s or {}).get(k) or 0) for s in steps
                  for k in ("written", "scores_written", "values_written", "contacts_written"))  # fmt: skip
    if not written:
        raise AirflowSkipException("no score changed: the reports are current")
    import datetime as dt

    from marketmap.orchestration.resources import load_effective, warehouse
    from marketmap.portfolio.data import refresh_status

    cfg = load_effective(client_id)
    tiers = refresh_status(cfg, warehouse(cfg), get_current_context()["run_id"], dt.datetime.now(dt.UTC))
    return {"client_id": client_id, "rows_written": written, "tiers": tiers}

"""Alerts from inside a task: links a person can open, then the alert store (dedupe, Slack, resolve).

Every pipeline sends its alerts through :func:`send_alerts`, so build-time enrichment alerts,
maintenance alerts and failure notices are deduplicated, routed and resolved alike.
Links point at pages, never at a worker's files: the Airflow run, and the report as
served by the portfolio app (``<base>/marketmap/clients/<client>/reports/<run>/<file>``).
"""

from __future__ import annotations

import datetime as dt
import os


def airflow_base_url() -> str | None:
    """Airflow's public address (``[api] base_url``); the embedded default sets it for `make ui`."""
    base = os.environ.get("AIRFLOW__API__BASE_URL")
    if not base:
        try:
            from airflow.configuration import conf

            base = conf.get("api", "base_url", fallback=None)
        except Exception:  # noqa: BLE001 - no config: messages go out without links
            base = None
    return base.rstrip("/") if base else None


def links(dag_id: str, run_id: str, report_url: str | None = None) -> dict:
    from marketmap.alerts.blocks import run_url

    return {"run": run_url(airflow_base_url(), dag_id, run_id), "report": report_url}


def send_alerts(cfg, engine, dag_id: str, run_id: str, now: dt.datetime, candidates: list, rules,
                report_url: str | None = None) -> dict:  # fmt: skip
    """Decide, deliver and record a run's alert candidates (see ``alerts.engine.process_alerts``)."""
    from marketmap.alerts.engine import process_alerts

    for a in candidates:  # a candidate's own report link must be a URL too
        if a.report and not str(a.report).startswith(("http://", "https://")):
            a.report = report_url
    out = process_alerts(cfg, engine, run_id, now, candidates, set(rules), links(dag_id, run_id, report_url))
    print(f"alerts: {out['fired']} fired, {out['updated']} updated, {out['resolved']} resolved "
          f"({out['candidates']} candidates)")  # fmt: skip
    return out

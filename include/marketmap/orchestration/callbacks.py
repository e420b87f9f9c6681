"""Task failure callback: tell the client's RevOps channel which task failed and why.

Built per client at parse time for nothing (a partial of a module-level function), it
does its work only when a task fails. The message goes through the alert outbox or
Slack (see marketmap.alerts.delivery); secrets are redacted.
"""

from __future__ import annotations

import functools
import logging

log = logging.getLogger(__name__)


def notify_failure(context: dict, *, client_id: str) -> None:
    """Report a failed task instance to the client's RevOps channel."""
    from marketmap.alerts.delivery import deliver_task_failure
    from marketmap.orchestration.alerting import airflow_base_url

    ti = context.get("ti") or context.get("task_instance")
    exc = context.get("exception")
    try:
        deliver_task_failure(
            client_id=client_id,
            dag_id=getattr(ti, "dag_id", None) or context.get("dag").dag_id,
            task_id=getattr(ti, "task_id", "?"),
            run_id=context.get("run_id") or getattr(ti, "run_id", "?"),
            try_number=getattr(ti, "try_number", None),
            error=f"{type(exc).__name__}: {exc}" if exc else "unknown error",
            base_url=airflow_base_url(),
        )
    except Exception:  # a broken notifier must never hide the original failure
        log.exception("could not deliver the failure notice for client %s", client_id)
    try:  # the run is recorded as failed in the warehouse (portfolio, run history), not 'running' for ever
        from marketmap.ingest.pipeline import close_failed_run
        from marketmap.orchestration.resources import load_effective, warehouse

        run_id = context.get("run_id") or getattr(ti, "run_id", None)
        if run_id:
            close_failed_run(warehouse(load_effective(client_id)), client_id, run_id)
    except Exception:  # the same: never hide the original failure
        log.exception("could not record the failed run of client %s", client_id)


def failure_callback(client_id: str):
    return functools.partial(notify_failure, client_id=client_id)


def notify_portfolio_failure(context: dict) -> None:
    """Report a failed task of the portfolio DAG to every architects' channel."""
    from marketmap.alerts.delivery import deliver
    from marketmap.config import ConfigError, client_files, load_client

    ti = context.get("ti") or context.get("task_instance")
    exc = context.get("exception")
    text = (
        f":red_circle: Market Map portfolio: task `{getattr(ti, 'task_id', '?')}` failed "
        f"(run {context.get('run_id')}). Error: {type(exc).__name__ if exc else 'unknown'}: {str(exc)[:400]}"
    )
    channels: dict[str, str | None] = {}
    for path in client_files():
        try:
            cfg = load_client(path.stem)
        except ConfigError:
            continue
        channels.setdefault(cfg.slack.channels["architect"], cfg.slack.conn_id)
    for channel, conn_id in channels.items():
        try:
            deliver("_portfolio", conn_id, channel, text, kind="task_failure")
        except Exception:  # a broken notifier must never hide the original failure
            log.exception("could not deliver the portfolio failure notice to %s", channel)

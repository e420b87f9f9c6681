"""The ``marketmap__portfolio`` DAG: a daily digest to the architects' Slack channel.

Which clients need attention and why (failed runs, critical alerts, credit burn, due
check-ins), from the warehouse. Sent only when something changed: the digest's
fingerprint (per channel) is stored in the warehouse ``runs`` table under the reserved
client id ``_portfolio`` (no client id can start with ``_``), so a retry or an unchanged
day sends nothing, and a portfolio that becomes all clear says so once.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging

import pendulum
from airflow.sdk import DAG, get_current_context, task

from marketmap.orchestration.callbacks import notify_portfolio_failure

log = logging.getLogger(__name__)

PORTFOLIO_DAG_ID = "marketmap__portfolio"
STATE_CLIENT = "_portfolio"


def _configs() -> list:
    from marketmap.config import ConfigError, client_files
    from marketmap.orchestration.resources import load_effective

    out = []
    for path in client_files():
        try:
            out.append(load_effective(path.stem))
        except ConfigError:
            log.warning("client %s has an invalid config: left out of the digest", path.stem)
    return out


def fingerprint(rows: list[dict]) -> str:
    """What the digest says, without timestamps: changes only when the attention list changes."""
    key = sorted((r["client_id"], sorted(r["attention"])) for r in rows if r["attention"])
    return hashlib.sha256(json.dumps(key).encode()).hexdigest()[:16]


def digest_text(rows: list[dict], base_url: str) -> str:
    """The Slack message: one line per client that needs attention, with its reasons and page."""
    needing = [r for r in rows if r["attention"]]
    if not needing:
        return f":white_check_mark: Market Map portfolio: all {len(rows)} clients are fine now. {base_url}/marketmap/portfolio"
    lines = [f":eyes: Market Map portfolio: {len(needing)} of {len(rows)} clients need attention"]
    for r in needing:
        lines.append(
            f"• *{r['name']}* ({r['client_id']}): "
            + "; ".join(r["attention"])
            + f" — {base_url}/marketmap/clients/{r['client_id']}"
        )
    return "\n".join(lines)


def _last_fingerprint(engine, channel: str) -> str | None:
    from sqlalchemy import select

    from marketmap.warehouse import schema as t

    r = t.runs.c
    with engine.connect() as conn:
        row = conn.execute(
            select(r.summary)
            .where(r.client_id == STATE_CLIENT, r.pipeline == "portfolio", r.status == "sent")
            .order_by(r.started_at.desc())
        ).all()
    for (summary,) in row:
        if summary and summary.get("channel") == channel:
            return summary.get("fingerprint")
    return None


def send_digest(run_id: str, now: dt.datetime | None = None, configs: list | None = None) -> dict:
    """Build the digest per architect channel and send the ones that changed.

    Returns:
        ``{channel: {"sent": bool, "fingerprint", "clients_needing_attention"}}``.
    """
    import os

    from marketmap.alerts.delivery import deliver
    from marketmap.orchestration.resources import warehouse
    from marketmap.portfolio.data import portfolio
    from marketmap.warehouse import get_engine, upsert
    from marketmap.warehouse import schema as t

    now = now or dt.datetime.now(dt.UTC)
    configs = _configs() if configs is None else configs
    rows = portfolio(configs, warehouse, now=now)
    conn_of = {c.client_id: c.slack.conn_id for c in configs}
    base_url = os.environ.get("AIRFLOW__API__BASE_URL", "http://localhost:8080").rstrip("/")
    state = get_engine()  # the digest's own state lives in the default warehouse
    by_channel: dict[str, list[dict]] = {}
    for r in rows:
        by_channel.setdefault(r["architect_channel"], []).append(r)
    result = {}
    for channel, channel_rows in sorted(by_channel.items()):
        fp = fingerprint(channel_rows)
        previous = _last_fingerprint(state, channel)
        # Nothing recorded yet counts as "all clear": a quiet portfolio sends nothing on day one.
        changed = fp != (previous or fingerprint([]))
        if changed:
            # The architects' Slack connection: the one their clients' configs name (outbox without).
            conn_id = next(
                (conn_of[r["client_id"]] for r in channel_rows if conn_of.get(r["client_id"])), None
            )
            deliver(
                STATE_CLIENT, conn_id, channel, digest_text(channel_rows, base_url), kind="portfolio_digest"
            )
        with state.begin() as conn:
            upsert(conn, t.runs, [{
                "client_id": STATE_CLIENT, "run_id": f"{run_id}:{channel}"[:255], "pipeline": "portfolio",
                "started_at": now, "finished_at": now, "status": "sent" if changed else "unchanged",
                "summary": {"channel": channel, "fingerprint": fp, "attention": {r["client_id"]: r["attention"] for r in channel_rows}},
            }])  # fmt: skip
        # A retried run finds its own "sent" row above and does not send twice.
        result[channel] = {
            "sent": changed,
            "fingerprint": fp,
            "clients_needing_attention": sum(1 for r in channel_rows if r["attention"]),
        }
    return result


@task(multiple_outputs=False)
def portfolio_digest() -> dict:
    """Tell the architects which clients need attention and why, when that changed."""
    return send_digest(get_current_context()["run_id"])


def build_portfolio_dag() -> DAG:
    """The ``marketmap__portfolio`` DAG (daily, 07:00 UTC)."""
    with DAG(
        dag_id=PORTFOLIO_DAG_ID,
        dag_display_name="Market Map — portfolio digest",
        schedule="0 7 * * *",
        start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
        catchup=False,
        max_active_runs=1,
        default_args={
            "owner": "architects",
            "retries": 2,
            "retry_delay": dt.timedelta(minutes=2),
            "on_failure_callback": notify_portfolio_failure,
        },
        tags=["pipeline:portfolio"],
        doc_md=__doc__,
    ) as dag:
        portfolio_digest()
    return dag

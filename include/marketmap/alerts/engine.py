"""From candidate alerts to messages: decide (store), render (Block Kit), route, deliver, record.

``process_alerts`` is what a maintenance task calls after its rules ran. It sends each
decision to the channels of its stakeholder role (RevOps for data and credits,
leadership for drift, valuation and territories) and the architect's channel, then
records it — one decision at a time, so a Slack failure half-way leaves the rest to the
task's retry, and what was sent is never sent again.
"""

from __future__ import annotations

import datetime as dt
import logging

from sqlalchemy import Engine

from marketmap import units
from marketmap.alerts import store
from marketmap.alerts.blocks import render
from marketmap.alerts.delivery import Sender, deliver, routed_channels
from marketmap.alerts.rules import Alert
from marketmap.config import ClientConfig

log = logging.getLogger(__name__)


def process_alerts(
    cfg: ClientConfig,
    engine: Engine,
    run_id: str,
    now: dt.datetime,
    candidates: list[Alert],
    rules: set[str],
    links: dict[str, str | None] | None = None,
    sender: Sender | None = None,
    raised: dt.datetime | None = None,
) -> dict:
    """Decide, deliver and record this run's alerts.

    Args:
        candidates: what the rules found (every one must belong to ``cfg``'s client).
        rules: the rules this run evaluated; their open alerts without a candidate resolve.
        now: the run's logical date (re-runs of the interval decide the same).
        links: ``run`` (Airflow run URL) and ``report`` (report path) for the messages.
        sender: a Slack sender (tests); default from ``slack.conn_id``, else the outbox.
        raised: the wall-clock time the alerts go out (default: now); messages say it, and say
            when a catch-up run raised them for an earlier date.

    Returns:
        counts per event and the fingerprints sent: ``{"fired", "updated", "resolved",
        "candidates", "sent": [{"event", "fingerprint", "rule", "channels"}]}``.
    """
    for a in candidates:
        if a.client_id != cfg.client_id:  # one client's run never writes to another's channels
            raise ValueError(f"alert {a.rule} belongs to {a.client_id}, not {cfg.client_id}")
    links = links or {}
    when = units.raised_line(raised or dt.datetime.now(dt.UTC), now, cfg.tz)
    decisions = store.decide(engine, cfg.client_id, candidates, rules, now, cfg.maintenance.alert_snooze_days)
    counts = {"fired": 0, "updated": 0, "resolved": 0}
    sent = []
    for d in decisions:
        if d.event == "resolved" and not d.payload.get("resolve_notice", True):
            store.record(engine, cfg.client_id, d, run_id, now, [])  # a past reminder closes silently
            continue
        text, blocks = render(cfg.name, d, links, when)
        channels = routed_channels(dict(cfg.slack.channels), d.role)
        deliveries = [
            deliver(
                cfg.client_id, cfg.slack.conn_id, ch, text, blocks, kind=f"alert_{d.event}", sender=sender
            )
            for ch in channels
        ]
        store.record(engine, cfg.client_id, d, run_id, now, deliveries)
        counts[d.event] += 1
        sent.append({"event": d.event, "fingerprint": d.fingerprint, "rule": d.rule, "channels": channels})
        log.info("alert %s %s (%s) -> %s", d.event, d.rule, d.fingerprint, ", ".join(channels))
    return {**counts, "candidates": len(candidates), "sent": sent}

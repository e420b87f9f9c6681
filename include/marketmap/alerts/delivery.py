"""Deliver messages to a client's stakeholders: Slack when a connection is configured,
otherwise a local outbox file (``$MARKETMAP_HOME/outbox/<client>.jsonl``) and the log."""

from __future__ import annotations

import datetime as dt
import json
import logging

from marketmap.orchestration.redact import redact
from marketmap.settings import marketmap_home

log = logging.getLogger(__name__)


def outbox_path(client_id: str):
    return marketmap_home() / "outbox" / f"{client_id}.jsonl"


def write_outbox(
    client_id: str, channel: str, text: str, blocks: list | None = None, kind: str = "message"
) -> dict:
    msg = {
        "at": dt.datetime.now(dt.UTC).isoformat(),
        "client_id": client_id,
        "channel": channel,
        "kind": kind,
        "text": redact(text),
        "blocks": json.loads(redact(json.dumps(blocks))) if blocks else None,
    }
    path = outbox_path(client_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(msg) + "\n")
    log.info("outbox %s %s: %s", client_id, channel, msg["text"])
    return msg


def deliver_task_failure(
    *, client_id: str, dag_id: str, task_id: str, run_id: str, try_number: int | None, error: str
) -> dict:
    """Tell the client's RevOps channel that a task failed (after its retries)."""
    from marketmap.config import load_client

    cfg = load_client(client_id)
    channel = cfg.slack.channels["revops"]
    text = (
        f":red_circle: {cfg.name}: task `{task_id}` of `{dag_id}` failed (run {run_id}, try {try_number}).\n"
        f"Error: {error[:500]}"
    )
    return write_outbox(client_id, channel, text, kind="task_failure")

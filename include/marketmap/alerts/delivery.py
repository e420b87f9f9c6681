"""Deliver messages to a client's stakeholders: Slack when a connection is configured,
otherwise the client's outbox file (``<storage root>/outbox/<client>.jsonl``, shared by every
worker, see :mod:`marketmap.storage`) and the log.

Slack goes through slack_sdk's ``WebClient`` with its retry handlers: a 429 is retried
after the ``Retry-After`` the server asks for, connection errors and 5xx a few times.
The Slack connection (``slack.conn_id``: conn_type slack, bot token in the password,
optional ``base_url`` in the extra) is resolved only when a task sends something.
Every text and block is redacted before it leaves the process.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Callable
from typing import Any

from marketmap import storage
from marketmap.redact import redact

log = logging.getLogger(__name__)

#: ``(channel, text, blocks) -> {"channel", "ts"}``; raises on a Slack error.
Sender = Callable[[str, str, list | None], dict]


class DeliveryError(Exception):
    """Slack refused a message (bad channel, bad token …) after the retries."""


def outbox_path(client_id: str):
    return storage.outbox_path(client_id)


def _clean_blocks(blocks: list | None) -> list | None:
    return json.loads(redact(json.dumps(blocks))) if blocks else None


def write_outbox(
    client_id: str, channel: str, text: str, blocks: list | None = None, kind: str = "message"
) -> dict:
    """Append one message to the client's outbox file and the task log."""
    msg = {
        "at": dt.datetime.now(dt.UTC).isoformat(),
        "client_id": client_id,
        "channel": channel,
        "kind": kind,
        "text": redact(text),
        "blocks": _clean_blocks(blocks),
    }
    storage.append_text(outbox_path(client_id), json.dumps(msg) + "\n")
    log.info("outbox %s %s: %s", client_id, channel, msg["text"])
    return msg


def slack_sender(token: str, base_url: str | None = None, max_retries: int = 3, timeout: int = 30) -> Sender:
    """A sender posting with ``chat.postMessage`` through slack_sdk, retrying 429s and 5xx."""
    from slack_sdk import WebClient
    from slack_sdk.errors import SlackApiError
    from slack_sdk.http_retry.builtin_handlers import (
        ConnectionErrorRetryHandler,
        RateLimitErrorRetryHandler,
        ServerErrorRetryHandler,
    )

    client = WebClient(
        token=token,
        base_url=base_url or WebClient.BASE_URL,
        timeout=timeout,
        retry_handlers=[
            RateLimitErrorRetryHandler(max_retry_count=max_retries),  # sleeps Retry-After seconds
            ServerErrorRetryHandler(max_retry_count=max_retries),
            ConnectionErrorRetryHandler(max_retry_count=max_retries),
        ],
    )

    def send(channel: str, text: str, blocks: list | None) -> dict:
        try:
            resp = client.chat_postMessage(channel=channel, text=text, blocks=blocks, unfurl_links=False)
        except SlackApiError as e:
            raise DeliveryError(
                f"Slack refused the message to {channel}: {e.response.get('error')}"
            ) from None
        return {"channel": resp.get("channel", channel), "ts": resp.get("ts")}

    return send


def connection_sender(conn_id: str) -> Sender:
    """A Slack sender from the connection ``conn_id`` (Airflow's, through :mod:`marketmap.connections`)."""
    from marketmap.connections import get_connection

    conn = get_connection(conn_id)
    extra = conn.extra_dejson or {}
    token = conn.password or extra.get("token")
    if not token:
        raise DeliveryError(
            f"Airflow connection '{conn_id}' has no Slack token (put it in the password field)"
        )
    return slack_sender(token, extra.get("base_url") or conn.host or None)


def deliver(
    client_id: str,
    conn_id: str | None,
    channel: str,
    text: str,
    blocks: list | None = None,
    kind: str = "message",
    sender: Sender | None = None,
) -> dict:
    """Send one message to Slack (``conn_id`` or an explicit ``sender``) or to the outbox."""
    if sender is None and not conn_id:
        msg = write_outbox(client_id, channel, text, blocks, kind)
        return {"via": "outbox", "channel": channel, "at": msg["at"]}
    sender = sender or connection_sender(conn_id)  # type: ignore[arg-type]
    result = sender(channel, redact(text), _clean_blocks(blocks))
    log.info("slack %s %s: %s", client_id, channel, redact(text))
    return {"via": "slack", **result, "channel": channel}


PIPELINE_WORDS = {
    "build": "initial build", "monthly": "monthly maintenance", "quarterly_personas": "quarterly persona refresh",
    "drift": "weekly ICP drift check", "valuation": "valuation recalibration", "territories": "territory check",
    "reports": "reports refresh",
}  # fmt: skip


def deliver_task_failure(
    *, client_id: str, dag_id: str, task_id: str, run_id: str, try_number: int | None, error: str,
    base_url: str | None = None,
) -> list[dict]:  # fmt: skip
    """Tell RevOps and the architect, in words, that a step failed after its retries.

    Which pipeline and step, the error in one line (secrets redacted), a link to the step's log
    in the Airflow UI, and what to do next. Returns one delivery per channel.
    """
    from urllib.parse import quote

    from marketmap.alerts.blocks import escape
    from marketmap.config import load_client

    cfg = load_client(client_id)
    pipeline = dag_id.removeprefix(f"{client_id}__")
    what = PIPELINE_WORDS.get(pipeline, pipeline.replace("_", " "))
    first_line = next((line.strip() for line in str(error).splitlines() if line.strip()), "unknown error")
    first_line = redact(first_line)[:300]
    log_url = (
        f"{base_url.rstrip('/')}/dags/{quote(dag_id, safe='')}/runs/{quote(run_id, safe='')}/tasks/{quote(task_id, safe='')}"
        if base_url
        else None
    )
    tries = f" after {try_number} tries" if try_number and try_number > 1 else ""
    text = (
        f":red_circle: {escape(cfg.name)}: the {escape(what)} stopped at step `{escape(task_id)}`{tries}. "
        f"Nothing after that step ran."
    )
    steps = (
        "Read the step's log, fix the cause (data, credentials, a CRM or provider outage), then clear the "
        "failed step in the Airflow UI to resume the run: finished steps are not repeated and nothing is "
        "written twice."
    )
    lines = [f"*Error:* {escape(first_line)}"]
    if log_url:
        lines.append(f"*Log:* <{log_url}|{escape(task_id)} in {escape(dag_id)}>")
    lines.append(f"*What to do next:* {steps}")
    blocks = [
        {"type": "section", "text": {"type": "mrkdwn", "text": text[:3000]}},
        {"type": "section", "text": {"type": "mrkdwn", "text": "\n".join(lines)[:3000]}},
        {"type": "context", "elements": [
            {"type": "mrkdwn", "text": f"client `{escape(client_id)}` · run `{escape(run_id)}`"}]},
    ]  # fmt: skip
    out = []
    for channel in routed_channels(dict(cfg.slack.channels), "revops"):
        try:
            out.append(deliver(client_id, cfg.slack.conn_id, channel, text, blocks, kind="task_failure"))
        except Exception:  # Slack down must not lose the notice: fall back to the outbox
            log.exception("Slack delivery of a failure notice failed; writing it to the outbox")
            out.append(write_outbox(client_id, channel, text, blocks, kind="task_failure"))
    return out


def routed_channels(channels: dict[str, str], role: str) -> list[str]:
    """The role's channel plus the architect's (who sees everything of their clients), once each."""
    out = [channels[role]]
    if channels.get("architect") and channels["architect"] not in out:
        out.append(channels["architect"])
    return out


def summary_line(result: dict[str, Any]) -> str:
    return ", ".join(f"{k} {v}" for k, v in result.items() if isinstance(v, int))

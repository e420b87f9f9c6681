"""Slack Block Kit messages for alerts: the numbers that triggered it, what to do next, links.

Pure functions: a decision in, ``(text, blocks)`` out. ``text`` is the notification
fallback Slack shows in previews and screen readers; blocks carry the detail.

Every piece of data that goes into mrkdwn text (client, company and rep names, titles,
numbers, report paths) passes :func:`escape`: Slack reads ``<!channel>`` or
``<https://x|text>`` as a ping or a disguised link, so ``&``, ``<`` and ``>`` become
``&amp;``, ``&lt;``, ``&gt;`` (Slack's own escaping). Only links this module builds stay
links. ``plain_text`` (the header) is never parsed, so it is not escaped.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from marketmap.alerts.store import Decision

ICONS = {"critical": ":red_circle:", "warning": ":large_orange_circle:", "info": ":large_blue_circle:"}
MAX_FIELDS = 10  # Slack's limit of fields per section


def run_url(base_url: str | None, dag_id: str, run_id: str) -> str | None:
    """The Airflow UI page of a DAG run (Airflow 3: ``/dags/<dag_id>/runs/<run_id>``)."""
    if not base_url:
        return None
    return f"{base_url.rstrip('/')}/dags/{quote(dag_id, safe='')}/runs/{quote(run_id, safe='')}"


def escape(text: Any) -> str:
    """Slack mrkdwn escaping of data: ``&``, ``<`` and ``>`` (in that order)."""
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _fmt(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if 0 < abs(value) < 1:
            return f"{value:.1%}" if abs(value) >= 0.001 else f"{value:.2g}"
        return f"{value:,.2f}".rstrip("0").rstrip(".") if abs(value) < 1000 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, list | tuple):
        return ", ".join(_fmt(v) for v in value[:6]) + (" …" if len(value) > 6 else "")
    if isinstance(value, dict):
        return ", ".join(f"{k} {_fmt(v)}" for k, v in list(value.items())[:6])
    return str(value)


def _label(key: str) -> str:
    return key.replace("_", " ")


def _fields(numbers: dict) -> list[dict]:
    return [
        {"type": "mrkdwn", "text": f"*{escape(_label(k))}*\n{escape(_fmt(v))}"[:2000]}
        for k, v in numbers.items()
        if not isinstance(v, dict | list) or len(str(v)) < 200
    ][:MAX_FIELDS]


def _report_link(report: str) -> str:
    """A report URL as a Slack link; anything else (never expected) stays inert text."""
    if report.startswith(("https://", "http://")) and not any(c in report for c in "<>|"):
        return f"<{report}|Open the report>"
    return f"report: `{escape(report)}`"


def render(
    client_name: str, d: Decision, links: dict[str, str | None], when: str | None = None
) -> tuple[str, list[dict]]:
    """Text and Block Kit blocks of one decision (fired, updated or resolved).

    ``when`` says when the alert was raised (and for which run, when a catch-up run raised it).
    """
    name, title = escape(client_name), escape(d.title)
    payload = d.payload
    if d.event == "resolved":
        text = f":white_check_mark: Resolved — {name}: {title}"
        blocks: list[dict] = [{"type": "section", "text": {"type": "mrkdwn", "text": text[:3000]}}]
        if payload.get("current"):
            fields = _fields(payload.get("numbers") or {})
            if fields:
                blocks.append({"type": "section", "fields": fields})
            if payload.get("confidence"):
                blocks.append({"type": "section", "text": {"type": "mrkdwn",
                               "text": f"*Evidence now:* {escape(payload['confidence'])}"[:3000]}})  # fmt: skip
        else:
            blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": (
                "The rule no longer finds this condition (it could not be computed this run, or the "
                "data it was about is gone); no current numbers to show.")}})  # fmt: skip
        if payload.get("fired_title") and payload.get("fired_title") != d.title:
            blocks.append({"type": "context", "elements": [{"type": "mrkdwn",
                           "text": f"Was: {escape(payload['fired_title'])}"[:3000]}]})  # fmt: skip
        context = [f"rule `{escape(d.rule)}`", f"fingerprint `{escape(d.fingerprint)}`"]
        if when:
            context.insert(0, escape(when))
        if links.get("run"):
            context.append(f"<{links['run']}|Airflow run>")
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": " · ".join(context)}]})
        return text, blocks

    icon = ICONS.get(d.severity, "")
    prefix = "Update — " if d.event == "updated" else ""
    text = f"{icon} {prefix}{name}: {title}"
    numbers = payload.get("numbers") or {}
    blocks = [
        {
            "type": "header",
            "text": {
                "type": "plain_text",
                "text": f"{prefix}{client_name}: {d.rule.replace('_', ' ')}"[:150],
            },
        },
        {"type": "section", "text": {"type": "mrkdwn", "text": f"{icon} *{title}*"[:3000]}},
    ]
    fields = _fields(numbers)
    if fields:
        blocks.append({"type": "section", "fields": fields})
    if payload.get("confidence"):
        blocks.append(
            {
                "type": "section",
                "text": {"type": "mrkdwn", "text": f"*Evidence:* {escape(payload['confidence'])}"[:3000]},
            }
        )
    steps = payload.get("next_steps") or []
    if steps:
        blocks.append({"type": "section", "text": {"type": "mrkdwn",
                       "text": ("*What to do next*\n" + "\n".join(f"• {escape(s)}" for s in steps))[:3000]}})  # fmt: skip
    context = [f"severity {d.severity}", f"rule `{escape(d.rule)}`", f"fingerprint `{escape(d.fingerprint)}`"]
    if when:
        context.insert(0, escape(when))
    if links.get("run"):
        context.append(f"<{links['run']}|Airflow run>")
    report = payload.get("report") or links.get("report")
    if report:
        context.append(_report_link(str(report)))
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": " · ".join(context)[:3000]}]})
    return text, blocks

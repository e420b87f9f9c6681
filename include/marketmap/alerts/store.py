"""The alert store: decide send / skip / resolve, and keep every alert with its history.

``alerts`` holds one row per (client, fingerprint) — its current status, numbers and when
it was last sent; ``alert_events`` holds its history (fired, updated, resolved, snoozed,
skipped deliveries are not recorded). The decision is a pure function of the stored row,
the candidate and the run's clock (``now`` = the run's logical date, never the wall
clock), so a re-run of the same interval decides nothing new:

* no row, or a resolved one → **fired** (a condition that came back fires again);
* open, numbers materially changed (see ``rules.materially_changed``), the quiet period
  (``maintenance.alert_snooze_days`` since the last message) over and no snooze
  in force → **updated**;
* open and otherwise → skipped (nothing sent);
* open, its rule evaluated by this run and no candidate for it, or a ``cleared``
  candidate → **resolved** (with the cleared candidate's current numbers and title
  when there is one — never the numbers that fired);
* a run older than the alert's last message (a re-run of an earlier interval) never
  changes it.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, select

from marketmap.alerts.rules import Alert, materially_changed
from marketmap.warehouse import schema as t
from marketmap.warehouse import upsert


@dataclass
class Decision:
    """What to do with one alert: ``fired``, ``updated`` or ``resolved``."""

    event: str
    fingerprint: str
    rule: str
    role: str
    title: str
    severity: str
    payload: dict[str, Any]
    alert: Alert | None = None
    first_seen: dt.datetime | None = None


def _aware(value: dt.datetime | None) -> dt.datetime | None:
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def load_alerts(engine: Engine, client_id: str, rules: set[str] | None = None) -> dict[str, dict]:
    """Stored alerts of a client (optionally of some rules) by fingerprint."""
    q = select(t.alerts).where(t.alerts.c.client_id == client_id)
    if rules is not None:
        q = q.where(t.alerts.c.rule.in_(sorted(rules)))
    with engine.connect() as conn:
        return {r.fingerprint: dict(r._mapping) for r in conn.execute(q)}


def snoozed_until(engine: Engine, client_id: str) -> dict[str, dt.datetime]:
    """The latest snooze per fingerprint (``alert_events`` rows with event ``snoozed``)."""
    e = t.alert_events.c
    out: dict[str, dt.datetime] = {}
    with engine.connect() as conn:
        for r in conn.execute(
            select(e.fingerprint, e.payload, e.at)
            .where(e.client_id == client_id, e.event == "snoozed")
            .order_by(e.at)
        ):
            until = (r.payload or {}).get("until")
            if until:
                out[r.fingerprint] = _aware(dt.datetime.fromisoformat(until))
    return out


def snooze(
    engine: Engine, client_id: str, fingerprint: str, until: dt.datetime, by: str | None = None
) -> None:
    """Keep an open alert quiet until ``until`` even if its numbers change (a person's choice)."""
    with engine.begin() as conn:
        conn.execute(
            t.alert_events.insert(),
            [{"client_id": client_id, "fingerprint": fingerprint, "event": "snoozed", "at": dt.datetime.now(dt.UTC),
              "payload": {"until": _aware(until).isoformat(), "by": by}}],
        )  # fmt: skip


def decide(
    engine: Engine,
    client_id: str,
    candidates: list[Alert],
    rules: set[str],
    now: dt.datetime,
    quiet_days: float,
) -> list[Decision]:
    """Decide, without writing anything, which alerts to send and which to resolve.

    Args:
        candidates: what the rules found in this run.
        rules: every rule this run evaluated (an open alert of another rule is left alone).
        now: the run's logical date.
        quiet_days: minimum days between two messages about one open alert.
    """
    now = _aware(now)
    stored = load_alerts(engine, client_id, rules | {a.rule for a in candidates})
    snoozes = snoozed_until(engine, client_id)
    seen: set[str] = set()
    cleared = {a.fingerprint: a for a in candidates if a.cleared}
    out: list[Decision] = []
    for a in candidates:
        fp = a.fingerprint
        if a.cleared or fp in seen:
            continue
        seen.add(fp)
        row = stored.get(fp)
        last = _aware(row["last_sent"]) if row else None
        if last and now < last:
            continue  # a re-run of an earlier interval never rewrites history
        is_open = row is not None and row["status"] == "open"
        if a.holding:
            continue  # keeps an open alert open; never opens one
        if not is_open:
            out.append(Decision("fired", fp, a.rule, a.role, a.title, a.severity, a.payload(), a, now))
            continue
        old_material = (row["numbers"] or {}).get("material", {})
        if not materially_changed(old_material, a.payload()["material"]) and row["severity"] == a.severity:
            continue
        if last and now < last + dt.timedelta(days=quiet_days):
            continue
        if fp in snoozes and now < snoozes[fp]:
            continue
        out.append(Decision("updated", fp, a.rule, a.role, a.title, a.severity, a.payload(), a,
                            _aware(row["first_seen"])))  # fmt: skip
    for fp, row in sorted(stored.items()):
        if row["rule"] in rules and row["status"] == "open" and fp not in seen:
            last = _aware(row["last_sent"])
            if last and now < last:
                continue
            now_ = cleared.get(fp)
            if now_ is not None:  # today's numbers, and the title that says what is true now
                payload = {**now_.payload(), "current": True, "fired_title": row["title"]}
                out.append(Decision("resolved", fp, row["rule"], row["role"], now_.title, row["severity"],
                                    payload, now_, _aware(row["first_seen"])))  # fmt: skip
                continue
            payload = {**(row["numbers"] or {}), "current": False, "fired_title": row["title"]}
            out.append(Decision("resolved", fp, row["rule"], row["role"], row["title"], row["severity"],
                                payload, None, _aware(row["first_seen"])))  # fmt: skip
    return out


def record(
    engine: Engine, client_id: str, decision: Decision, run_id: str, now: dt.datetime, deliveries: list[dict]
) -> None:
    """Store one decision and the messages it sent, in one transaction."""
    now = _aware(now)
    status = "resolved" if decision.event == "resolved" else "open"
    row = {
        "client_id": client_id,
        "fingerprint": decision.fingerprint,
        "rule": decision.rule,
        "severity": decision.severity,
        "status": status,
        "role": decision.role,
        "title": decision.title,
        "numbers": decision.payload,
        "first_seen": decision.first_seen or now,
        "last_sent": now,
        "resolved_at": now if status == "resolved" else None,
    }
    events = [
        {"client_id": client_id, "fingerprint": decision.fingerprint, "run_id": run_id, "event": decision.event,
         "channel": d.get("channel"), "payload": {"title": decision.title, "delivery": d, **decision.payload},
         "at": now}
        for d in deliveries or [{}]
    ]  # fmt: skip
    with engine.begin() as conn:
        upsert(conn, t.alerts, [row])
        conn.execute(t.alert_events.insert(), events)


def history(engine: Engine, client_id: str, fingerprint: str | None = None) -> list[dict]:
    """Alert events of a client in order (for reports, the portfolio view and tests)."""
    e = t.alert_events.c
    q = select(t.alert_events).where(e.client_id == client_id)
    if fingerprint:
        q = q.where(e.fingerprint == fingerprint)
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(q.order_by(e.at, e.event_id))]

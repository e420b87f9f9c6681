"""Refinement check-ins (seed 001): reminders with the numbers to bring.

* ``refinement_checkin`` — the ~90-day post-launch check-in; the reminder comes
  ``REMIND_DAYS`` (14) before it ("internal prep trigger: 2 weeks before");
* ``icp_validation_review`` — the twice-yearly ICP validation review, every 182 days
  after launch, reminded 14 days before.

A reminder is keyed by its date, so it is sent once; when the date has passed it closes
without a "resolved" message. No ``launch_date`` in the config: no reminders.
"""

from __future__ import annotations

import datetime as dt

from marketmap.alerts.rules import Alert
from marketmap.config import ClientConfig

CHECKIN_DAYS = 90
REVIEW_EVERY_DAYS = 182
REMIND_DAYS = 14
RULES = ("refinement_checkin", "icp_validation_review")


def due_dates(launch: dt.date, as_of: dt.date) -> list[tuple[str, dt.date]]:
    """(rule, date) of the check-ins whose reminder window contains ``as_of``."""
    out = []
    checkin = launch + dt.timedelta(days=CHECKIN_DAYS)
    if checkin - dt.timedelta(days=REMIND_DAYS) <= as_of <= checkin:
        out.append(("refinement_checkin", checkin))
    k = max(1, (as_of - launch).days // REVIEW_EVERY_DAYS)
    for i in (k, k + 1):
        review = launch + dt.timedelta(days=REVIEW_EVERY_DAYS * i)
        if review - dt.timedelta(days=REMIND_DAYS) <= as_of <= review:
            out.append(("icp_validation_review", review))
    return out


def checkin_alerts(
    cfg: ClientConfig, as_of: dt.date, numbers: dict, report: str | None = None
) -> list[Alert]:
    """Reminders due at ``as_of``; ``numbers`` are what to bring (win rates by tier, territories …)."""
    if not cfg.launch_date:
        return []
    alerts = []
    for rule, when in due_dates(cfg.launch_date, as_of):
        what = (
            "The refinement check-in (~90 days after launch)"
            if rule == "refinement_checkin"
            else "The ICP validation review"
        )
        alerts.append(Alert(
            client_id=cfg.client_id, rule=rule, role="leadership", severity="info", key=when.isoformat(),
            title=f"{what} is on {when:%Y-%m-%d}, in {(when - as_of).days} days: prepare the numbers below.",
            numbers={"date": when.isoformat(), **numbers}, material={}, resolve_notice=False, report=report,
            confidence="scheduled: launch date + cadence",
        ))  # fmt: skip
    return alerts

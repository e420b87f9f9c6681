"""The architects' portfolio: one status row per client, from the warehouse (no Airflow needed).

Used by the portfolio page in the Airflow UI (which adds Airflow's own DAG-run states) and
by the ``marketmap__portfolio`` digest DAG (which may not read Airflow's metadata DB).
Each row says what needs attention and why; rows are sorted by how much attention they need.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

from sqlalchemy import Engine, func, select

from marketmap.config import ClientConfig
from marketmap.warehouse import schema as t

CLOSED_ALERTS = ("resolved", "cleared", "closed")
SEVERITY_ORDER = ("critical", "error", "warning", "info")
CHECKIN_REMINDER_DAYS = 14  # SPEC §10: reminder two weeks before the refinement check-in
STUCK_AFTER = dt.timedelta(hours=12)  # a run still "running" after this long has died
FAILED_LOOKBACK = dt.timedelta(days=7)
# How much each reason weighs when sorting (failures first, then alerts, money, calendar).
WEIGHTS = {
    "failed": 100,
    "critical": 50,
    "no_build": 30,
    "over_budget": 40,
    "near_budget": 15,
    "checkin": 20,
    "warning": 5,
}


def _utc(value: dt.datetime | None) -> dt.datetime | None:
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)  # SQLite drops the zone


def next_checkin(launch: dt.date | None, today: dt.date) -> tuple[dt.date, str] | None:
    """The next refinement check-in (SPEC §10): 90 days after launch, the 6-month
    aspirational-T1 check, then an ICP validation review every 6 months."""
    if launch is None:
        return None
    if today <= launch + dt.timedelta(days=90):
        return launch + dt.timedelta(days=90), "refinement check-in (90 days after launch)"
    if today <= launch + dt.timedelta(days=182):
        return launch + dt.timedelta(days=182), "aspirational-T1 check (6 months after launch)"
    periods = (today - launch).days // 182 + 1
    return launch + dt.timedelta(days=182 * periods), "ICP validation review (every 6 months)"


def _runs(engine: Engine, client_id: str) -> list[dict]:
    r = t.runs.c
    with engine.connect() as conn:
        rows = conn.execute(
            select(r.run_id, r.pipeline, r.started_at, r.finished_at, r.status)
            .where(r.client_id == client_id)
            .order_by(r.started_at.desc())
            .limit(500)
        ).all()
    return [dict(row._mapping) for row in rows]


def _tiers(cfg: ClientConfig, engine: Engine) -> dict[str, int]:
    from marketmap.reports.data import current_version

    version = current_version(cfg, engine)
    if version is None:
        return {}
    s = t.account_scores.c
    with engine.connect() as conn:
        rows = conn.execute(
            select(s.tier, func.count())
            .where(
                s.client_id == cfg.client_id,
                s.rubric_version == version,
                s.product == cfg.icp.rubrics[0].product,
            )
            .group_by(s.tier)
        ).all()
    return {tier: int(n) for tier, n in rows if tier}


def _credits(cfg: ClientConfig, engine: Engine, today: dt.date) -> dict:
    c = t.credit_ledger.c
    month = today.strftime("%Y-%m")
    with engine.connect() as conn:
        spent = float(
            conn.execute(
                select(func.coalesce(func.sum(c.credits), 0.0)).where(
                    c.client_id == cfg.client_id, c.month == month
                )
            ).scalar_one()
        )
    budget = float(cfg.enrichment.monthly_credit_budget)
    return {"month": month, "spent": spent, "budget": budget, "share": spent / budget if budget else None}


def open_alerts(engine: Engine, client_id: str) -> list[dict]:
    a = t.alerts.c
    with engine.connect() as conn:
        rows = conn.execute(
            select(a.fingerprint, a.rule, a.severity, a.status, a.role, a.title, a.first_seen, a.last_sent)
            .where(a.client_id == client_id, a.resolved_at.is_(None), a.status.not_in(CLOSED_ALERTS))
            .order_by(a.first_seen.desc())
        ).all()
    return [dict(r._mapping) for r in rows]


def alert_history(engine: Engine, client_id: str, limit: int = 200) -> list[dict]:
    """Every alert of a client, open ones first, newest first."""
    a = t.alerts.c
    with engine.connect() as conn:
        rows = conn.execute(
            select(
                a.rule,
                a.severity,
                a.status,
                a.role,
                a.title,
                a.numbers,
                a.first_seen,
                a.last_sent,
                a.resolved_at,
            )
            .where(a.client_id == client_id)
            .order_by(a.resolved_at.is_not(None), a.first_seen.desc())
            .limit(limit)
        ).all()
    return [dict(r._mapping) for r in rows]


def client_status(
    cfg: ClientConfig, engine: Engine, today: dt.date, now: dt.datetime, dag_runs: Iterable[dict] = ()
) -> dict[str, Any]:
    """One client's portfolio row: runs, failures, alerts, credits, tiers, check-in, attention.

    Args:
        dag_runs: Airflow DAG runs of this client (``dag_id``, ``run_id``, ``state``,
            ``end_date``), newest first; the page passes them, the digest cannot.
    """
    runs = _runs(engine, cfg.client_id)
    last_success: dict[str, dt.datetime] = {}
    failed: list[dict] = []
    for r in runs:
        at = _utc(r["finished_at"] or r["started_at"])
        if r["status"] == "success":
            if r["pipeline"] not in last_success or at > last_success[r["pipeline"]]:
                last_success[r["pipeline"]] = at
        else:
            age = now - _utc(r["started_at"])
            dead = r["status"] == "failed" or (r["status"] == "running" and age > STUCK_AFTER)
            if dead and age <= FAILED_LOOKBACK:
                failed.append(
                    {"pipeline": r["pipeline"], "run_id": r["run_id"], "at": at, "state": r["status"]}
                )
    latest_by_dag: dict[str, dict] = {}
    for d in dag_runs:  # Airflow knows about failures before the summary step and for every pipeline
        pipeline = d["dag_id"].split("__", 1)[-1]
        end = _utc(d.get("end_date"))
        latest_by_dag.setdefault(d["dag_id"], d)
        if d["state"] == "success" and end and (pipeline not in last_success or end > last_success[pipeline]):
            last_success[pipeline] = end
    for dag_id_, d in latest_by_dag.items():
        if d["state"] == "failed" and not any(f["run_id"] == d["run_id"] for f in failed):
            failed.append(
                {
                    "pipeline": dag_id_.split("__", 1)[-1],
                    "run_id": d["run_id"],
                    "at": _utc(d.get("end_date")),
                    "state": "failed",
                }
            )
    # A failure followed by a success of the same pipeline is history, not attention.
    failed = [
        f
        for f in failed
        if not (f["at"] and last_success.get(f["pipeline"]) and last_success[f["pipeline"]] > f["at"])
    ]

    alerts = open_alerts(engine, cfg.client_id)
    by_severity = {s: sum(1 for a in alerts if a["severity"] == s) for s in SEVERITY_ORDER}
    by_severity = {s: n for s, n in by_severity.items() if n}
    credits = _credits(cfg, engine, today)
    checkin = next_checkin(cfg.launch_date, today)
    counts = _tiers(cfg, engine)
    tiers = {k: counts[k] for k in ("T1", "T2", "T3", "OUT") if k in counts}

    reasons: list[tuple[str, str]] = []
    if failed:
        pipelines = ", ".join(sorted({f["pipeline"] for f in failed}))
        reasons.append(("failed", f"{len(failed)} failed run{'s' if len(failed) > 1 else ''} ({pipelines})"))
    crit = by_severity.get("critical", 0) + by_severity.get("error", 0)
    if crit:
        reasons.append(("critical", f"{crit} critical alert{'s' if crit > 1 else ''} open"))
    if "build" not in last_success:
        reasons.append(("no_build", "no successful build yet"))
    if credits["share"] is not None and credits["share"] > 1:
        reasons.append(
            (
                "over_budget",
                f"credits over budget: {credits['spent']:,.0f} of {credits['budget']:,.0f} in {credits['month']}",
            )
        )
    elif credits["share"] is not None and credits["share"] >= 0.9:
        reasons.append(("near_budget", f"credits at {credits['share']:.0%} of the monthly budget"))
    if checkin and (checkin[0] - today).days <= CHECKIN_REMINDER_DAYS:
        reasons.append(("checkin", f"{checkin[1]} due {checkin[0].isoformat()}"))
    if by_severity.get("warning"):
        reasons.append(
            (
                "warning",
                f"{by_severity['warning']} warning alert{'s' if by_severity['warning'] > 1 else ''} open",
            )
        )
    score = sum(
        WEIGHTS[k] * (crit if k == "critical" else by_severity.get("warning", 0) if k == "warning" else 1)
        for k, _ in reasons
    )
    return {
        "client_id": cfg.client_id,
        "name": cfg.name,
        "architect_channel": cfg.slack.channels["architect"],
        "last_success": dict(sorted(last_success.items())),
        "failed_runs": sorted(failed, key=lambda f: f["at"] or now, reverse=True),
        "open_alerts": by_severity,
        "alerts": alerts,
        "credits": credits,
        "tiers": tiers,
        "next_checkin": {"date": checkin[0], "what": checkin[1]} if checkin else None,
        "attention": [text for _, text in reasons],
        "attention_score": score,
    }


def portfolio(
    configs: Iterable[ClientConfig],
    engine_for,
    today: dt.date | None = None,
    now: dt.datetime | None = None,
    dag_runs: dict[str, list[dict]] | None = None,
) -> list[dict]:
    """Every client's status row, the ones that need attention first (then by name).

    Args:
        engine_for: ``cfg -> Engine`` (the client's warehouse).
        dag_runs: Airflow DAG runs per client id (optional).
    """
    now = now or dt.datetime.now(dt.UTC)
    today = today or now.date()
    rows = [
        client_status(cfg, engine_for(cfg), today, now, (dag_runs or {}).get(cfg.client_id, ()))
        for cfg in configs
    ]
    return sorted(rows, key=lambda r: (-r["attention_score"], r["name"].lower()))

"""The architects' portfolio: one status row per client, from the warehouse (no Airflow needed).

Used by the portfolio page in the Airflow UI (which adds Airflow's own DAG-run states) and
by the ``marketmap__portfolio`` digest DAG (which may not read Airflow's metadata DB).
Each row says what needs attention and why; rows are sorted by how much attention they need.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote

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
    "paused": 25,
    "never_run": 25,
    "overdue": 25,
}
# The pipelines that keep a live client healthy after its build (SPEC §10): paused or never
# run while their schedule is due, the client is not "OK".
MAINTENANCE = ("monthly", "quarterly_personas", "drift", "valuation", "territories")
NEVER_RUN_GRACE = dt.timedelta(hours=1)  # the scheduler creates a run at its time; an hour is ample
# A pipeline that ran before but not since its schedule last fired: paused, switched off or stuck
# in a queue. Visible without Airflow's metadata (the daily digest has none); half a day of grace
# so a run waiting in a pool is not called late.
OVERDUE_GRACE = dt.timedelta(hours=12)
RUN_KINDS = {
    "scheduled": "scheduled",
    "manual": "manual",
    "asset_triggered": "asset-triggered",
    "dataset_triggered": "asset-triggered",
    "asset_materialization": "asset-triggered",
    "backfill": "backfill",
    "operator_triggered": "triggered by another DAG",
}
# Airflow's generated run ids: ``<type>__<ISO timestamp>``; also the file-system safe form the
# report folders use (``safe_name``: ``:`` and ``+`` become ``_``).
_RUN_ID = re.compile(
    r"^(?P<kind>[a-z_]+?)__(?P<date>\d{4}-\d{2}-\d{2})T(?P<h>\d{2})[:_](?P<m>\d{2})[:_](?P<s>\d{2})"
    r"(?P<frac>\.\d+)?(?:(?P<sign>[-+_])(?P<oh>\d{2})[:_]?(?P<om>\d{2})|Z)?$"
)


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


def readable_run(
    run_id: str, tz: dt.tzinfo, run_type: str | None = None, at: dt.datetime | None = None
) -> dict:
    """A run id as people read it: ``{"label", "kind", "when"}``.

    ``manual__2026-12-05T21:49:05.123810+00:00`` in Europe/Berlin reads
    ``2026-12-05 22:49 CET · manual``. Works on the file-system safe form of run ids too (the
    report folders). ``at`` (the run's logical date or start) is used when the id carries no
    date; an id that is neither keeps its own text.
    """
    kind = RUN_KINDS.get(str(run_type or ""))
    when = _utc(at)
    m = _RUN_ID.match(run_id or "")
    if m:
        kind = kind or RUN_KINDS.get(m["kind"], m["kind"].replace("_", " "))
        offset = dt.timedelta(0)
        if m["sign"]:
            sign = -1 if m["sign"] == "-" else 1
            offset = sign * dt.timedelta(hours=int(m["oh"]), minutes=int(m["om"]))
        when = dt.datetime.fromisoformat(f"{m['date']}T{m['h']}:{m['m']}:{m['s']}").replace(
            tzinfo=dt.timezone(offset)
        )
    if when is None:
        return {"label": run_id, "kind": kind, "when": None}
    local = when.astimezone(tz)
    label = local.strftime("%Y-%m-%d %H:%M ") + (local.tzname() or "")
    return {"label": f"{label} · {kind}" if kind else label, "kind": kind, "when": local}


def run_links(dag_id: str, run_id: str, task_id: str | None = None, base: str = "") -> dict:
    """Links to a run in Airflow's UI and to its (failed) task's log; relative when ``base`` is ''."""
    run = f"{base}/dags/{quote(dag_id, safe='')}/runs/{quote(run_id, safe='')}"
    return {"run": run, "log": f"{run}/tasks/{quote(task_id, safe='')}" if task_id else None}


def review_count(engine: Engine, client_id: str) -> int:
    """Open items of the client's review queue (duplicates and matches a person must decide)."""
    q = t.review_queue.c
    with engine.connect() as conn:
        return int(
            conn.execute(
                select(func.count()).where(q.client_id == client_id, q.status == "open")
            ).scalar_one()
        )


def _first_due(
    cron: str, tz: dt.tzinfo, since: dt.datetime, now: dt.datetime, grace: dt.timedelta = NEVER_RUN_GRACE
) -> dt.datetime | None:
    """The first time after ``since`` at which ``cron`` (client's local time) fired, if that
    is more than the grace ago. Stable from day to day, so the digest does not repeat itself."""
    from croniter import croniter

    if not croniter.is_valid(cron):  # "@once" and the like: Airflow decides, no claim here
        return None
    first = croniter(cron, since.astimezone(tz)).get_next(dt.datetime)
    return first if first <= now - grace else None


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


def count_tiers(cfg: ClientConfig, engine: Engine, version: str) -> dict[str, int]:
    """Accounts per tier of the client's current scores (first product), counted in SQL."""
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


def refresh_status(cfg: ClientConfig, engine: Engine, run_id: str, now: dt.datetime) -> dict[str, int]:
    """Store the client's tier counts for the portfolio pages (after every run that wrote scores)."""
    from marketmap.reports.data import current_version
    from marketmap.warehouse import upsert

    version = current_version(cfg, engine)
    if version is None:
        return {}
    tiers = count_tiers(cfg, engine, version)
    with engine.begin() as conn:
        upsert(conn, t.client_status, [{"client_id": cfg.client_id, "rubric_version": version,
                                        "product": cfg.icp.rubrics[0].product, "tiers": tiers,
                                        "run_id": run_id, "updated_at": now}])  # fmt: skip
    return tiers


def _tiers(cfg: ClientConfig, engine: Engine) -> dict[str, int]:
    """The stored counts when they are of the current scores (one row read), else a live count."""
    from marketmap.reports.data import current_version

    version = current_version(cfg, engine)
    if version is None:
        return {}
    c = t.client_status.c
    with engine.connect() as conn:
        row = conn.execute(
            select(c.tiers).where(
                c.client_id == cfg.client_id,
                c.rubric_version == version,
                c.product == cfg.icp.rubrics[0].product,
            )
        ).first()
    return {k: int(v) for k, v in row.tiers.items()} if row else count_tiers(cfg, engine, version)


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
    cfg: ClientConfig,
    engine: Engine,
    today: dt.date,
    now: dt.datetime,
    dag_runs: Iterable[dict] = (),
    dags: dict[str, dict] | None = None,
    base_url: str = "",
) -> dict[str, Any]:
    """One client's portfolio row: runs, failures, alerts, credits, tiers, check-in, attention.

    Args:
        dag_runs: Airflow DAG runs of this client (``dag_id``, ``run_id``, ``state``,
            ``end_date``; optionally ``run_type``, ``at`` and the ``failed_tasks``), newest
            first; the page passes them, the digest cannot.
        dags: Airflow's DAGs of this client, ``{dag_id: {"paused": bool}}`` (page only).
        base_url: Airflow's address for the run and log links ('' = relative links).
    """
    runs = _runs(engine, cfg.client_id)
    tz = cfg.tz
    last_success: dict[str, dt.datetime] = {}
    first_success: dict[str, dt.datetime] = {}
    ran: set[str] = set()  # pipelines with any run at all, in the warehouse or in Airflow
    last_start: dict[str, dt.datetime] = {}  # the latest run of each pipeline, whatever its outcome
    running: dict[str, dict] = {}
    failed: list[dict] = []
    for r in runs:
        at = _utc(r["finished_at"] or r["started_at"])
        ran.add(r["pipeline"])
        start = _utc(r["started_at"])
        if start and (r["pipeline"] not in last_start or start > last_start[r["pipeline"]]):
            last_start[r["pipeline"]] = start
        if r["status"] == "success":
            if r["pipeline"] not in last_success or at > last_success[r["pipeline"]]:
                last_success[r["pipeline"]] = at
            if r["pipeline"] not in first_success or at < first_success[r["pipeline"]]:
                first_success[r["pipeline"]] = at
        elif r["status"] == "running" and now - _utc(r["started_at"]) <= STUCK_AFTER:
            running.setdefault(
                r["pipeline"],
                {
                    "pipeline": r["pipeline"],
                    "run_id": r["run_id"],
                    "since": _utc(r["started_at"]),
                    "readable": readable_run(r["run_id"], tz, at=r["started_at"]),
                    "links": run_links(f"{cfg.client_id}__{r['pipeline']}", r["run_id"], base=base_url),
                },
            )
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
        ran.add(pipeline)
        seen = _utc(d.get("at")) or end
        if seen and (pipeline not in last_start or seen > last_start[pipeline]):
            last_start[pipeline] = seen
        latest_by_dag.setdefault(d["dag_id"], d)
        if d["state"] == "success" and end and (pipeline not in last_success or end > last_success[pipeline]):
            last_success[pipeline] = end
        if (
            d["state"] == "success"
            and end
            and (pipeline not in first_success or end < first_success[pipeline])
        ):
            first_success[pipeline] = end
    for dag_id_, d in latest_by_dag.items():
        pipeline = dag_id_.split("__", 1)[-1]
        if d["state"] in ("running", "queued"):
            running[pipeline] = {
                "pipeline": pipeline,
                "run_id": d["run_id"],
                "state": d["state"],
                "since": _utc(d.get("at")),
                "readable": readable_run(d["run_id"], tz, d.get("run_type"), d.get("at")),
                "links": run_links(dag_id_, d["run_id"], base=base_url),
            }
        if d["state"] == "failed":
            known = next((f for f in failed if f["run_id"] == d["run_id"]), None)
            if known is None:
                known = {
                    "pipeline": pipeline,
                    "run_id": d["run_id"],
                    "at": _utc(d.get("end_date")),
                    "state": "failed",
                }
                failed.append(known)
            known.update(
                run_type=d.get("run_type"), run_at=d.get("at"), tasks=list(d.get("failed_tasks") or ())
            )
    for f in failed:  # every failure links to its Airflow run and the log of the task that failed
        dag = f"{cfg.client_id}__{f['pipeline']}"
        tasks = f.get("tasks") or []
        f["dag_id"] = dag
        f["at"] = f["at"].astimezone(tz) if f["at"] else None  # shown in the client's time
        f["readable"] = readable_run(f["run_id"], tz, f.get("run_type"), f.get("run_at") or f["at"])
        f["links"] = run_links(dag, f["run_id"], tasks[0] if tasks else None, base_url)
        f["task_links"] = [{"task_id": tid, **run_links(dag, f["run_id"], tid, base_url)} for tid in tasks]
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

    paused = sorted(d.split("__", 1)[-1] for d, info in (dags or {}).items() if info.get("paused"))
    paused_maintenance = [p for p in MAINTENANCE if p in paused]
    never_run: list[dict] = []
    overdue: list[dict] = []
    built = first_success.get("build")
    for p in MAINTENANCE if built else ():  # before the first build there is nothing to maintain
        cron = getattr(cfg.schedules, p, None)
        if not cron or p in paused_maintenance:
            continue
        if p not in ran:
            due = _first_due(cron, tz, built, now)
            if due is not None:
                never_run.append({"pipeline": p, "due": due})
        elif p in last_start:
            # a run up to a day before a scheduled time (a manual run that morning) counts for it
            due = _first_due(cron, tz, last_start[p] + dt.timedelta(days=1), now, OVERDUE_GRACE)
            if due is not None:
                overdue.append({"pipeline": p, "due": due, "last": last_start[p].astimezone(tz)})
    reviews = review_count(engine, cfg.client_id)

    reasons: list[tuple[str, str]] = []
    if failed:
        pipelines = ", ".join(sorted({f["pipeline"] for f in failed}))
        reasons.append(("failed", f"{len(failed)} failed run{'s' if len(failed) > 1 else ''} ({pipelines})"))
    crit = by_severity.get("critical", 0) + by_severity.get("error", 0)
    if crit:
        reasons.append(("critical", f"{crit} critical alert{'s' if crit > 1 else ''} open"))
    if "build" not in last_success:
        reasons.append(("no_build", "no successful build yet"))
    if paused_maintenance:
        n = len(paused_maintenance)
        reasons.append(
            (
                "paused",
                f"{n} maintenance pipeline{'s' if n > 1 else ''} paused in Airflow"
                f" ({', '.join(paused_maintenance)}): {'they do' if n > 1 else 'it does'} not run on schedule",
            )
        )
    if never_run:
        words = ", ".join(f"{n['pipeline']} (due since {n['due']:%Y-%m-%d})" for n in never_run)
        k = len(never_run)
        reasons.append(
            (
                "never_run",
                f"{k} maintenance pipeline{'s' if k > 1 else ''} never ran although scheduled: {words}",
            )
        )
    if overdue:
        words = ", ".join(
            f"{o['pipeline']} (due {o['due']:%Y-%m-%d}, last ran {o['last']:%Y-%m-%d})" for o in overdue
        )
        k = len(overdue)
        reasons.append(
            (
                "overdue",
                f"{k} maintenance pipeline{'s' if k > 1 else ''} late: {words} — paused, switched off "
                "or stuck in Airflow?",
            )
        )
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
        "last_success": {p: at.astimezone(tz) for p, at in sorted(last_success.items())},  # client's time
        "failed_runs": sorted(failed, key=lambda f: f["at"] or now, reverse=True),
        "running": [running[p] for p in sorted(running)],
        "paused": paused,
        "never_run": never_run,
        "overdue": overdue,
        "review_queue": reviews,
        "timezone": cfg.timezone,
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
    dags: dict[str, dict[str, dict]] | None = None,
    base_url: str = "",
) -> list[dict]:
    """Every client's status row, the ones that need attention first (then by name).

    Args:
        engine_for: ``cfg -> Engine`` (the client's warehouse).
        dag_runs: Airflow DAG runs per client id (optional).
        dags: Airflow's DAGs per client id, ``{dag_id: {"paused": bool}}`` (optional).
        base_url: Airflow's address for run and log links ('' = relative).
    """
    now = now or dt.datetime.now(dt.UTC)
    today = today or now.date()
    rows = [
        client_status(
            cfg,
            engine_for(cfg),
            today,
            now,
            (dag_runs or {}).get(cfg.client_id, ()),
            (dags or {}).get(cfg.client_id),
            base_url,
        )
        for cfg in configs
    ]
    return sorted(rows, key=lambda r: (-r["attention_score"], r["name"].lower()))


def reports_by_run(
    cfg: ClientConfig, reports: Iterable[dict], dag_runs: Iterable[dict] = (), base_url: str = ""
) -> list[dict]:
    """Every stored report grouped by the run that wrote it, newest run first.

    Args:
        reports: ``marketmap.reports.render.list_reports`` rows (``run_id`` is the report
            folder, the file-system safe form of the run id).
        dag_runs: Airflow's runs of the client: a folder that matches one links to it.

    Returns:
        ``[{"run_id", "readable", "dag_id", "links", "written", "reports": [...]}]``.
    """
    from marketmap.reports.render import safe_name

    airflow = {}
    for d in dag_runs:
        airflow.setdefault(safe_name(d["run_id"]), d)
    groups: dict[str, dict] = {}
    for r in reports:
        g = groups.get(r["run_id"])
        if g is None:
            d = airflow.get(r["run_id"])
            g = groups[r["run_id"]] = {
                "run_id": d["run_id"] if d else r["run_id"],
                "readable": readable_run(
                    d["run_id"] if d else r["run_id"], cfg.tz, d and d.get("run_type"), d and d.get("at")
                ),
                "dag_id": d["dag_id"] if d else None,
                "links": run_links(d["dag_id"], d["run_id"], base=base_url) if d else None,
                "written": r["modified"],
                "reports": [],
            }
        g["written"] = max(g["written"], r["modified"])
        g["reports"].append(r)
    for g in groups.values():
        g["reports"].sort(key=lambda r: r["kind"])
    return sorted(groups.values(), key=lambda g: g["written"], reverse=True)

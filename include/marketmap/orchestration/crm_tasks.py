"""The one CRM write path: preflight → canary → push → validate, used by every pipeline that writes.

:func:`crm_write_group` adds the four tasks to a DAG (the build, the monthly push, the quarterly
persona push, an applied valuation, an approved territory or stale-account proposal). A maintenance
pipeline passes ``when``: the summary of its apply step, and the group does nothing (no CRM call)
unless that step applied something. Each task re-plans from the warehouse and the CRM's current
values, so the push task sees only what the canary did not already write, and a killed task re-run
finishes the job without a duplicate. Owner moves of approved proposals go through the same canary
and push (``crm.owners``). A dry run (param ``dry_run``) writes the change preview instead.
"""

from __future__ import annotations

import logging

from airflow.sdk import get_current_context, task

log = logging.getLogger(__name__)


def _skip(when: dict | None) -> dict | None:
    """``{"skipped": why}`` when the pipeline's apply step applied nothing (the group then makes no call)."""
    if when is None or when.get("applied"):
        return None
    return {"skipped": when.get("reason") or "nothing applied"}


def crm_write_group(cfg, when=None, pool: str | None = None):
    """Add preflight → canary → push → validate to the DAG being built; return the four tasks.

    Task ids stay ``crm_preflight`` … ``crm_validate`` in every pipeline, so the push log, the
    portfolio and the docs name the same steps everywhere.
    """
    from airflow.sdk import TaskGroup, chain

    over = {"pool": pool} if pool else {}
    with TaskGroup("crm_write", prefix_group_id=False, tooltip="preflight → canary → push → validate"):
        cid = cfg.client_id
        steps = [
            crm_preflight.override(**over)(client_id=cid, when=when),
            crm_canary.override(**over)(client_id=cid, when=when),
            crm_push.override(**over)(client_id=cid, when=when),
            crm_validate.override(**over)(client_id=cid, when=when),
        ]
        chain(*steps)
    return steps


def _setup(client_id: str):
    from marketmap import crm
    from marketmap.orchestration.resources import load_effective, warehouse

    ctx = get_current_context()
    cfg = load_effective(client_id)
    return ctx, cfg, warehouse(cfg), crm.adapter_for(cfg)


def _now(ctx):
    from marketmap.orchestration.resources import run_clock

    return run_clock(ctx)[1]


def _owner_moves(ctx, cfg, engine, adapter, **kwargs) -> dict | None:
    """Owner changes of approved proposals, through the sync engine (None when none are pending)."""
    from marketmap.crm.owners import push_owner_moves

    return push_owner_moves(cfg, engine, ctx["run_id"], adapter, _now(ctx), **kwargs)


def _attention(ctx, cfg, engine, out: dict) -> dict:
    """Failed / parked / deleted-in-CRM records: a CSV of those push-log rows (served by the portfolio
    app), a warning in the task log and a warning alert (resolved again by the first clean push)."""
    from marketmap.crm.attention import RULE, attention_alert, attention_counts, write_push_log
    from marketmap.orchestration.alerting import send_alerts
    from marketmap.reports.render import file_url, report_dir

    run_id = ctx["run_id"]
    counts = attention_counts(out)
    path = url = None
    if any(counts.values()):
        path = write_push_log(engine, cfg.client_id, run_id, report_dir(cfg.client_id, run_id))
        url = file_url(cfg.client_id, run_id, path.name)
        log.warning("CRM push for %s left records needing attention: %s (push log: %s)", cfg.client_id, counts, url)
    alert = attention_alert(cfg.client_id, run_id, counts, url)
    try:
        sent = send_alerts(cfg, engine, ctx["dag"].dag_id, run_id, _now(ctx), [alert] if alert else [], {RULE}, url)
    except Exception:  # noqa: BLE001 - the push happened; a broken alert channel must not undo that
        log.exception("could not send the CRM push attention alert (counts: %s, push log: %s)", counts, url)
        sent = {"error": "alert delivery failed"}
    return {"counts": counts, "push_log": url, "alerts": sent}


@task(multiple_outputs=False)  # one small summary dict per task
def crm_preflight(client_id: str, when: dict | None = None, create_missing: bool = False) -> dict:
    """Check every mapped CRM field exists with a compatible type and every picklist value the push can
    produce (OUT/EXCLUDED included); ``create_missing`` (or the push's ``create_missing_fields``) creates them."""
    if skipped := _skip(when):
        return skipped
    from marketmap import crm

    _, cfg, _, adapter = _setup(client_id)
    report = crm.preflight(cfg, adapter, create_missing=create_missing)
    log.info("%s", report)
    if not report.ok:
        raise crm.CrmError(str(report))
    return report.as_dict()


@task(multiple_outputs=False)  # one small summary dict per task
def crm_canary(client_id: str, when: dict | None = None) -> dict:
    """Push a 10-20 record sample first (or, on a dry run, write the change preview and stop)."""
    if skipped := _skip(when):
        return skipped
    from marketmap import crm
    from marketmap.settings import run_dir

    ctx, cfg, engine, adapter = _setup(client_id)
    if ctx["params"].get("dry_run"):
        preview = crm.push_all(
            cfg, engine, ctx["run_id"], adapter, dry_run=True, out_dir=run_dir(client_id, ctx["run_id"])
        )
        return {"dry_run": True, "preview": preview, "owners": _owner_moves(ctx, cfg, engine, adapter, dry_run=True)}
    return {
        "dry_run": False,
        "canary": crm.push_all(cfg, engine, ctx["run_id"], adapter, only_canary=True, raise_on_halt=True),
        "owners": _owner_moves(ctx, cfg, engine, adapter, only_canary=True),
    }


@task(multiple_outputs=False)  # one small summary dict per task
def crm_push(client_id: str, when: dict | None = None) -> dict:
    """Push every changed record (diff against the CRM's values; field policies; batch splitting on errors).

    Records left failed, parked or deleted in the CRM end the task with a warning in its log,
    a push-log CSV in the run's report folder and a warning alert with the counts (never a silent
    green); owner moves the CRM did not confirm stay pending and fail the task, so a retry pushes them.
    """
    if skipped := _skip(when):
        return skipped
    from marketmap import crm

    ctx, cfg, engine, adapter = _setup(client_id)
    if ctx["params"].get("dry_run"):
        return {"dry_run": True}
    # a halted push raises (the task fails and its failure callback alerts)
    out = crm.push_all(cfg, engine, ctx["run_id"], adapter, canary=False, raise_on_halt=True)
    out["attention"] = _attention(ctx, cfg, engine, out)
    owners = _owner_moves(ctx, cfg, engine, adapter)
    if owners:
        out["owners"] = owners
        if owners.get("still_pending"):
            raise crm.CrmError(
                f"{owners['still_pending']:,} approved owner changes were not confirmed by the CRM "
                f"({owners.get('status')}); a retry pushes exactly those"
            )
    return out


@task(multiple_outputs=False)  # one small summary dict per task
def crm_validate(client_id: str, when: dict | None = None) -> dict:
    """Counts reconcile (source, warehouse, CRM) and no duplicates by domain, e-mail or LinkedIn URL."""
    if skipped := _skip(when):
        return skipped
    from marketmap import crm

    ctx, cfg, engine, adapter = _setup(client_id)
    result = crm.validate_after_push(cfg, engine, adapter, ctx["run_id"])
    log.info("post-load validation for %s: %s", client_id, result)
    if not result.get("ok", False) and not ctx["params"].get("dry_run"):
        raise crm.CrmError(f"post-load validation failed: {result.get('problems')}")
    return result

"""CRM write-back tasks of the build DAG: preflight → canary → push → validate.

Each task re-plans from the warehouse and the CRM's current values, so the push task
sees only what the canary did not already write, and a killed task re-run finishes the
job without a duplicate. A dry run (param ``dry_run``) writes the change preview instead.
"""

from __future__ import annotations

import logging

from airflow.sdk import get_current_context, task

log = logging.getLogger(__name__)


def _setup(client_id: str):
    from marketmap import crm
    from marketmap.config import load_client
    from marketmap.orchestration.resources import warehouse

    ctx = get_current_context()
    cfg = load_client(client_id)
    return ctx, cfg, warehouse(cfg), crm.adapter_for(cfg)


def _run_url(dag_id: str | None, run_id: str) -> str | None:
    from marketmap.alerts.blocks import run_url

    try:
        from airflow.configuration import conf

        base = conf.get("api", "base_url", fallback=None)
    except Exception:  # noqa: BLE001 - no config: the alert goes out without the link
        base = None
    return run_url(base, dag_id, run_id) if dag_id else None


def _attention(ctx, cfg, engine, out: dict) -> dict:
    """Failed / parked / deleted-in-CRM records: a CSV of those push-log rows, a warning in the
    task log and a warning alert (resolved again by the first clean push)."""
    import datetime as dt

    from marketmap.alerts.engine import process_alerts
    from marketmap.crm.attention import RULE, attention_alert, attention_counts, write_push_log
    from marketmap.settings import run_dir

    run_id = ctx["run_id"]
    counts = attention_counts(out)
    path = None
    if any(counts.values()):
        path = str(write_push_log(engine, cfg.client_id, run_id, run_dir(cfg.client_id, run_id)))
        log.warning(
            "CRM push for %s left records needing attention: %s (push log: %s)", cfg.client_id, counts, path
        )
    alert = attention_alert(cfg.client_id, run_id, counts, path)
    dag = ctx.get("dag")
    try:
        sent = process_alerts(cfg, engine, run_id, dt.datetime.now(dt.UTC), [alert] if alert else [], {RULE},
                              {"run": _run_url(getattr(dag, "dag_id", None), run_id), "report": path})  # fmt: skip
    except Exception:  # noqa: BLE001 - the push happened; a broken alert channel must not undo that
        log.exception("could not send the CRM push attention alert (counts: %s, push log: %s)", counts, path)
        sent = {"error": "alert delivery failed"}
    return {"counts": counts, "push_log": path, "alerts": sent}


@task(multiple_outputs=False)  # one small summary dict per task
def crm_preflight(client_id: str, create_missing: bool = False) -> dict:
    """Check every mapped CRM field exists with a compatible type and every picklist value the push can
    produce (OUT/EXCLUDED included); ``create_missing`` (or the push's ``create_missing_fields``) creates them."""
    from marketmap import crm

    _, cfg, _, adapter = _setup(client_id)
    report = crm.preflight(cfg, adapter, create_missing=create_missing)
    log.info("%s", report)
    if not report.ok:
        raise crm.CrmError(str(report))
    return report.as_dict()


@task(multiple_outputs=False)  # one small summary dict per task
def crm_canary(client_id: str) -> dict:
    """Push a 10-20 record sample first (or, on a dry run, write the change preview and stop)."""
    from marketmap import crm
    from marketmap.settings import run_dir

    ctx, cfg, engine, adapter = _setup(client_id)
    if ctx["params"].get("dry_run"):
        preview = crm.push_all(
            cfg, engine, ctx["run_id"], adapter, dry_run=True, out_dir=run_dir(client_id, ctx["run_id"])
        )
        return {"dry_run": True, "preview": preview}
    return {
        "dry_run": False,
        "canary": crm.push_all(cfg, engine, ctx["run_id"], adapter, only_canary=True, raise_on_halt=True),
    }


@task(multiple_outputs=False)  # one small summary dict per task
def crm_push(client_id: str) -> dict:
    """Push every changed record (diff against the CRM's values; field policies; batch splitting on errors).

    Records left failed, parked or deleted in the CRM end the task with a warning in its log,
    a push-log CSV in the run folder and a warning alert with the counts (never a silent green).
    """
    from marketmap import crm

    ctx, cfg, engine, adapter = _setup(client_id)
    if ctx["params"].get("dry_run"):
        return {"dry_run": True}
    # a halted push raises (the task fails and its failure callback alerts)
    out = crm.push_all(cfg, engine, ctx["run_id"], adapter, canary=False, raise_on_halt=True)
    out["attention"] = _attention(ctx, cfg, engine, out)
    return out


@task(multiple_outputs=False)  # one small summary dict per task
def crm_validate(client_id: str) -> dict:
    """Counts reconcile (source, warehouse, CRM) and no duplicates by domain, e-mail or LinkedIn URL."""
    from marketmap import crm

    ctx, cfg, engine, adapter = _setup(client_id)
    result = crm.validate_after_push(cfg, engine, adapter, ctx["run_id"])
    log.info("post-load validation for %s: %s", client_id, result)
    if not result.get("ok", False) and not ctx["params"].get("dry_run"):
        raise crm.CrmError(f"post-load validation failed: {result.get('problems')}")
    return result

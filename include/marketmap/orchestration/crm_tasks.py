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


@task(multiple_outputs=False)  # one small summary dict per task
def crm_preflight(client_id: str) -> dict:
    """Check every mapped CRM field exists with a compatible type and every picklist value the push can produce."""
    from marketmap import crm

    _, cfg, _, adapter = _setup(client_id)
    report = crm.preflight(cfg, adapter)
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
    """Push every changed record (diff against the CRM's values; field policies; batch splitting on errors)."""
    from marketmap import crm

    ctx, cfg, engine, adapter = _setup(client_id)
    if ctx["params"].get("dry_run"):
        return {"dry_run": True}
    return crm.push_all(cfg, engine, ctx["run_id"], adapter, canary=False, raise_on_halt=True)


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

"""A push that leaves records failed, parked or deleted in the CRM says so: counts, examples,
a CSV of the push log rows that need a person, and a warning alert candidate."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, select

from marketmap.warehouse import schema as t

RULE = "crm_push_attention"
NEXT_STEPS = [
    "Open the push log CSV: each row has the record, the CRM id, what was written and the CRM's error.",
    "Failed records are retried by the next run; parked ones (same values failing run after run) wait "
    "until their values change or the CRM data is fixed.",
    "Records deleted in the CRM follow push.deleted_in_crm (recreate / skip / flag): re-create them or "
    "remove them from the source.",
]


def attention_counts(results: dict[str, Any]) -> dict[str, int]:
    """Failed / parked / deleted-in-CRM / not attempted records over every object of a push_all()."""
    out = {"failed": 0, "parked": 0, "deleted_in_crm": 0, "not_attempted": 0}
    for summary in (results or {}).values():
        res = (summary or {}).get("result") if isinstance(summary, dict) else None
        if not isinstance(res, dict):
            continue
        for k in out:
            out[k] += int(res.get(k) or 0)
    return out


def write_push_log(engine: Engine, client_id: str, run_id: str, out_dir: Path) -> Path:
    """The run's push-log rows a person must look at (failed, parked, deleted, not attempted)."""
    pl = t.push_log.c
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "crm_push_attention.csv"
    with engine.connect() as conn:
        rows = conn.execute(
            select(pl.object, pl.record_key, pl.crm_id, pl.operation, pl.status, pl.error, pl.phase, pl.at)
            .where(pl.client_id == client_id, pl.run_id == run_id)
            .order_by(pl.object, pl.record_key)
        ).all()
    keep = [
        r for r in rows
        if r.status in ("failed", "not_attempted")
        or (r.status == "skipped" and (r.error or "").split(":", 1)[0] in ("parked", "deleted_in_crm"))
    ]  # fmt: skip
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["object", "record_key", "crm_id", "operation", "status", "error", "phase", "at"])
        w.writerows([list(r) for r in keep])
    return path


def attention_alert(client_id: str, run_id: str, counts: dict[str, int], log_path: str | None):
    """A warning alert candidate when records were left failed/parked/deleted; None when all is well."""
    from marketmap.alerts.rules import Alert

    n = sum(counts.values())
    if not n:
        return None
    parts = [f"{v:,} {k.replace('_', ' ')}" for k, v in counts.items() if v]
    return Alert(
        client_id=client_id, rule=RULE, role="revops", severity="warning", key="",
        title=f"CRM push left {n:,} records needing attention ({', '.join(parts)})",
        numbers={**counts, "run_id": run_id, "push_log": log_path},
        material={k: float(v) for k, v in counts.items()}, confidence="exact: from the push log",
        next_steps=NEXT_STEPS, report=log_path,
    )  # fmt: skip

"""Change preview of a push plan (dry run): one CSV row per changed field, plus a summary."""

from __future__ import annotations

import json
from pathlib import Path

from marketmap import csvsafe
from marketmap.crm.plan import PushPlan

PREVIEW_COLUMNS = ["record_key", "crm_id", "operation", "match", "reason", "field", "before", "after"]


def write_preview(plan: PushPlan, out_dir: Path | str) -> dict:
    """Write ``crm_preview_<object>.csv`` and ``crm_preview_<object>_summary.json`` to ``out_dir``.

    The summary counts creates, updates by field and skips by reason; the CSV lists every
    planned field change (before -> after) and every skipped record with its reason, except the
    records with nothing to change (``no_change``: counted in the summary, at scale nearly all).
    """
    from marketmap.storage import path as storage_path

    out = storage_path(out_dir)  # the run folder lives in storage
    out.mkdir(parents=True, exist_ok=True)
    csv_path = out / f"crm_preview_{plan.object}.csv"
    json_path = out / f"crm_preview_{plan.object}_summary.json"
    with csv_path.open("w", newline="", encoding="utf-8") as fh:
        w = csvsafe.writer(fh)
        w.writerow(PREVIEW_COLUMNS)
        for i in plan.items:
            base = [i.key, i.crm_id or "", i.operation, i.match or "", i.reason or ""]
            if i.operation == "skip":
                w.writerow([*base, "", "", ""])
                continue
            for f, v in i.identity.items():
                w.writerow([*base, f, "", v])
            for f, (before, after) in i.changes.items():
                w.writerow([*base, f, "" if before is None else before, after])
    summary = {**plan.summary(), "run_id": plan.run_id, "dry_run": True}
    json_path.write_text(json.dumps(summary, indent=2, default=str), encoding="utf-8")
    return {**summary, "preview_csv": str(csv_path), "summary_json": str(json_path)}

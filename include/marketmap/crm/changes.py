"""Field changes decided elsewhere (territory moves, stale-account reassignments, any one-off
fix) written through the sync engine: diff, push log, canary, retries, batch splitting."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, select

from marketmap.config import ClientConfig
from marketmap.crm import snapshot
from marketmap.crm.base import IN_LIST_SIZE, CrmAdapter, chunks
from marketmap.crm.execute import execute_push
from marketmap.crm.mapping import crm_objects
from marketmap.crm.plan import DELETED, PlanItem, PushPlan, load_sync
from marketmap.crm.values import outgoing, same
from marketmap.warehouse import among
from marketmap.warehouse import schema as t

CHANGED_IN_CRM = "changed_in_crm"


def _crm_ids(engine: Engine, client_id: str, obj: str, keys: list[str]) -> dict[str, list[str]]:
    """record key -> CRM ids to try: the one Market Map last wrote, then the warehouse's."""
    table, key_col = (t.accounts, "account_key") if obj == "account" else (t.contacts, "contact_key")
    c = table.c
    wh: dict[str, str | None] = {}
    with engine.connect() as conn:
        for part in chunks(sorted(set(keys)), IN_LIST_SIZE):
            rows = conn.execute(
                select(c[key_col], c.crm_id).where(c.client_id == client_id, among(conn, c[key_col], part))
            )
            wh.update((k, i) for k, i in rows)
    sync = load_sync(engine, client_id, obj, ("crm_id", "status"), keys=keys)
    out = {}
    for k in keys:
        s = sync.get(k) or {}
        ok = s.get("crm_id") if s.get("status") == "success" else None
        out[k] = [i for i in dict.fromkeys([ok, wh.get(k), s.get("crm_id")]) if i]
    return out


def push_field_changes(
    cfg: ClientConfig,
    engine: Engine,
    run_id: str,
    adapter: CrmAdapter,
    object_name: str,
    changes: dict[str, dict[str, Any]],
    expected: dict[str, dict[str, Any]] | None = None,
    *,
    only_canary: bool = False,
    canary: bool = True,
    dry_run: bool = False,
) -> dict:
    """Write ``changes`` (record key -> {CRM field -> new value}) to existing CRM records.

    Contract:

    - ``object_name`` is ``"account"`` or ``"contact"``; keys are Market Map keys
      (``account_key`` / ``contact_key``); field names are the CRM's (e.g. ``OwnerId``,
      ``hubspot_owner_id``). Values are sent as given (no picklist translation).
    - The record's CRM id is the one Market Map last wrote successfully, else the warehouse's.
      The current values are read from the CRM now (not from the snapshot). A record the CRM
      no longer has is skipped (``deleted_in_crm``); a record without a CRM id is skipped
      (``not_in_crm``). Nothing is ever created.
    - ``expected`` (record key -> {CRM field -> value it must still hold}): a record whose
      current CRM value differs from the expected one (someone changed it since the decision
      was made) is skipped with reason ``changed_in_crm`` and listed in ``conflicts`` — never
      overwritten. Keys missing from ``expected`` are not checked.
    - Fields already holding the new value are not sent; a record with nothing to change is
      skipped (``no_change``): re-running makes 0 writes.
    - Writes go through :func:`marketmap.crm.execute_push`: canary sample first (``canary``;
      ``only_canary`` stops after it), retries of transient errors (per batch and per record),
      batch splitting on rejections, an error-rate halt, one push_log row per record
      (``run_id``) and crm_sync / snapshot bookkeeping, so a killed task re-run finishes
      without writing anything twice.
    - ``dry_run``: nothing is written; the plan is returned.

    Returns ``{"plan": summary, "result": PushResult dict (absent on a dry run),
    "conflicts": [{key, field, expected, current}], "items": [...]}`` (items: the first 1000
    planned operations, for a preview).
    """
    if object_name not in ("account", "contact"):
        raise ValueError(f"object_name must be account or contact, got {object_name!r}")
    keys = sorted(changes)
    ids = _crm_ids(engine, cfg.client_id, object_name, keys)
    id_field = adapter.id_field(object_name)
    fields = sorted(
        {f for ch in changes.values() for f in ch} | {f for ex in (expected or {}).values() for f in ex}
    )
    wanted = sorted({i for v in ids.values() for i in v})
    if adapter.has_remote:
        current = adapter.read(object_name, wanted, [id_field, *fields]) if wanted else {}
    else:
        snap = snapshot.load(
            engine, cfg.client_id, object_name, ("crm_id", "field_values"), where="crm_id", values=wanted
        )
        current = {i: dict(snap[i].get("field_values") or {}) for i in wanted if i in snap}
        current |= {i: {} for i in wanted if i not in current}  # CSV: the export's ids are real
    items: list[PlanItem] = []
    conflicts: list[dict] = []
    for key in keys:
        crm_id = next((i for i in ids.get(key, []) if i in current), None)
        if crm_id is None:
            reason = DELETED if ids.get(key) else "not_in_crm"
            items.append(PlanItem(key, "skip", (ids.get(key) or [None])[0], reason=reason))
            continue
        now = current[crm_id]
        clash = [
            {"key": key, "field": f, "expected": want, "current": now.get(f)}
            for f, want in ((expected or {}).get(key) or {}).items()
            if not same(now.get(f), want)
        ]
        if clash:
            conflicts += clash
            items.append(PlanItem(key, "skip", crm_id, reason=f"{CHANGED_IN_CRM}: {clash[0]['field']}"))
            continue
        diff = {f: (now.get(f), outgoing(v)) for f, v in changes[key].items() if not same(now.get(f), v)}
        if not diff:
            items.append(PlanItem(key, "skip", crm_id, reason="no_change"))
            continue
        items.append(PlanItem(key, "update", crm_id, diff, match="crm_id"))
    push = next((p for p in cfg.push if p.object == object_name), None)
    plan = PushPlan(
        client_id=cfg.client_id, run_id=run_id, object=object_name, crm_object=crm_objects(cfg)[object_name],
        kind=adapter.kind, mode="update_only", external_id_field=None,
        canary_size=push.canary_size if push else 15, max_error_rate=push.max_error_rate if push else 0.05,
        items=items, lookups={"read_by_id": len(wanted)},
    )  # fmt: skip
    out: dict[str, Any] = {
        "plan": plan.summary(),
        "conflicts": conflicts,
        "items": [{"key": i.key, "operation": i.operation, "crm_id": i.crm_id, "reason": i.reason,
                   "changes": {f: {"from": b, "to": a} for f, (b, a) in i.changes.items()}} for i in items[:1000]],
    }  # fmt: skip
    if dry_run:
        return out
    out["result"] = execute_push(
        cfg, engine, run_id, adapter, plan, canary, only_canary=only_canary
    ).as_dict()
    return out

"""Owner changes of approved proposals (territory rebalance, stale-account round robin) to the CRM.

The moves were applied to the warehouse by ``analysis.proposals.apply_proposal``; here they
go through the sync engine (:func:`marketmap.crm.changes.push_field_changes`: diff, canary,
retries, push log). A move is confirmed only when the CRM holds the new owner, so a retry after
a CRM failure pushes exactly what is still missing; a record whose owner someone changed in
the CRM since the proposal is skipped and reported, never overwritten.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Engine

from marketmap.analysis.proposals import mark_pushed, pending_owner_pushes
from marketmap.config import ClientConfig
from marketmap.crm.base import CrmAdapter
from marketmap.crm.mapping import crm_format


def owner_field(cfg: ClientConfig) -> str:
    """The CRM's account owner field."""
    return "hubspot_owner_id" if crm_format(cfg) == "hubspot" else "OwnerId"


def push_owner_moves(
    cfg: ClientConfig, engine: Engine, run_id: str, adapter: CrmAdapter, now: dt.datetime,
    *, only_canary: bool = False, dry_run: bool = False,
) -> dict | None:  # fmt: skip
    """Push the pending owner moves; return a summary (None when nothing is pending)."""
    from marketmap.crm.changes import push_field_changes

    moves = pending_owner_pushes(engine, cfg.client_id)
    if not moves:
        return None
    field = owner_field(cfg)
    by_key = {m["account_key"]: m for m in moves}
    changes = {k: {field: m["to_rep"]} for k, m in by_key.items()}

    def settle(plan: dict) -> dict[str, str]:
        """Confirm moves the CRM already holds; close those that can never be pushed."""
        reasons = {i["key"]: i.get("reason") or i["operation"] for i in plan["items"]}
        done = [by_key[k] for k, r in reasons.items() if r == "no_change"]
        if done and not dry_run:
            mark_pushed(engine, cfg.client_id, done, now)
        for reason in ("deleted_in_crm", "not_in_crm"):
            gone = [by_key[k] for k, r in reasons.items() if r == reason]
            if gone and not dry_run:
                mark_pushed(engine, cfg.client_id, gone, now, outcome=reason)
        return reasons

    # 1. what the CRM already holds (a retry of an earlier try) is confirmed, not re-checked
    before = settle(push_field_changes(cfg, engine, run_id, adapter, "account", changes, dry_run=True))
    todo = {
        k: changes[k] for k, r in before.items() if r not in ("no_change", "deleted_in_crm", "not_in_crm")
    }
    if not todo:
        return {"moves": len(moves), "confirmed": len(moves), "written": 0}
    # 2. the rest only where the CRM still has the owner the proposal was made against
    expected = {k: {field: by_key[k]["from_rep"]} for k in todo if by_key[k]["from_rep"]}
    out = push_field_changes(cfg, engine, run_id, adapter, "account", todo, expected,
                             canary=only_canary, only_canary=only_canary, dry_run=dry_run)  # fmt: skip
    if dry_run:
        return {"moves": len(moves), "plan": out["plan"]}
    clashed = {c["key"] for c in out.get("conflicts", [])}
    mark_pushed(engine, cfg.client_id, [by_key[k] for k in sorted(clashed)], now, outcome="changed_in_crm")
    # 3. confirm what the CRM now holds; what is neither confirmed nor closed stays pending
    rest = {k: v for k, v in todo.items() if k not in clashed}
    after = (
        settle(push_field_changes(cfg, engine, run_id, adapter, "account", rest, dry_run=True))
        if rest
        else {}
    )
    result = out.get("result") or {}
    pending = [k for k, r in after.items() if r not in ("no_change", "deleted_in_crm", "not_in_crm")]
    return {"moves": len(moves), "written": int(result.get("succeeded", 0) or 0), "still_pending": len(pending),
            "changed_in_crm": len(clashed), "status": result.get("status")}  # fmt: skip

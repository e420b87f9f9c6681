"""The twice-yearly territory check: value per rep, ownership, imbalance and departed reps, with a
minimal-move rebalancing proposal stored for approval."""

from __future__ import annotations

import dataclasses

from marketmap import csvsafe, units
from marketmap.maintenance.run import MaintenanceRun, Outcome

RULES = {"territory_imbalance", "inactive_rep_owns_accounts", "territory_ownership_unclear",
         "territory_check_unavailable"}  # fmt: skip


def territories(r: MaintenanceRun):
    """(frame, active reps, reps who left, context, proposal): context has names, ownership, values."""
    from sqlalchemy import select

    from marketmap.analysis.territories import (
        basis_values,
        ownership,
        rebalance,
        rep_names,
        rep_sets,
        territory_frame,
    )
    from marketmap.scoring.pipeline import read_accounts, read_opportunities
    from marketmap.warehouse import schema as t
    from marketmap.warehouse.queries import read_frame

    reps = read_frame(r.engine, select(t.reps).where(t.reps.c.client_id == r.cfg.client_id))
    accounts, scores = read_accounts(r.engine, r.cfg.client_id), r.primary_scores()
    opps = read_opportunities(r.engine, r.cfg.client_id)
    frame = territory_frame(r.cfg, accounts, scores)
    active, left = rep_sets(r.cfg, reps)
    context = {"names": rep_names(r.cfg, reps), "owners": ownership(accounts, scores, opps),
               "values": basis_values(r.cfg, frame, opps, active, r.as_of)}  # fmt: skip
    return frame, active, left, context, rebalance(frame, active, r.cfg.maintenance.territory_band, left,
                                                   units.client_currency(r.cfg))


def store_rebalance(r: MaintenanceRun, rb) -> str | None:
    """Store the rebalancing proposal with an id (approve_rebalance names it)."""
    from marketmap.analysis.proposals import store_proposal

    moves = [dataclasses.asdict(m) for m in rb.moves]
    return store_proposal(r.engine, r.cfg.client_id, "rebalance", r.run_id, r.now, r.as_of, moves,
                          {"before": rb.stats_before, "after": rb.stats_after})  # fmt: skip


def territory_check(r: MaintenanceRun) -> Outcome:
    """Territory value per rep; ownership, imbalance and departed-rep alerts with a minimal-move proposal (CSV)."""
    import pandas as pd

    from marketmap.analysis.territories import territory_alerts

    frame, active, left, ctx, rb = territories(r)
    pid = store_rebalance(r, rb)
    names = ctx["names"]
    d = r.report_dir()
    csv_path = d / "rebalance_proposal.csv"
    moves = pd.DataFrame([dataclasses.asdict(m) for m in rb.moves],
                         columns=["account_key", "from_rep", "to_rep", "value", "tier", "reason"])  # fmt: skip
    moves.insert(2, "from_rep_name", moves["from_rep"].map(lambda x: names.get(x, x)))
    moves.insert(4, "to_rep_name", moves["to_rep"].map(lambda x: names.get(x, x)))
    with csv_path.open("w", newline="", encoding="utf-8") as fh:  # the report folder lives in storage
        moves.assign(proposal_id=pid).pipe(csvsafe.safe_frame).to_csv(fh, index=False)
    alerts, checked = territory_alerts(r.cfg, frame, active, left, str(csv_path), names=names,
                                       values=ctx["values"], owners=ctx["owners"], proposal=rb)  # fmt: skip
    summary = {"basis": r.cfg.maintenance.territory_value, "values_by_basis": ctx["values"],
               "balance_reported": checked["balance_reported"], "unavailable": checked["unavailable"],
               "ownership": ctx["owners"], "before": rb.stats_before, "after": rb.stats_after, "moves": len(rb.moves),
               "target_reachable": rb.reachable, "unreachable_reason": rb.reason, "goal_used": rb.goal_used,
               "proposal_id": pid,
               "values_before": rb.before, "values_after": rb.after, "t1_before": rb.t1_before,
               "t1_after": rb.t1_after, "proposal_csv": str(csv_path), "reps_left": sorted(left),
               "rep_names": {k: names.get(k, k) for k in sorted(set(active) | set(left))}}  # fmt: skip
    r.write_json("rebalance_summary.json", summary)
    for a in alerts:
        if a.rule in ("territory_imbalance", "inactive_rep_owns_accounts") and not a.cleared:
            a.numbers |= {"proposal": pid}
            if pid:
                a.next_steps = [*a.steps()[:1], f"Apply exactly this proposal with a manual run of the territories DAG "
                                                f"with `approve_rebalance={pid}` (owners are pushed to the CRM)."]  # fmt: skip
    result = {"moves": len(rb.moves), "ratio": rb.stats_before.get("ratio"),
              "balance_reported": checked["balance_reported"], "proposal_id": pid}  # fmt: skip
    return Outcome(result, alerts, set(RULES), str(csv_path))

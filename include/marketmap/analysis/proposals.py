"""Proposals a person approves: territory rebalances and stale-account round robins.

A check stores its proposal with an id (``rebalance-20270111-3f9a1c2e``: kind, day, content
hash — the same proposal computed again by a re-run gets the same id). Approving names that
id, and :func:`apply_proposal` applies exactly the stored moves, never a fresh computation:

* a move whose account still has ``from_rep`` is applied (warehouse owner + owner history);
* a move already at ``to_rep`` counts as applied (a retry);
* a move whose owner changed since the proposal is skipped and reported, never overwritten.

The CRM write group then pushes the applied moves whose CRM write is not confirmed yet
(:func:`pending_owner_pushes`, :func:`mark_pushed`), so a retry after a CRM failure converges
instead of finding "nothing to move" while the CRM still has the old owners.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json

from sqlalchemy import Engine, select, update

from marketmap.warehouse import schema as t

KINDS = ("rebalance", "stale")
MOVE_COLUMNS = ("account_key", "from_rep", "to_rep", "value", "tier", "reason")


class ProposalError(ValueError):
    """The named proposal cannot be applied (unknown, another client's or kind, already superseded)."""


def proposal_id(kind: str, day: dt.date, moves: list[dict]) -> str:
    body = json.dumps(sorted((m["account_key"], m.get("from_rep"), m["to_rep"]) for m in moves))
    return f"{kind}-{day:%Y%m%d}-{hashlib.sha256(body.encode()).hexdigest()[:8]}"


def store_proposal(
    engine: Engine, client_id: str, kind: str, run_id: str, now: dt.datetime, day: dt.date,
    moves: list[dict], summary: dict | None = None,
) -> str | None:  # fmt: skip
    """Store a proposal and its moves (idempotent); earlier open proposals of the kind are superseded.

    Returns the proposal id, or None when there is nothing to move.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown proposal kind {kind!r}")
    if not moves:
        return None
    pid = proposal_id(kind, day, moves)
    p = t.proposals.c
    with engine.begin() as conn:
        exists = conn.execute(select(p.status).where(p.client_id == client_id, p.proposal_id == pid)).first()
        if exists:
            return pid
        conn.execute(update(t.proposals).where(p.client_id == client_id, p.kind == kind, p.status == "proposed")
                     .values(status="superseded"))  # fmt: skip
        conn.execute(t.proposals.insert(), [{"client_id": client_id, "proposal_id": pid, "kind": kind,
                                             "status": "proposed", "run_id": run_id, "created_at": now,
                                             "summary": summary or {}}])  # fmt: skip
        conn.execute(t.proposal_moves.insert(), [
            {"client_id": client_id, "proposal_id": pid, **{c: m.get(c) for c in MOVE_COLUMNS}} for m in moves
        ])  # fmt: skip
    return pid


def open_proposals(engine: Engine, client_id: str, kind: str | None = None) -> list[dict]:
    p = t.proposals.c
    q = select(p.proposal_id, p.kind, p.status, p.created_at).where(
        p.client_id == client_id, p.status == "proposed"
    )
    if kind:
        q = q.where(p.kind == kind)
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(q.order_by(p.created_at.desc()))]


def apply_proposal(
    engine: Engine, client_id: str, pid: str, kind: str, run_id: str, now: dt.datetime
) -> dict:
    """Apply the stored moves of proposal ``pid`` to the warehouse, in one transaction (idempotent).

    Returns ``{"proposal_id", "moved", "already", "skipped": [{"account_key", "reason"}]}`` (``moved``:
    owners changed now; ``already``: moves applied by an earlier try or found in place).
    """
    p, m, a = t.proposals.c, t.proposal_moves.c, t.accounts.c
    with engine.begin() as conn:
        row = conn.execute(select(t.proposals).where(p.client_id == client_id, p.proposal_id == pid)).first()
        if row is None or row.kind != kind:
            known = [r.proposal_id for r in conn.execute(
                select(p.proposal_id).where(p.client_id == client_id, p.kind == kind, p.status == "proposed"))]  # fmt: skip
            raise ProposalError(
                f"no {kind} proposal {pid!r} for client {client_id!r}; open proposals: {', '.join(known) or 'none'}"
            )
        if row.status == "superseded":
            raise ProposalError(
                f"proposal {pid!r} was superseded by a newer one: review and approve that one"
            )
        moves = conn.execute(
            select(t.proposal_moves).where(m.client_id == client_id, m.proposal_id == pid)
        ).all()
        owners = dict(conn.execute(select(a.account_key, a.owner_id).where(
            a.client_id == client_id, a.account_key.in_([mv.account_key for mv in moves]))).all())  # fmt: skip
        applied, already, skipped, history = 0, 0, [], []
        for mv in moves:
            if mv.outcome is not None:  # decided by an earlier try of this approval
                already += mv.outcome == "applied"
                if mv.outcome != "applied":
                    skipped.append({"account_key": mv.account_key, "reason": mv.outcome})
                continue
            current = owners.get(mv.account_key, "<account gone>")
            if current == mv.to_rep:
                outcome = "applied"
                already += 1
            elif current == mv.from_rep:
                conn.execute(update(t.accounts).where(a.client_id == client_id, a.account_key == mv.account_key)
                             .values(owner_id=mv.to_rep, updated_at=dt.datetime.now(dt.UTC)))  # wall clock  # fmt: skip
                history.append({"client_id": client_id, "account_key": mv.account_key, "rep_id": mv.to_rep,
                                "source": kind, "run_id": run_id, "assigned_at": now})  # fmt: skip
                outcome = "applied"
                applied += 1
            else:
                outcome = "owner_changed"
                skipped.append({"account_key": mv.account_key,
                                "reason": f"owner is now {current}, not {mv.from_rep} as proposed"})  # fmt: skip
            conn.execute(update(t.proposal_moves)
                         .where(m.client_id == client_id, m.proposal_id == pid, m.account_key == mv.account_key)
                         .values(outcome=outcome, applied_at=now if outcome == "applied" else None))  # fmt: skip
        if history:
            conn.execute(t.territory_assignments.insert(), history)
        if row.status == "proposed":
            conn.execute(update(t.proposals).where(p.client_id == client_id, p.proposal_id == pid)
                         .values(status="approved", approved_run_id=run_id, approved_at=now))  # fmt: skip
    return {"proposal_id": pid, "moved": applied, "already": already, "skipped": skipped}


def pending_owner_pushes(engine: Engine, client_id: str) -> list[dict]:
    """Applied moves whose CRM write is not confirmed yet (every approved proposal of the client)."""
    m = t.proposal_moves.c
    q = select(m.proposal_id, m.account_key, m.from_rep, m.to_rep).where(
        m.client_id == client_id, m.outcome == "applied", m.pushed_at.is_(None)
    )
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(q.order_by(m.proposal_id, m.account_key))]


def mark_pushed(
    engine: Engine, client_id: str, moves: list[dict], now: dt.datetime, outcome: str | None = None
) -> None:
    """Record that the CRM confirmed these moves (or, with ``outcome``, why they will not be pushed)."""
    m = t.proposal_moves.c
    with engine.begin() as conn:
        for mv in moves:
            values = {"pushed_at": now} if outcome is None else {"outcome": outcome}
            conn.execute(update(t.proposal_moves).where(m.client_id == client_id, m.proposal_id == mv["proposal_id"],
                                                        m.account_key == mv["account_key"]).values(**values))  # fmt: skip

"""The review queue, worked: look-alike pairs a person decides, stored and applied on the next build.

Dedupe (``ingest/dedupe.py``) never merges two records on a name alone; it queues the pair in
``review_queue`` (kinds ``account_name``: an account without a domain named like another
account; ``account_domain``: two records on one domain whose names clearly differ), and the CRM
push queues ``crm_match`` pairs (a net-new account named like a CRM record). A person decides
each pair — in the portfolio app's review page or with ``marketmap review`` — and the decision
is the pair's ``status``:

* ``same`` ("accept merge"): the next build merges the two accounts into one with the usual
  survivor rules (most complete record first, its blanks filled from the other; every CRM id
  kept); for ``crm_match`` the push updates that CRM record instead of creating one;
* ``different`` ("keep apart"): the two stay separate and the pair is never queued again.

A pair is named by a short stable id (a hash of its kind and keys), so the CLI and the page
can refer to it. Deciding a pair that is already decided, or an id that is not in the
client's queue, is an error that says so.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass

from sqlalchemy import Engine, select, update

from marketmap.warehouse import schema as t

DECISIONS = {"merge": "same", "keep_apart": "different"}
DECIDED = {"same": "merge", "different": "keep apart"}
KIND_LABELS = {
    "account_name": "look-alike names (one has no domain)",
    "account_domain": "same domain, different names",
    "crm_match": "new account named like a CRM record",
}
# The fields shown side by side (accounts table columns).
FIELDS = ("name", "domain", "website", "industry", "employees", "annual_revenue", "country", "state", "city",
          "owner_id", "account_type", "crm_id", "crm_created")  # fmt: skip


class ReviewError(ValueError):
    """A decision that cannot be taken (unknown id, already decided, unknown decision)."""


def pair_id(kind: str, left_key: str, right_key: str) -> str:
    """A short, stable id for a queued pair."""
    return hashlib.sha1(f"{kind}|{left_key}|{right_key}".encode()).hexdigest()[:10]


@dataclass
class Pair:
    id: str
    kind: str
    left_key: str
    right_key: str
    left_name: str | None
    right_name: str | None
    score: float | None
    status: str
    run_id: str
    left: dict
    right: dict
    decided_by: str | None = None
    decided_at: dt.datetime | None = None

    @property
    def kind_label(self) -> str:
        return KIND_LABELS.get(self.kind, self.kind)

    def to_dict(self) -> dict:
        return {**self.__dict__, "kind_label": self.kind_label}


def _records(engine: Engine, client_id: str, keys: set[str]) -> dict[str, dict]:
    a = t.accounts.c
    out: dict[str, dict] = {}
    if not keys:
        return out
    with engine.connect() as conn:
        ks = sorted(keys)
        for i in range(0, len(ks), 500):
            rows = conn.execute(
                select(a.account_key, *[a[f] for f in FIELDS]).where(
                    a.client_id == client_id, a.account_key.in_(ks[i : i + 500])
                )
            ).mappings()
            for r in rows:
                out[r["account_key"]] = {f: r[f] for f in FIELDS}
        # crm_match: the right side is a CRM record, known from the CRM snapshot
        c = t.crm_records.c
        rows = conn.execute(
            select(c.crm_id, c.name, c.domain, c.field_values).where(
                c.client_id == client_id, c.object == "account", c.crm_id.in_([k for k in ks if k not in out][:500])
            )
        ).mappings()  # fmt: skip
        for r in rows:
            out[r["crm_id"]] = {"name": r["name"], "domain": r["domain"], "crm_id": r["crm_id"]}
    return out


def pairs(engine: Engine, client_id: str, status: str | None = "open") -> list[Pair]:
    """The client's queued pairs (open ones by default), best match first, with both records."""
    q = t.review_queue.c
    stmt = select(q.kind, q.left_key, q.right_key, q.left_name, q.right_name, q.score, q.status, q.run_id,
                  q.decided_by, q.decided_at).where(q.client_id == client_id)  # fmt: skip
    if status is not None:
        stmt = stmt.where(q.status == status)
    with engine.connect() as conn:
        rows = conn.execute(stmt).all()
    records = _records(engine, client_id, {r.left_key for r in rows} | {r.right_key for r in rows})
    out = [
        Pair(pair_id(r.kind, r.left_key, r.right_key), r.kind, r.left_key, r.right_key, r.left_name, r.right_name,
             r.score, r.status, r.run_id, records.get(r.left_key, {"name": r.left_name}),
             records.get(r.right_key, {"name": r.right_name}), r.decided_by, r.decided_at)
        for r in rows
    ]  # fmt: skip
    out.sort(key=lambda p: (-(p.score or 0), p.kind, p.left_key, p.right_key))
    return out


def decided_pairs(engine: Engine, client_id: str, limit: int = 50) -> list[Pair]:
    """The latest decisions (who, when), newest first."""
    done = [p for p in pairs(engine, client_id, status=None) if p.status != "open"]
    far = dt.datetime.min.replace(tzinfo=dt.UTC)
    done.sort(key=lambda p: (_aware(p.decided_at) or far, p.id), reverse=True)
    return done[:limit]


def _aware(when: dt.datetime | None) -> dt.datetime | None:
    return when.replace(tzinfo=dt.UTC) if when is not None and when.tzinfo is None else when


def decide(engine: Engine, client_id: str, pid: str, decision: str, by: str | None = None) -> Pair:
    """Record a person's decision on one pair: ``merge`` or ``keep_apart``, with who and when.

    Raises:
        ReviewError: unknown decision, no pair with that id in the client's queue, or the
            pair was already decided (decisions are final; the message says which).
    """
    if decision not in DECISIONS:
        raise ReviewError(f"unknown decision {decision!r}: expected merge or keep_apart")
    found = [p for p in pairs(engine, client_id, status=None) if p.id == pid]
    if not found:
        raise ReviewError(f"no review pair {pid!r} for client {client_id} (marketmap review --client {client_id} "
                          "lists the open pairs and their ids)")  # fmt: skip
    p = found[0]
    if p.status != "open":
        who = f" by {p.decided_by}" if p.decided_by else ""
        raise ReviewError(f"review pair {pid} ({p.left_name} / {p.right_name}) was already decided{who}: "
                          f"{DECIDED.get(p.status, p.status)}")  # fmt: skip
    q = t.review_queue.c
    with engine.begin() as conn:
        n = conn.execute(
            update(t.review_queue)
            .where(q.client_id == client_id, q.kind == p.kind, q.left_key == p.left_key,
                   q.right_key == p.right_key, q.status == "open")
            .values(status=DECISIONS[decision], decided_by=by, decided_at=dt.datetime.now(dt.UTC))
        ).rowcount  # fmt: skip
    if n != 1:  # decided by someone else in between
        raise ReviewError(f"review pair {pid} was decided by someone else meanwhile")
    p.status, p.decided_by = DECISIONS[decision], by
    return p


def decided(
    engine: Engine, client_id: str, kinds: tuple[str, ...] = ("account_name", "account_domain")
) -> dict:
    """``{(kind, left_key, right_key): status}`` of every decided pair of ``kinds``."""
    q = t.review_queue.c
    with engine.connect() as conn:
        rows = conn.execute(
            select(q.kind, q.left_key, q.right_key, q.status).where(
                q.client_id == client_id, q.kind.in_(kinds), q.status != "open"
            )
        ).all()
    return {(r.kind, r.left_key, r.right_key): r.status for r in rows}


def format_pairs(items: list[Pair], client_id: str) -> str:
    """Open pairs side by side, for the terminal."""
    if not items:
        return f"No open review pairs for {client_id}."
    lines = [f"{len(items)} open review pair{'s' if len(items) != 1 else ''} for {client_id} "
             f"(decide with --merge ID or --keep-apart ID):"]  # fmt: skip
    for p in items:
        lines += ["", f"[{p.id}] {p.kind_label}, name similarity {p.score:.0f}" if p.score is not None
                  else f"[{p.id}] {p.kind_label}"]  # fmt: skip
        lines.append(f"  {'':<15}{'left: ' + p.left_key:<40}  right: {p.right_key}")
        for f in FIELDS:
            a, b = p.left.get(f), p.right.get(f)
            if a is None and b is None:
                continue
            mark = "  " if a == b or a is None or b is None else "≠ "
            lines.append(f"  {mark}{f:<13}{_show(a):<40}  {_show(b)}")
    return "\n".join(lines)


def _show(v) -> str:
    if v is None:
        return "–"
    if isinstance(v, float) and v.is_integer():
        return f"{int(v):,}"
    return str(v)[:38]

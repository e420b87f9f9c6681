"""Which accounts and contacts can score differently since the last complete scoring.

A monthly re-score reads only those. A fit score depends on the account's own row and, through
recency vectors, on the run date; a persona score on the contact's own row, its account's tier
and, through tenure, on the run date. So a row can only score differently when it was written
since the last scoring started, has no score of this version yet, its account's tier was
rewritten since (contacts), or one of its dates crossed a window boundary between the last
scoring's run date and this one. Everything else would score exactly as stored.

``scoring_state`` remembers, per client, kind and version, the run date and start of the last
complete scoring, and a hash of the scoring code (new code re-scores everything once).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable
from pathlib import Path

import pandas as pd
from sqlalchemy import DateTime, Engine, Select, and_, or_, select
from sqlalchemy.sql.elements import ColumnElement

from marketmap.config import ClientConfig
from marketmap.warehouse import schema as t
from marketmap.warehouse import upsert

DAY = dt.timedelta(days=1)  # margin around a boundary: a date-time field's timezone, the cutoff's own day


def code_version(kind: str) -> str:
    """A hash of the code that computes ``kind``'s scores."""
    from marketmap.scoring import fit, personas

    module = fit if kind == "accounts" else personas
    return hashlib.sha256(Path(module.__file__).read_bytes()).hexdigest()[:12]


def _state(engine: Engine, client_id: str, kind: str, version: str):
    st = t.scoring_state.c
    with engine.connect() as conn:
        return conn.execute(
            select(st.as_of, st.started_at, st.code_version).where(
                st.client_id == client_id, st.kind == kind, st.rubric_version == version
            )
        ).first()


def save_state(
    engine: Engine, client_id: str, kind: str, version: str, run_date: dt.date, started: dt.datetime, run_id: str
) -> None:
    """Record a complete scoring (full, or incremental: after it every row is as of ``run_date``)."""
    with engine.begin() as conn:
        upsert(conn, t.scoring_state, [{
            "client_id": client_id, "kind": kind, "rubric_version": version, "as_of": run_date,
            "started_at": started, "code_version": code_version(kind), "run_id": run_id,
        }])  # fmt: skip


def _since(engine: Engine, client_id: str, kind: str, version: str, run_date: dt.date):
    """``(as_of, started_at, "")`` of the last complete scoring, or ``(None, None, reason)``."""
    state = _state(engine, client_id, kind, version)
    if state is None:
        return None, None, "no earlier complete scoring of this version"
    if state.code_version != code_version(kind):
        return None, None, "the scoring code changed since the last scoring"
    if state.as_of > run_date:
        return None, None, f"the last scoring was for a later date ({state.as_of})"
    started = state.started_at if state.started_at.tzinfo else state.started_at.replace(tzinfo=dt.UTC)
    return state.as_of, started, ""


def _bound(column, day: pd.Timestamp, margin: dt.timedelta):
    value = day.to_pydatetime() + margin
    return value.replace(tzinfo=dt.UTC) if isinstance(column.type, DateTime) else value.date()


def _crossed(column, before: list[pd.Timestamp], after: list[pd.Timestamp]) -> list[ColumnElement]:
    """``column`` lies where a cutoff moved from ``before[i]`` to ``after[i]`` (with a day's margin)."""
    return [column.between(_bound(column, b, -DAY), _bound(column, a, DAY)) for b, a in zip(before, after, strict=True)]


Narrow = Callable[[Select], Select]


def accounts_to_rescore(cfg: ClientConfig, engine: Engine, version: str, run_date: dt.date) -> tuple[Narrow | None, str]:
    """``(narrow, "")``, where ``narrow(query)`` keeps the accounts of a query on ``accounts`` that
    can score differently; or ``(None, reason)`` when every account must be scored."""
    from marketmap.scoring.fit import months_before

    as_of, started, reason = _since(engine, cfg.client_id, "accounts", version, run_date)
    if as_of is None:
        return None, reason
    a = t.accounts.c
    # "has a score of this version" as an outer join, not NOT EXISTS inside the OR: PostgreSQL runs
    # such a subquery once per account (4x slower at 200k). Every scored account has a row for
    # each product of the version (score_icp), so the first product's row stands for them all.
    s = t.account_scores.alias("scored")
    scored = and_(s.c.client_id == a.client_id, s.c.account_key == a.account_key, s.c.rubric_version == version,
                  s.c.product == cfg.icp.rubrics[0].product)  # fmt: skip
    conds = [a.updated_at.is_(None), a.updated_at >= started, s.c.account_key.is_(None)]
    for vector in (v for r in cfg.icp.rubrics for v in r.vectors if v.kind == "recency"):
        if vector.field not in a:
            return None, f"recency vector {vector.name!r} reads a custom field"
        months = [w.within_months for w in vector.windows]
        conds += _crossed(
            a[vector.field],
            [pd.Timestamp(months_before(as_of, m)) for m in months],
            [pd.Timestamp(months_before(run_date, m)) for m in months],
        )
    return lambda query: query.outerjoin(s, scored).where(or_(*conds)), ""


def contacts_to_rescore(
    cfg: ClientConfig, engine: Engine, version: str, rubric: str, product: str, run_date: dt.date
) -> tuple[Narrow | None, str]:
    """``(narrow, "")``, where ``narrow(query)`` keeps the contacts of a query on ``contacts`` that
    can score differently; or ``(None, reason)`` when every contact must be scored.

    ``version`` is the contact-score state's version (persona and rubric version together);
    ``rubric``/``product`` name the account tiers a contact score carries.
    """
    from marketmap.scoring.personas import TENURE_BOUNDARIES_DAYS

    as_of, started, reason = _since(engine, cfg.client_id, "contacts", version, run_date)
    if as_of is None:
        return None, reason
    c = t.contacts.c
    persona = version.split("|", 1)[0]
    # outer joins on both primary keys (at most one row each), as in accounts_to_rescore
    cs, s = t.contact_scores.alias("scored"), t.account_scores.alias("tier")
    scored = and_(cs.c.client_id == c.client_id, cs.c.contact_key == c.contact_key, cs.c.rubric_version == persona)
    tier = and_(s.c.client_id == c.client_id, s.c.account_key == c.account_key, s.c.rubric_version == rubric,
                s.c.product == product)  # fmt: skip
    conds = [c.updated_at.is_(None), c.updated_at >= started, cs.c.contact_key.is_(None), s.c.scored_at >= started]
    # tenure: a start date that passed a boundary (0, 1 or 3 years before the run date) in between
    before = [pd.Timestamp(as_of) - pd.Timedelta(days=d) for d in TENURE_BOUNDARIES_DAYS]
    after = [pd.Timestamp(run_date) - pd.Timedelta(days=d) for d in TENURE_BOUNDARIES_DAYS]
    conds += _crossed(c.role_start_date, before, after)
    return lambda query: query.outerjoin(cs, scored).outerjoin(s, tier).where(or_(*conds)), ""

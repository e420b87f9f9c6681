"""Account owner history: since when each account has had its current owner.

The stale-account rule ("the same rep for 6+ months") needs how long an account has really
had its owner. The CRM export has no owner history, so the first time Market Map sees an
account its owner is dated from the account's CRM creation date (the owner cannot have had
it longer), and every later change seen by a build or a monthly extract is dated at that
run. Approved territory moves are recorded by the apply step with source ``rebalance``.
"""

from __future__ import annotations

import datetime as dt

import pandas as pd
from sqlalchemy import Engine, select

from marketmap.warehouse import schema as t


def _last_owners(conn, client_id: str) -> pd.DataFrame:
    ta = t.territory_assignments.c
    hist = pd.read_sql(
        select(ta.account_key, ta.rep_id, ta.assigned_at, ta.entry_id).where(ta.client_id == client_id), conn
    )
    return hist.sort_values(["assigned_at", "entry_id"]).drop_duplicates("account_key", keep="last")


def record_owner_changes(engine: Engine, client_id: str, run_id: str, now: dt.datetime) -> dict:
    """Append a history row for every account whose owner is new or changed since the last row.

    Returns ``{"first_seen": n, "changed": n}``. Idempotent: a re-run finds nothing new.
    """
    a = t.accounts.c
    with engine.connect() as conn:
        owners = pd.read_sql(
            select(a.account_key, a.owner_id, a.crm_created).where(
                a.client_id == client_id, a.owner_id.is_not(None)
            ),
            conn,
        )
        last = _last_owners(conn, client_id)
    merged = owners.merge(last[["account_key", "rep_id"]], on="account_key", how="left")
    first = merged["rep_id"].isna()
    changed = ~first & (merged["rep_id"] != merged["owner_id"])
    created = pd.to_datetime(merged["crm_created"], utc=True, errors="coerce")
    now_ts = pd.Timestamp(now).tz_convert("UTC") if pd.Timestamp(now).tzinfo else pd.Timestamp(now, tz="UTC")
    first_at = created.where(created.notna() & (created <= now_ts), now_ts)
    rows = []
    for k, o, f, c, at in zip(
        merged["account_key"], merged["owner_id"], first, changed, first_at, strict=True
    ):
        if f or c:
            rows.append({"client_id": client_id, "account_key": k, "rep_id": o,
                         "source": "crm_created" if f else "crm", "run_id": run_id,
                         "assigned_at": at.to_pydatetime() if f else now})  # fmt: skip
    if rows:
        with engine.begin() as conn:
            conn.execute(t.territory_assignments.insert(), rows)
    return {"first_seen": int(first.sum()), "changed": int(changed.sum())}


def owner_since(engine: Engine, client_id: str) -> pd.Series:
    """account_key -> when its current owner got it (from the history above)."""
    with engine.connect() as conn:
        last = _last_owners(conn, client_id)
    return last.set_index("account_key")["assigned_at"]

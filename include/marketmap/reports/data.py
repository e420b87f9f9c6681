"""Warehouse reads shared by the reports, tolerant of empty tables.

Reports are built from whatever the other parts of the pipeline have written so far: a
missing table row never raises, it yields an empty frame the report shows as "no data yet".
"""

from __future__ import annotations

import pandas as pd
from sqlalchemy import Engine, select

from marketmap.config import ClientConfig
from marketmap.warehouse import schema as t
from marketmap.warehouse.queries import read_frame

TIER_ORDER = ["T1", "T2", "T3", "OUT"]


def _read(engine: Engine, query) -> pd.DataFrame:
    return read_frame(engine, query)


def current_version(cfg: ClientConfig, engine: Engine) -> str | None:
    """The rubric version to report on: the config's, else the most recently scored one."""
    from marketmap.versions import rubric_version

    wanted = rubric_version(cfg)
    s = t.account_scores.c
    with engine.connect() as conn:
        has = conn.execute(  # one index probe, not a count of the client's whole score table
            select(s.rubric_version).where(s.client_id == cfg.client_id, s.rubric_version == wanted).limit(1)
        ).first()
        if has:
            return wanted
        row = conn.execute(
            select(s.rubric_version)
            .where(s.client_id == cfg.client_id)
            .order_by(s.scored_at.desc().nulls_last())
            .limit(1)
        ).first()
    return row.rubric_version if row else None


def scored_accounts(cfg: ClientConfig, engine: Engine) -> pd.DataFrame:
    """Accounts with the primary product's tier, score and valuation (empty when unscored).

    Columns: the ``accounts`` columns (without bookkeeping: source file and row, runs seen,
    update time) plus ``tier``, ``score``, ``valuation``, ``white_space``, ``rep_id`` (latest
    territory assignment, else the CRM owner).
    """
    from marketmap.warehouse.queries import BOOKKEEPING, columns_of, read_accounts, read_scores

    accounts = read_accounts(engine, cfg.client_id, columns_of(t.accounts, without=BOOKKEEPING))
    version = current_version(cfg, engine)
    if accounts.empty or version is None:
        return pd.DataFrame()
    primary = cfg.icp.rubrics[0].product
    # not the score's points or explanation: most of a score row's memory
    cols = ["account_key", "tier", "score", "valuation", "white_space"]
    scores = read_scores(engine, cfg.client_id, version, primary, cols)
    frame = accounts.merge(scores, on="account_key", how="inner")
    frame["rep_id"] = frame["owner_id"]
    assigned = territory_owners(cfg, engine)
    if not assigned.empty:
        frame = frame.merge(assigned, on="account_key", how="left")
        frame["rep_id"] = frame["assigned_rep"].where(frame["assigned_rep"].notna(), frame["owner_id"])
        frame = frame.drop(columns=["assigned_rep"])
    frame.attrs["rubric_version"] = version
    return frame


def territory_owners(cfg: ClientConfig, engine: Engine) -> pd.DataFrame:
    """The latest territory assignment per account (``account_key``, ``assigned_rep``)."""
    ta = t.territory_assignments.c
    rows = _read(
        engine,
        select(ta.account_key, ta.rep_id, ta.assigned_at, ta.entry_id).where(ta.client_id == cfg.client_id),
    )
    if rows.empty:
        return pd.DataFrame(columns=["account_key", "assigned_rep"])
    rows = rows.sort_values(["assigned_at", "entry_id"]).drop_duplicates("account_key", keep="last")
    return rows.rename(columns={"rep_id": "assigned_rep"})[["account_key", "assigned_rep"]]


def reps(cfg: ClientConfig, engine: Engine) -> pd.DataFrame:
    """Reps (``rep_id``, ``name``, ``territory``): warehouse rows, else the client config."""
    r = t.reps.c
    frame = _read(engine, select(r.rep_id, r.name, r.territory, r.active).where(r.client_id == cfg.client_id))
    if frame.empty and cfg.territories.reps:
        frame = pd.DataFrame(
            [
                {"rep_id": x.id, "name": x.name, "territory": x.territory, "active": x.active}
                for x in cfg.territories.reps
            ]
        )
    return frame


def rep_names(cfg: ClientConfig, engine: Engine) -> dict[str, str]:
    frame = reps(cfg, engine)
    return {str(k): str(v or k) for k, v in zip(frame.get("rep_id", []), frame.get("name", []), strict=False)}


def opportunities(cfg: ClientConfig, engine: Engine) -> pd.DataFrame:
    from marketmap.warehouse.queries import read_opportunities

    return read_opportunities(engine, cfg.client_id)


def contact_scores(cfg: ClientConfig, engine: Engine) -> pd.DataFrame:
    """Scored contacts of the current persona version, joined to the contact's name and title."""
    from marketmap.versions import persona_version

    cs, c = t.contact_scores.c, t.contacts.c
    q = (
        select(
            cs.contact_key, cs.account_key, cs.persona_score, cs.persona_tier, cs.account_tier, cs.priority,
            c.first_name, c.last_name, c.title, c.email, c.linkedin_url,
        )
        .join(t.contacts, (c.client_id == cs.client_id) & (c.contact_key == cs.contact_key))
        .where(cs.client_id == cfg.client_id, cs.rubric_version == persona_version(cfg))
    )  # fmt: skip
    return _read(engine, q)


def tier_summary(cfg: ClientConfig, engine: Engine) -> pd.DataFrame:
    """Per tier (T1, T2, T3, OUT; zeros included), counted in SQL: ``accounts``,
    ``accounts_valued`` and ``potential_arr`` of the primary product's current version.

    ``attrs["rubric_version"]`` names the version (None and all zeros when nothing is scored).
    """
    from marketmap.warehouse.queries import sql_frame

    version = current_version(cfg, engine)
    cols = ["accounts", "accounts_valued", "potential_arr"]
    frame = pd.DataFrame(0, index=pd.Index(TIER_ORDER, name="tier"), columns=cols)
    if version is not None:
        got = sql_frame(engine, "reports/count_accounts_by_tier", client_id=cfg.client_id,
                        rubric_version=version, product=cfg.icp.rubrics[0].product)  # fmt: skip
        got = got[got["tier"].isin(TIER_ORDER)].set_index("tier")
        frame = got[cols].reindex(TIER_ORDER, fill_value=0).rename_axis("tier")
    frame = frame.astype({"accounts": int, "accounts_valued": int, "potential_arr": float})
    frame.attrs["rubric_version"] = version
    return frame


def tier_counts(tiers: pd.Series) -> pd.Series:
    """Accounts per tier in T1, T2, T3, OUT order (zeros included)."""
    return tiers.value_counts().reindex(TIER_ORDER, fill_value=0).astype(int)


def valuation_by_tier(frame: pd.DataFrame) -> pd.Series:
    """Total potential ARR per in-scope tier (OUT accounts carry no valuation)."""
    return (
        frame.groupby("tier")["valuation"].sum(min_count=1).reindex(TIER_ORDER[:3]).fillna(0.0).astype(float)
        if not frame.empty
        else pd.Series(0.0, index=TIER_ORDER[:3])
    )

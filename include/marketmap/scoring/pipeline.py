"""The scoring steps of a build run: score and value accounts, score contacts, QA gate.

Scores are stored per rubric version. The version written is the config's ``icp.version``
plus a short hash of the rubric itself, so editing a rubric without bumping its version
can never overwrite the scores of the old one. Re-scoring with an unchanged rubric and
unchanged data writes nothing.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter

import numpy as np
import pandas as pd
from sqlalchemy import Engine, case, func, select

from marketmap.config import ClientConfig
from marketmap.scoring.incremental import accounts_to_rescore, contacts_to_rescore, save_state
from marketmap.versions import persona_version, rubric_version
from marketmap.warehouse import schema as t
from marketmap.warehouse import upsert, upsert_frame
from marketmap.warehouse.custom import expand
from marketmap.warehouse.queries import (
    BOOKKEEPING,
    analyze_changed,
    columns_of,
    iter_frames,
    read_accounts,
    read_contacts,
    read_frame,
    read_opportunities,
    read_reps,
    read_scores,
)

# Re-exported: the versions and readers live below scoring (marketmap.versions,
# marketmap.warehouse.queries) so the warehouse, analysis and reports need not import scoring.
__all__ = [
    "persona_version", "read_accounts", "read_contacts", "read_opportunities", "read_reps", "read_scores",
    "rubric_version", "score_accounts", "score_contacts", "value_accounts",
]  # fmt: skip


def _none(v):
    if v is None:
        return None
    if isinstance(v, float | np.floating) and np.isnan(v):
        return None
    if isinstance(v, np.generic):
        return v.item()
    return v


def _column(s: pd.Series) -> list:
    """A column as plain Python values with None for NaN/NA (what ``_none`` does per value)."""
    if s.dtype == object:
        return [_none(v) for v in s.tolist()]
    na = s.isna().to_numpy()
    values = s.to_numpy(dtype=object, na_value=None).tolist()
    return [None if m else _none(v) for v, m in zip(values, na, strict=True)] if na.any() else values


def _write_changed(
    engine: Engine,
    table,
    new: pd.DataFrame,
    old: pd.DataFrame,
    keys: list[str],
    compared: tuple[str, ...],
    **extra,
) -> int:
    """Upsert the rows of ``new`` that are absent from ``old`` or differ in a compared column."""
    if not old.empty:
        merged = new.merge(
            old[[*keys, *compared]], on=keys, how="left", suffixes=("", "_old"), indicator=True
        )
        differs = (merged["_merge"] == "left_only").to_numpy().copy()
        for col in compared:
            a, b = merged[col], merged[f"{col}_old"]
            if pd.api.types.is_numeric_dtype(a) and pd.api.types.is_numeric_dtype(b):
                same = np.isclose(a.astype(float), b.astype(float), equal_nan=True)
            else:
                same = (a.isna() & b.isna()) | (a.astype("object") == b.astype("object"))
            differs |= ~np.asarray(same, dtype=bool)
        new = new[differs]
    cols = list(new.columns)
    with engine.begin() as conn:
        # row dicts a slice at a time: a million of them at once would be a GB of Python objects
        for start in range(0, len(new), WRITE_SLICE):
            part = new.iloc[start : start + WRITE_SLICE]
            if upsert_frame(conn, table, part.assign(**extra)):  # PostgreSQL: COPY'd column by column
                continue
            values = [_column(part[c]) for c in cols]  # column-wise: ~4x less CPU than per value
            rows = [{**dict(zip(cols, rec, strict=True)), **extra} for rec in zip(*values, strict=True)]
            upsert(conn, table, rows, chunk=2000)
    return len(new)


# Rows turned into dicts and upserted at a time by _write_changed (one transaction for all).
WRITE_SLICE = 50_000


# Accounts scored per chunk: a fit score depends on its own account only, so score_accounts
# walks the accounts in key order and its memory stays that of one chunk (bench_build_1m.py).
SCORE_CHUNK = 100_000


def score_accounts(
    cfg: ClientConfig,
    engine: Engine,
    run_id: str,
    run_date: dt.date,
    chunk: int = SCORE_CHUNK,
    *,
    incremental: bool = False,
) -> dict:
    """Fit score and tier of every account for every product rubric; write what changed.

    Accounts are read, scored, compared and written ``chunk`` at a time (in account-key order).
    ``incremental`` (the monthly re-score): only accounts that can score differently from the last
    complete scoring of this rubric version are read — changed or new since it started, or with a
    recency date that crossed a window between its run date and this one. Every other account's
    score is what a full re-score would write, so the result is the same for a fraction of the work.
    """
    cid = cfg.client_id
    version = rubric_version(cfg)
    started = dt.datetime.now(dt.UTC)
    narrow, full_because = accounts_to_rescore(cfg, engine, version, run_date) if incremental else (None, "")
    a = t.accounts.c
    query = select(*[a[c] for c in columns_of(t.accounts, without=BOOKKEEPING)]).where(a.client_id == cid)
    if narrow is not None:
        query = narrow(query)
    accounts_n = written = 0
    tiers: Counter[str] = Counter()
    for accounts in iter_frames(engine, query.order_by(a.account_key), chunk):
        accounts = expand(accounts.reset_index(drop=True))  # custom fields as columns
        w, counts = _score_chunk(cfg, engine, accounts, version, run_id, run_date, started, sparse=narrow is not None)
        accounts_n, written = accounts_n + len(accounts), written + w
        tiers.update(counts)
    analyze_changed(engine, cid, {t.account_scores: written})  # the next steps join on the scores just written
    out = {"rubric_version": version, "accounts": accounts_n, "written": written}
    if narrow is not None:  # the tiers of every account, not only of those re-scored
        out["rescored"] = accounts_n
        with engine.connect() as conn:
            out["accounts"] = conn.execute(select(func.count()).where(a.client_id == cid)).scalar_one()
            s = t.account_scores.c
            tiers = Counter({
                f"{p}:{tier}": n for p, tier, n in conn.execute(
                    select(s.product, s.tier, func.count()).where(s.client_id == cid, s.rubric_version == version)
                    .group_by(s.product, s.tier)
                )
            })  # fmt: skip
    elif incremental:
        out["full_rescore"] = full_because
    save_state(engine, cid, "accounts", version, run_date, started, run_id)
    return out | {"tiers": dict(sorted(tiers.items()))}


def _stored_scores(engine: Engine, query, key, keys: pd.Series, sparse: bool) -> pd.DataFrame:
    """The stored scores of a chunk's ``keys`` (in key order): by their key range, or — ``sparse``, a
    few changed rows spread over all keys (incremental re-score) — by the keys themselves."""
    if not sparse:
        return read_frame(engine, query.where(key.between(keys.iloc[0], keys.iloc[-1])))
    parts = (keys.iloc[i : i + 5000].tolist() for i in range(0, len(keys), 5000))
    return pd.concat([read_frame(engine, query.where(key.in_(part))) for part in parts], ignore_index=True)


def _score_chunk(cfg, engine, accounts, version, run_id, run_date, now, *, sparse=False) -> tuple[int, dict[str, int]]:
    from marketmap.scoring.fit import score_icp

    cid = cfg.client_id
    scored = score_icp(accounts, cfg.icp, run_date)
    scored["account_key"] = np.tile(accounts["account_key"].to_numpy(), len(cfg.icp.rubrics))
    scored["rubric_version"] = version
    cols = [
        "account_key", "product", "rubric_version", "score", "tier", "excluded", "negatives", "points", "unknown",
        "max_attainable", "max_attainable_tier", "explanation",
    ]  # fmt: skip
    cols += [c for c in ("intent", "propensity", "abm_grade") if c in scored]
    new = scored[cols].reset_index(drop=True)
    s = t.account_scores.c
    keys = accounts["account_key"]
    old = _stored_scores(
        engine, select(s.account_key, s.product, s.score, s.tier, s.explanation, s.max_attainable)
        .where(s.client_id == cid, s.rubric_version == version), s.account_key, keys, sparse,
    )  # fmt: skip
    written = _write_changed(
        engine, t.account_scores, new, old, ["account_key", "product"],
        ("score", "tier", "explanation", "max_attainable"), client_id=cid, run_id=run_id, scored_at=now,
    )  # fmt: skip
    tiers = new.groupby(["product", "tier"]).size()
    return written, {f"{p}:{tier}": int(n) for (p, tier), n in tiers.items()}


# What the valuation methods read (scoring.valuation): a fifth of an account row's memory.
VALUATION_COLUMNS = ("account_key", "employees", "annual_revenue", "industry", "current_arr")


def _valuation_columns(cfg: ClientConfig) -> list[str]:
    field = cfg.valuation.product_field
    if field and field not in t.accounts.c:
        return [*VALUATION_COLUMNS, "custom"]  # a custom field: expanded from the custom column
    return [*VALUATION_COLUMNS, *([field] if field and field not in VALUATION_COLUMNS else [])]


def value_accounts(cfg: ClientConfig, engine: Engine, run_id: str) -> dict:
    """Potential ARR (and white space for customers) of every in-scope account; write what changed."""
    from marketmap.scoring.valuation import value_accounts as value

    cid = cfg.client_id
    version = rubric_version(cfg)
    accounts = read_accounts(engine, cid, _valuation_columns(cfg))
    scores = read_scores(
        engine,
        cid,
        version,
        columns=["account_key", "product", "rubric_version", "tier", "valuation", "white_space"],
    )
    if accounts.empty or scores.empty:
        return {"valued": 0, "written": 0, "valuation_total": 0.0}
    opps = read_opportunities(engine, cid, ["account_key", "amount", "is_won"])
    won = opps[opps["is_won"].fillna(False).astype(bool) & (opps["amount"].fillna(0) > 0)]
    valued = value(accounts, cfg.valuation, won[["account_key", "amount"]].dropna(subset=["account_key"]))
    valued["account_key"] = accounts["account_key"].to_numpy()
    new = scores[["account_key", "product", "rubric_version", "tier"]].merge(
        valued[["account_key", "valuation", "white_space", "valuation_methods"]], on="account_key", how="left"
    )
    # Out-of-scope accounts carry no valuation: it is not a blank to fix.
    new.loc[new["tier"] == "OUT", ["valuation", "white_space"]] = np.nan
    new = new.drop(columns=["tier"])
    written = _write_changed(
        engine, t.account_scores, new, scores, ["account_key", "product"], ("valuation", "white_space"),
        client_id=cid, run_id=run_id, valued_at=dt.datetime.now(dt.UTC),  # wall clock: the push reads it
    )  # fmt: skip
    analyze_changed(engine, cid, {t.account_scores: written})  # the push selects by valued_at
    in_scope = new["valuation"].notna()
    return {
        "valued": int(in_scope.sum()),
        "written": written,
        "valuation_total": float(new.loc[in_scope, "valuation"].sum()),
    }


# What persona scoring reads of a contact (scoring.personas.score_contacts): not names, e-mails,
# LinkedIn URLs or custom fields, which are most of a contact row's memory.
PERSONA_COLUMNS = ("contact_key", "account_key", "title", "department", "country", "role_start_date")


def score_contacts(
    cfg: ClientConfig,
    engine: Engine,
    run_id: str,
    run_date: dt.date,
    chunk: int = SCORE_CHUNK,
    *,
    incremental: bool = False,
) -> dict:
    """Persona score and tier for every contact, with its account tier and outreach priority.

    A persona score depends on its own contact only: contacts are read, scored, compared and
    written ``chunk`` at a time (in contact-key order); coverage adds up per-chunk counts.
    ``incremental`` (the monthly re-score): only contacts that can score differently since the
    last complete scoring are read (:mod:`marketmap.scoring.incremental`); coverage and the
    distribution are then counted over every stored contact score.
    """
    from marketmap.scoring.personas import (
        coverage_of_counts,
        coverage_summary,
        distribution_of_counts,
        persona_counts,
        priority,
    )
    from marketmap.scoring.personas import score_contacts as score

    cid = cfg.client_id
    version = persona_version(cfg)
    primary = cfg.icp.rubrics[0].product
    tiers = read_scores(engine, cid, rubric_version(cfg), primary, ["account_key", "tier"])
    tier_of = tiers.set_index("account_key")["tier"]
    c = t.contacts.c
    query = select(*[c[col] for col in PERSONA_COLUMNS]).where(c.client_id == cid).order_by(c.contact_key)
    state_version = f"{version}|{rubric_version(cfg)}"  # a contact score carries its account's tier
    now = dt.datetime.now(dt.UTC)
    narrow, full_because = (
        contacts_to_rescore(cfg, engine, state_version, rubric_version(cfg), primary, run_date)
        if incremental else (None, "")
    )  # fmt: skip
    if narrow is not None:
        query = narrow(query)
    n = written = 0
    by_tier: Counter = Counter()
    counts: list[pd.DataFrame] = []
    for contacts in iter_frames(engine, query, chunk):
        contacts = contacts.reset_index(drop=True)
        scored = score(contacts, cfg.personas, run_date)
        scored["account_tier"] = scored["account_key"].map(tier_of)
        scored["priority"] = priority(scored["account_tier"], scored["persona_tier"])
        cols = ["contact_key", "account_key", "persona_score", "persona_tier", "seniority", "department_norm",
                "title_match", "account_tier", "priority"]  # fmt: skip
        new = scored[cols].rename(columns={"department_norm": "department"})
        new.insert(1, "rubric_version", version)
        keys = contacts["contact_key"]
        s = t.contact_scores.c
        old = _stored_scores(
            engine, select(s.contact_key, s.persona_score, s.persona_tier, s.account_tier, s.priority)
            .where(s.client_id == cid, s.rubric_version == version), s.contact_key, keys, narrow is not None,
        )  # fmt: skip
        written += _write_changed(
            engine, t.contact_scores, new, old, ["contact_key"],
            ("persona_score", "persona_tier", "account_tier", "priority"),
            client_id=cid, run_id=run_id, scored_at=now,
        )  # fmt: skip
        n += len(scored)
        by_tier.update(scored["persona_tier"].astype(object).value_counts().to_dict())
        counts.append(persona_counts(scored))
    rescored = n
    if narrow is not None:  # the distribution and coverage of every contact, not only those re-scored
        by_tier, counts, n = _stored_persona_counts(engine, cid, version)
    save_state(engine, cid, "contacts", state_version, run_date, now, run_id)
    if not n:
        return {"persona_version": version, "contacts": 0, "written": 0}
    analyze_changed(engine, cid, {t.contact_scores: written})  # the reports and the push join on them
    per_account = pd.concat(counts).groupby(level=0).sum() if len(counts) > 1 else counts[0]
    cov = coverage_of_counts(per_account, tiers, cfg.personas.coverage_targets)
    summary = coverage_summary(cov, cfg.maintenance.persona_p1_coverage_min, cfg.maintenance.t1_min_contacts)
    out = {
        "persona_version": version,
        "contacts": n,
        "written": written,
        "distribution": distribution_of_counts(by_tier),
        "coverage": summary,
    }
    if narrow is not None:
        out["rescored"] = rescored
    elif incremental:
        out["full_rescore"] = full_because
    return out


def _stored_persona_counts(engine: Engine, client_id: str, version: str) -> tuple[Counter, list[pd.DataFrame], int]:
    """Persona tiers of every stored contact score of ``version``: (tier counts, per-account counts
    as :func:`~marketmap.scoring.personas.persona_counts` gives them, contacts). Grouped in SQL:
    one row per tier and one per account come back, not one per contact."""
    from marketmap.scoring.personas import PERSONA_TIERS

    s = t.contact_scores.c
    mine = (s.client_id == client_id) & (s.rubric_version == version)
    tiers = read_frame(engine, select(s.persona_tier, func.count().label("n")).where(mine).group_by(s.persona_tier))
    n = int(tiers["n"].sum())
    by_tier = Counter({tier: int(k) for tier, k in zip(tiers["persona_tier"], tiers["n"], strict=True) if pd.notna(tier)})
    per_tier = [func.sum(case((s.persona_tier == tier, 1), else_=0)).label(tier) for tier in PERSONA_TIERS]
    counts = read_frame(
        engine,
        select(s.account_key, *per_tier)
        .where(mine, s.account_key.is_not(None), s.persona_tier.in_(PERSONA_TIERS))
        .group_by(s.account_key),
    )
    counts = counts.astype({tier: "int64" for tier in PERSONA_TIERS}).set_index("account_key")
    return by_tier, [counts[list(PERSONA_TIERS)]], n

"""The scoring steps of a build run: score and value accounts, score contacts, QA gate.

Scores are stored per rubric version. The version written is the config's ``icp.version``
plus a short hash of the rubric itself, so editing a rubric without bumping its version
can never overwrite the scores of the old one. Re-scoring with an unchanged rubric and
unchanged data writes nothing.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json

import numpy as np
import pandas as pd
from sqlalchemy import Engine, select

from marketmap.config import ClientConfig
from marketmap.ingest.custom import expand
from marketmap.warehouse import schema as t
from marketmap.warehouse import upsert


class QAGateFailed(Exception):
    """A QA gate with severity "error" failed: nothing may be written to the CRM."""


def _hash(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:8]


def rubric_version(cfg: ClientConfig) -> str:
    """``<icp.version>#<hash of rubrics and valuation>``: what a stored score was computed with."""
    payload = {"icp": cfg.icp.model_dump(mode="json"), "valuation": cfg.valuation.model_dump(mode="json")}
    return f"{cfg.icp.version}#{_hash(payload)}"


def persona_version(cfg: ClientConfig) -> str:
    return f"personas#{_hash(cfg.personas.model_dump(mode='json'))}"


def read_accounts(engine: Engine, client_id: str) -> pd.DataFrame:
    """The client's accounts, custom fields as columns of their own (``ingest.custom.expand``)."""
    with engine.connect() as conn:
        return expand(pd.read_sql(select(t.accounts).where(t.accounts.c.client_id == client_id), conn))


def read_opportunities(engine: Engine, client_id: str) -> pd.DataFrame:
    """The client's opportunities, custom fields as columns of their own (``ingest.custom.expand``)."""
    with engine.connect() as conn:
        return expand(pd.read_sql(select(t.opportunities).where(t.opportunities.c.client_id == client_id), conn))


def read_reps(engine: Engine, client_id: str) -> pd.DataFrame:
    with engine.connect() as conn:
        return pd.read_sql(select(t.reps).where(t.reps.c.client_id == client_id), conn)


def read_contacts(engine: Engine, client_id: str) -> pd.DataFrame:
    """The client's contacts, custom fields as columns of their own (``ingest.custom.expand``)."""
    with engine.connect() as conn:
        return expand(pd.read_sql(select(t.contacts).where(t.contacts.c.client_id == client_id), conn))


def read_scores(engine: Engine, client_id: str, version: str, product: str | None = None) -> pd.DataFrame:
    q = select(t.account_scores).where(
        t.account_scores.c.client_id == client_id, t.account_scores.c.rubric_version == version
    )
    if product:
        q = q.where(t.account_scores.c.product == product)
    with engine.connect() as conn:
        return pd.read_sql(q, conn)


def _none(v):
    if v is None:
        return None
    if isinstance(v, float | np.floating) and np.isnan(v):
        return None
    if isinstance(v, np.generic):
        return v.item()
    return v


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
    rows = [
        {**{c: _none(v) for c, v in zip(cols, rec, strict=True)}, **extra}
        for rec in new.itertuples(index=False, name=None)
    ]
    with engine.begin() as conn:
        upsert(conn, table, rows, chunk=2000)
    return len(rows)


def score_accounts(cfg: ClientConfig, engine: Engine, run_id: str, run_date: dt.date) -> dict:
    """Fit score and tier of every account for every product rubric; write what changed."""
    from marketmap.scoring.fit import score_icp

    cid = cfg.client_id
    version = rubric_version(cfg)
    accounts = read_accounts(engine, cid)
    if accounts.empty:
        return {"rubric_version": version, "accounts": 0, "written": 0, "tiers": {}}
    scored = score_icp(accounts, cfg.icp, run_date)
    scored["account_key"] = np.tile(accounts["account_key"].to_numpy(), len(cfg.icp.rubrics))
    scored["rubric_version"] = version
    cols = [
        "account_key", "product", "rubric_version", "score", "tier", "excluded", "negatives", "points", "unknown",
        "max_attainable", "max_attainable_tier", "explanation",
    ]  # fmt: skip
    cols += [c for c in ("intent", "propensity", "abm_grade") if c in scored]
    new = scored[cols].reset_index(drop=True)
    old = read_scores(engine, cid, version)
    now = dt.datetime.now(dt.UTC)
    written = _write_changed(
        engine, t.account_scores, new, old, ["account_key", "product"],
        ("score", "tier", "explanation", "max_attainable"), client_id=cid, run_id=run_id, scored_at=now,
    )  # fmt: skip
    tiers = new.groupby(["product", "tier"]).size()
    return {
        "rubric_version": version,
        "accounts": len(accounts),
        "written": written,
        "tiers": {f"{p}:{tier}": int(n) for (p, tier), n in tiers.items()},
    }


def value_accounts(cfg: ClientConfig, engine: Engine, run_id: str) -> dict:
    """Potential ARR (and white space for customers) of every in-scope account; write what changed."""
    from marketmap.scoring.valuation import value_accounts as value

    cid = cfg.client_id
    version = rubric_version(cfg)
    accounts = read_accounts(engine, cid)
    scores = read_scores(engine, cid, version)
    if accounts.empty or scores.empty:
        return {"valued": 0, "written": 0, "valuation_total": 0.0}
    opps = read_opportunities(engine, cid)
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
        client_id=cid, run_id=run_id,
    )  # fmt: skip
    in_scope = new["valuation"].notna()
    return {
        "valued": int(in_scope.sum()),
        "written": written,
        "valuation_total": float(new.loc[in_scope, "valuation"].sum()),
    }


def score_contacts(cfg: ClientConfig, engine: Engine, run_id: str, run_date: dt.date) -> dict:
    """Persona score and tier for every contact, with its account tier and outreach priority."""
    from marketmap.scoring.personas import coverage, coverage_summary, persona_distribution, priority
    from marketmap.scoring.personas import score_contacts as score

    cid = cfg.client_id
    version = persona_version(cfg)
    contacts = read_contacts(engine, cid)
    if contacts.empty:
        return {"persona_version": version, "contacts": 0, "written": 0}
    scored = score(contacts, cfg.personas, run_date)
    primary = cfg.icp.rubrics[0].product
    tiers = read_scores(engine, cid, rubric_version(cfg), primary)[["account_key", "tier"]]
    scored = scored.merge(tiers.rename(columns={"tier": "account_tier"}), on="account_key", how="left")
    scored["priority"] = priority(scored["account_tier"], scored["persona_tier"])

    cols = ["contact_key", "account_key", "persona_score", "persona_tier", "seniority", "department_norm",
            "title_match", "account_tier", "priority"]  # fmt: skip
    new = scored[cols].rename(columns={"department_norm": "department"})
    new.insert(1, "rubric_version", version)
    with engine.connect() as conn:
        old = pd.read_sql(
            select(t.contact_scores).where(
                t.contact_scores.c.client_id == cid, t.contact_scores.c.rubric_version == version
            ),
            conn,
        )
    written = _write_changed(
        engine, t.contact_scores, new, old, ["contact_key"], ("persona_score", "persona_tier", "account_tier", "priority"),
        client_id=cid, run_id=run_id, scored_at=dt.datetime.now(dt.UTC),
    )  # fmt: skip

    cov = coverage(scored, tiers, cfg.personas.coverage_targets)
    summary = coverage_summary(cov, cfg.maintenance.persona_p1_coverage_min, cfg.maintenance.t1_min_contacts)
    return {
        "persona_version": version,
        "contacts": len(scored),
        "written": written,
        "distribution": persona_distribution(scored),
        "coverage": summary,
    }


def qa_gate(cfg: ClientConfig, engine: Engine, override: bool = False) -> dict:
    """Run the QA gates on the current scores; raise QAGateFailed on an error unless overridden."""
    from marketmap.analysis.qa import failed, format_gates, gates_summary, qa_gates

    primary = cfg.icp.rubrics[0].product
    scores = read_scores(engine, cfg.client_id, rubric_version(cfg), primary)
    accounts = read_accounts(engine, cfg.client_id)[["account_key", "owner_id", "is_partner"]]
    frame = accounts.merge(scores[["account_key", "tier", "valuation"]], on="account_key", how="left")
    gates = qa_gates(frame, reps=cfg.territories.reps or None, **cfg.qa.bounds())
    errors = failed(gates, "error")
    result = gates_summary(gates)
    result["report"] = format_gates(gates)
    result["overridden"] = bool(errors) and override
    if errors and not override:
        raise QAGateFailed(
            f"QA gate failed for {cfg.client_id} ({', '.join(g.name for g in errors)}) — nothing will be written to the CRM. "
            f"Fix the data or re-run with the param override_qa=true.\n{result['report']}"
        )
    return result

""" "Only run if": which accounts and fields are worth credits, in which order.

Rules (SPEC §7, issue #5):

* Only fields the rubric or the push mapping needs (rubric vectors, negative indicators,
  the valuation inputs when the valuation is pushed, push fields that are account fields),
  only when the account lacks them, and only fields some provider can fill.
* Only accounts whose highest attainable score can still reach ``min_attainable_tier``
  (default T2): unknown vectors are given their best points; negative indicators and tier
  caps still apply (``scoring.fit``).
* Never re-enrich a field filled within ``refresh_days``: a fresh value a CRM reload
  blanked is restored from ``account_field_sources`` for free instead.
* T1 candidates first (their best attainable tier is T1), then T2 candidates, each by
  highest attainable score, so a budget that cannot cover everyone covers T1 first.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import pandas as pd
from sqlalchemy import Engine, select

from marketmap.config import AnyOfVector, ClientConfig, Rubric
from marketmap.enrichment import fields as F
from marketmap.warehouse import schema as t

TIER_RANK = {"T1": 0, "T2": 1, "T3": 2, "OUT": 3}
ID_COLUMNS = ["account_key", "name", "domain", "website"]


def _aware(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def vector_fields(rubric: Rubric) -> dict[str, str]:
    """Vector name -> account field of one rubric."""
    return {v.name: v.field for v in rubric.vectors}


def separators(cfg: ClientConfig) -> dict[str, str]:
    """The list separator of each any-of field (tech stack), as the rubric splits it."""
    out: dict[str, str] = {}
    for r in cfg.icp.rubrics:
        for v in r.vectors:
            if isinstance(v, AnyOfVector):
                out.setdefault(v.field, v.separator)
    return out


def fillable_fields(cfg: ClientConfig) -> set[str]:
    return {f for p in cfg.enrichment.providers for f in p.fields}


def scoring_fields(cfg: ClientConfig) -> set[str]:
    """Every account field the rubrics, their negative indicators and the valuation read."""
    out: set[str] = set()
    for r in cfg.icp.rubrics:
        out |= {v.field for v in r.vectors} | {n.field for n in r.negative_indicators}
    if cfg.icp.intent:
        out.add(cfg.icp.intent.field)
    out |= valuation_fields(cfg)
    return out


def valuation_fields(cfg: ClientConfig) -> set[str]:
    v = cfg.valuation
    out = set()
    if "revenue" in v.methods:
        out.add("annual_revenue")
    if {"headcount", "extrapolation", "like_accounts"} & set(v.methods):
        out.add("employees")
    if "product" in v.methods and v.product_field:
        out.add(v.product_field)
    return out


def push_fields(cfg: ClientConfig) -> set[str]:
    """Account fields the push mapping sends as they are (plus the valuation's inputs)."""
    out = set()
    for p in cfg.push:
        if p.object != "account":
            continue
        for f in p.fields:
            if f.source in F.FILLABLE:
                out.add(f.source)
            if f.source in ("valuation", "white_space"):
                out |= valuation_fields(cfg)
    return out


@dataclass
class EnrichmentPlan:
    """What a run may spend on: accounts, their missing fields, and the order.

    ``accounts`` holds, per candidate (index ``account_key``), the identity columns and
    every scoring field, so the runner can re-score as values arrive.
    """

    client_id: str
    run_date: dt.date
    min_tier: str
    accounts: pd.DataFrame
    needs: dict[str, tuple[str, ...]]
    groups: list[list[str]]
    restores: list[dict] = field(default_factory=list)
    skipped: dict[str, int] = field(default_factory=dict)
    examples: dict[str, list[str]] = field(default_factory=dict)
    #: re-score after each provider and stop paying for what can no longer change a tier
    gate: bool = True
    exact_scores: bool = False

    def summary(self) -> dict:
        per_field: dict[str, int] = {}
        for fs in self.needs.values():
            for f in fs:
                per_field[f] = per_field.get(f, 0) + 1
        return {
            "client_id": self.client_id,
            "run_date": self.run_date.isoformat(),
            "min_tier": self.min_tier,
            "accounts_to_enrich": len(self.needs),
            "by_group": {f"T{i + 1}_candidates": len(g) for i, g in enumerate(self.groups)},
            "fields_needed": dict(sorted(per_field.items())),
            "restored_from_sources": len(self.restores),
            "skipped": dict(self.skipped),
            "skipped_examples": {k: v[:5] for k, v in self.examples.items()},
        }


def load_accounts(engine: Engine, client_id: str, columns: list[str]) -> pd.DataFrame:
    present = [c for c in dict.fromkeys(ID_COLUMNS + columns) if c in t.accounts.c]
    q = select(*[t.accounts.c[c] for c in present]).where(t.accounts.c.client_id == client_id)
    with engine.connect() as conn:
        rows = conn.execute(q).all()
    return pd.DataFrame(rows, columns=present)


def load_sources(engine: Engine, client_id: str) -> pd.DataFrame:
    c = t.account_field_sources.c
    q = select(c.account_key, c.field, c.provider, c.value, c.filled_at).where(c.client_id == client_id)
    with engine.connect() as conn:
        rows = conn.execute(q).all()
    return pd.DataFrame(rows, columns=["account_key", "field", "provider", "value", "filled_at"])


def _blank_mask(series: pd.Series) -> pd.Series:
    s = series.astype(object)
    return s.isna() | s.map(lambda v: isinstance(v, str) and not v.strip())


def _score(frame: pd.DataFrame, cfg: ClientConfig, run_date: dt.date) -> pd.DataFrame:
    from marketmap.scoring.fit import score_icp

    return score_icp(frame, cfg.icp, run_date, explain=False)


def guard_fields(cfg: ClientConfig) -> set[str]:
    """Fields needed whenever an account can still reach the minimum tier, whatever its
    score: negative indicators (a value can exclude or cap it), the valuation's inputs and
    account fields the push mapping sends."""
    neg = {n.field for r in cfg.icp.rubrics for n in r.negative_indicators}
    return neg | valuation_fields(cfg) | push_fields(cfg)


def attainable(
    scored: pd.DataFrame, cfg: ClientConfig, min_tier: str, exact_scores: bool = False
) -> tuple[pd.Series, pd.Series, dict[str, set[str]]]:
    """Per account: best attainable tier rank, best attainable score, and the rubric fields
    whose unknown value could still change its tier.

    ``scored`` is the scoring engine's long frame (``account_key``, ``max_attainable_tier``,
    ``unknown``; optional ``product``, ``tier``, ``max_attainable``). Rows of products whose
    best tier cannot reach ``min_tier`` want nothing. Neither do rows whose tier already
    equals their best attainable tier (scores only rise as unknowns are filled, so the tier
    is settled; negative indicators are covered by :func:`guard_fields`), unless
    ``exact_scores`` asks for every unknown rubric field of those accounts (a fit score
    without unknowns, at the price of credits that change no tier).
    """
    names: dict[str, dict[str, str]] = {r.product: vector_fields(r) for r in cfg.icp.rubrics}
    all_names = {k: v for m in names.values() for k, v in m.items()}
    s = scored.copy()
    s["_rank"] = s["max_attainable_tier"].astype(object).map(TIER_RANK).fillna(3).astype(int)
    limit = TIER_RANK[min_tier]
    if "max_attainable" not in s:
        s["max_attainable"] = 0.0
    rank = s.groupby("account_key")["_rank"].min()
    best = s.groupby("account_key")["max_attainable"].max()
    reach = s[s["_rank"] <= limit]
    if not exact_scores and "tier" in reach:
        reach = reach[reach["tier"].astype(object) != reach["max_attainable_tier"].astype(object)]
    products = reach["product"].astype(object) if "product" in reach else pd.Series(None, index=reach.index)
    wanted: dict[str, set[str]] = {}
    for key, product, unknown in zip(
        reach["account_key"], products, reach["unknown"].astype(object), strict=True
    ):
        mapping = names.get(product, all_names)
        fs = {mapping[n] for n in str(unknown or "").split(",") if n and n in mapping}
        wanted.setdefault(key, set()).update(fs)
    return rank, best, wanted


def plan_account_enrichment(
    cfg: ClientConfig,
    engine: Engine,
    run_date: dt.date,
    max_attainable: pd.DataFrame | None = None,
    *,
    now: dt.datetime | None = None,
    accounts: pd.DataFrame | None = None,
    exact_scores: bool = False,
) -> EnrichmentPlan:
    """Decide what to enrich, and in which order, without spending anything.

    Args:
        cfg: the client config (providers, budget, refresh age, minimum tier, rubric).
        engine: the warehouse.
        run_date: the scoring date (recency vectors).
        max_attainable: the scoring engine's per-account frame (``account_key``,
            ``max_attainable_tier``, ``unknown``; optional ``product``, ``max_attainable``).
            None: the accounts are scored here with ``scoring.fit.score_icp`` (after fresh
            enriched values blanked by a CRM reload are put back).
        now: the clock (tests); the refresh age is measured from it.
        accounts: the accounts to consider (default: all of the client's accounts).
        exact_scores: also fill unknown rubric fields of accounts whose tier is already
            settled (their fit score becomes exact; no tier changes). Default: no credits
            on fields that cannot change a tier.
    """
    now = now or dt.datetime.now(dt.UTC)
    enr = cfg.enrichment
    fillable = fillable_fields(cfg)
    needed_any = (scoring_fields(cfg) | push_fields(cfg)) & fillable
    columns = sorted(scoring_fields(cfg) | push_fields(cfg) | fillable)
    frame = load_accounts(engine, cfg.client_id, columns) if accounts is None else accounts.copy()
    for c in columns:
        if c not in frame:
            frame[c] = None
    frame = frame.drop_duplicates("account_key").set_index("account_key", drop=False)

    # fresh enriched values: protected from re-enrichment, and restored where a reload blanked them
    sources = load_sources(engine, cfg.client_id)
    cutoff = now - dt.timedelta(days=enr.refresh_days)
    restores: list[dict] = []
    fresh: set[tuple[str, str]] = set()
    if len(sources):
        sources = sources[sources["account_key"].isin(frame.index)]
        sources["filled_at"] = sources["filled_at"].map(_aware)
        sources = sources[sources["filled_at"] >= cutoff]
        for key, f, provider, value in zip(
            sources["account_key"], sources["field"], sources["provider"], sources["value"], strict=True
        ):
            fresh.add((key, f))
            if f in frame.columns and F.is_blank(frame.at[key, f]) and value is not None:
                v = F.from_json(f, value)
                frame.at[key, f] = v
                restores.append({"account_key": key, "field": f, "value": v, "provider": provider})

    scored = _score(frame.reset_index(drop=True), cfg, run_date) if max_attainable is None else max_attainable
    rank, best, wanted = attainable(scored, cfg, enr.min_attainable_tier, exact_scores)
    limit = TIER_RANK[enr.min_attainable_tier]

    extra = guard_fields(cfg) & needed_any
    # accounts with unknown rubric fields that can no longer change their tier (reported as such)
    settled = set()
    if "tier" in scored:
        has_unknown = scored["unknown"].astype(object).fillna("").astype(str).str.len() > 0
        at_best = scored["tier"].astype(object) == scored["max_attainable_tier"].astype(object)
        settled = set(scored.loc[has_unknown & at_best, "account_key"])
    blank = {f: _blank_mask(frame[f]) for f in needed_any}

    skipped: dict[str, int] = {}
    examples: dict[str, list[str]] = {}

    def skip(reason: str, key: str) -> None:
        skipped[reason] = skipped.get(reason, 0) + 1
        examples.setdefault(reason, [])
        if len(examples[reason]) < 20:
            examples[reason].append(key)

    needs: dict[str, tuple[str, ...]] = {}
    for key in frame.index:
        r = int(rank.get(key, 3))
        if r > limit:
            skip(f"cannot reach {enr.min_attainable_tier}", key)
            continue
        fs = (set(wanted.get(key, set())) | extra) & needed_any
        fs = {f for f in fs if bool(blank[f].at[key]) and (key, f) not in fresh}
        if not fs:
            skip(
                "tier settled" if key in settled else "nothing missing that a provider can fill",
                key,
            )
            continue
        if F.is_blank(frame.at[key, "domain"]) and F.is_blank(frame.at[key, "name"]):
            skip("no domain or name to look up", key)
            continue
        needs[key] = tuple(sorted(fs))

    keys = list(needs)
    order = pd.DataFrame(
        {
            "key": keys,
            "rank": [int(rank.get(k, 3)) for k in keys],
            "best": [float(best.get(k, 0.0)) for k in keys],
        }
    ).sort_values(["rank", "best", "key"], ascending=[True, False, True], kind="stable")
    groups = [order.loc[order["rank"] == g, "key"].tolist() for g in range(limit + 1)]
    return EnrichmentPlan(
        client_id=cfg.client_id,
        run_date=run_date,
        min_tier=enr.min_attainable_tier,
        accounts=frame.loc[keys],
        needs=needs,
        groups=groups,
        restores=restores,
        skipped=skipped,
        examples=examples,
        exact_scores=exact_scores,
    )

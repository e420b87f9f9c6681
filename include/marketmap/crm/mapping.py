"""From client config to CRM field names: identity fields, push fields and their sources.

Source names a PushField may use:

- accounts: ``tier``, ``fit_score`` (= score), ``valuation``, ``white_space`` of the
  ``core`` rubric (or the first one); ``<product>.<name>`` for another product; a rubric's
  ``tier_field`` (e.g. ``product_a_tier``) for that product's tier; or any column of the
  ``accounts`` table (``state``, ``industry`` …).
- contacts: ``persona_tier``, ``persona_score`` (contact_scores), ``years_experience``
  (from the role start date), or any column of the ``contacts`` table (``linkedin_url`` …).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, select

from marketmap.config import ClientConfig, CrmConfig, PushConfig, PushField
from marketmap.crm.base import CANONICAL
from marketmap.ingest.schema import column_map
from marketmap.warehouse import schema as t

SCORE_SOURCES = {
    "tier": "tier",
    "fit_score": "score",
    "score": "score",
    "valuation": "valuation",
    "white_space": "white_space",
}
CONTACT_SCORE_SOURCES = {"persona_tier": "persona_tier", "persona_score": "persona_score"}
NUMBER_SOURCES = {
    "fit_score", "score", "valuation", "white_space", "persona_score", "years_experience",
    "employees", "annual_revenue", "current_arr", "intent_score",
}  # fmt: skip
BOOLEAN_SOURCES = {"is_partner", "prevent_override", "opted_in"}
HUBSPOT_TIER_PROPERTY = "hs_ideal_customer_profile"
HUBSPOT_TIER_VALUES = {"T1": "tier_1", "T2": "tier_2", "T3": "tier_3"}
HUBSPOT_OBJECTS = {"account": "companies", "contact": "contacts", "opportunity": "deals"}
# HubSpot's CRM v3 property for a contact's LinkedIn profile URL
HUBSPOT_CONTACT_LINKEDIN = "hs_linkedin_url"


def crm_format(cfg: ClientConfig) -> str:
    """Field-name dialect of the client's CRM: ``salesforce`` or ``hubspot``."""
    return cfg.crm.export.format if cfg.crm.kind == "csv" else cfg.crm.kind


def crm_objects(cfg: ClientConfig) -> dict[str, str]:
    """Market Map object -> CRM object name (HubSpot: companies/contacts/deals by default)."""
    configured = dict(cfg.crm.objects)
    if crm_format(cfg) == "hubspot" and configured == CrmConfig.model_fields["objects"].default:
        return dict(HUBSPOT_OBJECTS)
    return {**HUBSPOT_OBJECTS, **configured} if crm_format(cfg) == "hubspot" else configured


def identity_fields(cfg: ClientConfig, obj: str) -> dict[str, str]:
    """canonical field -> CRM field for ``obj``: the export preset with the client's overrides."""
    exp = cfg.crm.export
    overrides = {
        "account": exp.account_columns,
        "contact": exp.contact_columns,
        "opportunity": exp.opportunity_columns,
    }[obj]
    return column_map(crm_format(cfg), CANONICAL[obj], overrides)


def effective_fields(cfg: ClientConfig, push: PushConfig) -> list[PushField]:
    """The push fields, with HubSpot's default tier target filled in.

    A HubSpot account push without a ``tier`` mapping writes the built-in company property
    ``hs_ideal_customer_profile``; a mapping to it without a picklist gets tier_1/2/3.
    """
    fields = list(push.fields)
    if crm_format(cfg) != "hubspot" or push.object != "account":
        return fields
    out = []
    for f in fields:
        if f.crm_field == HUBSPOT_TIER_PROPERTY and f.picklist is None:
            f = f.model_copy(update={"picklist": dict(HUBSPOT_TIER_VALUES)})
        out.append(f)
    if not any(f.source == "tier" for f in out):
        out.append(
            PushField(source="tier", crm_field=HUBSPOT_TIER_PROPERTY, picklist=dict(HUBSPOT_TIER_VALUES))
        )
    return out


@dataclass(frozen=True)
class Source:
    """Where one source value comes from: a score table (with product) or a warehouse column."""

    kind: str  # "score", "contact_score", "column", "derived"
    column: str
    product: str | None = None


def default_product(cfg: ClientConfig) -> str:
    products = [r.product for r in cfg.icp.rubrics]
    return "core" if "core" in products else products[0]


def resolve_source(cfg: ClientConfig, obj: str, source: str) -> Source | None:
    """The origin of ``source`` for ``obj``, or None if Market Map has no such value."""
    table = t.accounts if obj == "account" else t.contacts
    if obj == "account":
        products = {r.product for r in cfg.icp.rubrics}
        tier_fields = {r.tier_field: r.product for r in cfg.icp.rubrics if r.tier_field != "tier"}
        if source in tier_fields:
            return Source("score", "tier", tier_fields[source])
        if "." in source:
            product, name = source.split(".", 1)
            if product in products and name in SCORE_SOURCES:
                return Source("score", SCORE_SOURCES[name], product)
            return None
        if source in SCORE_SOURCES:
            return Source("score", SCORE_SOURCES[source], default_product(cfg))
    else:
        if source in CONTACT_SCORE_SOURCES:
            return Source("contact_score", CONTACT_SCORE_SOURCES[source])
        if source == "years_experience":
            return Source("derived", "role_start_date")
    if source in table.c and source != "client_id":
        return Source("column", source)
    return None


def source_type(source: str) -> str:
    """Market Map's type of a source value: ``picklist``, ``number``, ``boolean`` or ``string``."""
    name = source.split(".", 1)[-1]
    if name in NUMBER_SOURCES:
        return "number"
    if name in BOOLEAN_SOURCES:
        return "boolean"
    if name == "tier" or name.endswith("_tier"):
        return "picklist"
    return "string"


def _years_since(value: Any, today: dt.date) -> float | None:
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        value = value.date()
    return round((today - value).days / 365.25, 1)


def load_records(cfg: ClientConfig, engine: Engine, obj: str, fields: list[PushField]) -> list[dict]:
    """Market Map's records of ``obj`` with each push field's source value under ``src:<source>``.

    Score rows come from the current rubric version when it has one, else the latest scored.
    """
    cid = cfg.client_id
    sources = {f.source: resolve_source(cfg, obj, f.source) for f in fields}
    today = dt.datetime.now(dt.UTC).date()
    with engine.connect() as conn:
        if obj == "account":
            a = t.accounts.c
            rows = conn.execute(
                select(
                    a.account_key, a.crm_id, a.name, a.domain, a.website, a.prevent_override,
                    *[t.accounts.c[s.column] for s in sources.values() if s and s.kind == "column"],
                ).where(a.client_id == cid).order_by(a.account_key)
            ).mappings().all()  # fmt: skip
            records = [{"key": r["account_key"], **dict(r)} for r in rows]
            products = {s.product for s in sources.values() if s and s.kind == "score"}
            scores = _latest_scores(conn, cid, cfg.icp.version, products) if products else {}
            for rec in records:
                for src, s in sources.items():
                    if s is None:
                        rec[f"src:{src}"] = None
                    elif s.kind == "score":
                        rec[f"src:{src}"] = (scores.get((rec["key"], s.product)) or {}).get(s.column)
                    else:
                        rec[f"src:{src}"] = rec.get(s.column)
        else:
            c = t.contacts.c
            extra = {s.column for s in sources.values() if s and s.kind in ("column", "derived")}
            base = ["contact_key", "crm_id", "account_key", "account_crm_id", "first_name", "last_name",
                    "title", "email", "linkedin_url"]  # fmt: skip
            cols = base + sorted(extra - set(base))
            rows = (
                conn.execute(select(*[c[x] for x in cols]).where(c.client_id == cid).order_by(c.contact_key))
                .mappings()
                .all()
            )
            records = [{"key": r["contact_key"], **dict(r)} for r in rows]
            need_scores = any(s and s.kind == "contact_score" for s in sources.values())
            scores = _latest_contact_scores(conn, cid, cfg.icp.version) if need_scores else {}
            for rec in records:
                for src, s in sources.items():
                    if s is None:
                        rec[f"src:{src}"] = None
                    elif s.kind == "contact_score":
                        rec[f"src:{src}"] = (scores.get(rec["key"]) or {}).get(s.column)
                    elif s.kind == "derived":
                        rec[f"src:{src}"] = _years_since(rec.get(s.column), today)
                    else:
                        rec[f"src:{src}"] = rec.get(s.column)
    return records


def _latest_scores(conn, cid: str, version: str, products: set[str]) -> dict[tuple[str, str], dict]:
    s = t.account_scores.c
    rows = conn.execute(
        select(s.account_key, s.product, s.rubric_version, s.score, s.tier, s.valuation, s.white_space,
               s.scored_at).where(s.client_id == cid, s.product.in_(sorted(products)))
    ).mappings()  # fmt: skip
    best: dict[tuple[str, str], tuple[tuple, dict]] = {}
    for r in rows:
        rank = (r["rubric_version"] == version, r["scored_at"] or dt.datetime.min, r["rubric_version"])
        k = (r["account_key"], r["product"])
        if k not in best or _later(rank, best[k][0]):
            best[k] = (rank, dict(r))
    return {k: v[1] for k, v in best.items()}


def _latest_contact_scores(conn, cid: str, version: str) -> dict[str, dict]:
    s = t.contact_scores.c
    rows = conn.execute(
        select(s.contact_key, s.rubric_version, s.persona_score, s.persona_tier, s.scored_at).where(
            s.client_id == cid
        )
    ).mappings()
    best: dict[str, tuple[tuple, dict]] = {}
    for r in rows:
        rank = (r["rubric_version"] == version, r["scored_at"] or dt.datetime.min, r["rubric_version"])
        if r["contact_key"] not in best or _later(rank, best[r["contact_key"]][0]):
            best[r["contact_key"]] = (rank, dict(r))
    return {k: v[1] for k, v in best.items()}


def _later(a: tuple, b: tuple) -> bool:
    """Compare ranks whose datetimes may mix naive (SQLite) and aware values."""

    def norm(rank: tuple) -> tuple:
        ts = rank[1]
        if isinstance(ts, dt.datetime) and ts.tzinfo is not None:
            ts = ts.astimezone(dt.UTC).replace(tzinfo=None)
        return (rank[0], ts, rank[2])

    return norm(a) > norm(b)

"""From client config to CRM field names: identity fields, push fields and their sources.

Source names a PushField may use:

- accounts: ``tier``, ``fit_score`` (= score), ``valuation``, ``white_space``, ``propensity``,
  ``abm_grade``, ``intent``, ``max_attainable``, ``max_attainable_tier``, ``excluded`` of the
  ``core`` rubric (or the first one); ``<product>.<name>`` for another product; a rubric's
  ``tier_field`` (e.g. ``product_a_tier``) for that product's tier; or any column of the
  ``accounts`` table (``state``, ``industry`` …).
- contacts: ``persona_tier``, ``persona_score``, ``seniority``, ``department``, ``title_match``,
  ``account_tier``, ``priority`` (contact_scores), ``years_experience``
  (from the role start date), or any column of the ``contacts`` table (``linkedin_url`` …).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, select

from marketmap.config import ClientConfig, CrmConfig, PushConfig, PushField
from marketmap.crm.base import CANONICAL, IN_LIST_SIZE, chunks
from marketmap.ingest.schema import column_map
from marketmap.warehouse import among
from marketmap.warehouse import schema as t

SCORE_SOURCES = {
    "tier": "tier",
    "fit_score": "score",
    "score": "score",
    "valuation": "valuation",
    "white_space": "white_space",
    "propensity": "propensity",
    "abm_grade": "abm_grade",
    "intent": "intent",
    "max_attainable": "max_attainable",
    "max_attainable_tier": "max_attainable_tier",
    "excluded": "excluded",
}
SCORE_COLUMNS = tuple(dict.fromkeys(SCORE_SOURCES.values()))
CONTACT_SCORE_SOURCES = {
    "persona_tier": "persona_tier", "persona_score": "persona_score", "seniority": "seniority",
    "department": "department", "title_match": "title_match", "account_tier": "account_tier",
    "priority": "priority",
}  # fmt: skip
CONTACT_SCORE_COLUMNS = tuple(CONTACT_SCORE_SOURCES.values())
NUMBER_SOURCES = {
    "fit_score", "score", "valuation", "white_space", "persona_score", "years_experience",
    "employees", "annual_revenue", "current_arr", "intent_score", "propensity", "intent", "max_attainable",
}  # fmt: skip
BOOLEAN_SOURCES = {"is_partner", "prevent_override", "opted_in", "excluded"}
OUT_TIER = "OUT"  # scoring: out of scope (or excluded by a negative indicator)
EXCLUDED_PERSONA = "EXCLUDED"  # persona scoring: excluded contact (intern, student …)
SCOPE = "scope:out"  # record key flag: the record is out of scope / excluded
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

    kind: str  # "score", "contact_score", "column", "derived", "custom" (a key of the custom column)
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
    if source in table.c and source not in ("client_id", "custom"):
        return Source("column", source)
    if source in {f.name for f in cfg.custom_fields.of(obj)}:
        return Source("custom", source)
    return None


CUSTOM_SOURCE_TYPES = {"number": "number", "boolean": "boolean"}  # text, date, list: string


def source_type(source: str, cfg: ClientConfig | None = None, obj: str | None = None) -> str:
    """Market Map's type of a source value: ``picklist``, ``number``, ``boolean`` or ``string``.

    With ``cfg`` and ``obj``, a custom field has its configured type."""
    if cfg is not None and obj is not None:
        custom = {f.name: f.type for f in cfg.custom_fields.of(obj)}
        if source in custom:
            return CUSTOM_SOURCE_TYPES.get(custom[source], "string")
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


# Records the push planner handles at a time (crm.plan): its memory follows this, not the client.
RECORD_CHUNK = 20_000


def record_chunks(
    cfg: ClientConfig,
    engine: Engine,
    obj: str,
    fields: list[PushField],
    size: int = RECORD_CHUNK,
    keys: set[str] | None = None,
) -> Iterator[list[dict]]:
    """Market Map's records of ``obj`` in key order, ``size`` at a time, with each push field's
    source value under ``src:<source>``.

    Each chunk is its own short query (keyset paging on the record key): no cursor stays open
    while the planner writes look-ups to the snapshot, and memory follows the chunk. With
    ``keys``, only those records (chunks of at most ``IN_LIST_SIZE``, still in key order).

    Score rows come from exactly the rubric version the config names (``version#hash`` as the
    scoring step stores it, :func:`marketmap.versions.rubric_version`; contacts:
    ``persona_version``) — never "whatever was scored last": a dry run with a candidate rubric
    must not leak its tiers into the next real push. A record without a score row of that
    version has no score values (nothing is pushed for them, nothing is cleared).

    ``rec[SCOPE]`` is True for an out-of-scope account (default product's tier ``OUT``) or an
    excluded contact (persona tier ``EXCLUDED``): :class:`PushConfig.out_of_scope` decides
    what the push does with it.
    """
    from marketmap.versions import persona_version, rubric_version

    cid = cfg.client_id
    sources = {f.source: resolve_source(cfg, obj, f.source) for f in fields}
    today = dt.datetime.now(dt.UTC).date()
    if obj == "account":
        a = t.accounts.c
        key_col = a.account_key
        cols = ["account_key", "crm_id", "name", "domain", "website", "prevent_override", "custom",
                *[s.column for s in sources.values() if s and s.kind == "column"]]  # fmt: skip
        main = default_product(cfg)
        products = sorted({s.product for s in sources.values() if s and s.kind == "score"} | {main})
        # the score columns the push fields name (and the tier, for the scope), joined in SQL
        used = list(dict.fromkeys(["tier", *[s.column for s in sources.values() if s and s.kind == "score"]]))
        query = select(*[a[x] for x in dict.fromkeys(cols)]).where(a.client_id == cid)
        label: dict[tuple[str, str], str] = {}
        for i, product in enumerate(products):
            sc = t.account_scores.alias(f"s{i}")
            query = query.outerjoin(
                sc,
                (sc.c.client_id == a.client_id) & (sc.c.account_key == a.account_key)
                & (sc.c.product == product) & (sc.c.rubric_version == rubric_version(cfg)),
            )  # fmt: skip
            for col in used:
                label[(product, col)] = f"_s{i}_{col}"
                query = query.add_columns(sc.c[col].label(label[(product, col)]))
        # a record holds what planning reads (10 entries fit the smallest dict table of 3.11;
        # 11-21 take 70% more): not the key twice, not the custom fields' JSON
        kept = [x for x in dict.fromkeys(cols) if x not in ("account_key", "custom")]

        def record(r) -> dict:
            rec = {"key": r["account_key"], **{x: r[x] for x in kept}}
            rec[SCOPE] = r[label[(main, "tier")]] == OUT_TIER
            for src, s in sources.items():
                if s is None:
                    rec[f"src:{src}"] = None
                elif s.kind == "score":
                    rec[f"src:{src}"] = r[label[(s.product, s.column)]]
                elif s.kind == "custom":
                    rec[f"src:{src}"] = custom_value(r["custom"], s.column)
                else:
                    rec[f"src:{src}"] = r[s.column]
            return rec

    else:
        c = t.contacts.c
        key_col = c.contact_key
        extra = {s.column for s in sources.values() if s and s.kind in ("column", "derived")}
        base = ["contact_key", "crm_id", "account_key", "account_crm_id", "first_name", "last_name",
                "title", "email", "linkedin_url", "custom"]  # fmt: skip
        cols = base + sorted(extra - set(base))
        used = list(
            dict.fromkeys(
                ["persona_tier", *[s.column for s in sources.values() if s and s.kind == "contact_score"]]
            )
        )
        sc = t.contact_scores.alias("s")
        query = (
            select(*[c[x] for x in cols], *[sc.c[col].label(f"_s_{col}") for col in used])
            .outerjoin(
                sc,
                (sc.c.client_id == c.client_id) & (sc.c.contact_key == c.contact_key)
                & (sc.c.rubric_version == persona_version(cfg)),
            )
            .where(c.client_id == cid)
        )  # fmt: skip
        kept = [x for x in cols if x not in ("contact_key", "custom")]

        def record(r) -> dict:
            rec = {"key": r["contact_key"], **{x: r[x] for x in kept}}
            rec[SCOPE] = r["_s_persona_tier"] == EXCLUDED_PERSONA
            for src, s in sources.items():
                if s is None:
                    rec[f"src:{src}"] = None
                elif s.kind == "contact_score":
                    rec[f"src:{src}"] = r[f"_s_{s.column}"]
                elif s.kind == "derived":
                    rec[f"src:{src}"] = _years_since(r[s.column], today)
                elif s.kind == "custom":
                    rec[f"src:{src}"] = custom_value(r["custom"], s.column)
                else:
                    rec[f"src:{src}"] = r[s.column]
            return rec

    if keys is not None:
        for part in chunks(sorted(keys), min(size, IN_LIST_SIZE)):
            with engine.connect() as conn:
                rows = (
                    conn.execute(query.where(among(conn, key_col, part)).order_by(key_col)).mappings().all()
                )
            if rows:
                yield [record(r) for r in rows]
        return
    last: str | None = None
    while True:
        page = query.order_by(key_col).limit(size)
        if last is not None:
            page = page.where(key_col > last)
        with engine.connect() as conn:
            chunk = [record(r) for r in conn.execute(page).mappings().all()]
        if not chunk:
            return
        yield chunk
        if len(chunk) < size:
            return
        last = chunk[-1]["key"]


def custom_value(stored, name: str):
    """A custom field's value for the CRM: lists as ``a;b`` (a multi-select's wire form)."""
    from marketmap.ingest.custom import LIST_JOIN, decode

    v = decode(stored).get(name)
    return LIST_JOIN.join(map(str, v)) if isinstance(v, list) else v

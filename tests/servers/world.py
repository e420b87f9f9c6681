"""Test worlds for the CRM sync: a client config, a seeded warehouse, fast retry settings."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import Engine

from marketmap.config import ClientConfig, parse_client
from marketmap.crm.base import CrmSettings
from marketmap.warehouse import get_engine, upsert
from marketmap.warehouse import schema as t

CLIENT = "acme"

# Waits shrunk so fault tests run in milliseconds; the logic is the production logic.
FAST = CrmSettings(
    max_attempts=4,
    backoff_base_s=0.01,
    backoff_max_s=0.05,
    max_retry_after_s=1.0,
    connect_timeout_s=2.0,
    read_timeout_s=0.5,
    rate_limit=None,
    search_per_second=0,
    bulk_poll_s=0.01,
)

HUBSPOT_PUSH = [
    {
        "object": "account",
        "mode": "upsert",
        "prevent_override_field": "mm_prevent_override",
        "fields": [
            {"source": "tier", "crm_field": "hs_ideal_customer_profile"},
            {"source": "fit_score", "crm_field": "icp_fit_score", "policy": "overwrite"},
            {"source": "valuation", "crm_field": "account_valuation", "policy": "if_blank"},
            {"source": "white_space", "crm_field": "white_space", "policy": "never"},
            {"source": "state", "crm_field": "state"},
        ],
        "value_normalisation": {"state": {"Calif.": "CA", "N.Y.": "NY"}},
    },
    {
        "object": "contact",
        "mode": "upsert",
        "fields": [
            {
                "source": "persona_tier",
                "crm_field": "persona_tier",
                "picklist": {"P1": "Tier 1", "P2": "Tier 2", "P3": "Tier 3"},
            },
            {"source": "persona_score", "crm_field": "persona_score"},
        ],
    },
]

SALESFORCE_PUSH = [
    {
        "object": "account",
        "mode": "upsert",
        "prevent_override_field": "Prevent_Override__c",
        "external_id_field": "MarketMap_Key__c",
        "fields": [
            {
                "source": "tier",
                "crm_field": "Account_Tier__c",
                "picklist": {"T1": "Tier 1", "T2": "Tier 2", "T3": "Tier 3"},
            },
            {"source": "fit_score", "crm_field": "ICP_Fit_Score__c"},
            {"source": "valuation", "crm_field": "Account_Valuation__c", "policy": "if_blank"},
        ],
    },
    {
        "object": "contact",
        "mode": "upsert",
        "fields": [
            {
                "source": "persona_tier",
                "crm_field": "Persona_Tier__c",
                "picklist": {"P1": "Tier 1", "P2": "Tier 2", "P3": "Tier 3"},
            },
            {"source": "persona_score", "crm_field": "Persona_Score__c"},
        ],
    },
]


def client_cfg(kind: str = "hubspot", push: list[dict] | None = None, **crm: Any) -> ClientConfig:
    if push is None:
        push = HUBSPOT_PUSH if kind == "hubspot" else SALESFORCE_PUSH
    crm_block: dict[str, Any] = {"kind": kind, **crm}
    if kind != "csv":
        crm_block.setdefault("conn_id", "acme_crm")
    if kind == "salesforce":
        crm_block.setdefault(
            "export", {"format": "salesforce", "contact_columns": {"linkedin_url": "LinkedIn_URL__c"}}
        )
    if kind == "hubspot":
        crm_block.setdefault("export", {"format": "hubspot"})
    data = {
        "client_id": CLIENT,
        "name": "Acme Corp",
        "crm": crm_block,
        "icp": {
            "version": "v1",
            "rubrics": [
                {
                    "product": "core",
                    "vectors": [
                        {
                            "name": "size",
                            "kind": "bands",
                            "field": "employees",
                            "weight": 100,
                            "bands": [{"min": 0, "points": 100}],
                        }
                    ],
                }
            ],
        },
        "valuation": {"methods": ["headcount"], "seat_price": 100, "penetration": 0.1},
        "slack": {"channels": {"revops": "#r", "leadership": "#l", "architect": "#a"}},
        "push": push,
    }
    return parse_client(data, "test")


def engine() -> Engine:
    return get_engine()


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def scored_version() -> str:
    """The rubric version the test client's config names (what the push reads scores of)."""
    from marketmap.scoring.pipeline import rubric_version

    return rubric_version(client_cfg("hubspot"))


def seed_accounts(eng: Engine, rows: list[dict[str, Any]], version: str | None = None) -> None:
    """rows: key, crm_id, name, domain, tier, score, valuation, white_space, state, prevent_override."""
    version = version or scored_version()
    ts = now()
    acc, ids, scores = [], [], []
    for r in rows:
        acc.append({
            "client_id": CLIENT, "account_key": r["key"], "crm_id": r.get("crm_id"), "name": r.get("name", r["key"]),
            "name_norm": (r.get("name") or r["key"]).lower(), "domain": r.get("domain"),
            "website": r.get("website") or r.get("domain"), "state": r.get("state"),
            "prevent_override": r.get("prevent_override"), "updated_at": ts,
        })  # fmt: skip
        if r.get("crm_id"):
            ids.append(
                {"client_id": CLIENT, "crm_id": r["crm_id"], "account_key": r["key"], "is_survivor": True}
            )
        if r.get("tier") or r.get("score") is not None:
            scores.append({
                "client_id": CLIENT, "account_key": r["key"], "product": "core", "rubric_version": version,
                "score": r.get("score"), "tier": r.get("tier"), "valuation": r.get("valuation"),
                "white_space": r.get("white_space"), "scored_at": ts,
            })  # fmt: skip
    with eng.begin() as conn:
        upsert(conn, t.accounts, acc)
        upsert(conn, t.account_crm_ids, ids)
        upsert(conn, t.account_scores, scores)


def seed_contacts(eng: Engine, rows: list[dict[str, Any]]) -> None:
    """rows: key, crm_id, account_key, account_crm_id, first, last, email, linkedin, persona_tier, persona_score."""
    from marketmap.scoring.pipeline import persona_version

    pversion = persona_version(client_cfg("hubspot"))
    ts = now()
    con, scores = [], []
    for r in rows:
        con.append({
            "client_id": CLIENT, "contact_key": r["key"], "crm_id": r.get("crm_id"), "account_key": r.get("account_key"),
            "account_crm_id": r.get("account_crm_id"), "first_name": r.get("first"), "last_name": r.get("last", "Doe"),
            "email": r.get("email"), "linkedin_url": r.get("linkedin"), "title": r.get("title"), "updated_at": ts,
        })  # fmt: skip
        if r.get("persona_tier"):
            scores.append({"client_id": CLIENT, "contact_key": r["key"], "rubric_version": pversion,
                           "persona_tier": r["persona_tier"], "persona_score": r.get("persona_score"), "scored_at": ts})  # fmt: skip
    with eng.begin() as conn:
        upsert(conn, t.contacts, con)
        upsert(conn, t.contact_scores, scores)


HS_TOKEN = "pat-na1-fake-test-token"  # the HubSpot test server's private-app token (not a real one)


def hubspot_custom_properties(server) -> None:
    """The custom company/contact properties the HUBSPOT_PUSH mapping writes."""
    from servers.hubspot import _options, _prop

    server.properties["companies"].update({
        "icp_fit_score": _prop("icp_fit_score", "number", "number", hubspotDefined=False),
        "account_valuation": _prop("account_valuation", "number", "number", hubspotDefined=False),
        "white_space": _prop("white_space", "number", "number", hubspotDefined=False),
        "mm_prevent_override": _prop("mm_prevent_override", "bool", "booleancheckbox", hubspotDefined=False,
                                     options=_options(("true", "Yes"), ("false", "No"))),
    })  # fmt: skip
    server.properties["contacts"].update({
        "persona_tier": _prop("persona_tier", "enumeration", "select", groupName="contactinformation", hubspotDefined=False,
                              options=_options(("Tier 1", "Tier 1"), ("Tier 2", "Tier 2"), ("Tier 3", "Tier 3"))),
        "persona_score": _prop("persona_score", "number", "number", groupName="contactinformation", hubspotDefined=False),
    })  # fmt: skip


def salesforce_custom_fields(server) -> None:
    server.add_field("Account", "Account_Tier__c", "picklist", picklist=["Tier 1", "Tier 2", "Tier 3"])
    server.add_field("Account", "ICP_Fit_Score__c", "double")
    server.add_field("Account", "Account_Valuation__c", "currency")
    server.add_field("Account", "Prevent_Override__c", "boolean")
    server.add_field("Account", "MarketMap_Key__c", externalId=True, unique=True)
    server.add_field("Contact", "Persona_Tier__c", "picklist", picklist=["Tier 1", "Tier 2", "Tier 3"])
    server.add_field("Contact", "Persona_Score__c", "double")
    server.add_field("Contact", "LinkedIn_URL__c", "url")

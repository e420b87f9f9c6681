"""Shared helpers of the enrichment tests: client configs, seeded accounts, credentials."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import Engine, select

from marketmap.config import ClientConfig, load_client
from marketmap.enrichment.providers import Credentials
from marketmap.warehouse import schema as t
from marketmap.warehouse import upsert

RUN_DATE = dt.date(2026, 11, 1)
NOW = dt.datetime(2026, 11, 10, 12, 0, tzinfo=dt.UTC)

# The demo rubric: geography 20, size 25, industry 20, funding 15 (recency), tech 20; T1 75, T2 50.
ACCOUNTS = {
    # US, everything else unknown: 20 now, up to 100 -> a T1 candidate
    "good.com": {"country": "United States"},
    # UK + manufacturing: 18 now, up to 78 -> a T1 candidate
    "mid.co.uk": {"country": "United Kingdom", "industry": "Manufacturing"},
    # Canada, healthcare, 30 staff: 23 now, up to 58 -> a T2 candidate
    "north.ca": {"country": "Canada", "industry": "Healthcare", "employees": 30},
    # India, retail, 10 staff: 8 now, up to 43 -> cannot reach T2
    "far.in": {"country": "India", "industry": "Retail", "employees": 10},
    # government is excluded by a negative indicator -> cannot reach T2
    "agency.gov": {"country": "United States", "industry": "Government"},
    # nothing missing that a provider fills
    "full.com": {
        "country": "United States",
        "industry": "Software",
        "employees": 500,
        "tech_stack": "Salesforce",
        "last_funding_date": dt.date(2026, 6, 1),
    },
}


def make_cfg(
    providers: list[dict[str, Any]],
    budget: float = 1000,
    refresh_days: int = 180,
    min_tier: str = "T2",
    **overrides: Any,
) -> ClientConfig:
    """The demo client with other enrichment settings (validated like a client file)."""
    data = load_client("demo").model_dump(mode="json", exclude_none=True)
    data["enrichment"] = {
        "providers": providers,
        "monthly_credit_budget": budget,
        "refresh_days": refresh_days,
        "min_attainable_tier": min_tier,
    }
    data.update(overrides)
    return ClientConfig.model_validate(data)


def seed(engine: Engine, accounts: dict[str, dict] | None = None, client_id: str = "demo") -> None:
    """Accounts keyed by domain (account_key = domain, as dedupe does)."""
    rows = []
    for domain, values in (accounts or ACCOUNTS).items():
        row = {c.name: None for c in t.accounts.columns}
        row.update(
            client_id=client_id,
            account_key=domain,
            crm_id=f"001{domain}",
            name=domain.split(".")[0].title() + " Inc",
            domain=domain,
            website=f"https://www.{domain}",
            **values,
        )
        rows.append(row)
    with engine.begin() as conn:
        upsert(conn, t.accounts, rows)


def account(engine: Engine, key: str, client_id: str = "demo") -> dict:
    with engine.connect() as conn:
        row = conn.execute(
            select(t.accounts).where(t.accounts.c.client_id == client_id, t.accounts.c.account_key == key)
        ).one()
    return dict(row._mapping)


def ledger_rows(engine: Engine, client_id: str = "demo") -> list[dict]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(t.credit_ledger)
            .where(t.credit_ledger.c.client_id == client_id)
            .order_by(t.credit_ledger.c.entry_id)
        ).all()
    return [dict(r._mapping) for r in rows]


def sources(engine: Engine, client_id: str = "demo") -> dict[tuple[str, str], str]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(t.account_field_sources).where(t.account_field_sources.c.client_id == client_id)
        ).all()
    return {(r.account_key, r.field): r.provider for r in rows}


def conn_getter(**by_conn: Credentials):
    def get(conn_id: str) -> Credentials:
        return by_conn[conn_id]

    return get


FAST = {"retry_backoff": 0.01, "retry_max_backoff": 0.05, "timeout": 0.5}


def apollo_cfg(name: str = "apollo", cost: float = 1, fields=None, **options) -> dict:
    return {
        "name": name,
        "kind": "apollo",
        "conn_id": name,
        "cost_per_call": cost,
        "fields": fields or ["industry", "employees", "country", "tech_stack", "last_funding_date"],
        "rate_limit_per_minute": 60000,
        "options": {**FAST, **options},
    }


def clearbit_cfg(name: str = "clearbit", cost: float = 2, fields=None, **options) -> dict:
    return {
        "name": name,
        "kind": "http_json",
        "conn_id": name,
        "cost_per_call": cost,
        "fields": fields or ["industry", "employees", "country", "tech_stack"],
        "rate_limit_per_minute": 60000,
        "options": {
            "url": "https://company.clearbit.com/v2/companies/find?domain={domain}",
            "auth": {"header": "Authorization", "prefix": "Bearer "},
            "mapping": {
                "industry": "category.industry",
                "employees": "metrics.employees",
                "annual_revenue": "metrics.annualRevenue",
                "country": "geo.country",
                "tech_stack": "tech",
            },
            **FAST,
            **options,
        },
    }

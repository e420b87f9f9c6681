"""Each provider client (real httpx) against its local fake, value coercion, JSON paths,
the rate limiter, and the demo client's export file: zero credits, no network."""

from __future__ import annotations

import asyncio
import datetime as dt
import time

import httpx
import pytest
from enrichment_support import FAST, NOW, RUN_DATE, apollo_cfg, clearbit_cfg, ledger_rows, make_cfg
from servers.apollo import ApolloServer
from servers.clearbit import ClearbitServer
from servers.zoominfo import ZoomInfoServer

from marketmap.config import ProviderConfig
from marketmap.enrichment import fields as F
from marketmap.enrichment import plan_account_enrichment, providers_for, run_account_enrichment
from marketmap.enrichment.http import RateLimiter
from marketmap.enrichment.providers import (
    CompanyQuery,
    Credentials,
    LookupContext,
    PeopleQuery,
    PersonQuery,
    build_provider,
)
from marketmap.enrichment.providers.base import dig

CTX = LookupContext()


def _provider(pcfg: dict, creds: Credentials | None = None, **kw):
    return build_provider(ProviderConfig.model_validate(pcfg), "demo", creds, **kw)


def _fetch(provider, queries):
    async def go():
        try:
            return await provider.fetch_companies(queries, CTX)
        finally:
            await provider.aclose()

    return asyncio.run(go())


# --------------------------------------------------------------------------- values


def test_coercion_keeps_only_valid_values():
    assert F.coerce("employees", "1,200") == 1200
    assert F.coerce("employees", "51-200") is None  # a range is not a head count
    assert F.coerce("employees", 0) is None
    assert F.coerce("annual_revenue", "$2.5M") == 2_500_000
    assert F.coerce("industry", " n/a ") is None
    assert F.coerce("industry", "Software") == "Software"
    assert F.coerce("last_funding_date", "2023-03-01T00:00:00.000+00:00") == dt.date(2023, 3, 1)
    assert F.coerce("last_funding_date", "soon") is None
    assert F.coerce("tech_stack", ["Salesforce", {"name": "Slack"}, "", "Salesforce"]) == "Salesforce;Slack"
    assert F.coerce("tech_stack", [], ";") is None
    assert F.coerce("country", {"name": "US"}) is None


def test_json_paths():
    data = {"a": {"b": [{"c": 1}, {"c": 2}]}, "tech": ["x", "y"]}
    assert dig(data, "$.a.b[].c") == [1, 2]
    assert dig(data, "a.b[1].c") == 2
    assert dig(data, "a.b.0.c") == 1
    assert dig(data, "tech") == ["x", "y"]
    assert dig(data, "a.missing.c") is None
    assert dig(data, "a.b[5].c") is None


def test_rate_limiter_spaces_requests():
    async def go():
        limiter = RateLimiter(per_minute=1200)  # one every 50 ms
        start = time.monotonic()
        await asyncio.gather(*(limiter.wait() for _ in range(5)))
        return time.monotonic() - start

    assert asyncio.run(go()) >= 0.19  # four gaps of 50 ms


# --------------------------------------------------------------------------- Apollo


def test_apollo_single_bulk_and_miss():
    with ApolloServer() as s:
        s.add_org(
            "acme.com", industry="Software", employees=250, country="United States", tech=["Salesforce"]
        )
        s.add_org("beta.io", industry="Retail", employees=40)
        p = _provider(apollo_cfg(), Credentials(host=s.url, password=s.api_key))
        one = _fetch(p, [CompanyQuery("acme.com", "acme.com")])
        assert one["domain:acme.com"].status == "hit"
        assert p.parse_company(one["domain:acme.com"].raw)["employees"] == 250
        assert s.requests[-1].headers["x-api-key"] == s.api_key
        many = _fetch(p, [CompanyQuery(d, d) for d in ("acme.com", "beta.io", "nobody.org")])
        assert [many[f"domain:{d}"].status for d in ("acme.com", "beta.io", "nobody.org")] == [
            "hit",
            "hit",
            "miss",
        ]
        assert s.requests[-1].path == "/api/v1/organizations/bulk_enrich"
        assert s.requests[-1].query["domains[]"] == ["acme.com", "beta.io", "nobody.org"]
        none = _fetch(p, [CompanyQuery("x", "unknown.com")])
        assert none["domain:unknown.com"].status == "miss"
        # Apollo looks organizations up by domain only: no request for a name
        n = len(s.requests)
        assert _fetch(p, [CompanyQuery("id:1", None, "Acme")])["name:acme"].status == "miss"
        assert len(s.requests) == n


def test_apollo_refused_key_is_an_error_without_retries():
    with ApolloServer() as s:
        s.add_org("acme.com", industry="Software")
        p = _provider(apollo_cfg(bulk=False), Credentials(host=s.url, password="wrong"))
        a = _fetch(p, [CompanyQuery("acme.com", "acme.com")])["domain:acme.com"]
        assert a.status == "error" and "401" in a.reason and not a.charged
        assert len(s.requests) == 1


def test_apollo_people_search_and_match():
    with ApolloServer() as s:
        s.add_person("acme.com", "p1", "Ada", "Lovelace", "VP Revenue Operations", "ada@acme.com")
        s.add_person("acme.com", "p2", "Bob", "Stone", "Intern", None)
        p = _provider(apollo_cfg(), Credentials(host=s.url, password=s.api_key))

        async def go():
            try:
                found = await p.search_people(
                    PeopleQuery("acme.com", "acme.com", None, ("VP Revenue Operations",)), CTX
                )
                people = p.parse_people(found.raw)
                match = await p.match_person(PersonQuery("acme.com", people[0]), CTX)
                return people, p.parse_person(match.raw)
            finally:
                await p.aclose()

        people, revealed = asyncio.run(go())
        assert [x["external_id"] for x in people] == ["p1"]
        assert people[0]["email"] is None  # search results never carry the e-mail
        assert revealed["email"] == "ada@acme.com"
        search = next(r for r in s.requests if r.path == "/api/v1/mixed_people/search")
        assert search.json()["q_organization_domains_list"] == ["acme.com"]
        assert search.json()["person_titles"] == ["VP Revenue Operations"]


# --------------------------------------------------------------------------- ZoomInfo


def test_zoominfo_authenticates_batches_and_reauthenticates():
    with ZoomInfoServer() as s:
        s.add_company(
            "acme.com",
            employeeCount=1200,
            revenue=250_000,
            primaryIndustry="Software",
            country="United States",
        )
        pcfg = {
            "name": "zoominfo",
            "kind": "zoominfo",
            "conn_id": "zi",
            "cost_per_call": 2,
            "fields": ["industry", "employees", "annual_revenue", "country"],
            "rate_limit_per_minute": 60000,
            "options": FAST,
        }
        p = _provider(pcfg, Credentials(host=s.url, login=s.username, password=s.password))

        async def go():
            try:
                first = await p.fetch_companies(
                    [CompanyQuery("acme.com", "acme.com"), CompanyQuery("nope.com", "nope.com")], CTX
                )
                s.expire_tokens()  # the JWT expires: a 401, one new /authenticate, the call again
                second = await p.fetch_companies([CompanyQuery("acme.com", "acme.com")], CTX)
                return first, second
            finally:
                await p.aclose()

        first, second = asyncio.run(go())
        assert first["domain:acme.com"].status == "hit" and first["domain:nope.com"].status == "miss"
        values = p.parse_company(first["domain:acme.com"].raw)
        assert values["annual_revenue"] == 250_000_000  # ZoomInfo reports thousands of dollars
        assert values["industry"] == "Software"
        assert second["domain:acme.com"].status == "hit"
        assert s.count("/authenticate") == 2
        enrich = [r for r in s.requests if r.path == "/enrich/company"]
        assert enrich[0].json()["matchCompanyInput"] == [
            {"companyWebsite": "www.acme.com"},
            {"companyWebsite": "www.nope.com"},
        ]
        assert enrich[0].headers["authorization"].startswith("Bearer jwt-")
        # the same provider object in a later run (a new event loop): still works
        assert _fetch(p, [CompanyQuery("acme.com", "acme.com")])["domain:acme.com"].status == "hit"


def test_zoominfo_bad_credentials():
    with ZoomInfoServer() as s:
        pcfg = {"name": "zi", "kind": "zoominfo", "conn_id": "zi", "fields": ["industry"], "options": FAST}
        p = _provider(pcfg, Credentials(host=s.url, login="x", password="y"))
        a = _fetch(p, [CompanyQuery("acme.com", "acme.com")])["domain:acme.com"]
        assert a.status == "error" and "authenticate" in a.reason


# --------------------------------------------------------------------------- http_json (Clearbit)


def test_http_json_clearbit_example():
    with ClearbitServer() as s:
        s.add("acme.com", industry="Software", employees=300, country="Germany", tech=["HubSpot", "Segment"])
        s.queued.add("later.com")
        p = _provider(clearbit_cfg(), Credentials(host=s.url, password=s.api_key))
        out = _fetch(p, [CompanyQuery(d, d) for d in ("acme.com", "unknown.com", "later.com")])
        assert out["domain:acme.com"].status == "hit"
        assert p.parse_company(out["domain:acme.com"].raw) | {} == {
            "industry": "Software",
            "employees": 300,
            "annual_revenue": None,
            "country": "Germany",
            "tech_stack": ["HubSpot", "Segment"],
        }
        assert out["domain:unknown.com"].status == "miss"
        assert out["domain:later.com"].status == "pending"
        assert s.requests[0].query == {"domain": ["acme.com"]}
        assert s.requests[0].headers["authorization"] == f"Bearer {s.api_key}"


def test_http_json_config_errors():
    bad = clearbit_cfg()
    bad["options"]["mapping"].pop("industry")
    with pytest.raises(ValueError, match="mapping misses fields"):
        _provider(bad)
    with pytest.raises(Exception, match="needs conn_id"):
        make_cfg([{"name": "x", "kind": "http_json", "fields": ["industry"], "options": {"url": "u"}}])


# --------------------------------------------------------------------------- export files


def test_export_file_by_domain_and_by_name(tmp_path):
    (tmp_path / "vertical.csv").write_text(
        "Website,Org Name,Staff,Sector\nhttps://www.Acme.com/about,Acme Inc.,120,Healthcare\n"
        ",Beta Hospital LLC,900,Healthcare\n",
        encoding="utf-8",
    )
    by_domain = _provider(
        {
            "name": "definitive",
            "kind": "export_file",
            "fields": ["employees", "industry"],
            "options": {
                "file": "vertical.csv",
                "key": "domain",
                "key_column": "Website",
                "columns": {"employees": "Staff", "industry": "Sector"},
            },
        },
        inbox=tmp_path,
    )
    out = _fetch(by_domain, [CompanyQuery("acme.com", "acme.com"), CompanyQuery("x.com", "x.com")])
    assert by_domain.parse_company(out["domain:acme.com"].raw) == {
        "employees": "120",
        "industry": "Healthcare",
    }
    assert out["domain:x.com"].status == "miss"
    by_name = _provider(
        {
            "name": "ipeds",
            "kind": "export_file",
            "fields": ["employees"],
            "options": {
                "file": str(tmp_path / "vertical.csv"),
                "key": "name",
                "key_column": "Org Name",
                "columns": {"employees": "Staff"},
            },
        }
    )
    out = _fetch(by_name, [CompanyQuery("id:9", None, "beta hospital")])
    assert by_name.parse_company(out["name:beta hospital"].raw) == {"employees": "900"}
    missing = _provider(
        {"name": "m", "kind": "export_file", "fields": ["industry"], "options": {"file": "nope.csv"}},
        inbox=tmp_path,
    )
    with pytest.raises(FileNotFoundError, match="nope.csv"):
        _fetch(missing, [CompanyQuery("a.com", "a.com")])


def test_demo_client_fills_blanks_from_its_export_with_zero_credits_and_no_network(mm_home, monkeypatch):
    """The demo build (README's main command) enriches from the bundled export file."""
    from marketmap.config import load_client
    from marketmap.demo.generate import generate_demo_export
    from marketmap.ingest.pipeline import extract_exports, load_warehouse, normalise_and_dedupe, start_run
    from marketmap.settings import inbox_dir
    from marketmap.warehouse import get_engine

    def no_network(*args, **kwargs):
        raise AssertionError("the demo enrichment must not touch the network")

    monkeypatch.setattr(httpx.AsyncClient, "send", no_network)
    generate_demo_export(inbox_dir("demo"), n_accounts=600)
    cfg = load_client("demo")
    engine = get_engine()
    start_run(engine, "demo", "demo-run", "build", None)
    extract_exports(cfg, "demo-run", engine)
    normalise_and_dedupe(cfg, "demo-run", engine)
    load_warehouse(cfg, "demo-run", engine)

    providers = providers_for(cfg, conn_getter=lambda conn_id: pytest.fail(f"asked for connection {conn_id}"))
    plan = plan_account_enrichment(cfg, engine, RUN_DATE, now=NOW)
    result = run_account_enrichment(cfg, engine, "demo-run", plan, providers, now=NOW)
    summary = result.summary()
    assert summary["credits_spent"] == 0 and summary["month_spent"] == 0
    assert sum(summary["fields_filled"].values()) > 50
    assert ledger_rows(engine) == []  # a free local file is no paid call
    # a second pass finds nothing new to fill
    again = run_account_enrichment(
        cfg,
        engine,
        "demo-run-2",
        plan_account_enrichment(cfg, engine, RUN_DATE, now=NOW),
        providers_for(cfg),
        now=NOW,
    )
    assert sum(again.summary()["fields_filled"].values()) == 0

"""Apollo.io: organization enrichment (single and bulk), people search and people match.

Endpoints as Apollo documents them (docs.apollo.io, API reference), base
``https://api.apollo.io``, API key in the ``X-Api-Key`` header:

* ``GET /api/v1/organizations/enrich?domain=…`` → ``{"organization": {...}}``; an unknown
  domain answers ``{}`` (or ``"organization": null``, or 404).
* ``POST /api/v1/organizations/bulk_enrich?domains[]=…`` (at most 10 domains) →
  ``{"status", "organizations": [...], "total_requested_domains", "unique_enriched_records",
  "missing_records", …}``; a domain without a record is simply absent.
* ``POST /api/v1/mixed_people/search`` with ``q_organization_domains_list``,
  ``person_titles``, ``page``, ``per_page`` → ``{"people": [...], "pagination": {...}}``
  (no e-mails: search results show ``email_not_unlocked@domain.com``). Apollo has moved
  the endpoint to ``/api/v1/mixed_people/api_search``: ``options.people_search_path``.
* ``POST /api/v1/people/match`` with ``id`` (or name + domain, ``linkedin_url``) →
  ``{"person": {...}}`` with the e-mail; this consumes credits.

Organization fields used: ``industry``, ``estimated_num_employees``, ``annual_revenue``,
``country``/``state``/``city``, ``technology_names`` (or ``current_technologies[].name``),
``latest_funding_round_date``, ``latest_funding_stage``, ``name``, ``website_url``,
``primary_domain``.

Connection: password = API key; host optional (default ``https://api.apollo.io``).
"""

from __future__ import annotations

from typing import Any

from marketmap.enrichment.http import ProviderError, json_body
from marketmap.enrichment.providers.base import (
    Answer,
    CompanyQuery,
    LookupContext,
    PeopleQuery,
    PersonQuery,
    Provider,
)

DEFAULT_URL = "https://api.apollo.io"
LOCKED_EMAIL = "email_not_unlocked@domain.com"
_MISS_STATUSES = (404, 422)


def _error_answer(e: ProviderError) -> Answer:
    return Answer("error", reason=str(e), charged=e.kind == "timeout")


class ApolloProvider(Provider):
    kind = "apollo"
    supports_people = True

    @property
    def bulk_size(self) -> int:  # type: ignore[override]
        return 10 if self.options.get("bulk", True) else 1

    def _client(self):
        if not self.credentials.password:
            raise ProviderError("config", f"Apollo provider '{self.name}': the connection has no API key")
        return self.http(
            self.base_url(DEFAULT_URL),
            {
                "X-Api-Key": self.credentials.password,
                "Content-Type": "application/json",
                "Cache-Control": "no-cache",
                "Accept": "application/json",
            },
        )

    # -- organizations -----------------------------------------------------------------
    async def fetch_companies(self, queries: list[CompanyQuery], ctx: LookupContext) -> dict[str, Answer]:
        out: dict[str, Answer] = {}
        usable = [q for q in queries if q.domain]
        for q in queries:
            if not q.domain:
                out[q.lookup_key] = Answer("miss", reason="Apollo enriches organizations by domain only")
        if not usable:
            return out
        try:
            client = self._client()
            if len(usable) == 1:
                out.update(await self._single(client, usable[0]))
            else:
                out.update(await self._bulk(client, usable))
        except ProviderError as e:
            out.update({q.lookup_key: _error_answer(e) for q in usable})
        return out

    async def _single(self, client, q: CompanyQuery) -> dict[str, Answer]:
        r = await client.request("GET", "/api/v1/organizations/enrich", params={"domain": q.domain})
        if r.status_code in _MISS_STATUSES:
            return {q.lookup_key: Answer("miss", reason=f"HTTP {r.status_code}: not found")}
        if r.status_code >= 400:
            return {q.lookup_key: Answer("error", reason=f"HTTP {r.status_code}")}
        body, problem = json_body(r)
        if problem:
            return {q.lookup_key: Answer("miss", reason=problem, charged=True)}
        org = body.get("organization") if isinstance(body, dict) else None
        if not isinstance(org, dict) or not org:
            return {q.lookup_key: Answer("miss", raw=body, reason="no organization for this domain")}
        return {q.lookup_key: Answer("hit", raw={"organization": org})}

    async def _bulk(self, client, queries: list[CompanyQuery]) -> dict[str, Answer]:
        params = [("domains[]", q.domain) for q in queries]
        r = await client.request("POST", "/api/v1/organizations/bulk_enrich", params=params)
        if r.status_code >= 400:
            kind = "miss" if r.status_code in _MISS_STATUSES else "error"
            return {q.lookup_key: Answer(kind, reason=f"HTTP {r.status_code}") for q in queries}
        body, problem = json_body(r)
        orgs = body.get("organizations") if isinstance(body, dict) else None
        if problem or not isinstance(orgs, list):
            reason = problem or "bulk answer without an organizations list"
            return {q.lookup_key: Answer("miss", reason=reason, charged=True) for q in queries}
        by_domain: dict[str, dict] = {}
        for org in orgs:
            if not isinstance(org, dict):
                continue
            for key in (org.get("primary_domain"), org.get("website_url"), org.get("domain")):
                d = _host(key)
                if d:
                    by_domain.setdefault(d, org)
        out = {}
        for q in queries:
            org = by_domain.get(q.domain)
            out[q.lookup_key] = (
                Answer("hit", raw={"organization": org})
                if org
                else Answer("miss", reason="not among the bulk enrichment's organizations")
            )
        return out

    def parse_company(self, raw: Any) -> dict[str, Any]:
        org = raw.get("organization") if isinstance(raw, dict) else None
        if not isinstance(org, dict):
            return {}
        tech = org.get("technology_names") or [
            t.get("name") for t in org.get("current_technologies") or [] if isinstance(t, dict)
        ]
        return {
            "name": org.get("name"),
            "website": org.get("website_url"),
            "industry": org.get("industry"),
            "employees": org.get("estimated_num_employees"),
            "annual_revenue": org.get("annual_revenue"),
            "country": org.get("country"),
            "state": org.get("state"),
            "city": org.get("city"),
            "tech_stack": tech,
            "last_funding_date": org.get("latest_funding_round_date"),
            "funding_stage": org.get("latest_funding_stage"),
        }

    # -- people ------------------------------------------------------------------------
    async def search_people(self, query: PeopleQuery, ctx: LookupContext) -> Answer:
        if not query.domain:
            return Answer("miss", reason="Apollo people search needs the account's domain")
        body = {
            "q_organization_domains_list": [query.domain],
            "person_titles": list(query.titles),
            "page": 1,
            "per_page": min(100, query.limit),
        }
        path = self.options.get("people_search_path", "/api/v1/mixed_people/search")
        try:
            r = await self._client().request("POST", path, json=body)
        except ProviderError as e:
            return _error_answer(e)
        if r.status_code >= 400:
            return Answer(
                "miss" if r.status_code in _MISS_STATUSES else "error", reason=f"HTTP {r.status_code}"
            )
        data, problem = json_body(r)
        if problem:
            return Answer("miss", reason=problem, charged=True)
        people = data.get("people") if isinstance(data, dict) else None
        if not isinstance(people, list) or not people:
            return Answer("miss", raw=data, reason="no people with these titles")
        return Answer("hit", raw={"people": people})

    def parse_people(self, raw: Any) -> list[dict[str, Any]]:
        people = raw.get("people") if isinstance(raw, dict) else None
        return [_person(p) for p in people or [] if isinstance(p, dict)]

    async def match_person(self, query: PersonQuery, ctx: LookupContext) -> Answer:
        p = query.person
        body: dict[str, Any] = {"reveal_personal_emails": False}
        if p.get("external_id"):
            body["id"] = p["external_id"]
        for key in ("first_name", "last_name", "linkedin_url", "domain"):
            if p.get(key):
                body[key] = p[key]
        try:
            r = await self._client().request("POST", "/api/v1/people/match", json=body)
        except ProviderError as e:
            return _error_answer(e)
        if r.status_code >= 400:
            return Answer(
                "miss" if r.status_code in _MISS_STATUSES else "error", reason=f"HTTP {r.status_code}"
            )
        data, problem = json_body(r)
        if problem:
            return Answer("miss", reason=problem, charged=True)
        person = data.get("person") if isinstance(data, dict) else None
        if not isinstance(person, dict) or not person:
            return Answer("miss", raw=data, reason="no match for this person")
        return Answer("hit", raw={"person": person})

    def parse_person(self, raw: Any) -> dict[str, Any]:
        person = raw.get("person") if isinstance(raw, dict) else None
        return _person(person) if isinstance(person, dict) else {}


def _host(value: Any) -> str | None:
    """``http://www.acme.com/x`` -> ``acme.com``: enough to match Apollo's ``primary_domain``
    (already registrable) and ``website_url`` back to the registrable domains we asked for."""
    if not isinstance(value, str) or not value.strip():
        return None
    host = value.strip().lower().split("://", 1)[-1].split("/", 1)[0].split(":", 1)[0]
    return host.removeprefix("www.") or None


def _person(p: dict) -> dict[str, Any]:
    email = p.get("email")
    if not email or email == LOCKED_EMAIL or "@" not in str(email):
        email = None
    org = p.get("organization") if isinstance(p.get("organization"), dict) else {}
    return {
        "external_id": p.get("id"),
        "first_name": p.get("first_name"),
        "last_name": p.get("last_name"),
        "title": p.get("title"),
        "email": email,
        "linkedin_url": p.get("linkedin_url"),
        "country": p.get("country"),
        "seniority": p.get("seniority"),
        "domain": org.get("primary_domain"),
    }

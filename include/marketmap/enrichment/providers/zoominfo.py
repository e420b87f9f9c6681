"""ZoomInfo Enterprise API: company and contact enrichment with JWT authentication.

As ZoomInfo documents it (api-docs.zoominfo.com), base ``https://api.zoominfo.com``:

* ``POST /authenticate`` with ``{"username", "password"}`` → ``{"jwt": "…"}``, valid for
  60 minutes; every other call sends ``Authorization: Bearer <jwt>``. The token is
  refreshed after 55 minutes, or at once when a call answers 401.
* ``POST /enrich/company`` with ``matchCompanyInput`` (at most 25 of ``companyWebsite`` /
  ``companyName``) and ``outputFields`` → ``{"success", "data": {"outputFields",
  "result": [{"input", "data": [{...}], "matchStatus"}]}}``, results in input order;
  ``matchStatus`` other than a match (``NO_MATCH`` …) and an empty ``data`` are misses.
* ``POST /search/contact`` with ``companyWebsite``/``companyName``, ``jobTitle`` (titles
  joined by `` OR ``), ``rpp``, ``page`` → ``{"data": [{"id", "firstName", "lastName",
  "jobTitle", "contactAccuracyScore", "hasEmail", "company": {...}}]}`` (no e-mails).
* ``POST /enrich/contact`` with ``matchPersonInput`` (``personId`` …) and ``outputFields``
  → the same ``data.result[]`` shape, with ``email``, ``externalUrls[{type, url}]``, ``country``.

ZoomInfo reports ``revenue`` in thousands of US dollars (``options.revenue_multiplier``,
default 1000). Connection: login = username, password = password; host optional.
"""

from __future__ import annotations

import asyncio
import time
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

DEFAULT_URL = "https://api.zoominfo.com"
TOKEN_TTL = 55 * 60
COMPANY_FIELDS = [
    "id", "name", "website", "employeeCount", "revenue", "primaryIndustry", "country", "state", "city",
]  # fmt: skip
CONTACT_FIELDS = [
    "id", "firstName", "lastName", "email", "jobTitle", "country", "externalUrls", "companyId", "companyName",
]  # fmt: skip
MATCHED = {"FULL_MATCH", "CONTACT_ONLY_MATCH", "COMPANY_ONLY_MATCH", "PARTIAL_MATCH", "MATCH"}


def _rows(entry: Any) -> list[dict]:
    data = entry.get("data") if isinstance(entry, dict) else None
    if isinstance(data, dict):
        data = [data]
    return [r for r in data or [] if isinstance(r, dict) and r]


class ZoomInfoProvider(Provider):
    kind = "zoominfo"
    supports_people = True

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._jwt: str | None = None
        self._jwt_at = 0.0
        self._auth_lock = asyncio.Lock()

    @property
    def bulk_size(self) -> int:  # type: ignore[override]
        return int(self.options.get("bulk_size", 25))

    async def aclose(self) -> None:
        await super().aclose()
        # an asyncio lock belongs to one event loop: the next run (a new loop) gets a new one
        self._auth_lock = asyncio.Lock()

    def _client(self):
        return self.http(self.base_url(DEFAULT_URL), {"Accept": "application/json"})

    async def _token(self, refresh: bool = False) -> str:
        async with self._auth_lock:
            if self._jwt and not refresh and time.monotonic() - self._jwt_at < TOKEN_TTL:
                return self._jwt
            if not (self.credentials.login and self.credentials.password):
                raise ProviderError(
                    "config", f"ZoomInfo provider '{self.name}': the connection needs login and password"
                )
            r = await self._client().request(
                "POST",
                "/authenticate",
                json={"username": self.credentials.login, "password": self.credentials.password},
            )
            body, problem = json_body(r)
            jwt = body.get("jwt") if isinstance(body, dict) else None
            if r.status_code >= 400 or problem or not jwt:
                raise ProviderError(
                    "auth", f"ZoomInfo authenticate failed: HTTP {r.status_code} {problem or ''}".strip()
                )
            self._jwt, self._jwt_at = jwt, time.monotonic()
            return jwt

    async def _post(self, path: str, body: dict) -> Any:
        """POST with the bearer token; on 401 authenticate again once."""
        client = self._client()
        for attempt in (0, 1):
            token = await self._token(refresh=attempt == 1)
            try:
                return await client.request(
                    "POST", path, json=body, headers={"Authorization": f"Bearer {token}"}
                )
            except ProviderError as e:
                if e.kind != "auth" or attempt == 1:
                    raise
        raise AssertionError("unreachable")

    # -- companies ---------------------------------------------------------------------
    async def fetch_companies(self, queries: list[CompanyQuery], ctx: LookupContext) -> dict[str, Answer]:
        inputs = []
        for q in queries:
            inputs.append({"companyWebsite": f"www.{q.domain}"} if q.domain else {"companyName": q.name})
        body = {
            "matchCompanyInput": inputs,
            "outputFields": self.options.get("output_fields", COMPANY_FIELDS),
        }
        return await self._enrich("/enrich/company", body, [q.lookup_key for q in queries])

    async def _enrich(self, path: str, body: dict, keys: list[str]) -> dict[str, Answer]:
        try:
            r = await self._post(path, body)
        except ProviderError as e:
            return {k: Answer("error", reason=str(e), charged=e.kind == "timeout") for k in keys}
        if r.status_code >= 400:
            return {k: Answer("error", reason=f"HTTP {r.status_code}") for k in keys}
        data, problem = json_body(r)
        result = (
            data.get("data", {}).get("result")
            if isinstance(data, dict) and isinstance(data.get("data"), dict)
            else None
        )
        if problem or not isinstance(result, list):
            reason = problem or "answer without data.result"
            return {k: Answer("miss", reason=reason, charged=True) for k in keys}
        out = {}
        for i, key in enumerate(keys):
            entry = result[i] if i < len(result) else None
            rows = _rows(entry)
            status = str(entry.get("matchStatus", "")).upper() if isinstance(entry, dict) else ""
            if rows and (not status or status in MATCHED):
                out[key] = Answer("hit", raw={"data": rows[0], "matchStatus": status or None})
            else:
                out[key] = Answer("miss", raw=entry, reason=f"no match ({status or 'empty result'})")
        return out

    def parse_company(self, raw: Any) -> dict[str, Any]:
        row = raw.get("data") if isinstance(raw, dict) else None
        if not isinstance(row, dict):
            return {}
        revenue = row.get("revenue")
        if isinstance(revenue, int | float):
            revenue = revenue * float(self.options.get("revenue_multiplier", 1000))
        return {
            "name": row.get("name"),
            "website": row.get("website"),
            "industry": row.get("primaryIndustry") or row.get("industry"),
            "employees": row.get("employeeCount"),
            "annual_revenue": revenue,
            "country": row.get("country"),
            "state": row.get("state"),
            "city": row.get("city"),
        }

    # -- contacts ----------------------------------------------------------------------
    async def search_people(self, query: PeopleQuery, ctx: LookupContext) -> Answer:
        body: dict[str, Any] = {
            "jobTitle": " OR ".join(query.titles),
            "rpp": min(100, query.limit),
            "page": 1,
        }
        if query.domain:
            body["companyWebsite"] = f"www.{query.domain}"
        else:
            body["companyName"] = query.name
        try:
            r = await self._post("/search/contact", body)
        except ProviderError as e:
            return Answer("error", reason=str(e), charged=e.kind == "timeout")
        if r.status_code >= 400:
            return Answer("error", reason=f"HTTP {r.status_code}")
        data, problem = json_body(r)
        if problem:
            return Answer("miss", reason=problem, charged=True)
        people = data.get("data") if isinstance(data, dict) else None
        if not isinstance(people, list) or not people:
            return Answer("miss", raw=data, reason="no contacts with these titles")
        return Answer("hit", raw={"data": people})

    def parse_people(self, raw: Any) -> list[dict[str, Any]]:
        rows = raw.get("data") if isinstance(raw, dict) else None
        return [_person(r) for r in rows or [] if isinstance(r, dict)]

    async def match_person(self, query: PersonQuery, ctx: LookupContext) -> Answer:
        p = query.person
        match: dict[str, Any] = (
            {"personId": p["external_id"]}
            if p.get("external_id")
            else {
                "firstName": p.get("first_name"),
                "lastName": p.get("last_name"),
                "companyName": p.get("company"),
            }
        )
        body = {
            "matchPersonInput": [match],
            "outputFields": self.options.get("contact_fields", CONTACT_FIELDS),
        }
        return (await self._enrich("/enrich/contact", body, [query.lookup_key]))[query.lookup_key]

    def parse_person(self, raw: Any) -> dict[str, Any]:
        row = raw.get("data") if isinstance(raw, dict) else None
        return _person(row) if isinstance(row, dict) else {}


def _person(r: dict) -> dict[str, Any]:
    linkedin = next(
        (
            u.get("url")
            for u in r.get("externalUrls") or []
            if isinstance(u, dict) and "linkedin" in str(u.get("type", "")).lower()
        ),
        None,
    )
    company = r.get("company") if isinstance(r.get("company"), dict) else {}
    return {
        "external_id": r.get("id"),
        "first_name": r.get("firstName"),
        "last_name": r.get("lastName"),
        "title": r.get("jobTitle"),
        "email": r.get("email") or None,
        "linkedin_url": linkedin,
        "country": r.get("country"),
        "company": r.get("companyName") or company.get("name"),
    }

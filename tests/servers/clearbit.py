"""Clearbit-style company lookup fake: ``GET /v2/companies/find?domain=`` with a bearer key.

As Clearbit documented its Company API: 200 with the company (``name``, ``domain``,
``category.industry``, ``metrics.employees``, ``metrics.annualRevenue``, ``geo.country``,
``tech`` …), 404 ``{"error": {"type": "unknown_record"}}`` for an unknown domain, and 202
while a lookup is queued ("try again later").
"""

from __future__ import annotations

from typing import Any

from servers.enrichment_base import FakeServer, Recorded, Reply


def company(domain: str, **v: Any) -> dict:
    return {
        "id": f"cb-{domain}",
        "name": v.get("name", domain.split(".")[0].title()),
        "legalName": None,
        "domain": domain,
        "category": {
            "sector": None,
            "industryGroup": None,
            "industry": v.get("industry"),
            "subIndustry": None,
        },
        "tags": [],
        "foundedYear": 2010,
        "geo": {"city": v.get("city"), "state": None, "country": v.get("country"), "countryCode": None},
        "metrics": {
            "employees": v.get("employees"),
            "employeesRange": None,
            "annualRevenue": v.get("annual_revenue"),
            "raised": None,
        },
        "tech": v.get("tech", []),
    }


class ClearbitServer(FakeServer):
    def __init__(self, api_key: str = "sk_test_clearbit") -> None:
        super().__init__()
        self.api_key = api_key
        self.companies: dict[str, dict] = {}
        self.queued: set[str] = set()

    def add(self, domain: str, **v: Any) -> None:
        self.companies[domain] = company(domain, **v)

    def handle(self, req: Recorded) -> Reply:
        if req.headers.get("authorization") != f"Bearer {self.api_key}":
            return Reply(401, {"error": {"type": "auth_required", "message": "API key required"}})
        if req.path == "/v2/companies/find" and req.method == "GET":
            domain = (req.query.get("domain") or [""])[0]
            if domain in self.queued:
                return Reply(202, {"error": {"type": "queued", "message": "lookup queued, try again later"}})
            if domain in self.companies:
                return Reply(200, self.companies[domain])
            return Reply(404, {"error": {"type": "unknown_record", "message": "Unknown domain"}})
        return super().handle(req)

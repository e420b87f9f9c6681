"""Apollo.io fake: organization enrichment (single, bulk), people search, people match.

Wire format as documented at docs.apollo.io (API reference): ``X-Api-Key`` header;
``GET /api/v1/organizations/enrich?domain=`` -> ``{"organization": {...}}`` or ``{}``;
``POST /api/v1/organizations/bulk_enrich?domains[]=…`` (at most 10) -> ``{"status",
"error_code", "error_message", "total_requested_domains", "unique_domains",
"unique_enriched_records", "missing_records", "organizations": [...]}``;
``POST /api/v1/mixed_people/search`` (and ``/api_search``) -> ``{"people": [...],
"pagination": {...}}`` with locked e-mails; ``POST /api/v1/people/match`` -> ``{"person": {...}}``.
"""

from __future__ import annotations

from typing import Any

from servers.enrichment_base import FakeServer, Recorded, Reply

LOCKED = "email_not_unlocked@domain.com"


def organization(domain: str, **values: Any) -> dict:
    """An organization record in Apollo's shape (fields the enrichment reads, plus noise)."""
    org = {
        "id": f"org-{domain}",
        "name": values.get("name", domain.split(".")[0].title()),
        "website_url": f"http://www.{domain}",
        "primary_domain": domain,
        "linkedin_url": f"http://www.linkedin.com/company/{domain.split('.')[0]}",
        "founded_year": 2015,
        "industry": values.get("industry"),
        "estimated_num_employees": values.get("employees"),
        "annual_revenue": values.get("annual_revenue"),
        "country": values.get("country"),
        "state": values.get("state"),
        "city": values.get("city"),
        "technology_names": values.get("tech", []),
        "current_technologies": [
            {"uid": t.lower(), "name": t, "category": "Other"} for t in values.get("tech", [])
        ],
        "latest_funding_round_date": values.get("funding_date"),
        "latest_funding_stage": values.get("funding_stage"),
        "keywords": ["b2b"],
    }
    return org


class ApolloServer(FakeServer):
    def __init__(self, api_key: str = "apollo-test-key") -> None:
        super().__init__()
        self.api_key = api_key
        self.orgs: dict[str, dict] = {}
        self.people: dict[str, list[dict]] = {}  # domain -> people (with their real e-mails)

    def add_org(self, domain: str, **values: Any) -> None:
        self.orgs[domain] = organization(domain, **values)

    def add_person(
        self, domain: str, pid: str, first: str, last: str, title: str, email: str | None, **kw
    ) -> None:
        self.people.setdefault(domain, []).append(
            {
                "id": pid,
                "first_name": first,
                "last_name": last,
                "name": f"{first} {last}",
                "title": title,
                "email_status": "verified" if email else None,
                "_email": email,
                "linkedin_url": kw.get(
                    "linkedin_url", f"http://www.linkedin.com/in/{first}-{last}-{pid}".lower()
                ),
                "country": kw.get("country", "United States"),
                "seniority": kw.get("seniority"),
                "departments": [],
                "organization": {"id": f"org-{domain}", "name": domain, "primary_domain": domain},
            }
        )

    def handle(self, req: Recorded) -> Reply:
        if req.headers.get("x-api-key") != self.api_key:
            return Reply(401, {"error": "Invalid access credentials."})
        if req.path == "/api/v1/organizations/enrich" and req.method == "GET":
            domain = (req.query.get("domain") or [""])[0]
            org = self.orgs.get(domain)
            return Reply(200, {"organization": org} if org else {})
        if req.path == "/api/v1/organizations/bulk_enrich" and req.method == "POST":
            domains = req.query.get("domains[]") or []
            if not domains and req.body:
                domains = req.json().get("domains") or []
            if len(domains) > 10:
                return Reply(422, {"error": "cannot enrich more than 10 domains at once"})
            found = [self.orgs[d] for d in dict.fromkeys(domains) if d in self.orgs]
            return Reply(
                200,
                {
                    "status": "success",
                    "error_code": None,
                    "error_message": None,
                    "total_requested_domains": len(domains),
                    "unique_domains": len(set(domains)),
                    "unique_enriched_records": len(found),
                    "missing_records": len(set(domains)) - len(found),
                    "organizations": found,
                },
            )
        if (
            req.path in ("/api/v1/mixed_people/search", "/api/v1/mixed_people/api_search")
            and req.method == "POST"
        ):
            body = req.json() or {}
            wanted = [t.lower() for t in body.get("person_titles") or []]
            people = []
            for d in body.get("q_organization_domains_list") or []:
                for p in self.people.get(d, []):
                    if not wanted or any(w in p["title"].lower() or p["title"].lower() in w for w in wanted):
                        people.append({k: v for k, v in p.items() if k != "_email"} | {"email": LOCKED})
            per_page = int(body.get("per_page", 25))
            page = people[:per_page]
            return Reply(
                200,
                {
                    "breadcrumbs": [],
                    "partial_results_only": False,
                    "pagination": {
                        "page": 1,
                        "per_page": per_page,
                        "total_entries": len(people),
                        "total_pages": 1,
                    },
                    "contacts": [],
                    "people": page,
                },
            )
        if req.path == "/api/v1/people/match" and req.method == "POST":
            body = req.json() or {}
            for plist in self.people.values():
                for p in plist:
                    if body.get("id") == p["id"]:
                        return Reply(
                            200,
                            {
                                "person": {k: v for k, v in p.items() if k != "_email"}
                                | {"email": p["_email"]}
                            },
                        )
            return Reply(200, {"person": None})
        return super().handle(req)

"""ZoomInfo Enterprise API fake: JWT authentication, company and contact enrichment.

Wire format as documented at api-docs.zoominfo.com: ``POST /authenticate``
``{"username", "password"}`` -> ``{"jwt"}``; other calls need ``Authorization: Bearer <jwt>``
(401 otherwise). ``POST /enrich/company`` with ``matchCompanyInput`` (at most 25) and
``outputFields`` -> ``{"success": true, "data": {"outputFields": [...], "result": [{"input",
"data": [...], "matchStatus"}]}}`` in input order. ``POST /search/contact`` ->
``{"maxResults", "totalResults", "currentPage", "data": [...]}``; ``POST /enrich/contact``
with ``matchPersonInput`` -> the enrich shape.
"""

from __future__ import annotations

import itertools
from typing import Any

from servers.enrichment_base import FakeServer, Recorded, Reply


class ZoomInfoServer(FakeServer):
    def __init__(self, username: str = "zi-user", password: str = "zi-pass") -> None:
        super().__init__()
        self.username, self.password = username, password
        self.companies: dict[str, dict] = {}  # website domain -> company row
        self.contacts: dict[str, list[dict]] = {}  # domain -> contact rows
        self.valid_tokens: set[str] = set()
        self._n = itertools.count(1)

    def add_company(self, domain: str, **row: Any) -> None:
        self.companies[domain] = {
            "id": abs(hash(domain)) % 10**9,
            "name": domain.split(".")[0].title(),
            **row,
        }

    def add_contact(
        self, domain: str, pid: int, first: str, last: str, title: str, email: str | None, **kw
    ) -> None:
        self.contacts.setdefault(domain, []).append(
            {
                "id": pid,
                "firstName": first,
                "lastName": last,
                "jobTitle": title,
                "email": email,
                "country": kw.get("country", "United States"),
                "externalUrls": [
                    {
                        "type": "linkedin.com",
                        "url": f"https://www.linkedin.com/in/{first}-{last}-{pid}".lower(),
                    }
                ],
                "companyName": domain,
                "contactAccuracyScore": 95,
                "hasEmail": bool(email),
            }
        )

    def expire_tokens(self) -> None:
        self.valid_tokens.clear()

    @staticmethod
    def _domain(website: str | None) -> str:
        w = (website or "").lower().removeprefix("http://").removeprefix("https://").removeprefix("www.")
        return w.split("/")[0]

    def handle(self, req: Recorded) -> Reply:
        if req.path == "/authenticate" and req.method == "POST":
            body = req.json() or {}
            if body.get("username") != self.username or body.get("password") != self.password:
                return Reply(401, {"error": "invalid credentials"})
            token = f"jwt-{next(self._n)}"
            self.valid_tokens.add(token)
            return Reply(200, {"jwt": token})
        token = (req.headers.get("authorization") or "").removeprefix("Bearer ").strip()
        if token not in self.valid_tokens:
            return Reply(401, {"error": "token expired or invalid"})
        body = req.json() or {}
        if req.path == "/enrich/company":
            inputs = body.get("matchCompanyInput") or []
            if len(inputs) > 25:
                return Reply(400, {"error": "at most 25 inputs"})
            fields = body.get("outputFields") or []
            result = []
            for inp in inputs:
                row = self.companies.get(self._domain(inp.get("companyWebsite")))
                if row is None and inp.get("companyName"):
                    row = next(
                        (
                            r
                            for r in self.companies.values()
                            if r["name"].lower() == inp["companyName"].lower()
                        ),
                        None,
                    )
                if row:
                    result.append(
                        {"input": inp, "data": [{f: row.get(f) for f in fields}], "matchStatus": "FULL_MATCH"}
                    )
                else:
                    result.append({"input": inp, "data": [], "matchStatus": "NO_MATCH"})
            return Reply(200, {"success": True, "data": {"outputFields": [fields], "result": result}})
        if req.path == "/search/contact":
            rows = self.contacts.get(self._domain(body.get("companyWebsite")), [])
            titles = [t.strip().lower() for t in (body.get("jobTitle") or "").split(" OR ") if t.strip()]
            hits = [
                {k: v for k, v in r.items() if k != "email"}
                for r in rows
                if not titles or any(t in r["jobTitle"].lower() for t in titles)
            ]
            return Reply(
                200, {"maxResults": len(hits), "totalResults": len(hits), "currentPage": 1, "data": hits}
            )
        if req.path == "/enrich/contact":
            fields = body.get("outputFields") or []
            result = []
            for inp in body.get("matchPersonInput") or []:
                row = next(
                    (r for rs in self.contacts.values() for r in rs if r["id"] == inp.get("personId")), None
                )
                result.append(
                    {"input": inp, "data": [{f: row.get(f) for f in fields}], "matchStatus": "FULL_MATCH"}
                    if row
                    else {"input": inp, "data": [], "matchStatus": "NO_MATCH"}
                )
            return Reply(200, {"success": True, "data": {"outputFields": [fields], "result": result}})
        return super().handle(req)

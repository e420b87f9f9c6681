"""A generic HTTP JSON provider, defined entirely in the client config, for the long tail.

Documented example: a Clearbit-style company lookup
(``GET https://company.clearbit.com/v2/companies/find?domain=…``, bearer key; 200 with the
company, 404 when unknown, 202 while Clearbit is still looking it up)::

    - name: clearbit
      kind: http_json
      conn_id: clearbit            # password = API key; host may override the URL's host
      cost_per_call: 1
      fields: [industry, employees, annual_revenue, country, tech_stack]
      options:
        url: https://company.clearbit.com/v2/companies/find?domain={domain}
        auth: {header: Authorization, prefix: "Bearer "}
        mapping:
          industry: category.industry
          employees: metrics.employees
          annual_revenue: metrics.annualRevenue
          country: geo.country
          tech_stack: tech
        miss_statuses: [404, 422]
        pending_statuses: [202]

Options: ``url`` (template with ``{domain}`` and ``{name}``, URL-encoded; a relative URL is
joined to the connection's host), ``method`` (GET or POST), ``body`` (a JSON template for
POST, strings formatted like the URL), ``auth`` (``header``, ``prefix``; the key is the
connection's password; ``query_param`` sends it as a query parameter instead),
``mapping`` (canonical field -> JSON path, see :func:`~marketmap.enrichment.providers.base.dig`),
``result_path`` (path to the record when the answer wraps it, e.g. ``results[0]``),
``key`` (``domain``: only queries with a domain are sent; ``name``: by name).
"""

from __future__ import annotations

import urllib.parse
from typing import Any

from marketmap.enrichment.http import ProviderError, json_body
from marketmap.enrichment.providers.base import Answer, CompanyQuery, LookupContext, Provider, dig


def _fill(template: Any, values: dict[str, str], quote: bool) -> Any:
    if isinstance(template, str):
        enc = {k: urllib.parse.quote(v, safe="") if quote else v for k, v in values.items()}
        return template.format(**enc)
    if isinstance(template, dict):
        return {k: _fill(v, values, quote) for k, v in template.items()}
    if isinstance(template, list):
        return [_fill(v, values, quote) for v in template]
    return template


class HttpJsonProvider(Provider):
    kind = "http_json"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if not self.options.get("url"):
            raise ValueError(f"provider '{self.name}' (http_json): options.url is required")
        mapping = self.options.get("mapping") or {}
        unmapped = sorted(set(self.cfg.fields) - set(mapping))
        if unmapped:
            raise ValueError(f"provider '{self.name}' (http_json): options.mapping misses fields {unmapped}")

    def _headers(self) -> dict[str, str]:
        auth = self.options.get("auth") or {"header": "Authorization", "prefix": "Bearer "}
        headers = {"Accept": "application/json"}
        key = self.credentials.password
        if key and not auth.get("query_param"):
            headers[auth.get("header", "Authorization")] = f"{auth.get('prefix', '')}{key}"
        return headers

    def _url(self, q: CompanyQuery) -> tuple[str, dict[str, str]]:
        url = _fill(self.options["url"], {"domain": q.domain or "", "name": q.name or ""}, quote=True)
        parts = urllib.parse.urlsplit(url)
        host = self.credentials.base_url()
        if not parts.scheme:
            if not host:
                raise ProviderError("config", f"provider '{self.name}': relative url and no connection host")
            url = host.rstrip("/") + "/" + url.lstrip("/")
        elif host:
            # the connection's host wins (a proxy, a regional endpoint, a local test server)
            target = urllib.parse.urlsplit(host)
            url = urllib.parse.urlunsplit(
                (target.scheme, target.netloc, parts.path, parts.query, parts.fragment)
            )
        params = {}
        auth = self.options.get("auth") or {}
        if auth.get("query_param") and self.credentials.password:
            params[auth["query_param"]] = self.credentials.password
        return url, params

    async def _one(self, q: CompanyQuery) -> Answer:
        if self.options.get("key", "domain") == "domain" and not q.domain:
            return Answer("miss", reason="this provider looks companies up by domain")
        try:
            url, params = self._url(q)
            client = self.http("", self._headers())
            method = str(self.options.get("method", "GET")).upper()
            # only when there are any: httpx's params replace the URL's own query string
            kwargs: dict[str, Any] = {"params": params} if params else {}
            if method == "POST":
                kwargs["json"] = _fill(
                    self.options.get("body", {}), {"domain": q.domain or "", "name": q.name or ""}, False
                )
            r = await client.request(method, url, **kwargs)
        except ProviderError as e:
            return Answer("error", reason=str(e), charged=e.kind == "timeout")
        if r.status_code in self.options.get("pending_statuses", [202]):
            return Answer("pending", reason=f"HTTP {r.status_code}: the provider is still looking it up")
        if r.status_code in self.options.get("miss_statuses", [404, 422]):
            return Answer("miss", reason=f"HTTP {r.status_code}: not found")
        if r.status_code >= 400:
            return Answer("error", reason=f"HTTP {r.status_code}")
        body, problem = json_body(r)
        if problem:
            return Answer("miss", reason=problem, charged=True)
        record = dig(body, self.options["result_path"]) if self.options.get("result_path") else body
        if not isinstance(record, dict) or not record:
            return Answer("miss", raw=body, reason="no record in the answer")
        return Answer("hit", raw=record)

    async def fetch_companies(self, queries: list[CompanyQuery], ctx: LookupContext) -> dict[str, Answer]:
        return {q.lookup_key: await self._one(q) for q in queries}

    def parse_company(self, raw: Any) -> dict[str, Any]:
        if not isinstance(raw, dict):
            return {}
        return {f: dig(raw, path) for f, path in (self.options.get("mapping") or {}).items()}

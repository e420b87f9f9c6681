"""The one interface every enrichment provider implements.

A provider answers *lookups*: a company by domain (or name), the people at a company by
persona titles, one person to reveal an e-mail. It returns the raw answer (what is cached)
and knows how to parse a raw answer into canonical fields, so a cached answer is read back
through the same code as a fresh one. Credits, cache and ledger live outside the provider
(:mod:`marketmap.enrichment.runner`): a provider only talks to its API.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import Any

from marketmap.config import ProviderConfig
from marketmap.enrichment.http import RetryingClient, RetryPolicy

OPERATIONS = ("company", "people_search", "person_match")


@dataclass(frozen=True)
class Credentials:
    """What a provider needs from its Airflow connection (never logged, never stored)."""

    host: str | None = None
    login: str | None = None
    password: str | None = None
    schema: str | None = None
    port: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def base_url(self) -> str | None:
        """``scheme://host[:port]`` from the connection; None when it names no host."""
        if not self.host:
            return None
        host = self.host.rstrip("/")
        if "://" not in host:
            host = f"{self.schema or 'https'}://{host}"
        if self.port and host.count(":") < 2:
            host = f"{host}:{self.port}"
        return host

    def __repr__(self) -> str:  # keep secrets out of logs and tracebacks
        return f"Credentials(host={self.host!r}, login={'***' if self.login else None})"


@dataclass(frozen=True)
class CompanyQuery:
    """Look up one account's company, by registrable domain or, failing that, by name."""

    account_key: str
    domain: str | None = None
    name: str | None = None

    @property
    def lookup_key(self) -> str:
        if self.domain:
            return f"domain:{self.domain}"
        return f"name:{(self.name or '').strip().casefold()}"


@dataclass(frozen=True)
class PeopleQuery:
    """People at one account whose titles match the persona titles."""

    account_key: str
    domain: str | None
    name: str | None
    titles: tuple[str, ...]
    limit: int = 25

    @property
    def lookup_key(self) -> str:
        digest = hashlib.sha1("|".join(sorted(self.titles)).encode()).hexdigest()[:12]
        who = self.domain or (self.name or "").strip().casefold()
        return f"people:{who}:{digest}:{self.limit}"


@dataclass(frozen=True)
class PersonQuery:
    """Reveal one person found by a people search (e-mail, LinkedIn URL)."""

    account_key: str
    person: dict[str, Any]

    @property
    def lookup_key(self) -> str:
        pid = (
            self.person.get("external_id")
            or self.person.get("linkedin_url")
            or (f"{self.person.get('first_name')}|{self.person.get('last_name')}|{self.person.get('domain')}")
        )
        return f"person:{pid}"


@dataclass
class Answer:
    """What a provider said about one lookup.

    ``status``: ``hit`` (data), ``miss`` (a valid "not found", or a malformed/empty answer),
    ``error`` (no answer: see ``charged``) or ``pending`` (asynchronous, e.g. Clay).
    ``charged`` tells whether the provider may have charged for a call that failed
    (a timeout: the request may have been served); error statuses are never charged.
    """

    status: str
    raw: Any = None
    reason: str | None = None
    charged: bool = False


@dataclass
class LookupContext:
    """Run details a provider may need (Clay stores its sent rows; others ignore it)."""

    engine: Any = None
    client_id: str = ""
    run_id: str = ""
    entry_ids: dict[str, int] = field(default_factory=dict)


class Provider:
    """Base class: configuration, HTTP client and default (unsupported) operations."""

    kind = "base"
    #: lookups sent in one request (Apollo bulk enrichment: 10, ZoomInfo: 25)
    bulk_size = 1
    #: answers are cached and paid calls go through the ledger; False for local files
    cached = True
    #: the provider can search people and reveal a person
    supports_people = False
    #: answers arrive later (Clay): a pending account waits instead of moving down the waterfall
    asynchronous = False

    def __init__(self, cfg: ProviderConfig, client_id: str, credentials: Credentials | None = None):
        self.cfg = cfg
        self.client_id = client_id
        self.credentials = credentials or Credentials()
        self.options = dict(cfg.options)
        self._http: RetryingClient | None = None

    # -- configuration ---------------------------------------------------------------
    @property
    def name(self) -> str:
        return self.cfg.name

    @property
    def fields(self) -> frozenset[str]:
        return frozenset(self.cfg.fields)

    @property
    def pool(self) -> str:
        """The Airflow pool that shares this provider's rate limit between tasks."""
        return self.cfg.pool or f"enrichment_{self.cfg.name}"

    def cost(self, operation: str = "company") -> float:
        """Credits per lookup of ``operation`` (``options.costs`` overrides ``cost_per_call``)."""
        costs = self.options.get("costs") or {}
        return float(costs.get(operation, self.cfg.cost_per_call))

    def charges_on_miss(self) -> bool:
        """Whether a "not found" costs credits (``options.charge_on_miss``, default true).

        True is the safe default for a budget; Apollo and ZoomInfo document that a miss is
        free, so their configs may set it false.
        """
        return bool(self.options.get("charge_on_miss", True))

    def base_url(self, default: str) -> str:
        return (self.options.get("base_url") or self.credentials.base_url() or default).rstrip("/")

    def http(self, base_url: str = "", headers: dict[str, str] | None = None) -> RetryingClient:
        if self._http is None:
            self._http = RetryingClient(
                base_url=base_url,
                headers=headers,
                per_minute=self.cfg.rate_limit_per_minute,
                policy=RetryPolicy.from_options(self.options),
                concurrency=int(self.options.get("concurrency", 8)),
            )
        return self._http

    @property
    def requests_made(self) -> int:
        return self._http.requests if self._http else 0

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    # -- operations (override) -----------------------------------------------------------
    async def fetch_companies(self, queries: list[CompanyQuery], ctx: LookupContext) -> dict[str, Answer]:
        """Answers keyed by ``lookup_key`` (one per query; at most ``bulk_size`` queries)."""
        raise NotImplementedError

    def parse_company(self, raw: Any) -> dict[str, Any]:
        """Canonical field -> raw value from a cached or fresh company answer."""
        raise NotImplementedError

    async def search_people(self, query: PeopleQuery, ctx: LookupContext) -> Answer:
        raise NotImplementedError(f"{self.kind} provider '{self.name}' cannot search people")

    def parse_people(self, raw: Any) -> list[dict[str, Any]]:
        """Canonical person dicts (first_name, last_name, title, email, linkedin_url, country, external_id)."""
        raise NotImplementedError

    async def match_person(self, query: PersonQuery, ctx: LookupContext) -> Answer:
        raise NotImplementedError(f"{self.kind} provider '{self.name}' cannot reveal people")

    def parse_person(self, raw: Any) -> dict[str, Any]:
        raise NotImplementedError


def dig(data: Any, path: str) -> Any:
    """The value at a dotted JSON path: ``a.b``, ``a.0.b``, ``a[0].b``, ``a[].b`` (every item).

    A leading ``$.`` is ignored. Missing keys, wrong types and out-of-range indexes give None.

    >>> dig({"a": {"b": [{"c": 1}, {"c": 2}]}}, "$.a.b[].c")
    [1, 2]
    """
    path = path.strip()
    if path.startswith("$"):
        path = path[1:]
    return _dig(data, _TOKEN.findall(path))


_TOKEN = re.compile(r"\[\]|\[-?\d+\]|[^.\[\]]+")


def _dig(data: Any, parts: list[str]) -> Any:
    if not parts:
        return data
    head, rest = parts[0], parts[1:]
    if isinstance(data, list):
        if head == "[]":
            items = [_dig(item, rest) for item in data]
            return [i for i in items if i is not None] or None
        index = head.strip("[]")
        if index.lstrip("-").isdigit():
            i = int(index)
            return _dig(data[i], rest) if -len(data) <= i < len(data) else None
        return None
    if isinstance(data, dict) and not head.startswith("["):
        return _dig(data[head], rest) if head in data else None
    return None

"""The adapter interface every CRM speaks, its data types, errors and retry policy.

The sync engine only talks to :class:`CrmAdapter`; Salesforce, HubSpot and CSV implement
it. Adapters raise the errors below so that the engine can tell a throttled call (wait and
retry), a transient fault (retry if the call is idempotent), a rejected batch (split it to
find the bad records) and a fatal one (stop the push) apart, whatever the vendor.
"""

from __future__ import annotations

import random
import threading
import time
from abc import ABC, abstractmethod
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt

T = TypeVar("T")
Operation = Literal["create", "update", "upsert"]

# Market Map object -> canonical object names used by ingest (accounts, contacts, …)
CANONICAL = {"account": "accounts", "contact": "contacts", "opportunity": "opportunities"}


# --------------------------------------------------------------------------- errors


class CrmError(Exception):
    """A CRM call failed; ``message`` is the CRM's own error text (never a credential)."""

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None):
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code


class RateLimited(CrmError):
    """HTTP 429 (or a vendor's throttle code): nothing was written; wait ``retry_after`` s."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kw):
        super().__init__(message, **kw)
        self.retry_after = retry_after


class Transient(CrmError):
    """5xx, timeout, dropped connection or malformed response: the call may be retried.

    ``maybe_applied`` is True when the CRM may have processed the request before the
    failure (a read timeout, a 5xx, a garbled body): retrying a create then risks a
    duplicate, so creates are verified first.
    """

    def __init__(self, message: str, *, maybe_applied: bool = True, **kw):
        super().__init__(message, **kw)
        self.maybe_applied = maybe_applied


class MalformedResponse(Transient):
    """The CRM answered 2xx but the body is not what its API documents."""


class BatchRejected(CrmError):
    """The CRM rejected a whole batch (e.g. one invalid value fails all 100): split it."""


class Fatal(CrmError):
    """Authentication, permission or API-budget failure: stop the push, retrying won't help."""


# --------------------------------------------------------------------------- data types


@dataclass(frozen=True)
class FieldMeta:
    """One CRM field as its metadata API describes it (Salesforce describe, HubSpot properties)."""

    name: str
    type: str  # vendor type: picklist, double, string, enumeration, number, bool …
    label: str = ""
    options: tuple[str, ...] = ()  # active picklist values (API values, not labels)
    option_labels: tuple[str, ...] = ()
    updateable: bool = True
    createable: bool = True
    unique: bool = False  # Salesforce External ID / HubSpot hasUniqueValue


@dataclass(frozen=True)
class WriteRecord:
    """One record of a write batch: ``key`` is Market Map's record key."""

    key: str
    fields: dict[str, Any]
    crm_id: str | None = None
    external_id: str | None = None
    # contacts: the CRM id of the account to associate a created contact with
    account_crm_id: str | None = None


@dataclass
class Outcome:
    """What happened to one record of a write."""

    key: str
    ok: bool
    crm_id: str | None = None
    created: bool = False
    error: str | None = None
    # set when a create hit an existing record (HubSpot contact e-mail conflict)
    existing_id: str | None = None
    note: str | None = None


@dataclass
class CallStats:
    """API calls made by one adapter, for the run summary and the benchmark."""

    calls: Counter = field(default_factory=Counter)  # kind (read, write, search, meta) -> n
    throttled: int = 0  # 429s received
    retries: int = 0
    waited_s: float = 0.0  # time spent waiting on rate limits and backoff
    api_usage: str | None = None  # last Salesforce Sforce-Limit-Info
    rate_remaining: int | None = None  # last X-HubSpot-RateLimit-Remaining

    def count(self, kind: str, n: int = 1) -> None:
        self.calls[kind] += n

    @property
    def total(self) -> int:
        return sum(self.calls.values())

    def as_dict(self) -> dict:
        return {
            "calls": dict(self.calls),
            "total_calls": self.total,
            "throttled_429": self.throttled,
            "retries": self.retries,
            "waited_s": round(self.waited_s, 2),
            "api_usage": self.api_usage,
        }


@dataclass(frozen=True)
class CrmSettings:
    """Retry, timeout, batch and throttle knobs. Tests shrink the waits; production keeps these."""

    max_attempts: int = 6
    backoff_base_s: float = 1.0
    backoff_max_s: float = 60.0
    max_retry_after_s: float = 120.0
    connect_timeout_s: float = 10.0
    read_timeout_s: float = 120.0
    # HubSpot private apps: 190 requests per rolling 10 s (Free/Starter: 100)
    rate_limit: tuple[int, float] | None = (190, 10.0)
    search_per_second: float = 4.0  # HubSpot search API: ~4-5 requests/s
    # Salesforce: switch from sObject Collections to Bulk API 2.0 above this many records
    bulk_threshold: int = 10_000
    bulk_job_size: int = 10_000
    bulk_poll_s: float = 2.0
    bulk_query_threshold: int = 50_000
    # stop before the org's daily API allocation is used up (other integrations need it)
    max_api_usage: float = 0.9
    duplicate_rule_header: str = "allowSave=false; includeRecordDetails=false; runAsCurrentUser=true"
    page_size: int = 100

    @property
    def timeout(self) -> tuple[float, float]:
        return (self.connect_timeout_s, self.read_timeout_s)


# --------------------------------------------------------------------------- throttling and retries


class RollingWindowLimiter:
    """At most ``limit`` calls in any ``window`` seconds (thread-safe).

    Proactive throttling keeps a HubSpot push just under the portal's rolling limit, so
    429s stay the exception; 429s that still arrive are honoured by the retry policy.
    """

    def __init__(self, limit: int, window: float, stats: CallStats | None = None):
        # A 1% margin: requests reach the server a little after we stamp them, and a call
        # that lands just inside the server's window would be throttled.
        self.limit, self.window = limit, window * 1.01
        self._calls: deque[float] = deque()
        self._lock = threading.Lock()
        self._stats = stats

    def acquire(self) -> None:
        while True:
            with self._lock:
                now = time.monotonic()
                while self._calls and now - self._calls[0] >= self.window:
                    self._calls.popleft()
                if len(self._calls) < self.limit:
                    self._calls.append(now)
                    return
                wait = self.window - (now - self._calls[0]) + 0.001
            if self._stats is not None:
                self._stats.waited_s += wait
            time.sleep(wait)

    def pause(self, seconds: float) -> None:
        """The server said the window is full: hold every caller back for ``seconds``."""
        with self._lock:
            until = time.monotonic() + seconds
            # fill the window with calls stamped so the next slot opens after `seconds`
            self._calls = deque([until - self.window] * self.limit)


def backoff_wait(settings: CrmSettings, stats: CallStats | None = None) -> Callable[[RetryCallState], float]:
    """Tenacity wait: the server's Retry-After when it gave one, else capped exponential + jitter."""

    def wait(state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        retry_after = getattr(exc, "retry_after", None)
        if retry_after is not None:
            delay = min(float(retry_after), settings.max_retry_after_s)
        else:
            delay = min(settings.backoff_max_s, settings.backoff_base_s * 2 ** (state.attempt_number - 1))
            delay *= 0.5 + random.random() / 2  # jitter: parallel workers don't retry in lockstep
        if stats is not None:
            stats.retries += 1
            stats.waited_s += delay
        return delay

    return wait


def call_with_retry(
    fn: Callable[[], T], settings: CrmSettings, stats: CallStats, *, idempotent: bool = True
) -> T:
    """Run one CRM call, retrying 429s always and transient faults when that cannot duplicate.

    A non-idempotent call (a create) is retried only when the CRM certainly did not
    process it (429, connection refused); otherwise the :class:`Transient` error is raised
    so the caller can verify what was created before sending anything again.
    """

    def retryable(exc: BaseException) -> bool:
        if isinstance(exc, RateLimited):
            return True
        if isinstance(exc, Transient):
            return idempotent or not exc.maybe_applied
        return False

    retrying = Retrying(
        retry=retry_if_exception(retryable),
        stop=stop_after_attempt(settings.max_attempts),
        wait=backoff_wait(settings, stats),
        reraise=True,
    )
    return retrying(fn)


def chunks(items: list[T], size: int) -> Iterator[list[T]]:
    for i in range(0, len(items), max(1, size)):
        yield items[i : i + size]


IN_LIST_SIZE = 5_000  # keys per IN (...) list: a 1M-key list makes PostgreSQL plan for minutes


# --------------------------------------------------------------------------- the adapter interface


class CrmAdapter(ABC):
    """One CRM. Objects are Market Map's names: ``account``, ``contact``, ``opportunity``."""

    kind: str = "abstract"
    #: field names (CRM API names) per object, canonical field -> CRM field
    identity: dict[str, dict[str, str]]

    def __init__(self, settings: CrmSettings | None = None):
        self.settings = settings or CrmSettings()
        self.stats = CallStats()

    # ---- lifecycle
    def start_run(self, client_id: str, run_id: str) -> None:  # noqa: B027 - optional hook
        """Called before a push; the CSV adapter uses it to pick the run folder."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""

    def expect_fields(self, obj: str, op: Operation, fields: list[str]) -> None:  # noqa: B027 - optional hook
        """Before a push's batches: every field its ``op`` writes of ``obj`` may carry. The CSV
        adapter heads its import file with all of them, so each batch is appended, never merged."""

    @property
    def has_remote(self) -> bool:
        """False for the CSV adapter: there is no CRM to read current values from."""
        return True

    # ---- metadata
    @abstractmethod
    def describe(self, obj: str) -> dict[str, FieldMeta]:
        """Field metadata of one object, by CRM field name."""

    def create_field(self, obj: str, name: str, label: str, kind: str, options: list[str]) -> None:
        """Create a missing field (HubSpot properties API); others raise."""
        raise CrmError(f"{self.kind} fields cannot be created through Market Map; create {name} in the CRM")

    def add_options(self, obj: str, name: str, meta: FieldMeta, options: list[str]) -> None:
        """Add values to a restricted picklist (HubSpot properties API); others raise."""
        raise CrmError(f"{self.kind} picklist values cannot be added through Market Map")

    # ---- reads
    @abstractmethod
    def extract(
        self, obj: str, fields: list[str], since: Any = None, until: Any = None
    ) -> Iterator[dict[str, Any]]:
        """Every record of ``obj`` (modified in [since, until) when given), as CRM field -> value.

        Each record carries ``Id`` (Salesforce) or ``hs_object_id`` (HubSpot).
        """

    @abstractmethod
    def read(self, obj: str, ids: list[str], fields: list[str]) -> dict[str, dict[str, Any]]:
        """Current values of the given records (missing ids are absent from the result)."""

    @abstractmethod
    def find(
        self, obj: str, field_name: str, values: Iterable[str], fields: list[str]
    ) -> list[dict[str, Any]]:
        """Records whose ``field_name`` equals one of ``values`` (case-insensitive where the CRM is)."""

    def find_by_domain(self, obj: str, domains: list[str], fields: list[str]) -> list[dict[str, Any]]:
        """Records whose website/domain field reduces to one of ``domains`` (look-up before create)."""
        raise NotImplementedError

    @abstractmethod
    def count(self, obj: str) -> int:
        """How many records of ``obj`` the CRM holds now."""

    def owners(self) -> list[dict[str, Any]]:
        """CRM users/owners as ``{"rep_id", "name", "email", "active"}``."""
        return []

    # ---- writes
    @abstractmethod
    def batch_size(self, op: Operation, total: int) -> int:
        """How many records one write call takes for ``op`` when ``total`` are to be written."""

    @abstractmethod
    def write(
        self, obj: str, op: Operation, records: list[WriteRecord], external_id_field: str | None = None
    ) -> list[Outcome]:
        """Write one batch; one :class:`Outcome` per record, in any order.

        Raises :class:`BatchRejected` when the CRM refused the batch as a whole,
        :class:`Transient` when the outcome is unknown, :class:`Fatal` to stop.
        """

    def id_field(self, obj: str) -> str:
        """The field holding the record id in extracted records."""
        return "Id"

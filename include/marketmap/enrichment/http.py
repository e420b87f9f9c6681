"""HTTP plumbing shared by the provider clients: rate limit, timeouts, retries with backoff.

One ``RetryingClient`` per provider wraps an ``httpx.AsyncClient``. Every request first
waits for the provider's rate limiter (calls per minute, in this process; an Airflow pool
per provider shares it between tasks), then is retried on 429 and 5xx (honouring
``Retry-After``) and on timeouts and connection errors, with exponential backoff. The
retries of one lookup happen inside one credit reservation, so they never charge twice.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import time
from dataclasses import dataclass
from typing import Any

import httpx
from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt

from marketmap.redact import redact

log = logging.getLogger(__name__)


class ProviderError(Exception):
    """A call that produced no usable answer.

    ``kind`` is ``"http"`` (an error status after retries), ``"timeout"`` (no answer in
    time: the provider may have charged), ``"transport"`` (connection failed),
    ``"auth"`` (credentials refused) or ``"config"``.
    """

    def __init__(self, kind: str, message: str, status: int | None = None, retry_after: float | None = None):
        super().__init__(redact(message))
        self.kind = kind
        self.status = status
        self.retry_after = retry_after

    @property
    def retryable(self) -> bool:
        if self.kind in ("timeout", "transport"):
            return True
        return self.kind == "http" and (self.status == 429 or (self.status or 0) >= 500)


@dataclass(frozen=True)
class RetryPolicy:
    """Attempts per request and the backoff between them (seconds)."""

    attempts: int = 4
    backoff: float = 1.0
    max_backoff: float = 30.0
    timeout: float = 20.0

    @classmethod
    def from_options(cls, options: dict[str, Any]) -> RetryPolicy:
        base = cls()
        return cls(
            attempts=int(options.get("retry_attempts", base.attempts)),
            backoff=float(options.get("retry_backoff", base.backoff)),
            max_backoff=float(options.get("retry_max_backoff", base.max_backoff)),
            timeout=float(options.get("timeout", base.timeout)),
        )


class RateLimiter:
    """At most ``per_minute`` request starts per minute, evenly spaced (a leaky bucket)."""

    def __init__(self, per_minute: float):
        self.interval = 60.0 / per_minute if per_minute > 0 else 0.0
        self._next = 0.0
        self._lock = asyncio.Lock()

    async def wait(self) -> None:
        if not self.interval:
            return
        async with self._lock:
            now = time.monotonic()
            start = max(now, self._next)
            self._next = start + self.interval
        if start > now:
            await asyncio.sleep(start - now)


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        when = email.utils.parsedate_to_datetime(value)
        return max(0.0, when.timestamp() - time.time()) if when else None


class RetryingClient:
    """An ``httpx.AsyncClient`` with the provider's rate limit and retry policy."""

    def __init__(
        self,
        *,
        base_url: str = "",
        headers: dict[str, str] | None = None,
        per_minute: float = 60,
        policy: RetryPolicy | None = None,
        concurrency: int = 8,
        transport: httpx.AsyncBaseTransport | None = None,
    ):
        self.policy = policy or RetryPolicy()
        self.limiter = RateLimiter(per_minute)
        self.semaphore = asyncio.Semaphore(max(1, concurrency))
        self._kwargs = {
            "base_url": base_url,
            "headers": headers or {},
            "timeout": httpx.Timeout(self.policy.timeout),
            "transport": transport,
            # environment proxies must not redirect provider calls (or local test servers)
            "trust_env": False,
        }
        self._client: httpx.AsyncClient | None = None
        self.requests = 0  # HTTP attempts, retries included

    @property
    def client(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(**self._kwargs)
        return self._client

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    def _wait(self, state) -> float:
        exc = state.outcome.exception() if state.outcome else None
        backoff = min(self.policy.max_backoff, self.policy.backoff * 2 ** (state.attempt_number - 1))
        hinted = getattr(exc, "retry_after", None)
        return min(self.policy.max_backoff, max(backoff, hinted or 0.0))

    async def _once(self, method: str, url: str, **kwargs) -> httpx.Response:
        await self.limiter.wait()
        self.requests += 1
        try:
            response = await self.client.request(method, url, **kwargs)
        except httpx.TimeoutException as e:
            raise ProviderError("timeout", f"{method} {url}: timed out ({type(e).__name__})") from None
        except httpx.TransportError as e:
            raise ProviderError("transport", f"{method} {url}: {type(e).__name__}: {e}") from None
        if response.status_code in (401, 403):
            raise ProviderError("auth", f"{method} {url}: HTTP {response.status_code}", response.status_code)
        if response.status_code == 429 or response.status_code >= 500:
            raise ProviderError(
                "http",
                f"{method} {url}: HTTP {response.status_code}",
                response.status_code,
                _retry_after(response),
            )
        return response

    async def request(self, method: str, url: str, **kwargs) -> httpx.Response:
        """Send with rate limit and retries; return the final response (2xx-4xx but 401/403/429).

        Raises:
            ProviderError: after the last attempt, or at once for refused credentials.
        """
        async with self.semaphore:
            retrying = AsyncRetrying(
                stop=stop_after_attempt(self.policy.attempts),
                wait=self._wait,
                retry=retry_if_exception(lambda e: isinstance(e, ProviderError) and e.retryable),
                reraise=True,
            )
            async for attempt in retrying:
                with attempt:
                    response = await self._once(method, url, **kwargs)
            return response


def json_body(response: httpx.Response) -> tuple[Any, str | None]:
    """(parsed JSON, None) or (None, reason) for a malformed or empty body."""
    if not response.content or not response.content.strip():
        return None, f"empty body (HTTP {response.status_code})"
    try:
        return response.json(), None
    except ValueError as e:
        return None, f"malformed JSON (HTTP {response.status_code}): {e}"

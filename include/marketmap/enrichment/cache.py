"""Provider answers stored per client with their fetch time.

A retried or re-run task reads an answer younger than the refresh age from here instead
of paying for it again. Hits *and* misses are cached (a "not found" was paid for too);
errors and pending answers are not (nothing was learned).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.engine import Connection

from marketmap.warehouse import schema as t
from marketmap.warehouse import upsert


@dataclass(frozen=True)
class Cached:
    status: str
    response: Any
    fetched_at: dt.datetime


def _aware(value: dt.datetime) -> dt.datetime:
    # SQLite hands back naive datetimes; everything is stored in UTC
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def read(
    engine: Engine | Connection,
    client_id: str,
    provider: str,
    lookup_keys: Iterable[str],
    fresh_after: dt.datetime | None = None,
) -> dict[str, Cached]:
    """Cached answers by lookup key, only those fetched at or after ``fresh_after``."""
    keys = list(dict.fromkeys(lookup_keys))
    out: dict[str, Cached] = {}
    if not keys:
        return out
    conn_ctx = engine.connect() if isinstance(engine, Engine) else None
    conn = conn_ctx.__enter__() if conn_ctx else engine
    try:
        c = t.enrichment_cache.c
        for i in range(0, len(keys), 500):
            q = select(c.lookup_key, c.status, c.response, c.fetched_at).where(
                c.client_id == client_id, c.provider == provider, c.lookup_key.in_(keys[i : i + 500])
            )
            for row in conn.execute(q):
                at = _aware(row.fetched_at)
                if fresh_after is None or at >= fresh_after:
                    out[row.lookup_key] = Cached(row.status, row.response, at)
    finally:
        if conn_ctx:
            conn_ctx.__exit__(None, None, None)
    return out


def write(
    conn: Connection, client_id: str, provider: str, answers: dict[str, tuple[str, Any]], now: dt.datetime
) -> None:
    """Store ``{lookup_key: (status, response)}`` (replacing older answers)."""
    rows = [
        {
            "client_id": client_id,
            "provider": provider,
            "lookup_key": key,
            "fetched_at": now,
            "status": status,
            "response": response,
        }
        for key, (status, response) in answers.items()
    ]
    upsert(conn, t.enrichment_cache, rows)

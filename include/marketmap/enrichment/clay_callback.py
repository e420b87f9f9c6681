"""The Clay callback: enriched rows come back from a Clay table's HTTP API column.

The Market Map plugin's app (``marketmap.orchestration.portfolio_app``) includes :func:`make_router` under
``/marketmap/api``; point the Clay table's HTTP API column at
``POST https://<airflow>/marketmap/api/clay/<client_id>/rows`` with the header
``X-Marketmap-Secret: <secret>`` and a JSON body that returns the row's ``marketmap_*``
columns unchanged plus the enriched columns (one object, a list, or ``{"rows": [...]}``).

The shared secret comes from ``MARKETMAP_CLAY_SECRET_<CLIENT>`` or
``MARKETMAP_CLAY_CALLBACK_SECRET`` in the environment, else from the Airflow connection
``marketmap_clay_callback`` (its password). Without a secret the endpoint refuses every
callback (fail closed); a wrong secret is a 401.

A received row is stored in ``clay_rows``, its answer goes into the enrichment cache (so
the next waterfall pass reads it for free) and its ledger reservation is settled — all in
one transaction; a repeated callback changes nothing twice. The waiting task polls
:func:`clay_rows_status`; after its timeout :func:`close_clay_batch` settles the rows that
never came back and reports them.
"""

# No ``from __future__ import annotations`` here: FastAPI reads the route's annotations at
# definition time, and they name objects imported inside make_router.
import datetime as dt
import hmac
import logging
import os
import re
from collections.abc import Callable
from typing import Annotated, Any

from sqlalchemy import Engine, select, update

from marketmap.enrichment import cache, ledger
from marketmap.warehouse import schema as t

log = logging.getLogger(__name__)

SECRET_HEADER = "X-Marketmap-Secret"
CALLBACK_CONN_ID = "marketmap_clay_callback"
MAX_ROWS = 1000
_CLIENT = re.compile(r"^[a-z][a-z0-9_]{1,39}$")
_ID_COLUMNS = {
    "marketmap_client_id",
    "marketmap_batch_id",
    "marketmap_row_id",
    "account_key",
    "domain",
    "name",
}


def default_secret(client_id: str) -> str | None:
    """The callback secret of a client: environment first, then the Airflow connection."""
    for var in (f"MARKETMAP_CLAY_SECRET_{client_id.upper()}", "MARKETMAP_CLAY_CALLBACK_SECRET"):
        if os.environ.get(var):
            return os.environ[var]
    try:
        from marketmap.connections import get_connection

        return get_connection(CALLBACK_CONN_ID).password or None
    except Exception:  # noqa: BLE001 - no Airflow, no connection: no secret (fail closed)
        return None


def default_engine(client_id: str) -> Engine:
    from marketmap.config import load_client
    from marketmap.warehouse import client_engine

    return client_engine(load_client(client_id))


def _has_data(row: dict) -> bool:
    return any(v not in (None, "", [], {}) for k, v in row.items() if k not in _ID_COLUMNS)


def store_clay_rows(engine: Engine, client_id: str, rows: list[dict], now: dt.datetime | None = None) -> dict:
    """Store rows sent back by Clay; cache their answers and settle their reservations.

    Rows must carry ``marketmap_batch_id`` and ``marketmap_row_id`` of a row we sent for
    this client; others are counted as unknown and ignored.

    Returns:
        ``{"received": n, "unknown": n, "duplicates": n}``.
    """
    now = now or dt.datetime.now(dt.UTC)
    received = unknown = duplicates = 0
    c = t.clay_rows.c
    with engine.begin() as conn:
        for row in rows:
            if not isinstance(row, dict):
                unknown += 1
                continue
            batch, row_id = row.get("marketmap_batch_id"), row.get("marketmap_row_id")
            if row.get("marketmap_client_id") not in (None, client_id) or not batch or not row_id:
                unknown += 1
                continue
            sent = conn.execute(
                select(c.provider, c.lookup_key, c.entry_id, c.status).where(
                    c.client_id == client_id, c.batch_id == str(batch), c.row_id == str(row_id)
                )
            ).one_or_none()
            if sent is None:
                unknown += 1
                continue
            duplicates += sent.status == "received"
            conn.execute(
                update(t.clay_rows)
                .where(c.client_id == client_id, c.batch_id == str(batch), c.row_id == str(row_id))
                .values(status="received", received_at=now, data=row)
            )
            status = "hit" if _has_data(row) else "miss"
            cache.write(conn, client_id, sent.provider, {sent.lookup_key: (status, row)}, now)
            if sent.entry_id is not None:
                credits = conn.execute(
                    select(t.credit_ledger.c.credits).where(t.credit_ledger.c.entry_id == sent.entry_id)
                ).scalar_one_or_none()
                ledger.settle(
                    conn, [ledger.Settlement(sent.entry_id, status, credits or 0.0, "clay callback")], now
                )
            received += 1
    return {"received": received, "unknown": unknown, "duplicates": int(duplicates)}


def clay_rows_status(engine: Engine, client_id: str, batch_id: str) -> tuple[bool, list[str]]:
    """(all rows of the batch are back, account keys of the rows still missing).

    For the deferrable wait (``orchestration.clay_wait``): ``done`` ends the wait; after the wait's timeout, call
    :func:`close_clay_batch` to settle and report the missing rows.
    """
    c = t.clay_rows.c
    with engine.connect() as conn:
        rows = conn.execute(
            select(c.account_key, c.lookup_key, c.status).where(
                c.client_id == client_id, c.batch_id == batch_id
            )
        ).all()
    missing = sorted(r.account_key or r.lookup_key for r in rows if r.status == "sent")
    return not missing, missing


def close_clay_batch(engine: Engine, client_id: str, batch_id: str, now: dt.datetime | None = None) -> dict:
    """Give up on rows that never came back: report them, settle them, cache them as misses.

    Their credits stay spent (Clay may have run its enrichments); the cached miss lets the
    next waterfall pass go on to the next provider instead of waiting or sending again.
    """
    now = now or dt.datetime.now(dt.UTC)
    c = t.clay_rows.c
    with engine.begin() as conn:
        rows = conn.execute(
            select(c.row_id, c.provider, c.account_key, c.lookup_key, c.entry_id, c.status).where(
                c.client_id == client_id, c.batch_id == batch_id
            )
        ).all()
        missing = [r for r in rows if r.status == "sent"]
        for r in missing:
            conn.execute(
                update(t.clay_rows)
                .where(c.client_id == client_id, c.batch_id == batch_id, c.row_id == r.row_id)
                .values(status="timed_out")
            )
            cache.write(
                conn,
                client_id,
                r.provider,
                {r.lookup_key: ("miss", {"reason": "no callback before the timeout"})},
                now,
            )
        entries = [r.entry_id for r in missing if r.entry_id is not None]
        if entries:
            credits = dict(
                conn.execute(
                    select(t.credit_ledger.c.entry_id, t.credit_ledger.c.credits).where(
                        t.credit_ledger.c.entry_id.in_(entries)
                    )
                ).all()
            )
            ledger.settle(
                conn,
                [
                    ledger.Settlement(
                        e, "no_response", credits.get(e, 0.0), "no Clay callback before the timeout"
                    )
                    for e in entries
                ],
                now,
            )
    if missing:
        log.warning("%s: %d Clay rows of batch %s never came back", client_id, len(missing), batch_id)
    return {
        "batch_id": batch_id,
        "rows": len(rows),
        "received": sum(1 for r in rows if r.status == "received"),
        "timed_out": len(missing),
        "missing": sorted(r.account_key or r.lookup_key for r in missing),
    }


def _rows_of(body: Any) -> list:
    if isinstance(body, dict) and isinstance(body.get("rows"), list):
        return body["rows"]
    if isinstance(body, list):
        return body
    return [body]


def make_router(
    engine_getter: Callable[[str], Engine] | None = None,
    secret_getter: Callable[[str], str | None] | None = None,
):
    """The callback routes (``POST /clay/{client_id}/rows``) as a FastAPI ``APIRouter``."""
    from fastapi import APIRouter, Body, Header, HTTPException

    get_engine = engine_getter or default_engine
    get_secret = secret_getter or default_secret
    router = APIRouter()

    # a plain def: FastAPI runs it in its thread pool, so database work never blocks the loop
    @router.post("/clay/{client_id}/rows")
    def clay_rows(
        client_id: str,
        payload: Annotated[Any, Body()],
        x_marketmap_secret: Annotated[str | None, Header()] = None,
        authorization: Annotated[str | None, Header()] = None,
    ) -> dict:
        if not _CLIENT.match(client_id):
            raise HTTPException(404, "unknown client")
        secret = get_secret(client_id)
        if not secret:
            raise HTTPException(503, "Clay callback secret not configured")
        given = x_marketmap_secret or (authorization or "").removeprefix("Bearer ").strip()
        if not given or not hmac.compare_digest(given.encode(), secret.encode()):
            raise HTTPException(401, "bad or missing callback secret")
        rows = _rows_of(payload)
        if len(rows) > MAX_ROWS:
            raise HTTPException(413, f"at most {MAX_ROWS} rows per callback")
        try:
            engine = get_engine(client_id)
        except Exception:  # noqa: BLE001 - an unknown client or a broken config: say not found, log why
            log.exception("Clay callback for client %s: no warehouse", client_id)
            raise HTTPException(404, "unknown client") from None
        return store_clay_rows(engine, client_id, rows)

    return router


def create_app(**kwargs):
    """A FastAPI app with the callback routes, for ``AirflowPlugin.fastapi_apps``."""
    from fastapi import FastAPI

    app = FastAPI(title="Market Map callbacks", docs_url=None, redoc_url=None)
    app.include_router(make_router(**kwargs))
    return app

"""Credit ledger and the monthly budget: reserve before a paid call, settle after.

Every lookup that may cost credits gets a ledger row *before* the request leaves:
``outcome = 'reserved'`` with the provider's price. Reservations are taken inside one
transaction that holds a lock per client and month — ``pg_advisory_xact_lock`` on
PostgreSQL, ``BEGIN IMMEDIATE`` on SQLite — and re-sums the month's credits under the
lock, so concurrent tasks (and processes) can never reserve past the budget together.

After the call the row is *settled*: ``hit`` or ``miss`` keep the credits (a miss is free
when the provider does not charge for it), ``error`` releases them (the provider answered
with an error status, nothing was bought), ``timeout`` keeps them (the request may have
been served and charged; the budget must not under-count), ``pending`` (Clay) stays open
until the callback or the timeout. A lookup retried after a crash finds its open
reservation by ``(client, provider, lookup_key)`` and reuses it: one lookup, one charge.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, bindparam, func, select, update
from sqlalchemy.engine import Connection

from marketmap.redact import redact
from marketmap.warehouse import schema as t

OPEN = "reserved"
KEEPS_CREDITS = ("reserved", "hit", "miss", "timeout", "pending", "no_response")


def month_of(when: dt.datetime | None = None, tz: str | ZoneInfo = "UTC") -> str:
    """``YYYY-MM`` of ``when`` (default now) in the client's timezone."""
    zone = ZoneInfo(tz) if isinstance(tz, str) else tz
    when = when or dt.datetime.now(dt.UTC)
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return when.astimezone(zone).strftime("%Y-%m")


@dataclass(frozen=True)
class Reservation:
    entry_id: int
    lookup_key: str
    credits: float
    reused: bool = False


@dataclass(frozen=True)
class Request:
    """One lookup asking for credits."""

    lookup_key: str
    account_key: str | None
    credits: float


def _lock_id(client_id: str, month: str) -> int:
    """A stable signed 64-bit advisory-lock key for one client's month."""
    digest = hashlib.sha1(f"marketmap-credits|{client_id}|{month}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


@contextlib.contextmanager
def budget_lock(engine: Engine, client_id: str, month: str) -> Iterator[Connection]:
    """A connection in a transaction that holds the client's budget lock for ``month``."""
    if engine.dialect.name == "postgresql":
        with engine.begin() as conn:
            conn.execute(select(func.pg_advisory_xact_lock(_lock_id(client_id, month))))
            yield conn
        return
    if engine.dialect.name != "sqlite":
        raise NotImplementedError(f"budget lock for {engine.dialect.name}")
    with engine.connect() as conn:
        dbapi = conn.connection.dbapi_connection
        old = dbapi.isolation_level
        # pysqlite opens deferred transactions itself; take control to BEGIN IMMEDIATE, which
        # holds the database's write lock from the first read (busy_timeout makes others wait).
        dbapi.isolation_level = None
        try:
            conn.exec_driver_sql("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.rollback()
                raise
            conn.commit()
        finally:
            dbapi.isolation_level = old


def month_spent(conn: Connection, client_id: str, month: str) -> float:
    """Credits reserved or spent by the client in ``month`` (settled errors count 0)."""
    q = select(func.coalesce(func.sum(t.credit_ledger.c.credits), 0.0)).where(
        t.credit_ledger.c.client_id == client_id, t.credit_ledger.c.month == month
    )
    return float(conn.execute(q).scalar_one())


def spent(engine: Engine, client_id: str, month: str) -> float:
    with engine.connect() as conn:
        return month_spent(conn, client_id, month)


def reserve(
    engine: Engine,
    *,
    client_id: str,
    provider: str,
    run_id: str,
    month: str,
    budget: float,
    requests: Sequence[Request],
    now: dt.datetime | None = None,
) -> tuple[dict[str, Reservation], list[str]]:
    """Reserve credits for lookups, in order, within the monthly budget.

    Open reservations of the same lookups (a retried task) are reused, not charged again.
    The first request that does not fit the budget and every request after it are refused,
    so a run stops spending at the budget instead of picking cheaper leftovers.

    Returns:
        (reservations by lookup key, refused lookup keys).
    """
    now = now or dt.datetime.now(dt.UTC)
    keys = [r.lookup_key for r in requests]
    granted: dict[str, Reservation] = {}
    refused: list[str] = []
    with budget_lock(engine, client_id, month) as conn:
        for i in range(0, len(keys), 500):
            for row in conn.execute(
                select(t.credit_ledger.c.entry_id, t.credit_ledger.c.lookup_key, t.credit_ledger.c.credits)
                .where(
                    t.credit_ledger.c.client_id == client_id,
                    t.credit_ledger.c.provider == provider,
                    t.credit_ledger.c.lookup_key.in_(keys[i : i + 500]),
                    t.credit_ledger.c.outcome == OPEN,
                )
                .order_by(t.credit_ledger.c.entry_id)
            ):
                granted.setdefault(
                    row.lookup_key, Reservation(row.entry_id, row.lookup_key, row.credits, True)
                )
        total = month_spent(conn, client_id, month)
        new: list[dict] = []
        for r in requests:
            if r.lookup_key in granted:
                continue
            if refused or total + r.credits > budget + 1e-9:
                refused.append(r.lookup_key)
                continue
            total += r.credits
            new.append(
                {
                    "client_id": client_id,
                    "provider": provider,
                    "credits": float(r.credits),
                    "account_key": r.account_key,
                    "lookup_key": r.lookup_key,
                    "run_id": run_id,
                    "outcome": OPEN,
                    "month": month,
                    "recorded_at": now,
                }
            )
        if new:
            rows = conn.execute(
                t.credit_ledger.insert().returning(
                    t.credit_ledger.c.entry_id, t.credit_ledger.c.lookup_key, sort_by_parameter_order=True
                ),
                new,
            ).all()
            for (entry_id, key), row in zip(rows, new, strict=True):
                granted[key] = Reservation(entry_id, key, row["credits"])
    return granted, refused


@dataclass(frozen=True)
class Settlement:
    entry_id: int
    outcome: str
    credits: float
    detail: str | None = None


def settle(conn: Connection, settlements: Sequence[Settlement], now: dt.datetime | None = None) -> None:
    """Record how reserved lookups ended (in the caller's transaction)."""
    if not settlements:
        return
    now = now or dt.datetime.now(dt.UTC)
    stmt = (
        update(t.credit_ledger)
        .where(t.credit_ledger.c.entry_id == bindparam("eid"))
        .values(
            outcome=bindparam("o"),
            credits=bindparam("c"),
            detail=bindparam("d"),
            settled_at=bindparam("at"),
        )
    )
    conn.execute(
        stmt,
        [
            {
                "eid": s.entry_id,
                "o": s.outcome,
                "c": float(s.credits),
                "d": redact(s.detail)[:1000] if s.detail else None,
                "at": now,
            }
            for s in settlements
        ],
    )

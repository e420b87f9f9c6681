"""The warehouse: where every task reads and writes, scoped by client_id.

SQLite (a file under ``$MARKETMAP_HOME``) is the embedded default; PostgreSQL is used in
production. The URL comes from, in order: an explicit argument, the Airflow connection
named in the client config (resolved by the DAG layer), ``MARKETMAP_WAREHOUSE_URL``,
then the default SQLite file.

The schema is migrated at deploy time (``marketmap migrate``: the ``airflow-init`` service of
docker-compose, ``make migrate``, ``make demo``, ``make ui``), never by a task: a task's engine
only checks that the schema is at the migrations' head and fails with what to run otherwise
(:class:`SchemaNotAtHead`). ``MARKETMAP_MIGRATE_ON_CONNECT=1`` migrates on first use instead —
for tests and throw-away setups, never for a deployment with several workers.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path

from sqlalchemy import Engine, Table, create_engine, event, func, or_
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection

from marketmap.settings import marketmap_home

_ENGINES: dict[str, Engine] = {}
# Not Airflow's alembic_version: the warehouse and Airflow's metadata may share a database.
VERSION_TABLE = "marketmap_alembic_version"


def default_url() -> str:
    url = os.environ.get("MARKETMAP_WAREHOUSE_URL")
    if url:
        return url
    home = marketmap_home()
    home.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{home / 'warehouse.db'}"


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")  # readers (the UI, reports) don't block a running task
    cur.execute("PRAGMA busy_timeout=30000")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


class SchemaNotAtHead(RuntimeError):
    """The warehouse schema is not the one this code needs: migrate at deploy time."""


def migrate_on_connect() -> bool:
    return os.environ.get("MARKETMAP_MIGRATE_ON_CONNECT", "").strip().lower() in ("1", "true", "yes")


def get_engine(url: str | None = None, *, migrate_schema: bool | None = None) -> Engine:
    """A cached engine for ``url``; on first use the schema is checked to be at head.

    ``migrate_schema=True`` migrates it to head instead (what ``marketmap migrate`` does);
    ``None`` follows ``MARKETMAP_MIGRATE_ON_CONNECT``. Raises :class:`SchemaNotAtHead`.
    """
    url = url or default_url()
    if url not in _ENGINES:
        eng = create_engine(url, future=True, pool_pre_ping=True)
        if eng.dialect.name == "sqlite":
            event.listen(eng, "connect", _sqlite_pragmas)
        if migrate_schema if migrate_schema is not None else migrate_on_connect():
            migrate(eng)
        else:
            check_schema(eng)
        _ENGINES[url] = eng
    return _ENGINES[url]


def client_url(cfg) -> str | None:
    """The warehouse URL of a client: its ``warehouse_conn_id`` connection, or None for the default."""
    if not cfg.warehouse_conn_id:
        return None
    from marketmap.connections import get_connection

    uri = get_connection(cfg.warehouse_conn_id).get_uri()
    # Airflow renders postgres connections as postgres://; SQLAlchemy wants a driver name.
    for prefix in ("postgres://", "postgresql://"):
        if uri.startswith(prefix):
            return "postgresql+psycopg://" + uri[len(prefix) :]
    return uri


def client_engine(cfg) -> Engine:
    """The cached engine of a client's warehouse."""
    return get_engine(client_url(cfg))


def dispose_engines() -> None:
    for eng in _ENGINES.values():
        eng.dispose()
    _ENGINES.clear()


def _alembic_config():
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
    return cfg


def migrate(engine: Engine, revision: str = "head") -> None:
    """Upgrade the warehouse schema with Alembic (never drops a client's data)."""
    from alembic import command

    cfg = _alembic_config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)


def head_revisions() -> set[str]:
    """The revision(s) the code's migrations end at."""
    from alembic.script import ScriptDirectory

    return set(ScriptDirectory.from_config(_alembic_config()).get_heads())


def schema_revisions(engine: Engine) -> set[str]:
    """The revision(s) the warehouse is at (empty for a database never migrated)."""
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE})
        return set(ctx.get_current_heads())


def check_schema(engine: Engine) -> None:
    """Raise :class:`SchemaNotAtHead` unless the warehouse schema is at the migrations' head."""
    current, head = schema_revisions(engine), head_revisions()
    if current == head:
        return
    at = ", ".join(sorted(current)) if current else "no Market Map schema (never migrated)"
    raise SchemaNotAtHead(
        f"warehouse {safe_url(engine)} is at {at}; this code needs revision {', '.join(sorted(head))}. "
        "Migrate it at deploy time: run `marketmap migrate` (the airflow-init service of "
        "docker-compose, `make migrate`) and retry the task"
    )


def safe_url(engine_or_url: Engine | str) -> str:
    """The URL with any password hidden, for logs and summaries."""
    from sqlalchemy.engine import make_url

    url = engine_or_url.url if isinstance(engine_or_url, Engine) else make_url(engine_or_url)
    return url.render_as_string(hide_password=True)


def upsert(
    conn: Connection,
    table: Table,
    rows: Iterable[Mapping],
    *,
    chunk: int = 5000,
    keep_when_null: Iterable[str] = (),
    skip_unchanged: Iterable[str] | None = None,
) -> int:
    """INSERT … ON CONFLICT (primary key) DO UPDATE, on SQLite and PostgreSQL alike.

    One statement per table, executed for many rows at once (``executemany``): it compiles once
    and is cached, instead of a fresh multi-VALUES statement per chunk (13x the CPU).

    Args:
        keep_when_null: columns that keep their stored value when the new one is NULL.
        skip_unchanged: when given, a row whose values equal the stored ones — ignoring these
            bookkeeping columns (run ids, timestamps, source rows) — is not rewritten at all.
    Returns: the number of rows given (inserted, updated or found unchanged).
    """
    keep = set(keep_when_null)
    rows = list(rows)
    if not rows:
        return 0
    insert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
    keys = [c.name for c in table.primary_key.columns]
    cols = list(rows[0].keys())
    stmt = insert(table)
    update = {
        c: func.coalesce(stmt.excluded[c], table.c[c]) if c in keep else stmt.excluded[c]
        for c in cols
        if c not in keys
    }
    if not update:
        stmt = stmt.on_conflict_do_nothing()
    else:
        where = None
        if skip_unchanged is not None:
            ignored = set(skip_unchanged)
            changed = [table.c[c].is_distinct_from(v) for c, v in update.items() if c not in ignored]
            where = or_(*changed) if changed else None
        stmt = stmt.on_conflict_do_update(index_elements=keys, set_=update, where=where)
    for i in range(0, len(rows), chunk):
        conn.execute(stmt, rows[i : i + chunk])
    return len(rows)
